use super::*;
use crate::model::AlertSource;
use crate::model::NotificationKind;

const T0: Nanos = 1_795_000_000_000_000_000; // 2026-11-18T11:06:40Z
const S: Nanos = 1_000_000_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn alert(instance: &str, ends_at: Option<Nanos>) -> Alert {
    Alert {
        labels: labels(&[
            ("alertname", "HighErrors"),
            ("service", "cart"),
            ("instance", instance),
        ]),
        annotations: labels(&[("summary", "Errors high")]),
        starts_at: T0,
        ends_at,
        updated_at: T0,
        generator_url: format!("http://strata/rules/{instance}"),
        source: AlertSource::Rule,
        value: Some(0.5),
    }
}

/// Two firing alerts (a, c) and one resolved (b), at T0 + 120 s.
fn notification(status: Status) -> Notification {
    Notification {
        id: "n1".into(),
        tenant: "acme".into(),
        receiver: "team".into(),
        kind: NotificationKind::Group,
        group_key: r#"{}:{alertname="HighErrors"}"#.into(),
        status,
        group_labels: labels(&[("alertname", "HighErrors")]),
        common_labels: labels(&[("alertname", "HighErrors"), ("service", "cart")]),
        common_annotations: labels(&[("summary", "Errors high")]),
        alerts: vec![
            alert("a", None),
            alert("b", Some(T0 + 60 * S)),
            alert("c", Some(T0 + 600 * S)),
        ],
        incident: None,
        escalation_step: None,
        created_at: T0 + 120 * S,
    }
}

fn webhook(send_resolved: bool, max_alerts: usize) -> WebhookConfig {
    WebhookConfig {
        url: "https://hooks.example.com/x".into(),
        secret: None,
        send_resolved,
        max_alerts,
        body_template: None,
        content_type: None,
        timeout: None,
    }
}

fn pd() -> PagerDutyConfig {
    PagerDutyConfig {
        url: "https://events.pagerduty.com/v2/enqueue".into(),
        routing_key: "R0UT1NG".into(),
        severity: None,
        send_resolved: true,
        secret: None,
        timeout: None,
    }
}

fn receiver(w: Vec<WebhookConfig>, p: Vec<PagerDutyConfig>) -> Receiver {
    Receiver {
        name: "team".into(),
        webhook_configs: w,
        pagerduty_configs: p,
    }
}

const EXT: &str = "https://strata.example.com";

#[test]
fn alertmanager_v4_golden() {
    let v = alertmanager_v4(&notification(Status::Firing), true, 0, EXT).unwrap();
    let want = json!({
        "receiver": "team",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighErrors", "instance": "a", "service": "cart"},
                "annotations": {"summary": "Errors high"},
                "startsAt": "2026-11-18T11:06:40.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://strata/rules/a",
                "fingerprint": "a09aeca251064e4a"
            },
            {
                "status": "resolved",
                "labels": {"alertname": "HighErrors", "instance": "b", "service": "cart"},
                "annotations": {"summary": "Errors high"},
                "startsAt": "2026-11-18T11:06:40.000Z",
                "endsAt": "2026-11-18T11:07:40.000Z",
                "generatorURL": "http://strata/rules/b",
                "fingerprint": "b1e0153ba21d01f7"
            },
            {
                "status": "firing",
                "labels": {"alertname": "HighErrors", "instance": "c", "service": "cart"},
                "annotations": {"summary": "Errors high"},
                "startsAt": "2026-11-18T11:06:40.000Z",
                // Its end (a resolve timeout) is still ahead: not shown, as Alertmanager.
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://strata/rules/c",
                "fingerprint": "d695fd260d063fb8"
            }
        ],
        "groupLabels": {"alertname": "HighErrors"},
        "commonLabels": {"alertname": "HighErrors", "service": "cart"},
        "commonAnnotations": {"summary": "Errors high"},
        "externalURL": "https://strata.example.com",
        "version": "4",
        "groupKey": "{}:{alertname=\"HighErrors\"}",
        "truncatedAlerts": 0
    });
    assert_eq!(v, want);
    // Field names exactly as Alertmanager writes them, in its order.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "receiver",
            "status",
            "alerts",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "version",
            "groupKey",
            "truncatedAlerts"
        ]
    );
    let alert_keys: Vec<&str> = v["alerts"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        alert_keys,
        [
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint"
        ]
    );
}

#[test]
fn alertmanager_v4_truncates_and_carries_the_incident() {
    let mut n = notification(Status::Firing);
    n.incident = Some("inc-7".into());
    let v = alertmanager_v4(&n, true, 2, EXT).unwrap();
    assert_eq!(v["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(v["alerts"][1]["labels"]["instance"], "b");
    assert_eq!(v["truncatedAlerts"], 1);
    assert_eq!(v["incident"], "inc-7");
    // max_alerts larger than the group: all, none truncated.
    let v = alertmanager_v4(&n, true, 10, EXT).unwrap();
    assert_eq!(v["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(v["truncatedAlerts"], 0);
}

#[test]
fn send_resolved_false_filters_and_skips() {
    // A firing notification loses its resolved alerts (truncation counts after filtering).
    let v = alertmanager_v4(&notification(Status::Firing), false, 1, EXT).unwrap();
    let instances: Vec<&str> = (v["alerts"].as_array().unwrap().iter())
        .map(|a| a["labels"]["instance"].as_str().unwrap())
        .collect();
    assert_eq!(instances, ["a"]);
    assert_eq!(v["truncatedAlerts"], 1);
    // A resolved notification is not sent at all.
    assert_eq!(
        alertmanager_v4(&notification(Status::Resolved), false, 0, EXT),
        None
    );
    let r = receiver(vec![webhook(false, 0)], vec![]);
    assert_eq!(
        build(
            &notification(Status::Resolved),
            &r,
            Integration::Webhook { index: 0 },
            EXT
        ),
        Ok(None)
    );
    // With send_resolved it is.
    let r = receiver(vec![webhook(true, 0)], vec![]);
    let req = build(
        &notification(Status::Resolved),
        &r,
        Integration::Webhook { index: 0 },
        EXT,
    )
    .unwrap()
    .unwrap();
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["status"], "resolved");
    assert_eq!(req.content_type, "application/json");
    // An integration that is not in the receiver (config changed) is an error.
    assert_eq!(
        build(
            &notification(Status::Firing),
            &r,
            Integration::PagerDuty { index: 0 },
            EXT
        ),
        Err("receiver \"team\" has no pagerduty_configs[0]".into())
    );
}

#[test]
fn pagerduty_event_golden() {
    let n = notification(Status::Firing);
    let v = pagerduty_event(&n, &pd(), EXT).unwrap();
    let want = json!({
        "routing_key": "R0UT1NG",
        "event_action": "trigger",
        "dedup_key": "0e41ee5b207fca12c2f831b6805a99a3",
        "payload": {
            "summary": "Errors high",
            "source": "cart",
            "severity": "error",
            "timestamp": "2026-11-18T11:08:40.000Z",
            "custom_details": {
                "firing": 2,
                "resolved": 1,
                "group_key": "{}:{alertname=\"HighErrors\"}",
                "group_labels": {"alertname": "HighErrors"},
                "common_labels": {"alertname": "HighErrors", "service": "cart"},
                "common_annotations": {"summary": "Errors high"}
            }
        },
        "client": "Strata",
        "client_url": "https://strata.example.com",
        "links": [{"href": "https://strata.example.com", "text": "Strata"}]
    });
    assert_eq!(v, want);

    // Resolve: same dedup key.
    let r = pagerduty_event(&notification(Status::Resolved), &pd(), EXT).unwrap();
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(r["dedup_key"], v["dedup_key"]);
    // Stable per tenant and group: another tenant, another key; same inputs, same key.
    assert_eq!(
        dedup_key("acme", &n.group_key),
        dedup_key("acme", &n.group_key)
    );
    assert_ne!(
        dedup_key("other", &n.group_key),
        dedup_key("acme", &n.group_key)
    );
    assert_eq!(dedup_key("acme", "g").len(), 32);
    // send_resolved false: no resolve event.
    let quiet = PagerDutyConfig {
        send_resolved: false,
        ..pd()
    };
    assert_eq!(
        pagerduty_event(&notification(Status::Resolved), &quiet, EXT),
        None
    );
}

#[test]
fn pagerduty_severity_and_summary_defaults() {
    let mut n = notification(Status::Firing);
    n.common_annotations.clear();
    n.common_labels.insert("severity".into(), "critical".into());
    let v = pagerduty_event(&n, &pd(), EXT).unwrap();
    assert_eq!(v["payload"]["severity"], "critical");
    assert_eq!(
        v["payload"]["summary"],
        "[FIRING:2] HighErrors (cart critical)"
    );
    // The configured severity wins; an invalid label value falls back to `error`.
    let cfg = PagerDutyConfig {
        severity: Some("warning".into()),
        ..pd()
    };
    assert_eq!(
        pagerduty_event(&n, &cfg, EXT).unwrap()["payload"]["severity"],
        "warning"
    );
    n.common_labels.insert("severity".into(), "page".into());
    assert_eq!(
        pagerduty_event(&n, &pd(), EXT).unwrap()["payload"]["severity"],
        "error"
    );
    let mut r = notification(Status::Resolved);
    r.common_annotations.clear();
    assert_eq!(
        pagerduty_event(&r, &pd(), EXT).unwrap()["payload"]["summary"],
        "[RESOLVED] HighErrors (cart)"
    );
}

#[test]
fn body_template_renders_every_path() {
    let mut n = notification(Status::Firing);
    n.incident = Some("inc-7".into());
    let mut w = webhook(true, 0);
    w.body_template = Some(
        r#"{"text": {{ .CommonAnnotations.summary | json }}, "s": "{{ .Status }}", "r": "{{ .Receiver }}", "k": {{ .GroupKey | json }}, "u": "{{ .ExternalURL }}", "g": "{{ .GroupLabels.alertname }}", "c": "{{ .CommonLabels.service }}", "n": {{ .Alerts.Count }}, "f": {{ .Alerts.Firing }}, "x": {{ .Alerts.Resolved }}, "i": "{{ .Incident }}", "m": "{{ .CommonLabels.missing }}{{ .Nope }}"}"#
            .into(),
    );
    w.content_type = Some("application/vnd.team+json".into());
    let r = receiver(vec![w.clone()], vec![]);
    let req = build(&n, &r, Integration::Webhook { index: 0 }, EXT)
        .unwrap()
        .unwrap();
    assert_eq!(req.content_type, "application/vnd.team+json");
    let v: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        v,
        json!({
            "text": "Errors high", "s": "firing", "r": "team",
            "k": "{}:{alertname=\"HighErrors\"}", "u": "https://strata.example.com",
            "g": "HighErrors", "c": "cart", "n": 3, "f": 2, "x": 1, "i": "inc-7", "m": ""
        })
    );
    // Counts follow send_resolved.
    w.send_resolved = false;
    w.body_template =
        Some("{{ .Alerts.Count }}/{{ .Alerts.Firing }}/{{ .Alerts.Resolved }}".into());
    let r = receiver(vec![w], vec![]);
    let req = build(&n, &r, Integration::Webhook { index: 0 }, EXT)
        .unwrap()
        .unwrap();
    assert_eq!(req.body, b"2/2/0");
}

#[test]
fn validate_reports_config_errors_at_load() {
    let mut w = webhook(true, 0);
    assert_eq!(validate(&receiver(vec![w.clone()], vec![pd()])), Ok(()));
    w.body_template = Some("{{ .Status ".into());
    let e = validate(&receiver(vec![w.clone()], vec![])).unwrap_err();
    assert!(
        e.starts_with(
            "receiver \"team\": webhook_configs[0].body_template: template error at byte 0"
        ),
        "{e}"
    );
    w.body_template = None;
    w.url = "ftp://x/y".into();
    assert!(
        validate(&receiver(vec![w], vec![]))
            .unwrap_err()
            .contains("must be http(s)")
    );
    let bad_pd = PagerDutyConfig {
        severity: Some("sev1".into()),
        ..pd()
    };
    assert!(
        validate(&receiver(vec![], vec![bad_pd]))
            .unwrap_err()
            .contains("severity \"sev1\"")
    );
    let empty_key = PagerDutyConfig {
        routing_key: " ".into(),
        ..pd()
    };
    assert!(
        validate(&receiver(vec![], vec![empty_key]))
            .unwrap_err()
            .contains("routing_key is empty")
    );
}
