"""Google Cloud Storage (``gs://bucket/prefix``) against an emulator, in the default run.

The emulator is fake-gcs-server behind the translating proxy of ``gcs_emulator.py`` (it turns
object_store's XML-API ``PUT /{bucket}/{object}``, which fake-gcs-server refuses, into a
JSON-API media upload; everything else is forwarded unchanged). The node finds it through a
service-account JSON named by ``GOOGLE_SERVICE_ACCOUNT`` with ``gcs_base_url`` (the proxy) and
``disable_oauth``. The tests read the bucket through fake-gcs-server's JSON API directly.

* Round trip: spans, logs and metrics land as Parquet objects under
  ``prefix/tenant=…/signal=…/date=…/hour=…/`` in the bucket, every one written once through a
  translated PUT, queryable exactly once before and after a restart; after the restart the
  reads are ranged GETs through the node's read cache (misses, then hits and no new GET on the
  same query again).
* The proxy itself: fake-gcs-server still refuses object_store's XML PUT (else the proxy is
  obsolete); through the proxy the PUT stores the object and answers the ETag and generation
  a later HEAD gives; PUTs it cannot translate faithfully are refused with 501; other
  requests are forwarded unchanged.
* Compaction on GCS: small files of an hour are merged into one object, the replaced objects
  are DELETEd from the bucket after the grace, the garbage collector's listing of the bucket
  (XML list) succeeds; every row exactly once before and after a restart.

No skips: if fake-gcs-server cannot be started the tests fail, saying why.
"""

from __future__ import annotations

import io
import json
import re
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from gcs_emulator import GcsEmulator, GcsObjects
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
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
    wait_for,
)
from storage_backends import parquet_keys

HOUR_NS = 3_600_000_000_000
HOUR12_NS = HOUR10_NS + 2 * HOUR_NS
# These tests count objects; compaction is started explicitly where it is tested.
NO_COMPACTION = ("--compaction-interval", "1h")
KEY = re.compile(
    r"^tenant=(?P<tenant>[^/]+)/signal=(?P<signal>spans|logs|metrics)/date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"hour=(?P<hour>\d{2})/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$")
# What a healthy node never logs.
FAILURES = {"flush failed; will retry", "compaction pass failed", "compaction of a partition failed",
            "retention pass failed", "garbage collection failed", "query failed"}


@pytest.fixture(scope="module")
def gcs():
    """fake-gcs-server and the translating proxy, for this module."""
    emulator = GcsEmulator()  # raises, with the reason, if the emulator does not start
    yield emulator
    emulator.close()


def gcs_node(node_factory, gcs: GcsEmulator, bucket: str, prefix: str, *extra_args: str, data_dir=None):
    """A node on ``gs://bucket/prefix`` of the emulator (1 s flush interval), configured the
    way a user would: a service-account file named by GOOGLE_SERVICE_ACCOUNT."""
    sa = gcs.service_account_file(node_factory.base / f"service-account-{bucket}.json")
    return node_factory.start(
        "--storage", f"gs://{bucket}/{prefix}", "--flush-interval", "1s", *extra_args,
        data_dir=data_dir, env={"GOOGLE_SERVICE_ACCOUNT": str(sa)}, objects=gcs.objects(bucket, prefix))


def object_requests(gcs: GcsEmulator, bucket: str, prefix: str, since: int = 0) -> list[tuple[str, str, object]]:
    """(method, key relative to the prefix, request) of the proxy's object requests to the
    bucket (XML API paths ``/{bucket}/{object}``), from request number ``since`` on."""
    out = []
    for r in gcs.proxy.requests[since:]:
        path = urlsplit(r.path).path
        b, _, name = path.lstrip("/").partition("/")
        name = unquote(name)
        if unquote(b) == bucket and name.startswith(prefix + "/"):
            out.append((r.method, name[len(prefix) + 1:], r))
    return out


def list_requests(gcs: GcsEmulator, bucket: str) -> list:
    """The proxy's XML list requests (``GET /{bucket}?list-type=2…``) of the bucket."""
    return [r for r in gcs.proxy.requests
            if r.method == "GET" and unquote(urlsplit(r.path).path) == f"/{bucket}" and "list-type=2" in r.path]


def failures_logged(node) -> list[dict]:
    out = []
    for line in node.stderr_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") in FAILURES or record.get("level") == "ERROR":
            out.append(record)
    return out


# ------------------------------------------------------------------------------ the proxy


def test_the_proxy_translates_the_put_fake_gcs_refuses(gcs):
    bucket = gcs.create_bucket()
    name = "dir/k=v/x y-1.bin"
    # As object_store sends it: bucket and name with every non-alphanumeric byte escaped.
    def escaped(text):
        return "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02X}" for c in text)

    path = f"/{escaped(bucket)}/{escaped(name)}"
    put_headers = {"Content-Type": "application/octet-stream", "Authorization": "Bearer "}
    direct = requests.put(gcs.fake_gcs.endpoint + path, data=b"v1", headers=put_headers, timeout=30)
    assert direct.status_code == 400, (
        "fake-gcs-server now answers object_store's XML PUT itself "
        f"({direct.status_code} {direct.text[:200]}): gcs_emulator.py's translation may be dropped")

    put = requests.put(gcs.endpoint + path, data=b"v1", headers=put_headers, timeout=30)
    assert put.status_code == 200 and put.content == b"", (put.status_code, put.text)
    head = requests.head(gcs.endpoint + path, timeout=30)
    assert head.status_code == 200 and head.headers["Content-Length"] == "2"
    assert put.headers["ETag"] == head.headers["ETag"] and put.headers["ETag"].startswith('"')
    assert put.headers["x-goog-generation"] == head.headers["x-goog-generation"]
    got = requests.get(gcs.endpoint + path, headers={"Range": "bytes=1-1"}, timeout=30)
    assert (got.status_code, got.content) == (206, b"1")
    assert gcs.objects(bucket).read(name) == b"v1"
    assert gcs.objects(bucket).keys() == [name]

    # What a media upload cannot carry is refused, not silently dropped; nothing is stored.
    for extra in ({"x-goog-if-generation-match": "0"}, {"x-goog-meta-owner": "e2e"}, {"Cache-Control": "no-cache"}):
        r = requests.put(gcs.endpoint + path, data=b"v2", headers={**put_headers, **extra}, timeout=30)
        assert r.status_code == 501 and next(iter(extra)) in r.text, (extra, r.status_code, r.text)
    assert gcs.objects(bucket).read(name) == b"v1"

    # Everything else goes through unchanged: the XML list answers as fake-gcs-server does.
    listing = {"list-type": "2", "prefix": "dir/"}
    via_proxy = requests.get(f"{gcs.endpoint}/{bucket}", params=listing, timeout=30)
    straight = requests.get(f"{gcs.fake_gcs.endpoint}/{bucket}", params=listing, timeout=30)
    assert via_proxy.status_code == straight.status_code == 200
    assert via_proxy.content == straight.content and b"<Key>dir/k=v/x y-1.bin</Key>" in via_proxy.content
    deleted = requests.delete(gcs.endpoint + path, timeout=30)
    assert deleted.status_code in (200, 204)
    assert gcs.objects(bucket).keys() == []


# ------------------------------------------------------------------------------ round trip


def test_round_trip_through_gcs(node_factory, gcs):
    bucket = gcs.create_bucket()
    prefix = "rt/strata"
    n = gcs_node(node_factory, gcs, bucket, prefix, *NO_COMPACTION)
    tenant = unique_tenant("gcs-rt")
    tid = rand_trace_id()
    export_ok(n, "/v1/traces", traces_request([
        span(tid, rand_span_id(), name=f"gcs-span-{i}", start=h + i, end=h + 100 + i, attrs={"i": i})
        for i, h in enumerate([HOUR10_NS, HOUR10_NS, HOUR12_NS])]), tenant)
    export_ok(n, "/v1/logs", logs_request([log_record(f"gcs-log-{i}", time_ns=HOUR10_NS + i) for i in range(4)]),
              tenant)
    export_ok(n, "/v1/metrics", metrics_request([
        gauge_metric("gcs_gauge", [number_point(float(i), time_ns=HOUR12_NS + i) for i in range(5)])]), tenant)

    # Flushed (1 s) into the bucket, one object per table and hour, under the URL's prefix.
    keys = wait_for(lambda: (k := parquet_keys(n, tenant)) and len(k) >= 4 and k, timeout=30,
                    what="four Parquet objects in the bucket")
    parsed = sorted((m["signal"], m["date"], m["hour"]) for k in keys if (m := KEY.match(k)))
    assert len(parsed) == len(keys), keys
    assert parsed == [("logs", DAY, "10"), ("metrics", DAY, "12"), ("spans", DAY, "10"), ("spans", DAY, "12")]
    assert all(KEY.match(k)["tenant"] == tenant for k in keys)
    everything = GcsObjects(gcs.fake_gcs.endpoint, bucket).keys()
    assert everything and all(k.startswith(f"{prefix}/tenant=") for k in everything), everything
    assert not (n.data_dir / "objects").exists()  # nothing went to the local disk
    # Each object was written by one XML PUT, translated by the proxy to a media upload.
    puts = [(key, r) for method, key, r in object_requests(gcs, bucket, prefix) if method == "PUT"]
    assert sorted(key for key, _ in puts) == keys, puts
    assert all(r.status == 200 and r.translated and r.translated.startswith(
        f"POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=") for _, r in puts), puts
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
    assert n.sql("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans", tenant=tenant) == [{"n": 3, "d": 3}]

    n.restart()
    since = len(gcs.proxy.requests)
    assert n.metric_value("strata_cache_misses_total") == 0
    # Exactly once after the restart, read from the objects in GCS.
    assert snapshot() == before
    assert n.sql("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans", tenant=tenant) == [{"n": 3, "d": 3}]
    assert parquet_keys(n, tenant) == keys  # nothing written twice
    plan = "\n".join(r["plan"] for r in n.sql("EXPLAIN SELECT * FROM logs", tenant=tenant))
    assert "MemorySourceConfig" not in plan and "signal=logs" in plan, plan

    # ...through the read cache: its misses are ranged GETs of the objects (206), no whole-object GET.
    misses = n.metric_value("strata_cache_misses_total")
    hits = n.metric_value("strata_cache_hits_total")
    assert misses > 0
    assert n.metric_value("strata_cache_fetched_bytes_total") > 0
    gets = [(key, r) for method, key, r in object_requests(gcs, bucket, prefix, since) if method == "GET"]
    assert gets and all(r.range and r.range.startswith("bytes=") and r.status == 206 for _, r in gets), gets
    assert {key for key, _ in gets} == set(keys)
    assert not [r for method, _, r in object_requests(gcs, bucket, prefix, since) if method in ("PUT", "DELETE")]

    # The same queries again: served by the cache, no request for object data reaches GCS.
    since = len(gcs.proxy.requests)
    assert snapshot() == before
    assert n.metric_value("strata_cache_hits_total") > hits
    assert n.metric_value("strata_cache_misses_total") == misses
    assert [r for method, _, r in object_requests(gcs, bucket, prefix, since) if method == "GET"] == []
    assert failures_logged(n) == []


# ------------------------------------------------------------------------------ compaction


def test_compaction_merges_and_deletes_replaced_objects_in_gcs(node_factory, gcs, tmp_path):
    bucket = gcs.create_bucket()
    prefix = "compact"
    tenant = unique_tenant("gcs-compact")
    data_dir = tmp_path / "compact" / "data"
    files = 4

    # One object per export, no compaction yet.
    n = gcs_node(node_factory, gcs, bucket, prefix, *NO_COMPACTION, data_dir=data_dir)
    for i in range(files):
        export_ok(n, "/v1/logs", logs_request([log_record(f"c-{i}-{j}", time_ns=HOUR10_NS + i * 10 + j)
                                               for j in range(3)]), tenant)
        wait_for(lambda: len(parquet_keys(n, tenant, "logs")) == i + 1, timeout=30,
                 what=f"object {i + 1} in the bucket")
    small = parquet_keys(n, tenant, "logs")
    n.stop_clean()

    # The same node with compaction, retention and garbage collection every second.
    since = len(gcs.proxy.requests)
    n = gcs_node(node_factory, gcs, bucket, prefix, "--compaction-interval", "1s", "--delete-grace", "1s",
                 "--retention-interval", "1s", data_dir=data_dir)
    wait_for(lambda: n.metric_value("strata_compaction_runs_total") >= 1, timeout=60, what="a compaction")
    merged = wait_for(lambda: (k := parquet_keys(n, tenant, "logs")) and set(k).isdisjoint(small) and k,
                      timeout=60, what="the replaced objects to be deleted from the bucket")
    assert len(merged) == 1 and "/date=2024-01-15/hour=10/" in merged[0], merged
    assert n.metric_value("strata_compaction_files_in_total") == files
    assert n.metric_value("strata_gc_objects_deleted_total") == files
    assert n.metric_value("strata_gc_orphans_deleted_total") == 0

    requests_since = object_requests(gcs, bucket, prefix, since)
    # The merged object: one translated PUT; the inputs were read and then DELETEd, each once.
    assert [(k, r.status) for m, k, r in requests_since if m == "PUT"] == [(merged[0], 200)]
    deletes = [(k, r.status) for m, k, r in requests_since if m == "DELETE"]
    assert sorted(deletes) == sorted((k, 200) for k in small), deletes
    assert {k for m, k, r in requests_since if m == "GET" and r.status in (200, 206)} >= set(small)
    # The garbage collector lists the bucket (XML API) on every pass: two passes done means the
    # first one, listing included, completed; it would have logged a failure otherwise.
    wait_for(lambda: len(list_requests(gcs, bucket)) >= 2, timeout=30, what="two garbage-collection passes")
    assert all(r.status == 200 for r in list_requests(gcs, bucket))
    assert failures_logged(n) == []

    # The merged object holds every row once, sorted by time; so does every query.
    table = pq.read_table(io.BytesIO(n.objects.read(merged[0])))
    assert table.num_rows == files * 3
    expected = [{"body": f"c-{i}-{j}"} for i in range(files) for j in range(3)]
    assert n.sql("SELECT body FROM logs ORDER BY time", tenant=tenant) == expected
    n.restart()
    assert n.sql("SELECT body FROM logs ORDER BY time", tenant=tenant) == expected
    assert n.sql("SELECT count(*) AS n, count(DISTINCT body) AS d FROM logs", tenant=tenant) == [
        {"n": files * 3, "d": files * 3}]
    assert parquet_keys(n, tenant, "logs") == merged
