//! The `audit` table: one tenant's audit log (`strata_storage::audit`) as SQL, for callers
//! with the admin scope only (the engine registers it only when asked, see
//! [`QueryOptions`](crate::QueryOptions)).
//!
//! Each scan reads the tenant's rows from the catalog (narrowed by the query's filters on
//! `time`, and by its `LIMIT` when there are no filters) and serves them from memory: audit
//! logs hold a few rows per administrative action, so this is cheap at their scale. The table
//! is read-only: DDL and DML are refused before planning (`QueryEngine::sql_options`), and the
//! provider has no insert.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use strata_storage::audit::{AuditEvent, AuditLog};
use strata_storage::schema::UTC;
use strata_storage::{TenantId, TimeRange};

use crate::catalog_table::CatalogRows;

/// The table's name in a tenant's session.
pub const AUDIT_TABLE: &str = "audit";

/// The columns of `audit` (docs/SCHEMA.md).
pub fn audit_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
            false,
        ),
        Field::new("actor", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, false),
        Field::new("remote_addr", DataType::Utf8, true),
        Field::new("outcome", DataType::Utf8, false),
    ]))
}

/// One tenant's audit log.
pub struct AuditTable {
    log: Arc<dyn AuditLog>,
    tenant: TenantId,
    schema: SchemaRef,
}

impl fmt::Debug for AuditTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditTable")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl AuditTable {
    /// `tenant`'s rows of `log`, and only those.
    pub fn new(log: Arc<dyn AuditLog>, tenant: TenantId) -> Self {
        Self {
            log,
            tenant,
            schema: audit_schema(),
        }
    }
}

/// The rows as a batch of [`audit_schema`].
pub fn audit_batch(events: &[AuditEvent]) -> Result<RecordBatch> {
    let text = |f: fn(&AuditEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampNanosecondArray::from(events.iter().map(|e| e.time).collect::<Vec<_>>())
                .with_timezone(UTC),
        ),
        text(|e| Some(&e.actor)),
        text(|e| Some(&e.action)),
        text(|e| e.target.as_deref()),
        text(|e| Some(&e.detail)),
        text(|e| e.remote_addr.as_deref()),
        text(|e| Some(e.outcome.as_str())),
    ];
    Ok(RecordBatch::try_new(audit_schema(), columns)?)
}

#[async_trait]
impl CatalogRows for AuditTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn has_time(&self) -> bool {
        true
    }

    async fn rows(&self, range: TimeRange, limit: Option<usize>) -> Result<RecordBatch> {
        let events = (self.log.list_audit(&self.tenant, range, limit).await)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        debug_assert!(events.iter().all(|e| e.tenant == self.tenant));
        audit_batch(&events)
    }
}
