"""Round trip with the real OpenTelemetry Python SDK and OTLP exporters.

Each signal is exported over gRPC, HTTP/protobuf and HTTP/protobuf+gzip, then read back with
SQL. Two oracles are used for every row:

* the SDK's own objects (ids formatted 032x/016x, start/end times, instrument values), and
* the OTLP request the SDK's encoder builds from the exported items, mapped to rows as
  docs/SCHEMA.md documents (``helpers.expected_*_rows``): whole rows must match exactly.
"""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, LogRecordLimits
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.metrics import Observation

from helpers import (
    expected_log_rows,
    expected_metric_rows,
    expected_span_rows,
    export_ok,
    metrics_request,
    normalize_rows,
    ts_ns,
    ns_to_rfc3339,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2

TRANSPORTS = ["grpc", "http", "http_gzip"]

pytestmark = pytest.mark.filterwarnings("ignore:Log record attributes were dropped")

RESOURCE_ATTRS = {
    "service.name": "e2e-sdk-svc",
    "service.version": "9.9.9",
    "deployment.environment": "e2e",
    "res.int": 7,
    "res.bool": True,
    "res.float": 1.5,
    "res.seq": ["x", "y"],
}

# Span/log attributes of every type the API allows, with the text form SCHEMA.md documents.
TYPED_ATTRS = {
    "str": "GET /users",
    "bool": True,
    "int": -42,
    "big_int": 2**62,
    "float": 0.25,
    "str_seq": ("a", "b"),
    "bool_seq": (True, False),
    "int_seq": (1, -2, 3),
    "float_seq": (0.5, 1.25),
    "http.route": "/users",
}
TYPED_TEXT = {
    "str": "GET /users",
    "bool": "true",
    "int": "-42",
    "big_int": "4611686018427387904",
    "float": "0.25",
    "str_seq": '["a","b"]',
    "bool_seq": "[true,false]",
    "int_seq": "[1,-2,3]",
    "float_seq": "[0.5,1.25]",
    "http.route": "/users",
}

# 2023-11-14T22:13:20.123456789Z and later: explicit nanosecond timestamps.
T0 = 1_700_000_000_123_456_789


def _recording(cls):
    """A subclass of an SDK exporter that remembers what it exported and the results."""

    class Recording(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.batches = []
            self.results = []

        def export(self, batch, *args, **kwargs):
            result = super().export(batch, *args, **kwargs)
            self.batches.append(batch)
            self.results.append(result)
            return result

    return Recording


def make_exporter(signal: str, node, transport: str, tenant: str, **kwargs):
    if transport == "grpc":
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as cls
        elif signal == "logs":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as cls
        else:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as cls
        return _recording(cls)(
            endpoint=node.grpc_addr, insecure=True, headers=(("x-scope-orgid", tenant),), timeout=10, **kwargs
        )
    from opentelemetry.exporter.otlp.proto.http import Compression

    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as cls
    elif signal == "logs":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as cls
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as cls
    compression = Compression.Gzip if transport == "http_gzip" else Compression.NoCompression
    return _recording(cls)(
        endpoint=f"{node.otlp_url}/v1/{signal}",
        headers={"X-Scope-OrgID": tenant},
        compression=compression,
        timeout=10,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------- traces


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_traces_roundtrip(node, tenant, transport):
    exporter = make_exporter("traces", node, transport, tenant)
    provider = TracerProvider(
        resource=Resource.create(RESOURCE_ATTRS),
        span_limits=SpanLimits(
            max_span_attributes=16, max_events=3, max_links=2, max_event_attributes=3, max_link_attributes=3
        ),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e.tracer", "1.2.3")

    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1")]),
    )
    root = tracer.start_span(
        "GET /users",
        kind=SpanKind.SERVER,
        attributes=TYPED_ATTRS,
        links=[Link(remote, attributes={"link.kind": "follows", "link.n": 2})],
        start_time=T0,
    )
    root.add_event("cache.miss", {"key": "user:1", "attempt": 2, "ok": False}, timestamp=T0 + 1_000)
    root.add_event("retry", timestamp=T0 + 2_000)
    root.set_status(Status(StatusCode.ERROR, "boom: upstream 503"))

    from opentelemetry import trace as trace_api

    with trace_api.use_span(root, end_on_exit=False):
        child = tracer.start_span("SELECT users", kind=SpanKind.CLIENT, start_time=T0 + 10_000)
        child.set_attribute("db.system", "postgresql")
        child.end(end_time=T0 + 20_000)

    # A span over its limits: dropped attributes, events, links, event and link attributes.
    limited = tracer.start_span(
        "limited",
        kind=SpanKind.INTERNAL,
        attributes={f"a{i}": i for i in range(20)},
        links=[Link(remote, attributes={f"l{i}": i for i in range(5)}) for _ in range(4)],
        start_time=T0 + 30_000,
    )
    for i in range(5):
        limited.add_event(f"e{i}", {f"k{j}": j for j in range(6)}, timestamp=T0 + 31_000 + i)
    limited.end(end_time=T0 + 40_000)

    # A span with SDK-chosen times (now), of the remaining kinds.
    producer = tracer.start_span("publish", kind=SpanKind.PRODUCER)
    producer.set_status(Status(StatusCode.OK))
    producer.end()
    consumer = tracer.start_span("consume", kind=SpanKind.CONSUMER, context=trace_api.set_span_in_context(producer))
    consumer.end()

    root.end(end_time=T0 + 1_000_000)
    provider.shutdown()

    assert exporter.results and all(r == SpanExportResult.SUCCESS for r in exporter.results), exporter.results
    spans = [s for batch in exporter.batches for s in batch]
    assert len(spans) == 5

    rows = normalize_rows(node.sql("SELECT * FROM spans ORDER BY span_id", tenant=tenant))
    by_id = {r["span_id"]: r for r in rows}
    assert len(rows) == 5 and len(by_id) == 5

    # Oracle 1: whole rows as SCHEMA.md maps the request the SDK sent.
    expected = sorted(expected_span_rows(encode_spans(spans)), key=lambda r: r["span_id"])
    assert rows == expected

    # Oracle 2: the SDK's own objects.
    for s in spans:
        ctx = s.get_span_context()
        row = by_id[format(ctx.span_id, "016x")]
        assert row["trace_id"] == format(ctx.trace_id, "032x")
        assert row["time"] == s.start_time
        assert row["end_time"] == s.end_time
        assert row["duration_ns"] == s.end_time - s.start_time
        assert row["name"] == s.name
        assert row["parent_span_id"] == (format(s.parent.span_id, "016x") if s.parent else None)
        assert row["scope_name"] == "e2e.tracer"
        assert row["scope_version"] == "1.2.3"
        assert row["service_name"] == "e2e-sdk-svc"
        assert row["kind"] == {
            SpanKind.SERVER: "server",
            SpanKind.CLIENT: "client",
            SpanKind.INTERNAL: "internal",
            SpanKind.PRODUCER: "producer",
            SpanKind.CONSUMER: "consumer",
        }[s.kind]

    root_row = by_id[format(root.get_span_context().span_id, "016x")]
    assert root_row["time"] == T0 and root_row["end_time"] == T0 + 1_000_000
    assert root_row["duration_ns"] == 1_000_000
    assert root_row["parent_span_id"] is None
    assert root_row["kind"] == "server"
    assert root_row["status_code"] == "error"
    assert root_row["status_message"] == "boom: upstream 503"
    assert root_row["attributes"] == TYPED_TEXT
    assert root_row["resource_attributes"]["service.name"] == "e2e-sdk-svc"
    assert root_row["resource_attributes"]["service.version"] == "9.9.9"
    assert root_row["resource_attributes"]["res.int"] == "7"
    assert root_row["resource_attributes"]["res.bool"] == "true"
    assert root_row["resource_attributes"]["res.float"] == "1.5"
    assert root_row["resource_attributes"]["res.seq"] == '["x","y"]'
    assert root_row["resource_attributes"]["telemetry.sdk.language"] == "python"
    assert root_row["events"] == [
        {"time": T0 + 1_000, "name": "cache.miss", "attributes": {"key": "user:1", "attempt": "2", "ok": "false"},
         "dropped_attributes_count": 0},
        {"time": T0 + 2_000, "name": "retry", "attributes": {}, "dropped_attributes_count": 0},
    ]
    assert root_row["links"] == [
        {
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            # The Python SDK does not encode a link's trace state; flags: has-remote + is-remote.
            "trace_state": None,
            "flags": 0x300,
            "attributes": {"link.kind": "follows", "link.n": "2"},
            "dropped_attributes_count": 0,
        }
    ]
    assert root_row["flags"] == 0x100  # context-has-is-remote, parent not remote
    assert (root_row["dropped_attributes_count"], root_row["dropped_events_count"], root_row["dropped_links_count"]) == (0, 0, 0)

    child_row = by_id[format(child.get_span_context().span_id, "016x")]
    assert child_row["parent_span_id"] == format(root.get_span_context().span_id, "016x")
    assert child_row["trace_id"] == root_row["trace_id"]
    assert child_row["time"] == T0 + 10_000 and child_row["duration_ns"] == 10_000
    assert child_row["attributes"] == {"db.system": "postgresql"}
    assert child_row["status_code"] == "unset" and child_row["status_message"] is None

    limited_row = by_id[format(limited.get_span_context().span_id, "016x")]
    assert limited_row["dropped_attributes_count"] == 4
    assert len(limited_row["attributes"]) == 16
    assert limited_row["dropped_events_count"] == 2
    assert [e["name"] for e in limited_row["events"]] == ["e2", "e3", "e4"]
    assert all(e["dropped_attributes_count"] == 3 for e in limited_row["events"])
    assert limited_row["dropped_links_count"] == 2
    assert [ln["dropped_attributes_count"] for ln in limited_row["links"]] == [2, 2]

    producer_row = by_id[format(producer.get_span_context().span_id, "016x")]
    assert producer_row["status_code"] == "ok" and producer_row["status_message"] is None
    consumer_row = by_id[format(consumer.get_span_context().span_id, "016x")]
    assert consumer_row["parent_span_id"] == producer_row["span_id"]


# ---------------------------------------------------------------------------------------- logs


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_roundtrip(node, tenant, transport):
    exporter = make_exporter("logs", node, transport, tenant)
    provider = LoggerProvider(
        resource=Resource.create(RESOURCE_ATTRS),
        log_record_limits=LogRecordLimits(max_log_record_attributes=16),
        shutdown_on_exit=False,
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    otel_logger = provider.get_logger("e2e.logger", "0.9.1")

    tracer_provider = TracerProvider()
    tracer = tracer_provider.get_tracer("e2e.log-tracer")

    log_attrs = dict(TYPED_ATTRS)
    log_attrs["bytes"] = b"\x00\x01\xfe"
    otel_logger.emit(
        timestamp=T0,
        observed_timestamp=T0 + 5,
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body="cache is cold",
        attributes=log_attrs,
        event_name="e2e.cache.cold",
    )
    with tracer.start_as_current_span("log-parent") as parent:
        otel_logger.emit(
            timestamp=T0 + 100,
            severity_number=SeverityNumber.ERROR2,
            severity_text="ERROR2",
            body="inside a span",
            attributes={"n": 1},
        )
    otel_logger.emit(
        timestamp=T0 + 200,
        severity_number=SeverityNumber.INFO,
        body={"msg": "structured", "count": 3, "tags": ["a", "b"]},
    )
    otel_logger.emit(timestamp=T0 + 300, severity_number=SeverityNumber.DEBUG, body="over limits",
                     attributes={f"k{i}": i for i in range(20)})

    # Through the standard library logging module.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    py_logger = logging.getLogger(f"e2e.stdlib.{tenant}")
    py_logger.propagate = False
    py_logger.setLevel(logging.DEBUG)
    py_logger.addHandler(handler)
    try:
        py_logger.error("stdlib says %s", "hello", extra={"user.id": 17})
    finally:
        py_logger.removeHandler(handler)

    provider.shutdown()
    tracer_provider.shutdown()

    assert exporter.results and all(r == LogRecordExportResult.SUCCESS for r in exporter.results), exporter.results
    records = [r for batch in exporter.batches for r in batch]
    assert len(records) == 5

    rows = normalize_rows(node.sql("SELECT * FROM logs ORDER BY time, observed_time", tenant=tenant))
    expected = sorted(expected_log_rows(encode_logs(records)), key=lambda r: (r["time"], r["observed_time"]))
    assert rows == expected

    by_body = {r["body"]: r for r in rows}
    first = by_body["cache is cold"]
    assert first["time"] == T0 and first["observed_time"] == T0 + 5
    assert first["severity_number"] == 13 and first["severity_text"] == "WARN"
    assert first["event_name"] == "e2e.cache.cold"
    assert first["attributes"] == {**TYPED_TEXT, "bytes": "AAH+"}
    assert first["trace_id"] is None and first["span_id"] is None and first["flags"] == 0
    assert first["scope_name"] == "e2e.logger" and first["scope_version"] == "0.9.1"
    assert first["service_name"] == "e2e-sdk-svc"
    assert first["resource_attributes"]["res.seq"] == '["x","y"]'

    inside = by_body["inside a span"]
    ctx = parent.get_span_context()
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    # The W3C trace flags of the span context (sampled, and "random" with this SDK).
    assert inside["flags"] == int(ctx.trace_flags) and inside["flags"] & 1 == 1
    assert inside["severity_number"] == 18 and inside["severity_text"] == "ERROR2"
    assert inside["event_name"] is None
    assert inside["attributes"] == {"n": "1"}

    structured = [r for r in rows if r["severity_number"] == 9][0]
    assert json.loads(structured["body"]) == {"msg": "structured", "count": 3, "tags": ["a", "b"]}
    assert structured["body"] == '{"msg":"structured","count":3,"tags":["a","b"]}'
    assert structured["severity_text"] == ""

    over = by_body["over limits"]
    assert over["dropped_attributes_count"] == 4 and len(over["attributes"]) == 16

    stdlib = by_body["stdlib says hello"]
    assert stdlib["severity_number"] == 17 and stdlib["severity_text"] == "ERROR"
    assert stdlib["scope_name"] == f"e2e.stdlib.{tenant}"
    assert stdlib["attributes"]["user.id"] == "17"
    assert stdlib["attributes"]["code.function.name"] == "test_logs_roundtrip"
    sdk_record = [r for r in records if r.log_record.body == "stdlib says hello"][0]
    assert stdlib["time"] == sdk_record.log_record.timestamp
    assert stdlib["observed_time"] == sdk_record.log_record.observed_timestamp


# ---------------------------------------------------------------------------------------- metrics


def _metric_key(row):
    return (row["metric_name"], json.dumps(row["attributes"], sort_keys=True), row["time"])


def _metric_rows(node, tenant):
    rows = normalize_rows(node.sql("SELECT * FROM metrics", tenant=tenant))
    return sorted(rows, key=_metric_key)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_roundtrip(node, tenant, transport):
    exporter = make_exporter("metrics", node, transport, tenant)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create(RESOURCE_ATTRS),
        metric_readers=[reader],
        views=[
            # Instruments no view matches keep their default aggregation.
            View(instrument_name="e2e.exp_hist", aggregation=ExponentialBucketHistogramAggregation(max_size=160)),
        ],
        shutdown_on_exit=False,
    )
    meter = provider.get_meter("e2e.meter", "3.2.1")
    tracer_provider = TracerProvider()
    tracer = tracer_provider.get_tracer("e2e.metrics-tracer")

    counter = meter.create_counter("e2e.counter", unit="1", description="requests")
    counter.add(5, {"route": "/a"})
    counter.add(3, {"route": "/a"})
    counter.add(2, {"route": "/b", "code": 200, "ok": True})
    fcounter = meter.create_counter("e2e.fcounter", unit="s")
    fcounter.add(1.5)
    updown = meter.create_up_down_counter("e2e.updown", description="queue depth")
    updown.add(10)
    updown.add(-4)
    meter.create_observable_counter("e2e.obs_counter", callbacks=[lambda _o: [Observation(100, {"cpu": "0"})]])
    meter.create_observable_up_down_counter("e2e.obs_updown", callbacks=[lambda _o: [Observation(-3)]])
    meter.create_observable_gauge("e2e.obs_gauge", callbacks=[lambda _o: [Observation(42.5, {"host": "h1"})]],
                                  unit="Cel")
    gauge = meter.create_gauge("e2e.gauge")
    gauge.set(7, {"pool": "p"})
    hist = meter.create_histogram("e2e.hist", unit="ms", description="latency")
    for v in (1, 5, 50, 500, 7.5):
        hist.record(v, {"route": "/a"})
    exp_hist = meter.create_histogram("e2e.exp_hist", unit="By")
    for v in (0, 1.5, 3, 300, 300):
        exp_hist.record(v)
    # Exemplars: measurements inside a sampled span (trace_based exemplar filter).
    with tracer.start_as_current_span("exemplar-span") as ex_span:
        counter.add(1, {"route": "/ex"})
        hist.record(42, {"route": "/ex"})

    provider.shutdown()  # one final collection and export
    tracer_provider.shutdown()
    assert exporter.results and all(r == MetricExportResult.SUCCESS for r in exporter.results), exporter.results

    sent = [encode_metrics(b) for b in exporter.batches]
    expected = []
    for req in sent:
        expected += expected_metric_rows(req)
    expected.sort(key=_metric_key)
    rows = _metric_rows(node, tenant)
    series = [r.pop("series") for r in rows]
    assert rows == expected
    assert all(isinstance(s, int) and 0 <= s < 2**64 for s in series)

    def one(name, **attrs):
        matches = [r for r in rows if r["metric_name"] == name and
                   all(r["attributes"].get(k) == v for k, v in attrs.items())]
        assert len(matches) == 1, (name, attrs, matches)
        return matches[0]

    c = one("e2e.counter", route="/a")
    assert (c["metric_type"], c["value"], c["is_monotonic"], c["aggregation_temporality"]) == ("sum", 8.0, True, "cumulative")
    assert c["unit"] == "1" and c["description"] == "requests"
    assert c["scope_name"] == "e2e.meter" and c["scope_version"] == "3.2.1"
    assert c["service_name"] == "e2e-sdk-svc"
    assert c["start_time"] is not None and c["start_time"] <= c["time"]
    assert c["count"] is None and c["bucket_counts"] is None and c["quantiles"] is None
    assert one("e2e.counter", route="/b")["attributes"] == {"route": "/b", "code": "200", "ok": "true"}
    assert one("e2e.counter", route="/b")["value"] == 2.0
    assert one("e2e.fcounter")["value"] == 1.5
    ud = one("e2e.updown")
    assert (ud["metric_type"], ud["value"], ud["is_monotonic"], ud["aggregation_temporality"]) == ("sum", 6.0, False, "cumulative")
    oc = one("e2e.obs_counter")
    assert (oc["metric_type"], oc["value"], oc["is_monotonic"]) == ("sum", 100.0, True)
    ou = one("e2e.obs_updown")
    assert (ou["metric_type"], ou["value"], ou["is_monotonic"]) == ("sum", -3.0, False)
    og = one("e2e.obs_gauge")
    assert (og["metric_type"], og["value"], og["unit"], og["attributes"]) == ("gauge", 42.5, "Cel", {"host": "h1"})
    assert og["aggregation_temporality"] is None and og["is_monotonic"] is None
    g = one("e2e.gauge")
    assert (g["metric_type"], g["value"]) == ("gauge", 7.0)

    h = one("e2e.hist", route="/a")
    assert h["metric_type"] == "histogram" and h["aggregation_temporality"] == "cumulative"
    assert h["count"] == 5 and h["sum"] == 563.5 and h["min"] == 1.0 and h["max"] == 500.0
    assert h["explicit_bounds"] == [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                                    2500.0, 5000.0, 7500.0, 10000.0]
    assert h["bucket_counts"] == [0, 2, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert h["value"] is None and h["scale"] is None and h["is_monotonic"] is None

    e = one("e2e.exp_hist")
    assert e["metric_type"] == "exponential_histogram" and e["aggregation_temporality"] == "cumulative"
    assert e["count"] == 5 and e["sum"] == 604.5 and e["min"] == 0.0 and e["max"] == 300.0
    assert e["zero_count"] == 1
    assert sum(e["positive_bucket_counts"]) == 4
    assert e["bucket_counts"] is None and e["explicit_bounds"] is None
    sdk_point = [m for req in sent for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                 if m.name == "e2e.exp_hist"][0].exponential_histogram.data_points[0]
    assert sum(e["negative_bucket_counts"]) == 0
    assert e["negative_offset"] == sdk_point.negative.offset
    assert e["negative_bucket_counts"] == list(sdk_point.negative.bucket_counts)
    assert e["zero_threshold"] == sdk_point.zero_threshold
    assert e["scale"] == sdk_point.scale
    assert e["positive_offset"] == sdk_point.positive.offset
    assert e["positive_bucket_counts"] == list(sdk_point.positive.bucket_counts)

    # Exemplars (SCHEMA.md: every exemplar of a point is kept, in order).
    ctx = ex_span.get_span_context()
    for name, value in (("e2e.counter", 1.0), ("e2e.hist", 42.0)):
        row = one(name, route="/ex")
        assert len(row["exemplars"]) == 1, row["exemplars"]
        ex = row["exemplars"][0]
        assert ex["trace_id"] == format(ctx.trace_id, "032x")
        assert ex["span_id"] == format(ctx.span_id, "016x")
        assert ex["value"] == value
        assert ex["filtered_attributes"] == {}
        assert ex["time"] > 0

    # The same series id for the same resource, name and attributes; different otherwise.
    by_name = {}
    for r, s in zip(rows, series):
        by_name.setdefault((r["metric_name"], json.dumps(r["attributes"], sort_keys=True)), set()).add(s)
    assert all(len(v) == 1 for v in by_name.values())
    assert len({next(iter(v)) for v in by_name.values()}) == len(by_name)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_delta_temporality(node, tenant, transport):
    exporter = make_exporter(
        "metrics", node, transport, tenant,
        preferred_temporality={
            Counter: AggregationTemporality.DELTA,
            UpDownCounter: AggregationTemporality.DELTA,
            Histogram: AggregationTemporality.DELTA,
            ObservableCounter: AggregationTemporality.DELTA,
            ObservableUpDownCounter: AggregationTemporality.DELTA,
            ObservableGauge: AggregationTemporality.DELTA,
        },
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "delta-svc"}), metric_readers=[reader],
                             shutdown_on_exit=False)
    meter = provider.get_meter("e2e.delta")
    counter = meter.create_counter("d.counter")
    hist = meter.create_histogram("d.hist")
    counter.add(5)
    hist.record(10)
    assert provider.force_flush()
    counter.add(3)
    hist.record(20)
    hist.record(30)
    provider.shutdown()
    assert exporter.results and all(r == MetricExportResult.SUCCESS for r in exporter.results), exporter.results
    assert len(exporter.batches) == 2

    expected = []
    for b in exporter.batches:
        expected += expected_metric_rows(encode_metrics(b))
    expected.sort(key=_metric_key)
    rows = _metric_rows(node, tenant)
    for r in rows:
        r.pop("series")
    assert rows == expected

    counters = [r for r in rows if r["metric_name"] == "d.counter"]
    assert [(r["value"], r["aggregation_temporality"], r["is_monotonic"]) for r in counters] == [
        (5.0, "delta", True), (3.0, "delta", True)]
    # Delta points: each starts where the previous one ended.
    assert counters[1]["start_time"] == counters[0]["time"]
    hists = [r for r in rows if r["metric_name"] == "d.hist"]
    assert [(r["count"], r["sum"], r["min"], r["max"], r["aggregation_temporality"]) for r in hists] == [
        (1, 10.0, 10.0, 10.0, "delta"), (2, 50.0, 20.0, 30.0, "delta")]


def test_summary_roundtrip_raw_protobuf(node, tenant):
    """The SDK cannot produce summaries: a raw ExportMetricsServiceRequest over HTTP protobuf."""
    point = metrics_pb2.SummaryDataPoint(
        start_time_unix_nano=T0,
        time_unix_nano=T0 + 60_000_000_000,
        count=12,
        sum=345.75,
        attributes=[],
        quantile_values=[
            metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.0, value=1.5),
            metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=20.25),
            metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=99.125),
            metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=1.0, value=120.0),
        ],
    )
    from helpers import kvs

    point.attributes.extend(kvs({"handler": "/api"}))
    summary = metrics_pb2.Metric(name="rpc.duration", unit="ms", description="rpc latency",
                                 summary=metrics_pb2.Summary(data_points=[point]))
    req = metrics_request([summary], service="summary-svc")
    export_ok(node, "/v1/metrics", req, tenant=tenant)

    rows = normalize_rows(node.sql("SELECT * FROM metrics", tenant=tenant))
    for r in rows:
        r.pop("series")
    assert rows == expected_metric_rows(req)
    row = rows[0]
    assert row["metric_type"] == "summary"
    assert row["count"] == 12 and row["sum"] == 345.75
    assert row["quantiles"] == [
        {"quantile": 0.0, "value": 1.5},
        {"quantile": 0.5, "value": 20.25},
        {"quantile": 0.99, "value": 99.125},
        {"quantile": 1.0, "value": 120.0},
    ]
    assert row["start_time"] == T0 and row["time"] == T0 + 60_000_000_000
    assert row["exemplars"] == [] and row["value"] is None and row["aggregation_temporality"] is None
    assert row["min"] is None and row["max"] is None and row["bucket_counts"] is None
    assert row["attributes"] == {"handler": "/api"}
    # The quantile values are reachable from SQL too.
    q = node.sql("SELECT quantiles[3]['value'] AS p99 FROM metrics WHERE metric_type = 'summary'", tenant=tenant)
    assert q == [{"p99": 99.125}]
    assert ts_ns(node.sql("SELECT time FROM metrics", tenant=tenant)[0]["time"]) == T0 + 60_000_000_000


def test_metrics_raw_protobuf_optional_fields(node, tenant):
    """Optional histogram fields absent, absent exponential buckets, exemplar kinds, flags, NaN."""
    from helpers import kvs, number_point

    hist = metrics_pb2.Metric(name="raw.hist", histogram=metrics_pb2.Histogram(
        aggregation_temporality=1,
        data_points=[
            # No sum, min or max; no buckets; "no recorded value" flag.
            metrics_pb2.HistogramDataPoint(time_unix_nano=T0, count=0, flags=1),
            metrics_pb2.HistogramDataPoint(
                time_unix_nano=T0 + 1, start_time_unix_nano=T0 - 1, count=3, sum=-1.5,
                bucket_counts=[1, 0, 2], explicit_bounds=[-1.0, 1.0],
                exemplars=[
                    metrics_pb2.Exemplar(time_unix_nano=T0, as_int=-7, span_id=bytes.fromhex("0102030405060708"),
                                         trace_id=bytes.fromhex("0102030405060708090a0b0c0d0e0f10")),
                    metrics_pb2.Exemplar(time_unix_nano=T0 + 1, as_double=0.5,
                                         filtered_attributes=kvs({"user": "u", "n": 3})),
                    metrics_pb2.Exemplar(time_unix_nano=T0 + 2),  # no value
                ]),
        ]))
    exp = metrics_pb2.Metric(name="raw.exp", exponential_histogram=metrics_pb2.ExponentialHistogram(
        aggregation_temporality=2,
        data_points=[metrics_pb2.ExponentialHistogramDataPoint(time_unix_nano=T0, count=2, zero_count=2, scale=3)]))
    gauge = metrics_pb2.Metric(name="raw.gauge", gauge=metrics_pb2.Gauge(data_points=[
        number_point(float("nan"), time_ns=T0),
        number_point(2**53 + 1, time_ns=T0 + 1),
        number_point(-0.0, time_ns=T0 + 2),
    ]))
    unspecified = metrics_pb2.Metric(name="raw.sum", sum=metrics_pb2.Sum(
        aggregation_temporality=0, is_monotonic=False, data_points=[number_point(3, time_ns=T0)]))
    req = metrics_request([hist, exp, gauge, unspecified], service="raw-svc")
    export_ok(node, "/v1/metrics", req, tenant=tenant)
    rows = normalize_rows(node.sql("SELECT * FROM metrics ORDER BY metric_name, time", tenant=tenant))
    for r in rows:
        r.pop("series")
    expected = sorted(expected_metric_rows(req), key=lambda r: (r["metric_name"], r["time"]))
    # NaN != NaN: compare the gauge's NaN separately.
    nan_rows = [(a, e) for a, e in zip(rows, expected) if e["value"] is not None and e["value"] != e["value"]]
    assert len(nan_rows) == 1 and nan_rows[0][0]["value"] == "NaN"
    nan_rows[0][0]["value"] = nan_rows[0][1]["value"] = None
    assert rows == expected

    by = {(r["metric_name"], r["time"]): r for r in rows}
    empty = by[("raw.hist", T0)]
    assert (empty["sum"], empty["min"], empty["max"], empty["flags"]) == (None, None, None, 1)
    assert empty["bucket_counts"] == [] and empty["explicit_bounds"] == [] and empty["start_time"] is None
    full = by[("raw.hist", T0 + 1)]
    assert full["exemplars"] == [
        {"time": T0, "value": -7.0, "trace_id": "0102030405060708090a0b0c0d0e0f10",
         "span_id": "0102030405060708", "filtered_attributes": {}},
        {"time": T0 + 1, "value": 0.5, "trace_id": None, "span_id": None,
         "filtered_attributes": {"user": "u", "n": "3"}},
        {"time": T0 + 2, "value": None, "trace_id": None, "span_id": None, "filtered_attributes": {}},
    ]
    e = by[("raw.exp", T0)]
    assert (e["scale"], e["zero_count"], e["positive_offset"], e["positive_bucket_counts"],
            e["negative_offset"], e["negative_bucket_counts"], e["sum"]) == (3, 2, 0, [], 0, [], None)
    assert by[("raw.gauge", T0 + 1)]["value"] == float(2**53)
    assert by[("raw.sum", T0)]["aggregation_temporality"] == "unspecified"


def test_metric_series_ids(node, tenant):
    """One series per (resource attributes, metric name, point attributes), whatever their order."""
    from helpers import grpc_channel, grpc_raw_call, kvs, METRICS_GRPC
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    def request(name, point_attrs, resource_attrs, time_ns, scope=("s", "1")):
        req = metrics_pb2.Metric(name=name, gauge=metrics_pb2.Gauge(data_points=[
            metrics_pb2.NumberDataPoint(time_unix_nano=time_ns, as_int=1, attributes=kvs(point_attrs))]))
        out = metrics_request([req], service=None, scope=scope)
        out.resource_metrics[0].resource.attributes.extend(kvs(resource_attrs))
        return out

    res = {"service.name": "series-svc", "host": "h1"}
    export_ok(node, "/v1/metrics", request("m", {"a": "1", "b": 2}, res, T0), tenant)
    # Same series: attributes in other orders, another scope, over gRPC.
    export_ok(node, "/v1/metrics", request("m", {"b": 2, "a": "1"}, dict(reversed(list(res.items()))), T0 + 1,
                                           scope=("other", "2")), tenant)
    with grpc_channel(node) as ch:
        raw = grpc_raw_call(ch, METRICS_GRPC, request("m", {"a": "1", "b": 2}, res, T0 + 2).SerializeToString(),
                            tenant=tenant)
    assert not metrics_service_pb2.ExportMetricsServiceResponse.FromString(raw).HasField("partial_success")
    # Other series: another name, point attribute value, point attribute type, resource.
    export_ok(node, "/v1/metrics", request("m2", {"a": "1", "b": 2}, res, T0 + 3), tenant)
    export_ok(node, "/v1/metrics", request("m", {"a": "1", "b": 3}, res, T0 + 4), tenant)
    export_ok(node, "/v1/metrics", request("m", {"a": "1"}, res, T0 + 5), tenant)
    export_ok(node, "/v1/metrics", request("m", {"a": "1", "b": 2}, {**res, "host": "h2"}, T0 + 6), tenant)
    # The split between resource and point attributes is part of the identity.
    export_ok(node, "/v1/metrics", request("m", {"a": "1", "b": 2, "host": "h1"}, {"service.name": "series-svc"},
                                           T0 + 7), tenant)
    rows = normalize_rows(node.sql("SELECT time, series FROM metrics ORDER BY time", tenant=tenant))
    series = [r["series"] for r in rows]
    assert len(series) == 8
    assert series[0] == series[1] == series[2]
    assert len(set(series[2:])) == 6, series
    # Stable: the same again later gets the same id.
    export_ok(node, "/v1/metrics", request("m", {"a": "1", "b": 2}, res, T0 + 8), tenant)
    again = node.sql(f"SELECT series FROM metrics WHERE time = '{ns_to_rfc3339(T0 + 8)}'", tenant=tenant)
    assert again == [{"series": series[0]}]
