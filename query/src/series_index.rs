//! The series index of metrics files: which rows of a file belong to which time series, and
//! the labels of each series, so that a filter on labels reads only the matching rows.
//!
//! A metrics file is sorted by `(metric_name, series, time)`, so each series is a run of
//! consecutive rows, and every column that the `series` hash covers — `metric_name`,
//! `resource_attributes`, `attributes`, and `service_name` (taken from the resource) — is the
//! same on every row of a run. A query such as `resource_attributes['hostname'] = 'host_0'`
//! would otherwise decode the attribute maps of every row (nested columns are the costliest
//! to decode) to keep a few runs.
//!
//! For such a filter, [`SeriesIndex::select`] evaluates it once per run, on the labels of the
//! run's first row, and hands the Parquet scan a row selection of the matching runs: the scan
//! skips the other rows' pages and values. The index of a file is built on first use — the
//! `series` column in full, then the label columns of one row per run — and kept (files never
//! change) in a cache bounded in bytes. The filter stays in the plan and is still applied to
//! every selected row; the selection only removes rows it would reject.
//!
//! Two series share a run only if their 64-bit hashes collide, in which case the second
//! series' rows could be skipped by a filter that matches only it; the same hash is what
//! identifies a series everywhere else (series limits, `series` column).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::TryStreamExt;
use parking_lot::Mutex;
use strata_storage::resources::{
    RESOURCE_ATTRIBUTES, RESOURCE_COLUMN, json_of, materialise, parse, table_schema_of,
};

/// The column every other series column is a function of.
pub const SERIES: &str = "series";

/// Columns constant within a series (the `series` hash covers them).
pub const SERIES_COLUMNS: [&str; 5] = [
    SERIES,
    "metric_name",
    "service_name",
    "resource_attributes",
    "attributes",
];

/// Default bound of the cache, in bytes of index.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A file whose runs are more than this fraction of its rows gains little from an index: it
/// is scanned whole.
const MIN_ROWS_PER_RUN: u64 = 8;

/// Runs of one file and the labels of each.
#[derive(Debug)]
pub struct FileSeries {
    /// Rows of each run, in file order; they add up to the file's rows.
    run_rows: Vec<u64>,
    /// One row per run: the [`SERIES_COLUMNS`] of the run's first row.
    labels: RecordBatch,
}

impl FileSeries {
    fn bytes(&self) -> usize {
        self.run_rows.len() * 8 + self.labels.get_array_memory_size()
    }

    /// The selection of the runs `keep` says true for (null is false); `None` when all are
    /// kept.
    fn selection(&self, keep: &BooleanArray) -> Option<RowSelection> {
        if keep.true_count() == keep.len() && keep.null_count() == 0 {
            return None;
        }
        let mut selectors: Vec<RowSelector> = Vec::new();
        for (i, &rows) in self.run_rows.iter().enumerate() {
            let selected = keep.is_valid(i) && keep.value(i);
            match selectors.last_mut() {
                Some(last) if last.skip != selected => last.row_count += rows as usize,
                _ => selectors.push(if selected {
                    RowSelector::select(rows as usize)
                } else {
                    RowSelector::skip(rows as usize)
                }),
            }
        }
        Some(selectors.into())
    }
}

/// What a label filter leaves of a file.
#[derive(Debug)]
pub enum Selected {
    /// Every row may match: scan the file whole.
    All,
    /// No row matches: leave the file out.
    None,
    /// Only these rows may match.
    Rows(RowSelection),
}

/// Series indexes of metrics files, built on first use and kept up to a number of bytes.
#[derive(Debug)]
pub struct SeriesIndex {
    capacity: usize,
    inner: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// File id → its index (`None`: the file has too many runs to be worth one), and when it
    /// was last used.
    files: HashMap<String, (Option<Arc<FileSeries>>, u64)>,
    bytes: usize,
    clock: u64,
}

impl Default for SeriesIndex {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES)
    }
}

impl SeriesIndex {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Cache::default()),
        }
    }

    /// Bytes of index held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// The part of `filters` a series index can evaluate: the conjunction of those that read
    /// only [`SERIES_COLUMNS`] (and are deterministic). `None` when there is none.
    pub fn label_filter(filters: &[Expr]) -> Option<Expr> {
        let usable = filters.iter().filter(|f| {
            let columns = f.column_refs();
            !f.is_volatile()
                && !columns.is_empty()
                && columns
                    .iter()
                    .all(|c| SERIES_COLUMNS.contains(&c.name.as_str()))
        });
        conjunction(usable.cloned())
    }

    /// Which rows of `file` may match `filter` (from [`Self::label_filter`]).
    pub async fn select(
        &self,
        session: &dyn Session,
        reader: &dyn ParquetFileReaderFactory,
        file_id: &str,
        file: &PartitionedFile,
        filter: &Expr,
    ) -> Result<Selected> {
        let Some(series) = self.file(reader, file_id, file).await? else {
            return Ok(Selected::All);
        };
        let schema = DFSchema::try_from(series.labels.schema())?;
        // The index's columns are unqualified; the scan's filters may name the table.
        let filter = filter
            .clone()
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) if c.relation.is_some() => {
                        Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                    }
                    e => Transformed::no(e),
                })
            })?
            .data;
        let predicate = session.create_physical_expr(filter, &schema)?;
        let keep = predicate
            .evaluate(&series.labels)?
            .into_array(series.labels.num_rows())?;
        let Some(keep) = keep.as_boolean_opt() else {
            return Ok(Selected::All);
        };
        if keep.true_count() == 0 {
            return Ok(Selected::None);
        }
        Ok(series.selection(keep).map_or(Selected::All, Selected::Rows))
    }

    /// `file` as a Parquet scan of `selected`; `None` when nothing of it is to be read.
    pub fn apply(file: PartitionedFile, selected: Selected) -> Option<PartitionedFile> {
        match selected {
            Selected::All => Some(file),
            Selected::None => None,
            Selected::Rows(rows) => Some(file.with_extension(ParquetRowSelection::new(rows))),
        }
    }

    async fn file(
        &self,
        reader: &dyn ParquetFileReaderFactory,
        file_id: &str,
        file: &PartitionedFile,
    ) -> Result<Option<Arc<FileSeries>>> {
        {
            let mut cache = self.inner.lock();
            cache.clock += 1;
            let now = cache.clock;
            if let Some((series, used)) = cache.files.get_mut(file_id) {
                *used = now;
                return Ok(series.clone());
            }
        }
        let series = build(reader, file).await?.map(Arc::new);
        self.insert(file_id, series.clone());
        Ok(series)
    }

    fn insert(&self, file_id: &str, series: Option<Arc<FileSeries>>) {
        let bytes = series.as_ref().map_or(0, |s| s.bytes()) + file_id.len();
        if bytes > self.capacity {
            return;
        }
        let mut cache = self.inner.lock();
        cache.clock += 1;
        let now = cache.clock;
        if let Some((old, _)) = cache.files.insert(file_id.to_string(), (series, now)) {
            cache.bytes -= old.as_ref().map_or(0, |s| s.bytes()) + file_id.len();
        }
        cache.bytes += bytes;
        // Evict the least recently used until within bounds.
        while cache.bytes > self.capacity {
            let Some(oldest) = cache
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            if let Some((old, _)) = cache.files.remove(&oldest) {
                cache.bytes -= old.as_ref().map_or(0, |s| s.bytes()) + oldest.len();
            }
        }
    }
}

/// Reads the runs of `file` and the labels of each; `None` when the file has too many runs.
async fn build(
    factory: &dyn ParquetFileReaderFactory,
    file: &PartitionedFile,
) -> Result<Option<FileSeries>> {
    let metrics = ExecutionPlanMetricsSet::new();
    let open = || -> Result<Box<dyn AsyncFileReader>> {
        Ok(factory.create_reader(0, file.clone(), None, &metrics)?)
    };

    // 1. The `series` column, whole: where each run starts.
    let builder = ParquetRecordBatchStreamBuilder::new(open()?).await?;
    let schema = builder.schema().clone();
    let parquet_schema = builder.parquet_schema();
    let roots = |names: &[&str]| -> Option<Vec<usize>> {
        names.iter().map(|n| schema.index_of(n).ok()).collect()
    };
    // Files that store each resource once hold `resource` in place of the map.
    let stored_once = schema.index_of(RESOURCE_COLUMN).is_ok();
    let label_columns = SERIES_COLUMNS.map(|c| {
        if stored_once && c == RESOURCE_ATTRIBUTES {
            RESOURCE_COLUMN
        } else {
            c
        }
    });
    let (Some(series_root), Some(label_roots)) = (roots(&[SERIES]), roots(&label_columns)) else {
        return Ok(None);
    };
    let resources = match json_of(builder.metadata().file_metadata()) {
        Some(json) if stored_once => {
            Some(parse(json).map_err(|e| DataFusionError::External(Box::new(e)))?)
        }
        _ => None,
    };
    let series_mask = ProjectionMask::roots(parquet_schema, series_root);
    let label_mask = ProjectionMask::roots(parquet_schema, label_roots);
    let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let mut stream = builder.with_projection(series_mask).build()?;
    let mut run_rows: Vec<u64> = Vec::new();
    let mut previous: Option<u64> = None;
    while let Some(batch) = stream.try_next().await? {
        let values = batch.column(0).as_primitive::<UInt64Type>();
        for value in values.iter() {
            let value = value.unwrap_or_default();
            match run_rows.last_mut() {
                Some(rows) if previous == Some(value) => *rows += 1,
                _ => run_rows.push(1),
            }
            previous = Some(value);
        }
        if (run_rows.len() as u64) * MIN_ROWS_PER_RUN > total_rows {
            return Ok(None);
        }
    }
    if run_rows.iter().sum::<u64>() != total_rows {
        return Ok(None);
    }

    // 2. The label columns of the first row of each run.
    let mut first_rows: Vec<RowSelector> = Vec::with_capacity(run_rows.len() * 2);
    for &rows in &run_rows {
        first_rows.push(RowSelector::select(1));
        if rows > 1 {
            first_rows.push(RowSelector::skip(rows as usize - 1));
        }
    }
    let stream = ParquetRecordBatchStreamBuilder::new(open()?)
        .await?
        .with_projection(label_mask)
        .with_row_selection(first_rows.into())
        .with_batch_size(run_rows.len().max(1))
        .build()?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let labels = arrow::compute::concat_batches(&first.schema(), &batches)?;
    let labels = materialise(
        &table_schema_of(&labels.schema()),
        &labels,
        resources.as_ref(),
    )
    .map_err(|e| DataFusionError::External(Box::new(e)))?;
    if labels.num_rows() != run_rows.len() {
        return Ok(None);
    }
    Ok(Some(FileSeries { run_rows, labels }))
}
