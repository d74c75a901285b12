"""Helpers of the Strata end-to-end suite: running nodes, talking to them, building OTLP."""

from __future__ import annotations

import base64
import calendar
import gzip
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import grpc
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
STRATA_BIN = os.environ.get("STRATA_BIN", str(REPO_ROOT / "target" / "debug" / "strata"))

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 30

# Nodes currently running, so that a failing test can show their logs.
_RUNNING: list["StrataNode"] = []


class NodeError(AssertionError):
    pass


class SqlError(AssertionError):
    """A SQL query answered with a non-200 status."""

    def __init__(self, status: int, body: str):
        super().__init__(f"SQL API answered {status}: {body}")
        self.status = status
        self.body = body


class StrataNode:
    """One running ``strata serve`` process."""

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None, name: str = "node",
                 env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args or [])
        self.name = name
        # Added to the process environment (e.g. the AWS_* variables of an S3 object store).
        self.env = dict(env or {})
        # Where the node's objects are, for tests (storage_backends.objects_of); None: local.
        self.objects = None
        self.proc: subprocess.Popen | None = None
        self.addrs: dict[str, str] = {}
        self.log_path: Path | None = None
        self._generation = 0
        self._session = requests.Session()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "StrataNode":
        assert self.proc is None, "node already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._generation += 1
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-stderr-{self._generation}.log"
        args = [
            STRATA_BIN,
            "serve",
            "--data-dir", str(self.data_dir),
            "--grpc-listen", "127.0.0.1:0",
            "--otlp-http-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0",
            "--log-format", "json",
            *self.extra_args,
        ]
        if "--flush-interval" not in self.extra_args:
            args += ["--flush-interval", "1s"]
        self.addrs = {}
        ready = threading.Event()
        log_file = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env={**os.environ, **self.env} if self.env else None,
        )
        proc = self.proc
        addrs = self.addrs

        def pump() -> None:
            # Copies stderr to the log file, noting the addresses and readiness on the way.
            with log_file:
                for line in proc.stderr:
                    log_file.write(line)
                    log_file.flush()
                    if ready.is_set():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    fields = record.get("fields", record)
                    message = fields.get("message", record.get("message"))
                    if message == "listening":
                        addrs[fields["listener"]] = fields["addr"]
                    elif message == "strata node ready":
                        ready.set()
            ready.set()  # stderr closed: the process is gone; unblock the waiter

        threading.Thread(target=pump, name=f"strata-stderr-{self.name}", daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or proc.poll() is not None or len(addrs) != 3:
            code = proc.poll()
            if code is None:
                proc.kill()
                proc.wait()
            self.proc = None
            raise NodeError(
                f"strata did not become ready (exit code {code}, addrs {addrs}); stderr:\n"
                + self.stderr_text()
            )
        _RUNNING.append(self)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stops the node with ``sig`` and returns its exit code."""
        assert self.proc is not None, "node not running"
        proc = self.proc
        proc.send_signal(sig)
        try:
            code = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        self.proc = None
        if self in _RUNNING:
            _RUNNING.remove(self)
        if code is None:
            raise NodeError(f"strata did not stop within {STOP_TIMEOUT_S}s of {sig}; stderr:\n{self.stderr_text()}")
        return code

    def stop_clean(self) -> None:
        """SIGTERM, and a clean exit (code 0) is required."""
        code = self.stop()
        if code != 0:
            raise NodeError(f"strata exited with code {code} after SIGTERM; stderr:\n{self.stderr_text()}")

    def restart(self) -> "StrataNode":
        """Clean stop, then a new process on the same data directory and flags."""
        self.stop_clean()
        return self.start()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr_text(self, tail: int | None = None) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        if tail is not None:
            lines = lines[-tail:]
        return "\n".join(lines)

    # ------------------------------------------------------------------ addresses

    @property
    def grpc_addr(self) -> str:
        return self.addrs["otlp-grpc"]

    @property
    def otlp_http_addr(self) -> str:
        return self.addrs["otlp-http"]

    @property
    def http_addr(self) -> str:
        return self.addrs["http"]

    @property
    def otlp_url(self) -> str:
        return f"http://{self.otlp_http_addr}"

    @property
    def api_url(self) -> str:
        return f"http://{self.http_addr}"

    # ------------------------------------------------------------------ HTTP helpers

    def post_otlp(self, path: str, body, content_type: str = "application/x-protobuf",
                  tenant: str | None = None, headers: dict | None = None) -> requests.Response:
        h = {"Content-Type": content_type}
        if tenant is not None:
            h["X-Scope-OrgID"] = tenant
        h.update(headers or {})
        # A new connection per export: after an early error response (413, 415, ...) the server
        # may close a keep-alive connection without announcing it (see test_bad_input.py,
        # test_early_error_response_announces_connection_close), which would make unrelated
        # tests flaky if connections were reused.
        return requests.post(self.otlp_url + path, data=body, headers=h, timeout=HTTP_TIMEOUT_S)

    def sql_response(self, query: str, tenant: str | None = None, accept: str | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if tenant is not None:
            headers["X-Scope-OrgID"] = tenant
        if accept is not None:
            headers["Accept"] = accept
        return self._session.post(
            self.api_url + "/api/v1/sql", data=json.dumps({"sql": query}), headers=headers, timeout=HTTP_TIMEOUT_S
        )

    def sql_result(self, query: str, tenant: str | None = None) -> dict:
        """The JSON body (``columns`` and ``rows``) of a successful query."""
        r = self.sql_response(query, tenant)
        if r.status_code != 200:
            raise SqlError(r.status_code, r.text)
        return r.json()

    def sql(self, query: str, tenant: str | None = None) -> list[dict]:
        """Runs a query and returns its rows as dicts (column name -> JSON value)."""
        body = self.sql_result(query, tenant)
        names = [c["name"] for c in body["columns"]]
        return [dict(zip(names, row, strict=True)) for row in body["rows"]]

    def metrics_text(self) -> str:
        r = self._session.get(self.api_url + "/metrics", timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200, r.text
        return r.text

    def metric_value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
        return metric_value(self.metrics_text(), name, labels)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    labels = labels or {}
    total = 0.0
    for sample_name, sample_labels, value in parse_metrics(text):
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            total += value
    return total


# ---------------------------------------------------------------------- time helpers

_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")


def ts_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC timestamp as the SQL API returns it."""
    m = _TS.match(text)
    assert m, f"not an RFC 3339 UTC timestamp with Z: {text!r}"
    import calendar

    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(9, "0")
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000_000 + int(frac or 0)


def ns_to_rfc3339(ns: int) -> str:
    """The full nanosecond RFC 3339 form of a timestamp."""
    import datetime as dt

    secs, frac = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(secs, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Polls ``predicate`` until it returns a truthy value (only for flushes to Parquet)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def parquet_files(data_dir: Path, tenant: str | None = None, signal_name: str | None = None) -> list[Path]:
    root = Path(data_dir) / "objects"
    if tenant is not None:
        root = root / f"tenant={tenant}"
        if signal_name is not None:
            root = root / f"signal={signal_name}"
    if not root.exists():
        return []
    return sorted(root.rglob("*.parquet"))


def unique_tenant(label: str = "t") -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", label)[:60].strip("-.") or "t"
    return f"{clean}-{uuid.uuid4().hex[:12]}"




# ---------------------------------------------------------------------- OTLP builders

TRACES_GRPC = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_GRPC = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_GRPC = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

# 2024-01-15T10:00:00Z, a fixed past hour used by tests that need explicit times.
DAY = "2024-01-15"
HOUR10_NS = calendar.timegm((2024, 1, 15, 10, 0, 0, 0, 0, 0)) * 1_000_000_000


def any_value(v) -> common_pb2.AnyValue:
    """An AnyValue from a Python value (bytes → bytes_value, list → array, dict → kvlist)."""
    if isinstance(v, common_pb2.AnyValue):
        return v
    if isinstance(v, bool):
        return common_pb2.AnyValue(bool_value=v)
    if isinstance(v, int):
        return common_pb2.AnyValue(int_value=v)
    if isinstance(v, float):
        return common_pb2.AnyValue(double_value=v)
    if isinstance(v, str):
        return common_pb2.AnyValue(string_value=v)
    if isinstance(v, bytes):
        return common_pb2.AnyValue(bytes_value=v)
    if isinstance(v, (list, tuple)):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(x) for x in v]))
    if isinstance(v, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs(v)))
    raise TypeError(type(v))


def kvs(attrs: dict | None) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in (attrs or {}).items()]


def resource(attrs: dict | None = None) -> resource_pb2.Resource:
    return resource_pb2.Resource(attributes=kvs(attrs))


def span(trace_id: bytes, span_id: bytes, name: str = "span", start: int = HOUR10_NS, end: int | None = None,
         attrs: dict | None = None, **kw) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1000 if end is None else end,
        attributes=kvs(attrs),
        **kw,
    )


def traces_request(spans, service: str = "e2e-svc", resource_attrs: dict | None = None,
                   scope: tuple[str, str] = ("e2e", "1.0")) -> trace_service_pb2.ExportTraceServiceRequest:
    attrs = {"service.name": service} if service is not None else {}
    attrs.update(resource_attrs or {})
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource(attrs),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name=scope[0], version=scope[1]),
                        spans=list(spans),
                    )
                ],
            )
        ]
    )


def log_record(body=None, time_ns: int = HOUR10_NS, attrs: dict | None = None, **kw) -> logs_pb2.LogRecord:
    rec = logs_pb2.LogRecord(time_unix_nano=time_ns, observed_time_unix_nano=time_ns + 1, attributes=kvs(attrs), **kw)
    if body is not None:
        rec.body.CopyFrom(any_value(body))
    return rec


def logs_request(records, service: str = "e2e-svc", resource_attrs: dict | None = None,
                 scope: tuple[str, str] = ("e2e", "1.0")) -> logs_service_pb2.ExportLogsServiceRequest:
    attrs = {"service.name": service} if service is not None else {}
    attrs.update(resource_attrs or {})
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource(attrs),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=common_pb2.InstrumentationScope(name=scope[0], version=scope[1]),
                        log_records=list(records),
                    )
                ],
            )
        ]
    )


def gauge_metric(name: str, points, description: str = "", unit: str = "") -> metrics_pb2.Metric:
    return metrics_pb2.Metric(name=name, description=description, unit=unit,
                              gauge=metrics_pb2.Gauge(data_points=list(points)))


def number_point(value=None, time_ns: int = HOUR10_NS, attrs: dict | None = None, **kw) -> metrics_pb2.NumberDataPoint:
    p = metrics_pb2.NumberDataPoint(time_unix_nano=time_ns, attributes=kvs(attrs), **kw)
    if isinstance(value, int):
        p.as_int = value
    elif isinstance(value, float):
        p.as_double = value
    return p


def metrics_request(metrics, service: str = "e2e-svc", resource_attrs: dict | None = None,
                    scope: tuple[str, str] = ("e2e", "1.0")) -> metrics_service_pb2.ExportMetricsServiceRequest:
    attrs = {"service.name": service} if service is not None else {}
    attrs.update(resource_attrs or {})
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource(attrs),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=common_pb2.InstrumentationScope(name=scope[0], version=scope[1]),
                        metrics=list(metrics),
                    )
                ],
            )
        ]
    )


def rand_trace_id() -> bytes:
    return uuid.uuid4().bytes


def rand_span_id() -> bytes:
    return uuid.uuid4().bytes[:8]


# ---------------------------------------------------------------------- OTLP transport helpers


def post_protobuf(node, path: str, message, tenant: str | None = None, gzip_body: bool = False,
                  headers: dict | None = None) -> requests.Response:
    body = message.SerializeToString()
    h = dict(headers or {})
    if gzip_body:
        body = gzip.compress(body)
        h["Content-Encoding"] = "gzip"
    return node.post_otlp(path, body, "application/x-protobuf", tenant=tenant, headers=h)


def export_ok(node, path: str, message, tenant: str | None = None):
    """POSTs a protobuf export over HTTP and requires a full success; returns the response."""
    r = post_protobuf(node, path, message, tenant=tenant)
    assert r.status_code == 200, (r.status_code, r.content)
    response_type = {
        "/v1/traces": trace_service_pb2.ExportTraceServiceResponse,
        "/v1/logs": logs_service_pb2.ExportLogsServiceResponse,
        "/v1/metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    }[path]
    resp = response_type.FromString(r.content)
    assert not resp.HasField("partial_success"), resp
    return resp


def grpc_channel(node) -> grpc.Channel:
    return grpc.insecure_channel(node.grpc_addr)


def grpc_raw_call(channel: grpc.Channel, method: str, payload: bytes, tenant: str | None = None,
                  compression=None, timeout: float = 30.0) -> bytes:
    """Calls a unary method with raw bytes (no client-side serialisation); returns raw bytes."""
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    metadata = [("x-scope-orgid", tenant)] if tenant is not None else None
    return call(payload, metadata=metadata, compression=compression, timeout=timeout)


def decode_status(body: bytes) -> status_pb2.Status:
    return status_pb2.Status.FromString(body)


# ---------------------------------------------------------------------- value helpers


def hexid(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


# ---------------------------------------------------------------------- the documented mapping (docs/SCHEMA.md)
#
# These functions state, independently of the server's code, what row docs/SCHEMA.md says an
# OTLP item becomes. Tests compare whole rows returned by the SQL API against them.

SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_CODES = {0: "unset", 1: "ok", 2: "error"}
TEMPORALITIES = {0: "unspecified", 1: "delta", 2: "cumulative"}


def double_text(d: float) -> str:
    """Shortest decimal that reads back as the same double (SCHEMA: ``0.25``, ``1e+300``)."""
    if d != d:
        return "NaN"
    if d in (float("inf"), float("-inf")):
        return "Infinity" if d > 0 else "-Infinity"
    text = repr(d)
    if "e" in text:
        mantissa, exp = text.split("e")
        exp_n = int(exp)
        text = f"{mantissa}e{'+' if exp_n > 0 else ''}{exp_n}"
    return text


def _json_of(av: common_pb2.AnyValue):
    kind = av.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return av.string_value
    if kind == "bool_value":
        return av.bool_value
    if kind == "int_value":
        return av.int_value
    if kind == "double_value":
        d = av.double_value
        if d != d or d in (float("inf"), float("-inf")):
            return double_text(d)
        return d
    if kind == "bytes_value":
        return b64(av.bytes_value)
    if kind == "array_value":
        return [_json_of(v) for v in av.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _json_of(kv.value) for kv in av.kvlist_value.values}
    raise AssertionError(kind)


def any_text(av: common_pb2.AnyValue) -> str | None:
    """The text form of an attribute value (None for an empty AnyValue)."""
    kind = av.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return av.string_value
    if kind == "bool_value":
        return "true" if av.bool_value else "false"
    if kind == "int_value":
        return str(av.int_value)
    if kind == "double_value":
        return double_text(av.double_value)
    if kind == "bytes_value":
        return b64(av.bytes_value)
    return json.dumps(_json_of(av), separators=(",", ":"), ensure_ascii=False)


def attr_map(kv_list) -> dict:
    out: dict = {}
    for kv in kv_list:
        if kv.key in out:
            continue  # a repeated key keeps its first value
        out[kv.key] = any_text(kv.value) if kv.HasField("value") else None
    return out


def service_of(res: resource_pb2.Resource) -> str:
    for kv in res.attributes:
        if kv.key == "service.name":
            if kv.value.WhichOneof("value") == "string_value" and kv.value.string_value:
                return kv.value.string_value
            break
    return "unknown_service"


def _hex_or_none(b: bytes):
    return b.hex() if b else None


def expected_span_rows(req: trace_service_pb2.ExportTraceServiceRequest) -> list[dict]:
    rows = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                rows.append({
                    "time": s.start_time_unix_nano,
                    "end_time": s.end_time_unix_nano,
                    "duration_ns": s.end_time_unix_nano - s.start_time_unix_nano,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": _hex_or_none(s.parent_span_id),
                    "trace_state": s.trace_state or None,
                    "flags": s.flags,
                    "name": s.name,
                    "kind": SPAN_KINDS[s.kind],
                    "status_code": STATUS_CODES[s.status.code],
                    "status_message": s.status.message or None,
                    "service_name": service_of(rs.resource),
                    "resource_attributes": attr_map(rs.resource.attributes),
                    "scope_name": ss.scope.name,
                    "scope_version": ss.scope.version,
                    "attributes": attr_map(s.attributes),
                    "dropped_attributes_count": s.dropped_attributes_count,
                    "events": [
                        {
                            "time": e.time_unix_nano,
                            "name": e.name,
                            "attributes": attr_map(e.attributes),
                            "dropped_attributes_count": e.dropped_attributes_count,
                        }
                        for e in s.events
                    ],
                    "dropped_events_count": s.dropped_events_count,
                    "links": [
                        {
                            "trace_id": ln.trace_id.hex(),
                            "span_id": ln.span_id.hex(),
                            "trace_state": ln.trace_state or None,
                            "flags": ln.flags,
                            "attributes": attr_map(ln.attributes),
                            "dropped_attributes_count": ln.dropped_attributes_count,
                        }
                        for ln in s.links
                    ],
                    "dropped_links_count": s.dropped_links_count,
                })
    return rows


def expected_log_rows(req: logs_service_pb2.ExportLogsServiceRequest) -> list[dict]:
    """Rows of records whose time and observed time are set (otherwise they depend on arrival)."""
    rows = []
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for r in sl.log_records:
                observed = r.observed_time_unix_nano
                rows.append({
                    "time": r.time_unix_nano or observed,
                    "observed_time": observed,
                    "severity_number": r.severity_number,
                    "severity_text": r.severity_text,
                    "body": any_text(r.body) if r.HasField("body") else None,
                    "trace_id": _hex_or_none(r.trace_id),
                    "span_id": _hex_or_none(r.span_id),
                    "flags": r.flags,
                    "event_name": r.event_name or None,
                    "service_name": service_of(rl.resource),
                    "resource_attributes": attr_map(rl.resource.attributes),
                    "scope_name": sl.scope.name,
                    "scope_version": sl.scope.version,
                    "attributes": attr_map(r.attributes),
                    "dropped_attributes_count": r.dropped_attributes_count,
                })
    return rows


_METRIC_NULLS = {
    "aggregation_temporality": None, "is_monotonic": None, "value": None, "count": None, "sum": None,
    "min": None, "max": None, "bucket_counts": None, "explicit_bounds": None, "scale": None,
    "zero_count": None, "zero_threshold": None, "positive_offset": None, "positive_bucket_counts": None,
    "negative_offset": None, "negative_bucket_counts": None, "quantiles": None,
}


def _exemplars(point) -> list[dict]:
    out = []
    for e in point.exemplars:
        kind = e.WhichOneof("value")
        value = None if kind is None else float(getattr(e, kind))
        out.append({
            "time": e.time_unix_nano,
            "value": value,
            "trace_id": _hex_or_none(e.trace_id),
            "span_id": _hex_or_none(e.span_id),
            "filtered_attributes": attr_map(e.filtered_attributes),
        })
    return out


def _float_or_none(msg, field: str):
    return getattr(msg, field) if msg.HasField(field) else None


def expected_metric_rows(req: metrics_service_pb2.ExportMetricsServiceRequest) -> list[dict]:
    """Rows of every data point, without ``series`` (a hash checked separately)."""
    rows = []
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(m, kind)
                for p in data.data_points:
                    row = {
                        "time": p.time_unix_nano,
                        "start_time": p.start_time_unix_nano or None,
                        "metric_name": m.name,
                        "metric_type": kind,
                        "description": m.description,
                        "unit": m.unit,
                        "service_name": service_of(rm.resource),
                        "resource_attributes": attr_map(rm.resource.attributes),
                        "scope_name": sm.scope.name,
                        "scope_version": sm.scope.version,
                        "attributes": attr_map(p.attributes),
                        "flags": p.flags,
                        **_METRIC_NULLS,
                        "exemplars": [],
                    }
                    if kind in ("gauge", "sum"):
                        v = p.WhichOneof("value")
                        row["value"] = float(getattr(p, v))
                        row["exemplars"] = _exemplars(p)
                    if kind == "sum":
                        row["aggregation_temporality"] = TEMPORALITIES[data.aggregation_temporality]
                        row["is_monotonic"] = data.is_monotonic
                    if kind == "histogram":
                        row.update(
                            aggregation_temporality=TEMPORALITIES[data.aggregation_temporality],
                            count=p.count, sum=_float_or_none(p, "sum"), min=_float_or_none(p, "min"),
                            max=_float_or_none(p, "max"), bucket_counts=list(p.bucket_counts),
                            explicit_bounds=list(p.explicit_bounds), exemplars=_exemplars(p),
                        )
                    if kind == "exponential_histogram":
                        row.update(
                            aggregation_temporality=TEMPORALITIES[data.aggregation_temporality],
                            count=p.count, sum=_float_or_none(p, "sum"), min=_float_or_none(p, "min"),
                            max=_float_or_none(p, "max"), scale=p.scale, zero_count=p.zero_count,
                            zero_threshold=p.zero_threshold,
                            positive_offset=p.positive.offset, positive_bucket_counts=list(p.positive.bucket_counts),
                            negative_offset=p.negative.offset, negative_bucket_counts=list(p.negative.bucket_counts),
                            exemplars=_exemplars(p),
                        )
                    if kind == "summary":
                        row.update(
                            count=p.count, sum=p.sum,
                            quantiles=[{"quantile": q.quantile, "value": q.value} for q in p.quantile_values],
                        )
                    rows.append(row)
    return rows


_TS_COLUMNS = {"time", "end_time", "observed_time", "start_time"}


def normalize(value, key: str | None = None):
    """An API row value with timestamps (top level and nested) turned into integer nanoseconds."""
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, key) for v in value]
    if key in _TS_COLUMNS and isinstance(value, str):
        return ts_ns(value)
    return value


def normalize_rows(rows: list[dict], drop: tuple[str, ...] = ()) -> list[dict]:
    out = []
    for row in rows:
        n = normalize(row)
        for k in drop:
            n.pop(k, None)
        out.append(n)
    return out


def query_rows(node, table: str, tenant: str, order_by: str, where: str = "", drop: tuple[str, ...] = ()) -> list[dict]:
    q = f"SELECT * FROM {table} {('WHERE ' + where) if where else ''} ORDER BY {order_by}"
    return normalize_rows(node.sql(q, tenant=tenant), drop=drop)


# ---------------------------------------------------------------------- raw gRPC over HTTP/2


def h2_grpc_call(addr: str, method: str, payload: bytes, metadata: list[tuple[bytes, bytes]],
                 timeout: float = 10.0) -> dict:
    """One unary gRPC call over a hand-driven HTTP/2 connection, sending metadata bytes exactly
    as given (grpcio refuses to send, e.g., control characters). Returns the response headers
    and trailers merged (``grpc-status``...), or ``reset``/``goaway`` with the error code."""
    import socket
    import struct

    import h2.config
    import h2.connection
    import h2.events

    host, port = addr.rsplit(":", 1)
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                       normalize_outbound_headers=False, validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    result: dict = {}
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        stream = conn.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", method.encode()),
                   (b":authority", addr.encode()), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
                   *metadata]
        conn.send_headers(stream, headers)
        conn.send_data(stream, b"\0" + struct.pack(">I", len(payload)) + payload, end_stream=True)
        sock.sendall(conn.data_to_send())
        done = False
        while not done:
            data = sock.recv(65536)
            if not data:
                result.setdefault("closed", True)
                break
            for event in conn.receive_data(data):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    for k, v in event.headers:
                        result[k.decode() if isinstance(k, bytes) else k] = v.decode() if isinstance(v, bytes) else v
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    result["data"] = result.get("data", b"") + event.data
                elif isinstance(event, h2.events.StreamEnded):
                    done = True
                elif isinstance(event, h2.events.StreamReset):
                    result["reset"] = int(event.error_code)
                    done = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    result["goaway"] = int(event.error_code)
                    done = True
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    return result
