//! Strata's own telemetry: logs through `tracing`, and storage figures for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use strata_ingest::limits::IngestUsage;
use strata_storage::Storage;
use strata_storage::cache::CacheStats;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber: human lines (coloured on a terminal) or JSON lines,
/// filtered by `filter` (`RUST_LOG` syntax).
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("invalid log filter {filter:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .try_init()
        }
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}

/// Storage figures, read at scrape time.
#[derive(Debug)]
struct StorageCollector(Arc<Storage>, Option<Arc<CacheStats>>);

impl Collector for StorageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let counters = [
            (
                "strata_storage_files_written",
                "Parquet files written by flushes",
                &stats.files_written,
            ),
            (
                "strata_storage_bytes_written",
                "Bytes of Parquet written to the object store",
                &stats.bytes_written,
            ),
            (
                "strata_storage_rows_flushed",
                "Rows moved from the write buffer to Parquet",
                &stats.rows_flushed,
            ),
            (
                "strata_storage_flush_errors",
                "Failed flush attempts (retried with backoff)",
                &stats.flush_errors,
            ),
            (
                "strata_storage_flushes_encoded",
                "Flushes sorted and encoded to Parquet (a retried flush reuses its encoding)",
                &stats.flushes_encoded,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let refused = [
            (
                "strata_storage_writes_refused_memory",
                "Writes refused because the write buffer was over its limit or the node over the soft limit of --memory-limit (also before a request was read)",
                &stats.writes_refused_memory,
            ),
            (
                "strata_storage_writes_refused_wal",
                "Writes refused because the write-ahead log was full",
                &stats.writes_refused_wal,
            ),
        ];
        for (name, help, value) in refused {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        if let Some(wal) = self.0.wal_stats() {
            let counters = [
                (
                    "strata_wal_records",
                    "Records appended to the WAL",
                    &wal.records,
                ),
                ("strata_wal_bytes", "Bytes appended to the WAL", &wal.bytes),
                (
                    "strata_wal_syncs",
                    "fsyncs of the WAL (one per group commit)",
                    &wal.syncs,
                ),
                (
                    "strata_wal_segments_deleted",
                    "WAL segments deleted after their data reached Parquet",
                    &wal.segments_deleted,
                ),
                (
                    "strata_wal_corrupt_tails",
                    "WAL segments found torn or corrupt at start and cut",
                    &wal.corrupt_tails,
                ),
                (
                    "strata_wal_replayed_records",
                    "WAL records replayed into the write buffer at start",
                    &wal.replayed_records,
                ),
                (
                    "strata_wal_refused_records",
                    "WAL request records found at start that no longer decode, logged and skipped",
                    &wal.refused_records,
                ),
            ];
            for (name, help, value) in counters {
                let counter = ConstCounter::new(value.load(Ordering::Relaxed));
                let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                counter.encode(metric)?;
            }
            encode_gauge(
                &mut encoder,
                "strata_wal_disk_bytes",
                "Bytes held by WAL segment files",
                wal.disk_bytes.load(Ordering::Relaxed) as i64,
            )?;
        }
        let memory = self.0.memory();
        if memory.limit() > 0 {
            encode_gauge(
                &mut encoder,
                "strata_memory_limit_bytes",
                "--memory-limit: exports are refused from 80 % of it",
                memory.limit() as i64,
            )?;
            encode_gauge(
                &mut encoder,
                "strata_memory_resident_bytes",
                "Resident set of the node at the last sample against --memory-limit",
                memory.resident() as i64,
            )?;
            encode_gauge(
                &mut encoder,
                "strata_memory_over_soft_limit",
                "1 while the node refuses exports for --memory-limit",
                i64::from(memory.is_over()),
            )?;
        }
        let m = self.0.maintenance_stats();
        encode_gauge(
            &mut encoder,
            "strata_compactions_running",
            "Compaction passes in progress",
            m.compactions_running.load(Ordering::Relaxed) as i64,
        )?;
        let maintenance = [
            (
                "strata_compaction_runs",
                "Partitions compacted",
                &m.compactions,
            ),
            (
                "strata_compaction_files_in",
                "Files merged away by compaction",
                &m.compaction_files_in,
            ),
            (
                "strata_compaction_bytes_in",
                "Bytes of files merged by compaction",
                &m.compaction_bytes_in,
            ),
            (
                "strata_compaction_bytes_out",
                "Bytes of files written by compaction",
                &m.compaction_bytes_out,
            ),
            (
                "strata_compaction_errors",
                "Failed partition compactions",
                &m.compaction_errors,
            ),
            (
                "strata_retention_files_deleted",
                "Files dropped by retention",
                &m.retention_files_deleted,
            ),
            (
                "strata_retention_rows_deleted",
                "Rows dropped by retention",
                &m.retention_rows_deleted,
            ),
            (
                "strata_retention_bytes_deleted",
                "Bytes dropped by retention",
                &m.retention_bytes_deleted,
            ),
            (
                "strata_gc_objects_deleted",
                "Objects deleted after their grace period",
                &m.objects_deleted,
            ),
            (
                "strata_gc_orphans_deleted",
                "Objects deleted because no catalog row knew them",
                &m.orphans_deleted,
            ),
        ];
        for (name, help, value) in maintenance {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        if let Some(cache) = &self.1 {
            let counters = [
                (
                    "strata_cache_hits",
                    "Object-store read cache block hits",
                    &cache.hits,
                ),
                (
                    "strata_cache_misses",
                    "Object-store read cache block misses",
                    &cache.misses,
                ),
                (
                    "strata_cache_fetched_bytes",
                    "Bytes fetched from the remote store on misses",
                    &cache.bytes_fetched,
                ),
                (
                    "strata_cache_evictions",
                    "Blocks evicted from the read cache",
                    &cache.evictions,
                ),
            ];
            for (name, help, value) in counters {
                let counter = ConstCounter::new(value.load(Ordering::Relaxed));
                let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                counter.encode(metric)?;
            }
            encode_gauge(
                &mut encoder,
                "strata_cache_bytes",
                "Bytes held by the object-store read cache",
                cache.bytes.load(Ordering::Relaxed) as i64,
            )?;
        }
        encode_gauge(
            &mut encoder,
            "strata_storage_buffered_bytes",
            "Bytes of Arrow data in the write buffer, not yet in Parquet",
            self.0.buffered_bytes() as i64,
        )
    }
}

/// Encodes one unlabelled gauge.
fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

/// Registers the storage collector.
pub fn register_storage(
    registry: &mut Registry,
    storage: Arc<Storage>,
    cache: Option<Arc<CacheStats>>,
) {
    registry.register_collector(Box::new(StorageCollector(storage, cache)));
}

/// A per-tenant figure: its name, help and how to read it from a tenant's use.
type UsageFigure = (&'static str, &'static str, fn(&IngestUsage) -> u64);

/// Per-tenant use of the limits, read at scrape time.
#[derive(Debug)]
struct TenantCollector {
    ingestor: Arc<strata_ingest::Ingestor>,
    engine: Arc<strata_query::QueryEngine>,
}

impl Collector for TenantCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let usage = self.ingestor.limiter().all_usage();
        let gauges: [UsageFigure; 1] = [(
            "strata_tenant_active_series",
            "Active metric series of a tenant on this node",
            |u| u.active_series as u64,
        )];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (tenant, u) in &usage {
                let gauge = ConstGauge::new(value(u) as i64);
                gauge.encode(family.encode_family(&[("tenant", tenant.as_str())])?)?;
            }
        }
        let counters: [UsageFigure; 3] = [
            (
                "strata_tenant_ingest_requests_refused_rate",
                "Exports refused because the tenant was over its ingest rate",
                |u| u.requests_refused_rate,
            ),
            (
                "strata_tenant_ingest_records_refused_rate",
                "Records in exports refused because the tenant was over its ingest rate",
                |u| u.records_refused_rate,
            ),
            (
                "strata_tenant_points_refused_cardinality",
                "Metric points dropped because their new series was over a cardinality limit",
                |u| u.points_refused_cardinality,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (tenant, u) in &usage {
                let counter = ConstCounter::new(value(u));
                counter.encode(family.encode_family(&[("tenant", tenant.as_str())])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "strata_tenant_queries_running",
            "Queries of a tenant running on this node",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (tenant, running) in self.engine.running_by_tenant() {
            let gauge = ConstGauge::new(running as i64);
            gauge.encode(family.encode_family(&[("tenant", tenant.as_str())])?)?;
        }
        Ok(())
    }
}

/// Registers the per-tenant usage collector.
pub fn register_tenants(
    registry: &mut Registry,
    ingestor: Arc<strata_ingest::Ingestor>,
    engine: Arc<strata_query::QueryEngine>,
) {
    registry.register_collector(Box::new(TenantCollector { ingestor, engine }));
}
