//! The alerting state store: documents and alert history in the catalog database.
//!
//! Alerting objects (rule groups, rule instance states, silences, incidents, pending alert
//! groups, notifications) are few per tenant and always read whole, so they are kept as JSON
//! documents keyed by `(tenant, kind, id)` in one table (`migrations/0006_alerting.sql`); the
//! alerting crate owns their shapes. Alert history is an append-only table of state changes,
//! read back as the SQL table `alerts`.
//!
//! A change that is audited (a rule or silence saved by a user, an incident acknowledged)
//! writes its audit row in the same transaction as the document ([`DocStore::put_doc`] with
//! an event), as key changes do.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use parking_lot::Mutex;
use sqlx::Row;

use crate::audit::AuditEvent;
use crate::catalog::SqlCatalog;
use crate::{Result, TenantId, TimeRange};

/// One stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub tenant: TenantId,
    pub kind: String,
    pub id: String,
    /// JSON text.
    pub body: String,
    /// ns since the epoch.
    pub updated_at: i64,
}

/// One state change of an alert instance (a row of the `alerts` table).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertHistoryRow {
    pub id: String,
    pub tenant: TenantId,
    /// ns since the epoch.
    pub time: i64,
    pub alertname: String,
    /// 16 lowercase hex digits (the Alertmanager fingerprint of the labels).
    pub fingerprint: String,
    /// `pending`, `firing`, `resolved` or `inactive`.
    pub state: String,
    pub value: Option<f64>,
    /// JSON object.
    pub labels: String,
    /// JSON object.
    pub annotations: String,
    /// `rule` (Strata's own rules) or `api` (the Alertmanager-compatible intake).
    pub source: String,
}

/// Where alerting state lives.
#[async_trait]
pub trait DocStore: Send + Sync + fmt::Debug {
    /// Inserts or replaces a document; with `audit`, appends that row in the same transaction.
    async fn put_doc(&self, doc: &Doc, audit: Option<&AuditEvent>) -> Result<()>;

    /// Inserts or replaces several documents in one transaction.
    async fn put_docs(&self, docs: &[Doc]) -> Result<()> {
        for doc in docs {
            self.put_doc(doc, None).await?;
        }
        Ok(())
    }

    /// One document.
    async fn get_doc(&self, tenant: &TenantId, kind: &str, id: &str) -> Result<Option<Doc>>;

    /// Every document of `kind`, of one tenant or (with `None`) of all tenants, ordered by
    /// tenant and id.
    async fn list_docs(&self, tenant: Option<&TenantId>, kind: &str) -> Result<Vec<Doc>>;

    /// Deletes a document; with `audit`, appends that row in the same transaction. Returns
    /// whether it existed.
    async fn delete_doc(
        &self,
        tenant: &TenantId,
        kind: &str,
        id: &str,
        audit: Option<&AuditEvent>,
    ) -> Result<bool>;

    /// Appends alert history rows.
    async fn append_history(&self, rows: &[AlertHistoryRow]) -> Result<()>;

    /// `tenant`'s history rows with `time` in `range` (inclusive), oldest first, at most
    /// `limit`.
    async fn list_history(
        &self,
        tenant: &TenantId,
        range: TimeRange,
        limit: Option<usize>,
    ) -> Result<Vec<AlertHistoryRow>>;
}

const DOC_COLUMNS: &str = "tenant, kind, id, body, updated_at";
const HISTORY_COLUMNS: &str =
    "id, tenant, time, alertname, fingerprint, state, value, labels, annotations, source";

fn tenant_of(name: String) -> Result<TenantId> {
    TenantId::new(&name)
        .map_err(|e| crate::Error::Migration(format!("catalog holds invalid tenant {name:?}: {e}")))
}

fn doc_of_row(row: &sqlx::any::AnyRow) -> Result<Doc> {
    Ok(Doc {
        tenant: tenant_of(row.try_get("tenant")?)?,
        kind: row.try_get("kind")?,
        id: row.try_get("id")?,
        body: row.try_get("body")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn upsert_doc(tx: &mut sqlx::Transaction<'_, sqlx::Any>, doc: &Doc) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO alerting_docs ({DOC_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant, kind, id) DO UPDATE SET body = excluded.body, \
         updated_at = excluded.updated_at"
    ))
    .bind(doc.tenant.as_str())
    .bind(&doc.kind)
    .bind(&doc.id)
    .bind(&doc.body)
    .bind(doc.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl DocStore for SqlCatalog {
    async fn put_doc(&self, doc: &Doc, audit: Option<&AuditEvent>) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        if let Some(event) = audit {
            crate::catalog::insert_audit(&mut tx, event).await?;
        }
        upsert_doc(&mut tx, doc).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_docs(&self, docs: &[Doc]) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for doc in docs {
            upsert_doc(&mut tx, doc).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_doc(&self, tenant: &TenantId, kind: &str, id: &str) -> Result<Option<Doc>> {
        let row = sqlx::query(&format!(
            "SELECT {DOC_COLUMNS} FROM alerting_docs WHERE tenant = $1 AND kind = $2 AND id = $3"
        ))
        .bind(tenant.as_str())
        .bind(kind)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(doc_of_row).transpose()
    }

    async fn list_docs(&self, tenant: Option<&TenantId>, kind: &str) -> Result<Vec<Doc>> {
        let rows =
            match tenant {
                Some(t) => {
                    sqlx::query(&format!(
                        "SELECT {DOC_COLUMNS} FROM alerting_docs WHERE tenant = $1 AND kind = $2 \
                     ORDER BY id"
                    ))
                    .bind(t.as_str())
                    .bind(kind)
                    .fetch_all(self.pool())
                    .await?
                }
                None => sqlx::query(&format!(
                    "SELECT {DOC_COLUMNS} FROM alerting_docs WHERE kind = $1 ORDER BY tenant, id"
                ))
                .bind(kind)
                .fetch_all(self.pool())
                .await?,
            };
        rows.iter().map(doc_of_row).collect()
    }

    async fn delete_doc(
        &self,
        tenant: &TenantId,
        kind: &str,
        id: &str,
        audit: Option<&AuditEvent>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let done =
            sqlx::query("DELETE FROM alerting_docs WHERE tenant = $1 AND kind = $2 AND id = $3")
                .bind(tenant.as_str())
                .bind(kind)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        let existed = done.rows_affected() > 0;
        if existed && let Some(event) = audit {
            crate::catalog::insert_audit(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(existed)
    }

    async fn append_history(&self, rows: &[AlertHistoryRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for r in rows {
            sqlx::query(&format!(
                "INSERT INTO alert_history ({HISTORY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(&r.id)
            .bind(r.tenant.as_str())
            .bind(r.time)
            .bind(&r.alertname)
            .bind(&r.fingerprint)
            .bind(&r.state)
            .bind(r.value)
            .bind(&r.labels)
            .bind(&r.annotations)
            .bind(&r.source)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_history(
        &self,
        tenant: &TenantId,
        range: TimeRange,
        limit: Option<usize>,
    ) -> Result<Vec<AlertHistoryRow>> {
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM alert_history \
             WHERE tenant = $1 AND time >= $2 AND time <= $3 ORDER BY time, id LIMIT $4"
        ))
        .bind(tenant.as_str())
        .bind(range.start.unwrap_or(i64::MIN))
        .bind(range.end.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AlertHistoryRow {
                    id: row.try_get("id")?,
                    tenant: tenant_of(row.try_get("tenant")?)?,
                    time: row.try_get("time")?,
                    alertname: row.try_get("alertname")?,
                    fingerprint: row.try_get("fingerprint")?,
                    state: row.try_get("state")?,
                    value: row.try_get("value")?,
                    labels: row.try_get("labels")?,
                    annotations: row.try_get("annotations")?,
                    source: row.try_get("source")?,
                })
            })
            .collect()
    }
}

/// A [`DocStore`] in memory, for unit tests (state is lost with the value).
#[derive(Debug, Default)]
pub struct MemoryDocStore {
    docs: Mutex<BTreeMap<(String, String, String), Doc>>,
    history: Mutex<Vec<AlertHistoryRow>>,
    audit: Mutex<Vec<AuditEvent>>,
}

impl MemoryDocStore {
    /// The audit rows written with documents, oldest first.
    pub fn audit_rows(&self) -> Vec<AuditEvent> {
        self.audit.lock().clone()
    }
}

#[async_trait]
impl DocStore for MemoryDocStore {
    async fn put_doc(&self, doc: &Doc, audit: Option<&AuditEvent>) -> Result<()> {
        let key = (
            doc.tenant.as_str().to_string(),
            doc.kind.clone(),
            doc.id.clone(),
        );
        self.docs.lock().insert(key, doc.clone());
        if let Some(event) = audit {
            self.audit.lock().push(event.clone());
        }
        Ok(())
    }

    async fn get_doc(&self, tenant: &TenantId, kind: &str, id: &str) -> Result<Option<Doc>> {
        let key = (
            tenant.as_str().to_string(),
            kind.to_string(),
            id.to_string(),
        );
        Ok(self.docs.lock().get(&key).cloned())
    }

    async fn list_docs(&self, tenant: Option<&TenantId>, kind: &str) -> Result<Vec<Doc>> {
        Ok((self.docs.lock().values())
            .filter(|d| d.kind == kind && tenant.is_none_or(|t| &d.tenant == t))
            .cloned()
            .collect())
    }

    async fn delete_doc(
        &self,
        tenant: &TenantId,
        kind: &str,
        id: &str,
        audit: Option<&AuditEvent>,
    ) -> Result<bool> {
        let key = (
            tenant.as_str().to_string(),
            kind.to_string(),
            id.to_string(),
        );
        let existed = self.docs.lock().remove(&key).is_some();
        if existed && let Some(event) = audit {
            self.audit.lock().push(event.clone());
        }
        Ok(existed)
    }

    async fn append_history(&self, rows: &[AlertHistoryRow]) -> Result<()> {
        self.history.lock().extend_from_slice(rows);
        Ok(())
    }

    async fn list_history(
        &self,
        tenant: &TenantId,
        range: TimeRange,
        limit: Option<usize>,
    ) -> Result<Vec<AlertHistoryRow>> {
        let mut rows: Vec<AlertHistoryRow> = (self.history.lock().iter())
            .filter(|r| {
                &r.tenant == tenant
                    && range.start.is_none_or(|s| r.time >= s)
                    && range.end.is_none_or(|e| r.time <= e)
            })
            .cloned()
            .collect();
        rows.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        rows.truncate(limit.unwrap_or(usize::MAX));
        Ok(rows)
    }
}
