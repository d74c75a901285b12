"""The SQL API: formats, errors, forbidden statements, attribute filters, time pruning,
persistence across restarts, the Parquet layout, and the ``strata sql`` CLI."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
import requests

from helpers import (
    DAY,
    HOUR10_NS,
    STRATA_BIN,
    export_ok,
    gauge_metric,
    log_record,
    logs_request,
    metric_value,
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
from opentelemetry.proto.trace.v1 import trace_pb2
from storage_backends import objects_of, parquet_keys

HOUR_NS = 3_600_000_000_000
HOUR12_NS = HOUR10_NS + 2 * HOUR_NS
T_A = HOUR10_NS + 123_456_789  # 2024-01-15T10:00:00.123456789Z


def send_sample_spans(node, tenant: str) -> dict[str, str]:
    """Three spans with known values; returns name -> span id."""
    ids = {n: rand_span_id() for n in ("GET /users", "POST /orders", "GET /users/1")}
    tid = rand_trace_id()
    req = traces_request([
        span(tid, ids["GET /users"], name="GET /users", start=T_A, end=T_A + 1_500_000,
             attrs={"http.route": "/users", "http.status_code": 200}, kind=trace_pb2.Span.SPAN_KIND_SERVER),
        span(tid, ids["POST /orders"], name="POST /orders", start=T_A + 10, end=T_A + 2_010,
             attrs={"http.route": "/orders", "http.status_code": 503, "comma": 'a,"b"'},
             parent_span_id=ids["GET /users"]),
        span(tid, ids["GET /users/1"], name="GET /users/1", start=T_A + 20, end=T_A + 1_020,
             attrs={"http.route": "/users", "http.status_code": 500}, parent_span_id=ids["GET /users"]),
    ], service="sql-svc")
    export_ok(node, "/v1/traces", req, tenant)
    return {k: v.hex() for k, v in ids.items()}


@pytest.fixture
def sample(node, tenant):
    return send_sample_spans(node, tenant)


# ------------------------------------------------------------------------------ formats


def test_json_format(node, tenant, sample):
    r = node.sql_response(
        "SELECT name, duration_ns, time, parent_span_id, attributes['http.route'] AS route, attributes, "
        "flags, events, CAST(attributes['http.status_code'] AS DOUBLE) / 4 AS q "
        "FROM spans ORDER BY name", tenant=tenant)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {"columns", "rows", "stats"}
    assert set(body["stats"]) == {
        "files_scanned", "files_pruned", "buffer_batches_scanned", "row_groups_scanned",
        "row_groups_pruned_statistics", "row_groups_pruned_bloom_filter", "bytes_scanned", "rows",
        "elapsed_ms"}
    assert body["stats"]["rows"] == len(body["rows"])
    cols = body["columns"]
    assert [c["name"] for c in cols] == ["name", "duration_ns", "time", "parent_span_id", "route", "attributes",
                                         "flags", "events", "q"]
    types = {c["name"]: c["type"] for c in cols}
    assert types["name"] == "Utf8" and types["duration_ns"] == "Int64" and types["flags"] == "UInt32"
    assert types["q"] == "Float64"
    assert "Timestamp" in types["time"] and "UTC" in types["time"]
    assert types["attributes"].startswith("Map")
    assert body["rows"] == [
        ["GET /users", 1_500_000, "2024-01-15T10:00:00.123456789Z", None, "/users",
         {"http.route": "/users", "http.status_code": "200"}, 0, [], 50.0],
        ["GET /users/1", 1_000, "2024-01-15T10:00:00.123456809Z", sample["GET /users"], "/users",
         {"http.route": "/users", "http.status_code": "500"}, 0, [], 125.0],
        ["POST /orders", 2_000, "2024-01-15T10:00:00.123456799Z", sample["GET /users"], "/orders",
         {"http.route": "/orders", "http.status_code": "503", "comma": 'a,"b"'}, 0, [], 125.75],
    ]


def test_json_nested_and_special_values(node, tenant):
    rows = node.sql(
        "SELECT named_struct('a', 1, 'b', 'x', 'c', named_struct('d', true)) AS s, [1, 2, 3] AS l, "
        "map(['k1', 'k2'], ['v1', NULL]) AS m, CAST('NaN' AS DOUBLE) AS nan, "
        "CAST('-inf' AS DOUBLE) AS ninf, NULL AS n, true AS b, 'é\"\\n' AS str, "
        "arrow_cast(1705312800123456789, 'Timestamp(Nanosecond, Some(\"UTC\"))') AS ts, "
        "18446744073709551615 AS big", tenant=tenant)
    assert rows == [{
        "s": {"a": 1, "b": "x", "c": {"d": True}},
        "l": [1, 2, 3],
        "m": {"k1": "v1", "k2": None},
        "nan": "NaN",
        "ninf": "-Infinity",
        "n": None,
        "b": True,
        "str": 'é"\\n',
        "ts": "2024-01-15T10:00:00.123456789Z",
        "big": 18446744073709551615,
    }]


def test_empty_result_keeps_columns(node, tenant):
    body = node.sql_result("SELECT name, time FROM spans WHERE name = 'nothing'", tenant=tenant)
    assert [c["name"] for c in body["columns"]] == ["name", "time"]
    assert body["rows"] == []


def test_csv_format(node, tenant, sample):
    r = node.sql_response(
        "SELECT name, duration_ns, time, parent_span_id, attributes['comma'] AS comma, attributes "
        "FROM spans ORDER BY name", tenant=tenant, accept="text/csv")
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == "text/csv"
    parent = sample["GET /users"]
    assert r.text == (
        "name,duration_ns,time,parent_span_id,comma,attributes\n"
        'GET /users,1500000,2024-01-15T10:00:00.123456789Z,,,"{""http.route"":""/users"",""http.status_code"":""200""}"\n'
        f'GET /users/1,1000,2024-01-15T10:00:00.123456809Z,{parent},,'
        '"{""http.route"":""/users"",""http.status_code"":""500""}"\n'
        f'POST /orders,2000,2024-01-15T10:00:00.123456799Z,{parent},"a,""b""",'
        '"{""http.route"":""/orders"",""http.status_code"":""503"",""comma"":""a,\\""b\\""""}"\n'
    )
    parsed = list(csv.reader(io.StringIO(r.text)))
    assert parsed[3][4] == 'a,"b"'
    assert json.loads(parsed[3][5]) == {"http.route": "/orders", "http.status_code": "503", "comma": 'a,"b"'}


def test_arrow_stream_format(node, tenant, sample):
    r = node.sql_response(
        "SELECT name, duration_ns, time, parent_span_id, attributes, events FROM spans ORDER BY name",
        tenant=tenant, accept="application/vnd.apache.arrow.stream")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.schema.names == ["name", "duration_ns", "time", "parent_span_id", "attributes", "events"]
    assert table.schema.field("name").type == pa.string()
    assert table.schema.field("duration_ns").type == pa.int64()
    assert table.schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert pa.types.is_map(table.schema.field("attributes").type)
    assert pa.types.is_list(table.schema.field("events").type)
    assert table.column("name").to_pylist() == ["GET /users", "GET /users/1", "POST /orders"]
    assert table.column("duration_ns").to_pylist() == [1_500_000, 1_000, 2_000]
    assert table.column("time").cast(pa.int64()).to_pylist() == [T_A, T_A + 20, T_A + 10]
    assert table.column("parent_span_id").to_pylist() == [None, sample["GET /users"], sample["GET /users"]]
    assert [dict(m) for m in table.column("attributes").to_pylist()] == [
        {"http.route": "/users", "http.status_code": "200"},
        {"http.route": "/users", "http.status_code": "500"},
        {"http.route": "/orders", "http.status_code": "503", "comma": 'a,"b"'},
    ]
    # An empty result is a valid stream with the schema.
    r = node.sql_response("SELECT name FROM spans WHERE false", tenant=tenant,
                          accept="application/vnd.apache.arrow.stream")
    empty = pa.ipc.open_stream(r.content).read_all()
    assert empty.num_rows == 0 and empty.schema.names == ["name"]


def test_accept_negotiation(node, tenant, sample):
    q = "SELECT count(*) AS n FROM spans"
    assert node.sql_response(q, tenant=tenant, accept="*/*").json()["rows"] == [[3]]
    assert node.sql_response(q, tenant=tenant, accept="text/html, text/csv;q=0.9").text == "n\n3\n"
    r = node.sql_response(q, tenant=tenant, accept="application/vnd.apache.arrow.stream, application/json")
    assert pa.ipc.open_stream(r.content).read_all().column("n").to_pylist() == [3]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("query,needle", [
    ("SELECT no_such_column FROM spans", "no_such_column"),
    ("SELECT * FROM no_such_table", "no_such_table"),
    ("SELEC name FROM spans", "SELEC"),
    ("SELECT name FROM spans WHERE", ""),
    ("SELECT no_such_function(name) FROM spans", "no_such_function"),
    ("SELECT CAST('abc' AS INT)", "abc"),
])
def test_sql_error_400(node, tenant, query, needle):
    r = node.sql_response(query, tenant=tenant)
    assert r.status_code == 400, (query, r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]
    assert needle in body["error"], body


@pytest.mark.parametrize("body", [b"not json", b'{"query": "SELECT 1"}', b'{"sql": 5}', b""])
def test_bad_request_body_400(node, body):
    r = requests.post(node.api_url + "/api/v1/sql", data=body, headers={"Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 400
    assert "error" in r.json()


COPY_TARGET = f"/tmp/strata-e2e-copy-{uuid.uuid4().hex}"

# Each forbidden statement, and a word the error must contain (case-insensitive).
FORBIDDEN = [
    ("CREATE TABLE t (x INT)", "not supported"),
    ("CREATE TABLE t AS SELECT * FROM spans", "not supported"),
    ("CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc'", "not supported"),
    ("CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'", "not supported"),
    ("CREATE EXTERNAL TABLE pq STORED AS PARQUET LOCATION 'strata://objects/'", "not supported"),
    ("CREATE VIEW v AS SELECT 1", "not supported"),
    ("CREATE SCHEMA s", "not supported"),
    ("INSERT INTO spans SELECT * FROM spans", "not supported"),
    ("INSERT INTO t VALUES (1)", "t"),
    ("DELETE FROM spans", "not supported"),
    ("UPDATE spans SET name = 'x'", "not supported"),
    ("DROP TABLE spans", "not supported"),
    ("DROP VIEW v", "not supported"),
    ("DROP SCHEMA public", "not supported"),
    ("TRUNCATE TABLE spans", "not supported"),
    (f"COPY (SELECT 1) TO '{COPY_TARGET}.csv'", "copy"),
    (f"COPY (SELECT 1) TO '{COPY_TARGET}' STORED AS CSV", "copy"),
    (f"COPY spans TO '{COPY_TARGET}.parquet'", "copy"),
    (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{COPY_TARGET}.csv'", "copy"),
    ("EXPLAIN ANALYZE INSERT INTO spans SELECT * FROM spans", "not supported"),
    ("EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "not supported"),
    ("SET datafusion.execution.batch_size = 1", "not supported"),
    ("SET datafusion.catalog.information_schema = false", "not supported"),
    ("SET TIME ZONE = 'UTC'", "not supported"),
    ("SELECT * FROM '/etc/passwd'", "not found"),
    ("SELECT * FROM 'file:///etc/passwd'", "not found"),
    ("SELECT * FROM '/etc/'", "not found"),
    ("SELECT * FROM spans, '/etc/passwd'", "not found"),
    ("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("SELECT * FROM read_json('/etc/passwd')", "read_json"),
    ("SELECT * FROM parquet_metadata('/etc/passwd')", "parquet_metadata"),
    ("SELECT 1; SELECT 2", "statement"),
    ("SELECT * FROM spans; DROP TABLE spans", "statement"),
    ("PREPARE p AS SELECT 1", "not supported"),
]


@pytest.mark.parametrize("query,needle", FORBIDDEN)
def test_forbidden_statements_400(node, tenant, sample, query, needle):
    r = node.sql_response(query, tenant=tenant)
    assert r.status_code == 400, (query, r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and body["error"]
    assert needle.lower() in body["error"].lower(), body
    assert "root:" not in r.text  # no file content leaks into the message
    # No side effects.
    for suffix in ("", ".csv", ".parquet"):
        assert not Path(COPY_TARGET + suffix).exists()
    assert node.sql("SELECT count(*) AS n FROM spans", tenant=tenant) == [{"n": 3}]
    assert node.sql("SELECT name FROM spans ORDER BY name LIMIT 1", tenant=tenant) == [{"name": "GET /users"}]
    tables = node.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                      "ORDER BY 1", tenant=tenant)
    # With auth none every caller is an admin of its tenant, so its session has `audit` too.
    assert tables == [{"table_name": n} for n in ("alerts", "audit", "incidents", "logs", "metrics", "spans")]


def test_read_only_statements_allowed(node, tenant, sample):
    """What a read-only user may do: SELECT, WITH, EXPLAIN, DESCRIBE, SHOW."""
    assert node.sql("WITH x AS (SELECT name FROM spans) SELECT count(*) AS n FROM x", tenant=tenant) == [{"n": 3}]
    assert node.sql("EXPLAIN SELECT 1", tenant=tenant)[0]["plan_type"] == "logical_plan"
    described = node.sql("DESCRIBE spans", tenant=tenant)
    assert [r["column_name"] for r in described][:3] == ["time", "end_time", "duration_ns"]
    assert node.sql("SELECT 1 AS one", tenant=tenant) == [{"one": 1}]
    shown = node.sql("SHOW TABLES", tenant=tenant)
    assert sorted(r["table_name"] for r in shown if r["table_schema"] == "public") == [
        "alerts", "audit", "incidents", "logs", "metrics", "spans"]  # audit: auth none makes every caller an admin
    assert {r["table_catalog"] for r in shown} == {"strata"}


# ------------------------------------------------------------------------------ attribute filters


def test_attribute_comparisons(node, tenant, sample):
    assert node.sql("SELECT name FROM spans WHERE attributes['http.route'] = '/users' ORDER BY name",
                    tenant=tenant) == [{"name": "GET /users"}, {"name": "GET /users/1"}]
    assert node.sql("SELECT name FROM spans WHERE CAST(attributes['http.status_code'] AS BIGINT) >= 500 "
                    "ORDER BY name", tenant=tenant) == [{"name": "GET /users/1"}, {"name": "POST /orders"}]
    assert node.sql("SELECT name FROM spans WHERE attributes['missing'] IS NULL ORDER BY name",
                    tenant=tenant) == [{"name": "GET /users"}, {"name": "GET /users/1"}, {"name": "POST /orders"}]
    assert node.sql("SELECT attributes['http.route'] AS route, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1",
                    tenant=tenant) == [{"route": "/orders", "n": 1}, {"route": "/users", "n": 2}]
    assert node.sql("SELECT name FROM spans WHERE kind = 'server' AND service_name = 'sql-svc'",
                    tenant=tenant) == [{"name": "GET /users"}]
    # Parent/child join through the id columns.
    assert node.sql("SELECT c.name AS child FROM spans c JOIN spans p ON c.parent_span_id = p.span_id "
                    "WHERE p.name = 'GET /users' ORDER BY 1", tenant=tenant) == [
        {"child": "GET /users/1"}, {"child": "POST /orders"}]


def test_time_literal_filters(node, tenant, sample):
    q = "SELECT name FROM spans WHERE time {} ORDER BY name"
    assert node.sql(q.format("= '2024-01-15T10:00:00.123456789Z'"), tenant=tenant) == [{"name": "GET /users"}]
    assert node.sql(q.format("> '2024-01-15T10:00:00.123456789Z'"), tenant=tenant) == [
        {"name": "GET /users/1"}, {"name": "POST /orders"}]
    assert node.sql(q.format("BETWEEN '2024-01-15T10:00:00.123456799Z' AND '2024-01-15T10:00:00.123456799Z'"),
                    tenant=tenant) == [{"name": "POST /orders"}]
    assert node.sql(q.format("< '2024-01-15T10:00:00Z'"), tenant=tenant) == []


# ------------------------------------------------------------------------------ time pruning


_FILE = re.compile(r"tenant=([^/\s\]]+)/signal=spans/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[0-9a-f-]+\.parquet")


def explain_files(node, tenant: str, where: str = "") -> tuple[list[tuple[str, str]], str]:
    rows = node.sql(f"EXPLAIN SELECT name FROM spans {where}", tenant=tenant)
    physical = "\n".join(r["plan"] for r in rows if r["plan_type"] == "physical_plan")
    files = [(m.group(2), m.group(3)) for m in _FILE.finditer(physical)]
    assert all(m.group(1) == tenant for m in _FILE.finditer(physical))
    return sorted(files), physical


def test_time_filter_prunes_files_in_explain(node, tenant):
    tid = rand_trace_id()
    export_ok(node, "/v1/traces", traces_request([
        span(tid, rand_span_id(), name="at-10", start=HOUR10_NS + 5, end=HOUR10_NS + 10),
        span(tid, rand_span_id(), name="at-10b", start=HOUR10_NS + 1_800_000_000_000, end=HOUR10_NS + 1_800_000_000_001),
        span(tid, rand_span_id(), name="at-12", start=HOUR12_NS + 7, end=HOUR12_NS + 9),
    ]), tenant)

    # Wait for the flush to Parquet: both hour files appear in the unfiltered plan, no buffer left.
    def flushed():
        files, plan = explain_files(node, tenant)
        return files if len(files) == 2 and "MemorySourceConfig" not in plan and "MemoryExec" not in plan else None

    all_files = wait_for(flushed, timeout=30, what="two span files to be flushed")
    assert all_files == [(DAY, "10"), (DAY, "12")]

    files, plan = explain_files(node, tenant, f"WHERE time >= '{DAY}T12:00:00Z'")
    assert files == [(DAY, "12")], plan
    files, plan = explain_files(node, tenant, f"WHERE time < '{DAY}T11:00:00Z'")
    assert files == [(DAY, "10")], plan
    files, plan = explain_files(node, tenant, f"WHERE time BETWEEN '{DAY}T12:00:00Z' AND '{DAY}T12:59:59Z'")
    assert files == [(DAY, "12")], plan
    files, plan = explain_files(node, tenant, f"WHERE '{DAY}T12:00:00Z' <= time")
    assert files == [(DAY, "12")], plan
    files, plan = explain_files(node, tenant, f"WHERE time >= '{DAY}T13:00:00Z'")
    assert files == [], plan
    # A filter on something else prunes nothing.
    files, _ = explain_files(node, tenant, "WHERE name = 'at-12'")
    assert files == [(DAY, "10"), (DAY, "12")]

    # The query stats say the same: one file read, one pruned by time, nothing from the buffer.
    stats = node.sql_response(f"SELECT name FROM spans WHERE time >= '{DAY}T12:00:00Z'",
                              tenant=tenant).json()["stats"]
    assert (stats["files_scanned"], stats["files_pruned"], stats["buffer_batches_scanned"]) == (1, 1, 0)
    assert stats["bytes_scanned"] > 0
    stats = node.sql_response("SELECT name FROM spans", tenant=tenant).json()["stats"]
    assert (stats["files_scanned"], stats["files_pruned"]) == (2, 0)

    # And the results agree with the plans.
    assert node.sql(f"SELECT name FROM spans WHERE time >= '{DAY}T12:00:00Z'", tenant=tenant) == [{"name": "at-12"}]
    assert node.sql(f"SELECT name FROM spans WHERE time < '{DAY}T11:00:00Z' ORDER BY name", tenant=tenant) == [
        {"name": "at-10"}, {"name": "at-10b"}]
    assert node.sql(f"SELECT count(*) AS n FROM spans WHERE time >= '{DAY}T13:00:00Z'", tenant=tenant) == [{"n": 0}]


def test_trace_lookups_skip_row_groups_by_statistics_and_bloom_filter(node, tenant):
    low, high, absent = bytes([0x10] * 16), bytes([0xf0] * 16), bytes([0x80] * 16)
    other = bytes([0xf8] * 16)
    # File 1 (hour 10) spans trace ids 10…10 to f0…f0: its min/max cannot rule out 80…80, only
    # its bloom filter can. File 2 (hour 12) holds only f8…f8: statistics rule it out.
    export_ok(node, "/v1/traces", traces_request([
        span(low, rand_span_id(), name="low", start=HOUR10_NS + 1),
        span(high, rand_span_id(), name="high", start=HOUR10_NS + 2),
        span(other, rand_span_id(), name="other", start=HOUR12_NS + 1),
    ]), tenant)
    wait_for(lambda: len(explain_files(node, tenant)[0]) == 2 and "MemorySourceConfig" not in
             explain_files(node, tenant)[1], timeout=30, what="two span files to be flushed")

    r = node.sql_response(f"SELECT name FROM spans WHERE trace_id = '{absent.hex()}'", tenant=tenant).json()
    assert r["rows"] == []
    assert r["stats"]["files_scanned"] == 2
    assert r["stats"]["row_groups_pruned_statistics"] == 1
    assert r["stats"]["row_groups_pruned_bloom_filter"] == 1
    assert r["stats"]["row_groups_scanned"] == 0

    r = node.sql_response(f"SELECT name FROM spans WHERE trace_id = '{high.hex()}'", tenant=tenant).json()
    assert r["rows"] == [["high"]]
    assert r["stats"]["row_groups_scanned"] == 1


# ------------------------------------------------------------------------------ Parquet layout


def test_parquet_layout(node, tenant):
    tid = rand_trace_id()
    export_ok(node, "/v1/traces", traces_request([
        span(tid, rand_span_id(), name="l10", start=HOUR10_NS + 1),
        span(tid, rand_span_id(), name="l12", start=HOUR12_NS + 1),
    ]), tenant)
    export_ok(node, "/v1/logs", logs_request([log_record("log10", time_ns=HOUR10_NS + 2)]), tenant)
    export_ok(node, "/v1/metrics", metrics_request([
        gauge_metric("m", [number_point(1.0, time_ns=HOUR12_NS + 3), number_point(2.0, time_ns=HOUR12_NS + 4)])]),
        tenant)
    # Read through the storage under test: the local directory or the S3 bucket.
    files = wait_for(lambda: (f := parquet_keys(node, tenant)) and len(f) >= 4 and f,
                     timeout=30, what="four files to be flushed")
    objects = objects_of(node)
    rel = sorted(files)
    pattern = re.compile(
        rf"^tenant={re.escape(tenant)}/signal=(spans|logs|metrics)/date=(\d{{4}}-\d{{2}}-\d{{2}})/hour=(\d{{2}})/"
        r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$")
    parsed = []
    for path in rel:
        m = pattern.match(path)
        assert m, path
        parsed.append(m.groups())
    assert sorted(parsed) == sorted([
        ("logs", DAY, "10"), ("metrics", DAY, "12"), ("spans", DAY, "10"), ("spans", DAY, "12")])

    # Each file holds its hour's rows, with the table's columns, zstd-compressed.
    expected_rows = {("spans", "10"): 1, ("spans", "12"): 1, ("logs", "10"): 1, ("metrics", "12"): 2}
    for path, (signal_name, _day, hour) in zip(rel, parsed):
        pf = pq.ParquetFile(io.BytesIO(objects.read(path)))
        table = pf.read()
        assert table.num_rows == expected_rows[(signal_name, hour)]
        start = HOUR10_NS + (int(hour) - 10) * HOUR_NS
        times = table.column("time").cast(pa.int64()).to_pylist()
        assert all(start <= t < start + HOUR_NS for t in times), (path, times)
        sql_columns = [c["name"] for c in node.sql_result(f"SELECT * FROM {signal_name} LIMIT 0",
                                                          tenant=tenant)["columns"]]
        # Each resource is stored once: `resource` indexes the file's resources, kept as JSON
        # in its key-value metadata, in place of the table's `resource_attributes`.
        # Logs files store each line by field after the table's columns: its template, then a
        # text and a number column per field position.
        line_columns = ["body_template"] + [f"body_{kind}_{k}" for k in range(12) for kind in ("text", "number")]
        assert table.schema.names == ["resource" if c == "resource_attributes" else c
                                      for c in sql_columns] + (line_columns if signal_name == "logs" else [])
        if signal_name == "logs":
            # "log10" is one field (a word with a digit, not a number): the template is its marker.
            row = table.select(["body", "body_template", "body_text_0", "body_number_0"]).to_pylist()[0]
            assert row == {"body": None, "body_template": "\x10", "body_text_0": "log10", "body_number_0": None}, row
            assert node.sql("SELECT body FROM logs", tenant=tenant) == [{"body": "log10"}]
        resources = json.loads(pf.metadata.metadata[b"strata.resources"])
        for row in table.select(["resource", "service_name"]).to_pylist():
            resource = dict(resources[row["resource"]])
            assert resource.get("service.name", "unknown_service") == row["service_name"], (path, resource)
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"


# ------------------------------------------------------------------------------ restart


def _send_batch(node, tenant: str, label: str, hour_ns: int):
    tid = rand_trace_id()
    export_ok(node, "/v1/traces", traces_request([
        span(tid, rand_span_id(), name=f"{label}-span-{i}", start=hour_ns + i, end=hour_ns + 100 + i,
             attrs={"i": i, "label": label}, events=[trace_pb2.Span.Event(time_unix_nano=hour_ns + i, name="e")])
        for i in range(3)]), tenant)
    export_ok(node, "/v1/logs", logs_request([log_record(f"{label}-log", time_ns=hour_ns + 7, trace_id=tid)]), tenant)
    export_ok(node, "/v1/metrics", metrics_request([
        gauge_metric(f"{label}_gauge", [number_point(1.25, time_ns=hour_ns + 9, attrs={"label": label})])]), tenant)


def _snapshot(node, tenant: str) -> dict:
    return {
        "spans": normalize_rows(node.sql("SELECT * FROM spans ORDER BY name", tenant=tenant)),
        "logs": normalize_rows(node.sql("SELECT * FROM logs ORDER BY body", tenant=tenant)),
        "metrics": normalize_rows(node.sql("SELECT * FROM metrics ORDER BY metric_name", tenant=tenant)),
    }


def test_data_survives_restart_exactly_once(node_factory):
    n = node_factory.start("--flush-interval", "1s")
    tenant = unique_tenant("restart")
    _send_batch(n, tenant, "first", HOUR10_NS)
    wait_for(lambda: len(parquet_keys(n, tenant)) >= 3, timeout=30, what="first batch flushed")
    # A second batch, still in the write buffer at shutdown: SIGTERM must flush it.
    _send_batch(n, tenant, "second", HOUR12_NS)
    before = _snapshot(n, tenant)
    assert [r["name"] for r in before["spans"]] == [f"{b}-span-{i}" for b in ("first", "second") for i in range(3)]
    assert [r["body"] for r in before["logs"]] == ["first-log", "second-log"]
    assert [r["metric_name"] for r in before["metrics"]] == ["first_gauge", "second_gauge"]

    n.restart()
    assert _snapshot(n, tenant) == before
    # Both batches are in Parquet now, once each.
    assert len(parquet_keys(n, tenant)) == 6
    n.restart()
    assert _snapshot(n, tenant) == before
    assert len(parquet_keys(n, tenant)) == 6
    assert n.sql("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans", tenant=tenant) == [{"n": 6, "d": 6}]


def test_restart_with_only_buffered_data(node_factory):
    """Nothing flushed before SIGTERM (long flush interval): shutdown writes it all."""
    n = node_factory.start("--flush-interval", "1h")
    tenant = unique_tenant("buffered")
    _send_batch(n, tenant, "only", HOUR10_NS)
    assert parquet_keys(n, tenant) == []
    before = _snapshot(n, tenant)
    n.restart()
    assert len(parquet_keys(n, tenant)) == 3
    assert _snapshot(n, tenant) == before


def test_sigint_also_shuts_down_cleanly_and_flushes(node_factory):
    n = node_factory.start("--flush-interval", "1h")
    tenant = unique_tenant("sigint")
    _send_batch(n, tenant, "int", HOUR10_NS)
    before = _snapshot(n, tenant)
    code = n.stop(signal.SIGINT)
    assert code == 0, n.stderr_text()
    assert len(parquet_keys(n, tenant)) == 3
    n.start()
    assert _snapshot(n, tenant) == before


# ------------------------------------------------------------------------------ health and self-metrics


def test_health_endpoints(node):
    assert requests.get(node.api_url + "/healthz", timeout=30).status_code == 200
    assert requests.get(node.api_url + "/readyz", timeout=30).status_code == 200


def test_query_metrics(node, tenant):
    before = node.metrics_text()
    node.sql("SELECT 1", tenant=tenant)
    node.sql("SELECT 2", tenant=tenant)
    assert node.sql_response("SELECT nope", tenant=tenant).status_code == 400
    after = node.metrics_text()
    assert metric_value(before, "strata_query_queries_total", {"tenant": tenant}) == 0
    assert metric_value(after, "strata_query_queries_total", {"tenant": tenant, "outcome": "ok"}) == 2
    assert metric_value(after, "strata_query_queries_total", {"tenant": tenant, "outcome": "user"}) == 1


# ------------------------------------------------------------------------------ CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STRATA_BIN, "sql", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_cli_formats(node, tenant, sample):
    q = "SELECT name, duration_ns FROM spans ORDER BY name"
    server = node.api_url

    table = run_cli(q, "--server", server, "--tenant", tenant)
    assert table.returncode == 0, table.stderr
    assert table.stdout == (
        "+--------------+-------------+\n"
        "| name         | duration_ns |\n"
        "+--------------+-------------+\n"
        "| GET /users   | 1500000     |\n"
        "| GET /users/1 | 1000        |\n"
        "| POST /orders | 2000        |\n"
        "+--------------+-------------+\n"
        "3 rows\n"
    )
    explicit = run_cli(q, "--server", server, "--tenant", tenant, "--format", "table")
    assert explicit.stdout == table.stdout

    js = run_cli(q, "--server", server + "/", "--tenant", tenant, "--format", "json")
    assert js.returncode == 0, js.stderr
    cli_json, api_json = json.loads(js.stdout), node.sql_result(q, tenant=tenant)
    # Timings differ between two runs; everything else is the same.
    cli_json["stats"].pop("elapsed_ms")
    api_json["stats"].pop("elapsed_ms")
    assert cli_json == api_json
    assert json.loads(js.stdout)["rows"] == [["GET /users", 1500000], ["GET /users/1", 1000], ["POST /orders", 2000]]

    cs = run_cli(q, "--server", server, "--tenant", tenant, "--format", "csv")
    assert cs.returncode == 0, cs.stderr
    assert cs.stdout == "name,duration_ns\nGET /users,1500000\nGET /users/1,1000\nPOST /orders,2000\n"

    one = run_cli("SELECT name FROM spans WHERE name = 'POST /orders'", "--server", server, "--tenant", tenant)
    assert one.stdout.endswith("\n1 row\n")
    empty = run_cli("SELECT name FROM spans WHERE false", "--server", server, "--tenant", tenant)
    assert empty.returncode == 0 and empty.stdout.endswith("0 rows\n") and "name" in empty.stdout

    # Another tenant sees nothing through the CLI either.
    other = run_cli("SELECT count(*) AS n FROM spans", "--server", server, "--tenant", unique_tenant("cli-other"),
                    "--format", "csv")
    assert other.stdout == "n\n0\n"


def test_cli_errors(node, tenant):
    bad = run_cli("SELECT no_such_column FROM spans", "--server", node.api_url, "--tenant", tenant)
    assert bad.returncode != 0
    assert bad.stdout == ""
    assert "no_such_column" in bad.stderr and "400" in bad.stderr
    forbidden = run_cli("DROP TABLE spans", "--server", node.api_url, "--tenant", tenant, "--format", "json")
    assert forbidden.returncode != 0 and forbidden.stderr.strip()
    bad_tenant = run_cli("SELECT 1", "--server", node.api_url, "--tenant", "a/b")
    assert bad_tenant.returncode != 0 and "tenant" in bad_tenant.stderr
    unreachable = run_cli("SELECT 1", "--server", "http://127.0.0.1:9", "--tenant", tenant)
    assert unreachable.returncode != 0 and unreachable.stderr.strip()
