//! Alerting on a node: the rule scheduler, the alerter, the notifiers and the service graph,
//! wired to the query engine and the catalog (docs/ALERTING.md).
//!
//! ```text
//! rule scheduler ─► Alerter ◄─ POST /api/v2/alerts
//!                      │ tick (every TICK)
//!                      ▼
//!                 notification outbox (catalog) ─► notifier ─► webhooks, PagerDuty
//! ```
//!
//! Order is what makes restarts safe: each notification the alerter produces is written to
//! the outbox (idempotently, by its deterministic id) *before* the alerter's state is saved,
//! so a crash in between re-creates the same notification, which the outbox already holds:
//! no page is lost and none is sent twice.

pub mod api;
pub mod graph;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_alert::notify::{Notifier, Outbox, SharedConfig};
use strata_alert::rule_store::RuleStore;
use strata_alert::rules::{RuleError, load_rules};
use strata_alert::scheduler::{RuleQuerier, Scheduler, SchedulerConfig};
use strata_alert::{
    Alert, AlertSink, AlertSource, Alerter, AlerterConfig, Clock, Fingerprint, Nanos, Notification,
    SystemClock,
};
use strata_query::QueryEngine;
use strata_storage::AlertHistoryRow;
use strata_storage::{DocStore, TenantId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Config;

/// How often the alerter's timers are checked.
pub const TICK: Duration = Duration::from_millis(200);
/// How often the alerter's state is saved when nothing was sent.
pub const PERSIST_EVERY: Duration = Duration::from_secs(5);
/// How often the service graphs of tenants with alerts are derived again.
pub const GRAPH_EVERY: Duration = Duration::from_secs(30);

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("alerter configuration: {0}")]
    Config(#[from] strata_alert::ConfigError),
    #[error("alerter state: {0}")]
    State(#[from] strata_alert::AlerterError),
    #[error("alert rules: {0}")]
    Rules(#[from] RuleError),
}

/// A node's alerting.
pub struct Alerting {
    pub alerter: Arc<Alerter>,
    pub rules: Arc<RuleStore>,
    pub outbox: Arc<Outbox>,
    pub store: Arc<dyn DocStore>,
    pub clock: Arc<dyn Clock>,
    /// Receivers and delivery settings the notifier reads at each attempt.
    notify_config: Arc<SharedConfig>,
    /// Notifications the tick could not write to the outbox yet (the catalog failed): written
    /// first at the next tick; the alerter's state is not saved while any wait.
    unsent: tokio::sync::Mutex<Vec<Notification>>,
    rules_path: Option<PathBuf>,
    config_path: Option<PathBuf>,
    /// False with `--alerting false`: nothing runs, and the state is never saved from here.
    enabled: bool,
    /// Woken when alerts arrive, so a tenant's service graph is derived as soon as it has
    /// alerts (before its groups are notified and correlated).
    graph_wake: Arc<tokio::sync::Notify>,
    /// The intake's alerts last seen firing, per tenant: their history rows are written when
    /// they appear and when they resolve (explicitly or by timeout).
    intake_firing: parking_lot::Mutex<HashMap<String, HashMap<Fingerprint, Alert>>>,
    external_url: Option<String>,
    stop: watch::Sender<bool>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// Reads and validates the alerter file (the default configuration without one); the node's
/// `--external-url` replaces the file's `delivery.external_url`.
pub fn load_config(
    path: Option<&std::path::Path>,
    external_url: Option<&str>,
) -> Result<AlerterConfig, strata_alert::ConfigError> {
    let mut config = match path {
        Some(path) => AlerterConfig::load(path)?,
        None => AlerterConfig::default(),
    };
    if let Some(url) = external_url {
        config.delivery.external_url = url.to_string();
    }
    Ok(config)
}

impl Alerting {
    /// Loads the configuration, restores the saved state and starts the loops.
    pub async fn start(
        config: &Config,
        engine: Arc<QueryEngine>,
        store: Arc<dyn DocStore>,
    ) -> Result<Arc<Self>, AlertingError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let alerter_config = load_config(
            config.alerter_config.as_deref(),
            config.external_url.as_deref(),
        )?;
        let notify_config = Arc::new(SharedConfig::new(
            alerter_config.receivers.clone(),
            alerter_config.delivery.clone(),
        ));
        let alerter = Arc::new(Alerter::new(alerter_config)?);
        alerter.restore(store.as_ref(), clock.now()).await?;
        let querier: Arc<dyn RuleQuerier> = engine.clone();
        let mut rules = RuleStore::new(store.clone(), querier.clone(), clock.clone());
        if let Some(path) = &config.rules {
            rules = rules.with_file_groups(load_rules(path)?);
        }
        let rules = Arc::new(rules);
        let outbox = Arc::new(Outbox::new(store.clone(), clock.clone()));
        let (stop, stop_rx) = watch::channel(false);
        let graph_wake = Arc::new(tokio::sync::Notify::new());
        let sink = Arc::new(WakingSink {
            alerter: alerter.clone(),
            wake: graph_wake.clone(),
        });
        let scheduler = Scheduler::new(
            rules.clone(),
            querier,
            sink,
            clock.clone(),
            tokio::runtime::Handle::current(),
            SchedulerConfig::default(),
        );
        let notifier = Notifier::new(outbox.clone(), notify_config.clone(), clock.clone());
        let alerting = Arc::new(Self {
            alerter,
            rules,
            outbox,
            store,
            clock,
            notify_config,
            unsent: tokio::sync::Mutex::new(Vec::new()),
            rules_path: config.rules.clone(),
            config_path: config.alerter_config.clone(),
            enabled: config.alerting,
            graph_wake,
            intake_firing: parking_lot::Mutex::new(HashMap::new()),
            external_url: config.external_url.clone(),
            stop,
            tasks: parking_lot::Mutex::new(Vec::new()),
        });
        if !config.alerting {
            tracing::info!(
                "alerting is off on this node (--alerting false): no rule evaluation, \
                 notifications or deliveries here"
            );
            return Ok(alerting);
        }
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let tasks = vec![
            tokio::spawn(scheduler.run(stopped(stop_rx.clone()))),
            tokio::spawn({
                let stop = stopped(stop_rx.clone());
                async move { notifier.run(stop).await }
            }),
            tokio::spawn(alerting.clone().run_ticks(stop_rx.clone())),
            tokio::spawn(alerting.clone().run_service_graphs(
                engine,
                config.service_graph_window,
                stop_rx,
            )),
        ];
        alerting.tasks.lock().extend(tasks);
        // Alerts restored from the saved state were recorded before the restart.
        let now = alerting.clock.now();
        *alerting.intake_firing.lock() = alerting.intake_snapshot(now);
        Ok(alerting)
    }

    /// Reads the alerter file and the rule files again and applies them. Both are read and
    /// validated before either is applied: if one is invalid, it is refused with the reason
    /// and the configuration in force is kept whole.
    pub async fn reload(&self) -> Result<(), String> {
        let config = load_config(self.config_path.as_deref(), self.external_url.as_deref())
            .map_err(|e| format!("alerter configuration: {e}"))?;
        let rules = (self.rules_path.as_deref())
            .map(load_rules)
            .transpose()
            .map_err(|e| format!("alert rules: {e}"))?;
        let (receivers, delivery) = (config.receivers.clone(), config.delivery.clone());
        self.alerter
            .reload(config, self.clock.now())
            .map_err(|e| format!("alerter configuration: {e}"))?;
        self.notify_config.replace(receivers, delivery);
        if let Some(groups) = rules {
            self.rules.replace_file_groups(groups);
        }
        tracing::info!(
            alerter_config = ?self.config_path, rules = ?self.rules_path, "alerting reloaded"
        );
        Ok(())
    }

    /// Whether this node runs alerting (`--alerting`).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Alerts received through `POST /api/v2/alerts`.
    pub fn receive(&self, tenant: &TenantId, alerts: Vec<strata_alert::Alert>) {
        self.alerter
            .receive(tenant.as_str(), alerts, self.clock.now());
        self.graph_wake.notify_one();
    }

    /// Stops the loops and saves the state one last time.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        if self.enabled {
            self.persist().await;
        }
    }

    async fn persist(&self) {
        if let Err(e) = self
            .alerter
            .persist(self.store.as_ref(), self.clock.now())
            .await
        {
            tracing::error!(error = %e, "cannot save the alerter state");
        }
    }

    /// Runs the alerter's timers: what is due goes to the outbox, then the state is saved.
    async fn run_ticks(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_persist = self.clock.now();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let now = self.clock.now();
            let mut unsent = self.unsent.lock().await;
            unsent.extend(self.alerter.tick(now));
            let sent = !unsent.is_empty();
            let mut failed = Vec::new();
            for notification in unsent.drain(..) {
                if !self.enqueue(&notification).await {
                    failed.push(notification);
                }
            }
            *unsent = failed;
            self.record_intake_changes(now).await;
            // The state is saved only once everything it has sent is in the outbox.
            if unsent.is_empty()
                && (sent || now - last_persist >= strata_alert::time::nanos(PERSIST_EVERY))
            {
                self.persist().await;
                last_persist = now;
            }
        }
    }

    /// The firing alerts of the intake the alerter holds, per tenant.
    fn intake_snapshot(&self, now: Nanos) -> HashMap<String, HashMap<Fingerprint, Alert>> {
        let mut all = HashMap::new();
        for tenant in self.alerter.tenants() {
            let firing: HashMap<Fingerprint, Alert> = (self.alerter.alerts(&tenant, now))
                .into_iter()
                .filter(|a| a.alert.source == AlertSource::Api && !a.alert.is_resolved(now))
                .map(|a| (a.fingerprint, a.alert))
                .collect();
            if !firing.is_empty() {
                all.insert(tenant, firing);
            }
        }
        all
    }

    /// Writes `firing` and `resolved` history rows for the intake's alerts that started or
    /// stopped firing since the last call (rules write their own).
    async fn record_intake_changes(&self, now: Nanos) {
        let current = self.intake_snapshot(now);
        let mut rows = Vec::new();
        {
            let mut seen = self.intake_firing.lock();
            for (tenant, firing) in &current {
                let before = seen.get(tenant);
                for (fp, alert) in firing {
                    if before.is_none_or(|b| !b.contains_key(fp)) {
                        rows.extend(history_row(tenant, alert, "firing", alert.starts_at));
                    }
                }
            }
            for (tenant, before) in seen.iter() {
                let after = current.get(tenant);
                for (fp, alert) in before {
                    if after.is_none_or(|a| !a.contains_key(fp)) {
                        rows.extend(history_row(tenant, alert, "resolved", now));
                    }
                }
            }
            *seen = current;
        }
        if let Err(e) = self.store.append_history(&rows).await {
            tracing::error!(error = %e, rows = rows.len(), "cannot write alert history");
        }
    }

    /// Writes a notification to the outbox; false if it must be tried again.
    async fn enqueue(&self, n: &Notification) -> bool {
        let config = self.alerter.config();
        let Some(receiver) = config.receivers.iter().find(|r| r.name == n.receiver) else {
            // Only a reload between the tick and here can remove it.
            tracing::warn!(receiver = %n.receiver, id = %n.id, "notification to an unknown receiver dropped");
            return true;
        };
        match self.outbox.enqueue(n, receiver).await {
            Ok(ids) => {
                if !ids.is_empty() {
                    tracing::info!(
                        tenant = %n.tenant,
                        receiver = %n.receiver,
                        group = %n.group_key,
                        status = n.status.as_str(),
                        id = %n.id,
                        "notification queued"
                    );
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, id = %n.id, "cannot queue a notification; retrying");
                false
            }
        }
    }

    /// Derives the service graph of every tenant with alerts, for correlation: as soon as a
    /// tenant has alerts, then every [`GRAPH_EVERY`].
    async fn run_service_graphs(
        self: Arc<Self>,
        engine: Arc<QueryEngine>,
        window: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut derived: std::collections::HashMap<String, tokio::time::Instant> =
            std::collections::HashMap::new();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.graph_wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let tenants = self.alerter.tenants();
            derived.retain(|tenant, _| tenants.contains(tenant));
            for tenant in tenants {
                if derived
                    .get(&tenant)
                    .is_some_and(|at| at.elapsed() < GRAPH_EVERY)
                {
                    continue;
                }
                derived.insert(tenant.clone(), tokio::time::Instant::now());
                let Ok(id) = TenantId::new(&tenant) else {
                    continue;
                };
                match graph::service_graph(&engine, &id, window).await {
                    Ok(edges) => self.alerter.set_service_graph(&tenant, edges),
                    Err(e) => {
                        tracing::warn!(%tenant, error = %e, "cannot derive the service graph")
                    }
                }
            }
        }
    }
}

/// The rule scheduler's sink: the alerter, and a wake-up for the service-graph loop.
struct WakingSink {
    alerter: Arc<Alerter>,
    wake: Arc<tokio::sync::Notify>,
}

impl AlertSink for WakingSink {
    fn receive(&self, tenant: &str, alerts: Vec<Alert>, now: Nanos) {
        let any = !alerts.is_empty();
        self.alerter.receive(tenant, alerts, now);
        if any {
            self.wake.notify_one();
        }
    }
}

/// A history row of an intake alert.
fn history_row(tenant: &str, alert: &Alert, state: &str, time: Nanos) -> Option<AlertHistoryRow> {
    Some(AlertHistoryRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: TenantId::new(tenant).ok()?,
        time,
        alertname: alert.name().to_string(),
        fingerprint: alert.fingerprint().to_string(),
        state: state.to_string(),
        value: None,
        labels: serde_json::to_string(&alert.labels).unwrap_or_default(),
        annotations: serde_json::to_string(&alert.annotations).unwrap_or_default(),
        source: AlertSource::Api.as_str().to_string(),
    })
}
