"""Tenant isolation: what tenant A sends is invisible to tenant B, whatever B's SQL says.

Also the default tenant, and tenant id validation over HTTP (400) and gRPC (INVALID_ARGUMENT).
"""

from __future__ import annotations

import fnmatch

import grpc
import pytest
import requests

from helpers import (
    LOGS_GRPC,
    METRICS_GRPC,
    TRACES_GRPC,
    export_ok,
    gauge_metric,
    grpc_channel,
    grpc_raw_call,
    h2_grpc_call,
    log_record,
    logs_request,
    metrics_request,
    number_point,
    post_protobuf,
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
    wait_for,
)
from storage_backends import objects_of, parquet_keys


def send_all_signals(node, tenant: str, marker: str, trace_id: bytes):
    """One span, one log record and one gauge point, all carrying ``marker``."""
    sid = rand_span_id()
    export_ok(node, "/v1/traces", traces_request(
        [span(trace_id, sid, name=f"span-{marker}", attrs={"marker": marker})], service=f"svc-{marker}"), tenant)
    export_ok(node, "/v1/logs", logs_request(
        [log_record(f"log-{marker}", trace_id=trace_id, span_id=sid, attrs={"marker": marker})],
        service=f"svc-{marker}"), tenant)
    export_ok(node, "/v1/metrics", metrics_request(
        [gauge_metric(f"metric_{marker}", [number_point(1.0, attrs={"marker": marker})])],
        service=f"svc-{marker}"), tenant)


@pytest.fixture(scope="module")
def two_tenants(node):
    """Tenants A and B, each with one item per signal; A's data is flushed to Parquet too."""
    a, b = unique_tenant("tenant-a"), unique_tenant("tenant-b")
    shared_trace = rand_trace_id()  # the same trace id in both tenants: joins must not cross
    send_all_signals(node, a, "aaa", shared_trace)
    wait_for(lambda: len(parquet_keys(node, a)) >= 3, what="A's files to be flushed")
    send_all_signals(node, a, "aaa2", shared_trace)  # and some still in the write buffer
    send_all_signals(node, b, "bbb", shared_trace)
    return a, b, shared_trace


def values(node, query: str, tenant: str) -> list:
    return [tuple(r.values()) for r in node.sql(query, tenant=tenant)]


def test_each_tenant_sees_only_its_rows(node, two_tenants):
    a, b, _ = two_tenants
    for table, column in (("spans", "name"), ("logs", "body"), ("metrics", "metric_name")):
        assert values(node, f"SELECT {column} FROM {table} ORDER BY 1", b) == [
            ({"spans": "span-bbb", "logs": "log-bbb", "metrics": "metric_bbb"}[table],)]
        assert values(node, f"SELECT {column} FROM {table} ORDER BY 1", a) == sorted([
            ({"spans": "span-aaa", "logs": "log-aaa", "metrics": "metric_aaa"}[table],),
            ({"spans": "span-aaa2", "logs": "log-aaa2", "metrics": "metric_aaa2"}[table],)])
        assert values(node, f"SELECT count(*) FROM {table} WHERE attributes['marker'] LIKE 'aaa%'", b) == [(0,)]
        assert values(node, f"SELECT count(*) FROM strata.public.{table}", b) == [(1,)]
        assert values(node, f"SELECT count(*) FROM public.{table}", b) == [(1,)]


def test_joins_subqueries_and_unions_stay_within_the_tenant(node, two_tenants):
    a, b, trace = two_tenants
    tid = trace.hex()
    assert values(node, f"""
        SELECT s.name, l.body FROM spans s JOIN logs l ON s.trace_id = l.trace_id
        WHERE s.trace_id = '{tid}' ORDER BY 1, 2""", b) == [("span-bbb", "log-bbb")]
    assert values(node, """
        SELECT count(*) FROM spans s FULL OUTER JOIN logs l ON s.trace_id = l.trace_id""", b) == [(1,)]
    assert values(node, """
        SELECT name FROM spans WHERE trace_id IN (SELECT trace_id FROM logs) ORDER BY 1""", b) == [("span-bbb",)]
    assert values(node, """
        SELECT (SELECT count(*) FROM logs) + (SELECT count(*) FROM metrics) + (SELECT count(*) FROM spans)""",
                  b) == [(3,)]
    assert values(node, """
        SELECT service_name FROM spans UNION SELECT service_name FROM logs
        UNION ALL SELECT service_name FROM metrics ORDER BY 1""", b) == [("svc-bbb",), ("svc-bbb",)]
    assert values(node, """
        WITH x AS (SELECT attributes['marker'] AS m FROM spans UNION ALL SELECT attributes['marker'] FROM logs
                   UNION ALL SELECT attributes['marker'] FROM metrics)
        SELECT m, count(*) FROM x GROUP BY m ORDER BY m""", b) == [("bbb", 3)]
    assert values(node, """
        SELECT count(*) FROM spans s1 CROSS JOIN spans s2 CROSS JOIN logs""", b) == [(1,)]


def test_information_schema_lists_only_the_tenants_own_tables(node, two_tenants):
    # The three signal tables, the tenant's alert history and incidents, and `audit`: with auth
    # none every caller is an admin of its tenant (test_audit.py checks that a read key does not
    # see it).
    a, b, _ = two_tenants
    for t in (a, b):
        rows = node.sql("""SELECT table_catalog, table_schema, table_name, table_type
                           FROM information_schema.tables
                           WHERE table_schema <> 'information_schema' ORDER BY table_name""", tenant=t)
        assert rows == [
            {"table_catalog": "strata", "table_schema": "public", "table_name": name, "table_type": "BASE TABLE"}
            for name in ("alerts", "audit", "incidents", "logs", "metrics", "spans")
        ]
        everything = node.sql("SELECT * FROM information_schema.tables", tenant=t)
        assert a not in str(everything) and b not in str(everything)
        catalogs = {r["table_catalog"] for r in everything}
        assert catalogs == {"strata"}
        columns = node.sql("""SELECT DISTINCT table_name FROM information_schema.columns
                              WHERE table_schema = 'public' ORDER BY table_name""", tenant=t)
        assert columns == [{"table_name": n} for n in ("alerts", "audit", "incidents", "logs", "metrics", "spans")]
        all_columns = node.sql("SELECT * FROM information_schema.columns", tenant=t)
        assert a not in str(all_columns) and b not in str(all_columns)
        assert "aaa" not in str(all_columns)
        schemata = node.sql("SELECT catalog_name, schema_name FROM information_schema.schemata ORDER BY 2", tenant=t)
        assert schemata == [{"catalog_name": "strata", "schema_name": "public"}]


def test_other_tenants_data_cannot_be_named(node, two_tenants):
    a, b, _ = two_tenants
    # A's file as Strata names it (rel) and as the storage under test does: a local path or
    # an s3:// URL; neither may be read through the SQL API.
    rel = parquet_keys(node, a, "spans")[0]
    a_file = objects_of(node).url_of(rel)
    root = objects_of(node).url_of()
    attempts = [
        f'SELECT * FROM "{a}".spans',
        f'SELECT * FROM strata."{a}".spans',
        f'SELECT * FROM "{a}"."spans"',
        f'SELECT * FROM "tenant={a}".spans',
        f'SELECT * FROM "{a}".public.spans',
        'SELECT * FROM datafusion.public.spans',
        f"SELECT * FROM 'strata://objects/{rel}'",
        f"SELECT * FROM 'strata://objects/tenant={a}/signal=spans/'",
        f"SELECT * FROM '{a_file}'",
        f"SELECT * FROM '{root}/tenant={a}/'",
        f"SELECT * FROM read_parquet('{a_file}')",
        f"SELECT * FROM read_parquet('strata://objects/{rel}')",
        f"CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION 'strata://objects/tenant={a}/signal=spans/'",
    ]
    for q in attempts:
        r = node.sql_response(q, tenant=b)
        assert r.status_code == 400, (q, r.status_code, r.text[:500])
        assert "error" in r.json(), q
        for leaked in ("span-aaa", "log-aaa", "metric_aaa", "svc-aaa"):
            assert leaked not in r.text, (q, r.text[:500])


def test_default_tenant_when_no_header(node):
    marker = unique_tenant("default-marker")
    req = traces_request([span(rand_trace_id(), rand_span_id(), name=marker)])
    r = post_protobuf(node, "/v1/traces", req, tenant=None)
    assert r.status_code == 200
    q = f"SELECT name FROM spans WHERE name = '{marker}'"
    assert node.sql(q, tenant=None) == [{"name": marker}]
    assert node.sql(q, tenant="default") == [{"name": marker}]
    assert node.sql(q, tenant=unique_tenant("other")) == []
    # Over gRPC, too.
    marker2 = unique_tenant("default-grpc")
    req2 = traces_request([span(rand_trace_id(), rand_span_id(), name=marker2)])
    with grpc_channel(node) as ch:
        grpc_raw_call(ch, TRACES_GRPC, req2.SerializeToString())
    assert node.sql(f"SELECT name FROM spans WHERE name = '{marker2}'", tenant="default") == [{"name": marker2}]


# The tenant header values refused (SCHEMA: ASCII letters, digits, '-', '_', '.', at most 150
# bytes, never '.' or '..').
INVALID_TENANTS = {
    "empty": "",
    "dot": ".",
    "dotdot": "..",
    "slash": "a/b",
    "backslash": "a\\b",
    "space": "a b",
    "tab": "a\tb",
    "control": "a\x01b",
    "equals": "tenant=x",
    "too_long_151": "x" * 151,
}
# grpcio refuses to send metadata values with control characters itself (see the h2 test below).
GRPC_SENDABLE = [k for k in INVALID_TENANTS if k not in ("tab", "control")]


def _raw_http_post(node, path: str, tenant_header: bytes, body: bytes, content_type: bytes) -> int:
    """A POST with the tenant header's exact bytes (``requests`` would refuse some of them)."""
    import http.client

    host, port = node.otlp_http_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader(b"Content-Type", content_type)
        conn.putheader(b"X-Scope-OrgID", tenant_header)
        conn.putheader(b"Content-Length", str(len(body)).encode())
        conn.endheaders(body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.mark.parametrize("case", list(INVALID_TENANTS))
@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs", "/v1/metrics"])
def test_invalid_tenant_http_400(node, case, path):
    body = {
        "/v1/traces": traces_request([span(rand_trace_id(), rand_span_id(), name=f"bad-tenant-{case}")]),
        "/v1/logs": logs_request([log_record(f"bad-tenant-{case}")]),
        "/v1/metrics": metrics_request([gauge_metric(f"bad_tenant_{case}", [number_point(1.0)])]),
    }[path].SerializeToString()
    status = _raw_http_post(node, path, INVALID_TENANTS[case].encode("latin-1"), body, b"application/x-protobuf")
    assert status == 400, (case, status)
    # The same over OTLP/JSON.
    status = _raw_http_post(node, path, INVALID_TENANTS[case].encode("latin-1"), b"{}", b"application/json")
    assert status == 400, (case, status)


def test_invalid_tenant_http_body_and_nothing_stored(node):
    req = traces_request([span(rand_trace_id(), rand_span_id(), name="never-stored")])
    r = post_protobuf(node, "/v1/traces", req, tenant="a/b")
    assert r.status_code == 400
    from helpers import decode_status

    status = decode_status(r.content)
    assert status.code == 3 and "tenant" in status.message
    r = node.post_otlp("/v1/traces", b"{}", "application/json", tenant="..")
    assert r.status_code == 400
    assert r.json()["code"] == 3 and "tenant" in r.json()["message"]
    # Non-UTF-8 and non-ASCII header bytes.
    for raw in (b"\xe9", "é".encode()):
        assert _raw_http_post(node, "/v1/traces", raw, req.SerializeToString(), b"application/x-protobuf") == 400
    # Nothing was stored anywhere.
    names = {k.split("/")[0] for k in objects_of(node).keys()}
    assert all(n.startswith("tenant=") for n in names), names
    assert "tenant=.." not in names and "tenant=." not in names and "tenant=" not in names


@pytest.mark.parametrize("case", GRPC_SENDABLE)
@pytest.mark.parametrize("method", [TRACES_GRPC, LOGS_GRPC, METRICS_GRPC])
def test_invalid_tenant_grpc_invalid_argument(node, case, method):
    body = {
        TRACES_GRPC: traces_request([span(rand_trace_id(), rand_span_id())]),
        LOGS_GRPC: logs_request([log_record("x")]),
        METRICS_GRPC: metrics_request([gauge_metric("g", [number_point(1.0)])]),
    }[method].SerializeToString()
    with grpc_channel(node) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            grpc_raw_call(ch, method, body, tenant=INVALID_TENANTS[case])
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, exc.value.code(), exc.value.details())
    assert "tenant" in exc.value.details()


def test_invalid_tenant_grpc_tab_and_control_characters(node):
    """grpcio will not send these; a hand-driven HTTP/2 client does."""
    body = traces_request([span(rand_trace_id(), rand_span_id(), name="h2-bad-tenant")]).SerializeToString()
    ok = h2_grpc_call(node.grpc_addr, TRACES_GRPC, body, [(b"x-scope-orgid", b"h2-good-" + uuid_hex().encode())])
    assert ok.get("grpc-status") == "0", ok  # the raw client works
    # A tab is a legal HTTP/2 field value: the tenant check refuses it.
    tab = h2_grpc_call(node.grpc_addr, TRACES_GRPC, body, [(b"x-scope-orgid", b"a\tb")])
    assert tab.get("grpc-status") == "3", tab
    assert "tenant" in tab.get("grpc-message", ""), tab
    # Other control characters make the HTTP/2 request malformed (RFC 9113 8.2.1): refused by
    # the HTTP/2 layer (stream reset or GOAWAY with PROTOCOL_ERROR) or INVALID_ARGUMENT, never OK.
    ctrl = h2_grpc_call(node.grpc_addr, TRACES_GRPC, body, [(b"x-scope-orgid", b"a\x01b")])
    assert ctrl.get("grpc-status") == "3" or ctrl.get("reset") == 1 or ctrl.get("goaway") == 1, ctrl
    # Neither was stored under any tenant name.
    assert node.sql("SELECT count(*) AS n FROM spans WHERE name = 'h2-bad-tenant'", tenant="default") == [{"n": 0}]
    assert not [k for k in objects_of(node).keys() if fnmatch.fnmatchcase(k.split("/")[0], "tenant=a*b")]
    assert_still_serving_grpc(node)


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex[:12]


def assert_still_serving_grpc(node):
    tenant = unique_tenant("after-h2")
    req = traces_request([span(rand_trace_id(), rand_span_id(), name="after")])
    with grpc_channel(node) as ch:
        grpc_raw_call(ch, TRACES_GRPC, req.SerializeToString(), tenant=tenant)
    assert node.sql("SELECT name FROM spans", tenant=tenant) == [{"name": "after"}]


def test_invalid_tenant_sql_api_400(node):
    for bad in ("a/b", "..", "x" * 151, "a b"):
        r = node.sql_response("SELECT 1", tenant=bad)
        assert r.status_code == 400, (bad, r.status_code)
        assert "tenant" in r.json()["error"]


def test_150_byte_tenant_accepted(node):
    tenant = ("t150-" + unique_tenant("x")).ljust(150, "z")
    assert len(tenant.encode()) == 150
    req = traces_request([span(rand_trace_id(), rand_span_id(), name="long-tenant-http")])
    assert post_protobuf(node, "/v1/traces", req, tenant=tenant).status_code == 200
    req2 = traces_request([span(rand_trace_id(), rand_span_id(), name="long-tenant-grpc")])
    with grpc_channel(node) as ch:
        grpc_raw_call(ch, TRACES_GRPC, req2.SerializeToString(), tenant=tenant)
    assert node.sql("SELECT name FROM spans ORDER BY name", tenant=tenant) == [
        {"name": "long-tenant-grpc"}, {"name": "long-tenant-http"}]
    # All allowed characters.
    odd = "A-b_c.9." + unique_tenant("x")
    assert post_protobuf(node, "/v1/traces", req, tenant=odd).status_code == 200
    assert node.sql("SELECT count(*) AS n FROM spans", tenant=odd) == [{"n": 1}]


def test_tenant_header_is_case_sensitive_value(node):
    """Tenant ids are opaque: ``Acme`` and ``acme`` are different tenants."""
    base = unique_tenant("case")
    upper, lower = "U" + base, "u" + base
    req = traces_request([span(rand_trace_id(), rand_span_id(), name="upper")])
    assert post_protobuf(node, "/v1/traces", req, tenant=upper).status_code == 200
    assert node.sql("SELECT count(*) AS n FROM spans", tenant=lower) == [{"n": 0}]
    assert node.sql("SELECT count(*) AS n FROM spans", tenant=upper) == [{"n": 1}]


def test_http_header_name_is_case_insensitive(node):
    tenant = unique_tenant("hdr")
    req = traces_request([span(rand_trace_id(), rand_span_id(), name="lower-header")])
    r = requests.post(node.otlp_url + "/v1/traces", data=req.SerializeToString(),
                      headers={"content-type": "application/x-protobuf", "x-scope-orgid": tenant}, timeout=30)
    assert r.status_code == 200
    assert node.sql("SELECT name FROM spans", tenant=tenant) == [{"name": "lower-header"}]
