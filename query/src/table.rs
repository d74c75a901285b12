//! The `spans`, `logs` and `metrics` tables of one tenant: a DataFusion table provider over
//! the tenant's Parquet files (pruned by time) and its write buffer.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result, ScalarValue, project_schema};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use object_store::ObjectStore;
use strata_storage::schema::{TIME_COLUMN, schema_for};

use futures::StreamExt;
use strata_storage::catalog::FileMeta;
use strata_storage::resources::to_table;
use strata_storage::{Signal, Storage, TenantId, TimeRange};

use crate::resources::{FileLayoutAdapterFactory, ResourceFilters, scan_schema};
use crate::series_index::{Selected, SeriesIndex};
use crate::stats::ScanCounter;

/// One tenant's table of one signal.
pub struct SignalTable {
    storage: Arc<Storage>,
    tenant: TenantId,
    signal: Signal,
    schema: SchemaRef,
    store_url: ObjectStoreUrl,
    counter: ScanCounter,
    /// Where the Parquet bytes are read from: the storage's object store, or a query's
    /// [`ScanBudget`](crate::limits::ScanBudget) over it.
    store: Arc<dyn ObjectStore>,
    /// Series indexes of metrics files (`None`: scans read every row).
    series_index: Option<Arc<SeriesIndex>>,
}

impl fmt::Debug for SignalTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalTable")
            .field("tenant", &self.tenant)
            .field("signal", &self.signal)
            .finish()
    }
}

impl SignalTable {
    pub fn new(
        storage: Arc<Storage>,
        tenant: TenantId,
        signal: Signal,
        store_url: ObjectStoreUrl,
    ) -> Self {
        let store = storage.object_store();
        Self {
            storage,
            tenant,
            signal,
            schema: schema_for(signal),
            store_url,
            counter: ScanCounter::default(),
            store,
            series_index: None,
        }
    }

    /// Lets scans of the `metrics` table read only the series a label filter matches.
    pub fn with_series_index(mut self, index: Arc<SeriesIndex>) -> Self {
        if self.signal == Signal::Metrics {
            self.series_index = Some(index);
        }
        self
    }

    /// Reads the Parquet files through `store` (a query's scan budget).
    pub fn with_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = store;
        self
    }

    /// Reports what scans read to `counter` (the query's stats).
    pub fn with_counter(mut self, counter: ScanCounter) -> Self {
        self.counter = counter;
        self
    }
}

#[async_trait]
impl TableProvider for SignalTable {
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
        // Filters prune files and row groups; DataFusion still applies them to every row.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = time_range(filters);
        let snapshot = self.storage.snapshot(&self.tenant, self.signal, range);
        let partitions = state.config().target_partitions().max(1);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::with_capacity(2);

        // Parquet footers are parsed once per file and kept in DataFusion's metadata cache.
        let reader_factory = Arc::new(CachedParquetFileReaderFactory::new(
            self.store.clone(),
            state.runtime_env().cache_manager.get_file_metadata_cache(),
        ));
        let files = self
            .parquet_files(state, &reader_factory, &snapshot.files, filters)
            .await;
        self.counter.add_scan(
            files.len(),
            snapshot.files_pruned + (snapshot.files.len() - files.len()),
            snapshot.batches.len(),
        );
        if !files.is_empty() {
            // Spread files over the partitions, largest first, onto the least loaded group.
            let groups_len = partitions.min(files.len());
            let mut groups: Vec<(i64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups_len];
            for (size, file) in files {
                let (load, group) = groups
                    .iter_mut()
                    .min_by_key(|(load, _)| *load)
                    .expect("at least one group");
                *load += size;
                group.push(file);
            }
            // Files may store each resource once (crate::resources) and log lines by field
            // (crate::lines): they are read with those columns after the table's, never part
            // of the scan's output.
            let source = ParquetSource::new(scan_schema(&self.schema))
                .with_table_parquet_options(state.table_options().parquet.clone())
                .with_parquet_file_reader_factory(reader_factory);
            let projection = projection
                .cloned()
                .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
            let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
                .with_expr_adapter(Some(Arc::new(FileLayoutAdapterFactory)))
                .with_file_groups(
                    groups
                        .into_iter()
                        .map(|(_, files)| FileGroup::new(files))
                        .collect(),
                )
                .with_projection_indices(Some(projection))?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }

        if !snapshot.batches.is_empty() {
            // The buffer keeps each batch's resources once; the projected columns are taken
            // in the table's layout, each row's resource map put back only when projected.
            let schema = project_schema(&self.schema, projection)?;
            let columns = projection
                .cloned()
                .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
            // Filters of resource attributes alone are answered once per distinct map, and
            // only the rows they keep get their maps back.
            let resource_filters = ResourceFilters::new(state, &self.schema, filters);
            let mut batches = Vec::with_capacity(snapshot.batches.len());
            for batch in &snapshot.batches {
                let Some(batch) = resource_filters.select(batch.project(&columns)?)? else {
                    continue;
                };
                let table = to_table(&batch).map_err(|e| DataFusionError::External(Box::new(e)))?;
                batches.push(RecordBatch::try_new_with_options(
                    schema.clone(),
                    table.columns().to_vec(),
                    &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                )?);
            }
            if !batches.is_empty() {
                let chunk = batches.len().div_ceil(partitions);
                let memory_partitions: Vec<Vec<_>> =
                    batches.chunks(chunk).map(<[_]>::to_vec).collect();
                let source = MemorySourceConfig::try_new(&memory_partitions, schema, None)?
                    .with_limit(limit);
                inputs.push(DataSourceExec::from_data_source(source));
            }
        }

        Ok(match inputs.len() {
            0 => Arc::new(EmptyExec::new(project_schema(&self.schema, projection)?)),
            1 => inputs.pop().expect("one input"),
            _ => UnionExec::try_new(inputs)?,
        })
    }
}

impl SignalTable {
    /// The files of a scan, largest first, each with its size and, for a label filter on
    /// metrics, the rows its series index selects; files with no matching series are left out.
    async fn parquet_files(
        &self,
        state: &dyn Session,
        reader: &Arc<CachedParquetFileReaderFactory>,
        files: &[Arc<FileMeta>],
        filters: &[Expr],
    ) -> Vec<(i64, PartitionedFile)> {
        let mut files = files.to_vec();
        files.sort_by(|a, b| b.size_bytes.cmp(&a.size_bytes).then(a.path.cmp(&b.path)));
        let scan =
            |file: &FileMeta| PartitionedFile::new(file.path.clone(), file.size_bytes as u64);
        let (Some(index), Some(filter)) = (&self.series_index, SeriesIndex::label_filter(filters))
        else {
            return files.iter().map(|f| (f.size_bytes, scan(f))).collect();
        };
        let mut lookups = Vec::with_capacity(files.len());
        for meta in files {
            let (index, filter) = (index.clone(), &filter);
            lookups.push(async move {
                let file = scan(&meta);
                // An index that cannot be built or used costs only speed: the file is read
                // whole (and a read error, if that is what it was, reported by the scan).
                let selected = index
                    .select(state, reader.as_ref(), &meta.id, &file, filter)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::debug!(file = %meta.path, error = %e, "no series index");
                        Selected::All
                    });
                SeriesIndex::apply(file, selected).map(|file| (meta.size_bytes, file))
            });
        }
        let selected: Vec<_> = futures::stream::iter(lookups)
            .buffered(INDEX_BUILDS_AT_ONCE)
            .collect()
            .await;
        selected.into_iter().flatten().collect()
    }
}

/// Series indexes built at once by one scan.
const INDEX_BUILDS_AT_ONCE: usize = 4;

/// The time range a query's filters allow, for pruning files and buffered batches.
/// Understands comparisons of `time` with timestamp literals (either side), `BETWEEN` and
/// conjunctions; anything else leaves the range open.
pub fn time_range(filters: &[Expr]) -> TimeRange {
    let mut range = TimeRange::ALL;
    for filter in filters {
        narrow(&mut range, filter);
    }
    range
}

fn narrow(range: &mut TimeRange, expr: &Expr) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                narrow(range, left);
                narrow(range, right);
                return;
            }
            let (op, value) = match (is_time(left), is_time(right)) {
                (true, false) => match literal_ns(right) {
                    Some(v) => (*op, v),
                    None => return,
                },
                (false, true) => match (literal_ns(left), op.swap()) {
                    (Some(v), Some(op)) => (op, v),
                    _ => return,
                },
                _ => return,
            };
            match op {
                Operator::Eq => {
                    lower(range, value);
                    upper(range, value);
                }
                Operator::Gt => lower(range, value.saturating_add(1)),
                Operator::GtEq => lower(range, value),
                Operator::Lt => upper(range, value.saturating_sub(1)),
                Operator::LtEq => upper(range, value),
                _ => {}
            }
        }
        Expr::Between(between) if !between.negated && is_time(&between.expr) => {
            if let Some(lo) = literal_ns(&between.low) {
                lower(range, lo);
            }
            if let Some(hi) = literal_ns(&between.high) {
                upper(range, hi);
            }
        }
        _ => {}
    }
}

fn lower(range: &mut TimeRange, v: i64) {
    range.start = Some(range.start.map_or(v, |s| s.max(v)));
}

fn upper(range: &mut TimeRange, v: i64) {
    range.end = Some(range.end.map_or(v, |e| e.min(v)));
}

fn is_time(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == TIME_COLUMN)
}

/// A timestamp literal in nanoseconds since the epoch.
fn literal_ns(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn ranges_from_comparisons() {
        let r = time_range(&[col("time").gt_eq(ts(10)), col("time").lt(ts(20))]);
        assert_eq!(
            r,
            TimeRange {
                start: Some(10),
                end: Some(19)
            }
        );
        // Literal on the left, operator mirrored.
        let r = time_range(&[ts(10).lt(col("time"))]);
        assert_eq!(
            r,
            TimeRange {
                start: Some(11),
                end: None
            }
        );
        let r = time_range(&[col("time").between(ts(5), ts(7))]);
        assert_eq!(
            r,
            TimeRange {
                start: Some(5),
                end: Some(7)
            }
        );
        let r = time_range(&[col("time").gt(ts(1)).and(col("time").lt_eq(ts(3)))]);
        assert_eq!(
            r,
            TimeRange {
                start: Some(2),
                end: Some(3)
            }
        );
        let r = time_range(&[col("time").eq(ts(4))]);
        assert_eq!(
            r,
            TimeRange {
                start: Some(4),
                end: Some(4)
            }
        );
    }

    #[test]
    fn other_filters_leave_the_range_open() {
        let r = time_range(&[
            col("time").gt(ts(1)).or(col("time").lt(ts(0))),
            col("end_time").gt(ts(5)),
            col("time").not_eq(ts(3)),
            col("name").eq(lit("x")),
        ]);
        assert_eq!(r, TimeRange::ALL);
    }
}
