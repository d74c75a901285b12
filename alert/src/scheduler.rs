//! The rule scheduler: evaluates each tenant's rule groups every `interval`, hands the
//! results to the alerter and writes state changes to the alert history.
//!
//! - Each group runs at a stable offset inside its interval, a hash of tenant and group name
//!   (as Prometheus spreads groups), so evaluations of many groups do not all start together:
//!   group `g` is due at every `k × interval + offset(g)`.
//! - A group's rules run in order; at most [`SchedulerConfig::max_concurrent`] groups are
//!   evaluated at once (a semaphore), on the runtime the scheduler is given, so rules never
//!   take more than that from ingest and user queries. Each query has a timeout
//!   (`min(eval_timeout, interval)`); a timed-out rule is unhealthy.
//! - After each evaluation the sink gets every firing instance and the retained resolved
//!   ones (the way Prometheus sends to Alertmanager), the history gets every state change,
//!   and, if anything but values changed, the group's instance states are saved (kind
//!   `rule_state`) so a restart restores them and `for` does not start over.
//! - [`Scheduler::reload`] picks up groups created, changed or deleted in the store; the
//!   [`Scheduler::run`] loop does so whenever the store signals a change. A deleted group's
//!   firing instances are sent as resolved, and its state is dropped.
//!
//! Tests drive it without real time: [`Scheduler::due`] and [`Scheduler::evaluate_due`] take
//! `now`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
#[cfg(feature = "engine")]
use strata_query::QueryEngine;
use strata_storage::{AlertHistoryRow, Doc, DocStore, TenantId};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::eval::{Change, EvalAt, InstanceState, RuleState};
use crate::model::{ALERTNAME, Alert, AlertSink, AlertSource};
use crate::rule_store::{RULE_STATE_KIND, RuleStore, RuleStoreError, StoredGroup};
use crate::rules::RuleGroup;
use crate::time::{Clock, Nanos, nanos};

/// How rules query a tenant's data.
#[async_trait]
pub trait RuleQuerier: Send + Sync {
    /// Runs `sql` as `tenant`; `Err` holds the message a user sees.
    async fn query(&self, tenant: &TenantId, sql: &str) -> Result<Vec<RecordBatch>, String>;

    /// Plans `sql` as `tenant` without running it: `Err` if it would not run, or if its
    /// result has no numeric `value` column.
    async fn validate(&self, tenant: &TenantId, sql: &str) -> Result<(), String>;
}

/// The engine the server runs rules on (feature `engine`).
#[cfg(feature = "engine")]
#[async_trait]
impl RuleQuerier for QueryEngine {
    async fn query(&self, tenant: &TenantId, sql: &str) -> Result<Vec<RecordBatch>, String> {
        self.sql(tenant, sql)
            .await
            .map(|r| r.batches)
            .map_err(|e| e.to_string())
    }

    async fn validate(&self, tenant: &TenantId, sql: &str) -> Result<(), String> {
        let ctx = self.session(tenant).map_err(|e| e.to_string())?;
        let frame = ctx
            .sql_with_options(sql, QueryEngine::sql_options())
            .await
            .map_err(|e| e.to_string())?;
        let schema = frame.schema().as_arrow().clone();
        frame.into_optimized_plan().map_err(|e| e.to_string())?;
        match schema.field_with_name(crate::eval::VALUE_COLUMN) {
            Ok(field) if field.data_type().is_numeric() => Ok(()),
            Ok(field) => Err(format!(
                "column 'value' is {}, not a number",
                field.data_type()
            )),
            Err(_) => Err(
                "the result has no 'value' column; name the number to alert on \
                           'value', e.g. SELECT count(*) AS value"
                    .into(),
            ),
        }
    }
}

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Groups evaluated at once.
    pub max_concurrent: usize,
    /// Longest a rule's query may run (and never longer than its group's interval).
    pub eval_timeout: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 2,
            eval_timeout: Duration::from_secs(60),
        }
    }
}

/// One scheduled group.
struct GroupRun {
    tenant: TenantId,
    stored: StoredGroup,
    offset: Nanos,
    next_due: AtomicI64,
    running: AtomicBool,
    /// Replaced or removed by a reload: an evaluation that had not started yet skips it.
    retired: AtomicBool,
    /// Each rule's state, by alert name.
    state: tokio::sync::Mutex<BTreeMap<String, RuleState>>,
}

type GroupKey = (String, String);

/// Evaluates rule groups on a schedule.
pub struct Scheduler {
    store: Arc<RuleStore>,
    querier: Arc<dyn RuleQuerier>,
    sink: Arc<dyn AlertSink>,
    clock: Arc<dyn Clock>,
    runtime: tokio::runtime::Handle,
    config: SchedulerConfig,
    permits: Arc<Semaphore>,
    groups: Mutex<BTreeMap<GroupKey, Arc<GroupRun>>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("groups", &self.groups.lock().len())
            .field("config", &self.config)
            .finish()
    }
}

/// A group's offset inside its interval: stable for a tenant and group name.
pub fn group_offset(tenant: &TenantId, name: &str, interval: Duration) -> Nanos {
    let mut h = Sha256::new();
    h.update(tenant.as_str().as_bytes());
    h.update([0xffu8]);
    h.update(name.as_bytes());
    let digest = h.finalize();
    let hash = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let interval = nanos(interval).max(1) as u64;
    (hash % interval) as Nanos
}

/// The first time at or after `now` that is `offset` past a multiple of `interval`.
pub fn next_slot(now: Nanos, interval: Duration, offset: Nanos) -> Nanos {
    let interval = nanos(interval).max(1);
    let base = (now - offset).div_euclid(interval) * interval + offset;
    if base >= now { base } else { base + interval }
}

impl Scheduler {
    /// A scheduler of `store`'s groups, querying with `querier`, sending to `sink`, spawning
    /// evaluations on `runtime`. Call [`Scheduler::reload`] (or [`Scheduler::run`]) to load
    /// the groups and their saved states.
    pub fn new(
        store: Arc<RuleStore>,
        querier: Arc<dyn RuleQuerier>,
        sink: Arc<dyn AlertSink>,
        clock: Arc<dyn Clock>,
        runtime: tokio::runtime::Handle,
        config: SchedulerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            store,
            querier,
            sink,
            clock,
            runtime,
            config,
            groups: Mutex::new(BTreeMap::new()),
        })
    }

    fn docs(&self) -> &Arc<dyn DocStore> {
        self.store.docs()
    }

    /// Reads the store's groups: new ones are scheduled with their saved states restored,
    /// changed ones keep the states of rules that kept their name, deleted ones are dropped
    /// (their firing instances sent as resolved, their saved state deleted).
    pub async fn reload(&self) -> Result<(), RuleStoreError> {
        let now = self.clock.now();
        let wanted = self.store.all_groups().await?;
        let old: BTreeMap<GroupKey, Arc<GroupRun>> = self.groups.lock().clone();
        let mut next: BTreeMap<GroupKey, Arc<GroupRun>> = BTreeMap::new();
        for (tenant, stored) in wanted {
            let key = (tenant.as_str().to_string(), stored.group.name.clone());
            let interval = stored.group.interval();
            match old.get(&key) {
                Some(run) if run.stored.group == stored.group => {
                    next.insert(key, run.clone());
                }
                Some(run) => {
                    let mut state = {
                        let state = run.state.lock().await;
                        run.retired.store(true, Ordering::SeqCst);
                        state.clone()
                    };
                    state.retain(|name, _| stored.group.rules.iter().any(|r| &r.alert == name));
                    let offset = group_offset(&tenant, &stored.group.name, interval);
                    let next_due = if run.stored.group.interval() == interval {
                        run.next_due.load(Ordering::SeqCst)
                    } else {
                        next_slot(now, interval, offset)
                    };
                    next.insert(
                        key,
                        Arc::new(run_of(tenant, stored, offset, next_due, state)),
                    );
                }
                None => {
                    let state = self.restore(&tenant, &stored.group.name).await;
                    let offset = group_offset(&tenant, &stored.group.name, interval);
                    let next_due = next_slot(now, interval, offset);
                    next.insert(
                        key,
                        Arc::new(run_of(tenant, stored, offset, next_due, state)),
                    );
                }
            }
        }
        for (key, run) in &old {
            if !next.contains_key(key) {
                self.retire(run, now).await;
            }
        }
        *self.groups.lock() = next;
        Ok(())
    }

    /// A group's saved instance states (empty when none or unreadable).
    async fn restore(&self, tenant: &TenantId, group: &str) -> BTreeMap<String, RuleState> {
        match self.docs().get_doc(tenant, RULE_STATE_KIND, group).await {
            Ok(Some(doc)) => serde_json::from_str(&doc.body).unwrap_or_else(|e| {
                warn!(tenant = %tenant, group, error = %e, "saved rule state unreadable; starting afresh");
                BTreeMap::new()
            }),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                warn!(tenant = %tenant, group, error = %e, "cannot read saved rule state");
                BTreeMap::new()
            }
        }
    }

    /// A deleted group: its firing instances end now.
    async fn retire(&self, run: &GroupRun, now: Nanos) {
        let state = run.state.lock().await;
        run.retired.store(true, Ordering::SeqCst);
        let mut alerts = Vec::new();
        let mut rows = Vec::new();
        for instance in state.values().flat_map(|s| s.instances.values()) {
            if instance.state == InstanceState::Firing {
                alerts.push(Alert {
                    labels: instance.labels.clone(),
                    annotations: instance.annotations.clone(),
                    starts_at: instance.fired_at.unwrap_or(instance.active_at),
                    ends_at: Some(now),
                    updated_at: now,
                    generator_url: String::new(),
                    source: AlertSource::Rule,
                    value: Some(instance.value),
                });
                rows.push(history_row(
                    &run.tenant,
                    now,
                    &instance.labels,
                    &instance.annotations,
                    Change::Resolved,
                    Some(instance.value),
                ));
            }
        }
        if !alerts.is_empty() {
            self.sink.receive(run.tenant.as_str(), alerts, now);
        }
        if let Err(e) = self.docs().append_history(&rows).await {
            warn!(tenant = %run.tenant, error = %e, "cannot append alert history");
        }
        let name = &run.stored.group.name;
        if let Err(e) = (self.docs())
            .delete_doc(&run.tenant, RULE_STATE_KIND, name, None)
            .await
        {
            warn!(tenant = %run.tenant, group = %name, error = %e, "cannot delete rule state");
        }
        self.store.forget_status(&run.tenant, name);
    }

    /// The groups due at `now` (not already running), as (tenant, group name).
    pub fn due(&self, now: Nanos) -> Vec<(TenantId, String)> {
        (self.groups.lock().values())
            .filter(|r| {
                r.next_due.load(Ordering::SeqCst) <= now && !r.running.load(Ordering::SeqCst)
            })
            .map(|r| (r.tenant.clone(), r.stored.group.name.clone()))
            .collect()
    }

    /// When the next group is due.
    pub fn next_due(&self) -> Option<Nanos> {
        (self.groups.lock().values())
            .map(|r| r.next_due.load(Ordering::SeqCst))
            .min()
    }

    /// When group `name` of `tenant` is due next.
    pub fn group_due(&self, tenant: &TenantId, name: &str) -> Option<Nanos> {
        (self.groups.lock())
            .get(&(tenant.as_str().to_string(), name.to_string()))
            .map(|r| r.next_due.load(Ordering::SeqCst))
    }

    /// Starts evaluating every group due at `now` on the scheduler's runtime, and schedules
    /// each for its next slot after `now`. Returns the evaluations' handles.
    pub fn start_due(self: &Arc<Self>, now: Nanos) -> Vec<tokio::task::JoinHandle<()>> {
        let due: Vec<Arc<GroupRun>> = (self.groups.lock().values())
            .filter(|r| r.next_due.load(Ordering::SeqCst) <= now)
            .filter(|r| !r.running.swap(true, Ordering::SeqCst))
            .cloned()
            .collect();
        due.into_iter()
            .map(|run| {
                let interval = run.stored.group.interval();
                run.next_due
                    .store(next_slot(now + 1, interval, run.offset), Ordering::SeqCst);
                let this = self.clone();
                self.runtime.spawn(async move {
                    // The state first: a reload waits for an evaluation that was started.
                    let mut state = run.state.lock().await;
                    let permit = this.permits.clone().acquire_owned().await;
                    if !run.retired.load(Ordering::SeqCst) {
                        this.evaluate_group(&run, &mut state, now).await;
                    }
                    drop(permit);
                    run.running.store(false, Ordering::SeqCst);
                })
            })
            .collect()
    }

    /// Evaluates every group due at `now` and waits for them; returns how many ran.
    pub async fn evaluate_due(self: &Arc<Self>, now: Nanos) -> usize {
        let handles = self.start_due(now);
        let n = handles.len();
        for handle in handles {
            if let Err(e) = handle.await {
                warn!(error = %e, "rule evaluation task failed");
            }
        }
        n
    }

    async fn evaluate_group(
        &self,
        run: &GroupRun,
        state: &mut BTreeMap<String, RuleState>,
        now: Nanos,
    ) {
        let group: &RuleGroup = &run.stored.group;
        let timeout = self.config.eval_timeout.min(group.interval());
        let mut alerts = Vec::new();
        let mut rows = Vec::new();
        let mut changed = false;
        for rule in &group.rules {
            let sql = rule.evaluated_sql();
            let started = Instant::now();
            let result =
                match tokio::time::timeout(timeout, self.querier.query(&run.tenant, &sql)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "the rule's query ran longer than {} and was cancelled",
                        crate::time::format_duration(timeout)
                    )),
                };
            let took = started.elapsed();
            let rule_state = state.entry(rule.alert.clone()).or_default();
            let eval = rule_state.evaluate(
                rule,
                result.as_deref().map_err(Clone::clone),
                EvalAt {
                    now,
                    interval: group.interval(),
                    took,
                },
            );
            if let Some(error) = &rule_state.status.last_error {
                debug!(tenant = %run.tenant, group = %group.name, rule = %rule.alert, error = %error, "rule unhealthy");
            }
            changed |= eval.changed;
            alerts.extend(eval.alerts);
            rows.extend(eval.changes.iter().map(|c| {
                history_row(
                    &run.tenant,
                    c.time,
                    &c.labels,
                    &c.annotations,
                    c.change,
                    c.value,
                )
            }));
        }
        if !alerts.is_empty() {
            self.sink.receive(run.tenant.as_str(), alerts, now);
        }
        if let Err(e) = self.docs().append_history(&rows).await {
            warn!(tenant = %run.tenant, group = %group.name, error = %e, "cannot append alert history");
        }
        if changed {
            match serde_json::to_string(&state) {
                Ok(body) => {
                    let doc = Doc {
                        tenant: run.tenant.clone(),
                        kind: RULE_STATE_KIND.into(),
                        id: group.name.clone(),
                        body,
                        updated_at: now,
                    };
                    if let Err(e) = self.docs().put_doc(&doc, None).await {
                        warn!(tenant = %run.tenant, group = %group.name, error = %e, "cannot save rule state");
                    }
                }
                Err(e) => warn!(error = %e, "cannot encode rule state"),
            }
        }
        let status = (group.rules.iter())
            .filter_map(|r| {
                state
                    .get(&r.alert)
                    .map(|s| (r.alert.clone(), s.status.clone(), s.counts()))
            })
            .collect();
        self.store.record_status(&run.tenant, &group.name, status);
    }

    /// Evaluates groups as they fall due, reloading when the store changes, until `shutdown`
    /// completes. Loads the groups (and restores their states) first.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let mut changes = self.store.subscribe();
        if let Err(e) = self.reload().await {
            warn!(error = %e, "cannot load rule groups");
        }
        tokio::pin!(shutdown);
        loop {
            let now = self.clock.now();
            self.start_due(now);
            // Wake at the next due time; at least every 10 s in case the clock jumps.
            let wait = self
                .next_due()
                .map_or(Duration::from_secs(10), |due| {
                    Duration::from_nanos(u64::try_from(due - now).unwrap_or(0))
                })
                .min(Duration::from_secs(10));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if let Err(e) = self.reload().await {
                        warn!(error = %e, "cannot reload rule groups");
                    }
                }
            }
        }
    }
}

fn run_of(
    tenant: TenantId,
    stored: StoredGroup,
    offset: Nanos,
    next_due: Nanos,
    state: BTreeMap<String, RuleState>,
) -> GroupRun {
    GroupRun {
        tenant,
        stored,
        offset,
        next_due: AtomicI64::new(next_due),
        running: AtomicBool::new(false),
        retired: AtomicBool::new(false),
        state: tokio::sync::Mutex::new(state),
    }
}

fn history_row(
    tenant: &TenantId,
    time: Nanos,
    labels: &crate::model::Labels,
    annotations: &crate::model::Labels,
    change: Change,
    value: Option<f64>,
) -> AlertHistoryRow {
    AlertHistoryRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.clone(),
        time,
        alertname: labels.get(ALERTNAME).cloned().unwrap_or_default(),
        fingerprint: crate::model::Fingerprint::of(labels).to_string(),
        state: change.as_str().to_string(),
        value,
        labels: serde_json::to_string(labels).unwrap_or_default(),
        annotations: serde_json::to_string(annotations).unwrap_or_default(),
        source: AlertSource::Rule.as_str().to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
