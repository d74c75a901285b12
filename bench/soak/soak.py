#!/usr/bin/env python3
"""Memory soak test: sustained OTLP overload against one real ``strata serve`` process.

Starts the binary with a write-buffer limit (``--max-buffer-bytes``) or a limit on the whole
process (``--memory-limit``, which sizes the buffer itself), drives it with many
concurrent OTLP clients (HTTP/protobuf and gRPC, spans and logs, requests of a few hundred KB)
as fast as they can go, and samples the server's RSS every 100 ms from ``/proc/<pid>/status``.
Two scenarios:

* ``A`` (flush-slow): the default local object store; flushing works, ingest is faster.
* ``B`` (store-down): ``--storage s3://…`` with ``AWS_ENDPOINT_URL`` at a closed local port, so
  every flush fails and nothing ever leaves the write buffer.

It reports the configured limit, baseline and peak RSS (``VmHWM``), RSS percentiles over the
load, request outcomes (200 / 429 / 503 / gRPC UNAVAILABLE / other), accepted items per
second, the storage figures of ``/metrics``, whether the node was still healthy and whether it
exited cleanly on SIGTERM, and checks that the SQL row count of the run's tenant equals the
items of the acknowledged requests. Results go to stdout and ``bench/results/soak-*.json``.

Runs with the end-to-end suite's virtualenv (stdlib + tests/e2e/requirements.txt):

    .venv/bin/python bench/soak/soak.py                      # both scenarios, 60 s each
    .venv/bin/python bench/soak/soak.py --scenario B --duration 120 --clients 64

See bench/soak/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import itertools
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

MiB = 1024 * 1024

# ---------------------------------------------------------------------- outcome counters
# One row of counters per client thread, in a shared array (each thread writes only its row;
# the parent sums them while sampling).
OK = 0  # HTTP 200 / gRPC OK
HTTP_429 = 1  # HTTP 429 (write buffer over its memory limit)
HTTP_503 = 2  # HTTP 503 (WAL full / node unavailable)
GRPC_UNAVAILABLE = 3  # gRPC UNAVAILABLE answered by the server (with RetryInfo)
OTHER = 4  # any other answer (HTTP 4xx/5xx, other gRPC codes)
AMBIGUOUS = 5  # no answer: timeout, connection reset... (the items may or may not be stored)
ITEMS_ACKED = 6  # items in acknowledged requests (minus partial_success rejections)
ITEMS_AMBIGUOUS = 7  # items in requests without an answer
BYTES_ACKED = 8  # request body bytes of acknowledged requests
LAT_OK_US = 9  # sum of latencies of acknowledged requests (µs)
LAT_REFUSED_US = 10  # sum of latencies of refused requests (µs)
SPANS_ACKED = 11
LOGS_ACKED = 12
GRPC_UNAVAILABLE_MEMORY = 13  # of GRPC_UNAVAILABLE: "memory limit" in the message
GRPC_UNAVAILABLE_WAL = 14  # of GRPC_UNAVAILABLE: "write-ahead log" in the message
REJECTED_ITEMS = 15  # partial_success rejections in acknowledged requests
NFIELDS = 16

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
TRACES_GRPC = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_GRPC = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


# ---------------------------------------------------------------------- realistic OTLP data


SERVICES = ["checkout", "cart", "payments", "inventory", "frontend", "shipping", "auth", "search"]
ROUTES = [
    ("GET", "/api/v1/orders/{id}"), ("POST", "/api/v1/orders"), ("GET", "/api/v1/cart"),
    ("PUT", "/api/v1/cart/items/{id}"), ("POST", "/api/v1/payments"), ("GET", "/api/v1/products"),
    ("GET", "/api/v1/products/{id}"), ("GET", "/healthz"), ("POST", "/api/v1/login"),
    ("GET", "/api/v1/search"), ("DELETE", "/api/v1/cart/items/{id}"), ("GET", "/api/v1/shipping/quote"),
]
DB_OPS = ["SELECT orders", "SELECT products", "UPDATE cart_items", "INSERT payments", "SELECT users"]
USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
]
LOG_TEMPLATES = [
    "request completed method={m} route={r} status={s} duration_ms={d} user={u}",
    "cache miss for key product:{u}:{d}; loading from database",
    "payment authorised for order {o} amount={d}.{s} currency=EUR provider=stripe",
    "upstream call to inventory took {d} ms (retry 0 of 3) route={r}",
    "user {u} session refreshed; token expires in {d} s",
    "slow query detected: {q} took {d} ms rows={s}",
]
STACK = "".join(
    f"  at com.example.{svc}.Handler.handle(Handler.java:{100 + i})\n" for i, svc in enumerate(SERVICES)
)


def _resource_attrs(service: str, rnd: random.Random) -> dict:
    pod = f"{service}-{rnd.randrange(16**8):08x}-{rnd.randrange(16**5):05x}"
    return {
        "service.name": service,
        "service.version": f"1.{rnd.randrange(40)}.{rnd.randrange(10)}",
        "service.namespace": "shop",
        "deployment.environment": "production",
        "host.name": f"ip-10-0-{rnd.randrange(256)}-{rnd.randrange(256)}.eu-west-1.compute.internal",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": pod,
        "k8s.node.name": f"node-{rnd.randrange(64)}",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "java",
        "telemetry.sdk.version": "1.40.0",
    }


class Body:
    """A serialised export request whose trace and span ids are new in every copy.

    Sending the same bytes again would store the same ids again, which Parquet compresses
    far better than real traffic (and would flatter the flush and compaction figures). The
    ids are random bytes in the serialised message, so the message is kept as the segments
    between them and each copy joins the segments with fresh random ids (one id keeps its
    value at all its places, so spans still share their trace): no re-serialisation.
    """

    def __init__(self, body: bytes, items: int, ids: list[bytes]):
        self.items = items
        self.original = body
        places = []  # (offset, length, index of the distinct id)
        distinct = list(dict.fromkeys(ids))
        self.id_lengths = [len(i) for i in distinct]
        for k, ident in enumerate(distinct):
            at = body.find(ident)
            while at != -1:
                places.append((at, len(ident), k))
                at = body.find(ident, at + len(ident))
        places.sort()
        self.segments = []
        self.slots = []
        pos = 0
        for at, length, k in places:
            if at < pos:  # overlapping match: impossible for random ids, but never corrupt
                continue
            self.segments.append(body[pos:at])
            self.slots.append(k)
            pos = at + length
        self.tail = body[pos:]
        self.id_offsets = []
        off = 0
        for length in self.id_lengths:
            self.id_offsets.append(off)
            off += length
        self.random_bytes = off
        self.slices = [slice(self.id_offsets[k], self.id_offsets[k] + self.id_lengths[k]) for k in self.slots]
        self.segments.append(self.tail)

    def fresh(self) -> bytes:
        rnd = os.urandom(self.random_bytes)
        ids = [rnd[sl] for sl in self.slices]
        ids.append(b"")
        return b"".join(itertools.chain.from_iterable(zip(self.segments, ids)))


def build_traces_body(n_spans: int, base_ns: int, rnd: random.Random) -> Body:
    """An ExportTraceServiceRequest of ``n_spans`` spans in 5 resources."""
    import helpers as h
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    resources = 5
    ids: list[bytes] = []
    req = trace_service_pb2.ExportTraceServiceRequest()
    per = [n_spans // resources + (1 if i < n_spans % resources else 0) for i in range(resources)]
    for count in per:
        service = rnd.choice(SERVICES)
        spans = []
        trace_id = root = b""
        for i in range(count):
            if i % 10 == 0:
                trace_id, root = rnd.randbytes(16), rnd.randbytes(8)
                ids += [trace_id, root]
            span_id = root if i % 10 == 0 else rnd.randbytes(8)
            if i % 10 != 0:
                ids.append(span_id)
            method, route = rnd.choice(ROUTES)
            start = base_ns - rnd.randrange(60_000_000_000)
            dur = rnd.randrange(50_000, 2_000_000_000)
            status = rnd.random()
            kw = {
                "kind": 2 if i % 10 == 0 else 3,
                "parent_span_id": b"" if i % 10 == 0 else root,
            }
            attrs = {
                "http.request.method": method,
                "http.route": route,
                "url.path": route.replace("{id}", str(rnd.randrange(10**7))),
                "http.response.status_code": 500 if status < 0.03 else 200,
                "server.address": f"{service}.shop.svc.cluster.local",
                "server.port": 8080,
                "user_agent.original": rnd.choice(USER_AGENTS),
                "client.address": f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}",
                "enduser.id": f"user-{rnd.randrange(10**6)}",
                "request.id": str(uuid.UUID(bytes=rnd.randbytes(16))),
            }
            if i % 10 != 0:
                attrs["db.system"] = "postgresql"
                attrs["db.statement"] = rnd.choice(DB_OPS) + " WHERE id = $1 AND tenant_id = $2 LIMIT 100"
            if status < 0.03:
                kw["status"] = trace_pb2.Status(code=2, message="upstream returned 500")
                kw["events"] = [trace_pb2.Span.Event(
                    time_unix_nano=start + dur // 2, name="exception",
                    attributes=h.kvs({"exception.type": "java.io.IOException",
                                      "exception.message": "connection reset by peer",
                                      "exception.stacktrace": STACK}))]
            spans.append(h.span(trace_id, span_id, name=f"{method} {route}", start=start,
                                end=start + dur, attrs=attrs, **kw))
        req.resource_spans.append(trace_pb2.ResourceSpans(
            resource=h.resource(_resource_attrs(service, rnd)),
            scope_spans=[trace_pb2.ScopeSpans(
                scope=h.common_pb2.InstrumentationScope(name="io.opentelemetry.spring-webmvc-6.0",
                                                        version="2.5.0-alpha"),
                spans=spans)],
        ))
    return Body(req.SerializeToString(), n_spans, ids)


def build_logs_body(n_records: int, base_ns: int, rnd: random.Random) -> Body:
    """An ExportLogsServiceRequest of ``n_records`` log records in 5 resources."""
    import helpers as h
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2

    resources = 5
    ids: list[bytes] = []
    req = logs_service_pb2.ExportLogsServiceRequest()
    per = [n_records // resources + (1 if i < n_records % resources else 0) for i in range(resources)]
    for count in per:
        service = rnd.choice(SERVICES)
        records = []
        for _ in range(count):
            method, route = rnd.choice(ROUTES)
            sev = rnd.choices([9, 13, 17, 5], weights=[80, 12, 3, 5])[0]
            body = rnd.choice(LOG_TEMPLATES).format(
                m=method, r=route, s=rnd.randrange(100, 600), d=rnd.randrange(1, 5000),
                u=rnd.randrange(10**6), o=rnd.randrange(10**9), q=rnd.choice(DB_OPS))
            t = base_ns - rnd.randrange(60_000_000_000)
            trace_id, span_id = rnd.randbytes(16), rnd.randbytes(8)
            ids += [trace_id, span_id]
            records.append(h.log_record(
                body, time_ns=t,
                attrs={"logger.name": f"com.example.{service}.Handler", "thread.name": f"http-nio-8080-exec-{rnd.randrange(200)}",
                       "code.filepath": "Handler.java", "code.lineno": rnd.randrange(1, 900),
                       "http.route": route},
                severity_number=sev, severity_text={5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR"}[sev],
                trace_id=trace_id, span_id=span_id, flags=1,
            ))
        req.resource_logs.append(logs_pb2.ResourceLogs(
            resource=h.resource(_resource_attrs(service, rnd)),
            scope_logs=[logs_pb2.ScopeLogs(
                scope=h.common_pb2.InstrumentationScope(name="org.slf4j", version="2.0.13"),
                log_records=records)],
        ))
    return Body(req.SerializeToString(), n_records, ids)


# ---------------------------------------------------------------------- client workers


def _rejected_items(signal_name: str, body: bytes) -> int:
    """Items a successful export's ``partial_success`` says were rejected (0 for an empty body)."""
    if not body:
        return 0
    if signal_name == "spans":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as m
        resp = m.ExportTraceServiceResponse.FromString(body)
        return resp.partial_success.rejected_spans
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as m
    resp = m.ExportLogsServiceResponse.FromString(body)
    return resp.partial_success.rejected_log_records


def _client_thread(slot: int, use_grpc: bool, pools: dict, counters, go, stop_at, tenant: str,
                   otlp_http: str, grpc_addr: str, timeout_s: float, unique_ids: bool) -> None:
    import grpc

    row = slot * NFIELDS
    signals = [("spans", TRACES_PATH, TRACES_GRPC), ("logs", LOGS_PATH, LOGS_GRPC)]
    host, port = otlp_http.rsplit(":", 1)
    conn = None
    channel = None
    calls = {}
    if use_grpc:
        channel = grpc.insecure_channel(grpc_addr, options=[("grpc.max_receive_message_length", 64 * MiB)])
        calls = {g: channel.unary_unary(g) for _, _, g in signals}
    metadata = [("x-scope-orgid", tenant)]
    headers = {"Content-Type": "application/x-protobuf", "X-Scope-OrgID": tenant}
    go.wait()
    i = slot
    while time.time() < stop_at.value:
        name, path, method = signals[i % 2]
        template = pools[name][(i // 2) % len(pools[name])]
        body, items = (template.fresh() if unique_ids else template.original), template.items
        i += 1
        t0 = time.perf_counter()
        outcome = None
        resp_body = b""
        if use_grpc:
            try:
                resp_body = calls[method](body, metadata=metadata, timeout=timeout_s)
                outcome = OK
            except grpc.RpcError as e:
                code = e.code()
                trailers = dict(e.trailing_metadata() or ())
                if code == grpc.StatusCode.UNAVAILABLE and "grpc-status-details-bin" in trailers:
                    outcome = GRPC_UNAVAILABLE
                    details = e.details() or ""
                    if "memory limit" in details:
                        counters[row + GRPC_UNAVAILABLE_MEMORY] += 1
                    elif "write-ahead log" in details:
                        counters[row + GRPC_UNAVAILABLE_WAL] += 1
                elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
                    # A transport failure: the server may or may not have stored the items.
                    outcome = AMBIGUOUS
                else:
                    outcome = OTHER
        else:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
                conn.request("POST", path, body=body, headers=headers)
                r = conn.getresponse()
                resp_body = r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                outcome = {200: OK, 429: HTTP_429, 503: HTTP_503}.get(status, OTHER)
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                outcome = AMBIGUOUS
        lat_us = int((time.perf_counter() - t0) * 1e6)
        counters[row + outcome] += 1
        if outcome == OK:
            rejected = _rejected_items(name, resp_body)
            counters[row + ITEMS_ACKED] += items - rejected
            counters[row + REJECTED_ITEMS] += rejected
            counters[row + (SPANS_ACKED if name == "spans" else LOGS_ACKED)] += items - rejected
            counters[row + BYTES_ACKED] += len(body)
            counters[row + LAT_OK_US] += lat_us
        elif outcome == AMBIGUOUS:
            counters[row + ITEMS_AMBIGUOUS] += items
            time.sleep(0.05)  # do not spin on a dead connection
        else:
            counters[row + LAT_REFUSED_US] += lat_us
    if conn is not None:
        conn.close()
    if channel is not None:
        channel.close()


def worker_process(first_slot: int, n_threads: int, grpc_every: int, counters, go, stop_at, ready,
                   tenant: str, otlp_http: str, grpc_addr: str, spans_per_req: int, logs_per_req: int,
                   pool_size: int, base_ns: int, seed: int, timeout_s: float, unique_ids: bool) -> None:
    """One client process: builds its request pool, then runs ``n_threads`` client threads."""
    rnd = random.Random(seed)
    pools = {
        "spans": [build_traces_body(spans_per_req, base_ns, rnd) for _ in range(pool_size)],
        "logs": [build_logs_body(logs_per_req, base_ns, rnd) for _ in range(pool_size)],
    }
    ready.put({k: [len(b.original) for b in v] for k, v in pools.items()})
    threads = []
    for t in range(n_threads):
        slot = first_slot + t
        use_grpc = grpc_every > 0 and slot % grpc_every == grpc_every - 1
        th = threading.Thread(target=_client_thread, daemon=True, args=(
            slot, use_grpc, pools, counters, go, stop_at, tenant, otlp_http, grpc_addr, timeout_s, unique_ids))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()


# ---------------------------------------------------------------------- the server


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (bytes) and Threads of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
            elif key == "Threads":
                out[key] = int(value)
    return out


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``strata serve`` process with its stderr in a file (never a pipe: a slow reader
    must not push back on the server's log writes)."""

    def __init__(self, binary: str, data_dir: Path, args: list[str], env: dict[str, str]):
        self.binary = binary
        self.data_dir = data_dir
        self.args = [
            binary, "serve",
            "--data-dir", str(data_dir),
            "--grpc-listen", "127.0.0.1:0",
            "--otlp-http-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0",
            "--log-format", "json",
            *args,
        ]
        self.env = env
        self.log_path = data_dir.parent / "strata-stderr.log"
        self.proc: subprocess.Popen | None = None
        self.addrs: dict[str, str] = {}

    def start(self, timeout_s: float = 120) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env={**os.environ, **self.env})
        log.close()
        deadline = time.monotonic() + timeout_s
        offset = 0
        pending = b""
        ready = False
        while time.monotonic() < deadline and not ready:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strata exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                fields = rec.get("fields", rec)
                msg = fields.get("message", rec.get("message"))
                if msg == "listening":
                    self.addrs[fields["listener"]] = fields["addr"]
                elif msg == "strata node ready":
                    ready = True
            time.sleep(0.05)
        if not ready or len(self.addrs) != 3:
            self.kill()
            raise RuntimeError(f"strata did not become ready (addrs {self.addrs}):\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def api(self) -> str:
        return "http://" + self.addrs["http"]

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.api + path, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def metrics(self) -> dict[str, float]:
        import helpers as h
        status, text = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        out: dict[str, float] = {}
        for name, _labels, value in h.parse_metrics(text):
            out[name] = out.get(name, 0.0) + value
        return out

    def sql_count(self, table: str, tenant: str) -> int:
        req = urllib.request.Request(
            self.api + "/api/v1/sql", data=json.dumps({"sql": f"SELECT count(*) AS n FROM {table}"}).encode(),
            headers={"Content-Type": "application/json", "X-Scope-OrgID": tenant}, method="POST")
        with urllib.request.urlopen(req, timeout=300) as r:
            return int(json.loads(r.read())["rows"][0][0])

    def stop(self, timeout_s: float) -> tuple[int | None, float]:
        """SIGTERM; the exit code (None if killed after ``timeout_s``) and seconds taken."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return code, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def log_summary(self) -> dict:
        """Size of the server's log and a count of its lines by message."""
        counts: dict[str, int] = {}
        lines = 0
        with open(self.log_path, "rb") as f:
            for raw in f:
                lines += 1
                m = re.search(rb'"message":"([^"]*)"', raw)
                key = m.group(1).decode(errors="replace") if m else "<non-json>"
                counts[key] = counts.get(key, 0) + 1
        return {"bytes": self.log_path.stat().st_size, "lines": lines,
                "by_message": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:15])}


# ---------------------------------------------------------------------- one scenario


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def slope_per_min(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over ts, per minute."""
    if len(ts) < 2:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return 0.0
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den


def columns(rows: list[dict]) -> dict[str, list]:
    """A time series as one list per field (None where a row lacks the field)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: [r.get(k) for r in rows] for k in keys}


def dump_report(report: dict) -> str:
    """Indented JSON, with every list of plain values on one line (the time series)."""
    flat: dict[str, str] = {}

    def mark(v):
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list) and v and all(not isinstance(x, (dict, list)) for x in v):
            key = f"@@{len(flat)}@@"
            flat[key] = json.dumps(v, separators=(",", ":"))
            return key
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(report), indent=1)
    return re.sub(r'"(@@\d+@@)"', lambda m: flat[m.group(1)], text)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def run_scenario(name: str, opts, binary: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"strata-soak-{name}-"))
    data_dir = tmp / "data"
    tenant = f"soak-{name.lower()}-{uuid.uuid4().hex[:10]}"
    if opts.memory_limit:
        # The node sizes its write buffer (and the other budgets) from the limit itself.
        args = ["--memory-limit", str(opts.memory_limit), *opts.server_arg]
    else:
        args = ["--max-buffer-bytes", str(opts.max_buffer_bytes), *opts.server_arg]
    env: dict[str, str] = dict(kv.split("=", 1) for kv in opts.server_env)
    if name == "A":
        description = "flush-slow: local object store, flushing works but ingest outruns it"
        shutdown_timeout = opts.shutdown_timeout_a
    else:
        description = "store-down: S3 endpoint is a closed port, every flush fails"
        port = closed_port()
        args += ["--storage", "s3://soak-bucket/strata"]
        env.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true",
                    "AWS_ACCESS_KEY_ID": "soak", "AWS_SECRET_ACCESS_KEY": "soak", "AWS_REGION": "us-east-1"})
        shutdown_timeout = opts.shutdown_timeout_b
    args += ["--shutdown-timeout", shutdown_timeout]
    server = Server(binary, data_dir, args, env)
    print(f"\n=== scenario {name}: {description}", flush=True)
    print("    " + " ".join(server.args) + (f"   (env {' '.join(f'{k}={v}' for k, v in env.items())})" if env else ""),
          flush=True)
    server.start()
    pid = server.pid
    result: dict = {
        "scenario": name,
        "description": description,
        "tenant": tenant,
        "command": server.args,
        "env": env,
        "max_buffer_bytes": None if opts.memory_limit else opts.max_buffer_bytes,
        "memory_limit_bytes": opts.memory_limit,
    }
    try:
        # Clients: processes of threads, each thread one connection (HTTP/1.1 keep-alive or an
        # HTTP/2 gRPC channel of its own).
        procs = max(1, min(opts.procs, opts.clients))
        ctx = mp.get_context("spawn")
        counters = ctx.RawArray("q", opts.clients * NFIELDS)
        go = ctx.Event()
        stop_at = ctx.RawValue("d", float("inf"))
        ready = ctx.Queue()
        base_ns = time.time_ns()
        workers = []
        slot = 0
        for p in range(procs):
            n = opts.clients // procs + (1 if p < opts.clients % procs else 0)
            w = ctx.Process(target=worker_process, daemon=True, args=(
                slot, n, opts.grpc_every, counters, go, stop_at, ready, tenant, server.addrs["otlp-http"],
                server.addrs["otlp-grpc"], opts.spans_per_request, opts.logs_per_request, opts.pool_size,
                base_ns, opts.seed + p, opts.request_timeout, not opts.repeat_ids))
            w.start()
            workers.append(w)
            slot += n
        sizes = {"spans": [], "logs": []}
        for _ in workers:
            got = ready.get(timeout=600)
            for k in sizes:
                sizes[k] += got[k]
        n_grpc = sum(1 for s in range(opts.clients) if opts.grpc_every > 0 and s % opts.grpc_every == opts.grpc_every - 1)
        result["load"] = {
            "clients": opts.clients, "client_processes": procs,
            "grpc_clients": n_grpc, "http_protobuf_clients": opts.clients - n_grpc,
            "spans_per_request": opts.spans_per_request, "logs_per_request": opts.logs_per_request,
            "traces_body_bytes_mean": int(statistics.fmean(sizes["spans"])),
            "logs_body_bytes_mean": int(statistics.fmean(sizes["logs"])),
            "compression": "none",
            "ids": "repeated (--repeat-ids)" if opts.repeat_ids else "fresh trace/span ids in every request",
            "duration_s": opts.duration,
        }
        print(f"    load: {opts.clients} clients ({n_grpc} gRPC, {opts.clients - n_grpc} HTTP/protobuf) in {procs} "
              f"processes; traces bodies {result['load']['traces_body_bytes_mean'] / 1024:.0f} KiB "
              f"({opts.spans_per_request} spans), logs bodies {result['load']['logs_body_bytes_mean'] / 1024:.0f} KiB "
              f"({opts.logs_per_request} records)", flush=True)

        time.sleep(1.0)
        base = proc_status(pid)
        result["baseline_rss_bytes"] = base["VmRSS"]
        cpu0 = proc_cpu_seconds(pid)
        machine0 = machine_cpu_seconds()

        # Samplers: RSS and outcome counts every interval; /metrics every second.
        samples: list[dict] = []
        metric_samples: list[dict] = []
        sampling = threading.Event()  # RSS: until the process is gone
        sampling.set()
        scraping = threading.Event()  # /metrics: during the load
        scraping.set()
        phase = ["load"]  # load | after (count query, idle) | shutdown
        # The machine is shared: a node over the safety cap is killed (and the run says so).
        cap = int(opts.rss_cap_fraction * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        killed: dict = {}
        result["rss_safety_cap_bytes"] = cap

        def totals() -> list[int]:
            t = [0] * NFIELDS
            for s in range(opts.clients):
                row = s * NFIELDS
                for f in range(NFIELDS):
                    t[f] += counters[row + f]
            return t

        t_start = time.time()

        def sample_rss() -> None:
            while sampling.is_set():
                now = time.time()
                try:
                    st = proc_status(pid)
                    st["VmRSS"], st["VmHWM"]
                except (OSError, KeyError):  # gone (or a zombie without memory)
                    break
                if st["VmRSS"] > cap and not killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.update(t=round(now - t_start, 1), phase=phase[0], rss=st["VmRSS"])
                    print(f"    !!! RSS {st['VmRSS'] / MiB:.0f} MiB over the safety cap {cap / MiB:.0f} MiB "
                          f"at t={now - t_start:.1f}s ({phase[0]}): node killed", flush=True)
                c = totals()
                samples.append({"t": round(now - t_start, 3), "phase": phase[0], "rss": st["VmRSS"], "hwm": st["VmHWM"],
                                "threads": st["Threads"], "ok": c[OK], "http_429": c[HTTP_429],
                                "http_503": c[HTTP_503], "grpc_unavailable": c[GRPC_UNAVAILABLE],
                                "other": c[OTHER], "ambiguous": c[AMBIGUOUS], "items": c[ITEMS_ACKED]})
                time.sleep(max(0.0, opts.sample_interval - (time.time() - now)))

        def sample_metrics() -> None:
            while scraping.is_set():
                now = time.time()
                try:
                    m = server.metrics()
                    metric_samples.append({
                        "t": round(now - t_start, 3),
                        "buffered_bytes": int(m.get("strata_storage_buffered_bytes", 0)),
                        "wal_disk_bytes": int(m.get("strata_wal_disk_bytes", 0)),
                        "refused_memory": int(m.get("strata_storage_writes_refused_memory_total", 0)),
                        "refused_wal": int(m.get("strata_storage_writes_refused_wal_total", 0)),
                        "rows_flushed": int(m.get("strata_storage_rows_flushed_total", 0)),
                        "flush_errors": int(m.get("strata_storage_flush_errors_total", 0)),
                        "compactions": int(m.get("strata_compaction_runs_total", 0)),
                        "compaction_bytes_in": int(m.get("strata_compaction_bytes_in_total", 0)),
                        "loadavg_1m": os.getloadavg()[0],
                    })
                except Exception as e:  # noqa: BLE001 - a slow scrape under load is data, not a failure
                    metric_samples.append({"t": round(now - t_start, 3), "error": str(e)})
                time.sleep(max(0.0, 1.0 - (time.time() - now)))

        samplers = [threading.Thread(target=sample_rss, daemon=True),
                    threading.Thread(target=sample_metrics, daemon=True)]
        stop_at.value = t_start + opts.duration
        go.set()
        for s in samplers:
            s.start()
        last_print = t_start
        while time.time() < t_start + opts.duration:
            time.sleep(0.5)
            if time.time() - last_print >= 10 and samples:
                last_print = time.time()
                s = samples[-1]
                mb = next((m for m in reversed(metric_samples) if "buffered_bytes" in m), {})
                print(f"    t={s['t']:5.0f}s rss={s['rss'] / MiB:7.1f} MiB hwm={s['hwm'] / MiB:7.1f} MiB "
                      f"buffered={mb.get('buffered_bytes', 0) / MiB:7.1f} MiB ok={s['ok']} 429={s['http_429']} "
                      f"503={s['http_503']} unavail={s['grpc_unavailable']} other={s['other']} "
                      f"ambiguous={s['ambiguous']}", flush=True)
        for w in workers:
            w.join(timeout=opts.request_timeout + 30)
            if w.is_alive():
                w.terminate()
        t_end_load = time.time()
        phase[0] = "after"
        scraping.clear()
        samplers[1].join()
        machine1 = machine_cpu_seconds()
        c = totals()
        load_s = t_end_load - t_start

        def attempt(f, default=None):
            try:
                return f()
            except Exception as e:  # noqa: BLE001 - a dead node: recorded as missing values
                print(f"    (after the load: {type(e).__name__}: {e})", flush=True)
                return default

        def status_of() -> dict:
            st = proc_status(pid)
            st["VmRSS"], st["VmHWM"]
            return st

        no_status = {"VmRSS": None, "VmHWM": None}
        last_hwm = max((s["hwm"] for s in samples), default=None)
        cpu1 = attempt(lambda: proc_cpu_seconds(pid), cpu0)
        end = attempt(status_of, {"VmRSS": samples[-1]["rss"] if samples else None, "VmHWM": last_hwm})
        m_end = attempt(server.metrics, {})

        # Correctness: every acknowledged item is in the table, nothing refused is.
        stored = {"spans": attempt(lambda: server.sql_count("spans", tenant)),
                  "logs": attempt(lambda: server.sql_count("logs", tenant))}
        after_query = attempt(status_of, no_status)
        health = attempt(lambda: server.get("/healthz")[0])
        readyz = attempt(lambda: server.get("/readyz")[0])
        # Idle: does RSS come back down once the load stops?
        time.sleep(opts.idle)
        idle = attempt(status_of, no_status)
        m_idle = attempt(server.metrics, {})

        load_samples = [s for s in samples if s["phase"] == "load"]
        rss = [s["rss"] for s in load_samples]
        refused = c[HTTP_429] + c[HTTP_503] + c[GRPC_UNAVAILABLE]
        first_refusal = next((s["t"] for s in samples
                              if s["http_429"] + s["http_503"] + s["grpc_unavailable"] > 0), None)
        # Growth in the steady state: from 5 s after the first refusal (the buffer is full)
        # to the end of the load; the second half of the load when nothing was refused.
        steady_from = first_refusal + 5 if first_refusal is not None else opts.duration / 2
        if opts.duration - steady_from < 10:
            steady_from = opts.duration / 2
        steady = [s for s in load_samples if s["t"] >= steady_from]
        buffered = [m["buffered_bytes"] for m in metric_samples if "buffered_bytes" in m]
        acked = c[SPANS_ACKED] + c[LOGS_ACKED]
        stored_total = None if None in stored.values() else stored["spans"] + stored["logs"]
        result.update({
            "peak_rss_bytes": end["VmHWM"],
            "rss_sampled_max_bytes": max(rss) if rss else None,
            "rss_percentiles_bytes": {f"p{p}": pct(rss, p) for p in (50, 90, 99)},
            "rss_end_of_load_bytes": end["VmRSS"],
            "rss_after_count_query_bytes": after_query["VmRSS"],
            "hwm_after_count_query_bytes": after_query["VmHWM"],
            "rss_after_idle_bytes": idle["VmRSS"],
            "idle_s": opts.idle,
            "steady_state_from_s": round(steady_from, 1),
            "rss_slope_steady_state_mib_per_min": round(slope_per_min(
                [s["t"] for s in steady], [s["rss"] / MiB for s in steady]), 2),
            "rss_steady_state_min_max_bytes": [min((s["rss"] for s in steady), default=None),
                                               max((s["rss"] for s in steady), default=None)],
            "threads_max": max((s["threads"] for s in load_samples), default=None),
            "server_cpu_s": round(cpu1 - cpu0, 1),
            "server_cpu_cores_mean": round((cpu1 - cpu0) / load_s, 2),
            # Everything else on the machine: the clients, and whatever else ran meanwhile.
            "other_cpu_cores_mean": round(((machine1 - machine0) - (cpu1 - cpu0)) / load_s, 2),
            "requests": {
                "ok": c[OK], "http_429": c[HTTP_429], "http_503": c[HTTP_503],
                "grpc_unavailable": c[GRPC_UNAVAILABLE],
                "grpc_unavailable_memory": c[GRPC_UNAVAILABLE_MEMORY],
                "grpc_unavailable_wal": c[GRPC_UNAVAILABLE_WAL],
                "other": c[OTHER], "ambiguous": c[AMBIGUOUS],
                "accepted": c[OK], "refused": refused,
                "refused_fraction": round(refused / max(1, c[OK] + refused), 4),
            },
            "first_refusal_s": first_refusal,
            "latency_ms_mean": {
                "accepted": round(c[LAT_OK_US] / max(1, c[OK]) / 1000, 1),
                "refused": round(c[LAT_REFUSED_US] / max(1, refused) / 1000, 1),
            },
            "accepted_items": acked,
            "accepted_spans": c[SPANS_ACKED],
            "accepted_logs": c[LOGS_ACKED],
            "rejected_items_partial_success": c[REJECTED_ITEMS],
            "accepted_items_per_s": round(acked / load_s),
            "accepted_body_mib_per_s": round(c[BYTES_ACKED] / load_s / MiB, 2),
            "load_seconds": round(load_s, 1),
            "metrics_end_of_load": {
                "strata_storage_buffered_bytes": int(m_end.get("strata_storage_buffered_bytes", 0)),
                "strata_storage_writes_refused_memory_total": int(m_end.get("strata_storage_writes_refused_memory_total", 0)),
                "strata_storage_writes_refused_wal_total": int(m_end.get("strata_storage_writes_refused_wal_total", 0)),
                "strata_storage_flush_errors_total": int(m_end.get("strata_storage_flush_errors_total", 0)),
                "strata_storage_rows_flushed_total": int(m_end.get("strata_storage_rows_flushed_total", 0)),
                "strata_storage_files_written_total": int(m_end.get("strata_storage_files_written_total", 0)),
                "strata_wal_disk_bytes": int(m_end.get("strata_wal_disk_bytes", 0)),
                "strata_wal_records_total": int(m_end.get("strata_wal_records_total", 0)),
                "strata_storage_bytes_written_total": int(m_end.get("strata_storage_bytes_written_total", 0)),
                "strata_compaction_runs_total": int(m_end.get("strata_compaction_runs_total", 0)),
                "strata_compaction_files_in_total": int(m_end.get("strata_compaction_files_in_total", 0)),
                "strata_compaction_bytes_in_total": int(m_end.get("strata_compaction_bytes_in_total", 0)),
                "strata_compaction_bytes_out_total": int(m_end.get("strata_compaction_bytes_out_total", 0)),
            },
            "buffered_bytes_max_scraped": max(buffered) if buffered else None,
            "buffered_bytes_after_idle": int(m_idle.get("strata_storage_buffered_bytes", 0)),
            "correctness": {
                "stored_spans": stored["spans"], "stored_logs": stored["logs"],
                "acked_spans": c[SPANS_ACKED], "acked_logs": c[LOGS_ACKED],
                "ambiguous_items": c[ITEMS_AMBIGUOUS],
                # Exact when no request went unanswered; otherwise stored may exceed acked by at
                # most the items of the unanswered requests.
                "ok": None if stored_total is None
                else (stored_total == acked) if c[ITEMS_AMBIGUOUS] == 0
                else (acked <= stored_total <= acked + c[ITEMS_AMBIGUOUS]),
            },
            "healthz_after_load": health,
            "readyz_after_load": readyz,
        })
        # Verdict. With --memory-limit the limit is on the whole process: the peak must stay
        # under it, no allowance. With --max-buffer-bytes the buffer alone may hold the limit,
        # so the check allows the baseline plus a stated fraction of the limit.
        if opts.memory_limit:
            limit, allowance, rule = opts.memory_limit, 0, "none: --memory-limit bounds the process"
        else:
            limit = opts.max_buffer_bytes
            allowance = int(result["baseline_rss_bytes"] + opts.allowance_fraction * limit)
            rule = f"baseline RSS + {opts.allowance_fraction:g} x max-buffer-bytes"
        result["allowance"] = {
            "rule": rule,
            "bound_bytes": limit + allowance,
            "peak_over_limit_bytes": result["peak_rss_bytes"] - limit,
            "peak_under_limit": result["peak_rss_bytes"] <= limit,
            "peak_within_bound": result["peak_rss_bytes"] <= limit + allowance,
            "peak_over_bound_bytes": max(0, result["peak_rss_bytes"] - limit - allowance),
        }
        phase[0] = "shutdown"
        code, took = server.stop(opts.stop_wait)
        sampling.clear()
        samplers[0].join()
        result["sigterm"] = {"exit_code": code, "seconds": round(took, 1), "clean": code == 0}
        result["killed_by_safety_cap"] = killed or None
        after = [s for s in samples if s["phase"] == "after"]
        down = [s for s in samples if s["phase"] == "shutdown"]
        result["rss_max_after_load_bytes"] = max((s["rss"] for s in after), default=None)
        result["rss_max_during_shutdown_bytes"] = max((s["rss"] for s in down), default=None)
        result["peak_rss_lifetime_bytes"] = max((s["hwm"] for s in samples), default=None)
        if result["peak_rss_lifetime_bytes"] is not None:
            result["allowance"]["lifetime_peak_within_bound"] = (
                result["peak_rss_lifetime_bytes"] <= result["allowance"]["bound_bytes"])
        result["server_log"] = server.log_summary()
        result["samples"] = columns(samples)
        result["metric_samples"] = columns(metric_samples)
        return result
    finally:
        server.kill()
        if opts.keep_data:
            print(f"    data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def print_summary(r: dict) -> None:
    mib = lambda b: f"{b / MiB:.1f} MiB" if b is not None else "n/a"  # noqa: E731
    req = r["requests"]
    met = r["metrics_end_of_load"]
    cor = r["correctness"]
    a = r["allowance"]
    print(f"--- scenario {r['scenario']}: {r['description']}")
    if r.get("memory_limit_bytes"):
        print(f"    configured limit (--memory-limit): {mib(r['memory_limit_bytes'])}")
    else:
        print(f"    configured limit (--max-buffer-bytes): {mib(r['max_buffer_bytes'])}")
    print(f"    baseline RSS: {mib(r['baseline_rss_bytes'])}   peak RSS (VmHWM): {mib(r['peak_rss_bytes'])}   "
          f"peak - limit: {mib(a['peak_over_limit_bytes'])}")
    p = r["rss_percentiles_bytes"]
    print(f"    RSS over the load: p50 {mib(p['p50'])}  p90 {mib(p['p90'])}  p99 {mib(p['p99'])}  "
          f"max sampled {mib(r['rss_sampled_max_bytes'])}")
    lo, hi = r["rss_steady_state_min_max_bytes"]
    print(f"    steady state (from {r['steady_state_from_s']} s): RSS {mib(lo)} .. {mib(hi)}, slope "
          f"{r['rss_slope_steady_state_mib_per_min']:+.1f} MiB/min")
    print(f"    RSS end of load {mib(r['rss_end_of_load_bytes'])}, after count query {mib(r['rss_after_count_query_bytes'])}, "
          f"after {r['idle_s']:g}s idle {mib(r['rss_after_idle_bytes'])}; max after the load "
          f"{mib(r['rss_max_after_load_bytes'])}, during shutdown {mib(r['rss_max_during_shutdown_bytes'])}; "
          f"lifetime peak {mib(r['peak_rss_lifetime_bytes'])}")
    print(f"    requests: ok {req['ok']}, 429 {req['http_429']}, 503 {req['http_503']}, gRPC UNAVAILABLE "
          f"{req['grpc_unavailable']} (memory {req['grpc_unavailable_memory']}, wal {req['grpc_unavailable_wal']}), "
          f"other {req['other']}, unanswered {req['ambiguous']}; refused {req['refused_fraction'] * 100:.1f}%; "
          f"first refusal at {r['first_refusal_s']} s")
    print(f"    accepted: {r['accepted_items']} items ({r['accepted_spans']} spans, {r['accepted_logs']} logs) = "
          f"{r['accepted_items_per_s']} items/s, {r['accepted_body_mib_per_s']} MiB/s of OTLP; mean latency "
          f"accepted {r['latency_ms_mean']['accepted']} ms, refused {r['latency_ms_mean']['refused']} ms")
    print(f"    /metrics: buffered {mib(met['strata_storage_buffered_bytes'])} (max scraped "
          f"{mib(r['buffered_bytes_max_scraped'])}), refused memory {met['strata_storage_writes_refused_memory_total']}, "
          f"refused wal {met['strata_storage_writes_refused_wal_total']}, flush errors {met['strata_storage_flush_errors_total']}, "
          f"rows flushed {met['strata_storage_rows_flushed_total']}, WAL on disk {mib(met['strata_wal_disk_bytes'])}")
    print(f"    server CPU {r['server_cpu_cores_mean']} cores (everything else {r['other_cpu_cores_mean']}); threads max {r['threads_max']}; server log "
          f"{mib(r['server_log']['bytes'])} in {r['server_log']['lines']} lines")
    print(f"    correctness: stored {cor['stored_spans']} spans / {cor['stored_logs']} logs vs acknowledged "
          f"{cor['acked_spans']} / {cor['acked_logs']} (unanswered items {cor['ambiguous_items']}): "
          f"{'OK' if cor['ok'] else 'not checked' if cor['ok'] is None else 'MISMATCH'}")
    print(f"    health after load: /healthz {r['healthz_after_load']}, /readyz {r['readyz_after_load']}; SIGTERM: exit "
          f"{r['sigterm']['exit_code']} after {r['sigterm']['seconds']} s")
    if r.get("killed_by_safety_cap"):
        k = r["killed_by_safety_cap"]
        print(f"    KILLED: RSS {mib(k['rss'])} passed the safety cap {mib(r['rss_safety_cap_bytes'])} at t={k['t']} s "
              f"({k['phase']})")
    print(f"    verdict: peak {'<=' if a['peak_under_limit'] else '>'} limit; "
          f"{'within' if a['peak_within_bound'] else 'OVER'} limit + allowance ({a['rule']} = {mib(a['bound_bytes'])}) "
          f"during the load; lifetime peak {'within' if a.get('lifetime_peak_within_bound') else 'OVER'} it")


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a byte size: {text!r}")
    unit = (m.group(2) or "").upper()[:1]
    return int(m.group(1)) * {"": 1, "K": 1024, "M": MiB, "G": 1024 * MiB}[unit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--bin", help="strata binary (default: target/release/strata if present, else target/debug/strata)")
    ap.add_argument("--scenario", choices=["A", "B", "both"], default="both")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load per scenario")
    ap.add_argument("--clients", type=int, default=32, help="concurrent client connections")
    ap.add_argument("--procs", type=int, default=4, help="client processes the clients are spread over")
    ap.add_argument("--grpc-every", type=int, default=2,
                    help="every Nth client uses gRPC, the others HTTP/protobuf (0: no gRPC)")
    ap.add_argument("--max-buffer-bytes", type=parse_bytes, default=256 * MiB)
    ap.add_argument("--memory-limit", type=parse_bytes, default=None,
                    help="run the node with --memory-limit instead of --max-buffer-bytes; the verdict is then "
                         "peak RSS <= this limit")
    ap.add_argument("--spans-per-request", type=int, default=500)
    ap.add_argument("--logs-per-request", type=int, default=1000)
    ap.add_argument("--pool-size", type=int, default=6, help="distinct request bodies per signal per process")
    ap.add_argument("--repeat-ids", action="store_true",
                    help="send the pooled bodies byte for byte (ids repeat; Parquet compresses them unrealistically well)")
    ap.add_argument("--request-timeout", type=float, default=60)
    ap.add_argument("--sample-interval", type=float, default=0.1)
    ap.add_argument("--idle", type=float, default=5, help="seconds to wait after the load before the last RSS sample")
    ap.add_argument("--shutdown-timeout-a", default="30s", help="--shutdown-timeout of scenario A")
    ap.add_argument("--shutdown-timeout-b", default="5s", help="--shutdown-timeout of scenario B")
    ap.add_argument("--stop-wait", type=float, default=180, help="seconds to wait for exit after SIGTERM")
    ap.add_argument("--allowance-fraction", type=float, default=0.5,
                    help="verdict bound: limit + baseline RSS + this fraction of the limit")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra `strata serve` argument (repeat; e.g. --server-arg=--flush-max-bytes=33554432)")
    ap.add_argument("--rss-cap-fraction", type=float, default=0.7,
                    help="safety: kill the node if its RSS passes this fraction of the machine's memory")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment variable of the node (repeat; e.g. MALLOC_ARENA_MAX=2)")
    ap.add_argument("--build-profile", help="label of the binary's build profile (default: from its path)")
    ap.add_argument("--label", default="", help="free text stored in the JSON result and its file name")
    ap.add_argument("--note", default="", help="free text stored in the JSON result (e.g. where the binary came from)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"), help="directory of the JSON result")
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data directory and server log")
    opts = ap.parse_args()

    binary = opts.bin
    if binary is None:
        release = REPO_ROOT / "target" / "release" / "strata"
        binary = str(release if release.exists() else REPO_ROOT / "target" / "debug" / "strata")
    if not os.access(binary, os.X_OK):
        print(f"strata binary not found at {binary}", file=sys.stderr)
        return 2
    profile = opts.build_profile or (
        "release" if "/release/" in binary else "debug" if "/debug/" in binary else "unknown")
    print(f"strata binary: {binary} ({profile} build); {os.cpu_count()} CPUs", flush=True)

    started = dt.datetime.now(dt.timezone.utc)
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "binary": binary,
        "build_profile": profile,
        "git_commit": git_commit(),
        "binary_note": opts.note,
        "cpus": os.cpu_count(),
        "mem_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "argv": sys.argv,
        "label": opts.label,
        "loadavg_at_start": os.getloadavg(),
        "scenarios": [],
    }
    failed = False
    for name in (["A", "B"] if opts.scenario == "both" else [opts.scenario]):
        r = run_scenario(name, opts, binary)
        report["scenarios"].append(r)
        print_summary(r)
        failed |= not (r["correctness"]["ok"] and r["sigterm"]["clean"] and r["healthz_after_load"] == 200
                       and r["allowance"]["peak_within_bound"])

    out_dir = Path(opts.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", opts.label).strip("-")
    path = out_dir / (f"soak-{started.strftime('%Y%m%dT%H%M%SZ')}-{profile}-{opts.scenario}"
                      + (f"-{label}" if label else "") + ".json")
    path.write_text(dump_report(report) + "\n")
    print(f"\nresults: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
