"""Crash safety: SIGKILL under load, damaged write-ahead logs, graceful shutdown.

What is tested is the durability contract of storage/src/wal.rs and storage/src/store.rs:

* an export is acknowledged (HTTP 200 / gRPC OK, no ``partial_success``) only once its rows are
  in the WAL and fsynced, so an acknowledged item survives any SIGKILL, exactly once;
* on start the WAL is replayed, skipping what the catalog's watermark says is in Parquet;
* a torn or corrupt segment tail is cut, counted (``strata_wal_corrupt_tails_total``) and
  logged, and the node starts with every record before the cut;
* SIGTERM flushes the write buffer, so the next start replays nothing.

Beyond that: a torn frame header, a zero-filled tail, SIGTERM under load, /readyz and the SQL
API during a long replay, and a lost WAL directory (numbering must go on above the watermarks).

The loaders send with real clients: grpcio with the generated OTLP service stubs, and requests
with OTLP/HTTP protobuf; spans are made by the OpenTelemetry SDK and encoded by its OTLP encoder.
The SDK's exporter classes are not used because they hide ``partial_success`` and retry on their
own (an id must be sent at most once for "exactly once" to be checkable).

The kill moments (and the garbage segment's bytes) come from a seeded RNG. The seed is printed
by every test that uses it and is part of the loop tests' assertion messages; rerun a failure
with ``STRATA_CRASH_SEED=<seed>``. ``STRATA_CRASH_CYCLES`` changes the number of kills
(default 24).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import struct
import threading
import time
import zlib
from pathlib import Path

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import (
    STRATA_BIN,
    NodeError,
    StrataNode,
    gauge_metric,
    log_record,
    logs_request,
    metrics_request,
    number_point,
    parse_metrics,
    parquet_files,
    unique_tenant,
)

SIGNALS = ("spans", "logs", "metrics")
TRANSPORTS = ("grpc", "http")
HTTP_PATHS = {"spans": "/v1/traces", "logs": "/v1/logs", "metrics": "/v1/metrics"}
RESPONSE_TYPES = {
    "spans": trace_service_pb2.ExportTraceServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
}
EXPORT_TIMEOUT_S = 10.0
# A WAL frame: u32 payload length | u32 CRC-32 of the payload (both little endian) | payload.
FRAME_HEADER = 8
CUT_MESSAGE = "WAL segment has a torn or corrupt tail; cutting it"
REPLAY_MESSAGE = "replayed WAL"
# gRPC codes a client may see when the server dies under it (connection reset or refused,
# stream cut). Anything else would be an answer the server chose to give.
KILL_GRPC_CODES = {"UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED", "UNKNOWN", "INTERNAL"}


# ---------------------------------------------------------------------------- fixtures


# One seed per run of the module, printed by every test that uses it (pytest shows a failing
# test's output).
_SEED = int(os.environ.get("STRATA_CRASH_SEED") or random.SystemRandom().randrange(2**32))


@pytest.fixture
def crash_seed() -> int:
    print(f"\ncrash test seed: {_SEED} (rerun with STRATA_CRASH_SEED={_SEED})")
    return _SEED


class CrashNodes:
    """Nodes of one test. Tests kill and restart them freely; at teardown a node still running
    must stop cleanly on SIGTERM (exit code 0)."""

    def __init__(self, base: Path):
        self.base = base
        self.nodes: list[StrataNode] = []

    def new(self, *extra_args: str, data_dir: Path | None = None, name: str | None = None) -> StrataNode:
        name = name or f"node{len(self.nodes) + 1}"
        node = StrataNode(data_dir or self.base / name / "data", list(extra_args), name=name)
        self.nodes.append(node)
        return node

    def stop_all(self) -> None:
        errors = []
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.stop_clean()
                except AssertionError as e:
                    errors.append(str(e))
        if errors:
            raise NodeError("\n\n".join(errors))


@pytest.fixture
def crash_nodes(tmp_path):
    assert os.path.isfile(STRATA_BIN) and os.access(STRATA_BIN, os.X_OK), (
        f"strata binary not found at {STRATA_BIN}; build it with `cargo build -p strata-server`")
    nodes = CrashNodes(tmp_path)
    yield nodes
    nodes.stop_all()


# ---------------------------------------------------------------------------- node helpers


def kill9(node: StrataNode) -> None:
    """SIGKILL, and waits for the process to be gone."""
    code = node.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL, f"expected death by SIGKILL, got exit code {code}"


def wait_ready(node: StrataNode, timeout: float = 30.0) -> None:
    """``StrataNode.start`` waits for the 'ready' log line; /readyz must agree."""
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(node.api_url + "/readyz", timeout=10)
        if r.status_code == 200:
            assert r.text == "ready", r.text
            return
        assert r.status_code == 503, (r.status_code, r.text)
        assert time.monotonic() < deadline, f"/readyz still {r.status_code} after {timeout}s"
        time.sleep(0.05)


def start_ready(node: StrataNode) -> StrataNode:
    node.start()
    wait_ready(node)
    return node


def metric(node: StrataNode, name: str) -> float:
    """The value of an unlabelled sample of /metrics, which must be present."""
    samples = [v for n, labels, v in parse_metrics(node.metrics_text()) if n == name and not labels]
    assert len(samples) == 1, f"/metrics has {len(samples)} samples named {name}"
    return samples[0]


def log_records(node: StrataNode, message: str) -> list[dict]:
    """JSON log lines of the node's current process with this message."""
    out = []
    for line in node.stderr_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == message:
            out.append(record)
    return out


def replay_log(node: StrataNode) -> dict:
    records = log_records(node, REPLAY_MESSAGE)
    assert len(records) == 1, f"expected one '{REPLAY_MESSAGE}' line, got {records}"
    return records[0]


# ---------------------------------------------------------------------------- WAL files


def wal_dir(node: StrataNode) -> Path:
    return node.data_dir / "wal"


def wal_segments(node: StrataNode) -> list[Path]:
    return sorted(p for p in wal_dir(node).iterdir() if p.suffix == ".wal" and p.stem.isdigit())


def read_frames(path: Path) -> list[tuple[int, int, bytes]]:
    """(offset, payload length, payload) of every record; the file must be whole."""
    data = path.read_bytes()
    frames = []
    offset = 0
    while offset < len(data):
        assert len(data) - offset >= FRAME_HEADER, f"{path}: torn header at {offset}"
        length, crc = struct.unpack_from("<II", data, offset)
        payload = data[offset + FRAME_HEADER: offset + FRAME_HEADER + length]
        assert len(payload) == length, f"{path}: torn record at {offset}"
        assert zlib.crc32(payload) == crc, f"{path}: checksum mismatch at {offset}"
        frames.append((offset, length, payload))
        offset += FRAME_HEADER + length
    return frames


def payload_seq(payload: bytes) -> int:
    """payload = u8 format (1: the rows, 2: the OTLP request) | u64 sequence number | ..."""
    assert payload[0] in (1, 2), f"WAL format {payload[0]}"
    return struct.unpack_from("<Q", payload, 1)[0]


def newest_nonempty_segment(node: StrataNode) -> Path:
    segments = [p for p in wal_segments(node) if p.stat().st_size > 0]
    assert segments, f"no non-empty WAL segment in {wal_dir(node)}: {wal_segments(node)}"
    return segments[-1]


# ---------------------------------------------------------------------------- exporting


class SpanMaker:
    """Spans made by the real OpenTelemetry SDK (TracerProvider), encoded by its OTLP encoder."""

    def __init__(self, worker: str):
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "crash-loader",
                                                                  "loader.worker": worker}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("e2e.crash", "1.0")

    def request(self, ids: list[str]) -> trace_service_pb2.ExportTraceServiceRequest:
        for item_id in ids:
            self.tracer.start_span(item_id, attributes={"test.id": item_id}).end()
        spans = self.exporter.get_finished_spans()
        self.exporter.clear()
        assert [s.name for s in spans] == ids
        return encode_spans(spans)


def build_request(signal_name: str, ids: list[str], spans: SpanMaker):
    now = time.time_ns()
    if signal_name == "spans":
        return spans.request(ids)
    if signal_name == "logs":
        return logs_request([log_record(i, time_ns=now + k, attrs={"test.id": i}) for k, i in enumerate(ids)],
                            service="crash-loader")
    return metrics_request([gauge_metric("crash_gauge", [
        number_point(float(k), time_ns=now + k, attrs={"test.id": i}) for k, i in enumerate(ids)])],
        service="crash-loader")


def failure_kind(text: str) -> str:
    """A short name for why a call failed, for the summary."""
    text = text.lower()
    for needle, kind in (("refused", "refused"), ("failed to connect", "refused"), ("reset", "reset"),
                         ("remotedisconnected", "disconnected"), ("closed", "closed"), ("goaway", "goaway"),
                         ("timed out", "timeout"), ("deadline", "timeout")):
        if needle in text:
            return kind
    return text[:60]


class Client:
    """OTLP clients for one node process: a grpcio channel with the generated service stubs, and
    a keep-alive requests session for OTLP/HTTP protobuf. No retries anywhere: one call, one
    attempt, so that an id is sent at most once."""

    def __init__(self, grpc_addr: str, otlp_url: str, tenant: str):
        self.tenant = tenant
        self.otlp_url = otlp_url
        self.channel = grpc.insecure_channel(grpc_addr)
        self.stubs = {
            "spans": trace_service_pb2_grpc.TraceServiceStub(self.channel),
            "logs": logs_service_pb2_grpc.LogsServiceStub(self.channel),
            "metrics": metrics_service_pb2_grpc.MetricsServiceStub(self.channel),
        }
        self.session = requests.Session()

    def close(self) -> None:
        self.channel.close()
        self.session.close()

    def export(self, signal_name: str, transport: str, request) -> tuple[bool, str]:
        """(acknowledged, outcome). Acknowledged means success without partial_success; a
        transport failure is not (the items may or may not be stored). Raises on answers no
        crash can explain (an HTTP error status)."""
        if transport == "grpc":
            try:
                response = self.stubs[signal_name].Export(
                    request, metadata=[("x-scope-orgid", self.tenant)], timeout=EXPORT_TIMEOUT_S)
            except grpc.RpcError as e:
                return False, f"grpc:{e.code().name}:{failure_kind(e.details() or '')}"
            if response.HasField("partial_success"):
                return False, f"grpc:partial_success:{response.partial_success}"
            return True, "grpc:ok"
        try:
            r = self.session.post(self.otlp_url + HTTP_PATHS[signal_name], data=request.SerializeToString(),
                                  headers={"Content-Type": "application/x-protobuf", "X-Scope-OrgID": self.tenant},
                                  timeout=(5, EXPORT_TIMEOUT_S))
        except requests.RequestException as e:
            return False, f"http:{type(e).__name__}:{failure_kind(str(e))}"
        if r.status_code != 200:
            return False, f"http:status:{r.status_code}:{r.content[:200]!r}"
        response = RESPONSE_TYPES[signal_name].FromString(r.content)
        if response.HasField("partial_success"):
            return False, f"http:partial_success:{response.partial_success}"
        return True, "http:ok"


def export_acked(node: StrataNode, tenant: str, signal_name: str, transport: str, ids: list[str]) -> None:
    """One export that must be acknowledged."""
    client = Client(node.grpc_addr, node.otlp_url, tenant)
    try:
        ok, outcome = client.export(signal_name, transport, build_request(signal_name, ids, SpanMaker("single")))
    finally:
        client.close()
    assert ok, f"export of {ids} ({signal_name} over {transport}) not acknowledged: {outcome}"


# ---------------------------------------------------------------------------- reading back


def stored_ids(node: StrataNode, tenant: str) -> dict[str, collections.Counter]:
    """test.id -> number of rows, per table; checks the id columns agree with each other."""
    out = {}
    for table in SIGNALS:
        rows = node.sql(f"SELECT attributes['test.id'] AS id FROM {table}", tenant=tenant)
        counts = collections.Counter(r["id"] for r in rows)
        assert None not in counts, f"{table}: {counts[None]} rows without test.id"
        out[table] = counts
    assert node.sql("SELECT count(*) AS n FROM spans WHERE name <> attributes['test.id']",
                    tenant=tenant) == [{"n": 0}]
    assert node.sql("SELECT count(*) AS n FROM logs WHERE body <> attributes['test.id']",
                    tenant=tenant) == [{"n": 0}]
    return out


def duplicates(node: StrataNode, tenant: str) -> dict[str, list[dict]]:
    return {table: node.sql(f"SELECT attributes['test.id'] AS id, count(*) AS n FROM {table} "
                            "GROUP BY attributes['test.id'] HAVING count(*) > 1 ORDER BY 1", tenant=tenant)
            for table in SIGNALS}


def assert_exactly(node: StrataNode, tenant: str, expected: dict[str, list[str]], context: str = "") -> None:
    """Each table holds exactly the expected ids, once each."""
    got = stored_ids(node, tenant)
    for table in SIGNALS:
        want = collections.Counter(expected.get(table, []))
        assert got[table] == want, (
            f"{context}{table}: missing {sorted(want - got[table])}, "
            f"unexpected or duplicated {sorted((got[table] - want).elements())}")


# ---------------------------------------------------------------------------- 1. kill -9 loop


class Target:
    """The node the loader sends to; ``None`` while it is down."""

    def __init__(self):
        self.cond = threading.Condition()
        self.generation = 0
        self.addrs: tuple[str, str] | None = None
        self.stopping = False

    def publish(self, generation: int, node: StrataNode) -> None:
        with self.cond:
            self.generation = generation
            self.addrs = (node.grpc_addr, node.otlp_url)
            self.cond.notify_all()

    def take_down(self) -> None:
        with self.cond:
            self.addrs = None

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def wait_up(self):
        with self.cond:
            self.cond.wait_for(lambda: self.stopping or self.addrs is not None)
            if self.stopping:
                return None
            return self.generation, self.addrs


class Ledger:
    """What the loader sent: ids acknowledged, ids whose fate is unknown, per (tenant, table)."""

    def __init__(self, tenants: list[str]):
        self.tenants = tenants
        self.lock = threading.Lock()
        self.acked = {(t, s): set() for t in tenants for s in SIGNALS}
        self.unknown = {(t, s): set() for t in tenants for s in SIGNALS}
        self.outcomes = collections.Counter()  # (signal, outcome) -> exports
        self.errors: list[str] = []

    def begin(self, key: tuple[str, str], ids: list[str]) -> None:
        """Before the call: in flight, so unknown until it is acknowledged."""
        with self.lock:
            self.unknown[key].update(ids)

    def finish(self, key: tuple[str, str], ids: list[str], ok: bool, outcome: str) -> None:
        with self.lock:
            if ok:
                self.unknown[key].difference_update(ids)
                self.acked[key].update(ids)
            self.outcomes[(key[1], outcome)] += 1

    def counts(self) -> dict:
        with self.lock:
            return {
                "acked_ids": {f"{t}/{s}": len(v) for (t, s), v in self.acked.items()},
                "unknown_ids": {f"{t}/{s}": len(v) for (t, s), v in self.unknown.items()},
                "outcomes": {f"{s}/{o}": n for (s, o), n in sorted(self.outcomes.items())},
            }


def loader(worker: int, target: Target, ledger: Ledger) -> None:
    """Exports continuously, rotating through tenants, signals and transports; each item
    carries a unique id ``c{generation}-w{worker}-{export}-{item}``, never sent twice."""
    spans = SpanMaker(f"w{worker}")
    clients: dict[str, Client] = {}
    client_generation = -1
    n = 0
    combos = [(s, t) for s in SIGNALS for t in TRANSPORTS]
    try:
        while True:
            up = target.wait_up()
            if up is None:
                return
            generation, (grpc_addr, otlp_url) = up
            if generation != client_generation:
                for c in clients.values():
                    c.close()
                clients = {t: Client(grpc_addr, otlp_url, t) for t in ledger.tenants}
                client_generation = generation
            n += 1
            tenant = ledger.tenants[(n // len(combos)) % len(ledger.tenants)]
            signal_name, transport = combos[(worker + n) % len(combos)]
            ids = [f"c{generation}-w{worker}-{n}-{k}" for k in range(1 + n % 3)]
            request = build_request(signal_name, ids, spans)
            ledger.begin((tenant, signal_name), ids)
            ok, outcome = clients[tenant].export(signal_name, transport, request)
            ledger.finish((tenant, signal_name), ids, ok, outcome)
            if not ok:
                time.sleep(0.01)  # like a real client, do not spin on a node that is down
    except BaseException as e:  # noqa: BLE001 - reported by the test
        ledger.errors.append(f"loader {worker}: {type(e).__name__}: {e}")
    finally:
        for c in clients.values():
            c.close()


def start_loaders(tenants: list[str], node: StrataNode, count: int = 3):
    target = Target()
    ledger = Ledger(tenants)
    workers = [threading.Thread(target=loader, args=(w, target, ledger), name=f"crash-loader-{w}",
                                daemon=True) for w in range(count)]
    for t in workers:
        t.start()
    target.publish(0, node)
    return target, ledger, workers


def stop_loaders(target: Target, workers: list[threading.Thread]) -> None:
    target.stop()
    for t in workers:
        t.join(30)
    assert not any(t.is_alive() for t in workers), "loader threads did not stop"


def check_outcomes(ledger: Ledger, ctx: str) -> None:
    """Every tenant and signal went over both transports, acknowledged, and nothing but a dying
    server made an export fail (no error status, no partial success)."""
    for key, acked in ledger.acked.items():
        assert acked, ctx + f"nothing acknowledged for {key}"
    for s in SIGNALS:
        for t in TRANSPORTS:
            assert ledger.outcomes[(s, f"{t}:ok")] > 0, ctx + f"no acknowledged {s} export over {t}"
    for (s, outcome), n in ledger.outcomes.items():
        if outcome.startswith("grpc:") and outcome != "grpc:ok":
            assert outcome.split(":")[1] in KILL_GRPC_CODES, ctx + f"{n} {s} exports answered {outcome}"
        if outcome.startswith("http:") and outcome != "http:ok":
            assert not outcome.startswith(("http:status:", "http:partial_success")), (
                ctx + f"{n} {s} exports answered {outcome}")


def verify_ledger(node: StrataNode, ledger: Ledger, ctx: str) -> dict[tuple[str, str], collections.Counter]:
    """Every acknowledged id is stored exactly once, in its own tenant's table; every stored id
    was sent to that tenant's table (acknowledged or unknown); nothing is stored twice."""
    out = {}
    with ledger.lock:
        acked = {k: set(v) for k, v in ledger.acked.items()}
        unknown = {k: set(v) for k, v in ledger.unknown.items()}
    for tenant in ledger.tenants:
        assert duplicates(node, tenant) == {s: [] for s in SIGNALS}, ctx + tenant
        got = stored_ids(node, tenant)
        for s in SIGNALS:
            key = (tenant, s)
            stored = set(got[s])
            assert all(n == 1 for n in got[s].values()), ctx + str(key)
            lost = acked[key] - stored
            assert not lost, ctx + f"{len(lost)} acknowledged ids of {key} lost, e.g. {sorted(lost)[:20]}"
            never_sent = stored - acked[key] - unknown[key]
            assert not never_sent, ctx + f"stored in {key} but never sent there: {sorted(never_sent)[:20]}"
            out[key] = got[s]
    return out


def test_kill9_loop_acknowledged_exports_survive_exactly_once(crash_nodes, crash_seed):
    """Three loader threads export spans, logs and metrics over gRPC and HTTP for two tenants
    while the node is SIGKILLed at random moments and restarted on the same data directory.
    Every acknowledged id must be stored exactly once in its tenant's table; every other
    stored id must be one whose export failed (its fate was unknown)."""
    cycles = int(os.environ.get("STRATA_CRASH_CYCLES", "24"))
    rng = random.Random(crash_seed)
    tenants = [unique_tenant("crash-loop-a"), unique_tenant("crash-loop-b")]
    node = start_ready(crash_nodes.new("--flush-interval", "1s", "--wal-segment-bytes", "65536"))
    ctx = f"[seed {crash_seed}] "

    target, ledger, workers = start_loaders(tenants, node)

    stats = []  # one dict per kill
    try:
        for cycle in range(1, cycles + 1):
            delay = rng.uniform(0.2, 1.5)
            time.sleep(delay)
            # What the process holds just before it dies: buffered rows, and files flushed.
            metrics_text = node.metrics_text()
            before = {name: v for name, labels, v in parse_metrics(metrics_text) if not labels}
            kill9(node)
            target.take_down()
            start_ready(node)
            replay = replay_log(node)
            stats.append({
                "cycle": cycle,
                "delay": round(delay, 3),
                "buffered_bytes_at_kill": before["strata_storage_buffered_bytes"],
                "files_written_at_kill": before["strata_storage_files_written_total"],
                "replayed": metric(node, "strata_wal_replayed_records_total"),
                "already_in_parquet": replay["already_in_parquet"],
                "corrupt_tails": metric(node, "strata_wal_corrupt_tails_total"),
            })
            assert stats[-1]["replayed"] == replay["replayed"], ctx + str(replay)
            assert not ledger.errors, ctx + "\n".join(ledger.errors)
            if cycle < cycles:
                target.publish(cycle, node)
    finally:
        stop_loaders(target, workers)
    assert not ledger.errors, ctx + "\n".join(ledger.errors)

    counts = ledger.counts()
    print(json.dumps({"seed": crash_seed, "kills": len(stats), **counts}, indent=1))
    for st in stats:
        print("kill", json.dumps(st))
    ctx = f"[seed {crash_seed}] {json.dumps(counts)} "

    check_outcomes(ledger, ctx)

    after_kills = verify_ledger(node, ledger, ctx + "after the last kill: ")
    unknown_stored = {f"{t}/{s}": len(set(after_kills[(t, s)]) & ledger.unknown[(t, s)]) for t, s in after_kills}
    print(f"unknown ids found stored: {unknown_stored}")

    # The kills hit both buffered data and flushed data.
    assert all(parquet_files(node.data_dir, t) for t in tenants), ctx + "no Parquet file was ever written"
    assert any(st["replayed"] > 0 for st in stats), ctx + "no restart replayed a WAL record"
    assert any(st["buffered_bytes_at_kill"] > 0 for st in stats), ctx + "no kill with buffered rows"
    assert any(st["files_written_at_kill"] > 0 for st in stats), ctx + "no kill after a flush in that process"
    assert any(st["already_in_parquet"] > 0 for st in stats), ctx + "no kill left flushed records in the WAL"

    # A clean restart flushes the replayed rows; the next process replays nothing and the
    # data is unchanged.
    node.restart()
    wait_ready(node)
    assert metric(node, "strata_wal_replayed_records_total") == 0, ctx + str(replay_log(node))
    assert metric(node, "strata_wal_corrupt_tails_total") == 0, ctx
    assert verify_ledger(node, ledger, ctx + "after a clean restart: ") == after_kills, ctx


# ---------------------------------------------------------------------------- 2-3. damaged WAL tails


TAIL_EXPORTS = [  # (signal, transport) of each export, one record each
    ("spans", "http"), ("logs", "grpc"), ("metrics", "http"),
    ("spans", "grpc"), ("logs", "http"), ("metrics", "grpc"),
]


def fill_wal(node: StrataNode, tenant: str, exports) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """One acknowledged export per entry, two items each; returns the ids per signal and the
    (signal, ids) per export in order."""
    per_signal: dict[str, list[str]] = {s: [] for s in SIGNALS}
    order = []
    for i, (signal_name, transport) in enumerate(exports):
        ids = [f"e{i}-{signal_name}-{transport}-{k}" for k in range(2)]
        export_acked(node, tenant, signal_name, transport, ids)
        per_signal[signal_name] += ids
        order.append((signal_name, ids))
    return per_signal, order


def damaged_tail_scenario(crash_nodes, damage, expected_problem: str, rotate: int):
    """Fills a WAL (nothing flushed), SIGKILLs, damages the last record with ``damage(data,
    offset, length) -> bytes`` and restarts. Returns what the test checks."""
    tenant = unique_tenant(f"tail-{expected_problem}")
    node = start_ready(crash_nodes.new("--flush-interval", "1h"))
    exports = TAIL_EXPORTS[rotate:] + TAIL_EXPORTS[:rotate]
    _, order = fill_wal(node, tenant, exports)
    kill9(node)
    assert parquet_files(node.data_dir, tenant) == []

    segment = newest_nonempty_segment(node)
    frames = read_frames(segment)
    # The documented layout: one record per export, sequence numbers 1, 2, ... on a new node.
    assert [payload_seq(p) for _, _, p in frames] == list(range(1, len(exports) + 1))
    last_offset, last_len, _ = frames[-1]
    data = segment.read_bytes()
    damaged = damage(data, last_offset, last_len)
    segment.write_bytes(damaged)

    start_ready(node)
    cuts = log_records(node, CUT_MESSAGE)
    assert [(c["path"], c["offset"], c["bytes_cut"], c["problem"]) for c in cuts] == [
        (str(segment), last_offset, len(damaged) - last_offset, expected_problem)], cuts
    assert segment.stat().st_size == last_offset
    assert metric(node, "strata_wal_corrupt_tails_total") == 1
    assert metric(node, "strata_wal_replayed_records_total") == len(exports) - 1
    replay = replay_log(node)
    assert (replay["replayed"], replay["already_in_parquet"], replay["corrupt_tails"], replay["bytes_cut"]) == (
        len(exports) - 1, 0, 1, len(damaged) - last_offset), replay

    # Every record before the cut, once; the cut export's items are gone.
    expected: dict[str, list[str]] = {s: [] for s in SIGNALS}
    for signal_name, ids in order[:-1]:
        expected[signal_name] += ids
    assert_exactly(node, tenant, expected, "after the cut: ")

    # The node takes new data.
    last_signal = order[-1][0]
    export_acked(node, tenant, last_signal, "grpc", ["after-cut-grpc"])
    export_acked(node, tenant, "logs", "http", ["after-cut-http"])
    expected[last_signal].append("after-cut-grpc")
    expected["logs"].append("after-cut-http")
    assert_exactly(node, tenant, expected, "after new exports: ")

    # A clean restart changes nothing: no second cut, nothing replayed twice.
    node.restart()
    wait_ready(node)
    assert log_records(node, CUT_MESSAGE) == []
    assert metric(node, "strata_wal_corrupt_tails_total") == 0
    assert metric(node, "strata_wal_replayed_records_total") == 0
    assert_exactly(node, tenant, expected, "after a clean restart: ")
    assert duplicates(node, tenant) == {s: [] for s in SIGNALS}


def test_truncated_wal_tail_is_cut(crash_nodes):
    def truncate(data: bytes, offset: int, length: int) -> bytes:
        cut = 3
        assert length > cut
        return data[:-cut]

    damaged_tail_scenario(crash_nodes, truncate, "torn record", rotate=0)


def test_bit_flipped_wal_tail_is_cut(crash_nodes):
    def flip(data: bytes, offset: int, length: int) -> bytes:
        assert offset + FRAME_HEADER + length == len(data)
        pos = offset + FRAME_HEADER + length // 2  # inside the payload, not the length field
        out = bytearray(data)
        out[pos] ^= 0x10
        return bytes(out)

    damaged_tail_scenario(crash_nodes, flip, "checksum mismatch", rotate=2)


def test_truncated_frame_header_is_cut(crash_nodes):
    """Only part of the last record's 8-byte header made it to disk."""

    def torn_header(data: bytes, offset: int, length: int) -> bytes:
        return data[:offset + 5]

    damaged_tail_scenario(crash_nodes, torn_header, "torn record header", rotate=4)


def test_zero_filled_wal_tail_is_cut(crash_nodes):
    """The file's size reached the disk but the last record's blocks did not: they read back as
    zeros (length 0, CRC-32 of nothing = 0, so the checksum matches an empty payload)."""

    def zero_fill(data: bytes, offset: int, length: int) -> bytes:
        return data[:offset] + bytes(len(data) - offset)

    damaged_tail_scenario(crash_nodes, zero_fill, "undecodable record", rotate=1)


# ---------------------------------------------------------------------------- 4. garbage segment


@pytest.mark.parametrize("position", ["oldest", "newest"])
def test_garbage_segment_is_cut(crash_nodes, crash_seed, position):
    tenant = unique_tenant(f"garbage-{position}")
    node = start_ready(crash_nodes.new("--flush-interval", "1h"))
    # Data in Parquet (flushed by a clean stop) and data only in the WAL (killed).
    flushed, _ = fill_wal(node, tenant, TAIL_EXPORTS[:3])
    node.restart()
    wait_ready(node)
    in_wal = {s: [f"wal-{s}-{k}" for k in range(2)] for s in SIGNALS}
    for s, t in zip(SIGNALS, ("grpc", "http", "grpc")):
        export_acked(node, tenant, s, t, in_wal[s])
    kill9(node)

    ids = [int(p.stem) for p in wal_segments(node)]
    garbage_id = 0 if position == "oldest" else max(ids) + 1
    assert garbage_id not in ids and (position == "newest" or garbage_id < min(ids)), ids
    garbage = random.Random(f"{crash_seed}-{position}").randbytes(4096)
    garbage_path = wal_dir(node) / f"{garbage_id:020d}.wal"
    garbage_path.write_bytes(garbage)

    start_ready(node)
    cuts = log_records(node, CUT_MESSAGE)
    length = struct.unpack_from("<I", garbage)[0]
    problem = "torn record" if length > len(garbage) - FRAME_HEADER else "checksum mismatch"
    assert [(c["path"], c["offset"], c["bytes_cut"], c["problem"]) for c in cuts] == [
        (str(garbage_path), 0, len(garbage), problem)], (crash_seed, cuts)
    # Cut to its (empty) valid prefix; an empty segment may also be deleted at once.
    assert not garbage_path.exists() or garbage_path.stat().st_size == 0
    assert metric(node, "strata_wal_corrupt_tails_total") == 1
    assert metric(node, "strata_wal_replayed_records_total") == 3
    replay = replay_log(node)
    assert (replay["replayed"], replay["corrupt_tails"], replay["bytes_cut"]) == (3, 1, len(garbage)), replay

    expected = {s: flushed[s] + in_wal[s] for s in SIGNALS}
    assert_exactly(node, tenant, expected, "after the cut: ")
    export_acked(node, tenant, "spans", "grpc", ["after-garbage"])
    expected["spans"].append("after-garbage")
    assert_exactly(node, tenant, expected, "after a new export: ")

    node.restart()
    wait_ready(node)
    assert metric(node, "strata_wal_corrupt_tails_total") == 0
    assert metric(node, "strata_wal_replayed_records_total") == 0
    assert_exactly(node, tenant, expected, "after a clean restart: ")


# ---------------------------------------------------------------------------- 5. graceful shutdown


def test_sigterm_flushes_buffered_data(crash_nodes):
    tenant = unique_tenant("sigterm-flush")
    node = start_ready(crash_nodes.new("--flush-interval", "1h"))
    exports = [(s, t) for s in SIGNALS for t in TRANSPORTS]
    expected, _ = fill_wal(node, tenant, exports)
    assert parquet_files(node.data_dir, tenant) == []
    assert metric(node, "strata_storage_buffered_bytes") > 0
    assert_exactly(node, tenant, expected, "buffered: ")

    code = node.stop(signal.SIGTERM)
    assert code == 0, node.stderr_text(tail=40)
    # After exit, every row is in Parquet under tenant=<tenant>/signal=<table>/, once.
    import pyarrow.parquet as pq

    for s in SIGNALS:
        files = parquet_files(node.data_dir, tenant, s)
        assert files, f"no Parquet file for {s}"
        ids = sorted(i for f in files for attrs in pq.read_table(f, columns=["attributes"]).column(0).to_pylist()
                     for k, i in attrs if k == "test.id")
        assert ids == sorted(expected[s]), (s, ids)

    start_ready(node)
    assert metric(node, "strata_wal_replayed_records_total") == 0
    assert metric(node, "strata_wal_corrupt_tails_total") == 0
    assert replay_log(node)["replayed"] == 0
    assert metric(node, "strata_storage_buffered_bytes") == 0
    assert_exactly(node, tenant, expected, "after restart: ")
    assert duplicates(node, tenant) == {s: [] for s in SIGNALS}


def test_sigterm_under_load_acknowledged_exports_are_flushed(crash_nodes, crash_seed):
    """SIGTERM while the loader keeps exporting: exit code 0, every acknowledged export is in
    Parquet (the next start replays nothing), exactly once."""
    rng = random.Random(f"{crash_seed}-sigterm")
    tenants = [unique_tenant("sigterm-load")]
    node = start_ready(crash_nodes.new("--flush-interval", "1h", "--wal-segment-bytes", "65536"))
    ctx = f"[seed {crash_seed}] "
    target, ledger, workers = start_loaders(tenants, node)
    try:
        for cycle in range(1, 4):
            time.sleep(rng.uniform(0.2, 1.5))
            code = node.stop(signal.SIGTERM)
            target.take_down()
            assert code == 0, ctx + f"exit code {code} after SIGTERM under load:\n{node.stderr_text(tail=40)}"
            start_ready(node)
            assert metric(node, "strata_wal_replayed_records_total") == 0, ctx + str(replay_log(node))
            assert metric(node, "strata_wal_corrupt_tails_total") == 0, ctx
            verify_ledger(node, ledger, ctx + f"after SIGTERM {cycle}: ")
            if cycle < 3:
                target.publish(cycle, node)
    finally:
        stop_loaders(target, workers)
    assert not ledger.errors, ctx + "\n".join(ledger.errors)
    print(json.dumps(ledger.counts(), indent=1))
    check_outcomes(ledger, ctx)


def test_not_ready_while_replaying(crash_nodes):
    """The API listener answers during a long replay: /healthz 200, /readyz, /api/v1/sql and
    /metrics 503; once /readyz says 200 every replayed row is queryable."""
    tenant = unique_tenant("replaying")
    node = start_ready(crash_nodes.new("--flush-interval", "1h"))
    exports, per_export = 20, 5000
    client = Client(node.grpc_addr, node.otlp_url, tenant)
    try:
        for i in range(exports):
            ids = [f"r{i}-{k}" for k in range(per_export)]
            request = logs_request([log_record(x, attrs={"test.id": x, "pad": "p" * 200}) for x in ids])
            ok, outcome = client.export("logs", "grpc", request)
            assert ok, outcome
    finally:
        client.close()
    kill9(node)

    started: list[BaseException | None] = []

    def start() -> None:
        try:
            node.start()
            started.append(None)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            started.append(e)

    old_addrs = node.addrs
    starter = threading.Thread(target=start, name="strata-start", daemon=True)
    starter.start()
    # The API listener logs its address first, before the replay.
    while node.addrs is old_addrs or "http" not in node.addrs:
        if not starter.is_alive():
            assert node.addrs is not old_addrs and "http" in node.addrs, f"start failed: {started}"
        time.sleep(0.001)
    api = f"http://{node.addrs['http']}"
    session = requests.Session()
    seen = []  # (readyz status, sql status) in order
    while True:
        ready = session.get(api + "/readyz", timeout=10)
        if ready.status_code == 200:
            seen.append(200)
            break
        assert (ready.status_code, ready.text) == (503, "starting")
        sql = session.post(api + "/api/v1/sql", json={"sql": "SELECT count(*) AS n FROM logs"},
                           headers={"X-Scope-OrgID": tenant}, timeout=10)
        if sql.status_code == 200:  # became ready in between
            continue
        assert (sql.status_code, sql.json()) == (
            503, {"error": "the node is starting (replaying its write-ahead log)"})
        assert session.get(api + "/metrics", timeout=10).status_code in (200, 503)
        health = session.get(api + "/healthz", timeout=10)
        assert (health.status_code, health.text) == (200, "ok")
        seen.append(503)
    starter.join(60)
    assert started == [None], started
    print(f"/readyz answers while starting: {seen.count(503)} x 503, then 200")
    assert 503 in seen, "the replay of ~100k rows finished before the API could be asked; make the WAL bigger"

    # Ready means replayed: everything is there at once.
    assert node.sql("SELECT count(*) AS n, count(DISTINCT body) AS d FROM logs", tenant=tenant) == [
        {"n": exports * per_export, "d": exports * per_export}]
    assert metric(node, "strata_wal_replayed_records_total") == exports


def test_lost_wal_directory_does_not_reuse_flushed_sequence_numbers(crash_nodes):
    """The WAL directory is gone (a lost disk) but the catalog still holds watermarks: new
    records must be numbered above them, or a replay after a crash would skip them as
    'already in Parquet'."""
    tenant = unique_tenant("lost-wal")
    node = start_ready(crash_nodes.new("--flush-interval", "1h"))
    first, _ = fill_wal(node, tenant, TAIL_EXPORTS)
    node.stop_clean()  # flushed: watermarks up to the last sequence number
    for p in wal_segments(node):
        p.unlink()
    wal_dir(node).rmdir()

    start_ready(node)
    assert metric(node, "strata_wal_replayed_records_total") == 0
    second = {s: [f"second-{s}-{t}" for t in TRANSPORTS] for s in SIGNALS}
    for s in SIGNALS:
        for t in TRANSPORTS:
            export_acked(node, tenant, s, t, [f"second-{s}-{t}"])
    kill9(node)
    # Numbered on from the watermarks: 1..6 went to Parquet, these are 7..12.
    seqs = [payload_seq(p) for seg in wal_segments(node) for _, _, p in read_frames(seg)]
    assert seqs == list(range(len(TAIL_EXPORTS) + 1, len(TAIL_EXPORTS) + 1 + len(SIGNALS) * len(TRANSPORTS)))

    start_ready(node)
    assert metric(node, "strata_wal_replayed_records_total") == len(SIGNALS) * len(TRANSPORTS), replay_log(node)
    assert metric(node, "strata_wal_corrupt_tails_total") == 0
    assert_exactly(node, tenant, {s: first[s] + second[s] for s in SIGNALS}, "after the kill: ")
