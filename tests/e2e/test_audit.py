"""The audit log (docs/SECURITY.md, "Audit log") against the real binary with ``--auth keys``.

Rules checked: creating and revoking keys through the API and the ``strata keys`` CLI leaves
rows with who (key id, ``bootstrap``, ``cli``), what, which key, from where (the client's
IP:port; ``user@host`` for the CLI) and the outcome; a refused admin request is a ``denied``
row; only admin keys see the ``audit`` table, and only their own tenant's rows; nothing edits
or deletes rows: no API route, no SQL statement.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from helpers import HTTP_TIMEOUT_S, unique_tenant
from test_auth import (
    BOOTSTRAP_KEY,
    BOOTSTRAP_TENANT,
    api,
    api_create,
    catalog_args,
    cli_create,
    rows,
    sql,
    strata_keys,
)

LOOPBACK_ADDR = re.compile(r"^(127\.0\.0\.1|\[::1\]):\d+$")
COLUMNS = ["time", "actor", "action", "target", "detail", "remote_addr", "outcome"]


@pytest.fixture(scope="module")
def audit_node(module_nodes):
    """A node with ``--auth keys`` and a bootstrap admin key for the tenant ``ops``."""
    return module_nodes.start(
        "--auth", "keys",
        env={"STRATA_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY, "STRATA_BOOTSTRAP_TENANT": BOOTSTRAP_TENANT},
    )


def audit(node, key: str, where: str = "") -> list[dict]:
    """The caller's tenant's audit rows, oldest first."""
    return rows(node, f"SELECT * FROM audit {where} ORDER BY time", key)


def test_api_key_changes_record_who_what_and_from_where(audit_node):
    tenant = unique_tenant("audit-api")
    admin = cli_create(audit_node, tenant, "admin", name="admin")
    created = api_create(audit_node, admin["key"], ["read", "ingest"], name="reader", expires_in="30d")
    r = api(audit_node, "DELETE", f"/api/v1/keys/{created['id']}", key=admin["key"])
    assert r.status_code == 200, r.text
    log = audit(audit_node, admin["key"])
    assert list(log[0]) == COLUMNS
    assert [(e["actor"], e["action"], e["target"], e["outcome"]) for e in log] == [
        ("cli", "key.create", admin["id"], "success"),
        (admin["id"], "key.create", created["id"], "success"),
        (admin["id"], "key.revoke", created["id"], "success"),
    ]
    for e in log[1:]:
        assert LOOPBACK_ADDR.match(e["remote_addr"]), e
    detail = json.loads(log[1]["detail"])
    assert detail["name"] == "reader"
    assert detail["scopes"] == ["ingest", "read"]
    assert detail["expires_at"] is not None
    assert json.loads(log[2]["detail"])["already_revoked"] is False
    # Never a secret.
    for e in log:
        assert "strata_" not in e["detail"], e
    assert created["key"][20:] not in json.dumps(log)


def test_the_bootstrap_key_is_its_own_actor(audit_node):
    created = api_create(audit_node, BOOTSTRAP_KEY, ["read"], name=unique_tenant("by-bootstrap"))
    log = audit(audit_node, BOOTSTRAP_KEY, f"WHERE target = '{created['id']}'")
    assert [(e["actor"], e["action"]) for e in log] == [("bootstrap", "key.create")]


def test_only_admin_keys_see_the_audit_table(audit_node):
    tenant = unique_tenant("audit-read")
    admin = cli_create(audit_node, tenant, "admin")["key"]
    reader = cli_create(audit_node, tenant, "read")
    for query in ["SELECT * FROM audit", "SELECT count(*) FROM strata.public.audit"]:
        r = sql(audit_node, query, key=reader["key"])
        assert r.status_code == 400, (r.status_code, r.text)
        assert "not found" in r.json()["error"] and "admin scope" in r.json()["error"], r.text
    tables = "SELECT table_name FROM information_schema.tables WHERE table_name = 'audit'"
    assert rows(audit_node, tables, reader["key"]) == []
    assert rows(audit_node, tables, admin) == [{"table_name": "audit"}]
    # The reader's attempts at admin actions are refused (403) and recorded as denied.
    r = api(audit_node, "POST", "/api/v1/keys", key=reader["key"], body={"name": "x", "scopes": ["admin"]})
    assert r.status_code == 403, r.text
    r = api(audit_node, "DELETE", "/api/v1/keys/000000000000", key=reader["key"])
    assert r.status_code == 403, r.text
    r = api(audit_node, "GET", "/api/v1/keys", key=reader["key"])
    assert r.status_code == 403, r.text
    denied = audit(audit_node, admin, "WHERE outcome = 'denied'")
    assert [(e["actor"], e["action"], e["target"]) for e in denied] == [
        (reader["id"], "key.create", None),
        (reader["id"], "key.revoke", "000000000000"),
        (reader["id"], "key.list", None),
    ]
    for e in denied:
        assert LOOPBACK_ADDR.match(e["remote_addr"]), e
        assert "admin" in json.loads(e["detail"])["reason"]


def test_a_tenant_sees_none_of_another_tenants_rows(audit_node):
    a, b = unique_tenant("audit-a"), unique_tenant("audit-b")
    admin_a = cli_create(audit_node, a, "admin")
    admin_b = cli_create(audit_node, b, "admin")
    key_a = api_create(audit_node, admin_a["key"], ["ingest"])
    r = api(audit_node, "DELETE", f"/api/v1/keys/{key_a['id']}", key=admin_a["key"])
    assert r.status_code == 200
    # B tries A's key: 404, and nothing is recorded for either tenant.
    r = api(audit_node, "DELETE", f"/api/v1/keys/{key_a['id']}", key=admin_b["key"])
    assert r.status_code == 404
    log_b = audit(audit_node, admin_b["key"])
    assert [(e["action"], e["target"]) for e in log_b] == [("key.create", admin_b["id"])]
    assert len(audit(audit_node, admin_a["key"])) == 3
    # Naming A in the header with B's admin key is refused outright.
    r = sql(audit_node, "SELECT * FROM audit", key=admin_b["key"], tenant=a)
    assert r.status_code == 403, r.text


def test_nothing_edits_or_deletes_audit_rows(audit_node):
    tenant = unique_tenant("audit-ro")
    admin = cli_create(audit_node, tenant, "admin")["key"]
    before = audit(audit_node, admin)
    assert len(before) == 1
    for method in ["PUT", "PATCH", "DELETE", "POST"]:
        for path in ["/api/v1/audit", "/api/v1/audit/1", f"/api/v1/tenants/{tenant}/audit",
                     "/api/v1/audit_log", "/api/v1/keys/audit"]:
            if method == "DELETE" and path == "/api/v1/keys/audit":
                continue  # a key id: 404 "no key", checked below
            r = api(audit_node, method, path, key=admin, body={})
            assert r.status_code in (404, 405), (method, path, r.status_code, r.text)
    r = api(audit_node, "DELETE", "/api/v1/keys/audit", key=admin)
    assert r.status_code == 404
    for statement in [
        "DELETE FROM audit",
        "UPDATE audit SET actor = 'nobody'",
        "INSERT INTO audit SELECT * FROM audit",
        "DROP TABLE audit",
        "TRUNCATE TABLE audit",
    ]:
        r = sql(audit_node, statement, key=admin)
        assert r.status_code == 400, (statement, r.status_code, r.text)
    assert audit(audit_node, admin) == before


def test_cli_create_and_revoke_leave_cli_rows(audit_node):
    tenant = unique_tenant("audit-cli")
    admin = cli_create(audit_node, tenant, "admin")["key"]
    created = cli_create(audit_node, tenant, "ingest", name="collector")
    done = strata_keys("revoke", created["id"], *catalog_args(audit_node))
    assert done.returncode == 0, done.stderr
    log = audit(audit_node, admin, f"WHERE target = '{created['id']}'")
    assert [(e["actor"], e["action"]) for e in log] == [("cli", "key.create"), ("cli", "key.revoke")]
    for e in log:
        # user@host of the process that ran the CLI.
        assert e["remote_addr"] and "@" in e["remote_addr"], e
    assert json.loads(log[0]["detail"])["name"] == "collector"


def test_auth_none_records_anonymous(node):
    tenant = unique_tenant("audit-none")
    headers = {"X-Scope-OrgID": tenant}
    r = requests.post(node.api_url + "/api/v1/keys", json={"name": "prepared", "scopes": ["ingest"]},
                      headers=headers, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 201, r.text
    log = node.sql("SELECT actor, action, target, remote_addr FROM audit", tenant=tenant)
    assert len(log) == 1
    assert (log[0]["actor"], log[0]["action"], log[0]["target"]) == ("anonymous", "key.create", r.json()["id"])
    assert LOOPBACK_ADDR.match(log[0]["remote_addr"]), log
