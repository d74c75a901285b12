//! Every timer of rule evaluation, driven by explicit `now` values.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Decimal128Array, Float32Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};

use super::*;
use crate::model::Status;

const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
const T0: i64 = 1_800_000_000 * S;

fn rule(hold: u64, keep: u64) -> Rule {
    Rule {
        alert: "HighErrorRate".into(),
        sql: "SELECT 1".into(),
        condition: None,
        for_: (hold > 0).then(|| Duration::from_secs(hold)),
        keep_firing_for: (keep > 0).then(|| Duration::from_secs(keep)),
        labels: [("severity".to_string(), "page".to_string())].into(),
        annotations: [(
            "summary".to_string(),
            "{{ $alertname }}: {{ $labels.service }} at {{ $value }}".to_string(),
        )]
        .into(),
    }
}

/// A result with one row per `(service, value)`.
fn rows(rows: &[(&str, f64)]) -> Vec<RecordBatch> {
    let service: ArrayRef = Arc::new(rows.iter().map(|r| Some(r.0)).collect::<StringArray>());
    let value: ArrayRef = Arc::new(
        rows.iter()
            .map(|r| Some(r.1))
            .collect::<arrow::array::Float64Array>(),
    );
    vec![RecordBatch::try_from_iter([("service", service), ("value", value)]).unwrap()]
}

fn at(now: i64) -> EvalAt {
    EvalAt {
        now,
        interval: Duration::from_secs(60),
        took: Duration::from_millis(3),
    }
}

fn eval(state: &mut RuleState, rule: &Rule, now: i64, result: &[(&str, f64)]) -> Evaluation {
    state.evaluate(rule, Ok(&rows(result)), at(now))
}

fn changes(e: &Evaluation) -> Vec<&'static str> {
    e.changes.iter().map(|c| c.change.as_str()).collect()
}

fn only(state: &RuleState) -> &Instance {
    assert_eq!(state.instances.len(), 1);
    state.instances.values().next().unwrap()
}

#[test]
fn pending_until_for_has_elapsed_then_firing() {
    let r = rule(60, 0);
    let mut st = RuleState::default();
    let e = eval(&mut st, &r, T0, &[("cart", 0.5)]);
    assert_eq!(changes(&e), ["pending"]);
    assert!(e.alerts.is_empty(), "pending instances are not sent");
    assert!(e.changed);
    assert_eq!(only(&st).state, InstanceState::Pending);

    let e = eval(&mut st, &r, T0 + 59 * S, &[("cart", 0.6)]);
    assert!(e.changes.is_empty() && e.alerts.is_empty());
    assert!(!e.changed, "a new value alone is not worth saving");
    assert_eq!(only(&st).value, 0.6);

    let e = eval(&mut st, &r, T0 + 60 * S, &[("cart", 0.7)]);
    assert_eq!(changes(&e), ["firing"]);
    assert_eq!(e.alerts.len(), 1);
    let alert = &e.alerts[0];
    assert_eq!(alert.labels["alertname"], "HighErrorRate");
    assert_eq!(alert.labels["service"], "cart");
    assert_eq!(alert.labels["severity"], "page");
    assert_eq!(alert.annotations["summary"], "HighErrorRate: cart at 0.7");
    assert_eq!(alert.starts_at, T0 + 60 * S);
    assert_eq!(
        alert.ends_at,
        Some(T0 + 60 * S + 4 * M),
        "valid for 4 intervals"
    );
    assert_eq!(alert.status(T0 + 60 * S), Status::Firing);
    assert_eq!(alert.value, Some(0.7));

    // Firing instances are sent at every evaluation.
    let e = eval(&mut st, &r, T0 + 2 * M, &[("cart", 0.7)]);
    assert!(e.changes.is_empty());
    assert_eq!(e.alerts.len(), 1);
}

#[test]
fn without_for_an_instance_fires_at_once() {
    let r = rule(0, 0);
    let mut st = RuleState::default();
    let e = eval(&mut st, &r, T0, &[("cart", 1.0)]);
    assert_eq!(changes(&e), ["firing"]);
    assert_eq!(
        e.alerts[0].annotations["summary"],
        "HighErrorRate: cart at 1"
    );
}

#[test]
fn a_pending_instance_whose_row_goes_is_dropped_as_inactive() {
    let r = rule(300, 0);
    let mut st = RuleState::default();
    eval(&mut st, &r, T0, &[("cart", 0.5)]);
    let e = eval(&mut st, &r, T0 + M, &[]);
    assert_eq!(changes(&e), ["inactive"]);
    assert!(st.instances.is_empty());
    assert!(e.alerts.is_empty());
    // Coming back, `for` starts over.
    eval(&mut st, &r, T0 + 2 * M, &[("cart", 0.5)]);
    assert_eq!(only(&st).active_at, T0 + 2 * M);
    let e = eval(&mut st, &r, T0 + 6 * M, &[("cart", 0.5)]);
    assert!(e.changes.is_empty(), "4 minutes < for of 5");
    let e = eval(&mut st, &r, T0 + 7 * M, &[("cart", 0.5)]);
    assert_eq!(changes(&e), ["firing"]);
}

#[test]
fn keep_firing_for_holds_a_firing_instance_after_its_row_goes() {
    let r = rule(0, 120);
    let mut st = RuleState::default();
    eval(&mut st, &r, T0, &[("cart", 0.5)]);
    let e = eval(&mut st, &r, T0 + M, &[]);
    assert!(e.changes.is_empty());
    assert!(e.changed, "keep_firing_since is saved");
    assert_eq!(only(&st).keep_firing_since, Some(T0 + M));
    assert_eq!(e.alerts.len(), 1);
    assert_eq!(e.alerts[0].status(T0 + M), Status::Firing);

    let e = eval(&mut st, &r, T0 + 2 * M + 59 * S, &[]);
    assert!(e.changes.is_empty(), "1m59s < keep_firing_for of 2m");

    // The row returns: the count starts over.
    eval(&mut st, &r, T0 + 3 * M - S, &[("cart", 0.5)]);
    assert_eq!(only(&st).keep_firing_since, None);
    eval(&mut st, &r, T0 + 3 * M, &[]);
    let e = eval(&mut st, &r, T0 + 4 * M + 59 * S, &[]);
    assert!(e.changes.is_empty());
    let e = eval(&mut st, &r, T0 + 5 * M, &[]);
    assert_eq!(changes(&e), ["resolved"]);
    assert_eq!(e.alerts.len(), 1);
    assert_eq!(e.alerts[0].ends_at, Some(T0 + 5 * M));
    assert_eq!(e.alerts[0].status(T0 + 5 * M), Status::Resolved);
}

#[test]
fn resolved_instances_are_reported_then_forgotten_after_15_minutes() {
    let r = rule(0, 0);
    let mut st = RuleState::default();
    eval(&mut st, &r, T0, &[("cart", 0.5)]);
    let e = eval(&mut st, &r, T0 + M, &[]);
    assert_eq!(changes(&e), ["resolved"]);
    for minute in [2, 10, 15] {
        let e = eval(&mut st, &r, T0 + minute * M, &[]);
        assert_eq!(e.alerts.len(), 1, "minute {minute}");
        assert_eq!(e.alerts[0].ends_at, Some(T0 + M));
        assert_eq!(only(&st).state, InstanceState::Inactive);
    }
    let e = eval(&mut st, &r, T0 + 16 * M, &[]);
    assert!(st.instances.is_empty(), "15 minutes after resolution");
    assert!(e.alerts.is_empty() && e.changes.is_empty() && e.changed);

    // A resolved instance whose row comes back starts over as pending.
    let r = rule(60, 0);
    let mut st = RuleState::default();
    eval(&mut st, &r, T0, &[("cart", 0.5)]);
    eval(&mut st, &r, T0 + M, &[("cart", 0.5)]);
    eval(&mut st, &r, T0 + 2 * M, &[]);
    let e = eval(&mut st, &r, T0 + 3 * M, &[("cart", 0.5)]);
    assert_eq!(changes(&e), ["pending"]);
    assert!(e.alerts.is_empty());
    assert_eq!(only(&st).active_at, T0 + 3 * M);
}

#[test]
fn a_flapping_instance_holds_its_last_stable_state_until_stable_for_the_window() {
    let r = rule(0, 0);
    let mut st = RuleState::default();
    let firing =
        |e: &Evaluation, now: i64| e.alerts.len() == 1 && e.alerts[0].status(now) == Status::Firing;
    // Fires, resolves, fires: 3 changes, not flapping yet; the sink sees each.
    assert!(firing(&eval(&mut st, &r, T0, &[("cart", 1.0)]), T0));
    let e = eval(&mut st, &r, T0 + M, &[]);
    assert!(!firing(&e, T0 + M) && e.alerts.len() == 1);
    assert!(firing(
        &eval(&mut st, &r, T0 + 2 * M, &[("cart", 1.0)]),
        T0 + 2 * M
    ));
    assert!(!only(&st).flapping);

    // The 4th change within 30 minutes: flapping. The sink keeps seeing it firing.
    let e = eval(&mut st, &r, T0 + 3 * M, &[]);
    assert_eq!(changes(&e), ["resolved"], "history has every real change");
    assert!(only(&st).flapping);
    assert!(firing(&e, T0 + 3 * M));
    assert_eq!(e.alerts[0].starts_at, T0 + 2 * M);
    assert_eq!(e.alerts[0].ends_at, Some(T0 + 3 * M + 4 * M), "kept alive");
    let e = eval(&mut st, &r, T0 + 4 * M, &[("cart", 1.0)]);
    assert_eq!(changes(&e), ["firing"]);
    assert!(firing(&e, T0 + 4 * M));
    let e = eval(&mut st, &r, T0 + 5 * M, &[]);
    assert_eq!(changes(&e), ["resolved"]);
    assert!(firing(&e, T0 + 5 * M));

    // Resolved since minute 5: not forgotten at 15 minutes while flapping, still held.
    let e = eval(&mut st, &r, T0 + 25 * M, &[]);
    assert!(only(&st).flapping);
    assert!(firing(&e, T0 + 25 * M));
    let e = eval(&mut st, &r, T0 + 34 * M, &[]);
    assert!(firing(&e, T0 + 34 * M));

    // No change for 30 minutes: stable again, the sink sees it resolved at minute 5.
    let e = eval(&mut st, &r, T0 + 35 * M, &[]);
    assert!(!only(&st).flapping);
    assert_eq!(e.alerts.len(), 1);
    assert_eq!(e.alerts[0].ends_at, Some(T0 + 5 * M));
    // Then forgotten (resolved more than 15 minutes ago, and reported so).
    let e = eval(&mut st, &r, T0 + 36 * M, &[]);
    assert!(st.instances.is_empty());
    assert!(e.alerts.is_empty());
}

#[test]
fn flapping_from_a_resolved_state_does_not_announce_firing() {
    let r = rule(0, 0);
    let mut st = RuleState::default();
    // Changes at minutes 0 (fires), 10 (resolves), 20 (fires), 35 (resolves): minute 0 has
    // left the window at 35, so 3 changes. The 4th within the window is the firing at 36,
    // while the sink last saw it resolved.
    eval(&mut st, &r, T0, &[("cart", 1.0)]);
    eval(&mut st, &r, T0 + 10 * M, &[]);
    eval(&mut st, &r, T0 + 20 * M, &[("cart", 1.0)]);
    let e = eval(&mut st, &r, T0 + 35 * M, &[]);
    assert!(!only(&st).flapping);
    assert_eq!(e.alerts[0].ends_at, Some(T0 + 35 * M));
    let e = eval(&mut st, &r, T0 + 36 * M, &[("cart", 1.0)]);
    assert_eq!(changes(&e), ["firing"]);
    assert!(only(&st).flapping);
    assert!(
        e.alerts.is_empty(),
        "the last stable state (resolved) is not repeated"
    );
}

#[test]
fn a_failing_rule_is_unhealthy_and_keeps_its_instances_as_they_are() {
    let r = rule(120, 0);
    let mut st = RuleState::default();
    eval(&mut st, &r, T0, &[("cart", 0.5), ("web", 0.9)]);
    let before = st.instances.clone();
    // The duration the scheduler measured, handed in: the state records it as given.
    let measured = Duration::from_millis(42);
    let e = st.evaluate(
        &r,
        Err("table 'spans' not found".into()),
        EvalAt {
            now: T0 + 5 * M,
            interval: Duration::from_secs(60),
            took: measured,
        },
    );
    assert_eq!(st.status.health, Health::Err);
    assert_eq!(
        st.status.last_error.as_deref(),
        Some("table 'spans' not found")
    );
    assert_eq!(st.status.last_evaluation, Some(T0 + 5 * M));
    assert_eq!(st.status.evaluation_duration, measured);
    assert_eq!(st.instances, before, "not advanced to firing, not dropped");
    assert!(e.changes.is_empty() && e.alerts.is_empty() && !e.changed);

    // Healthy again: the error is cleared and the timers resume.
    let e = eval(&mut st, &r, T0 + 6 * M, &[("cart", 0.5), ("web", 0.9)]);
    assert_eq!(st.status.health, Health::Ok);
    assert_eq!(st.status.last_error, None);
    assert_eq!(changes(&e), ["firing", "firing"]);

    // Firing instances are still sent while the rule fails.
    let e = st.evaluate(&r, Err("timeout".into()), at(T0 + 7 * M));
    assert_eq!(e.alerts.len(), 2);
    assert_eq!(st.counts().firing, 2);
}

#[test]
fn an_unusable_result_makes_the_rule_unhealthy() {
    let r = rule(0, 0);
    let mut st = RuleState::default();
    let no_value = vec![
        RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
            .unwrap(),
    ];
    st.evaluate(&r, Ok(&no_value), at(T0));
    let err = st.status.last_error.clone().unwrap();
    assert!(err.contains("no 'value' column (columns: n)"), "{err}");

    let text_value = vec![
        RecordBatch::try_from_iter([(
            "value",
            Arc::new(StringArray::from(vec!["high"])) as ArrayRef,
        )])
        .unwrap(),
    ];
    st.evaluate(&r, Ok(&text_value), at(T0));
    let err = st.status.last_error.clone().unwrap();
    assert!(
        err.contains("column 'value' is Utf8, not a number"),
        "{err}"
    );

    st.evaluate(&r, Ok(&rows(&[("cart", 1.0), ("cart", 2.0)])), at(T0));
    let err = st.status.last_error.clone().unwrap();
    assert!(
        err.contains("two result rows have the same labels"),
        "{err}"
    );
    assert_eq!(st.status.health, Health::Err);
    assert!(st.instances.is_empty());
}

#[test]
fn labels_and_values_come_from_columns_of_several_types() {
    let batch = RecordBatch::try_from_iter([
        (
            "service",
            Arc::new(StringArray::from(vec![Some("cart"), None, Some("web")])) as ArrayRef,
        ),
        (
            "code",
            Arc::new(UInt32Array::from(vec![500, 503, 404])) as ArrayRef,
        ),
        (
            "value",
            Arc::new(Int64Array::from(vec![Some(7), Some(8), None])) as ArrayRef,
        ),
    ])
    .unwrap();
    let got = rows_of(&[batch]).unwrap();
    assert_eq!(got.len(), 2, "the row with a NULL value is left out");
    assert_eq!(
        got[0].0,
        Labels::from([
            ("service".into(), "cart".into()),
            ("code".into(), "500".into())
        ])
    );
    assert_eq!(got[0].1, 7.0);
    assert_eq!(
        got[1].0,
        Labels::from([("code".into(), "503".into())]),
        "NULL labels are dropped"
    );

    let float32 = RecordBatch::try_from_iter([(
        "value",
        Arc::new(Float32Array::from(vec![0.25f32])) as ArrayRef,
    )])
    .unwrap();
    assert_eq!(rows_of(&[float32]).unwrap(), [(Labels::new(), 0.25)]);

    let decimal = RecordBatch::try_from_iter([
        ("host", Arc::new(Int64Array::from(vec![42])) as ArrayRef),
        (
            "value",
            Arc::new(
                Decimal128Array::from(vec![12345])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ) as ArrayRef,
        ),
    ])
    .unwrap();
    let got = rows_of(&[decimal]).unwrap();
    assert_eq!(got[0].0, Labels::from([("host".into(), "42".into())]));
    assert!((got[0].1 - 123.45).abs() < 1e-9, "{}", got[0].1);

    // Rows from several batches, and an empty result.
    let two = [rows(&[("a", 1.0)]), rows(&[("b", 2.0)])].concat();
    assert_eq!(rows_of(&two).unwrap().len(), 2);
    assert!(rows_of(&[]).unwrap().is_empty());
}

#[test]
fn rule_labels_override_row_labels_and_alertname_wins() {
    let mut r = rule(0, 0);
    r.labels.insert("service".into(), "fixed".into());
    let mut st = RuleState::default();
    let e = eval(&mut st, &r, T0, &[("cart", 1.0)]);
    assert_eq!(e.alerts[0].labels["service"], "fixed");
    let alertname_column = vec![
        RecordBatch::try_from_iter([
            (
                "alertname",
                Arc::new(StringArray::from(vec!["Other"])) as ArrayRef,
            ),
            ("value", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ])
        .unwrap(),
    ];
    let mut st = RuleState::default();
    let e = st.evaluate(&r, Ok(&alertname_column), at(T0));
    assert_eq!(e.alerts[0].labels["alertname"], "HighErrorRate");
}

#[test]
fn state_round_trips_through_its_saved_form() {
    let r = rule(60, 120);
    let mut st = RuleState::default();
    eval(&mut st, &r, T0, &[("cart", 0.5), ("web", 0.25)]);
    eval(&mut st, &r, T0 + M, &[("cart", 0.5)]);
    eval(&mut st, &r, T0 + 2 * M, &[]);
    let json = serde_json::to_string(&st).unwrap();
    let back: RuleState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
}
