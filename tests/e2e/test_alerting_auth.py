"""The alerting HTTP API with ``--auth keys`` (server/src/alerting/api.rs, docs/SECURITY.md):
scopes, tenant isolation, the operator-only reload and the audit rows of alerting changes,
against the real binary with its webhooks delivered to a real HTTP receiver on 127.0.0.1
(webhook_receiver.py).

Rules checked:

- every alerting route answers 401 (with ``WWW-Authenticate: Bearer``) without a key, 403 to a
  key without the route's scope (reads need ``read``, changes ``write``, the intake
  ``ingest``), and succeeds with the scope; a refused request changes nothing;
- another tenant's rule group, silence, incident and notification ids are 404 (exactly like
  ids that exist nowhere), its lists are empty, and its ``alerts`` / ``incidents`` SQL tables
  have none of the first tenant's rows; a key sending ``X-Scope-OrgID`` naming another tenant
  is refused with 403 (docs/SECURITY.md, "The X-Scope-OrgID rule") and never reaches that
  tenant: an intake post so refused lands nowhere;
- ``POST /-/reload`` needs an admin key of the operator (bootstrap) tenant;
- creating/deleting a rule group, creating/expiring a silence, acknowledging/resolving an
  incident each leave an audit row with the key id as actor, visible to the tenant's admin.

Timers are short (group_wait 1s, group_interval 2s); every asynchronous result is polled for
with ``wait_for`` and a generous timeout; nothing asserts how fast something happens.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest
import requests

from helpers import HTTP_TIMEOUT_S, unique_tenant, wait_for
from test_auth import (
    BOOTSTRAP_KEY,
    BOOTSTRAP_TENANT,
    api,
    api_create,
    assert_401,
    bearer,
    cli_create,
    rows,
)
from webhook_receiver import WebhookReceiver

LOOPBACK_ADDR = re.compile(r"^(127\.0\.0\.1|\[::1\]):\d+$")
# The receiver path that always refuses (400: a dead letter at once, never retried by itself).
DEAD_PATH = "/dead"


def alerter_config(receiver: WebhookReceiver) -> str:
    """Short timers; alerts labelled team="dead" go to a receiver that answers 400."""
    return textwrap.dedent(f"""\
        route:
          receiver: team
          group_by: [alertname, service]
          group_wait: 1s
          group_interval: 2s
          repeat_interval: 1h
          routes:
            - matchers: ['team="dead"']
              receiver: dead
        receivers:
          - name: team
            webhook_configs:
              - url: {receiver.url}/team
          - name: dead
            webhook_configs:
              - url: {receiver.url}{DEAD_PATH}
        delivery:
          allow: ["127.0.0.1/32"]
          timeout: 1s
          initial_backoff: 200ms
          max_backoff: 1s
          deadline: 2m
        """)


@pytest.fixture(scope="module")
def receiver():
    r = WebhookReceiver()
    r.scripts = {DEAD_PATH: [400] * 10_000}
    yield r
    r.close()


@pytest.fixture(scope="module")
def alert_node(module_nodes, receiver, tmp_path_factory):
    """``--auth keys``, a bootstrap admin key of the operator tenant ``ops``, alerting on."""
    path = tmp_path_factory.mktemp("alerting-auth") / "alerter.yml"
    path.write_text(alerter_config(receiver))
    return module_nodes.start(
        "--auth", "keys", "--alerter-config", str(path),
        env={"STRATA_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY, "STRATA_BOOTSTRAP_TENANT": BOOTSTRAP_TENANT},
    )


# ---------------------------------------------------------------------------------- helpers


class Tenant:
    """A tenant with an admin key (CLI) and one key per single scope (API)."""

    def __init__(self, node, label: str):
        self.node = node
        self.id = unique_tenant(label)
        self.admin_key = cli_create(node, self.id, "admin", name=f"admin-{label}")
        self.admin = self.admin_key["key"]
        self.keys = {scope: api_create(node, self.admin, [scope], name=f"{label}-{scope}")
                     for scope in ("read", "write", "ingest")}

    def key(self, scope: str) -> str:
        return self.keys[scope]["key"]

    def key_id(self, scope: str) -> str:
        return self.keys[scope]["id"]

    def call(self, method: str, path: str, scope: str, body=None, tenant: str | None = None) -> requests.Response:
        return api(self.node, method, path, key=self.key(scope), tenant=tenant, body=body)

    def ok(self, method: str, path: str, scope: str, body=None, status: int = 200):
        r = self.call(method, path, scope, body)
        assert r.status_code == status, (method, path, scope, r.status_code, r.text)
        return r.json() if r.content else None

    # Reads (with the read key).
    def alerts(self, name: str | None = None) -> list[dict]:
        alerts = self.ok("GET", "/api/v1/alerts", "read")["alerts"]
        return [a for a in alerts if name is None or a["labels"].get("alertname") == name]

    def incidents(self) -> list[dict]:
        return self.ok("GET", "/api/v1/incidents", "read")["incidents"]

    def notifications(self) -> list[dict]:
        return self.ok("GET", "/api/v1/notifications", "read")["notifications"]

    def sql(self, query: str, key: str | None = None) -> list[dict]:
        return rows(self.node, query, key or self.key("read"))


def rule_group(name: str, interval: str = "30s") -> dict:
    """A group that plans and never fires."""
    return {
        "name": name,
        "interval": interval,
        "rules": [{"alert": "NeverFires", "sql": "SELECT 1.0 AS value", "condition": "value > 2"}],
    }


def firing_group(name: str, alert: str) -> dict:
    """A group whose one rule fires at its first evaluation (a row in the `alerts` table)."""
    return {
        "name": name,
        "interval": "1s",
        "rules": [{"alert": alert, "sql": "SELECT 1.0 AS value", "condition": "value > 0.5"}],
    }


def silence_body(service: str, comment: str = "maintenance") -> dict:
    return {"matchers": [f'service="{service}"'], "duration": "2h", "comment": comment}


def intake_alert(name: str, **labels: str) -> list[dict]:
    return [{"labels": {"alertname": name, **labels}, "annotations": {"summary": f"{name} from the intake"}}]


def incident_of(t: Tenant, alertname: str) -> dict | None:
    for i in t.incidents():
        if any(a["labels"].get("alertname") == alertname for a in i["alerts"]):
            return i
    return None


def notification_of(t: Tenant, alertname: str, status: str) -> dict | None:
    for n in t.notifications():
        if f'alertname="{alertname}"' in n["notification"]["groupKey"] and n["status"] == status:
            return n
    return None


def open_incident_and_dead_letter(t: Tenant, name: str) -> tuple[dict, dict]:
    """Posts two alerts through the intake (ingest key): one delivered to /team, which opens
    an incident, one to the receiver that refuses, which becomes a dead letter."""
    t.ok("POST", "/api/v2/alerts", "ingest", intake_alert(name, service=f"{name.lower()}-svc"))
    t.ok("POST", "/api/v2/alerts", "ingest", intake_alert(f"{name}Dead", service=f"{name.lower()}-dead-svc", team="dead"))
    incident = wait_for(lambda: incident_of(t, name), timeout=60, what=f"the incident of {name}")
    wait_for(lambda: notification_of(t, name, "delivered"), timeout=60, what=f"the delivery of {name}")
    dead = wait_for(lambda: notification_of(t, f"{name}Dead", "dead"), timeout=60,
                    what=f"the dead letter of {name}Dead")
    assert incident["status"] == "open", incident
    return incident, dead


def routes(group: str, silence: str, incident: str, notification: str, new_group: str) -> list[tuple]:
    """Every alerting route of the tenant: (method, path, scope, body, status on success),
    in an order in which each succeeds when called with its scope."""
    return [
        ("GET", "/api/v1/alerts", "read", None, 200),
        ("GET", "/api/v2/alerts", "read", None, 200),
        ("GET", "/api/v1/silences", "read", None, 200),
        ("GET", f"/api/v1/silences/{silence}", "read", None, 200),
        ("GET", "/api/v1/incidents", "read", None, 200),
        ("GET", f"/api/v1/incidents/{incident}", "read", None, 200),
        ("GET", "/api/v1/rules", "read", None, 200),
        ("GET", f"/api/v1/rules/{group}", "read", None, 200),
        ("GET", "/api/v1/notifications", "read", None, 200),
        ("GET", f"/api/v1/notifications/{notification}", "read", None, 200),
        ("POST", "/api/v2/alerts", "ingest", intake_alert("ScopedIntake", service="scoped"), 200),
        ("POST", "/api/v1/silences", "write", silence_body("scoped-new"), 201),
        ("PUT", f"/api/v1/silences/{silence}", "write", silence_body("scoped-updated"), 200),
        ("POST", "/api/v1/rules", "write", rule_group(new_group), 201),
        ("PUT", f"/api/v1/rules/{group}", "write", rule_group(group, "1m"), 200),
        ("POST", f"/api/v1/incidents/{incident}/acknowledge", "write", None, 200),
        ("POST", f"/api/v1/incidents/{incident}/resolve", "write", None, 200),
        ("POST", f"/api/v1/notifications/{notification}/retry", "write", None, 200),
        ("DELETE", f"/api/v1/silences/{silence}", "write", None, 200),
        ("DELETE", f"/api/v1/rules/{group}", "write", None, 204),
    ]


# ----------------------------------------------------------------------------------- scopes


def test_every_alerting_route_needs_a_key_with_its_scope(alert_node):
    t = Tenant(alert_node, "al-scope")
    group = "scoped"
    t.ok("POST", "/api/v1/rules", "write", rule_group(group), 201)
    silence = t.ok("POST", "/api/v1/silences", "write", silence_body("quiet"), 201)
    incident, dead = open_incident_and_dead_letter(t, "ScopeCheck")
    table = routes(group, silence["id"], incident["id"], dead["id"], "scoped-new")
    # Every (method, route) of the module doc but /-/reload (tested below).
    assert len(table) == 20

    # No key: 401 everywhere; a bad key too.
    for method, path, _scope, body, _ok in table:
        assert_401(api(alert_node, method, path, body=body))
        assert_401(api(alert_node, method, path, key="strata_0123456789ab_" + "f" * 64, body=body))

    # A key without the scope: 403 naming the scope it lacks.
    for method, path, scope, body, _ok in table:
        for other in ("read", "write", "ingest"):
            if other == scope:
                continue
            r = t.call(method, path, other, body)
            assert r.status_code == 403, (method, path, f"{other} key", r.status_code, r.text)
            assert f"lacks the {scope} scope" in r.json()["error"], (method, path, r.text)

    # Nothing refused changed anything.
    assert [g["name"] for g in t.ok("GET", "/api/v1/rules", "read")["groups"]] == [group]
    assert t.ok("GET", f"/api/v1/rules/{group}", "read")["interval"] == "30s"
    [still] = t.ok("GET", "/api/v1/silences", "read")["silences"]
    assert still["id"] == silence["id"] and still["status"]["state"] == "active"
    assert still["matchers"] == ['service="quiet"']
    assert t.ok("GET", f"/api/v1/incidents/{incident['id']}", "read")["status"] == "open"
    got = t.ok("GET", f"/api/v1/notifications/{dead['id']}", "read")
    assert got["status"] == "dead" and len(got["attempts"]) == 1
    assert t.alerts("ScopedIntake") == []

    # The scope's own key succeeds, route by route.
    for method, path, scope, body, status in table:
        r = t.call(method, path, scope, body)
        assert r.status_code == status, (method, path, f"{scope} key", r.status_code, r.text)
    assert t.alerts("ScopedIntake"), "the intake post with the ingest key"
    assert [g["name"] for g in t.ok("GET", "/api/v1/rules", "read")["groups"]] == ["scoped-new"]
    assert t.ok("GET", f"/api/v1/incidents/{incident['id']}", "read")["status"] == "resolved"

    # admin implies every scope.
    assert api(alert_node, "GET", "/api/v1/incidents", key=t.admin).status_code == 200
    assert api(alert_node, "DELETE", "/api/v1/rules/scoped-new", key=t.admin).status_code == 204
    assert api(alert_node, "POST", "/api/v2/alerts", key=t.admin, body=intake_alert("ByAdmin")).status_code == 200


# ------------------------------------------------------------------------------- isolation


def test_another_tenants_alerting_objects_are_404_and_never_shown(alert_node):
    a, b = Tenant(alert_node, "al-iso-a"), Tenant(alert_node, "al-iso-b")
    group = "a-private-group"
    a.ok("POST", "/api/v1/rules", "write", firing_group(group, "APrivateRule"), 201)
    silence = a.ok("POST", "/api/v1/silences", "write", silence_body("a-private-svc", "a secret comment"), 201)
    incident, dead = open_incident_and_dead_letter(a, "IsoA")
    delivered = notification_of(a, "IsoA", "delivered")
    # A's SQL tables have A's rows (so that B's empty ones mean something).
    wait_for(lambda: a.sql("SELECT alertname FROM alerts WHERE alertname = 'APrivateRule' AND state = 'firing'"),
             timeout=60, what="A's firing rule in its alerts table")
    wait_for(lambda: a.sql(f"SELECT id FROM incidents WHERE id = '{incident['id']}'"), timeout=60,
             what="A's incident in its incidents table")
    secrets = [group, silence["id"], "a-private-svc", "a secret comment", incident["id"], dead["id"],
               delivered["id"], "IsoA", "APrivateRule", a.id]

    def no_leak(r: requests.Response, what, sent: str = ""):
        """Nothing of A's in the answer beyond what the request itself named."""
        for s in secrets:
            assert s not in r.text or s in sent, (what, s, r.text)

    by_id = [
        ("GET", f"/api/v1/rules/{group}", "read", None),
        ("PUT", f"/api/v1/rules/{group}", "write", rule_group(group, "1m")),
        ("DELETE", f"/api/v1/rules/{group}", "write", None),
        ("GET", f"/api/v1/silences/{silence['id']}", "read", None),
        ("PUT", f"/api/v1/silences/{silence['id']}", "write", silence_body("b-svc")),
        ("DELETE", f"/api/v1/silences/{silence['id']}", "write", None),
        ("GET", f"/api/v1/incidents/{incident['id']}", "read", None),
        ("POST", f"/api/v1/incidents/{incident['id']}/acknowledge", "write", None),
        ("POST", f"/api/v1/incidents/{incident['id']}/resolve", "write", None),
        ("GET", f"/api/v1/notifications/{dead['id']}", "read", None),
        ("GET", f"/api/v1/notifications/{delivered['id']}", "read", None),
        ("POST", f"/api/v1/notifications/{dead['id']}/retry", "write", None),
    ]
    lists = [
        ("/api/v1/alerts", lambda j: j == {"alerts": []}),
        ("/api/v2/alerts", lambda j: j == []),
        ("/api/v1/silences", lambda j: j == {"silences": []}),
        ("/api/v1/incidents", lambda j: j == {"incidents": []}),
        ("/api/v1/rules", lambda j: j == {"groups": []}),
        ("/api/v1/notifications", lambda j: j == {"notifications": []}),
        ("/api/v1/notifications?status=dead", lambda j: j == {"notifications": []}),
    ]

    # B's own keys, with the scope (and B's admin key): 404, like an id that exists nowhere.
    nowhere = {i: "0" * len(i) for i in (silence["id"], incident["id"], dead["id"], delivered["id"])}
    nowhere[group] = "no-such-group"
    for method, path, scope, body in by_id:
        real = next(i for i in nowhere if f"/{i}" in path)
        for key in (b.key(scope), b.admin):
            r = api(alert_node, method, path, key=key, body=body)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            no_leak(r, (method, path), sent=path + json.dumps(body))
            # The same answer as for an id that exists nowhere.
            fake_body = json.loads(json.dumps(body).replace(real, nowhere[real])) if body else None
            fake = api(alert_node, method, path.replace(real, nowhere[real]), key=key, body=fake_body)
            assert fake.status_code == 404, (method, path, fake.status_code, fake.text)
            assert r.json()["error"].replace(real, "ID") == fake.json()["error"].replace(nowhere[real], "ID"), \
                (r.text, fake.text)
    for path, empty in lists:
        for key in (b.key("read"), b.admin):
            r = api(alert_node, "GET", path, key=key)
            assert r.status_code == 200 and empty(r.json()), (path, r.status_code, r.text)
    # B's SQL tables hold none of A's rows.
    for key in (b.key("read"), b.admin):
        assert b.sql("SELECT * FROM alerts", key) == []
        assert b.sql("SELECT * FROM incidents", key) == []

    # B's keys naming A in X-Scope-OrgID: refused outright (403, docs/SECURITY.md), never A's data.
    for method, path, scope, body in by_id + [("GET", p, "read", None) for p, _ in lists]:
        for key in (b.key(scope), b.admin):
            r = api(alert_node, method, path, key=key, tenant=a.id, body=body)
            assert r.status_code == 403, (method, path, "X-Scope-OrgID: A", r.status_code, r.text)
            assert "X-Scope-OrgID" in r.json()["error"], r.text
            no_leak(r, (method, path, "X-Scope-OrgID: A"))
    for query in ("SELECT * FROM alerts", "SELECT * FROM incidents"):
        r = api(alert_node, "POST", "/api/v1/sql", key=b.admin, tenant=a.id, body={"sql": query})
        assert r.status_code == 403, (query, r.status_code, r.text)
        no_leak(r, query)

    # A's objects are untouched by all of it.
    assert a.ok("GET", f"/api/v1/rules/{group}", "read")["rules"][0]["alert"] == "APrivateRule"
    got = a.ok("GET", f"/api/v1/silences/{silence['id']}", "read")
    assert got["status"]["state"] == "active" and got["matchers"] == ['service="a-private-svc"']
    got = a.ok("GET", f"/api/v1/incidents/{incident['id']}", "read")
    assert got["status"] == "open" and got["acknowledgedBy"] is None and got["resolvedBy"] is None
    got = a.ok("GET", f"/api/v1/notifications/{dead['id']}", "read")
    assert got["status"] == "dead" and len(got["attempts"]) == 1

    # The intake: B's ingest key naming A is refused and lands nowhere; without the header it
    # lands in B, never in A.
    r = b.call("POST", "/api/v2/alerts", "ingest", intake_alert("FromB", service="b-svc"), tenant=a.id)
    assert r.status_code == 403, ("POST /api/v2/alerts", "X-Scope-OrgID: A", r.status_code, r.text)
    assert a.alerts("FromB") == [] and b.alerts("FromB") == []
    b.ok("POST", "/api/v2/alerts", "ingest", intake_alert("FromB", service="b-svc"))
    [held] = b.alerts("FromB")
    assert held["labels"]["service"] == "b-svc"
    assert a.alerts("FromB") == []
    assert {x["labels"]["alertname"] for x in a.alerts()} == {"IsoA", "IsoADead", "APrivateRule"}
    # B's notification and incident are B's alone.
    wait_for(lambda: incident_of(b, "FromB"), timeout=60, what="B's incident")
    assert incident_of(a, "FromB") is None
    assert all('alertname="FromB"' not in n["notification"]["groupKey"] for n in a.notifications())
    wait_for(lambda: b.sql("SELECT id FROM incidents"), timeout=60, what="B's incident in its incidents table")
    assert {r["id"] for r in a.sql("SELECT id FROM incidents")}.isdisjoint(
        {r["id"] for r in b.sql("SELECT id FROM incidents")})


def test_intake_alerts_are_in_the_tenants_alerts_table_only(alert_node):
    """docs/SCHEMA.md, `alerts`: an alert received on the intake leaves rows with
    `source = 'api'` in its tenant's table, and in no other tenant's."""
    a, b = Tenant(alert_node, "al-hist-a"), Tenant(alert_node, "al-hist-b")
    a.ok("POST", "/api/v2/alerts", "ingest", intake_alert("HistA", service="hist-svc"))
    wait_for(lambda: a.alerts("HistA"), timeout=30, what="the alert held by the alerter")
    history = wait_for(lambda: a.sql("SELECT alertname, source FROM alerts WHERE alertname = 'HistA'"),
                       timeout=60, what="A's intake alert in A's alerts table (docs/SCHEMA.md: source 'api')")
    assert {r["source"] for r in history} == {"api"}
    assert b.sql("SELECT * FROM alerts") == []


# ---------------------------------------------------------------------------------- reload


def test_reload_needs_an_admin_key_of_the_operator_tenant(alert_node):
    other = Tenant(alert_node, "al-reload")
    ops_writer = api_create(alert_node, BOOTSTRAP_KEY, ["write"], name="ops-writer")
    ops_write = ops_writer["key"]
    ops_read = api_create(alert_node, BOOTSTRAP_KEY, ["read"], name="ops-reader")["key"]
    assert_401(requests.post(alert_node.api_url + "/-/reload", timeout=HTTP_TIMEOUT_S))
    for who, key in [("admin of another tenant", other.admin), ("write key of another tenant", other.key("write")),
                     ("write key of the operator tenant", ops_write),
                     ("read key of the operator tenant", ops_read)]:
        r = requests.post(alert_node.api_url + "/-/reload", headers=bearer(key), timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 403, ("POST /-/reload", who, r.status_code, r.text)
    # Another tenant's admin naming the operator tenant in the header gets no further.
    r = requests.post(alert_node.api_url + "/-/reload",
                      headers={**bearer(other.admin), "X-Scope-OrgID": BOOTSTRAP_TENANT}, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 403, r.text
    for key in (BOOTSTRAP_KEY, cli_create(alert_node, BOOTSTRAP_TENANT, "admin", name="ops-admin")["key"]):
        r = requests.post(alert_node.api_url + "/-/reload", headers=bearer(key), timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200 and r.json() == {"status": "reloaded"}, (r.status_code, r.text)
    # A key without the admin scope is refused like any admin request: a `denied` row in its
    # own tenant's audit log.
    for admin, key_id in [(BOOTSTRAP_KEY, ops_writer["id"]), (other.admin, other.key_id("write"))]:
        denied = rows(alert_node, f"SELECT action, outcome FROM audit WHERE actor = '{key_id}'", admin)
        assert denied == [{"action": "alerting.reload", "outcome": "denied"}], denied


# ----------------------------------------------------------------------------------- audit


def test_alerting_changes_are_audited_with_the_key_as_actor(alert_node):
    t = Tenant(alert_node, "al-audit")
    writer = t.key_id("write")
    group = "audited"
    t.ok("POST", "/api/v1/rules", "write", rule_group(group), 201)
    silence = t.ok("POST", "/api/v1/silences", "write", silence_body("audited-svc"), 201)
    t.ok("POST", "/api/v2/alerts", "ingest", intake_alert("Audited", service="audited-svc2"))
    incident = wait_for(lambda: incident_of(t, "Audited"), timeout=60, what="the incident")
    t.ok("POST", f"/api/v1/incidents/{incident['id']}/acknowledge", "write")
    t.ok("POST", f"/api/v1/incidents/{incident['id']}/resolve", "write")
    t.ok("DELETE", f"/api/v1/silences/{silence['id']}", "write")
    t.ok("DELETE", f"/api/v1/rules/{group}", "write", status=204)

    log = t.sql("SELECT actor, action, target, remote_addr, outcome FROM audit "
                "WHERE action NOT LIKE 'key.%' ORDER BY time", key=t.admin)
    assert [(e["actor"], e["action"], e["target"]) for e in log] == [
        (writer, "rule_group.create", group),
        (writer, "silence.create", silence["id"]),
        (writer, "incident.acknowledge", incident["id"]),
        (writer, "incident.resolve", incident["id"]),
        (writer, "silence.expire", silence["id"]),
        (writer, "rule_group.delete", group),
    ]
    for e in log:
        assert e["outcome"] == "success", e
        assert e["remote_addr"] and LOOPBACK_ADDR.match(e["remote_addr"]), e
    # The rows are the tenant's alone: another tenant's admin sees none of them.
    other = Tenant(alert_node, "al-audit-other")
    theirs = other.sql("SELECT action, target FROM audit", key=other.admin)
    assert {e["action"] for e in theirs} == {"key.create"}, theirs
    assert not any(e["target"] in (group, silence["id"], incident["id"]) for e in theirs)
    # The incident's acknowledgement and resolution name the key, as the audit row does.
    got = t.ok("GET", f"/api/v1/incidents/{incident['id']}", "read")
    assert got["acknowledgedBy"] == writer and got["resolvedBy"] == writer
    assert json.dumps(log).count(t.key("write")[20:]) == 0
