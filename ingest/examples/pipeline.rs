//! The ingest pipeline in process, stage by stage, on one core: the "limit" figures of
//! `docs/BENCHMARKS.md`. Reads a data set written by `strata-bench generate` and prints JSON:
//!
//! ```text
//! cargo build --release -p strata-ingest --example pipeline
//! target/release/examples/pipeline traces.otlp
//! {"items": …, "decode_items_per_s": …, "convert_items_per_s": …, "parquet_items_per_s": …}
//! ```
//!
//! - decode: protobuf → OTLP structs;
//! - convert: protobuf → Arrow as the receivers do it (`OtlpSignal::convert_protobuf`:
//!   straight from the bytes where the fast path reads them, else decode and
//!   `strata_ingest::convert`),
//!   every batch kept for the next stages; `convert_warm`: the same, each batch dropped once
//!   built (the node's steady state), best of three passes;
//! - parquet: convert, then split by hour, sort and encode Parquet (`strata_storage::parquet_file`);
//!   `parquet_only` without the conversion, `sort` the split and sort alone; the converted
//!   batches are flushed in chunks of 64 MiB of Arrow memory as the write buffer seals them
//!   (`flushes` of them; `arrow_bytes_per_item` is what a converted item holds, by column on
//!   stderr with `PIPELINE_COLUMNS=1`);
//! - wal_encode: the rows form of each converted request's WAL record
//!   (`strata_storage::wal::encode_payload`). The receivers write it only for OTLP/JSON bodies
//!   and metrics the series limit cut; a protobuf request's record keeps the request's bytes.

use std::time::Instant;

/// The server's allocator, so that the stages cost here what they cost in the node.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use strata_bench::data::Signal as OtlpSignal;
use strata_ingest::OtlpSignal as _;
use strata_storage::Signal;
use strata_storage::parquet_file::{FLUSH_ZSTD_LEVEL, encode_file, partition_and_sort};

fn convert(signal: OtlpSignal, body: &Bytes) -> Option<arrow::array::RecordBatch> {
    let converted = match signal {
        OtlpSignal::Traces => strata_ingest::Traces::convert_protobuf(body, 0),
        OtlpSignal::Logs => strata_ingest::Logs::convert_protobuf(body, 0),
        OtlpSignal::Metrics => strata_ingest::Metrics::convert_protobuf(body, 0),
    };
    converted.ok()?.batch
}

fn main() {
    // As the node does (server/src/main.rs).
    strata_ingest::process::no_transparent_huge_pages();
    let path = std::env::args()
        .nth(1)
        .expect("usage: pipeline DATASET_FILE");
    let dataset = strata_bench::dataset_file::read(path.as_ref()).expect("a data set file");
    let signal = dataset.workload.signal();
    let table = match signal {
        OtlpSignal::Traces => Signal::Spans,
        OtlpSignal::Logs => Signal::Logs,
        OtlpSignal::Metrics => Signal::Metrics,
    };
    let items = dataset.total_items() as f64;

    let t = Instant::now();
    for body in &dataset.requests {
        let ok = match signal {
            OtlpSignal::Traces => ExportTraceServiceRequest::decode(body.as_ref()).is_ok(),
            OtlpSignal::Logs => ExportLogsServiceRequest::decode(body.as_ref()).is_ok(),
            OtlpSignal::Metrics => ExportMetricsServiceRequest::decode(body.as_ref()).is_ok(),
        };
        assert!(ok);
    }
    let decode = t.elapsed().as_secs_f64();

    // Steady state: each batch dropped once built, as the node's memory is reused; best of 3.
    let convert_warm = (0..3)
        .map(|_| {
            let t = Instant::now();
            for body in &dataset.requests {
                assert!(convert(signal, body).is_some());
            }
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);

    let t = Instant::now();
    let batches: Vec<_> = dataset
        .requests
        .iter()
        .filter_map(|b| convert(signal, b))
        .collect();
    let convert_s = t.elapsed().as_secs_f64();

    // The WAL record of each converted request, as `Storage::write` encodes it.
    let tenant = strata_storage::TenantId::new("bench").expect("a tenant id");
    let t = Instant::now();
    let mut wal_bytes = 0usize;
    for batch in &batches {
        wal_bytes += strata_storage::wal::encode_payload(&tenant, table, batch)
            .expect("encodes")
            .len();
    }
    let wal_s = t.elapsed().as_secs_f64();

    // Flushes of about 64 MiB of Arrow data, as the write buffer seals them.
    let t = Instant::now();
    let mut parquet_bytes = 0usize;
    let mut chunk = Vec::new();
    let mut chunk_bytes = 0usize;
    // PIPELINE_DUMP=dir keeps the files, for looking at their column sizes.
    let dump = std::env::var_os("PIPELINE_DUMP").map(std::path::PathBuf::from);
    let mut files = 0;
    let mut flushes = 0;
    let mut sort_s = 0.0;
    let mut flush = |chunk: &mut Vec<arrow::array::RecordBatch>| {
        flushes += 1;
        let sorting = Instant::now();
        let parts = partition_and_sort(table, chunk).expect("sorts");
        sort_s += sorting.elapsed().as_secs_f64();
        for part in parts {
            let bytes = encode_file(
                table,
                &part.batch,
                part.resources.as_deref(),
                FLUSH_ZSTD_LEVEL,
            )
            .expect("encodes");
            parquet_bytes += bytes.len();
            if let Some(dir) = &dump {
                files += 1;
                std::fs::create_dir_all(dir).expect("a dump directory");
                std::fs::write(dir.join(format!("{files}.parquet")), &bytes).expect("dump written");
            }
        }
        chunk.clear();
    };
    for batch in &batches {
        chunk_bytes += batch.get_array_memory_size();
        chunk.push(batch.clone());
        if chunk_bytes >= 64 << 20 {
            flush(&mut chunk);
            chunk_bytes = 0;
        }
    }
    flush(&mut chunk);
    let parquet_s = t.elapsed().as_secs_f64();
    let arrow_bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    // PIPELINE_COLUMNS=1 prints what a converted item holds, column by column, on stderr.
    if std::env::var_os("PIPELINE_COLUMNS").is_some() {
        let schema = batches.first().map(|b| b.schema());
        for (i, field) in schema.iter().flat_map(|s| s.fields().iter().enumerate()) {
            let bytes: usize = batches
                .iter()
                .map(|b| b.column(i).get_array_memory_size())
                .sum();
            eprintln!("{:>8.1} {}", bytes as f64 / items, field.name());
        }
    }

    println!(
        "{}",
        serde_json::json!({
            "items": items,
            "decode_items_per_s": items / decode,
            "convert_items_per_s": items / convert_s,
            "convert_warm_items_per_s": items / convert_warm,
            "parquet_only_items_per_s": items / parquet_s,
            "sort_items_per_s": items / sort_s,
            "parquet_items_per_s": items / (convert_s + parquet_s),
            "parquet_bytes_per_item": parquet_bytes as f64 / items,
            "arrow_bytes_per_item": arrow_bytes as f64 / items,
            "flushes": flushes,
            "wal_encode_items_per_s": items / wal_s,
            "wal_bytes_per_item": wal_bytes as f64 / items,
            "otlp_bytes_per_item": dataset.requests.iter().map(|r| r.len()).sum::<usize>() as f64 / items,
        })
    );
}
