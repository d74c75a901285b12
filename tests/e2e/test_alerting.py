"""Alerting end to end (docs/ALERTING.md): SQL rules over spans sent with the real OpenTelemetry
SDK, the alerter (grouping, silences, inhibition, incidents, escalation) and its webhooks,
delivered to a real HTTP receiver on 127.0.0.1 (webhook_receiver.py), plus a real Prometheus
sending its alerts to Strata and a real Alertmanager as the reference for the webhook payload.

Timers are short (group_wait 1s, group_interval 2s, rule interval 1s) and every wait polls for
the expected state with a generous timeout; no assertion is about how fast something happens.
Where a test shows that something is *not* sent, it first shows that the alerter holds the
alert (suppressed, or inhibited), then waits two further group intervals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from helpers import ns_to_rfc3339, wait_for
from webhook_receiver import WebhookReceiver, verify_signature

SECRET = "e2e-webhook-secret"

ERROR_RATE_SQL = """
SELECT service_name AS service,
       avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS value
FROM spans
WHERE time > now() - INTERVAL '10 minutes'
GROUP BY service_name
"""


def error_rate_group(name: str = "errors", for_: str = "1s") -> dict:
    return {
        "name": name,
        "interval": "1s",
        "rules": [
            {
                "alert": "HighErrorRate",
                "sql": ERROR_RATE_SQL,
                "condition": "value > 0.3",
                "for": for_,
                "labels": {"severity": "page"},
                "annotations": {"summary": "{{ $labels.service }} fails {{ $value }} of its requests"},
            }
        ],
    }


def alerter_yaml(receiver: WebhookReceiver, extra: str = "", route_extra: str = "",
                 receivers_extra: str = "", group_wait: str = "1s") -> str:
    """An alerter file with short timers, a signed `team` receiver and 127.0.0.1 allowed.
    `route_extra` and `receivers_extra` are YAML lines added (indented) to the root route and
    to the receivers list; `extra` holds top-level sections."""

    def indented(text: str, by: str) -> list[str]:
        return [by + line for line in textwrap.dedent(text).splitlines() if line.strip()]

    lines = [
        "route:",
        "  receiver: team",
        "  group_by: [alertname, service]",
        f"  group_wait: {group_wait}",
        "  group_interval: 2s",
        "  repeat_interval: 1h",
        *indented(route_extra, "  "),
        "receivers:",
        "  - name: team",
        "    webhook_configs:",
        f"      - url: {receiver.url}/team",
        f"        secret: {SECRET}",
        *indented(receivers_extra, "  "),
        "delivery:",
        '  allow: ["127.0.0.1/32"]',
        "  timeout: 1s",
        "  initial_backoff: 200ms",
        "  max_backoff: 1s",
        "  deadline: 2m",
        *indented(extra, ""),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def start_alerting_node(node_factory, tmp_path: Path, config: str, *args: str, rules: str | None = None):
    path = tmp_path / "alerter.yml"
    path.write_text(config)
    extra = ["--alerter-config", str(path)]
    if rules is not None:
        rules_path = tmp_path / "rules.yml"
        rules_path.write_text(rules)
        extra += ["--rules", str(rules_path)]
    return node_factory.start(*extra, *args)


def api(node, method: str, path: str, tenant: str | None = None, **kw) -> requests.Response:
    headers = kw.pop("headers", {})
    if tenant is not None:
        headers["X-Scope-OrgID"] = tenant
    return requests.request(method, node.api_url + path, headers=headers, timeout=30, **kw)


def ok(response: requests.Response, status: int = 200):
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


# ------------------------------------------------------------------------------- spans


class Services:
    """One SDK tracer provider per service, exporting over OTLP/HTTP to the node."""

    def __init__(self, node, tenant: str, names: list[str]):
        self.providers = {}
        self.tracers = {}
        for name in names:
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            exporter = OTLPSpanExporter(
                endpoint=f"{node.otlp_url}/v1/traces", headers={"X-Scope-OrgID": tenant}, timeout=10
            )
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            self.providers[name] = provider
            self.tracers[name] = provider.get_tracer("e2e.alerting")

    def call_chain(self, chain: list[str], failing: set[str]) -> None:
        """One request through `chain` (each calls the next), failing in `failing`."""

        def step(i: int) -> None:
            name = chain[i]
            with self.tracers[name].start_as_current_span(f"{name} handler", kind=SpanKind.SERVER) as span:
                if i + 1 < len(chain):
                    step(i + 1)
                if name in failing:
                    span.set_status(Status(StatusCode.ERROR, "boom"))

        step(0)

    def shutdown(self) -> None:
        for provider in self.providers.values():
            provider.shutdown()


def send_requests(node, tenant: str, chain: list[str], ok_count: int, failing: set[str], fail_count: int):
    services = Services(node, tenant, chain)
    try:
        for _ in range(ok_count):
            services.call_chain(chain, set())
        for _ in range(fail_count):
            services.call_chain(chain, failing)
    finally:
        services.shutdown()


# ------------------------------------------------------------------------------ helpers


def alerts_of(node, tenant: str, name: str | None = None) -> list[dict]:
    alerts = ok(api(node, "GET", "/api/v1/alerts", tenant))["alerts"]
    return [a for a in alerts if name is None or a["labels"].get("alertname") == name]


def payloads(receiver: WebhookReceiver, path: str, status: int | None = 200) -> list[dict]:
    """Bodies the receiver accepted (answered `status`) at `path`."""
    return [d.json for d in receiver.received(path) if status is None or d.status == status]


def settle(seconds: float = 4.5) -> None:
    """Two group intervals (2s) and a little: anything due would have been sent by then."""
    time.sleep(seconds)


# ----------------------------------------------------------------------- rules -> webhook


def test_rising_errors_fire_a_rule_and_the_webhook_gets_one_payload_per_group(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    ok(api(node, "POST", "/api/v1/rules", tenant, json=error_rate_group()), 201)

    # Healthy traffic first: the rule evaluates, nothing fires.
    send_requests(node, tenant, ["checkout"], ok_count=10, failing=set(), fail_count=0)
    wait_for(lambda: any(r.get("health") == "ok" for g in ok(api(node, "GET", "/api/v1/rules", tenant))["groups"]
                         for r in g["rules"]), what="a healthy evaluation")
    assert alerts_of(node, tenant) == []

    # Errors rise for checkout and for cart (two groups: group_by alertname, service).
    send_requests(node, tenant, ["checkout"], ok_count=0, failing={"checkout"}, fail_count=20)
    send_requests(node, tenant, ["cart"], ok_count=1, failing={"cart"}, fail_count=9)
    wait_for(lambda: len(payloads(receiver, "/team")) >= 2, timeout=60, what="two webhook payloads")
    settle()
    bodies = payloads(receiver, "/team")
    assert len(bodies) == 2, bodies
    by_service = {b["groupLabels"]["service"]: b for b in bodies}
    assert set(by_service) == {"checkout", "cart"}
    body = by_service["checkout"]
    # Alertmanager's fields, and the incident the group belongs to (a field receivers ignore).
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts", "incident"}
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "team"
    assert body["groupKey"] == '{}:{alertname="HighErrorRate", service="checkout"}'
    assert body["groupLabels"] == {"alertname": "HighErrorRate", "service": "checkout"}
    assert body["commonLabels"] == {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"}
    assert body["commonAnnotations"] == {"summary": "checkout fails 0.6666666666666666 of its requests"}
    [alert] = body["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert alert["status"] == "firing"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert len(alert["fingerprint"]) == 16

    # Every delivery is signed and carries an idempotency key.
    for delivery in receiver.received("/team"):
        assert verify_signature(SECRET, delivery), delivery.headers
        assert delivery.headers["idempotency-key"]
        assert not verify_signature("another-secret", delivery)

    # The rule's history is queryable as the `alerts` table, and the rule reports its state.
    rows = node.sql("SELECT state, labels FROM alerts WHERE alertname = 'HighErrorRate' ORDER BY time", tenant)
    states = [(json.loads(r["labels"])["service"], r["state"]) for r in rows]
    assert ("checkout", "pending") in states and ("checkout", "firing") in states
    assert states.index(("checkout", "pending")) < states.index(("checkout", "firing"))
    [group] = ok(api(node, "GET", "/api/v1/rules", tenant))["groups"]
    [rule] = group["rules"]
    assert rule["health"] == "ok" and rule["alerts"]["firing"] == 2

    # The notification log: both delivered, nothing dead.
    notes = ok(api(node, "GET", "/api/v1/notifications", tenant))["notifications"]
    assert sorted(n["status"] for n in notes) == ["delivered", "delivered"]


def test_a_rule_whose_sql_fails_at_run_time_is_unhealthy_with_its_error(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    group = error_rate_group("div")
    # Plans fine, fails when it runs (a cast of text that is not a number).
    group["rules"][0]["sql"] = "SELECT service_name AS service, CAST(name AS DOUBLE) AS value FROM spans"
    group["rules"][0]["condition"] = None
    ok(api(node, "POST", "/api/v1/rules", tenant, json=group), 201)
    send_requests(node, tenant, ["checkout"], ok_count=1, failing=set(), fail_count=0)

    def unhealthy():
        [g] = ok(api(node, "GET", "/api/v1/rules", tenant))["groups"]
        return g["rules"][0] if g["rules"][0].get("health") == "err" else None

    rule = wait_for(unhealthy, timeout=30, what="an unhealthy rule")
    assert "checkout handler" in rule["lastError"] or "cast" in rule["lastError"].lower(), rule["lastError"]


# --------------------------------------------------------------- silences and inhibition


def test_a_silenced_alert_is_not_sent_until_the_silence_expires(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    silence = ok(api(node, "POST", "/api/v1/silences", tenant, json={
        "matchers": ['service="checkout"', "alertname=~\"High.*\""], "duration": "1h",
        "createdBy": "e2e", "comment": "deploying checkout"}), 201)
    assert silence["status"]["state"] == "active"
    ok(api(node, "POST", "/api/v1/rules", tenant, json=error_rate_group()), 201)
    send_requests(node, tenant, ["checkout"], ok_count=0, failing={"checkout"}, fail_count=10)

    alert = wait_for(lambda: next(iter(alerts_of(node, tenant, "HighErrorRate")), None), timeout=60,
                     what="the alert held by the alerter")
    assert alert["status"] == {"state": "suppressed", "silencedBy": [silence["id"]], "inhibitedBy": []}
    settle()
    assert payloads(receiver, "/team", status=None) == []

    expired = ok(api(node, "DELETE", f"/api/v1/silences/{silence['id']}", tenant))
    assert expired["status"]["state"] == "expired"
    wait_for(lambda: payloads(receiver, "/team"), timeout=30, what="the payload after the silence expired")
    [body] = payloads(receiver, "/team")
    assert body["groupLabels"]["service"] == "checkout"


def test_an_inhibited_alert_is_not_sent_while_its_source_fires(node_factory, tmp_path, tenant, receiver):
    inhibit = textwrap.dedent("""\
        inhibit_rules:
          - source_matchers: ['severity="critical"']
            target_matchers: ['severity="page"']
            equal: [service]
        """)
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver, extra=inhibit))
    down = {"labels": {"alertname": "ServiceDown", "service": "checkout", "severity": "critical"}}
    ok(api(node, "POST", "/api/v2/alerts", tenant, json=[down]))
    ok(api(node, "POST", "/api/v1/rules", tenant, json=error_rate_group()), 201)
    send_requests(node, tenant, ["checkout"], ok_count=0, failing={"checkout"}, fail_count=10)

    alert = wait_for(lambda: next(iter(alerts_of(node, tenant, "HighErrorRate")), None), timeout=60,
                     what="the alert held by the alerter")
    source = alerts_of(node, tenant, "ServiceDown")[0]
    assert alert["status"] == {"state": "suppressed", "silencedBy": [], "inhibitedBy": [source["fingerprint"]]}
    settle()
    names = {b["groupLabels"]["alertname"] for b in payloads(receiver, "/team")}
    assert names == {"ServiceDown"}

    # The source resolves: the inhibited alert is sent.
    resolved = dict(down, endsAt=ns_to_rfc3339(time.time_ns() - 1_000_000_000))
    ok(api(node, "POST", "/api/v2/alerts", tenant, json=[resolved]))
    wait_for(lambda: any(b["groupLabels"]["alertname"] == "HighErrorRate" for b in payloads(receiver, "/team")),
             timeout=30, what="the payload once the source resolved")


# ------------------------------------------------------------ incidents and escalation


ESCALATION = textwrap.dedent("""\
    escalation_policies:
      - name: oncall
        steps:
          - {after: 0s, receivers: [primary]}
          - {after: 3s, receivers: [secondary]}
          - {after: 15s, receivers: [manager]}
    """)


def escalation_receivers(receiver: WebhookReceiver) -> str:
    return "\n".join(
        f"- name: {name}\n  webhook_configs: [{{url: {receiver.url}/{name}}}]"
        for name in ("primary", "secondary", "manager")
    )


def test_unacknowledged_incidents_escalate_and_an_ack_stops_them(node_factory, tmp_path, tenant, receiver):
    config = alerter_yaml(receiver, extra=ESCALATION, route_extra="escalation: oncall",
                          receivers_extra=escalation_receivers(receiver))
    node = start_alerting_node(node_factory, tmp_path, config)
    ok(api(node, "POST", "/api/v1/rules", tenant, json=error_rate_group()), 201)
    send_requests(node, tenant, ["checkout"], ok_count=0, failing={"checkout"}, fail_count=10)

    # The group notification, then the first step, then — nobody acknowledges — the second.
    wait_for(lambda: payloads(receiver, "/team"), timeout=60, what="the group notification")
    wait_for(lambda: payloads(receiver, "/primary"), timeout=30, what="escalation step 1")
    first_page = time.monotonic()
    wait_for(lambda: payloads(receiver, "/secondary"), timeout=30, what="escalation step 2")
    [incident] = ok(api(node, "GET", "/api/v1/incidents", tenant))["incidents"]
    assert incident["status"] == "open"
    page = payloads(receiver, "/secondary")[0]
    assert page["status"] == "firing" and page["incident"] == incident["id"]

    acked = ok(api(node, "POST", f"/api/v1/incidents/{incident['id']}/acknowledge", tenant))
    assert acked["status"] == "acknowledged" and acked["acknowledgedBy"]
    # Past the third step's time (15s after the first): the manager is never paged.
    time.sleep(max(0.0, first_page + 15 + 3 - time.monotonic()))
    assert payloads(receiver, "/manager", status=None) == []
    assert len(payloads(receiver, "/primary")) == 1 and len(payloads(receiver, "/secondary")) == 1

    # Resolving notifies everyone who was paged, with a resolved payload.
    resolved = ok(api(node, "POST", f"/api/v1/incidents/{incident['id']}/resolve", tenant))
    assert resolved["status"] == "resolved"
    for who in ("primary", "secondary"):
        wait_for(lambda: len(payloads(receiver, f"/{who}")) == 2, timeout=30, what=f"resolution to {who}")
        assert payloads(receiver, f"/{who}")[1]["status"] == "resolved"
    assert payloads(receiver, "/manager", status=None) == []
    kinds = [e["type"] for e in ok(api(node, "GET", f"/api/v1/incidents/{incident['id']}", tenant))["timeline"]]
    assert kinds[0] == "opened" and "acknowledged" in kinds and kinds[-1] == "resolved"
    assert kinds.count("escalation_step") == 2


def test_alerts_on_a_caller_and_its_callee_form_one_incident_rooted_at_the_callee(node_factory, tmp_path, tenant,
                                                                                   receiver):
    # group_wait leaves the node time to derive the tenant's service graph (when its first
    # alerts arrive) before the groups are notified and correlated.
    config = alerter_yaml(receiver, extra="correlation: {window: 5m}", group_wait="5s")
    node = start_alerting_node(node_factory, tmp_path, config)
    # frontend -> checkout -> payments; payments fails, and so does checkout because of it.
    send_requests(node, tenant, ["frontend", "checkout", "payments"], ok_count=2, failing=set(), fail_count=0)
    send_requests(node, tenant, ["frontend", "checkout", "payments"], ok_count=0,
                  failing={"checkout", "payments"}, fail_count=10)
    ok(api(node, "POST", "/api/v1/rules", tenant, json=error_rate_group()), 201)

    wait_for(lambda: len(payloads(receiver, "/team")) >= 2, timeout=60, what="both groups notified")
    incidents = ok(api(node, "GET", "/api/v1/incidents", tenant))["incidents"]
    assert len(incidents) == 1, incidents
    [incident] = incidents
    assert set(incident["services"]) == {"checkout", "payments"}
    assert incident["rootCause"] == "payments"
    assert {a["service"] for a in incident["alerts"]} == {"checkout", "payments"}
    # The incident is queryable as the `incidents` table.
    rows = node.sql("SELECT id, status, root_cause FROM incidents", tenant)
    assert rows == [{"id": incident["id"], "status": "open", "root_cause": "payments"}]


# ------------------------------------------------------------------------------ delivery


def delivery_config(receiver: WebhookReceiver) -> str:
    routes = textwrap.dedent("""\
        routes:
          - {matchers: ['team="flaky"'], receiver: flaky}
          - {matchers: ['team="broken"'], receiver: broken}
          - {matchers: ['team="slow"'], receiver: slow}
        """)
    receivers = "\n".join(
        f"- name: {name}\n  webhook_configs: [{{url: {receiver.url}/{name}, secret: {SECRET}}}]"
        for name in ("flaky", "broken", "slow")
    )
    return alerter_yaml(receiver, route_extra=routes, receivers_extra=receivers)


def post_alert(node, tenant: str, **labels: str) -> None:
    ok(api(node, "POST", "/api/v2/alerts", tenant, json=[{"labels": {"alertname": "Delivery", **labels}}]))


def notification_for(node, tenant: str, receiver_name: str, status: str | None = None):
    notes = ok(api(node, "GET", "/api/v1/notifications", tenant))["notifications"]
    for n in notes:
        if n["receiver"] == receiver_name and (status is None or n["status"] == status):
            return n
    return None


def test_retries_dead_letters_and_timeouts(node_factory, tmp_path, tenant, receiver):
    receiver.scripts = {"/flaky": [503, 503, 503], "/broken": [400], "/slow": ["hang"]}
    node = start_alerting_node(node_factory, tmp_path, delivery_config(receiver))
    post_alert(node, tenant, team="flaky")
    post_alert(node, tenant, team="broken")
    post_alert(node, tenant, team="slow")

    # 503 three times, then 200: delivered once, after exactly four requests with one key.
    flaky = wait_for(lambda: notification_for(node, tenant, "flaky", "delivered"), timeout=60, what="flaky delivered")
    requests_seen = receiver.received("/flaky")
    assert [d.status for d in requests_seen] == [503, 503, 503, 200]
    assert len({d.headers["idempotency-key"] for d in requests_seen}) == 1
    assert all(verify_signature(SECRET, d) for d in requests_seen)
    assert [a["httpStatus"] for a in flaky["attempts"]] == [503, 503, 503, 200]

    # 400: not retried, a dead letter; retried by hand once the receiver is fixed.
    dead = wait_for(lambda: notification_for(node, tenant, "broken", "dead"), timeout=60, what="a dead letter")
    assert [a["httpStatus"] for a in dead["attempts"]] == [400]
    dead_letters = ok(api(node, "GET", "/api/v1/notifications?status=dead", tenant))["notifications"]
    assert [n["id"] for n in dead_letters] == [dead["id"]]
    retried = ok(api(node, "POST", f"/api/v1/notifications/{dead['id']}/retry", tenant))
    assert retried["status"] == "pending"
    wait_for(lambda: notification_for(node, tenant, "broken", "delivered"), timeout=60, what="the retried delivery")
    assert [d.status for d in receiver.received("/broken")] == [400, 200]
    # Retrying what is delivered is a conflict; another tenant does not see the id.
    assert api(node, "POST", f"/api/v1/notifications/{dead['id']}/retry", tenant).status_code == 409
    assert api(node, "GET", f"/api/v1/notifications/{dead['id']}", "someone-else").status_code == 404

    # A receiver that never answers: the attempt times out (1s) and is retried.
    slow = wait_for(lambda: notification_for(node, tenant, "slow", "delivered"), timeout=60, what="slow delivered")
    assert slow["attempts"][0]["outcome"] == "retry"
    assert "timed out" in slow["attempts"][0]["error"]


def test_a_restart_between_firing_and_delivery_neither_loses_nor_duplicates(node_factory, tmp_path, tenant, receiver):
    receiver.default_status = 503
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    post_alert(node, tenant, service="checkout")
    wait_for(lambda: receiver.received("/team"), timeout=60, what="a first (failed) attempt")
    node.stop_clean()

    receiver.default_status = 200
    node.start()
    wait_for(lambda: payloads(receiver, "/team"), timeout=60, what="the delivery after the restart")
    settle()
    delivered = payloads(receiver, "/team")
    assert len(delivered) == 1
    assert delivered[0]["groupLabels"] == {"alertname": "Delivery", "service": "checkout"}
    assert len({d.headers["idempotency-key"] for d in receiver.received("/team")}) == 1


# --------------------------------------------------------------------- Prometheus, Alertmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    def up():
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, timeout=timeout, what=url)


def test_prometheus_sends_its_alerts_to_strata_and_they_reach_the_webhook(node_factory, tmp_path, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    host, port = node.http_addr.rsplit(":", 1)
    (tmp_path / "prom-rules.yml").write_text(textwrap.dedent("""\
        groups:
          - name: e2e
            rules:
              - alert: PrometheusSaysHello
                expr: vector(1)
                labels: {service: prometheus, severity: info}
                annotations: {summary: from a real Prometheus}
        """))
    (tmp_path / "prometheus.yml").write_text(textwrap.dedent(f"""\
        global: {{evaluation_interval: 1s, scrape_interval: 1s}}
        rule_files: [{tmp_path / 'prom-rules.yml'}]
        alerting:
          alertmanagers:
            - api_version: v2
              static_configs: [{{targets: ["{host}:{port}"]}}]
        """))
    prom_port = free_port()
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen([
        shutil.which("prometheus") or "prometheus",
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        "--rules.alert.resend-delay=2s",
    ], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: payloads(receiver, "/team"), timeout=90, what="Prometheus's alert at the webhook")
        [body] = payloads(receiver, "/team")
        assert body["groupLabels"] == {"alertname": "PrometheusSaysHello", "service": "prometheus"}
        [alert] = body["alerts"]
        assert alert["annotations"] == {"summary": "from a real Prometheus"}
        assert alert["generatorURL"].startswith("http")
        [held] = alerts_of(node, "default", "PrometheusSaysHello")
        assert held["source"] == "api"
    finally:
        prom.send_signal(signal.SIGTERM)
        prom.wait(timeout=30)
        log.close()


def test_the_webhook_payload_matches_a_real_alertmanager(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    am_port = free_port()
    (tmp_path / "am.yml").write_text(textwrap.dedent(f"""\
        route: {{receiver: am, group_by: [alertname, service], group_wait: 1s, group_interval: 2s}}
        receivers: [{{name: am, webhook_configs: [{{url: "{receiver.url}/am"}}]}}]
        """))
    log = open(tmp_path / "alertmanager.log", "w")
    am = subprocess.Popen([
        shutil.which("prometheus-alertmanager") or "prometheus-alertmanager",
        f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
    ], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{am_port}/-/ready")
        alert = [{"labels": {"alertname": "HighErrors", "service": "cart", "severity": "page"},
                  "annotations": {"summary": "cart fails"}, "generatorURL": "http://example.invalid/rule"}]
        requests.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", json=alert, timeout=10).raise_for_status()
        ok(api(node, "POST", "/api/v2/alerts", tenant, json=alert))
        wait_for(lambda: payloads(receiver, "/am") and payloads(receiver, "/team"), timeout=60,
                 what="both payloads")
        reference, ours = payloads(receiver, "/am")[0], payloads(receiver, "/team")[0]
        assert set(ours) == set(reference) | {"incident"}
        for key in ("version", "status", "groupKey", "groupLabels", "commonLabels", "commonAnnotations",
                    "truncatedAlerts"):
            assert ours[key] == reference[key], key
        [a], [b] = ours["alerts"], reference["alerts"]
        assert set(a) == set(b)
        for key in ("status", "labels", "annotations", "endsAt", "generatorURL", "fingerprint"):
            assert a[key] == b[key], key
    finally:
        am.send_signal(signal.SIGTERM)
        am.wait(timeout=30)
        log.close()


# ----------------------------------------------------------------------------- reload


def test_reload_refuses_an_invalid_file_and_keeps_the_old_configuration(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    path = tmp_path / "alerter.yml"
    path.write_text(alerter_yaml(receiver).replace("receiver: team", "receiver: nobody", 1))
    refused = api(node, "POST", "/-/reload")
    assert refused.status_code == 400
    assert 'unknown receiver "nobody"' in refused.json()["error"]
    post_alert(node, tenant, service="a")
    wait_for(lambda: payloads(receiver, "/team"), timeout=30, what="delivery with the old configuration")

    # A valid change by SIGHUP: new groups go to the new URL.
    path.write_text(alerter_yaml(receiver).replace(f"{receiver.url}/team", f"{receiver.url}/moved"))
    os.kill(node.pid, signal.SIGHUP)
    wait_for(lambda: "SIGHUP: configuration reloaded" in node.stderr_text(), timeout=30, what="the reload")
    post_alert(node, tenant, service="b")
    wait_for(lambda: payloads(receiver, "/moved"), timeout=30, what="delivery with the new configuration")
    assert payloads(receiver, "/moved")[0]["groupLabels"]["service"] == "b"


# ---------------------------------------------------------------- API input and isolation


def test_rule_groups_are_validated_and_per_tenant(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    bad_sql = error_rate_group("bad")
    bad_sql["rules"][0]["sql"] = "SELECT nope FROM nowhere"
    refused = api(node, "POST", "/api/v1/rules", tenant, json=bad_sql)
    assert refused.status_code == 400 and "does not plan" in refused.json()["error"]
    for body in [b"{", b"name: x\nrules: 5\n", b"\xff\xfe", json.dumps({"name": "", "rules": []}).encode(),
                 json.dumps(dict(error_rate_group(), extra=1)).encode()]:
        response = api(node, "POST", "/api/v1/rules", tenant, data=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    too_big = api(node, "POST", "/api/v1/rules", tenant, data=b"x" * (5 * 1024 * 1024))
    assert too_big.status_code == 413

    # YAML works as well as JSON.
    yaml_group = textwrap.dedent(f"""\
        name: yaml
        interval: 30s
        rules:
          - alert: Quiet
            sql: SELECT 1.0 AS value
            condition: value > 2
        """)
    created = ok(api(node, "POST", "/api/v1/rules", tenant, data=yaml_group,
                     headers={"Content-Type": "application/yaml"}), 201)
    assert created["name"] == "yaml" and created["origin"] == "api" and created["interval"] == "30s"
    assert api(node, "POST", "/api/v1/rules", tenant, data=yaml_group).status_code == 409
    updated = ok(api(node, "PUT", "/api/v1/rules/yaml", tenant, data=yaml_group.replace("30s", "1m")))
    assert updated["interval"] == "1m"

    other = "other-" + tenant
    assert api(node, "GET", "/api/v1/rules/yaml", other).status_code == 404
    assert api(node, "PUT", "/api/v1/rules/yaml", other, data=yaml_group).status_code == 404
    assert api(node, "DELETE", "/api/v1/rules/yaml", other).status_code == 404
    assert ok(api(node, "GET", "/api/v1/rules", other))["groups"] == []
    assert api(node, "DELETE", "/api/v1/rules/yaml", tenant).status_code == 204
    assert api(node, "GET", "/api/v1/rules/yaml", tenant).status_code == 404


def test_intake_silence_and_incident_input_is_checked(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver))
    for body in [b"", b"{", b"{}", b'[{"labels":{}}]', b'[{"labels":{"a b":"c"}}]',
                 b'[{"labels":{"a":"b"},"startsAt":"yesterday"}]']:
        response = api(node, "POST", "/api/v2/alerts", tenant, data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (body, response.text)
    huge = b'[' + b','.join([b'{"labels":{"a":"b"}}'] * 300_000) + b']'
    assert api(node, "POST", "/api/v2/alerts", tenant, data=huge).status_code == 413
    for body in [{"matchers": ['a="b"']}, {"matchers": ['a="b"'], "duration": "1h", "endsAt": "2030-01-01T00:00:00Z"},
                 {"matchers": ["bad matcher"], "duration": "1h", "comment": "x"},
                 {"matchers": ['a="b"'], "duration": "1h"}]:
        assert api(node, "POST", "/api/v1/silences", tenant, json=body).status_code == 400, body
    silence = ok(api(node, "POST", "/api/v1/silences", tenant,
                     json={"matchers": ['a="b"'], "duration": "1h", "comment": "x"}), 201)
    other = "other-" + tenant
    assert api(node, "GET", f"/api/v1/silences/{silence['id']}", other).status_code == 404
    assert api(node, "DELETE", f"/api/v1/silences/{silence['id']}", other).status_code == 404
    assert ok(api(node, "GET", "/api/v1/silences", other))["silences"] == []
    assert api(node, "GET", "/api/v1/incidents/nope", tenant).status_code == 404
    assert api(node, "POST", "/api/v1/incidents/nope/acknowledge", tenant).status_code == 404
    assert api(node, "GET", "/api/v1/incidents?status=weird", tenant).status_code == 400
    assert api(node, "GET", "/api/v1/notifications?status=weird", tenant).status_code == 400


def test_a_node_without_alerting_refuses_alerting_calls(node_factory, tmp_path, tenant, receiver):
    node = start_alerting_node(node_factory, tmp_path, alerter_yaml(receiver), "--alerting", "false")
    for method, path, body in [("POST", "/api/v2/alerts", [{"labels": {"alertname": "X"}}]),
                               ("GET", "/api/v1/alerts", None), ("GET", "/api/v1/rules", None),
                               ("POST", "/api/v1/rules", error_rate_group()),
                               ("GET", "/api/v1/incidents", None)]:
        response = api(node, method, path, tenant, json=body)
        assert response.status_code == 503, (path, response.text)
        assert "--alerting false" in response.json()["error"]
    assert "alerting is off on this node" in node.stderr_text()
    # Queries are served as usual.
    assert node.sql("SELECT count(*) AS n FROM alerts", tenant) == [{"n": 0}]
