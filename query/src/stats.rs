//! What a query read and what pruning spared it: reported with every SQL result.

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use parking_lot::Mutex;
use serde::Serialize;

/// Figures of one query. File counts come from Strata's time pruning (which files of the
/// catalog a scan opened); row-group and byte counts from DataFusion's Parquet scan
/// (statistics and bloom-filter pruning).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueryStats {
    /// Parquet files the scans read.
    pub files_scanned: u64,
    /// Files skipped because their time range cannot match the query's `time` filters, or
    /// (metrics) because none of their series matches its label filters.
    pub files_pruned: u64,
    /// Write-buffer batches the scans read.
    pub buffer_batches_scanned: u64,
    /// Row groups read (that survived pruning).
    pub row_groups_scanned: u64,
    /// Row groups skipped by column statistics.
    pub row_groups_pruned_statistics: u64,
    /// Row groups skipped by bloom filters (e.g. a `trace_id` lookup).
    pub row_groups_pruned_bloom_filter: u64,
    /// Bytes read from Parquet files.
    pub bytes_scanned: u64,
    /// Rows in the result.
    pub rows: u64,
    /// Time to plan and run, in milliseconds.
    pub elapsed_ms: u64,
}

/// Shared by the scans of one query session.
#[derive(Debug, Default, Clone)]
pub struct ScanCounter(Arc<Mutex<QueryStats>>);

impl ScanCounter {
    pub(crate) fn add_scan(&self, files_scanned: usize, files_pruned: usize, batches: usize) {
        let mut s = self.0.lock();
        s.files_scanned += files_scanned as u64;
        s.files_pruned += files_pruned as u64;
        s.buffer_batches_scanned += batches as u64;
    }

    pub(crate) fn snapshot(&self) -> QueryStats {
        self.0.lock().clone()
    }
}

/// Adds the Parquet scan metrics of an executed plan to `stats`.
pub(crate) fn add_plan_metrics(plan: &Arc<dyn ExecutionPlan>, stats: &mut QueryStats) {
    if let Some(metrics) = plan.metrics() {
        for metric in metrics.iter() {
            match metric.value() {
                MetricValue::PruningMetrics {
                    name,
                    pruning_metrics,
                } => match name.as_ref() {
                    "row_groups_pruned_statistics" => {
                        stats.row_groups_pruned_statistics += pruning_metrics.pruned() as u64;
                    }
                    "row_groups_pruned_bloom_filter" => {
                        stats.row_groups_pruned_bloom_filter += pruning_metrics.pruned() as u64;
                        stats.row_groups_scanned += pruning_metrics.matched() as u64;
                    }
                    _ => {}
                },
                MetricValue::Count { name, count } if name.as_ref() == "bytes_scanned" => {
                    stats.bytes_scanned += count.value() as u64;
                }
                _ => {}
            }
        }
    }
    for child in plan.children() {
        add_plan_metrics(child, stats);
    }
}
