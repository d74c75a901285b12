"""Compaction and retention through the real binary.

- Compaction merges the small files of an hour partition while queries run: every query sees
  every row exactly once, before, during and after the swap, and the replaced objects are
  deleted once their grace period has passed.
- Retention drops expired partitions per tenant (default and per-tenant override from the
  config file), deletes their objects, and counts the drops in /metrics.
"""

from __future__ import annotations

import threading
import time

from helpers import (
    HOUR10_NS,
    export_ok,
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
    wait_for,
)
from storage_backends import parquet_keys


def _spans_files(node, tenant):
    return parquet_keys(node, tenant, "spans")


def test_compaction_under_concurrent_queries_sees_every_row_once(node_factory):
    tenant = unique_tenant("compact")
    # Phase 1: one file per export, no compaction yet.
    node = node_factory.start("--flush-interval", "100ms", "--compaction-interval", "1h")
    names = []
    for i in range(6):
        name = f"s{i}"
        export_ok(node, "/v1/traces", traces_request(
            [span(rand_trace_id(), rand_span_id(), name=name, start=HOUR10_NS + i * 1_000_000)]), tenant)
        names.append(name)
        wait_for(lambda: len(_spans_files(node, tenant)) == i + 1, timeout=30,
                 what=f"file {i + 1} to be flushed")
    node.stop_clean()

    # Phase 2: the same data directory with compaction every second.
    node = node_factory.start("--flush-interval", "100ms", "--compaction-interval", "1s",
                              "--delete-grace", "1s", "--retention-interval", "1s",
                              data_dir=node.data_dir)
    query = "SELECT count(*) AS n, count(DISTINCT name) AS d FROM spans"
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer():
        try:
            while not stop.is_set():
                row = node.sql(query, tenant=tenant)[0]
                results.append((row["n"], row["d"]))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: node.metric_value("strata_compaction_runs_total") >= 1, timeout=60,
                 what="a compaction")
        # The replaced objects go once the grace has passed (garbage collection every second).
        wait_for(lambda: len(_spans_files(node, tenant)) == 1, timeout=60,
                 what="the replaced files to be deleted")
        # Keep querying a little after the deletions too.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not errors:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(results) > 0
    assert set(results) == {(6, 6)}, f"some query saw a row twice or not at all: {set(results)}"
    rows = node.sql("SELECT name FROM spans ORDER BY name", tenant=tenant)
    assert [r["name"] for r in rows] == names
    assert node.metric_value("strata_compaction_files_in_total") == 6
    assert node.metric_value("strata_gc_objects_deleted_total") == 6
    # The merged file is one sorted file of the same hour partition.
    (merged,) = _spans_files(node, tenant)
    assert "/date=2024-01-15/hour=10/" in merged
    # After a restart the catalog agrees.
    node.stop_clean()
    node = node_factory.start(data_dir=node.data_dir)
    assert node.sql(query, tenant=tenant) == [{"n": 6, "d": 6}]


def test_retention_drops_expired_partitions_per_tenant(node_factory, tmp_path):
    short, kept = unique_tenant("short"), unique_tenant("kept")
    config = tmp_path / "strata.toml"
    config.write_text(f'[retention]\ndefault = "1d"\n[retention.tenants.{kept}]\ndefault = "36500d"\n')
    node = node_factory.start("--config", str(config), "--flush-interval", "100ms",
                              "--retention-interval", "1s", "--delete-grace", "0s")
    now_ns = time.time_ns()
    for tenant in (short, kept):
        export_ok(node, "/v1/traces", traces_request([
            span(rand_trace_id(), rand_span_id(), name="old", start=HOUR10_NS),
            span(rand_trace_id(), rand_span_id(), name="recent", start=now_ns - 60_000_000_000),
        ]), tenant)

    def names(tenant):
        return sorted(r["name"] for r in node.sql("SELECT name FROM spans", tenant=tenant))

    # The 2024 partition of `short` goes; the recent one stays; `kept` keeps both.
    wait_for(lambda: names(short) == ["recent"], timeout=60, what="retention to drop the old partition")
    assert names(kept) == ["old", "recent"]
    wait_for(lambda: not [k for k in _spans_files(node, short) if "/date=2024-01-15/" in k], timeout=30,
             what="the expired object to be deleted")
    assert [k for k in _spans_files(node, kept) if "/date=2024-01-15/" in k]
    assert node.metric_value("strata_retention_files_deleted_total") == 1
    assert node.metric_value("strata_retention_rows_deleted_total") == 1
    assert node.metric_value("strata_retention_bytes_deleted_total") > 0
