"""Bad input gets the prescribed status, and the node keeps serving afterwards."""

from __future__ import annotations

import gzip
import json
import time

import grpc
import pytest
import requests

from helpers import (
    HOUR10_NS,
    LOGS_GRPC,
    METRICS_GRPC,
    TRACES_GRPC,
    decode_status,
    export_ok,
    gauge_metric,
    grpc_channel,
    grpc_raw_call,
    log_record,
    logs_request,
    metric_value,
    metrics_request,
    number_point,
    parse_metrics,
    post_protobuf,
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
)
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

SMALL_LIMIT = 64 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

SIGNALS = {
    "traces": ("/v1/traces", TRACES_GRPC, trace_service_pb2.ExportTraceServiceResponse),
    "logs": ("/v1/logs", LOGS_GRPC, logs_service_pb2.ExportLogsServiceResponse),
    "metrics": ("/v1/metrics", METRICS_GRPC, metrics_service_pb2.ExportMetricsServiceResponse),
}


def sample_request(signal: str, name: str = "sample", pad: int = 0):
    attrs = {"pad": "p" * pad} if pad else None
    if signal == "traces":
        return traces_request([span(rand_trace_id(), rand_span_id(), name=name, attrs=attrs)])
    if signal == "logs":
        return logs_request([log_record(name, attrs=attrs)])
    return metrics_request([gauge_metric(name, [number_point(1.5, attrs=attrs)])])


@pytest.fixture(scope="module")
def small_node(module_nodes):
    """A node that accepts request bodies of at most 64 KiB."""
    return module_nodes.start("--max-body-bytes", str(SMALL_LIMIT))


def assert_still_serving(node):
    """A good export over HTTP and gRPC is stored and queryable."""
    tenant = unique_tenant("alive")
    export_ok(node, "/v1/traces", traces_request([span(rand_trace_id(), rand_span_id(), name="alive-http")]), tenant)
    with grpc_channel(node) as ch:
        raw = grpc_raw_call(ch, TRACES_GRPC, traces_request(
            [span(rand_trace_id(), rand_span_id(), name="alive-grpc")]).SerializeToString(), tenant=tenant)
    assert not trace_service_pb2.ExportTraceServiceResponse.FromString(raw).HasField("partial_success")
    assert node.sql("SELECT name FROM spans ORDER BY name", tenant=tenant) == [
        {"name": "alive-grpc"}, {"name": "alive-http"}]


def truncated(message) -> bytes:
    data = message.SerializeToString()
    cut = data[: len(data) - 3]
    with pytest.raises(Exception):
        type(message).FromString(cut)  # really undecodable
    return cut


def assert_nothing_stored(node, tenant, signal: str):
    table = "spans" if signal == "traces" else signal
    assert node.sql(f"SELECT count(*) AS n FROM {table}", tenant=tenant) == [{"n": 0}]


# Bodies over 256 KiB are decoded off the I/O threads; their errors are the same.
SIZES = pytest.mark.parametrize("pad", [0, 300_000], ids=["small", "over-256KiB"])


# ------------------------------------------------------------------------------ undecodable bodies


@SIZES
@pytest.mark.parametrize("signal", list(SIGNALS))
def test_truncated_protobuf_http_400(node, tenant, signal, pad):
    path = SIGNALS[signal][0]
    body = truncated(sample_request(signal, pad=pad))
    assert pad == 0 or len(body) > 256 * 1024
    r = node.post_otlp(path, body, PROTOBUF, tenant=tenant)
    assert r.status_code == 400
    assert r.headers["Content-Type"] == PROTOBUF
    status = decode_status(r.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message
    assert_nothing_stored(node, tenant, signal)
    assert_still_serving(node)


@pytest.mark.parametrize("signal", list(SIGNALS))
@pytest.mark.parametrize("body", [
    '{"resourceSpans": [',
    "not json at all",
    '{"resourceSpans": 5, "resourceLogs": 5, "resourceMetrics": 5}',
    '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "0102030405060708"}]}]}],'
    ' "resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}],'
    ' "resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": {"dataPoints": [{"asInt": "1.5"}]}}]}]}]}',
])
def test_invalid_json_http_400(node, tenant, signal, body):
    r = node.post_otlp(SIGNALS[signal][0], body.encode(), JSON, tenant=tenant)
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"] == JSON
    status = r.json()
    assert set(status) == {"code", "message"}
    assert status["code"] == 3 and isinstance(status["message"], str) and status["message"]
    assert_still_serving(node)


def test_truncated_protobuf_gzip_http_400(node, tenant):
    body = gzip.compress(truncated(sample_request("traces")))
    r = node.post_otlp("/v1/traces", body, PROTOBUF, tenant=tenant, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert decode_status(r.content).code == 3


def test_corrupt_gzip_http_400(node, tenant):
    body = gzip.compress(sample_request("traces").SerializeToString())
    r = node.post_otlp("/v1/traces", body[:-12], PROTOBUF, tenant=tenant, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert decode_status(r.content).code == 3
    r = node.post_otlp("/v1/traces", b"this is not gzip", PROTOBUF, tenant=tenant, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert_still_serving(node)


# ------------------------------------------------------------------------------ content type and encoding


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/grpc", None])
def test_unsupported_content_type_415(node, tenant, content_type):
    body = sample_request("traces").SerializeToString()
    headers = {"X-Scope-OrgID": tenant}
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = requests.post(node.otlp_url + "/v1/traces", data=body, headers=headers, timeout=30)
    assert r.status_code == 415, (content_type, r.status_code, r.text)
    assert node.sql("SELECT count(*) AS n FROM spans", tenant=tenant) == [{"n": 0}]
    assert_still_serving(node)


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd"])
def test_unsupported_content_encoding_415(node, tenant, encoding):
    body = sample_request("traces").SerializeToString()
    r = node.post_otlp("/v1/traces", body, PROTOBUF, tenant=tenant, headers={"Content-Encoding": encoding})
    assert r.status_code == 415, (encoding, r.status_code)
    r = node.post_otlp("/v1/logs", b"{}", JSON, tenant=tenant, headers={"Content-Encoding": encoding})
    assert r.status_code == 415, (encoding, r.status_code)
    assert_still_serving(node)


# ------------------------------------------------------------------------------ size limits

_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """~50 KB of gzip that inflates to 50 MiB (past the default 20 MiB limit)."""
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
        assert len(_BOMB) < 100 * 1024
    return _BOMB


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_gzip_bomb_413(node, tenant, content_type):
    r = node.post_otlp("/v1/traces", gzip_bomb(), content_type, tenant=tenant, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413, (r.status_code, r.content[:200])
    assert_still_serving(node)


def _exact_size_request(size: int):
    """A valid traces request whose protobuf encoding is exactly ``size`` bytes."""
    pad = size - len(sample_request("traces").SerializeToString())
    for _ in range(20):
        req = sample_request("traces", name="exact", pad=pad)
        n = len(req.SerializeToString())
        if n == size:
            return req
        pad += size - n
    raise AssertionError("could not build a request of the exact size")


def test_plain_body_over_limit_413(small_node, tenant):
    at_limit = _exact_size_request(SMALL_LIMIT)
    over = _exact_size_request(SMALL_LIMIT + 1)
    r = small_node.post_otlp("/v1/traces", over.SerializeToString(), PROTOBUF, tenant=tenant)
    assert r.status_code == 413
    assert decode_status(r.content).code == 8  # RESOURCE_EXHAUSTED
    # A much larger body, not even valid: the size decides first.
    r = small_node.post_otlp("/v1/traces", b"\x0a" * (4 * SMALL_LIMIT), PROTOBUF, tenant=tenant)
    assert r.status_code == 413
    r = small_node.post_otlp("/v1/logs", b"[" * (SMALL_LIMIT + 10), JSON, tenant=tenant)
    assert r.status_code == 413
    assert r.json()["code"] == 8
    # Exactly at the limit is accepted.
    r = small_node.post_otlp("/v1/traces", at_limit.SerializeToString(), PROTOBUF, tenant=tenant)
    assert r.status_code == 200, r.content
    assert small_node.sql("SELECT name FROM spans", tenant=tenant) == [{"name": "exact"}]
    assert_still_serving(small_node)


def test_gzip_body_inflating_past_small_limit_413(small_node, tenant):
    over = _exact_size_request(SMALL_LIMIT + 1).SerializeToString()
    compressed = gzip.compress(over)
    assert len(compressed) < SMALL_LIMIT // 10
    r = small_node.post_otlp("/v1/traces", compressed, PROTOBUF, tenant=tenant, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413
    at_limit = gzip.compress(_exact_size_request(SMALL_LIMIT).SerializeToString())
    r = small_node.post_otlp("/v1/traces", at_limit, PROTOBUF, tenant=tenant, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert small_node.sql("SELECT name FROM spans", tenant=tenant) == [{"name": "exact"}]


def test_chunked_body_over_limit_413(small_node, tenant):
    payload = _exact_size_request(SMALL_LIMIT + 1).SerializeToString()
    r = requests.post(small_node.otlp_url + "/v1/traces", data=iter([payload[:1000], payload[1000:]]),
                      headers={"Content-Type": PROTOBUF, "X-Scope-OrgID": tenant}, timeout=30)
    assert "Content-Length" not in r.request.headers
    assert r.status_code == 413
    assert_still_serving(small_node)


# ------------------------------------------------------------------------------ gRPC


@SIZES
@pytest.mark.parametrize("signal", list(SIGNALS))
def test_truncated_protobuf_grpc_invalid_argument(node, tenant, signal, pad):
    body = truncated(sample_request(signal, pad=pad))
    assert pad == 0 or len(body) > 256 * 1024
    with grpc_channel(node) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            grpc_raw_call(ch, SIGNALS[signal][1], body, tenant=tenant)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.value.code(), exc.value.details())
    assert "invalid protobuf" in exc.value.details()
    assert_nothing_stored(node, tenant, signal)
    assert_still_serving(node)


def test_grpc_unknown_method_unimplemented(node):
    with grpc_channel(node) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            grpc_raw_call(ch, "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export", b"")
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert_still_serving(node)


@pytest.mark.parametrize("signal", list(SIGNALS))
def test_oversized_grpc_resource_exhausted(small_node, tenant, signal):
    big = sample_request(signal, pad=SMALL_LIMIT * 2).SerializeToString()
    with grpc_channel(small_node) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            grpc_raw_call(ch, SIGNALS[signal][1], big, tenant=tenant)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (exc.value.code(), exc.value.details())
    assert_still_serving(small_node)


@pytest.mark.parametrize("signal", list(SIGNALS))
def test_oversized_gzip_grpc_resource_exhausted(small_node, tenant, signal):
    """Compressed well under the limit, but over it once inflated."""
    big = sample_request(signal, pad=SMALL_LIMIT * 4).SerializeToString()
    assert len(gzip.compress(big)) < SMALL_LIMIT // 10
    with grpc_channel(small_node) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            grpc_raw_call(ch, SIGNALS[signal][1], big, tenant=tenant, compression=grpc.Compression.Gzip)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (exc.value.code(), exc.value.details())
    assert_nothing_stored(small_node, tenant, signal)
    assert_still_serving(small_node)


def test_gzip_grpc_under_limit_accepted(small_node, tenant):
    req = sample_request("traces", name="gz-grpc", pad=SMALL_LIMIT // 2)
    with grpc_channel(small_node) as ch:
        raw = grpc_raw_call(ch, TRACES_GRPC, req.SerializeToString(), tenant=tenant,
                            compression=grpc.Compression.Gzip)
    assert not trace_service_pb2.ExportTraceServiceResponse.FromString(raw).HasField("partial_success")
    assert small_node.sql("SELECT name, length(attributes['pad']) AS n FROM spans", tenant=tenant) == [
        {"name": "gz-grpc", "n": SMALL_LIMIT // 2}]


# ------------------------------------------------------------------------------ partial success


def _bad_spans_request():
    good1, good2 = rand_span_id(), rand_span_id()
    tid = rand_trace_id()
    spans = [
        span(tid, good1, name="good-1"),
        span(rand_trace_id()[:15], rand_span_id(), name="bad-trace-15"),
        span(tid, rand_span_id()[:7], name="bad-span-7"),
        span(b"\0" * 16, rand_span_id(), name="bad-trace-zero"),
        span(tid, b"\0" * 8, name="bad-span-zero"),
        span(tid, rand_span_id(), name="bad-parent-5", parent_span_id=b"\x01\x02\x03\x04\x05"),
        span(tid, rand_span_id(), name="bad-time", start=2**63 + 5, end=2**63 + 10),
        span(b"", rand_span_id(), name="bad-trace-empty"),
        span(tid, good2, name="good-2", parent_span_id=good1),
    ]
    return traces_request(spans), {good1.hex(), good2.hex()}, 7


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_invalid_spans_partial_success(node, tenant, transport):
    req, good_ids, bad = _bad_spans_request()
    if transport == "http":
        r = post_protobuf(node, "/v1/traces", req, tenant=tenant)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == PROTOBUF
        resp = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    else:
        with grpc_channel(node) as ch:
            resp = trace_service_pb2.ExportTraceServiceResponse.FromString(
                grpc_raw_call(ch, TRACES_GRPC, req.SerializeToString(), tenant=tenant))
    assert resp.HasField("partial_success")
    assert resp.partial_success.rejected_spans == bad
    assert "trace_id" in resp.partial_success.error_message
    rows = node.sql("SELECT span_id, name FROM spans ORDER BY name", tenant=tenant)
    assert rows == sorted(
        [{"span_id": s, "name": n} for s, n in zip(
            [s.span_id.hex() for s in req.resource_spans[0].scope_spans[0].spans if s.name.startswith("good")],
            ["good-1", "good-2"])], key=lambda r: r["name"])
    assert {r["span_id"] for r in rows} == good_ids


def test_invalid_spans_partial_success_json(node, tenant):
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "ok",
         "startTimeUnixNano": str(HOUR10_NS), "endTimeUnixNano": str(HOUR10_NS)},
        {"traceId": "5b8efff798038103d269b633813fc6", "spanId": "eee19b7ec3c1b174", "name": "bad15"},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b1", "name": "bad7"},
        {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b174", "name": "zero"},
    ]}]}]}
    r = node.post_otlp("/v1/traces", json.dumps(body).encode(), JSON, tenant=tenant)
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == "3" and ps["errorMessage"]
    assert node.sql("SELECT name FROM spans", tenant=tenant) == [{"name": "ok"}]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_invalid_log_records_partial_success(node, tenant, transport):
    good_trace, good_span = rand_trace_id(), rand_span_id()
    req = logs_request([
        log_record("good-with-ids", trace_id=good_trace, span_id=good_span),
        log_record("bad-trace-15", trace_id=rand_trace_id()[:15]),
        log_record("bad-span-7", span_id=rand_span_id()[:7]),
        log_record("bad-trace-zero", trace_id=b"\0" * 16),
        log_record("bad-time", time_ns=2**63 + 1),
        log_record("good-no-ids", time_ns=HOUR10_NS + 1),
    ])
    if transport == "http":
        r = post_protobuf(node, "/v1/logs", req, tenant=tenant)
        assert r.status_code == 200
        resp = logs_service_pb2.ExportLogsServiceResponse.FromString(r.content)
    else:
        with grpc_channel(node) as ch:
            resp = logs_service_pb2.ExportLogsServiceResponse.FromString(
                grpc_raw_call(ch, LOGS_GRPC, req.SerializeToString(), tenant=tenant))
    assert resp.HasField("partial_success")
    assert resp.partial_success.rejected_log_records == 4
    assert resp.partial_success.error_message
    assert node.sql("SELECT body, trace_id, span_id FROM logs ORDER BY time", tenant=tenant) == [
        {"body": "good-with-ids", "trace_id": good_trace.hex(), "span_id": good_span.hex()},
        {"body": "good-no-ids", "trace_id": None, "span_id": None},
    ]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_invalid_data_points_partial_success(node, tenant, transport):
    no_value_sum = metrics_pb2.Metric(name="bad_sum", sum=metrics_pb2.Sum(
        aggregation_temporality=2, is_monotonic=True,
        data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=HOUR10_NS),
                     number_point(4, attrs={"ok": True})]))
    req = metrics_request([
        gauge_metric("mixed_gauge", [number_point(1.5), number_point(None), number_point(2, attrs={"k": "v"})]),
        no_value_sum,
        gauge_metric("late_gauge", [number_point(1.0, time_ns=2**63 + 1)]),
        metrics_pb2.Metric(name="no_data_at_all"),
    ])
    if transport == "http":
        r = post_protobuf(node, "/v1/metrics", req, tenant=tenant)
        assert r.status_code == 200
        resp = metrics_service_pb2.ExportMetricsServiceResponse.FromString(r.content)
    else:
        with grpc_channel(node) as ch:
            resp = metrics_service_pb2.ExportMetricsServiceResponse.FromString(
                grpc_raw_call(ch, METRICS_GRPC, req.SerializeToString(), tenant=tenant))
    assert resp.HasField("partial_success")
    assert resp.partial_success.rejected_data_points == 3
    assert "value" in resp.partial_success.error_message
    assert node.sql("SELECT metric_name, value FROM metrics ORDER BY metric_name, value", tenant=tenant) == [
        {"metric_name": "bad_sum", "value": 4.0},
        {"metric_name": "mixed_gauge", "value": 1.5},
        {"metric_name": "mixed_gauge", "value": 2.0},
    ]


# ------------------------------------------------------------------------------ empty requests


@pytest.mark.parametrize("signal", list(SIGNALS))
def test_empty_requests_succeed_without_partial_success(node, tenant, signal):
    path, method, response_type = SIGNALS[signal]
    # Protobuf: an empty body is an empty request.
    r = node.post_otlp(path, b"", PROTOBUF, tenant=tenant)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == PROTOBUF
    assert not response_type.FromString(r.content).HasField("partial_success")
    assert r.content == b""
    # JSON.
    r = node.post_otlp(path, b"{}", JSON, tenant=tenant)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == JSON
    assert r.content == b"{}"
    # Resources without items.
    r = post_protobuf(node, path, sample_request(signal).__class__(**{
        "traces": {"resource_spans": [{}]}, "logs": {"resource_logs": [{}]},
        "metrics": {"resource_metrics": [{}]}}[signal]), tenant=tenant)
    assert r.status_code == 200 and r.content == b""
    # gRPC.
    with grpc_channel(node) as ch:
        raw = grpc_raw_call(ch, method, b"", tenant=tenant)
    assert not response_type.FromString(raw).HasField("partial_success")
    assert_nothing_stored(node, tenant, signal)


# ------------------------------------------------------------------------------ routing


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs", "/v1/metrics"])
def test_get_on_export_path_405(node, path):
    r = requests.get(node.otlp_url + path, timeout=30)
    assert r.status_code == 405
    r = requests.put(node.otlp_url + path, data=b"", headers={"Content-Type": PROTOBUF}, timeout=30)
    assert r.status_code == 405


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/unknown"), ("POST", "/v1/trace"), ("GET", "/"), ("POST", "/v2/traces"),
    ("POST", "/v1/traces/extra"), ("POST", "/v1/profiles"),
])
def test_unknown_path_404(node, method, path):
    r = requests.request(method, node.otlp_url + path, data=b"", headers={"Content-Type": PROTOBUF}, timeout=30)
    assert r.status_code == 404
    assert_still_serving(node)


# ------------------------------------------------------------------------------ self-metrics

FIXED_SIGNALS = {"spans", "logs", "metrics"}
FIXED_TRANSPORTS = {"grpc", "http", "http_protobuf", "http_json"}
FIXED_OUTCOMES = {"ok", "decode", "too_large", "unsupported_media_type", "unsupported_encoding",
                  "invalid_tenant", "internal"}


def test_error_outcomes_counted_with_fixed_labels(node):
    tenant = unique_tenant("selfmetrics")
    before = node.metrics_text()

    def delta(after, labels):
        return (metric_value(after, "strata_ingest_requests_total", labels)
                - metric_value(before, "strata_ingest_requests_total", labels))

    # One of each failure, with client-chosen strings that must not become label values.
    node.post_otlp("/v1/traces", truncated(sample_request("traces")), PROTOBUF, tenant=tenant)
    node.post_otlp("/v1/logs", b"{evil-json", JSON, tenant=tenant)
    node.post_otlp("/v1/metrics", b"x", "text/evil-content-type", tenant=tenant)
    node.post_otlp("/v1/traces", b"x", PROTOBUF, tenant=tenant, headers={"Content-Encoding": "evil-encoding"})
    node.post_otlp("/v1/traces", gzip_bomb(), PROTOBUF, tenant=tenant, headers={"Content-Encoding": "gzip"})
    node.post_otlp("/v1/traces", b"", PROTOBUF, tenant="evil/tenant")
    with grpc_channel(node) as ch:
        for method, payload, t in ((TRACES_GRPC, truncated(sample_request("traces")), tenant),
                                   (LOGS_GRPC, b"", "evil tenant")):
            with pytest.raises(grpc.RpcError):
                grpc_raw_call(ch, method, payload, tenant=t)
    req, _, bad = _bad_spans_request()
    assert post_protobuf(node, "/v1/traces", req, tenant=tenant).status_code == 200
    export_ok(node, "/v1/logs", logs_request([log_record("fine")]), tenant)

    after = node.metrics_text()
    expected = {
        ("spans", "http_protobuf", "decode"): 1,
        ("logs", "http_json", "decode"): 1,
        ("metrics", "http", "unsupported_media_type"): 1,
        ("spans", "http_protobuf", "unsupported_encoding"): 1,
        ("spans", "http_protobuf", "too_large"): 1,
        ("spans", "http_protobuf", "invalid_tenant"): 1,
        ("spans", "grpc", "decode"): 1,
        ("logs", "grpc", "invalid_tenant"): 1,
        ("spans", "http_protobuf", "ok"): 1,
        ("logs", "http_protobuf", "ok"): 1,
    }
    for (signal, transport, outcome), n in expected.items():
        labels = {"signal": signal, "transport": transport, "outcome": outcome}
        assert delta(after, labels) == n, (labels, delta(after, labels))
    # Nothing else moved.
    assert delta(after, {}) == sum(expected.values())

    assert metric_value(after, "strata_ingest_rejected_items_total", {"tenant": tenant, "signal": "spans"}) == bad
    assert metric_value(after, "strata_ingest_items_total", {"tenant": tenant, "signal": "spans"}) == 2
    assert metric_value(after, "strata_ingest_items_total", {"tenant": tenant, "signal": "logs"}) == 1

    for name, labels, _ in parse_metrics(after):
        if name == "strata_ingest_requests_total":
            assert set(labels) == {"signal", "transport", "outcome"}, labels
            assert labels["signal"] in FIXED_SIGNALS, labels
            assert labels["transport"] in FIXED_TRANSPORTS, labels
            assert labels["outcome"] in FIXED_OUTCOMES, labels
    assert "evil" not in after
    assert_still_serving(node)


# ------------------------------------------------------------------------------ connection handling


def _early_error_exchange(node, head: bytes, declared: int, sent: int) -> tuple[bytes, dict, bool]:
    """Sends ``head`` declaring a ``declared``-byte body but only ``sent`` bytes of it, reads the
    response, and tells whether the server then closed the connection."""
    import socket

    host, port = node.otlp_http_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % declared + b"\x0a" * sent)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response: {data!r}"
            data += chunk
        head_text, rest = data.split(b"\r\n\r\n", 1)
        lines = head_text.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        sock.settimeout(3)
        try:
            closed = sock.recv(1) == b""
        except socket.timeout:
            closed = False
        except ConnectionResetError:
            closed = True
        return lines[0].encode(), headers, closed


@pytest.mark.parametrize("case", ["unsupported_content_type", "unsupported_encoding", "invalid_tenant", "too_large"])
def test_early_error_response_announces_connection_close(small_node, case):
    """The server answers some errors before reading the request body. If it then closes the
    keep-alive connection, the response must say ``Connection: close`` (RFC 9112 §9.6), or a
    client that reuses the connection for its next request gets a connection error instead of a
    response (seen as ``RemoteDisconnected`` with ``requests.Session``)."""
    base = b"POST /v1/traces HTTP/1.1\r\nHost: strata\r\n"
    head = {
        "unsupported_content_type": base + b"Content-Type: text/plain\r\n",
        "unsupported_encoding": base + b"Content-Type: application/x-protobuf\r\nContent-Encoding: br\r\n",
        "invalid_tenant": base + b"Content-Type: application/x-protobuf\r\nX-Scope-OrgID: a/b\r\n",
        "too_large": base + b"Content-Type: application/x-protobuf\r\n",
    }[case]
    declared = 10 * 1024 * 1024
    sent = SMALL_LIMIT + 1 if case == "too_large" else 1024
    status_line, headers, closed = _early_error_exchange(small_node, head, declared, sent)
    expected = {"unsupported_content_type": b" 415 ", "unsupported_encoding": b" 415 ",
                "invalid_tenant": b" 400 ", "too_large": b" 413 "}[case]
    assert expected in status_line, status_line
    if closed:
        assert headers.get("connection", "").lower() == "close", (
            f"{status_line!r}: the server closed the connection after this response without "
            f"'Connection: close'; headers {headers}")
    assert_still_serving(small_node)


def test_api_early_error_keeps_the_connection(node):
    """An API request refused before its body is read (here a malformed tenant id, 400) must not
    cost the client its keep-alive connection, even when the body arrives after the answer was
    decided: the next request on the same connection is answered."""
    import socket

    host, port = node.http_addr.rsplit(":", 1)
    body = b'{"sql": "SELECT 1"}'
    head = (b"POST /api/v1/sql HTTP/1.1\r\nHost: strata\r\nContent-Type: application/json\r\n"
            b"X-Scope-OrgID: a/b\r\nContent-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        reader = sock.makefile("rb")

        def response() -> tuple[bytes, dict, bytes]:
            status = reader.readline()
            assert status, "connection closed without a response"
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, value = line.decode("latin-1").split(":", 1)
                headers[name.strip().lower()] = value.strip()
            return status, headers, reader.read(int(headers.get("content-length", "0")))

        sock.sendall(head)
        time.sleep(0.3)  # the body comes after the head has been answered, as over a slow link
        sock.sendall(body)
        status, headers, payload = response()
        assert b" 400 " in status, (status, payload)
        assert headers.get("connection", "").lower() != "close", headers
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: strata\r\n\r\n")
        status, _, _ = response()
        assert b" 200 " in status, status


# ------------------------------------------------------------------ headers, URLs and nesting

@pytest.mark.parametrize("listener", ["otlp_http_addr", "http_addr"])
def test_oversized_headers_431(node, listener):
    # hyper bounds the request head; past it the answer is 431, not a buffered megabyte.
    r = requests.post(f"http://{getattr(node, listener)}/v1/traces", data=b"",
                      headers={"X-Padding": "a" * (1024 * 1024)}, timeout=30)
    assert r.status_code == 431, r.status_code
    assert requests.get(f"http://{node.http_addr}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("listener", ["otlp_http_addr", "http_addr"])
def test_overlong_url_refused(node, listener):
    r = requests.get(f"http://{getattr(node, listener)}/{'a' * (1024 * 1024)}", timeout=30)
    assert r.status_code in (414, 431), r.status_code
    assert requests.get(f"http://{node.http_addr}/healthz", timeout=10).status_code == 200


def _nested_array_json(depth: int) -> str:
    # Built as text: Python's own json module would hit its recursion limit first.
    return '{"arrayValue":{"values":[' * depth + '{"stringValue":"leaf"}' + "]}}" * depth


def test_deeply_nested_json_400_not_a_crash(node, tenant):
    # 10,000 levels of arrays inside one attribute: refused by the nesting bound.
    body = ('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"},'
            '"attributes":[{"key":"deep","value":' + _nested_array_json(10_000) + "}]}]}]}]}")
    r = node.post_otlp("/v1/logs", body.encode(), content_type=JSON, tenant=tenant)
    assert r.status_code == 400, r.text
    assert "recursion" in r.text.lower() or "nest" in r.text.lower(), r.text
    assert requests.get(f"http://{node.http_addr}/healthz", timeout=10).status_code == 200


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_deeply_nested_protobuf_400_not_a_crash(node, tenant):
    # Hand-encoded (the Python protobuf library refuses to build it): an AnyValue nested
    # 10,000 arrays deep as the value of a log record attribute.
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(10_000):
        value = _field(5, _field(1, value))  # AnyValue.array_value { values: [value] }
    attribute = _field(1, b"deep") + _field(2, value)  # KeyValue
    record = _field(6, attribute)  # LogRecord.attributes
    body = _field(1, _field(2, _field(2, record)))  # request.resource_logs.scope_logs.log_records
    r = node.post_otlp("/v1/logs", body, tenant=tenant)
    assert r.status_code == 400, r.text
    assert decode_status(r.content).code == 3  # INVALID_ARGUMENT
    assert requests.get(f"http://{node.http_addr}/healthz", timeout=10).status_code == 200
