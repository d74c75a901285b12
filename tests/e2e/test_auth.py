"""Authentication and authorisation (docs/SECURITY.md): ``--auth keys`` against the real binary,
with the real OpenTelemetry SDK exporters over OTLP/gRPC and OTLP/HTTP, the SQL and keys API,
and the ``strata keys`` CLI.

Rules checked: a missing, malformed, unknown, expired or revoked key is 401 (with
``WWW-Authenticate: Bearer``) / ``UNAUTHENTICATED``; a key without the scope is 403 /
``PERMISSION_DENIED``; a key of tenant A with ``X-Scope-OrgID: B`` is 403 / ``PERMISSION_DENIED``
and never reaches B's data; another tenant's key id is 404; a revocation is in force within the
documented bound (polled with a generous deadline, never slept on); ``--auth none`` is unchanged.
"""

from __future__ import annotations

import json
import subprocess

import grpc
import pytest
import requests
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from helpers import (
    HTTP_TIMEOUT_S,
    LOGS_GRPC,
    STRATA_BIN,
    TRACES_GRPC,
    decode_status,
    grpc_channel,
    log_record,
    logs_request,
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
    wait_for,
)
from storage_backends import node_backend

BOOTSTRAP_KEY = "e2e-bootstrap-admin-key-0123456789abcdef"
BOOTSTRAP_TENANT = "ops"
# Revocation is in force on every node within 2 s (docs/SECURITY.md); the deadline is generous.
REVOCATION_DEADLINE_S = 30


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def auth_node(module_nodes):
    """A node with ``--auth keys`` and a bootstrap admin key for the tenant ``ops``."""
    return module_nodes.start(
        "--auth", "keys",
        env={"STRATA_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY, "STRATA_BOOTSTRAP_TENANT": BOOTSTRAP_TENANT},
    )


def catalog_args(node) -> list[str]:
    """The flags that point ``strata keys`` at a node's catalog."""
    args = ["--data-dir", str(node.data_dir)]
    if "--catalog" in node.extra_args:
        args += ["--catalog", node.extra_args[node.extra_args.index("--catalog") + 1]]
    return args


def strata_keys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STRATA_BIN, "keys", *args], capture_output=True, text=True, timeout=60)


def cli_create(node_or_args, tenant: str, scopes: str, name: str = "e2e", expires: str | None = None) -> dict:
    """``strata keys create --format json``: the key's JSON, with the secret in ``key``."""
    where = node_or_args if isinstance(node_or_args, list) else catalog_args(node_or_args)
    extra = ["--expires", expires] if expires else []
    done = strata_keys("create", "--tenant", tenant, "--scopes", scopes, "--name", name, "--format", "json",
                       *extra, *where)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def api(node, method: str, path: str, key: str | None = None, tenant: str | None = None,
        body=None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers.update(bearer(key))
    if tenant is not None:
        headers["X-Scope-OrgID"] = tenant
    data = json.dumps(body) if body is not None else None
    return requests.request(method, node.api_url + path, data=data, headers=headers, timeout=HTTP_TIMEOUT_S)


def sql(node, query: str, key: str | None = None, tenant: str | None = None) -> requests.Response:
    return api(node, "POST", "/api/v1/sql", key=key, tenant=tenant, body={"sql": query})


def rows(node, query: str, key: str, tenant: str | None = None) -> list[dict]:
    r = sql(node, query, key=key, tenant=tenant)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    names = [c["name"] for c in body["columns"]]
    return [dict(zip(names, row, strict=True)) for row in body["rows"]]


def api_create(node, admin_key: str, scopes: list[str], name: str = "api", expires_in: str | None = None) -> dict:
    body = {"name": name, "scopes": scopes}
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = api(node, "POST", "/api/v1/keys", key=admin_key, body=body)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def admin_of(node, tenant: str) -> str:
    """A new admin key of ``tenant`` (made with the CLI)."""
    return cli_create(node, tenant, "admin", name=f"admin-{tenant}")["key"]


# ------------------------------------------------------------------------- OTLP: SDK and raw


def sdk_span(node, transport: str, key: str | None, name: str, tenant_header: str | None = None):
    """Exports one span with the SDK's exporter; returns the export result."""
    results = []
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        metadata = []
        if key is not None:
            metadata.append(("authorization", f"Bearer {key}"))
        if tenant_header is not None:
            metadata.append(("x-scope-orgid", tenant_header))
        exporter = OTLPSpanExporter(endpoint=node.grpc_addr, insecure=True, headers=tuple(metadata), timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        headers = bearer(key) if key is not None else {}
        if tenant_header is not None:
            headers["X-Scope-OrgID"] = tenant_header
        exporter = OTLPSpanExporter(endpoint=f"{node.otlp_url}/v1/traces", headers=headers, timeout=10)

    original = exporter.export

    def export(batch, *args, **kwargs):
        result = original(batch, *args, **kwargs)
        results.append(result)
        return result

    exporter.export = export
    provider = TracerProvider(resource=Resource.create({"service.name": "auth-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("auth-e2e").start_span(name).end()
    provider.shutdown()
    assert len(results) == 1, results
    return results[0]


def http_export(node, key: str | None, name: str, tenant_header: str | None = None) -> requests.Response:
    body = traces_request([span(rand_trace_id(), rand_span_id(), name=name)]).SerializeToString()
    headers = bearer(key) if key is not None else {}
    return node.post_otlp("/v1/traces", body, tenant=tenant_header, headers=headers)


def grpc_export(node, key: str | None, name: str, tenant_header: str | None = None, method: str = TRACES_GRPC):
    """A raw gRPC export; returns None on OK, else the RpcError."""
    if method == TRACES_GRPC:
        payload = traces_request([span(rand_trace_id(), rand_span_id(), name=name)]).SerializeToString()
    else:
        payload = logs_request([log_record(name)]).SerializeToString()
    metadata = []
    if key is not None:
        metadata.append(("authorization", f"Bearer {key}"))
    if tenant_header is not None:
        metadata.append(("x-scope-orgid", tenant_header))
    with grpc_channel(node) as ch:
        call = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            call(payload, metadata=metadata, timeout=30)
            return None
        except grpc.RpcError as e:
            return e


def assert_401(r: requests.Response):
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers


def span_names(node, key: str) -> list[str]:
    return [r["name"] for r in rows(node, "SELECT name FROM spans ORDER BY name", key)]


# ---------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_exports_with_a_key_land_in_the_keys_tenant(auth_node, transport):
    tenant = unique_tenant(f"sdk-{transport}")
    ingest = cli_create(auth_node, tenant, "ingest")["key"]
    read = cli_create(auth_node, tenant, "read")["key"]
    assert sdk_span(auth_node, transport, ingest, f"ok-{transport}") == SpanExportResult.SUCCESS
    # The header naming the key's own tenant is allowed.
    assert sdk_span(auth_node, transport, ingest, f"same-{transport}", tenant_header=tenant) == \
        SpanExportResult.SUCCESS
    assert span_names(auth_node, read) == [f"ok-{transport}", f"same-{transport}"]
    assert rows(auth_node, "SELECT count(*) AS n FROM spans", read, tenant=tenant) == [{"n": 2}]


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_without_or_with_a_bad_key_fails(auth_node, transport):
    for key in (None, "not-a-strata-key", "strata_000000000000_" + "0" * 64):
        assert sdk_span(auth_node, transport, key, "refused") == SpanExportResult.FAILURE, key


def test_missing_bad_expired_and_revoked_keys_are_401_and_unauthenticated(auth_node):
    tenant = unique_tenant("401")
    admin = admin_of(auth_node, tenant)
    good = api_create(auth_node, admin, ["ingest", "read"])
    wrong_secret = good["key"][: -8] + "00000000"
    expired = api_create(auth_node, admin, ["ingest", "read"], expires_in="1ms")
    revoked = api_create(auth_node, admin, ["ingest", "read"])
    assert api(auth_node, "DELETE", f"/api/v1/keys/{revoked['id']}", key=admin).status_code == 200
    cases = {
        "missing": None,
        "malformed": "hello",
        "unknown": "strata_0123456789ab_" + "f" * 64,
        "wrong_secret": wrong_secret,
        "expired": expired["key"],
        "revoked": revoked["key"],
    }
    for case, key in cases.items():
        # OTLP/HTTP: 401, WWW-Authenticate, a google.rpc.Status with UNAUTHENTICATED (16).
        r = http_export(auth_node, key, f"refused-{case}")
        assert_401(r)
        assert decode_status(r.content).code == 16, case
        # OTLP/HTTP JSON too.
        r = auth_node.post_otlp("/v1/logs", b"{}", "application/json", headers=bearer(key) if key else None)
        assert_401(r)
        assert r.json()["code"] == 16
        # OTLP/gRPC, traces and logs.
        for method in (TRACES_GRPC, LOGS_GRPC):
            err = grpc_export(auth_node, key, f"refused-{case}", method=method)
            assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED, (case, err)
        # The API.
        assert_401(sql(auth_node, "SELECT 1", key=key))
        assert_401(api(auth_node, "GET", "/api/v1/keys", key=key))
        # Never the key in the message.
        if key:
            assert key not in r.text
    # A non-Bearer scheme.
    r = requests.post(auth_node.api_url + "/api/v1/sql", json={"sql": "SELECT 1"},
                      headers={"Authorization": f"Basic {good['key']}"}, timeout=HTTP_TIMEOUT_S)
    assert_401(r)
    # The good key works, and nothing refused was stored.
    assert http_export(auth_node, good["key"], "accepted").status_code == 200
    assert span_names(auth_node, good["key"]) == ["accepted"]


def test_health_stays_open(auth_node):
    for path in ("/healthz", "/readyz"):
        assert requests.get(auth_node.api_url + path, timeout=HTTP_TIMEOUT_S).status_code == 200


def test_metrics_need_an_admin_key_of_the_operator_tenant(auth_node):
    assert_401(requests.get(auth_node.api_url + "/metrics", timeout=HTTP_TIMEOUT_S))
    r = requests.get(auth_node.api_url + "/metrics", headers=bearer(BOOTSTRAP_KEY), timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 200 and "strata_" in r.text
    other_admin = admin_of(auth_node, unique_tenant("not-ops"))
    r = requests.get(auth_node.api_url + "/metrics", headers=bearer(other_admin), timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 403, r.text
    ops_reader = cli_create(auth_node, BOOTSTRAP_TENANT, "read")["key"]
    r = requests.get(auth_node.api_url + "/metrics", headers=bearer(ops_reader), timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 403, r.text
    # Refused exports are counted with a fixed outcome.
    assert http_export(auth_node, None, "uncounted").status_code == 401
    r = requests.get(auth_node.api_url + "/metrics", headers=bearer(BOOTSTRAP_KEY), timeout=HTTP_TIMEOUT_S)
    assert 'outcome="unauthenticated"' in r.text


def test_wrong_scope_is_403_and_permission_denied(auth_node):
    tenant = unique_tenant("scope")
    ingest = cli_create(auth_node, tenant, "ingest")["key"]
    read = cli_create(auth_node, tenant, "read")["key"]
    write = cli_create(auth_node, tenant, "write")["key"]
    # An ingest key writes but cannot query or manage keys.
    assert http_export(auth_node, ingest, "by-ingest-key").status_code == 200
    r = sql(auth_node, "SELECT count(*) FROM spans", key=ingest)
    assert r.status_code == 403 and "read" in r.json()["error"], r.text
    assert api(auth_node, "GET", "/api/v1/keys", key=ingest).status_code == 403
    # A read key queries but cannot ingest (HTTP and gRPC, SDK and raw) or manage keys.
    assert rows(auth_node, "SELECT name FROM spans", read) == [{"name": "by-ingest-key"}]
    r = http_export(auth_node, read, "by-read-key")
    assert r.status_code == 403, r.status_code
    assert decode_status(r.content).code == 7  # PERMISSION_DENIED
    err = grpc_export(auth_node, read, "by-read-key")
    assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    assert "ingest" in err.details()
    for transport in ("grpc", "http"):
        assert sdk_span(auth_node, transport, read, "by-read-key-sdk") == SpanExportResult.FAILURE
    for method, path, body in [("GET", "/api/v1/keys", None), ("POST", "/api/v1/keys", {"name": "x", "scopes": ["admin"]}),
                               ("GET", "/api/v1/keys/000000000000", None), ("DELETE", "/api/v1/keys/000000000000", None)]:
        for key in (read, write, ingest):
            r = api(auth_node, method, path, key=key, body=body)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
    # A write key can do neither ingest nor read (scopes are independent; admin implies all).
    assert http_export(auth_node, write, "by-write-key").status_code == 403
    assert sql(auth_node, "SELECT 1", key=write).status_code == 403
    assert rows(auth_node, "SELECT name FROM spans", read) == [{"name": "by-ingest-key"}]
    # Admin implies every scope.
    admin = admin_of(auth_node, tenant)
    assert http_export(auth_node, admin, "by-admin-key").status_code == 200
    assert len(rows(auth_node, "SELECT name FROM spans", admin)) == 2


def test_a_key_cannot_reach_another_tenant_by_header(auth_node):
    a, b = unique_tenant("spoof-a"), unique_tenant("spoof-b")
    key_a = cli_create(auth_node, a, "ingest,read")["key"]
    key_b = cli_create(auth_node, b, "ingest,read")["key"]
    assert http_export(auth_node, key_b, "b-secret").status_code == 200
    # Writing as B with A's key: HTTP 403, gRPC PERMISSION_DENIED, SDK failure.
    r = http_export(auth_node, key_a, "a-into-b", tenant_header=b)
    assert r.status_code == 403, r.status_code
    status = decode_status(r.content)
    assert status.code == 7 and "X-Scope-OrgID" in status.message, status
    err = grpc_export(auth_node, key_a, "a-into-b", tenant_header=b)
    assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    assert "X-Scope-OrgID" in err.details()
    err = grpc_export(auth_node, key_a, "a-into-b", tenant_header=b, method=LOGS_GRPC)
    assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    for transport in ("grpc", "http"):
        assert sdk_span(auth_node, transport, key_a, "a-into-b-sdk", tenant_header=b) == SpanExportResult.FAILURE
    # Reading B with A's key: 403, and no rows of B are ever answered.
    r = sql(auth_node, "SELECT name FROM spans", key=key_a, tenant=b)
    assert r.status_code == 403 and "X-Scope-OrgID" in r.json()["error"], r.text
    assert "b-secret" not in r.text
    # A invalid tenant header with a key is refused as well, not treated as absent.
    assert sql(auth_node, "SELECT 1", key=key_a, tenant="a/b").status_code == 403
    # Without the header A sees only A; B's data is untouched and has nothing of A's.
    assert span_names(auth_node, key_a) == []
    assert span_names(auth_node, key_b) == ["b-secret"]
    assert rows(auth_node, "SELECT count(*) AS n FROM logs", key_b) == [{"n": 0}]
    # Keys of B are not manageable with A's admin key through the header either.
    admin_a = admin_of(auth_node, a)
    assert api(auth_node, "GET", "/api/v1/keys", key=admin_a, tenant=b).status_code == 403


def test_another_tenants_key_ids_are_404(auth_node):
    a, b = unique_tenant("ids-a"), unique_tenant("ids-b")
    admin_a, admin_b = admin_of(auth_node, a), admin_of(auth_node, b)
    key_b = api_create(auth_node, admin_b, ["ingest", "read"], name="b-collector")
    # B sees it; A does not, whatever the method.
    r = api(auth_node, "GET", f"/api/v1/keys/{key_b['id']}", key=admin_b)
    assert r.status_code == 200 and r.json()["name"] == "b-collector" and "key" not in r.json()
    assert "hash" not in r.json()
    for method in ("GET", "DELETE"):
        r = api(auth_node, method, f"/api/v1/keys/{key_b['id']}", key=admin_a)
        assert r.status_code == 404, (method, r.status_code, r.text)
        assert "b-collector" not in r.text and b not in r.text
    # The same answer as for an id that exists nowhere.
    assert api(auth_node, "GET", "/api/v1/keys/ffffffffffff", key=admin_a).status_code == 404
    # A's list has only A's keys; B's key still works after A's DELETE attempt.
    listed = api(auth_node, "GET", "/api/v1/keys", key=admin_a).json()["keys"]
    assert listed and all(k["tenant"] == a for k in listed), listed
    assert key_b["id"] not in {k["id"] for k in listed}
    assert all("key" not in k and "hash" not in k for k in listed)
    assert http_export(auth_node, key_b["key"], "still-works").status_code == 200


def test_keys_api_creates_lists_and_shows_the_secret_once(auth_node):
    tenant = unique_tenant("api")
    admin = admin_of(auth_node, tenant)
    created = api_create(auth_node, admin, ["read", "ingest"], name="dash", expires_in="30d")
    assert created["key"].startswith("strata_" + created["id"] + "_")
    assert created["tenant"] == tenant and created["scopes"] == ["ingest", "read"]
    assert created["status"] == "active" and created["expires_at"] is not None
    assert created["created_by"] is not None
    got = api(auth_node, "GET", f"/api/v1/keys/{created['id']}", key=admin).json()
    assert "key" not in got and got["id"] == created["id"]
    # The secret is nowhere in the catalog's listing either.
    listed = strata_keys("list", "--tenant", tenant, "--format", "json", *catalog_args(auth_node))
    assert listed.returncode == 0, listed.stderr
    assert created["key"] not in listed.stdout and created["id"] in listed.stdout
    # Bad requests.
    for body in ({"name": "x", "scopes": []}, {"name": "x", "scopes": ["root"]}, {"name": "", "scopes": ["read"]},
                 {"name": "x", "scopes": ["read"], "expires_in": "soon"}, {"scopes": ["read"]}):
        r = api(auth_node, "POST", "/api/v1/keys", key=admin, body=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
    # The bootstrap key manages the keys of its own tenant.
    boot_made = api_create(auth_node, BOOTSTRAP_KEY, ["read"])
    assert boot_made["tenant"] == BOOTSTRAP_TENANT and boot_made["created_by"] == "bootstrap"


@pytest.mark.parametrize("how", ["api", "cli"])
def test_revocation_takes_effect_on_http_grpc_and_sql(auth_node, how):
    tenant = unique_tenant(f"revoke-{how}")
    admin = admin_of(auth_node, tenant)
    key = api_create(auth_node, admin, ["ingest", "read"])
    assert http_export(auth_node, key["key"], "before").status_code == 200
    assert grpc_export(auth_node, key["key"], "before-grpc") is None
    assert len(rows(auth_node, "SELECT name FROM spans", key["key"])) == 2
    if how == "api":
        r = api(auth_node, "DELETE", f"/api/v1/keys/{key['id']}", key=admin)
        assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revoked_at"]
        # Idempotent.
        again = api(auth_node, "DELETE", f"/api/v1/keys/{key['id']}", key=admin)
        assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    else:
        done = strata_keys("revoke", key["id"], *catalog_args(auth_node))
        assert done.returncode == 0, done.stderr

    def refused_everywhere():
        err = grpc_export(auth_node, key["key"], "after-grpc")
        return (http_export(auth_node, key["key"], "after").status_code == 401
                and err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
                and sql(auth_node, "SELECT 1", key=key["key"]).status_code == 401)

    wait_for(refused_everywhere, timeout=REVOCATION_DEADLINE_S, interval=0.2, what="the revocation")
    # Once refused, always refused; the admin key is unaffected.
    assert http_export(auth_node, key["key"], "after").status_code == 401
    assert api(auth_node, "GET", f"/api/v1/keys/{key['id']}", key=admin).json()["status"] == "revoked"
    assert "revoked" in strata_keys("list", "--tenant", tenant, *catalog_args(auth_node)).stdout


def test_cli_creates_keys_before_the_first_start(node_factory, backends, tmp_path):
    data_dir = tmp_path / "fresh" / "data"
    args, env, objects = node_backend(backends, [], "keys-first")
    where = ["--data-dir", str(data_dir), *args[args.index("--catalog"):args.index("--catalog") + 2]] \
        if "--catalog" in args else ["--data-dir", str(data_dir)]
    tenant = unique_tenant("first")
    created = cli_create(where, tenant, "ingest,read", name="first", expires="30d")
    # Text output: the key alone on stdout.
    done = strata_keys("create", "--tenant", tenant, "--scopes", "read", "--name", "text", *where)
    assert done.returncode == 0 and done.stdout.strip().startswith("strata_"), done
    assert "shown only this once" in done.stderr
    # Bad input is refused with a reason.
    for bad in (["--scopes", "root"], ["--tenant", "a/b"], ["--expires", "soon"]):
        argv = {"--tenant": tenant, "--scopes": "read", "--name": "x"}
        argv[bad[0]] = bad[1]
        flat = [v for kv in argv.items() for v in kv]
        done = strata_keys("create", *flat, *where)
        assert done.returncode != 0 and done.stderr, (bad, done)
    assert strata_keys("revoke", "000000000000", *where).returncode == 1
    node = node_factory.start("--auth", "keys", *args, data_dir=data_dir, env=env, objects=objects)
    assert sdk_span(node, "http", created["key"], "first") == SpanExportResult.SUCCESS
    assert sdk_span(node, "grpc", created["key"], "first-grpc") == SpanExportResult.SUCCESS
    assert span_names(node, created["key"]) == ["first", "first-grpc"]
    listed = strata_keys("list", *where)
    assert listed.returncode == 0 and created["id"] in listed.stdout and tenant in listed.stdout


def test_auth_none_is_unchanged(node, tenant):
    """The default node (auth none): the tenant is X-Scope-OrgID; Authorization is ignored."""
    assert sdk_span(node, "http", None, "none-http", tenant_header=tenant) == SpanExportResult.SUCCESS
    assert sdk_span(node, "grpc", "whatever", "none-grpc", tenant_header=tenant) == SpanExportResult.SUCCESS
    assert node.sql("SELECT name FROM spans ORDER BY name", tenant=tenant) == [
        {"name": "none-grpc"}, {"name": "none-http"}]
    r = requests.get(node.api_url + "/metrics", timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 200
    # Without a header: the default tenant, as before.
    assert http_export(node, None, "none-default").status_code == 200
    assert {"name": "none-default"} in node.sql("SELECT name FROM spans", tenant="default")
