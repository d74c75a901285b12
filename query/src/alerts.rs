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
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use strata_storage::TenantId;
use strata_storage::docs::{AlertHistoryRow, DocStore};
use strata_storage::schema::UTC;

use crate::table::time_range;

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
impl TableProvider for AlertsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters on `time` narrow what is read; DataFusion still applies every filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // With filters, DataFusion applies them above the scan: any `limit` it passes must
        // not cut rows before they are filtered.
        let read_limit = if filters.is_empty() { limit } else { None };
        let rows = self
            .store
            .list_history(&self.tenant, time_range(filters), read_limit)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        debug_assert!(rows.iter().all(|r| r.tenant == self.tenant));
        let batch = alerts_batch(&rows)?;
        let source =
            MemorySourceConfig::try_new(&[vec![batch]], self.schema.clone(), projection.cloned())?
                .with_limit(read_limit);
        Ok(DataSourceExec::from_data_source(source))
    }
}
