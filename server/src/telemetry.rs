//! Strata's own telemetry: logs through `tracing`, and storage figures for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use strata_storage::Storage;
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
struct StorageCollector(Arc<Storage>);

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
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let gauge = ConstGauge::new(self.0.buffered_bytes() as i64);
        let metric = encoder.encode_descriptor(
            "strata_storage_buffered_bytes",
            "Bytes of Arrow data in the write buffer, not yet in Parquet",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        Ok(())
    }
}

/// Registers the storage collector.
pub fn register_storage(registry: &mut Registry, storage: Arc<Storage>) {
    registry.register_collector(Box::new(StorageCollector(storage)));
}
