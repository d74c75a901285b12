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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_alert::{AlertSink, Alerter, AlerterConfig, Clock, SystemClock};
use strata_query::QueryEngine;
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
}

/// A node's alerting.
pub struct Alerting {
    pub alerter: Arc<Alerter>,
    pub store: Arc<dyn DocStore>,
    pub clock: Arc<dyn Clock>,
    config_path: Option<PathBuf>,
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
        let alerter = Arc::new(Alerter::new(alerter_config)?);
        alerter.restore(store.as_ref(), clock.now()).await?;
        let (stop, stop_rx) = watch::channel(false);
        let alerting = Arc::new(Self {
            alerter,
            store,
            clock,
            config_path: config.alerter_config.clone(),
            external_url: config.external_url.clone(),
            stop,
            tasks: parking_lot::Mutex::new(Vec::new()),
        });
        let tasks = vec![
            tokio::spawn(alerting.clone().run_ticks(stop_rx.clone())),
            tokio::spawn(alerting.clone().run_service_graphs(
                engine,
                config.service_graph_window,
                stop_rx,
            )),
        ];
        alerting.tasks.lock().extend(tasks);
        Ok(alerting)
    }

    /// Reads the alerter file again and applies it; an invalid file is refused with the
    /// reason and the configuration in force is kept.
    pub async fn reload(&self) -> Result<(), String> {
        let config = load_config(self.config_path.as_deref(), self.external_url.as_deref())
            .map_err(|e| e.to_string())?;
        self.alerter
            .reload(config, self.clock.now())
            .map_err(|e| e.to_string())?;
        tracing::info!(file = ?self.config_path, "alerter configuration reloaded");
        Ok(())
    }

    /// Alerts received through `POST /api/v2/alerts`.
    pub fn receive(&self, tenant: &TenantId, alerts: Vec<strata_alert::Alert>) {
        self.alerter
            .receive(tenant.as_str(), alerts, self.clock.now());
    }

    /// Stops the loops and saves the state one last time.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        self.persist().await;
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
            let notifications = self.alerter.tick(now);
            let sent = !notifications.is_empty();
            for notification in notifications {
                tracing::info!(
                    tenant = %notification.tenant,
                    receiver = %notification.receiver,
                    group = %notification.group_key,
                    status = notification.status.as_str(),
                    id = %notification.id,
                    "notification"
                );
            }
            if sent || now - last_persist >= strata_alert::time::nanos(PERSIST_EVERY) {
                self.persist().await;
                last_persist = now;
            }
        }
    }

    /// Derives the service graph of every tenant with alerts, for correlation: within a
    /// second of a tenant's first alert, then every [`GRAPH_EVERY`].
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
