"""S3 object storage against a real S3 server (moto in server mode), whatever the mode.

* Round trip: flushed data lands as Parquet objects under
  ``tenant=…/signal=…/date=…/hour=…/`` in the bucket and is queryable, exactly once, after a
  restart.
* An S3 outage in the middle of ingest: exports keep succeeding (the WAL has them),
  ``strata_storage_flush_errors_total`` counts the failed flushes, flushes resume when S3 is
  back, and after a restart every acknowledged row is there exactly once. moto keeps its
  state in memory, so the outage is a TCP proxy between the node and moto being stopped
  (nothing listens on the node's endpoint, open connections are cut) and started again on
  the same port.
* A wrong bucket or an unreachable endpoint at start: the node starts, takes data into the
  WAL, says what is wrong in a log line on every failed flush, and loses nothing.

Each node here names its ``--storage`` itself; its catalog is the one under test
(``STRATA_E2E_CATALOG``), so in the PostgreSQL run these tests cover S3 + PostgreSQL.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import socket
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import (
    DAY,
    HOUR10_NS,
    export_ok,
    gauge_metric,
    log_record,
    logs_request,
    metrics_request,
    normalize_rows,
    number_point,
    post_protobuf,
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
    wait_for,
)
from storage_backends import S3Objects, parquet_keys

HOUR_NS = 3_600_000_000_000
# These tests count and compare objects; compaction (tested in test_maintenance.py) would
# merge the small files of these long-past hours under them.
NO_COMPACTION = ("--compaction-interval", "1h")
HOUR12_NS = HOUR10_NS + 2 * HOUR_NS
KEY = re.compile(
    r"^tenant=(?P<tenant>[^/]+)/signal=(?P<signal>spans|logs|metrics)/date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"hour=(?P<hour>\d{2})/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$")


def s3_node(node_factory, moto, bucket: str, prefix: str, *extra_args: str, endpoint: str | None = None,
            data_dir=None):
    """A node whose object store is ``s3://bucket/prefix`` on ``endpoint`` (default: moto), with
    a 1 s flush interval and no compaction."""
    return node_factory.start(
        "--storage", f"s3://{bucket}/{prefix}", "--flush-interval", "1s", *NO_COMPACTION, *extra_args,
        data_dir=data_dir,
        env=moto.env(endpoint), objects=S3Objects(moto.endpoint, bucket, prefix))


def log_lines(node) -> list[dict]:
    out = []
    for line in node.stderr_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def flush_failures(node) -> list[dict]:
    return [r for r in log_lines(node) if r.get("message") == "flush failed; will retry"]


# ------------------------------------------------------------------------------ round trip


def test_round_trip_through_s3(node_factory, backends):
    moto = backends.moto
    bucket = moto.create_bucket()
    n = s3_node(node_factory, moto, bucket, "rt/strata")
    tenant = unique_tenant("s3-rt")
    tid = rand_trace_id()
    export_ok(n, "/v1/traces", traces_request([
        span(tid, rand_span_id(), name=f"s3-span-{i}", start=h + i, end=h + 100 + i, attrs={"i": i})
        for i, h in enumerate([HOUR10_NS, HOUR10_NS, HOUR12_NS])]), tenant)
    export_ok(n, "/v1/logs", logs_request([log_record(f"s3-log-{i}", time_ns=HOUR10_NS + i) for i in range(4)]), tenant)
    export_ok(n, "/v1/metrics", metrics_request([
        gauge_metric("s3_gauge", [number_point(float(i), time_ns=HOUR12_NS + i) for i in range(5)])]), tenant)

    # Flushed (1 s) into the bucket, one object per table and hour, under the URL's prefix.
    keys = wait_for(lambda: (k := parquet_keys(n, tenant)) and len(k) >= 4 and k, timeout=30,
                    what="four Parquet objects in the bucket")
    parsed = sorted((m["signal"], m["date"], m["hour"]) for k in keys if (m := KEY.match(k)))
    assert len(parsed) == len(keys), keys
    assert parsed == [("logs", DAY, "10"), ("metrics", DAY, "12"), ("spans", DAY, "10"), ("spans", DAY, "12")]
    assert all(KEY.match(k)["tenant"] == tenant for k in keys)
    everything = S3Objects(moto.endpoint, bucket).keys()
    assert everything and all(k.startswith("rt/strata/tenant=") for k in everything), everything
    # Nothing of it went to the local disk.
    assert not (n.data_dir / "objects").exists()
    # The objects are the real thing: Parquet, zstd, each hour's rows.
    rows_by_key = {}
    for k in keys:
        pf = pq.ParquetFile(io.BytesIO(n.objects.read(k)))
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
        table = pf.read()
        start = HOUR10_NS + (int(KEY.match(k)["hour"]) - 10) * HOUR_NS
        assert all(start <= t < start + HOUR_NS for t in table.column("time").cast(pa.int64()).to_pylist())
        rows_by_key[KEY.match(k)["signal"], KEY.match(k)["hour"]] = table.num_rows
    assert rows_by_key == {("spans", "10"): 2, ("spans", "12"): 1, ("logs", "10"): 4, ("metrics", "12"): 5}

    def snapshot():
        return {t: normalize_rows(n.sql(f"SELECT * FROM {t} ORDER BY time", tenant=tenant))
                for t in ("spans", "logs", "metrics")}

    before = snapshot()
    assert [len(before[t]) for t in ("spans", "logs", "metrics")] == [3, 4, 5]
    n.restart()
    assert snapshot() == before
    assert parquet_keys(n, tenant) == keys  # nothing written twice
    assert n.sql("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans", tenant=tenant) == [{"n": 3, "d": 3}]
    plan = "\n".join(r["plan"] for r in n.sql("EXPLAIN SELECT * FROM logs", tenant=tenant))
    assert "MemorySourceConfig" not in plan and "signal=logs" in plan, plan  # read from the objects


# ------------------------------------------------------------------------------ outage


class TcpProxy:
    """Forwards 127.0.0.1:port to an upstream address; ``stop()`` makes the port refuse
    connections and cuts the open ones, ``start()`` listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="s3-proxy", daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def start(self) -> "TcpProxy":
        self._run(self._start())
        return self

    async def _start(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._run(self._stop())

    async def _stop(self):
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()
            await self._server.wait_closed()
            self._server = None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self._writers |= pair

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for w in pair:
                    w.transport.abort()
                self._writers -= pair

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Sender:
    """Sends one log record per export, numbered; remembers which were acknowledged."""

    def __init__(self, node, tenant: str):
        self.node = node
        self.tenant = tenant
        self.next_id = 0
        self.acked: list[int] = []
        self.refused: list[tuple[int, int, bytes]] = []

    def send(self) -> bool:
        i = self.next_id
        self.next_id += 1
        req = logs_request([log_record(f"ack-{i}", time_ns=HOUR10_NS + i, attrs={"id": i})], service="outage")
        r = post_protobuf(self.node, "/v1/logs", req, tenant=self.tenant)
        if r.status_code == 200:
            self.acked.append(i)
            return True
        self.refused.append((i, r.status_code, r.content[:200]))
        return False

    def send_for(self, seconds: float, until=None, timeout: float = 90.0, pause: float = 0.05) -> None:
        """Sends for at least ``seconds``, then until ``until()`` is true (at most ``timeout``)."""
        start = time.monotonic()
        while True:
            self.send()
            elapsed = time.monotonic() - start
            if elapsed >= seconds and (until is None or until()):
                return
            if elapsed > timeout:
                raise AssertionError(f"timed out after {timeout}s sending while waiting for {until}")
            time.sleep(pause)


def test_s3_outage_mid_ingest_loses_nothing(node_factory, backends):
    moto = backends.moto
    bucket = moto.create_bucket()
    host, port = moto.endpoint.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port))).start()
    try:
        n = s3_node(node_factory, moto, bucket, "outage", endpoint=proxy.endpoint)
        tenant = unique_tenant("s3-outage")
        sender = Sender(n, tenant)

        # S3 up: exports are flushed to the bucket.
        sender.send_for(1.0, until=lambda: parquet_keys(n, tenant), timeout=30)
        assert n.metric_value("strata_storage_flush_errors_total") == 0
        keys_before = len(parquet_keys(n, tenant))

        # S3 down: every export is still acknowledged (WAL); failed flushes are counted and logged.
        proxy.stop()
        down_since = len(sender.acked)
        sender.send_for(3.0, until=lambda: n.metric_value("strata_storage_flush_errors_total") > 0, timeout=120)
        sender.send_for(1.0)
        assert sender.refused == [], sender.refused[:5]
        errors_while_down = n.metric_value("strata_storage_flush_errors_total")
        assert errors_while_down > 0
        failures = flush_failures(n)
        assert failures and all(f.get("signal") == "logs" and f.get("tenant") == tenant for f in failures), failures[:3]
        assert proxy.endpoint.removeprefix("http://") in failures[0]["error"], failures[0]
        assert n.proc.poll() is None
        r = n._session.get(n.api_url + "/healthz", timeout=10)
        assert r.status_code == 200
        # What was acknowledged during the outage is queryable from the write buffer (the time
        # filter prunes the files that went to S3 before it went away).
        at = f"{DAY}T10:00:00.{down_since:09d}Z"
        assert n.sql(f"SELECT body FROM logs WHERE time = '{at}'", tenant=tenant) == [{"body": f"ack-{down_since}"}]

        # S3 back on the same port: the pending flushes go through, new ones too.
        proxy.start()
        files_at_recovery = n.metric_value("strata_storage_files_written_total")
        sender.send_for(1.0, until=lambda: n.metric_value("strata_storage_files_written_total") > files_at_recovery
                        and len(parquet_keys(n, tenant)) > keys_before, timeout=120)
        # ...and keep going through: the error count stops growing once a flush has succeeded.
        wait_for(lambda: n.metric_value("strata_storage_buffered_bytes") == 0, timeout=60,
                 what="the write buffer to drain")
        settled = n.metric_value("strata_storage_flush_errors_total")
        files_settled = n.metric_value("strata_storage_files_written_total")
        sender.send_for(3.0, until=lambda: n.metric_value("strata_storage_files_written_total") > files_settled,
                        timeout=60)
        assert n.metric_value("strata_storage_flush_errors_total") == settled
        assert sender.refused == [], sender.refused[:5]

        # Restart: every acknowledged id exactly once.
        n.restart()
        rows = n.sql("SELECT attributes['id'] AS id, count(*) AS c FROM logs GROUP BY 1", tenant=tenant)
        counts = {int(r["id"]): r["c"] for r in rows}
        missing = sorted(set(sender.acked) - set(counts))
        doubled = sorted(i for i, c in counts.items() if c != 1)
        assert not missing and not doubled, (f"{len(sender.acked)} acknowledged; missing {missing[:20]}; "
                                             f"more than once {doubled[:20]}")
        assert sorted(counts) == sender.acked
        assert len(sender.acked) > 20
    finally:
        proxy.close()


# ------------------------------------------------------------------------------ misconfiguration


def test_missing_bucket_keeps_ingest_going_and_recovers_when_created(node_factory, backends, tmp_path):
    """A bucket that does not exist: the node starts, acknowledges writes (WAL), logs
    NoSuchBucket on every failed flush, exits cleanly on SIGTERM saying that the WAL keeps
    the rows, and writes them once the bucket exists, with no restart needed."""
    moto = backends.moto
    bucket = f"strata-missing-{unique_tenant('b').split('-')[-1]}"
    data_dir = tmp_path / "nobucket" / "data"
    n = s3_node(node_factory, moto, bucket, "p", data_dir=data_dir)
    tenant = unique_tenant("s3-nobucket")
    export_ok(n, "/v1/logs", logs_request([log_record(f"nb-{i}", time_ns=HOUR10_NS + i) for i in range(3)]), tenant)
    assert n.sql("SELECT count(*) AS c FROM logs", tenant=tenant) == [{"c": 3}]
    wait_for(lambda: flush_failures(n), timeout=30, what="a failed flush to be logged")
    failure = flush_failures(n)[0]
    assert failure["level"] == "WARN"
    assert bucket in failure["error"] and "NoSuchBucket" in failure["error"], failure
    assert n.metric_value("strata_storage_flush_errors_total") > 0
    assert n.proc.poll() is None

    # SIGTERM: the final flush fails as well; the node says so and exits cleanly.
    n.stop_clean()
    errors = [r for r in log_lines(n) if r.get("level") == "ERROR"]
    assert any("WAL keeps it" in r.get("message", "") for r in errors), errors

    # Started again, still without the bucket: the WAL is replayed, the rows are queryable.
    n.start()
    assert n.sql("SELECT body FROM logs ORDER BY body", tenant=tenant) == [{"body": f"nb-{i}"} for i in range(3)]
    # The bucket appears: the next retry writes the file.
    moto.create_bucket(bucket)
    wait_for(lambda: parquet_keys(n, tenant), timeout=90, what="the retried flush to write the file")
    n.restart()
    assert n.sql("SELECT body FROM logs ORDER BY body", tenant=tenant) == [{"body": f"nb-{i}"} for i in range(3)]
    assert len(parquet_keys(n, tenant)) == 1


def test_unreachable_endpoint_keeps_data_in_the_wal(node_factory, backends, tmp_path):
    """Nothing listens at the S3 endpoint: the node starts, acknowledges writes, logs every
    failed flush with the endpoint and stays up; on SIGTERM it gives up flushing after
    --shutdown-timeout and exits cleanly, leaving the rows in the WAL; started again with the
    right endpoint on the same data directory, it stores every row once."""
    moto = backends.moto
    bucket = moto.create_bucket()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    data_dir = tmp_path / "unreachable" / "data"
    n = s3_node(node_factory, moto, bucket, "p", "--shutdown-timeout", "1s", endpoint=dead, data_dir=data_dir)
    tenant = unique_tenant("s3-unreachable")
    export_ok(n, "/v1/logs", logs_request([log_record(f"ur-{i}", time_ns=HOUR10_NS + i) for i in range(3)]), tenant)
    assert n.sql("SELECT count(*) AS c FROM logs", tenant=tenant) == [{"c": 3}]
    wait_for(lambda: flush_failures(n), timeout=60, what="a failed flush to be logged")
    failure = flush_failures(n)[0]
    assert failure["level"] == "WARN"
    assert dead.removeprefix("http://") in failure["error"], failure
    assert n.metric_value("strata_storage_flush_errors_total") > 0
    export_ok(n, "/v1/logs", logs_request([log_record("ur-3", time_ns=HOUR10_NS + 3)]), tenant)
    assert n.proc.poll() is None
    assert n.stop(signal.SIGTERM) == 0
    assert [line for line in log_lines(n) if "the WAL keeps" in line.get("message", "")], \
        "the node should say the WAL keeps what it could not flush"

    # The same data directory on the right endpoint: the WAL is replayed and flushed.
    fixed = s3_node(node_factory, moto, bucket, "p", data_dir=data_dir)
    expected = [{"body": f"ur-{i}"} for i in range(4)]
    assert fixed.sql("SELECT body FROM logs ORDER BY body", tenant=tenant) == expected
    wait_for(lambda: parquet_keys(fixed, tenant), timeout=30, what="the replayed rows to be flushed")
    fixed.restart()
    assert fixed.sql("SELECT body FROM logs ORDER BY body", tenant=tenant) == expected
