//! Scheduling, sending, history and restore, with a fake querier and a manual clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use strata_storage::audit::Actor;
use strata_storage::{DocStore, MemoryDocStore, TimeRange};

use super::*;
use crate::rules::Rule;
use crate::time::ManualClock;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * S;

/// Answers each SQL text with what the test set (no rows by default); refuses SQL naming
/// `nosuch` when validating.
#[derive(Default)]
pub(crate) struct FakeQuerier {
    pub answers: parking_lot::Mutex<HashMap<String, Result<Vec<RecordBatch>, String>>>,
    pub queries: parking_lot::Mutex<Vec<String>>,
}

impl FakeQuerier {
    pub fn answer(&self, sql: &str, rows: &[(&str, f64)]) {
        let service: ArrayRef = Arc::new(rows.iter().map(|r| Some(r.0)).collect::<StringArray>());
        let value: ArrayRef = Arc::new(rows.iter().map(|r| Some(r.1)).collect::<Float64Array>());
        let batch = RecordBatch::try_from_iter([("service", service), ("value", value)]).unwrap();
        self.answers.lock().insert(sql.into(), Ok(vec![batch]));
    }

    pub fn fail(&self, sql: &str, error: &str) {
        self.answers.lock().insert(sql.into(), Err(error.into()));
    }
}

#[async_trait]
impl RuleQuerier for FakeQuerier {
    async fn query(&self, _tenant: &TenantId, sql: &str) -> Result<Vec<RecordBatch>, String> {
        self.queries.lock().push(sql.to_string());
        self.answers
            .lock()
            .get(sql)
            .cloned()
            .unwrap_or(Ok(Vec::new()))
    }

    async fn validate(&self, _tenant: &TenantId, sql: &str) -> Result<(), String> {
        if sql.contains("nosuch") {
            Err("table 'strata.public.nosuch' not found".into())
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Default)]
struct RecordingSink(parking_lot::Mutex<Vec<(String, Vec<Alert>, Nanos)>>);

impl AlertSink for RecordingSink {
    fn receive(&self, tenant: &str, alerts: Vec<Alert>, now: Nanos) {
        self.0.lock().push((tenant.to_string(), alerts, now));
    }
}

impl RecordingSink {
    fn take(&self) -> Vec<(String, Vec<Alert>, Nanos)> {
        std::mem::take(&mut *self.0.lock())
    }
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn group(name: &str, interval: u64, hold: u64) -> RuleGroup {
    RuleGroup {
        name: name.into(),
        tenant: None,
        interval: Some(Duration::from_secs(interval)),
        rules: vec![Rule {
            alert: format!("{name}Alert"),
            sql: format!("SELECT {name}"),
            condition: None,
            for_: Some(Duration::from_secs(hold)),
            keep_firing_for: None,
            labels: Default::default(),
            annotations: Default::default(),
        }],
    }
}

struct Fixture {
    docs: Arc<MemoryDocStore>,
    querier: Arc<FakeQuerier>,
    sink: Arc<RecordingSink>,
    clock: ManualClock,
    store: Arc<RuleStore>,
}

impl Fixture {
    fn new() -> Self {
        let docs = Arc::new(MemoryDocStore::default());
        let querier = Arc::new(FakeQuerier::default());
        let clock = ManualClock::new(T0);
        let store = Arc::new(RuleStore::new(
            docs.clone(),
            querier.clone(),
            Arc::new(clock.clone()),
        ));
        Self {
            docs,
            querier,
            sink: Arc::new(RecordingSink::default()),
            clock,
            store,
        }
    }

    /// A scheduler over the fixture's store (a "process": a second call is a restart).
    fn scheduler(&self) -> Arc<Scheduler> {
        Scheduler::new(
            self.store.clone(),
            self.querier.clone(),
            self.sink.clone(),
            Arc::new(self.clock.clone()),
            tokio::runtime::Handle::current(),
            SchedulerConfig::default(),
        )
    }

    async fn history(&self) -> Vec<(String, String)> {
        (self
            .docs
            .list_history(&acme(), TimeRange::ALL, None)
            .await
            .unwrap())
        .into_iter()
        .map(|r| (r.alertname, r.state))
        .collect()
    }
}

fn by() -> Actor {
    Actor::new("key1", None)
}

#[test]
fn offsets_are_stable_inside_the_interval_and_spread_groups() {
    let i = Duration::from_secs(15);
    let a = group_offset(&acme(), "checkout", i);
    assert_eq!(a, group_offset(&acme(), "checkout", i));
    assert!((0..15 * S).contains(&a));
    let others: Vec<Nanos> = (0..20)
        .map(|n| group_offset(&acme(), &format!("g{n}"), i))
        .collect();
    assert!(others.iter().any(|o| *o != a), "groups are spread");
    assert_ne!(
        group_offset(&TenantId::new("globex").unwrap(), "checkout", i),
        a,
        "the tenant is part of the hash"
    );

    // Slots: every interval, `offset` past a multiple of it; at or after `now`.
    assert_eq!(next_slot(100 * S, i, 3 * S), 108 * S);
    assert_eq!(next_slot(108 * S, i, 3 * S), 108 * S);
    assert_eq!(next_slot(108 * S + 1, i, 3 * S), 123 * S);
    assert_eq!(next_slot(0, i, 0), 0);
    assert_eq!(next_slot(-S, i, 0), 0);
}

#[tokio::test]
async fn groups_fall_due_at_their_offset_then_every_interval() {
    let f = Fixture::new();
    f.store
        .create(&acme(), group("checkout", 15, 0), &by())
        .await
        .unwrap();
    let s = f.scheduler();
    s.reload().await.unwrap();
    let offset = group_offset(&acme(), "checkout", Duration::from_secs(15));
    let first = next_slot(T0, Duration::from_secs(15), offset);
    assert_eq!(s.next_due(), Some(first));
    assert_eq!(s.group_due(&acme(), "checkout"), Some(first));
    assert!(s.due(first - 1).is_empty());
    assert_eq!(s.due(first), [(acme(), "checkout".to_string())]);
    assert_eq!(s.evaluate_due(first - 1).await, 0);
    assert_eq!(s.evaluate_due(first).await, 1);
    assert_eq!(*f.querier.queries.lock(), ["SELECT checkout"]);
    assert_eq!(s.next_due(), Some(first + 15 * S));
    assert_eq!(s.evaluate_due(first + 14 * S).await, 0);
    // Late by more than an interval: one evaluation, then back on the grid.
    assert_eq!(s.evaluate_due(first + 40 * S).await, 1);
    assert_eq!(s.next_due(), Some(first + 45 * S));
}

#[tokio::test]
async fn rules_run_in_order_and_results_go_to_the_sink_and_the_history() {
    let f = Fixture::new();
    let mut g = group("checkout", 15, 30);
    let mut second = g.rules[0].clone();
    second.alert = "Second".into();
    second.sql = "SELECT second".into();
    second.condition = Some("value > 1".into());
    g.rules.push(second);
    f.store.create(&acme(), g, &by()).await.unwrap();
    f.querier.answer("SELECT checkout", &[("cart", 0.5)]);
    let s = f.scheduler();
    s.reload().await.unwrap();
    let t = s.next_due().unwrap();
    s.evaluate_due(t).await;
    assert_eq!(
        *f.querier.queries.lock(),
        [
            "SELECT checkout",
            "SELECT * FROM (SELECT second) AS rule WHERE value > 1"
        ]
    );
    assert!(f.sink.take().is_empty(), "nothing fires yet");
    assert_eq!(
        f.history().await,
        [("checkoutAlert".into(), "pending".into())]
    );

    s.evaluate_due(t + 30 * S).await;
    let sent = f.sink.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "acme");
    assert_eq!(sent[0].1.len(), 1);
    assert_eq!(sent[0].1[0].labels["service"], "cart");
    assert_eq!(sent[0].2, t + 30 * S);
    let history = f
        .docs
        .list_history(&acme(), TimeRange::ALL, None)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].state, "firing");
    assert_eq!(history[1].source, "rule");
    assert_eq!(history[1].value, Some(0.5));
    assert_eq!(
        history[1].fingerprint,
        sent[0].1[0].fingerprint().to_string()
    );
    assert!(history[1].labels.contains(r#""service":"cart""#));

    // Status for GET /api/v1/rules.
    let status = f.store.rules_status(&acme()).await.unwrap();
    assert_eq!(status[0].rules[0].health, crate::eval::Health::Ok);
    assert_eq!(status[0].rules[0].counts.firing, 1);
    assert_eq!(status[0].rules[1].counts.firing, 0);
}

#[tokio::test]
async fn a_failing_rule_is_reported_unhealthy_with_its_error() {
    let f = Fixture::new();
    f.store
        .create(&acme(), group("checkout", 15, 0), &by())
        .await
        .unwrap();
    f.querier.fail("SELECT checkout", "query timed out");
    let s = f.scheduler();
    s.reload().await.unwrap();
    s.evaluate_due(s.next_due().unwrap()).await;
    let status = f.store.rules_status(&acme()).await.unwrap();
    let rule = &status[0].rules[0];
    assert_eq!(rule.health, crate::eval::Health::Err);
    assert_eq!(rule.last_error.as_deref(), Some("query timed out"));
    assert!(rule.last_evaluation.is_some());
}

#[tokio::test]
async fn instance_states_survive_a_restart_so_for_does_not_start_over() {
    let f = Fixture::new();
    f.store
        .create(&acme(), group("checkout", 15, 30), &by())
        .await
        .unwrap();
    f.querier.answer("SELECT checkout", &[("cart", 0.5)]);
    let s = f.scheduler();
    s.reload().await.unwrap();
    let t = s.next_due().unwrap();
    s.evaluate_due(t).await;
    s.evaluate_due(t + 15 * S).await;
    assert!(f.sink.take().is_empty());
    let saved = f
        .docs
        .get_doc(&acme(), RULE_STATE_KIND, "checkout")
        .await
        .unwrap();
    assert!(saved.is_some(), "the new pending instance was saved");
    drop(s);

    // A new process: the pending instance is restored with its active_at.
    f.clock.set(t + 20 * S);
    let s = f.scheduler();
    s.reload().await.unwrap();
    assert_eq!(s.next_due(), Some(t + 30 * S));
    s.evaluate_due(t + 30 * S).await;
    let sent = f.sink.take();
    assert_eq!(
        sent.len(),
        1,
        "fires 30 s after it became active, across the restart"
    );
    assert_eq!(
        f.history().await,
        [
            ("checkoutAlert".into(), "pending".into()),
            ("checkoutAlert".into(), "firing".into())
        ]
    );
}

#[tokio::test]
async fn reload_follows_the_store_and_a_deleted_groups_alerts_resolve() {
    let f = Fixture::new();
    let s = f.scheduler();
    s.reload().await.unwrap();
    assert_eq!(s.next_due(), None);
    let changes = f.store.subscribe();
    f.store
        .create(&acme(), group("checkout", 15, 0), &by())
        .await
        .unwrap();
    assert!(
        changes.has_changed().unwrap(),
        "the store signals the change"
    );
    s.reload().await.unwrap();
    f.querier.answer("SELECT checkout", &[("cart", 0.5)]);
    let t = s.next_due().unwrap();
    s.evaluate_due(t).await;
    assert_eq!(f.sink.take().len(), 1);

    // An update keeps the states of rules that keep their name.
    let mut g = group("checkout", 15, 0);
    g.rules[0].labels.insert("severity".into(), "page".into());
    f.store.update(&acme(), "checkout", g, &by()).await.unwrap();
    s.reload().await.unwrap();
    assert_eq!(
        s.next_due(),
        Some(t + 15 * S),
        "same interval: same schedule"
    );

    f.clock.set(t + 20 * S);
    f.store.delete(&acme(), "checkout", &by()).await.unwrap();
    s.reload().await.unwrap();
    assert_eq!(s.next_due(), None);
    let sent = f.sink.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1[0].ends_at, Some(t + 20 * S), "sent as resolved");
    assert_eq!(
        f.history().await.last().unwrap(),
        &("checkoutAlert".to_string(), "resolved".to_string())
    );
    assert!(
        f.docs
            .get_doc(&acme(), RULE_STATE_KIND, "checkout")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_run_loop_stops_on_shutdown() {
    let f = Fixture::new();
    f.store
        .create(&acme(), group("checkout", 15, 0), &by())
        .await
        .unwrap();
    let s = f.scheduler();
    // Shut down at once: the loop loads the groups, starts what is due, and returns.
    s.clone().run(async {}).await;
    assert!(s.next_due().is_some(), "groups were loaded");
}

/// Counts queries in flight and the most seen at once; each query yields a few times so
/// that others could overlap if the scheduler let them.
#[derive(Default)]
struct OverlapQuerier {
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl RuleQuerier for OverlapQuerier {
    async fn query(&self, _tenant: &TenantId, _sql: &str) -> Result<Vec<RecordBatch>, String> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    }

    async fn validate(&self, _tenant: &TenantId, _sql: &str) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_groups_run_at_once_than_the_limit() {
    let f = Fixture::new();
    for n in 0..6 {
        f.store
            .create(&acme(), group(&format!("g{n}"), 15, 0), &by())
            .await
            .unwrap();
    }
    let querier = Arc::new(OverlapQuerier::default());
    let s = Scheduler::new(
        f.store.clone(),
        querier.clone(),
        f.sink.clone(),
        Arc::new(f.clock.clone()),
        tokio::runtime::Handle::current(),
        SchedulerConfig {
            max_concurrent: 1,
            ..SchedulerConfig::default()
        },
    );
    s.reload().await.unwrap();
    // Every group is due within one interval.
    assert_eq!(s.evaluate_due(T0 + 15 * S).await, 6);
    assert_eq!(querier.done.load(Ordering::SeqCst), 6);
    assert_eq!(querier.most.load(Ordering::SeqCst), 1);
}

/// A query that never answers.
struct HangingQuerier;

#[async_trait]
impl RuleQuerier for HangingQuerier {
    async fn query(&self, _tenant: &TenantId, _sql: &str) -> Result<Vec<RecordBatch>, String> {
        std::future::pending().await
    }

    async fn validate(&self, _tenant: &TenantId, _sql: &str) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test]
async fn a_query_past_its_timeout_makes_the_rule_unhealthy() {
    let f = Fixture::new();
    f.store
        .create(&acme(), group("checkout", 15, 0), &by())
        .await
        .unwrap();
    let s = Scheduler::new(
        f.store.clone(),
        Arc::new(HangingQuerier),
        f.sink.clone(),
        Arc::new(f.clock.clone()),
        tokio::runtime::Handle::current(),
        SchedulerConfig {
            eval_timeout: Duration::from_millis(1),
            ..SchedulerConfig::default()
        },
    );
    s.reload().await.unwrap();
    assert_eq!(s.evaluate_due(T0 + 15 * S).await, 1);
    let status = f.store.rules_status(&acme()).await.unwrap();
    let error = status[0].rules[0].last_error.clone().unwrap();
    assert!(error.contains("ran longer than 1ms"), "{error}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_evaluation_of_a_group_deleted_before_it_started_is_skipped() {
    let f = Fixture::new();
    f.store
        .create(&acme(), group("checkout", 15, 0), &by())
        .await
        .unwrap();
    let s = f.scheduler();
    s.reload().await.unwrap();
    // Started (spawned) but not yet run: this runtime runs it only when the test yields.
    let handles = s.start_due(T0 + 15 * S);
    assert_eq!(handles.len(), 1);
    f.store.delete(&acme(), "checkout", &by()).await.unwrap();
    s.reload().await.unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert!(f.querier.queries.lock().is_empty());
    assert!(
        (f.docs
            .get_doc(&acme(), RULE_STATE_KIND, "checkout")
            .await
            .unwrap())
        .is_none(),
        "no state saved for a deleted group"
    );
}
