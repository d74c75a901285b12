//! The `alerts` table: one tenant's alert history (`strata_storage::docs::AlertHistoryRow`)
//! as SQL, in every session of the tenant (it holds no secret: rule names, labels and values
//! the tenant's own rules and alert intake produced).
//!
//! Each scan reads the tenant's rows from the catalog (narrowed by the query's filters on
//! `time`, and by its `LIMIT` when there are no filters) and serves them from memory, as
//! [`crate::audit`] does. Rows are state changes only (a few per alert instance and day), so
//! this is cheap at their scale. The table is read-only: DDL and DML are refused before
//! planning (`QueryEngine::sql_options`), and the provider has no insert.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use strata_storage::docs::{AlertHistoryRow, DocStore};
use strata_storage::schema::UTC;
use strata_storage::{TenantId, TimeRange};

use crate::catalog_table::CatalogRows;

/// The table's name in a tenant's session.
pub const ALERTS_TABLE: &str = "alerts";

/// The columns of `alerts` (docs/SCHEMA.md).
pub fn alerts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
            false,
        ),
        Field::new("alertname", DataType::Utf8, false),
        Field::new("fingerprint", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("labels", DataType::Utf8, false),
        Field::new("annotations", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ]))
}

/// One tenant's alert history.
pub struct AlertsTable {
    store: Arc<dyn DocStore>,
    tenant: TenantId,
    schema: SchemaRef,
}

impl fmt::Debug for AlertsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertsTable")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl AlertsTable {
    /// `tenant`'s rows of `store`, and only those.
    pub fn new(store: Arc<dyn DocStore>, tenant: TenantId) -> Self {
        Self {
            store,
            tenant,
            schema: alerts_schema(),
        }
    }
}

/// The rows as a batch of [`alerts_schema`].
pub fn alerts_batch(rows: &[AlertHistoryRow]) -> Result<RecordBatch> {
    let text = |f: fn(&AlertHistoryRow) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampNanosecondArray::from(rows.iter().map(|r| r.time).collect::<Vec<_>>())
                .with_timezone(UTC),
        ),
        text(|r| &r.alertname),
        text(|r| &r.fingerprint),
        text(|r| &r.state),
        Arc::new(rows.iter().map(|r| r.value).collect::<Float64Array>()),
        text(|r| &r.labels),
        text(|r| &r.annotations),
        text(|r| &r.source),
    ];
    Ok(RecordBatch::try_new(alerts_schema(), columns)?)
}

#[async_trait]
impl CatalogRows for AlertsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn has_time(&self) -> bool {
        true
    }

    async fn rows(&self, range: TimeRange, limit: Option<usize>) -> Result<RecordBatch> {
        let rows = (self.store.list_history(&self.tenant, range, limit).await)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        debug_assert!(rows.iter().all(|r| r.tenant == self.tenant));
        alerts_batch(&rows)
    }
}
