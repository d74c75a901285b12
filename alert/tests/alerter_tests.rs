//! The alerter end to end, driven by explicit instants: every timer is checked at the exact
//! nanosecond it falls due and just before.

use strata_alert::alerter::{
    INCIDENT_ACKNOWLEDGE, INCIDENT_RESOLVE, SILENCE_CREATE, SILENCE_EXPIRE,
};
use strata_alert::matchers::parse_matchers;
use strata_alert::time::parse_rfc3339;
use strata_alert::{
    Alert, AlertSink, AlertSource, AlertState, Alerter, AlerterConfig, AlerterError, ConfigError,
    IncidentError, IncidentStatus, Labels, Notification, NotificationKind, SilenceSpec,
};
use strata_storage::{Actor, MemoryDocStore};

const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;

/// Friday 2026-11-27 12:00:00 UTC.
fn t0() -> i64 {
    parse_rfc3339("2026-11-27T12:00:00Z").unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A rule alert firing since `at` (no end until resolved).
fn firing(pairs: &[(&str, &str)], at: i64) -> Alert {
    Alert {
        labels: labels(pairs),
        annotations: Labels::new(),
        starts_at: at,
        ends_at: None,
        updated_at: at,
        generator_url: String::new(),
        source: AlertSource::Rule,
        value: None,
    }
}

fn resolved(pairs: &[(&str, &str)], started: i64, at: i64) -> Alert {
    Alert {
        ends_at: Some(at),
        updated_at: at,
        ..firing(pairs, started)
    }
}

fn alerter(yaml: &str) -> Alerter {
    Alerter::new(AlerterConfig::from_yaml(yaml).unwrap()).unwrap()
}

/// `receiver kind status [alertnames…]` (with the escalation step for pages).
fn summary(ns: &[Notification]) -> Vec<String> {
    ns.iter()
        .map(|n| {
            let names: Vec<String> = n
                .alerts
                .iter()
                .map(|a| {
                    let mut s = a.name().to_string();
                    if let Some(svc) = a.labels.get("service") {
                        s = format!("{s}@{svc}");
                    }
                    s
                })
                .collect();
            let kind = match n.kind {
                NotificationKind::Group => "group".to_string(),
                NotificationKind::Escalation => {
                    format!("page{}", n.escalation_step.unwrap_or(99))
                }
                NotificationKind::IncidentResolved => "incident_resolved".to_string(),
            };
            format!(
                "{} {kind} {} [{}]",
                n.receiver,
                n.status.as_str(),
                names.join(",")
            )
        })
        .collect()
}

const BASIC: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers: [{name: team}]
"#;

#[test]
fn group_wait_group_interval_and_repeat_interval() {
    let a = alerter(BASIC);
    let t = t0();
    a.receive(
        "acme",
        vec![firing(&[("alertname", "Up"), ("i", "1")], t)],
        t,
    );
    assert!(a.tick(t).is_empty());
    assert!(a.tick(t + 30 * S - 1).is_empty());
    let first = a.tick(t + 30 * S);
    assert_eq!(summary(&first), ["team group firing [Up]"]);
    assert_eq!(first[0].group_key, r#"{}:{alertname="Up"}"#);
    assert_eq!(first[0].group_labels, labels(&[("alertname", "Up")]));
    // A second alert of the group waits for the group interval, not a new group wait.
    a.receive(
        "acme",
        vec![firing(&[("alertname", "Up"), ("i", "2")], t + M)],
        t + M,
    );
    assert!(a.tick(t + 2 * M).is_empty());
    assert!(a.tick(t + 5 * M + 30 * S - 1).is_empty());
    let second = a.tick(t + 5 * M + 30 * S);
    assert_eq!(summary(&second), ["team group firing [Up,Up]"]);
    assert_eq!(second[0].common_labels, labels(&[("alertname", "Up")]));
    // Unchanged: nothing until the repeat interval (1h after the last send) passes.
    for k in 2..12 {
        assert!(a.tick(t + 30 * S + k * 5 * M).is_empty(), "flush {k}");
    }
    let repeat = a.tick(t + 65 * M + 30 * S);
    assert_eq!(summary(&repeat), ["team group firing [Up,Up]"]);
    assert_ne!(repeat[0].id, second[0].id);
    assert_ne!(first[0].id, second[0].id);
}

#[test]
fn same_alerts_received_again_send_nothing() {
    let a = alerter(BASIC);
    let t = t0();
    let alert = firing(&[("alertname", "Up")], t);
    a.receive("acme", vec![alert.clone()], t);
    assert_eq!(a.tick(t + 30 * S).len(), 1);
    for k in 1..=6 {
        let now = t + 30 * S + k * 5 * M;
        let again = Alert {
            updated_at: now,
            ..alert.clone()
        };
        a.receive("acme", vec![again], now - S);
        assert!(a.tick(now).is_empty(), "flush {k}");
    }
    // An older version never replaces a newer one.
    let stale = Alert {
        ends_at: Some(t),
        updated_at: t - S,
        ..alert.clone()
    };
    a.receive("acme", vec![stale], t + 31 * M);
    assert_eq!(a.alerts("acme", t + 31 * M).len(), 1);
}

#[test]
fn grouping_by_labels_and_by_every_label() {
    let by_service = alerter(&BASIC.replace("[alertname]", "[service]"));
    let all = alerter(&BASIC.replace("[alertname]", "['...']"));
    let t = t0();
    let alerts = vec![
        firing(&[("alertname", "A"), ("service", "cart")], t),
        firing(&[("alertname", "B"), ("service", "cart")], t),
        firing(&[("alertname", "A"), ("service", "web")], t),
    ];
    by_service.receive("acme", alerts.clone(), t);
    all.receive("acme", alerts, t);
    assert_eq!(
        summary(&by_service.tick(t + 30 * S)),
        [
            "team group firing [A@cart,B@cart]",
            "team group firing [A@web]"
        ]
    );
    let each = all.tick(t + 30 * S);
    assert_eq!(each.len(), 3);
    assert!(each.iter().all(|n| n.alerts.len() == 1));
    assert_eq!(each[0].group_labels, each[0].alerts[0].labels);
}

#[test]
fn continue_sends_to_later_routes_too() {
    let yaml = |cont: bool| {
        format!(
            r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['team="a"']
      receiver: ra
      continue: {cont}
    - matchers: ['severity=~"page|critical"']
      receiver: rb
    - matchers: ['team="a"']
      receiver: never
receivers: [{{name: default}}, {{name: ra}}, {{name: rb}}, {{name: never}}]
"#
        )
    };
    let t = t0();
    let alert = firing(
        &[("alertname", "X"), ("team", "a"), ("severity", "page")],
        t,
    );
    let other = firing(&[("alertname", "Y")], t);
    let with = alerter(&yaml(true));
    with.receive("acme", vec![alert.clone(), other.clone()], t);
    assert_eq!(
        summary(&with.tick(t + 30 * S)),
        // Groups in key order: child routes' keys (`{}/…`) sort before the root's (`{}:…`).
        [
            "rb group firing [X]",
            "ra group firing [X]",
            "default group firing [Y]",
        ]
    );
    let without = alerter(&yaml(false));
    without.receive("acme", vec![alert, other], t);
    assert_eq!(
        summary(&without.tick(t + 30 * S)),
        ["ra group firing [X]", "default group firing [Y]"]
    );
    let listed = without.alerts("acme", t);
    assert_eq!(listed[0].receivers.len(), 1);
}

#[test]
fn mute_time_intervals_hold_notifications_until_they_end() {
    let a = alerter(
        r#"
route:
  receiver: team
  group_by: [alertname]
  routes:
    - matchers: ['team="night"']
      mute_time_intervals: [lunch]
time_intervals:
  - name: lunch
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: "12:00", end_time: "13:00"}]
receivers: [{name: team}]
"#,
    );
    let t = t0(); // Friday 12:00 UTC
    a.receive(
        "acme",
        vec![
            firing(&[("alertname", "Muted"), ("team", "night")], t),
            firing(&[("alertname", "Loud")], t),
        ],
        t,
    );
    assert_eq!(summary(&a.tick(t + 30 * S)), ["team group firing [Loud]"]);
    for k in 1..12 {
        assert!(a.tick(t + 30 * S + k * 5 * M).is_empty(), "flush {k}");
    }
    // 13:00:30: the interval is over.
    assert_eq!(
        summary(&a.tick(t + 60 * M + 30 * S)),
        ["team group firing [Muted]"]
    );
}

#[test]
fn resolved_alerts_are_notified_once_then_the_group_goes() {
    let a = alerter(BASIC);
    let t = t0();
    let up = [("alertname", "Up")];
    a.receive("acme", vec![firing(&up, t)], t);
    let first = a.tick(t + 30 * S);
    a.receive("acme", vec![resolved(&up, t, t + 2 * M)], t + 2 * M);
    assert!(a.tick(t + 5 * M).is_empty());
    let done = a.tick(t + 5 * M + 30 * S);
    assert_eq!(summary(&done), ["team group resolved [Up]"]);
    assert_ne!(done[0].id, first[0].id);
    assert_eq!(done[0].alerts[0].ends_at, Some(t + 2 * M));
    assert!(a.tick(t + 10 * M + 30 * S).is_empty());
    assert!(a.alerts("acme", t + 11 * M).is_empty());
    // An alert that fires and resolves within the group wait is never notified.
    let blip = [("alertname", "Blip")];
    a.receive("acme", vec![firing(&blip, t + 20 * M)], t + 20 * M);
    a.receive(
        "acme",
        vec![resolved(&blip, t + 20 * M, t + 20 * M + 10 * S)],
        t + 20 * M + 10 * S,
    );
    assert!(a.tick(t + 20 * M + 30 * S).is_empty());
}

#[test]
fn api_alerts_without_an_end_resolve_after_five_minutes() {
    let a = alerter(BASIC);
    let t = t0();
    let mut alert = firing(&[("alertname", "Api")], t);
    alert.source = AlertSource::Api;
    a.receive("acme", vec![alert], t);
    assert_eq!(summary(&a.tick(t + 30 * S)), ["team group firing [Api]"]);
    assert_eq!(a.alerts("acme", t + 5 * M - 1).len(), 1);
    assert!(a.alerts("acme", t + 5 * M).is_empty());
    assert_eq!(
        summary(&a.tick(t + 5 * M + 30 * S)),
        ["team group resolved [Api]"]
    );
}

fn spec(matchers: &str, starts_at: i64, ends_at: i64) -> SilenceSpec {
    SilenceSpec {
        matchers: parse_matchers(matchers).unwrap(),
        starts_at,
        ends_at,
        created_by: "ops".into(),
        comment: "maintenance".into(),
    }
}

#[test]
fn silences_active_pending_and_expired_early() {
    let a = alerter(BASIC);
    let t = t0();
    let active = a
        .create_silence("acme", spec(r#"{alertname="Quiet"}"#, t, t + 60 * M), t)
        .unwrap();
    a.create_silence(
        "acme",
        spec(r#"{alertname="Later"}"#, t + 30 * M, t + 60 * M),
        t,
    )
    .unwrap();
    a.receive(
        "acme",
        vec![
            firing(&[("alertname", "Quiet")], t),
            firing(&[("alertname", "Later")], t),
        ],
        t,
    );
    let listed = a.alerts("acme", t + S);
    let quiet = listed.iter().find(|s| s.alert.name() == "Quiet").unwrap();
    assert_eq!(quiet.state, AlertState::Suppressed);
    assert_eq!(quiet.silenced_by, std::slice::from_ref(&active.id));
    // The pending silence does not mute yet.
    assert_eq!(summary(&a.tick(t + 30 * S)), ["team group firing [Later]"]);
    assert!(a.tick(t + 5 * M + 30 * S).is_empty());
    // Expired early: the next flush notifies.
    let expired = a.expire_silence("acme", &active.id, t + 7 * M).unwrap();
    assert_eq!(expired.ends_at, t + 7 * M);
    assert!(matches!(
        a.expire_silence("acme", &active.id, t + 8 * M),
        Err(AlerterError::SilenceExpired(_))
    ));
    assert_eq!(
        summary(&a.tick(t + 10 * M + 30 * S)),
        ["team group firing [Quiet]"]
    );
    // Validation as in Alertmanager.
    for bad in [
        spec(r#"{alertname=~".*"}"#, t, t + M),
        spec(r#"{alertname="x"}"#, t + M, t + M),
        spec(r#"{alertname="x"}"#, t - 2 * M, t - M),
        SilenceSpec {
            matchers: Vec::new(),
            ..spec(r#"{a="b"}"#, t, t + M)
        },
        SilenceSpec {
            created_by: String::new(),
            ..spec(r#"{a="b"}"#, t, t + M)
        },
    ] {
        assert!(matches!(
            a.create_silence("acme", bad, t),
            Err(AlerterError::InvalidSilence(_))
        ));
    }
    assert!(matches!(
        a.expire_silence("other", &active.id, t),
        Err(AlerterError::SilenceNotFound(_))
    ));
}

#[test]
fn inhibition_mutes_targets_with_equal_labels() {
    let a = alerter(
        r#"
route:
  receiver: team
  group_by: ['...']
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity=~"warning|critical"']
    equal: [service]
receivers: [{name: team}]
"#,
    );
    let t = t0();
    a.receive(
        "acme",
        vec![
            firing(
                &[
                    ("alertname", "Down"),
                    ("severity", "critical"),
                    ("service", "cart"),
                ],
                t,
            ),
            firing(
                &[
                    ("alertname", "Slow"),
                    ("severity", "warning"),
                    ("service", "cart"),
                ],
                t,
            ),
            firing(
                &[
                    ("alertname", "Slow"),
                    ("severity", "warning"),
                    ("service", "web"),
                ],
                t,
            ),
        ],
        t,
    );
    // The critical alert matches the target matchers too but never inhibits itself.
    assert_eq!(
        summary(&a.tick(t + 30 * S)),
        [
            "team group firing [Down@cart]",
            "team group firing [Slow@web]"
        ]
    );
    let listed = a.alerts("acme", t + 31 * S);
    let slow_cart = listed
        .iter()
        .find(|s| s.alert.name() == "Slow" && s.alert.labels["service"] == "cart")
        .unwrap();
    assert_eq!(slow_cart.state, AlertState::Suppressed);
    let down = listed.iter().find(|s| s.alert.name() == "Down").unwrap();
    assert_eq!(slow_cart.inhibited_by, [down.fingerprint]);
    assert!(down.inhibited_by.is_empty());
}

const INCIDENTS: &str = r#"
route:
  receiver: team
  group_by: [alertname, service]
  escalation: oncall
receivers: [{name: team}, {name: primary}, {name: secondary}]
escalation_policies:
  - name: oncall
    steps:
      - {after: 0m, receivers: [primary]}
      - {after: 10m, receivers: [secondary]}
    repeat: 1
correlation:
  window: 5m
  by_labels: [[cluster]]
"#;

#[test]
fn caller_and_callee_alerts_form_one_incident_with_the_callee_as_root_cause() {
    let a = alerter(INCIDENTS);
    a.set_service_graph(
        "acme",
        vec![
            ("web".into(), "cart".into()),
            ("cart".into(), "redis".into()),
        ],
    );
    let t = t0();
    a.receive(
        "acme",
        vec![
            firing(&[("alertname", "Latency"), ("service", "web")], t),
            firing(&[("alertname", "Errors"), ("service", "redis")], t + 10 * S),
            firing(&[("alertname", "Errors"), ("service", "pay")], t),
        ],
        t + 10 * S,
    );
    let sent = a.tick(t + 40 * S);
    assert_eq!(
        summary(&sent),
        [
            "team group firing [Errors@pay]",
            "team group firing [Errors@redis]",
            "team group firing [Latency@web]",
            "primary page0 firing [Errors@pay]",
            "primary page0 firing [Errors@redis,Latency@web]",
        ]
    );
    let incidents = a.incidents("acme");
    assert_eq!(incidents.len(), 2);
    let shop = incidents.iter().find(|i| i.services.len() == 2).unwrap();
    assert_eq!(
        shop.services.iter().map(String::as_str).collect::<Vec<_>>(),
        ["redis", "web"]
    );
    assert_eq!(shop.root_cause.as_deref(), Some("redis"));
    assert_eq!(shop.status, IncidentStatus::Open);
    assert_eq!(sent[1].incident.as_deref(), Some(shop.id.as_str()));
    assert_eq!(sent[2].incident.as_deref(), Some(shop.id.as_str()));
    // The cascade grows: cart fails within the window and joins; redis stays the root cause.
    a.receive(
        "acme",
        vec![firing(
            &[("alertname", "Errors"), ("service", "cart")],
            t + M,
        )],
        t + M,
    );
    a.tick(t + M + 30 * S);
    let shop = a.incident("acme", &shop.id).unwrap();
    assert_eq!(shop.services.len(), 3);
    assert_eq!(shop.root_cause.as_deref(), Some("redis"));
    // Once redis recovers, cart is the most downstream failing service.
    a.receive(
        "acme",
        vec![resolved(
            &[("alertname", "Errors"), ("service", "redis")],
            t,
            t + 2 * M,
        )],
        t + 2 * M,
    );
    a.tick(t + 2 * M + S);
    assert_eq!(
        a.incident("acme", &shop.id).unwrap().root_cause.as_deref(),
        Some("cart")
    );
}

#[test]
fn alerts_sharing_correlation_labels_join_one_incident() {
    let a = alerter(INCIDENTS);
    let t = t0();
    a.receive(
        "acme",
        vec![
            firing(
                &[("alertname", "A"), ("service", "x"), ("cluster", "eu")],
                t,
            ),
            firing(
                &[("alertname", "B"), ("service", "y"), ("cluster", "eu")],
                t,
            ),
            firing(
                &[("alertname", "C"), ("service", "z"), ("cluster", "us")],
                t,
            ),
        ],
        t,
    );
    a.tick(t + 30 * S);
    let mut sizes: Vec<usize> = a.incidents("acme").iter().map(|i| i.alerts.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [1, 2]);
    // Outside the window a related alert opens its own incident.
    a.receive(
        "acme",
        vec![firing(
            &[("alertname", "D"), ("service", "w"), ("cluster", "eu")],
            t + 10 * M,
        )],
        t + 10 * M,
    );
    a.tick(t + 10 * M + 30 * S);
    assert_eq!(a.incidents("acme").len(), 3);
}

fn pages(ns: &[Notification]) -> Vec<String> {
    summary(
        &ns.iter()
            .filter(|n| n.kind != NotificationKind::Group)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

#[test]
fn escalation_steps_fire_at_their_instants_and_repeat() {
    let a = alerter(INCIDENTS);
    let t = t0();
    a.receive(
        "acme",
        vec![firing(&[("alertname", "Down"), ("service", "db")], t)],
        t,
    );
    let open = t + 30 * S;
    assert_eq!(pages(&a.tick(open)), ["primary page0 firing [Down@db]"]);
    assert!(a.tick(open + 10 * M - 1).is_empty());
    assert_eq!(
        pages(&a.tick(open + 10 * M)),
        ["secondary page1 firing [Down@db]"]
    );
    // One repetition, period 20m: primary again at +20m, secondary at +30m, then nothing.
    assert!(pages(&a.tick(open + 20 * M - 1)).is_empty());
    assert_eq!(
        pages(&a.tick(open + 20 * M)),
        ["primary page0 firing [Down@db]"]
    );
    assert_eq!(
        pages(&a.tick(open + 30 * M)),
        ["secondary page1 firing [Down@db]"]
    );
    assert!(pages(&a.tick(open + 90 * M)).is_empty());
    let inc = &a.incidents("acme")[0];
    let steps = inc
        .timeline
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                strata_alert::incident::TimelineEvent::EscalationStep { .. }
            )
        })
        .count();
    assert_eq!(steps, 4);
    // Resolution of every alert resolves the incident and tells both paged receivers.
    a.receive(
        "acme",
        vec![resolved(
            &[("alertname", "Down"), ("service", "db")],
            t,
            open + 91 * M,
        )],
        open + 91 * M,
    );
    let done = a.tick(open + 91 * M);
    assert_eq!(
        pages(&done),
        [
            "primary incident_resolved resolved [Down@db]",
            "secondary incident_resolved resolved [Down@db]",
        ]
    );
    let inc = a.incident("acme", &inc.id).unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.resolved_by, None);
}

#[test]
fn acknowledgement_stops_escalation_and_resolution_notifies_those_paged() {
    let a = alerter(INCIDENTS);
    let t = t0();
    a.receive(
        "acme",
        vec![firing(&[("alertname", "Down"), ("service", "db")], t)],
        t,
    );
    let open = t + 30 * S;
    assert_eq!(pages(&a.tick(open)), ["primary page0 firing [Down@db]"]);
    let id = a.incidents("acme")[0].id.clone();
    let acked = a.acknowledge("acme", &id, "alice", open + 5 * M).unwrap();
    assert_eq!(acked.status, IncidentStatus::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
    assert!(matches!(
        a.acknowledge("acme", &id, "bob", open + 6 * M),
        Err(IncidentError::Conflict { .. })
    ));
    assert!(a.tick(open + 10 * M).is_empty());
    assert!(a.tick(open + 30 * M).is_empty());
    // Another tenant cannot see or touch it.
    assert_eq!(
        a.incident("other", &id),
        Err(IncidentError::NotFound(id.clone()))
    );
    assert!(matches!(
        a.resolve("other", &id, "eve", open + 31 * M),
        Err(IncidentError::NotFound(_))
    ));
    let done = a.resolve("acme", &id, "alice", open + 31 * M).unwrap();
    assert_eq!(done.resolved_by.as_deref(), Some("alice"));
    assert_eq!(
        pages(&a.tick(open + 31 * M)),
        ["primary incident_resolved resolved [Down@db]"]
    );
    assert!(matches!(
        a.resolve("acme", &id, "alice", open + 32 * M),
        Err(IncidentError::Conflict { .. })
    ));
    assert!(matches!(
        a.acknowledge("acme", &id, "alice", open + 32 * M),
        Err(IncidentError::Conflict { .. })
    ));
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn persist_and_restore_yield_the_same_next_notifications() {
    let t = t0();
    let store = MemoryDocStore::default();
    let a = alerter(INCIDENTS);
    a.set_service_graph("acme", vec![("web".into(), "db".into())]);
    a.receive(
        "acme",
        vec![
            firing(&[("alertname", "Down"), ("service", "db")], t),
            firing(&[("alertname", "Slow"), ("service", "web")], t),
        ],
        t,
    );
    a.receive("beta", vec![firing(&[("alertname", "Other")], t)], t);
    a.create_silence("beta", spec(r#"{alertname="Muted"}"#, t, t + 60 * M), t)
        .unwrap();
    // Three groups, and two incidents (db and web correlate; beta's own) paging primary.
    assert_eq!(a.tick(t + 30 * S).len(), 5);
    block_on(a.persist(&store, t + 30 * S)).unwrap();
    // The node goes on, sends the next page, then crashes before saving its state.
    a.receive(
        "acme",
        vec![firing(&[("alertname", "New"), ("service", "db")], t + M)],
        t + M,
    );
    let before_crash = a.tick(t + 10 * M + 30 * S);
    assert_eq!(
        summary(&before_crash),
        [
            // Outside the correlation window (5m after the last join): its own incident.
            "team group firing [New@db]",
            "primary page0 firing [New@db]",
            "secondary page1 firing [Down@db,Slow@web]",
            "secondary page1 firing [Other]",
        ]
    );
    // After restart: the same alert is received again and the same notifications come out
    // with the same ids, so the outbox drops them as duplicates.
    let b = alerter(INCIDENTS);
    b.set_service_graph("acme", vec![("web".into(), "db".into())]);
    block_on(b.restore(&store, t + 10 * M)).unwrap();
    b.receive(
        "acme",
        vec![firing(&[("alertname", "New"), ("service", "db")], t + M)],
        t + 10 * M,
    );
    let after = b.tick(t + 10 * M + 30 * S);
    let ids = |ns: &[Notification]| ns.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before_crash));
    assert_eq!(summary(&after), summary(&before_crash));
    // Both go on identically.
    for k in 1..=8 {
        let now = t + 10 * M + 30 * S + k * 5 * M;
        assert_eq!(ids(&a.tick(now)), ids(&b.tick(now)), "tick {k}");
    }
    assert_eq!(a.silences("beta"), b.silences("beta"));
    assert_eq!(a.incidents("acme"), b.incidents("acme"));
    // A full round trip of the latest state is lossless too.
    let store2 = MemoryDocStore::default();
    let now = t + 60 * M;
    block_on(a.persist(&store2, now)).unwrap();
    let c = alerter(INCIDENTS);
    c.set_service_graph("acme", vec![("web".into(), "db".into())]);
    block_on(c.restore(&store2, now)).unwrap();
    assert_eq!(a.alerts("acme", now), c.alerts("acme", now));
    for k in 1..=30 {
        let now = now + k * 5 * M;
        assert_eq!(ids(&a.tick(now)), ids(&c.tick(now)), "tick {k}");
    }
}

#[test]
fn tenants_never_share_state() {
    let a = alerter(INCIDENTS);
    let t = t0();
    a.receive(
        "a",
        vec![firing(&[("alertname", "X"), ("service", "s")], t)],
        t,
    );
    a.receive(
        "b",
        vec![firing(&[("alertname", "X"), ("service", "s")], t)],
        t,
    );
    a.create_silence("a", spec(r#"{alertname="X"}"#, t, t + 60 * M), t)
        .unwrap();
    let sent = a.tick(t + 30 * S);
    assert!(sent.iter().all(|n| n.tenant == "b"));
    assert_eq!(sent.len(), 2);
    assert!(a.incidents("a").is_empty());
    assert_eq!(a.incidents("b").len(), 1);
    assert!(a.silences("b").is_empty());
    assert_eq!(a.alerts("a", t)[0].state, AlertState::Suppressed);
    assert_eq!(a.alerts("b", t)[0].state, AlertState::Active);
    assert!(a.alerts("c", t).is_empty());
}

#[test]
fn audited_changes_write_their_document_and_audit_row() {
    let a = alerter(INCIDENTS);
    let store = MemoryDocStore::default();
    let by = Actor::new("key1", Some("10.0.0.1:5000".into()));
    let t = t0();
    let s = block_on(a.create_silence_audited(
        &store,
        "acme",
        spec(r#"{alertname="X"}"#, t, t + M),
        &by,
        t,
    ))
    .unwrap();
    block_on(a.expire_silence_audited(&store, "acme", &s.id, &by, t + S)).unwrap();
    a.receive("acme", vec![firing(&[("alertname", "Y")], t)], t);
    a.tick(t + 30 * S);
    let id = a.incidents("acme")[0].id.clone();
    block_on(a.acknowledge_audited(&store, "acme", &id, &by, t + M)).unwrap();
    block_on(a.resolve_audited(&store, "acme", &id, &by, t + 2 * M)).unwrap();
    assert!(matches!(
        block_on(a.resolve_audited(&store, "acme", &id, &by, t + 3 * M)),
        Err(AlerterError::Incident(IncidentError::Conflict { .. }))
    ));
    let rows = store.audit_rows();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            SILENCE_CREATE,
            SILENCE_EXPIRE,
            INCIDENT_ACKNOWLEDGE,
            INCIDENT_RESOLVE
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.actor == "key1" && r.tenant.as_str() == "acme")
    );
    assert_eq!(rows[0].target.as_deref(), Some(s.id.as_str()));
}

fn config_error(yaml: &str) -> String {
    match AlerterConfig::from_yaml(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn config_errors_say_where() {
    let base = "receivers: [{name: default}, {name: x}]\n";
    let cases = [
        (
            "route: {receiver: default, routes: [{receiver: x}, {receiver: nope}]}",
            "route.routes[1].receiver: unknown receiver \"nope\"",
        ),
        (
            "route: {receiver: default, routes: [{matchers: ['a=~\"(\"']}]}",
            "route.routes[0].matchers[0]: invalid matcher",
        ),
        (
            "route: {matchers: ['a=\"b\"'], receiver: default}",
            "route.matchers:",
        ),
        (
            "route: {group_by: [a]}",
            "route.receiver: the root route needs a receiver",
        ),
        (
            "route: {receiver: default, group_interval: 0s}",
            "route.group_interval: must be > 0",
        ),
        (
            "route: {receiver: default, routes: [{mute_time_intervals: [nope]}]}",
            "route.routes[0].mute_time_intervals[0]: unknown time interval",
        ),
        (
            "route: {receiver: default, escalation: nope}",
            "route.escalation: unknown escalation policy",
        ),
        (
            "route: {receiver: default}\nescalation_policies: [{name: p, steps: [{after: 0m, receivers: [ghost]}]}]",
            "escalation_policies[0].steps[0].receivers[0]: unknown receiver",
        ),
        (
            "route: {receiver: default}\nescalation_policies: [{name: p, steps: [{after: 5m, receivers: [x]}, {after: 5m, receivers: [x]}]}]",
            "escalation_policies[0].steps[1].after",
        ),
        (
            "route: {receiver: default}\ntime_intervals: [{name: t, time_intervals: [{location: Europe/Paris}]}]",
            "time_intervals[0].time_intervals[0].location: unsupported location",
        ),
        (
            "route: {receiver: default}\ntime_intervals: [{name: t, time_intervals: [{times: [{start_time: '25:00', end_time: '26:00'}]}]}]",
            "time_intervals[0].time_intervals[0].times[0].start_time",
        ),
        (
            "route: {receiver: default}\ninhibit_rules: [{source_matchers: ['a=\"b\"'], target_matchers: ['c']}]",
            "inhibit_rules[0].target_matchers[0]: invalid matcher",
        ),
        (
            "route: {receiver: default}\ncorrelation: {window: 0s}",
            "correlation.window: must be > 0",
        ),
    ];
    for (yaml, want) in cases {
        let err = config_error(&format!("{base}{yaml}"));
        assert!(err.starts_with(want), "{yaml}\n got: {err}\nwant: {want}");
    }
    let dup = config_error("route: {receiver: a}\nreceivers: [{name: a}, {name: a}]");
    assert!(
        dup.starts_with("receivers[1].name: duplicate receiver"),
        "{dup}"
    );
    let unknown = config_error("route: {receiver: a, colour: red}\nreceivers: [{name: a}]");
    assert!(unknown.contains("unknown field `colour`"), "{unknown}");
    assert!(matches!(
        AlerterConfig::load("/nonexistent/alerter.yaml"),
        Err(ConfigError::Io { .. })
    ));
}

#[test]
fn default_and_documented_configurations_are_valid() {
    AlerterConfig::default().compile().unwrap();
    let full = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  escalation: oncall
  routes:
    - matchers: ['service=~"cart|checkout"', 'env!="dev"']
      receiver: shop
      continue: true
      mute_time_intervals: [nights]
    - matchers: ['{team="db", severity="page"}']
      active_time_intervals: [office]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [service]
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}]
        weekdays: ['monday:friday']
        days_of_month: ['1:5', '-1']
        months: ['january', '3:4']
        years: ['2026:2030']
        location: '+02:00'
  - name: office
    time_intervals: [{weekdays: [monday:friday], times: [{start_time: "09:00", end_time: "17:00"}]}]
receivers:
  - name: default
  - name: shop
    webhook_configs: [{url: "https://hooks.example.com/shop"}]
  - name: primary
escalation_policies:
  - name: oncall
    steps: [{after: 0m, receivers: [primary]}, {after: 15m, receivers: [shop]}]
    repeat: 2
correlation:
  window: 10m
  service_label: service.name
  by_labels: [[cluster, namespace]]
delivery: {timeout: 5s}
"#;
    let c = AlerterConfig::from_yaml(full).unwrap();
    let compiled = c.compile().unwrap();
    assert_eq!(compiled.route.routes[1].receiver, "default");
    assert_eq!(compiled.route.routes[1].matchers.len(), 2);
    assert_eq!(
        compiled.route.routes[0].escalation.as_deref(),
        Some("oncall")
    );
    // Friday 2026-11-27 12:00 UTC is 14:00 at +02:00: inside office hours, outside nights.
    assert!(compiled.in_interval("office", t0()));
    assert!(!compiled.in_interval("nights", t0()));
    // The last day of March (a Tuesday) at 23:00 (+02:00) is inside `nights`; not in November.
    assert!(compiled.in_interval("nights", parse_rfc3339("2026-03-31T21:00:00Z").unwrap()));
    assert!(!compiled.in_interval("nights", parse_rfc3339("2026-03-30T19:59:00Z").unwrap()));
    assert!(!compiled.in_interval("nights", parse_rfc3339("2026-11-30T21:00:00Z").unwrap()));
}

#[test]
fn active_time_intervals_send_only_inside_them() {
    let a = alerter(
        r#"
route:
  receiver: team
  group_by: [alertname]
  active_time_intervals: [afternoon]
time_intervals:
  - name: afternoon
    time_intervals: [{times: [{start_time: "13:00", end_time: "18:00"}], location: '+01:00'}]
receivers: [{name: team}]
"#,
    );
    let t = t0(); // 12:00 UTC is 13:00 at +01:00: inside.
    a.receive(
        "acme",
        vec![firing(&[("alertname", "A")], t - 2 * M)],
        t - 2 * M,
    );
    // 11:58:30 UTC = 12:58:30 local: outside, held.
    assert!(a.tick(t - 90 * S).is_empty());
    assert_eq!(summary(&a.tick(t + 210 * S)), ["team group firing [A]"]);
}

#[test]
fn updating_a_silence_changes_what_it_mutes() {
    let a = alerter(BASIC);
    let t = t0();
    let s = a
        .create_silence("acme", spec(r#"{alertname="A"}"#, t, t + 60 * M), t)
        .unwrap();
    a.receive(
        "acme",
        vec![
            firing(&[("alertname", "A")], t),
            firing(&[("alertname", "B")], t),
        ],
        t,
    );
    let updated = a
        .update_silence(
            "acme",
            &s.id,
            spec(r#"{alertname="B"}"#, t + M, t + 60 * M),
            t + 10 * S,
        )
        .unwrap();
    // Active already: it keeps its start.
    assert_eq!((updated.id.as_str(), updated.starts_at), (s.id.as_str(), t));
    assert_eq!(summary(&a.tick(t + 30 * S)), ["team group firing [A]"]);
    a.expire_silence("acme", &s.id, t + M).unwrap();
    assert!(matches!(
        a.update_silence(
            "acme",
            &s.id,
            spec(r#"{alertname="B"}"#, t, t + 60 * M),
            t + 2 * M
        ),
        Err(AlerterError::SilenceExpired(_))
    ));
    assert_eq!(a.silence("acme", &s.id).unwrap().ends_at, t + M);
    assert_eq!(a.silence("other", &s.id), None);
}

#[test]
fn escalation_pauses_while_the_incident_is_silenced() {
    let a = alerter(INCIDENTS);
    let t = t0();
    a.receive(
        "acme",
        vec![firing(&[("alertname", "Down"), ("service", "db")], t)],
        t,
    );
    let open = t + 30 * S;
    assert_eq!(pages(&a.tick(open)), ["primary page0 firing [Down@db]"]);
    let s = a
        .create_silence(
            "acme",
            spec(r#"{service="db"}"#, open + M, open + 60 * M),
            open + M,
        )
        .unwrap();
    assert!(a.tick(open + 10 * M).is_empty());
    a.expire_silence("acme", &s.id, open + 12 * M).unwrap();
    assert_eq!(
        pages(&a.tick(open + 12 * M)),
        ["secondary page1 firing [Down@db]"]
    );
}

#[test]
fn reload_keeps_groups_silences_and_incidents() {
    let a = alerter(BASIC);
    let t = t0();
    a.receive("acme", vec![firing(&[("alertname", "Up")], t)], t);
    a.create_silence("acme", spec(r#"{alertname="Other"}"#, t, t + 90 * M), t)
        .unwrap();
    assert_eq!(summary(&a.tick(t + 30 * S)), ["team group firing [Up]"]);
    let incidents = a.incidents("acme");
    let moved = AlerterConfig::from_yaml(
        &BASIC
            .replace("{name: team}", "{name: team}, {name: ops}")
            .replace("receiver: team", "receiver: ops"),
    )
    .unwrap();
    a.reload(moved.clone(), t + M).unwrap();
    assert_eq!(a.config(), moved);
    // The group keeps its log: nothing new until the repeat interval, then to the new receiver.
    assert!(a.tick(t + 5 * M + 30 * S).is_empty());
    assert_eq!(
        summary(&a.tick(t + 60 * M + 30 * S)),
        ["ops group firing [Up]"]
    );
    assert_eq!(a.silences("acme").len(), 1);
    assert_eq!(a.incidents("acme")[0].id, incidents[0].id);
    // An invalid configuration is refused and changes nothing.
    let mut bad = moved.clone();
    bad.route.receiver = Some("ghost".into());
    assert!(a.reload(bad, t + 61 * M).is_err());
    assert_eq!(a.config(), moved);
}

#[test]
fn async_methods_can_be_spawned() {
    fn is_send<T: Send>(_: T) {}
    let a = alerter(BASIC);
    let store = MemoryDocStore::default();
    let by = Actor::new("k", None);
    is_send(a.persist(&store, 0));
    is_send(a.restore(&store, 0));
    is_send(a.resolve_audited(&store, "acme", "x", &by, 0));
    is_send(a.create_silence_audited(&store, "acme", spec(r#"{a="b"}"#, 0, 1), &by, 0));
    let sink: std::sync::Arc<dyn AlertSink> = std::sync::Arc::new(a);
    sink.receive("acme", Vec::new(), 0);
}
