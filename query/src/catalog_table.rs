//! Read-only SQL tables over rows kept in the catalog database (`audit`, `alerts`,
//! `incidents`): each scan asks the source for the tenant's rows — narrowed by the query's
//! filters on `time` and, when there are no filters, by its `LIMIT` — and serves them from
//! memory. These tables hold a few rows per administrative action or alert change, so this is
//! cheap at their scale. DDL and DML are refused before planning (`QueryEngine::sql_options`),
//! and the provider has no insert.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use strata_storage::TimeRange;

use crate::table::time_range;

/// Where a catalog table's rows come from: one tenant's, and only those.
#[async_trait]
pub trait CatalogRows: Send + Sync + fmt::Debug {
    fn schema(&self) -> SchemaRef;

    /// Whether [`CatalogRows::rows`] narrows its read by `range` (its rows have a `time`).
    fn has_time(&self) -> bool;

    /// The rows with `time` in `range` (everything for a table without time), at most
    /// `limit`, as one batch of [`CatalogRows::schema`].
    async fn rows(&self, range: TimeRange, limit: Option<usize>) -> Result<RecordBatch>;
}

/// A [`TableProvider`] over a [`CatalogRows`].
#[derive(Debug)]
pub struct CatalogTable<R>(pub R);

#[async_trait]
impl<R: CatalogRows + 'static> TableProvider for CatalogTable<R> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters on `time` narrow what is read; DataFusion still applies every filter.
        let pushdown = if self.0.has_time() {
            TableProviderFilterPushDown::Inexact
        } else {
            TableProviderFilterPushDown::Unsupported
        };
        Ok(vec![pushdown; filters.len()])
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
        let range = if self.0.has_time() {
            time_range(filters)
        } else {
            TimeRange::ALL
        };
        let batch = self.0.rows(range, read_limit).await?;
        let source =
            MemorySourceConfig::try_new(&[vec![batch]], self.0.schema(), projection.cloned())?
                .with_limit(read_limit);
        Ok(DataSourceExec::from_data_source(source))
    }
}
