//! The alerter: receives alerts per tenant, routes and groups them, applies silences,
//! inhibition and time intervals, correlates them into incidents, escalates, and hands out
//! the notifications due at each [`Alerter::tick`].
//!
//! All state is per tenant (alerts, groups, silences, incidents, service graph); the
//! configuration is shared. Nothing runs on its own: the server calls `tick(now)` on a timer,
//! writes the notifications to its outbox (keyed by their deterministic ids), then calls
//! [`Alerter::persist`]. A crash between the two re-generates the same ids after
//! [`Alerter::restore`], so the outbox deduplicates them.
//!
//! Alerts received without `ends_at` from the API resolve [`RESOLVE_TIMEOUT`] after they were
//! received unless re-sent (Alertmanager's `resolve_timeout`); alerts from rules keep no end
//! until the rule sends their resolution. Of two versions of an alert, the newest
//! `updated_at` wins.
//!
//! Audited changes: the `*_audited` async methods apply a user's silence or incident change
//! and write the changed document with its audit row (actions [`SILENCE_CREATE`],
//! [`SILENCE_UPDATE`], [`SILENCE_EXPIRE`], [`INCIDENT_ACKNOWLEDGE`], [`INCIDENT_RESOLVE`]) in
//! one transaction. Notifications caused by an API resolution (to the receivers that were
//! paged) are returned by the next `tick`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use strata_storage::{Actor, AuditEvent, Doc, DocStore, Outcome, TenantId};

use crate::config::{AlerterConfig, Compiled, ConfigError};
use crate::dispatch::{Group, NotifyLog, group_key, needs_update, notification_id};
use crate::incident::{
    EscalationState, Incident, IncidentAlert, IncidentError, IncidentStatus, ServiceGraph,
    TimelineEvent,
};
use crate::inhibit::Inhibitor;
use crate::matchers::format_matchers;
use crate::model::{
    Alert, AlertSink, AlertSource, Fingerprint, Labels, Notification, NotificationKind, Status,
};
use crate::silence::{Silence, SilenceError, SilenceSpec, SilenceState};
use crate::time::{Nanos, nanos};

/// How long an API alert without `ends_at` stays firing without being re-sent.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most alerts held per tenant; further new alerts are dropped (with a warning).
pub const MAX_ALERTS_PER_TENANT: usize = 50_000;
/// Resolved incidents and expired silences are forgotten after this long.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

pub const SILENCE_CREATE: &str = "silence.create";
pub const SILENCE_UPDATE: &str = "silence.update";
pub const SILENCE_EXPIRE: &str = "silence.expire";
pub const INCIDENT_ACKNOWLEDGE: &str = "incident.acknowledge";
pub const INCIDENT_RESOLVE: &str = "incident.resolve";

/// Document kinds written by [`Alerter::persist`].
pub const KIND_ALERTS: &str = "alerter_alerts";
pub const KIND_PENDING: &str = "alerter_pending";
pub const KIND_GROUP: &str = "alert_group";
pub const KIND_SILENCE: &str = "silence";
/// The same kind the `incidents` SQL table reads (`strata_query::incidents::INCIDENT_DOC_KIND`,
/// a literal here so the crate builds without the engine; a test checks they agree).
pub const KIND_INCIDENT: &str = "incident";

/// Errors of silence operations, audited operations and persistence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlerterError {
    #[error("silence {0} not found")]
    SilenceNotFound(String),
    #[error("silence {0} is expired")]
    SilenceExpired(String),
    #[error(transparent)]
    InvalidSilence(#[from] SilenceError),
    #[error(transparent)]
    Incident(#[from] IncidentError),
    #[error("alerting state store: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> AlerterError {
    AlerterError::Storage(e.to_string())
}

/// An alert's state for `GET /api/v1/alerts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Active,
    Suppressed,
}

/// One alert with what the alerter does with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStatus {
    pub fingerprint: Fingerprint,
    pub alert: Alert,
    pub state: AlertState,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<Fingerprint>,
    pub receivers: Vec<String>,
    pub incident: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TenantState {
    alerts: BTreeMap<Fingerprint, Alert>,
    groups: BTreeMap<String, Group>,
    silences: BTreeMap<String, Silence>,
    incidents: BTreeMap<String, Incident>,
    /// Notifications due at the next tick (incidents resolved by the API).
    pending: Vec<Notification>,
}

#[derive(Debug)]
struct Inner {
    config: AlerterConfig,
    compiled: Arc<Compiled>,
    tenants: BTreeMap<String, TenantState>,
    graphs: BTreeMap<String, ServiceGraph>,
}

/// The alerter (see the module documentation).
#[derive(Debug)]
pub struct Alerter {
    inner: Mutex<Inner>,
    /// The store last saved to (its address) and a hash of each document's body as saved
    /// there by [`Alerter::persist`]: unchanged documents are not written again.
    saved: tokio::sync::Mutex<(usize, SavedHashes)>,
}

impl Alerter {
    /// An alerter with `config` (validated again here).
    pub fn new(config: AlerterConfig) -> Result<Self, ConfigError> {
        let compiled = Arc::new(config.compile()?);
        Ok(Self {
            inner: Mutex::new(Inner {
                config,
                compiled,
                tenants: BTreeMap::new(),
                graphs: BTreeMap::new(),
            }),
            saved: tokio::sync::Mutex::new((0, HashMap::new())),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> AlerterConfig {
        self.inner.lock().config.clone()
    }

    /// Replaces the configuration, keeping alerts, groups (by key, with their logs and
    /// timers), silences and incidents; alerts are routed again.
    pub fn reload(&self, config: AlerterConfig, now: Nanos) -> Result<(), ConfigError> {
        let compiled = Arc::new(config.compile()?);
        let mut inner = self.inner.lock();
        inner.config = config;
        inner.compiled = compiled.clone();
        for st in inner.tenants.values_mut() {
            regroup(&compiled, st, now);
        }
        Ok(())
    }

    /// The tenants the alerter holds alerts of, in name order.
    pub fn tenants(&self) -> Vec<String> {
        let inner = self.inner.lock();
        (inner.tenants.iter())
            .filter(|(_, st)| !st.alerts.is_empty())
            .map(|(tenant, _)| tenant.clone())
            .collect()
    }

    /// Sets a tenant's service graph (caller→callee edges), used for correlation and
    /// root causes.
    pub fn set_service_graph(&self, tenant: &str, edges: Vec<(String, String)>) {
        self.inner
            .lock()
            .graphs
            .insert(tenant.to_string(), ServiceGraph::new(edges));
    }

    /// Everything due at `now`: group notifications, escalation pages, incident
    /// resolutions. Tenants in name order, groups in key order.
    pub fn tick(&self, now: Nanos) -> Vec<Notification> {
        let mut inner = self.inner.lock();
        let Inner {
            compiled,
            tenants,
            graphs,
            ..
        } = &mut *inner;
        let empty = ServiceGraph::default();
        let mut out = Vec::new();
        for (tenant, st) in tenants.iter_mut() {
            let graph = graphs.get(tenant).unwrap_or(&empty);
            out.append(&mut st.pending);
            let inhibitor = Inhibitor::new(&compiled.inhibit, &st.alerts, now);
            let due: Vec<String> = (st.groups.values())
                .filter(|g| g.next_flush <= now)
                .map(|g| g.key.clone())
                .collect();
            for key in due {
                flush_group(compiled, graph, &inhibitor, tenant, st, &key, now, &mut out);
            }
            maintain_incidents(compiled, graph, &inhibitor, tenant, st, now, &mut out);
            // Forget resolved alerts no group holds, and old silences and incidents.
            let held: BTreeSet<Fingerprint> = (st.groups.values())
                .flat_map(|g| g.alerts.iter().copied())
                .collect();
            st.alerts
                .retain(|fp, a| !a.is_resolved(now) || held.contains(fp));
            let horizon = now.saturating_sub(nanos(RETENTION));
            st.silences.retain(|_, s| s.ends_at > horizon);
            st.incidents
                .retain(|_, i| i.resolved_at.is_none_or(|t| t > horizon));
        }
        out
    }

    /// Every active (not resolved) alert of a tenant, by fingerprint.
    pub fn alerts(&self, tenant: &str, now: Nanos) -> Vec<AlertStatus> {
        let inner = self.inner.lock();
        let Some(st) = inner.tenants.get(tenant) else {
            return Vec::new();
        };
        let c = &inner.compiled;
        let inhibitor = Inhibitor::new(&c.inhibit, &st.alerts, now);
        (st.alerts.iter())
            .filter(|(_, a)| !a.is_resolved(now))
            .map(|(fp, a)| {
                let silenced = silenced_by(st, a, now);
                let inhibited = inhibitor.inhibited_by(a);
                let mut receivers: Vec<String> = (c.route.routes_for(&a.labels).iter())
                    .map(|r| r.receiver.clone())
                    .collect();
                receivers.sort();
                receivers.dedup();
                let incident = (st.incidents.values())
                    .find(|i| !i.is_resolved() && i.alerts.contains_key(fp))
                    .map(|i| i.id.clone());
                AlertStatus {
                    fingerprint: *fp,
                    alert: a.clone(),
                    state: if silenced.is_empty() && inhibited.is_empty() {
                        AlertState::Active
                    } else {
                        AlertState::Suppressed
                    },
                    silenced_by: silenced,
                    inhibited_by: inhibited,
                    receivers,
                    incident,
                }
            })
            .collect()
    }

    // ---- silences ----

    /// A tenant's silences (pending, active and recently expired), by id.
    pub fn silences(&self, tenant: &str) -> Vec<Silence> {
        let inner = self.inner.lock();
        (inner.tenants.get(tenant))
            .map(|st| st.silences.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn silence(&self, tenant: &str, id: &str) -> Option<Silence> {
        let inner = self.inner.lock();
        inner.tenants.get(tenant)?.silences.get(id).cloned()
    }

    /// Creates a silence with a new UUIDv7 id.
    pub fn create_silence(
        &self,
        tenant: &str,
        spec: SilenceSpec,
        now: Nanos,
    ) -> Result<Silence, AlerterError> {
        spec.validate(now)?;
        let silence = Silence {
            id: uuid::Uuid::now_v7().to_string(),
            matchers: spec.matchers,
            starts_at: spec.starts_at,
            ends_at: spec.ends_at,
            created_by: spec.created_by,
            comment: spec.comment,
            updated_at: now,
        };
        let mut inner = self.inner.lock();
        let st = inner.tenants.entry(tenant.to_string()).or_default();
        st.silences.insert(silence.id.clone(), silence.clone());
        Ok(silence)
    }

    /// Replaces a pending or active silence's matchers, times, creator and comment; an
    /// active silence keeps its start (a silence cannot be moved to start later once it
    /// muted alerts).
    pub fn update_silence(
        &self,
        tenant: &str,
        id: &str,
        spec: SilenceSpec,
        now: Nanos,
    ) -> Result<Silence, AlerterError> {
        spec.validate(now)?;
        let mut inner = self.inner.lock();
        let silence = (inner.tenants.get_mut(tenant))
            .and_then(|st| st.silences.get_mut(id))
            .ok_or_else(|| AlerterError::SilenceNotFound(id.to_string()))?;
        let state = silence.state(now);
        if state == SilenceState::Expired {
            return Err(AlerterError::SilenceExpired(id.to_string()));
        }
        if state == SilenceState::Pending {
            silence.starts_at = spec.starts_at;
        }
        silence.matchers = spec.matchers;
        silence.ends_at = spec.ends_at;
        silence.created_by = spec.created_by;
        silence.comment = spec.comment;
        silence.updated_at = now;
        Ok(silence.clone())
    }

    /// Ends a pending or active silence now.
    pub fn expire_silence(
        &self,
        tenant: &str,
        id: &str,
        now: Nanos,
    ) -> Result<Silence, AlerterError> {
        let mut inner = self.inner.lock();
        let silence = (inner.tenants.get_mut(tenant))
            .and_then(|st| st.silences.get_mut(id))
            .ok_or_else(|| AlerterError::SilenceNotFound(id.to_string()))?;
        match silence.state(now) {
            SilenceState::Expired => return Err(AlerterError::SilenceExpired(id.to_string())),
            SilenceState::Pending => silence.starts_at = now,
            SilenceState::Active => {}
        }
        silence.ends_at = now;
        silence.updated_at = now;
        Ok(silence.clone())
    }

    pub async fn create_silence_audited(
        &self,
        store: &dyn DocStore,
        tenant: &str,
        spec: SilenceSpec,
        by: &Actor,
        now: Nanos,
    ) -> Result<Silence, AlerterError> {
        let s = self.create_silence(tenant, spec, now)?;
        write_silence(store, tenant, &s, by, SILENCE_CREATE, now).await?;
        Ok(s)
    }

    pub async fn update_silence_audited(
        &self,
        store: &dyn DocStore,
        tenant: &str,
        id: &str,
        spec: SilenceSpec,
        by: &Actor,
        now: Nanos,
    ) -> Result<Silence, AlerterError> {
        let s = self.update_silence(tenant, id, spec, now)?;
        write_silence(store, tenant, &s, by, SILENCE_UPDATE, now).await?;
        Ok(s)
    }

    pub async fn expire_silence_audited(
        &self,
        store: &dyn DocStore,
        tenant: &str,
        id: &str,
        by: &Actor,
        now: Nanos,
    ) -> Result<Silence, AlerterError> {
        let s = self.expire_silence(tenant, id, now)?;
        write_silence(store, tenant, &s, by, SILENCE_EXPIRE, now).await?;
        Ok(s)
    }

    // ---- incidents ----

    /// A tenant's incidents, newest first.
    pub fn incidents(&self, tenant: &str) -> Vec<Incident> {
        let inner = self.inner.lock();
        let mut list: Vec<Incident> = (inner.tenants.get(tenant))
            .map(|st| st.incidents.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by(|a, b| (b.opened_at, &b.id).cmp(&(a.opened_at, &a.id)));
        list
    }

    pub fn incident(&self, tenant: &str, id: &str) -> Result<Incident, IncidentError> {
        let inner = self.inner.lock();
        (inner.tenants.get(tenant))
            .and_then(|st| st.incidents.get(id))
            .cloned()
            .ok_or_else(|| IncidentError::NotFound(id.to_string()))
    }

    /// Acknowledges an open incident: its escalation stops.
    pub fn acknowledge(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
        now: Nanos,
    ) -> Result<Incident, IncidentError> {
        let mut inner = self.inner.lock();
        let inc = (inner.tenants.get_mut(tenant))
            .and_then(|st| st.incidents.get_mut(id))
            .ok_or_else(|| IncidentError::NotFound(id.to_string()))?;
        if inc.status != IncidentStatus::Open {
            return Err(IncidentError::Conflict {
                id: id.to_string(),
                status: inc.status.as_str(),
                action: "acknowledge",
            });
        }
        inc.status = IncidentStatus::Acknowledged;
        inc.acknowledged_at = Some(now);
        inc.acknowledged_by = Some(by.to_string());
        inc.push(now, TimelineEvent::Acknowledged { by: by.to_string() });
        Ok(inc.clone())
    }

    /// Resolves an incident; the receivers it paged hear of it at the next tick.
    pub fn resolve(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
        now: Nanos,
    ) -> Result<Incident, IncidentError> {
        let mut inner = self.inner.lock();
        let st = (inner.tenants.get_mut(tenant))
            .filter(|st| st.incidents.contains_key(id))
            .ok_or_else(|| IncidentError::NotFound(id.to_string()))?;
        let inc = st.incidents.get_mut(id).expect("checked above");
        if inc.is_resolved() {
            return Err(IncidentError::Conflict {
                id: id.to_string(),
                status: inc.status.as_str(),
                action: "resolve",
            });
        }
        let mut out = Vec::new();
        resolve_incident(tenant, inc, Some(by.to_string()), now, &st.alerts, &mut out);
        let inc = inc.clone();
        st.pending.extend(out);
        Ok(inc)
    }

    pub async fn acknowledge_audited(
        &self,
        store: &dyn DocStore,
        tenant: &str,
        id: &str,
        by: &Actor,
        now: Nanos,
    ) -> Result<Incident, AlerterError> {
        let inc = self.acknowledge(tenant, id, &by.id, now)?;
        write_incident(store, tenant, &inc, by, INCIDENT_ACKNOWLEDGE, now).await?;
        Ok(inc)
    }

    pub async fn resolve_audited(
        &self,
        store: &dyn DocStore,
        tenant: &str,
        id: &str,
        by: &Actor,
        now: Nanos,
    ) -> Result<Incident, AlerterError> {
        let inc = self.resolve(tenant, id, &by.id, now)?;
        write_incident(store, tenant, &inc, by, INCIDENT_RESOLVE, now).await?;
        Ok(inc)
    }

    // ---- persistence ----

    /// Writes every tenant's state as documents and deletes documents of groups, silences
    /// and incidents that are gone.
    pub async fn persist(&self, store: &dyn DocStore, now: Nanos) -> Result<(), AlerterError> {
        let docs: Vec<(String, Vec<DocParts>)> = {
            let inner = self.inner.lock();
            let mut all = Vec::new();
            for (tenant, st) in &inner.tenants {
                let mut docs = Vec::new();
                let alerts: Vec<&Alert> = st.alerts.values().collect();
                docs.push((KIND_ALERTS.into(), "alerts".into(), to_json(&alerts)?));
                docs.push((KIND_PENDING.into(), "pending".into(), to_json(&st.pending)?));
                for g in st.groups.values() {
                    docs.push((KIND_GROUP.into(), group_doc_id(&g.key), to_json(g)?));
                }
                for s in st.silences.values() {
                    docs.push((KIND_SILENCE.into(), s.id.clone(), to_json(s)?));
                }
                for i in st.incidents.values() {
                    docs.push((KIND_INCIDENT.into(), i.id.clone(), to_json(i)?));
                }
                all.push((tenant.clone(), docs));
            }
            all
        };
        // Only documents whose body changed since the last save are written, all of a
        // tenant's in one transaction.
        let mut saved = self.saved.lock().await;
        // What was saved elsewhere says nothing about this store.
        let this_store = store as *const dyn DocStore as *const () as usize;
        if saved.0 != this_store {
            *saved = (this_store, HashMap::new());
        }
        let saved = &mut saved.1;
        for (tenant, docs) in docs {
            let tid = TenantId::new(&tenant).map_err(storage)?;
            let mut keep: BTreeSet<(String, String)> = BTreeSet::new();
            let mut changed = Vec::new();
            for (kind, id, body) in docs {
                keep.insert((kind.clone(), id.clone()));
                let key = (tenant.clone(), kind.clone(), id.clone());
                if saved.get(&key) == Some(&body_hash(&body)) {
                    continue;
                }
                changed.push(Doc {
                    tenant: tid.clone(),
                    kind,
                    id,
                    body,
                    updated_at: now,
                });
            }
            store.put_docs(&changed).await.map_err(storage)?;
            for d in changed {
                let hash = body_hash(&d.body);
                saved.insert((tenant.clone(), d.kind, d.id), hash);
            }
            for kind in [KIND_GROUP, KIND_SILENCE, KIND_INCIDENT] {
                for d in store.list_docs(Some(&tid), kind).await.map_err(storage)? {
                    if !keep.contains(&(d.kind.clone(), d.id.clone())) {
                        store
                            .delete_doc(&tid, kind, &d.id, None)
                            .await
                            .map_err(storage)?;
                        saved.remove(&(tenant.clone(), d.kind, d.id));
                    }
                }
            }
        }
        Ok(())
    }

    /// Replaces the state with what [`Alerter::persist`] wrote, routing alerts again with
    /// the current configuration (groups keep their logs and timers).
    pub async fn restore(&self, store: &dyn DocStore, now: Nanos) -> Result<(), AlerterError> {
        let mut tenants: BTreeMap<String, TenantState> = BTreeMap::new();
        for d in store.list_docs(None, KIND_ALERTS).await.map_err(storage)? {
            let alerts: Vec<Alert> = from_json(&d.body)?;
            let st = tenants.entry(d.tenant.as_str().to_string()).or_default();
            st.alerts = alerts.into_iter().map(|a| (a.fingerprint(), a)).collect();
        }
        for d in store.list_docs(None, KIND_PENDING).await.map_err(storage)? {
            let st = tenants.entry(d.tenant.as_str().to_string()).or_default();
            st.pending = from_json(&d.body)?;
        }
        for d in store.list_docs(None, KIND_GROUP).await.map_err(storage)? {
            let g: Group = from_json(&d.body)?;
            let st = tenants.entry(d.tenant.as_str().to_string()).or_default();
            st.groups.insert(g.key.clone(), g);
        }
        for d in store.list_docs(None, KIND_SILENCE).await.map_err(storage)? {
            let s: Silence = from_json(&d.body)?;
            let st = tenants.entry(d.tenant.as_str().to_string()).or_default();
            st.silences.insert(s.id.clone(), s);
        }
        for d in store
            .list_docs(None, KIND_INCIDENT)
            .await
            .map_err(storage)?
        {
            let i: Incident = from_json(&d.body)?;
            let st = tenants.entry(d.tenant.as_str().to_string()).or_default();
            st.incidents.insert(i.id.clone(), i);
        }
        let mut inner = self.inner.lock();
        let compiled = inner.compiled.clone();
        for st in tenants.values_mut() {
            regroup(&compiled, st, now);
        }
        inner.tenants = tenants;
        Ok(())
    }
}

impl AlertSink for Alerter {
    fn receive(&self, tenant: &str, alerts: Vec<Alert>, now: Nanos) {
        let mut inner = self.inner.lock();
        let compiled = inner.compiled.clone();
        let st = inner.tenants.entry(tenant.to_string()).or_default();
        for mut alert in alerts {
            if alert.ends_at.is_none() && alert.source == AlertSource::Api {
                alert.ends_at = Some(now.saturating_add(nanos(RESOLVE_TIMEOUT)));
            }
            let fp = alert.fingerprint();
            match st.alerts.get(&fp) {
                Some(old) if old.updated_at > alert.updated_at => continue,
                // The same occurrence: it started when it first started.
                Some(old) if old.ends_at.is_none_or(|end| alert.starts_at <= end) => {
                    alert.starts_at = alert.starts_at.min(old.starts_at);
                }
                None if st.alerts.len() >= MAX_ALERTS_PER_TENANT => {
                    tracing::warn!(tenant, "alert limit reached: new alert dropped");
                    continue;
                }
                _ => {}
            }
            add_to_groups(&compiled, st, &alert, fp, now);
            st.alerts.insert(fp, alert);
        }
    }
}

fn add_to_groups(c: &Compiled, st: &mut TenantState, alert: &Alert, fp: Fingerprint, now: Nanos) {
    for route in c.route.routes_for(&alert.labels) {
        let labels = route.group_labels(&alert.labels);
        let key = group_key(&route.key, &labels);
        let group = st.groups.entry(key.clone()).or_insert_with(|| Group {
            key,
            route: route.key.clone(),
            receiver: route.receiver.clone(),
            labels,
            alerts: BTreeSet::new(),
            created_at: now,
            next_flush: now.saturating_add(nanos(route.group_wait)),
            log: None,
            incident: None,
        });
        group.alerts.insert(fp);
    }
}

/// Routes every alert again: firing alerts go to the groups of the current tree (existing
/// groups keep their log and timers), resolved alerts stay only in groups that held them.
fn regroup(c: &Compiled, st: &mut TenantState, now: Nanos) {
    let old = std::mem::take(&mut st.groups);
    for (key, g) in &old {
        if let Some(route) = c.route.find(&g.route) {
            let mut g = g.clone();
            g.receiver = route.receiver.clone();
            g.alerts.clear();
            st.groups.insert(key.clone(), g);
        }
    }
    let alerts: Vec<(Fingerprint, Alert)> =
        st.alerts.iter().map(|(fp, a)| (*fp, a.clone())).collect();
    for (fp, a) in alerts {
        if a.is_resolved(now) {
            for (key, g) in &old {
                if g.alerts.contains(&fp)
                    && let Some(ng) = st.groups.get_mut(key)
                {
                    ng.alerts.insert(fp);
                }
            }
        } else {
            add_to_groups(c, st, &a, fp, now);
        }
    }
    st.groups.retain(|_, g| !g.alerts.is_empty());
}

fn silenced_by(st: &TenantState, alert: &Alert, now: Nanos) -> Vec<String> {
    (st.silences.values())
        .filter(|s| s.mutes(&alert.labels, now))
        .map(|s| s.id.clone())
        .collect()
}

fn suppressed(st: &TenantState, inhibitor: &Inhibitor, alert: &Alert, now: Nanos) -> bool {
    !silenced_by(st, alert, now).is_empty() || !inhibitor.inhibited_by(alert).is_empty()
}

/// Labels shared, with the same value, by every label set.
fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::new();
    };
    let mut out = first.clone();
    for s in sets {
        out.retain(|k, v| s.get(k) == Some(v));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn notification(
    tenant: &str,
    receiver: &str,
    kind: NotificationKind,
    group_key: &str,
    status: Status,
    group_labels: Labels,
    alerts: Vec<Alert>,
    id: String,
    incident: Option<String>,
    escalation_step: Option<usize>,
    now: Nanos,
) -> Notification {
    Notification {
        id,
        tenant: tenant.to_string(),
        receiver: receiver.to_string(),
        kind,
        group_key: group_key.to_string(),
        status,
        group_labels,
        common_labels: common(alerts.iter().map(|a| &a.labels)),
        common_annotations: common(alerts.iter().map(|a| &a.annotations)),
        alerts,
        incident,
        escalation_step,
        created_at: now,
    }
}

#[allow(clippy::too_many_arguments)]
fn flush_group(
    c: &Compiled,
    graph: &ServiceGraph,
    inhibitor: &Inhibitor,
    tenant: &str,
    st: &mut TenantState,
    key: &str,
    now: Nanos,
    out: &mut Vec<Notification>,
) {
    let Some(mut group) = st.groups.remove(key) else {
        return;
    };
    let Some(route) = c.route.find(&group.route) else {
        return;
    };
    let mut firing = BTreeSet::new();
    let mut resolved = BTreeSet::new();
    for fp in &group.alerts {
        let Some(a) = st.alerts.get(fp) else { continue };
        if suppressed(st, inhibitor, a, now) {
            continue;
        }
        if a.is_resolved(now) {
            resolved.insert(*fp);
        } else {
            firing.insert(*fp);
        }
    }
    let repeat = nanos(route.repeat_interval);
    // All silenced or inhibited: nothing to say (Alertmanager's pipeline stops on no alerts).
    let nothing = firing.is_empty() && resolved.is_empty();
    if !nothing
        && !c.muted(route, now)
        && needs_update(group.log.as_ref(), &firing, &resolved, repeat, now)
    {
        let seq = group.log.as_ref().map_or(0, |l| l.seq) + 1;
        if !firing.is_empty() {
            group.incident = Some(correlate(c, graph, tenant, st, &group, &firing, seq, now));
        }
        let status = if firing.is_empty() {
            Status::Resolved
        } else {
            Status::Firing
        };
        let id = notification_id(
            tenant,
            &route.receiver,
            &group.key,
            NotificationKind::Group,
            status,
            &firing,
            &resolved,
            &seq.to_string(),
        );
        let alerts = sorted(firing.iter().filter_map(|fp| st.alerts.get(fp)))
            .chain(sorted(resolved.iter().filter_map(|fp| st.alerts.get(fp))))
            .collect();
        if let Some(inc) = (group.incident.as_ref()).and_then(|i| st.incidents.get_mut(i))
            && !inc.is_resolved()
        {
            inc.push(
                now,
                TimelineEvent::NotificationSent {
                    receiver: route.receiver.clone(),
                    notification: id.clone(),
                },
            );
        }
        out.push(notification(
            tenant,
            &route.receiver,
            NotificationKind::Group,
            &group.key,
            status,
            group.labels.clone(),
            alerts,
            id,
            group.incident.clone(),
            None,
            now,
        ));
        group.log = Some(NotifyLog {
            firing,
            resolved,
            sent_at: now,
            seq,
        });
    }
    group
        .alerts
        .retain(|fp| st.alerts.get(fp).is_some_and(|a| !a.is_resolved(now)));
    group.next_flush = now.saturating_add(nanos(route.group_interval));
    if !group.alerts.is_empty() {
        st.groups.insert(key.to_string(), group);
    }
}

/// Whether `alert` may join `inc` (service graph or `by_labels`).
fn related(c: &Compiled, graph: &ServiceGraph, inc: &Incident, alert: &Alert) -> bool {
    let corr = &c.correlation;
    if let Some(svc) = corr.service_of(&alert.labels)
        && inc.services.iter().any(|s| graph.connected(svc, s))
    {
        return true;
    }
    corr.by_labels.iter().any(|names| {
        inc.alerts.values().any(|ia| {
            names.iter().all(|n| {
                alert
                    .labels
                    .get(n)
                    .is_some_and(|v| ia.labels.get(n) == Some(v))
            })
        })
    })
}

/// The incident of a group's firing alerts at a notification: the group's open incident,
/// else an open one already holding one of them, else a related open one within the
/// correlation window (the latest joined), else a new one.
#[allow(clippy::too_many_arguments)]
fn correlate(
    c: &Compiled,
    graph: &ServiceGraph,
    tenant: &str,
    st: &mut TenantState,
    group: &Group,
    firing: &BTreeSet<Fingerprint>,
    seq: u64,
    now: Nanos,
) -> String {
    let open =
        |st: &TenantState, id: &String| st.incidents.get(id).is_some_and(|i| !i.is_resolved());
    let window = nanos(c.correlation.window);
    let found = (group.incident.clone())
        .filter(|id| open(st, id))
        .or_else(|| {
            (st.incidents.values())
                .find(|i| !i.is_resolved() && firing.iter().any(|fp| i.alerts.contains_key(fp)))
                .map(|i| i.id.clone())
        })
        .or_else(|| {
            (st.incidents.values())
                .filter(|i| !i.is_resolved() && i.last_join_at.saturating_add(window) >= now)
                .filter(|i| {
                    firing
                        .iter()
                        .filter_map(|fp| st.alerts.get(fp))
                        .any(|a| related(c, graph, i, a))
                })
                .max_by(|a, b| (a.last_join_at, &a.id).cmp(&(b.last_join_at, &b.id)))
                .map(|i| i.id.clone())
        });
    let id = found.unwrap_or_else(|| {
        let mut h = Sha256::new();
        for part in [tenant, "incident", &group.key, &seq.to_string()] {
            h.update(part.as_bytes());
            h.update([0xff]);
        }
        for fp in firing {
            h.update(fp.0.to_be_bytes());
        }
        let id = hex::encode(&h.finalize()[..16]);
        let first = firing.iter().find_map(|fp| st.alerts.get(fp));
        let title = first.map_or_else(
            || group.key.clone(),
            |a| match c.correlation.service_of(&a.labels) {
                Some(svc) => format!("{} on {svc}", a.name()),
                None => a.name().to_string(),
            },
        );
        let escalation = (c.route.find(&group.route))
            .and_then(|r| r.escalation.clone())
            .map(|policy| EscalationState {
                policy,
                next: 0,
                paged: BTreeSet::new(),
            });
        let mut inc = Incident {
            id: id.clone(),
            title,
            status: IncidentStatus::Open,
            services: BTreeSet::new(),
            alerts: BTreeMap::new(),
            root_cause: None,
            group_key: group.key.clone(),
            opened_at: now,
            last_join_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            escalation,
            timeline: Vec::new(),
        };
        inc.push(now, TimelineEvent::Opened);
        st.incidents.insert(id.clone(), inc);
        id
    });
    let TenantState {
        alerts, incidents, ..
    } = st;
    let inc = incidents.get_mut(&id).expect("found or inserted");
    for fp in firing {
        let Some(a) = alerts.get(fp) else { continue };
        if inc
            .alerts
            .get(fp)
            .is_some_and(|ia| ia.status == Status::Firing)
        {
            continue;
        }
        let service = c.correlation.service_of(&a.labels).map(str::to_string);
        if let Some(s) = &service {
            inc.services.insert(s.clone());
        }
        inc.alerts.insert(
            *fp,
            IncidentAlert {
                labels: a.labels.clone(),
                service,
                status: Status::Firing,
                joined_at: now,
            },
        );
        inc.last_join_at = now;
        inc.push(
            now,
            TimelineEvent::AlertJoined {
                fingerprint: *fp,
                alertname: a.name().to_string(),
            },
        );
    }
    inc.update_root_cause(graph);
    id
}

/// Alerts ordered by their labels (as Alertmanager orders a notification's alerts).
fn sorted<'a>(alerts: impl Iterator<Item = &'a Alert>) -> std::vec::IntoIter<Alert> {
    let mut v: Vec<Alert> = alerts.cloned().collect();
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    v.into_iter()
}

fn incident_alerts(inc: &Incident, alerts: &BTreeMap<Fingerprint, Alert>) -> Vec<Alert> {
    sorted(inc.alerts.keys().filter_map(|fp| alerts.get(fp))).collect()
}

fn resolve_incident(
    tenant: &str,
    inc: &mut Incident,
    by: Option<String>,
    now: Nanos,
    alerts: &BTreeMap<Fingerprint, Alert>,
    out: &mut Vec<Notification>,
) {
    inc.status = IncidentStatus::Resolved;
    inc.resolved_at = Some(now);
    inc.resolved_by = by.clone();
    inc.push(now, TimelineEvent::Resolved { by });
    let paged = inc
        .escalation
        .as_ref()
        .map(|e| e.paged.clone())
        .unwrap_or_default();
    let none = BTreeSet::new();
    for receiver in paged {
        let id = notification_id(
            tenant,
            &receiver,
            &inc.id,
            NotificationKind::IncidentResolved,
            Status::Resolved,
            &none,
            &none,
            "resolved",
        );
        out.push(notification(
            tenant,
            &receiver,
            NotificationKind::IncidentResolved,
            &inc.group_key,
            Status::Resolved,
            Labels::new(),
            incident_alerts(inc, alerts),
            id,
            Some(inc.id.clone()),
            None,
            now,
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn maintain_incidents(
    c: &Compiled,
    graph: &ServiceGraph,
    inhibitor: &Inhibitor,
    tenant: &str,
    st: &mut TenantState,
    now: Nanos,
    out: &mut Vec<Notification>,
) {
    let none = BTreeSet::new();
    let TenantState {
        alerts,
        silences,
        incidents,
        ..
    } = st;
    // Escalation pauses while every firing alert of the incident is silenced or inhibited.
    let muted = |a: &Alert| {
        silences.values().any(|s| s.mutes(&a.labels, now)) || !inhibitor.inhibited_by(a).is_empty()
    };
    for inc in incidents.values_mut() {
        if inc.is_resolved() {
            continue;
        }
        let mut changed = Vec::new();
        for (fp, ia) in inc.alerts.iter_mut() {
            if ia.status == Status::Firing && alerts.get(fp).is_none_or(|a| a.is_resolved(now)) {
                ia.status = Status::Resolved;
                changed.push(*fp);
            }
        }
        for fp in changed {
            inc.push(now, TimelineEvent::AlertResolved { fingerprint: fp });
        }
        inc.update_root_cause(graph);
        if inc.alerts.values().all(|a| a.status == Status::Resolved) {
            resolve_incident(tenant, inc, None, now, alerts, out);
            continue;
        }
        if inc.status != IncidentStatus::Open {
            continue;
        }
        let all_muted = (inc.alerts.iter())
            .filter(|(_, ia)| ia.status == Status::Firing)
            .filter_map(|(fp, _)| alerts.get(fp))
            .all(muted);
        if all_muted {
            continue;
        }
        let Some(esc) = inc.escalation.as_mut() else {
            continue;
        };
        let Some(policy) = c.policies.get(&esc.policy) else {
            continue;
        };
        let mut events = Vec::new();
        while let Some((step, after)) = policy.step(esc.next) {
            if inc.opened_at.saturating_add(nanos(after)) > now {
                break;
            }
            let receivers = policy.steps[step].receivers.clone();
            for receiver in &receivers {
                let id = notification_id(
                    tenant,
                    receiver,
                    &inc.id,
                    NotificationKind::Escalation,
                    Status::Firing,
                    &none,
                    &none,
                    &format!("step {}", esc.next),
                );
                let alerts: Vec<Alert> = sorted(
                    (inc.alerts.iter())
                        .filter(|(_, ia)| ia.status == Status::Firing)
                        .filter_map(|(fp, _)| alerts.get(fp)),
                )
                .collect();
                out.push(notification(
                    tenant,
                    receiver,
                    NotificationKind::Escalation,
                    &inc.group_key,
                    Status::Firing,
                    Labels::new(),
                    alerts,
                    id,
                    Some(inc.id.clone()),
                    Some(step),
                    now,
                ));
                esc.paged.insert(receiver.clone());
            }
            events.push(TimelineEvent::EscalationStep { step, receivers });
            esc.next += 1;
        }
        for e in events {
            inc.push(now, e);
        }
    }
}

/// A document's kind, id and body.
type DocParts = (String, String, String);

/// Hashes of saved document bodies by (tenant, kind, id).
type SavedHashes = HashMap<(String, String, String), u64>;

fn body_hash(body: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

fn group_doc_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, AlerterError> {
    serde_json::to_string(v).map_err(storage)
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, AlerterError> {
    serde_json::from_str(s).map_err(storage)
}

async fn write_silence(
    store: &dyn DocStore,
    tenant: &str,
    s: &Silence,
    by: &Actor,
    action: &str,
    now: Nanos,
) -> Result<(), AlerterError> {
    let detail = json!({
        "matchers": format_matchers(&s.matchers),
        "starts_at": crate::time::rfc3339(s.starts_at),
        "ends_at": crate::time::rfc3339(s.ends_at),
        "comment": s.comment,
    });
    let change = AuditedChange {
        by,
        action,
        detail,
        now,
    };
    write_audited(store, tenant, KIND_SILENCE, &s.id, to_json(s)?, change).await
}

async fn write_incident(
    store: &dyn DocStore,
    tenant: &str,
    inc: &Incident,
    by: &Actor,
    action: &str,
    now: Nanos,
) -> Result<(), AlerterError> {
    let detail = json!({"title": inc.title, "status": inc.status.as_str()});
    let change = AuditedChange {
        by,
        action,
        detail,
        now,
    };
    write_audited(store, tenant, KIND_INCIDENT, &inc.id, to_json(inc)?, change).await
}

/// Who changed a document, how, and when.
struct AuditedChange<'a> {
    by: &'a Actor,
    action: &'a str,
    detail: serde_json::Value,
    now: Nanos,
}

/// Writes a changed document with its audit row, in one transaction.
async fn write_audited(
    store: &dyn DocStore,
    tenant: &str,
    kind: &str,
    id: &str,
    body: String,
    change: AuditedChange<'_>,
) -> Result<(), AlerterError> {
    let tid = TenantId::new(tenant).map_err(storage)?;
    let event = AuditEvent::at(
        change.now,
        tid.clone(),
        change.by,
        change.action,
        Some(id),
        change.detail,
        Outcome::Success,
    );
    let doc = Doc {
        tenant: tid,
        kind: kind.into(),
        id: id.into(),
        body,
        updated_at: change.now,
    };
    store.put_doc(&doc, Some(&event)).await.map_err(storage)
}

#[cfg(all(test, feature = "engine"))]
mod tests {
    /// Incidents the alerter writes are the ones the `incidents` SQL table reads.
    #[test]
    fn incident_kind_is_the_query_crates() {
        assert_eq!(
            super::KIND_INCIDENT,
            strata_query::incidents::INCIDENT_DOC_KIND
        );
    }
}
