//! The persistent outbox: one document per (notification, receiver integration), kind
//! `notification`, id `<notification id>:<integration index>`, stored under the tenant.
//!
//! An entry is `pending` until delivered (`delivered`), given up on (`dead`) or found to
//! have nothing to send (`skipped`, e.g. a resolution to a `send_resolved: false`
//! receiver). Pending entries are also indexed in memory by their next attempt; the index
//! is rebuilt from the store on first use, which is how deliveries resume after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use strata_storage::{Doc, DocStore, TenantId};

use crate::model::Notification;
use crate::receiver::Receiver;
use crate::time::{Clock, Nanos};

use super::{NotifyError, Result};

/// The document kind of outbox entries.
pub const KIND: &str = "notification";

/// Which integration of a receiver an entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Integration {
    /// `webhook_configs[index]`.
    Webhook { index: usize },
    /// `pagerduty_configs[index]`.
    #[serde(rename = "pagerduty")]
    PagerDuty { index: usize },
}

impl Integration {
    /// Every integration of a receiver, with its integration index: webhooks first, then
    /// PagerDuty, in configuration order.
    pub fn all(receiver: &Receiver) -> Vec<(usize, Integration)> {
        let webhooks =
            (0..receiver.webhook_configs.len()).map(|index| Integration::Webhook { index });
        let pagerduty =
            (0..receiver.pagerduty_configs.len()).map(|index| Integration::PagerDuty { index });
        webhooks.chain(pagerduty).enumerate().collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Skipped => "skipped",
        }
    }
}

/// What came of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// A failure that is retried (5xx, 429, timeout, connection error).
    Retry,
    /// A failure that is not (other 4xx, refused destination, bad configuration).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: Nanos,
    pub outcome: AttemptOutcome,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One outbox entry (the document body, and what `/api/v1/notifications` shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `<notification id>:<integration index>`, also the `Idempotency-Key`.
    pub id: String,
    pub tenant: String,
    pub receiver: String,
    pub integration: Integration,
    pub status: DeliveryStatus,
    pub notification: Notification,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due (pending entries).
    #[serde(default)]
    pub next_attempt_at: Option<Nanos>,
    pub created_at: Nanos,
    /// The deadline counts from here: creation, or the last manual retry.
    pub deadline_from: Nanos,
    #[serde(default)]
    pub delivered_at: Option<Nanos>,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Delivery counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// Entries delivered (2xx).
    pub delivered: u64,
    /// Failed attempts that were scheduled for another try.
    pub retried: u64,
    /// Entries that went to the dead letters.
    pub dead: u64,
    /// Entries waiting now (counted from the store once the notifier has first looked).
    pub pending: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
}

type Key = (String, String);

/// The outbox over a [`DocStore`]. Share one (`Arc`) between the alerter (enqueue), the
/// [`super::Notifier`] and the API.
#[derive(Debug)]
pub struct Outbox {
    store: Arc<dyn DocStore>,
    clock: Arc<dyn Clock>,
    /// Pending entries by (tenant, id): their next attempt.
    due: parking_lot::Mutex<BTreeMap<Key, Nanos>>,
    loaded: tokio::sync::OnceCell<()>,
    /// Serialises enqueue's check-then-write and state changes of the API.
    write: tokio::sync::Mutex<()>,
    counters: Counters,
    wake: tokio::sync::Notify,
}

fn tenant_id(tenant: &str) -> Result<TenantId> {
    TenantId::new(tenant).map_err(|e| NotifyError::InvalidTenant(e.to_string()))
}

fn parse(doc: &Doc) -> Result<OutboxEntry> {
    serde_json::from_str(&doc.body).map_err(|e| NotifyError::Corrupt {
        id: doc.id.clone(),
        reason: e.to_string(),
    })
}

impl Outbox {
    pub fn new(store: Arc<dyn DocStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            due: parking_lot::Mutex::new(BTreeMap::new()),
            loaded: tokio::sync::OnceCell::new(),
            write: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Loads the pending entries from the store into the index, once.
    async fn ensure_loaded(&self) -> Result<()> {
        self.loaded
            .get_or_try_init(|| async {
                let docs = self.store.list_docs(None, KIND).await?;
                let mut due = self.due.lock();
                for doc in &docs {
                    match parse(doc) {
                        Ok(e) if e.status == DeliveryStatus::Pending => {
                            due.insert(
                                (e.tenant.clone(), e.id.clone()),
                                e.next_attempt_at.unwrap_or(e.created_at),
                            );
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "skipping outbox entry"),
                    }
                }
                Ok::<(), NotifyError>(())
            })
            .await?;
        Ok(())
    }

    /// Writes one `pending` entry per integration of `receiver` (`skipped` when there is
    /// nothing to send). Idempotent: an entry whose id exists, whatever its status, is left
    /// as it is. Returns the ids of the entries written now.
    pub async fn enqueue(&self, n: &Notification, receiver: &Receiver) -> Result<Vec<String>> {
        let tenant = tenant_id(&n.tenant)?;
        let now = self.clock.now();
        let _guard = self.write.lock().await;
        let mut written = Vec::new();
        for (index, integration) in Integration::all(receiver) {
            let id = format!("{}:{index}", n.id);
            if self.store.get_doc(&tenant, KIND, &id).await?.is_some() {
                continue;
            }
            // Nothing to send (checked again at delivery time against the then config).
            let send = super::payload::build(n, receiver, integration, "").map(|r| r.is_some());
            let status = if matches!(send, Ok(false)) {
                DeliveryStatus::Skipped
            } else {
                DeliveryStatus::Pending
            };
            let entry = OutboxEntry {
                id: id.clone(),
                tenant: n.tenant.clone(),
                receiver: receiver.name.clone(),
                integration,
                status,
                notification: n.clone(),
                attempts: Vec::new(),
                next_attempt_at: (status == DeliveryStatus::Pending).then_some(now),
                created_at: now,
                deadline_from: now,
                delivered_at: None,
                last_error: None,
            };
            self.put(&entry, now).await?;
            if status == DeliveryStatus::Pending {
                self.due
                    .lock()
                    .insert((entry.tenant.clone(), id.clone()), now);
            }
            written.push(id);
        }
        if !written.is_empty() {
            self.wake.notify_one();
        }
        Ok(written)
    }

    pub(crate) async fn put(&self, entry: &OutboxEntry, now: Nanos) -> Result<()> {
        let doc = Doc {
            tenant: tenant_id(&entry.tenant)?,
            kind: KIND.into(),
            id: entry.id.clone(),
            body: serde_json::to_string(entry).expect("entries serialise"),
            updated_at: now,
        };
        self.store.put_doc(&doc, None).await?;
        Ok(())
    }

    /// One entry of `tenant`.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<OutboxEntry> {
        let t = tenant_id(tenant)?;
        let doc = (self.store.get_doc(&t, KIND, id).await?)
            .ok_or_else(|| NotifyError::NotFound(id.to_string()))?;
        parse(&doc)
    }

    /// `tenant`'s entries, newest first, optionally of one status, at most `limit`.
    pub async fn list(
        &self,
        tenant: &str,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        let t = tenant_id(tenant)?;
        let mut entries = Vec::new();
        for doc in self.store.list_docs(Some(&t), KIND).await? {
            let e = parse(&doc)?;
            if status.is_none_or(|s| e.status == s) {
                entries.push(e);
            }
        }
        entries.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        entries.truncate(limit);
        Ok(entries)
    }

    /// Sends a dead entry again: `pending`, due at `now`, with a fresh deadline. Any other
    /// status is a conflict.
    pub async fn retry(&self, tenant: &str, id: &str, now: Nanos) -> Result<OutboxEntry> {
        let _guard = self.write.lock().await;
        let mut e = self.get(tenant, id).await?;
        if e.status != DeliveryStatus::Dead {
            return Err(NotifyError::Conflict(format!(
                "notification {id:?} is {}, only dead notifications can be retried",
                e.status.as_str()
            )));
        }
        e.status = DeliveryStatus::Pending;
        e.next_attempt_at = Some(now);
        e.deadline_from = now;
        self.put(&e, now).await?;
        self.due
            .lock()
            .insert((e.tenant.clone(), e.id.clone()), now);
        self.wake.notify_one();
        Ok(e)
    }

    /// Deletes delivered, skipped and dead entries created before `before` (retention).
    /// Returns how many were deleted.
    pub async fn prune(&self, before: Nanos) -> Result<usize> {
        let mut n = 0;
        for doc in self.store.list_docs(None, KIND).await? {
            let Ok(e) = parse(&doc) else { continue };
            if e.status != DeliveryStatus::Pending && e.created_at < before {
                self.store
                    .delete_doc(&doc.tenant, KIND, &doc.id, None)
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn metrics(&self) -> Metrics {
        Metrics {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
            dead: self.counters.dead.load(Ordering::Relaxed),
            pending: self.due.lock().len() as u64,
        }
    }

    /// Pending entries due at `now`, earliest first.
    pub(crate) async fn due(&self, now: Nanos) -> Result<Vec<(String, String)>> {
        self.ensure_loaded().await?;
        let due = self.due.lock();
        let mut keys: Vec<(Nanos, Key)> = (due.iter())
            .filter(|(_, at)| **at <= now)
            .map(|(k, at)| (*at, k.clone()))
            .collect();
        keys.sort();
        Ok(keys.into_iter().map(|(_, k)| k).collect())
    }

    /// The earliest next attempt of any pending entry.
    pub async fn next_due(&self) -> Result<Option<Nanos>> {
        self.ensure_loaded().await?;
        Ok(self.due.lock().values().min().copied())
    }

    /// Reads a pending entry for an attempt (`None` if it is no longer pending).
    pub(crate) async fn load_pending(&self, tenant: &str, id: &str) -> Result<Option<OutboxEntry>> {
        match self.get(tenant, id).await {
            Ok(e) if e.status == DeliveryStatus::Pending => Ok(Some(e)),
            Ok(_) | Err(NotifyError::NotFound(_)) => {
                self.due
                    .lock()
                    .remove(&(tenant.to_string(), id.to_string()));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Persists an entry after an attempt and updates the index and counters.
    pub(crate) async fn record(&self, e: &OutboxEntry, now: Nanos) -> Result<()> {
        let _guard = self.write.lock().await;
        self.put(e, now).await?;
        let key = (e.tenant.clone(), e.id.clone());
        let mut due = self.due.lock();
        match e.status {
            DeliveryStatus::Pending => {
                due.insert(key, e.next_attempt_at.unwrap_or(now));
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
            }
            DeliveryStatus::Delivered => {
                due.remove(&key);
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            DeliveryStatus::Dead => {
                due.remove(&key);
                self.counters.dead.fetch_add(1, Ordering::Relaxed);
            }
            DeliveryStatus::Skipped => {
                due.remove(&key);
            }
        }
        Ok(())
    }

    /// Resolves when an entry was enqueued or retried (wakes the delivery loop).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}
