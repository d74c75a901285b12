"""The PostgreSQL catalog against a real PostgreSQL server, whatever the mode.

The server is ``STRATA_TEST_POSTGRES_URL`` (``./scripts/test.sh`` starts one and sets it) or,
when that is not set, one started for the session through ``scripts/services.sh``: these
tests never skip. Each test makes its own databases. The object store is the one under test
(``STRATA_E2E_STORAGE``), so in the S3 run these tests cover the several-nodes topology of
docs: one bucket and one PostgreSQL catalog.

* a node with ``--catalog postgres://…`` ingests, flushes (file rows in PostgreSQL, no SQLite
  file), restarts and finds its files;
* two nodes, one after the other, on the same database and the same object store see each
  other's files;
* migrations are applied once, whatever the number of starts.
"""

from __future__ import annotations

import json
import threading

import pytest

from helpers import (
    HOUR10_NS,
    NodeError,
    StrataNode,
    export_ok,
    gauge_metric,
    log_record,
    logs_request,
    metrics_request,
    number_point,
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
    wait_for,
)
from storage_backends import STORAGE_MODE, LocalObjects, S3Objects, parquet_keys

HOUR_NS = 3_600_000_000_000
# These tests compare catalog rows with objects; compaction (tested in test_maintenance.py)
# would merge the small files of these long-past hours under them.
NO_COMPACTION = ("--compaction-interval", "1h")


@pytest.fixture
def pg(backends):
    return backends.postgres


def shared_storage(backends, tmp_path) -> tuple[list[str], dict[str, str], object]:
    """One object store for several nodes, of the kind under test: flags, env, view."""
    if STORAGE_MODE == "s3":
        moto = backends.moto
        bucket = moto.create_bucket()
        return ["--storage", f"s3://{bucket}/shared"], moto.env(), S3Objects(moto.endpoint, bucket, "shared")
    root = tmp_path / "shared-objects"
    return ["--storage", f"file://{root}"], {}, LocalObjects(root)


def send_batch(node, tenant: str, label: str, hour_ns: int = HOUR10_NS) -> None:
    tid = rand_trace_id()
    export_ok(node, "/v1/traces", traces_request([
        span(tid, rand_span_id(), name=f"{label}-span-{i}", start=hour_ns + i, end=hour_ns + 50 + i)
        for i in range(2)]), tenant)
    export_ok(node, "/v1/logs", logs_request([log_record(f"{label}-log", time_ns=hour_ns + 3)]), tenant)
    export_ok(node, "/v1/metrics", metrics_request([
        gauge_metric(f"{label}_gauge", [number_point(2.5, time_ns=hour_ns + 4)])]), tenant)


def contents(node, tenant: str) -> dict:
    return {
        "spans": [r["name"] for r in node.sql("SELECT name FROM spans ORDER BY name", tenant=tenant)],
        "logs": [r["body"] for r in node.sql("SELECT body FROM logs ORDER BY body", tenant=tenant)],
        "metrics": [r["metric_name"] for r in node.sql("SELECT metric_name FROM metrics ORDER BY 1", tenant=tenant)],
    }


def expected(*labels: str) -> dict:
    return {
        "spans": sorted(f"{b}-span-{i}" for b in labels for i in range(2)),
        "logs": sorted(f"{b}-log" for b in labels),
        "metrics": sorted(f"{b}_gauge" for b in labels),
    }


def catalog_files(pg, url: str, tenant: str) -> list[tuple[str, str, int]]:
    """(signal, path, row_count) of the tenant's rows in the ``files`` table."""
    rows = pg.psql(f"SELECT signal, path, row_count FROM files WHERE tenant = '{tenant}' ORDER BY path", url)
    return [(s, p, int(n)) for s, p, n in rows]


def migrations(pg, url: str) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in pg.psql("SELECT version, name, applied_at FROM strata_migrations ORDER BY version", url)]


def log_messages(node) -> list[str]:
    out = []
    for line in node.stderr_text().splitlines():
        try:
            out.append(json.loads(line).get("message"))
        except ValueError:
            pass
    return out


def test_node_on_postgres_catalog_flushes_and_finds_its_files_after_restart(node_factory, pg):
    url = pg.create_database("one_node")
    n = node_factory.start("--catalog", url, "--flush-interval", "1s", *NO_COMPACTION)
    tenant = unique_tenant("pg-one")
    send_batch(n, tenant, "first")
    # Flushed: one object per table, each with its row in PostgreSQL.
    keys = wait_for(lambda: (k := parquet_keys(n, tenant)) and len(k) >= 3 and k, timeout=30,
                    what="three files to be flushed")
    rows = wait_for(lambda: (r := catalog_files(pg, url, tenant)) and len(r) >= 3 and r, timeout=30,
                    what="three file rows in PostgreSQL")
    assert sorted(p for _, p, _ in rows) == keys
    assert sorted((s, c) for s, _, c in rows) == [("logs", 1), ("metrics", 1), ("spans", 2)]
    assert not (n.data_dir / "catalog.db").exists()
    node_id = (n.data_dir / "node_id").read_text().strip()
    marks = pg.psql("SELECT node_id, tenant, signal, seq FROM wal_watermarks ORDER BY signal", url)
    assert {(m[0], m[1], m[2]) for m in marks} == {(node_id, tenant, s) for s in ("logs", "metrics", "spans")}

    send_batch(n, tenant, "second", HOUR10_NS + HOUR_NS)  # still buffered at SIGTERM
    before = contents(n, tenant)
    assert before == expected("first", "second")
    n.restart()
    assert contents(n, tenant) == before
    rows = catalog_files(pg, url, tenant)
    assert len(rows) == 6 and sorted(p for _, p, _ in rows) == parquet_keys(n, tenant)
    # Every row comes from a file now: nothing was left to replay.
    assert n.sql("SELECT count(*) AS n FROM spans", tenant=tenant) == [{"n": 4}]
    stats = n.sql_result("SELECT name FROM spans", tenant=tenant)["stats"]
    assert stats["files_scanned"] == 2 and stats["buffer_batches_scanned"] == 0, stats


def test_two_nodes_in_turn_share_catalog_and_object_store(node_factory, pg, backends, tmp_path):
    url = pg.create_database("two_nodes")
    storage_args, env, objects = shared_storage(backends, tmp_path)
    args = ["--catalog", url, *storage_args, "--flush-interval", "1s", *NO_COMPACTION]
    tenant = unique_tenant("pg-two")

    a = node_factory.start(*args, data_dir=tmp_path / "a" / "data", env=env, objects=objects)
    send_batch(a, tenant, "from-a")
    a.stop_clean()  # flushes

    b = node_factory.start(*args, data_dir=tmp_path / "b" / "data", env=env, objects=objects)
    assert contents(b, tenant) == expected("from-a")
    send_batch(b, tenant, "from-b")
    b.stop_clean()

    a.start()
    assert contents(a, tenant) == expected("from-a", "from-b")
    assert a.sql("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans", tenant=tenant) == [{"n": 4, "d": 4}]
    a.stop_clean()
    b.start()
    assert contents(b, tenant) == expected("from-a", "from-b")

    # One catalog row per object, both nodes' WAL watermarks kept apart.
    rows = catalog_files(pg, url, tenant)
    assert sorted(p for _, p, _ in rows) == parquet_keys(b, tenant)
    assert len(rows) == 6
    node_ids = {(tmp_path / d / "data" / "node_id").read_text().strip() for d in ("a", "b")}
    assert len(node_ids) == 2
    assert {r[0] for r in pg.psql("SELECT DISTINCT node_id FROM wal_watermarks", url)} == node_ids


def test_migrations_apply_once_over_restarts(node_factory, pg):
    url = pg.create_database("migrations")
    n = node_factory.start("--catalog", url)
    first = migrations(pg, url)
    versions = [int(v) for v, _, _ in first]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 2, first
    applied = [m for m in log_messages(n) if m == "applied catalog migration"]
    assert len(applied) == len(versions)

    n.restart()
    assert migrations(pg, url) == first  # same rows, same applied_at
    assert "applied catalog migration" not in log_messages(n)
    n.restart()
    assert migrations(pg, url) == first
    tables = {r[0] for r in pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", url)}
    assert {"files", "wal_watermarks", "strata_migrations"} <= tables
    tenant = unique_tenant("pg-mig")
    send_batch(n, tenant, "after")
    assert contents(n, tenant) == expected("after")


def test_nodes_starting_together_on_a_fresh_catalog(pg, strata_bin, tmp_path):
    """Several nodes share one PostgreSQL catalog (docs): their first start can coincide."""
    for trial in range(5):
        url = pg.create_database(f"together{trial}")
        nodes = [StrataNode(tmp_path / f"t{trial}" / f"n{i}" / "data", ["--catalog", url], name=f"t{trial}n{i}")
                 for i in range(2)]
        errors: list[NodeError] = []

        def start(node):
            try:
                node.start()
            except NodeError as e:
                errors.append(e)

        threads = [threading.Thread(target=start, args=(node,)) for node in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for node in nodes:
            if node.proc is not None:
                node.stop_clean()
        if errors:
            raise errors[0]
        assert [int(v) for v, _, _ in migrations(pg, url)] == list(range(1, len(migrations(pg, url)) + 1))
