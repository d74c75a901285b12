//! What each column of a flush costs to encode: reads Parquet files written by a flush
//! (`PIPELINE_DUMP=dir examples/pipeline DATASET` keeps them), and encodes each top-level
//! column alone, as a flush would, printing its share of the time and of the bytes.
//!
//! ```text
//! cargo build --profile profiling -p strata-storage --example column_cost
//! target/profiling/examples/column_cost spans DIR [REPEATS]
//! COLUMN=resource_attributes target/profiling/examples/column_cost spans DIR  # one column
//! SYNTH=1 target/profiling/examples/column_cost                              # empty strings
//! ```

use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use strata_storage::Signal;
use strata_storage::parquet_file::encode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // SYNTH=1: the cost of empty strings without and with real memory behind them.
    if std::env::var_os("SYNTH").is_some() {
        synth();
        return;
    }
    let mut args = std::env::args().skip(1);
    let usage = "usage: column_cost spans|logs|metrics DIR [REPEATS]";
    let signal: Signal = args.next().expect(usage).parse().expect("a signal");
    let dir = args.next().expect(usage);
    let repeats: usize = args.next().map_or(5, |r| r.parse().expect("a count"));

    let mut batches = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("a directory") {
        let path = entry.expect("an entry").path();
        let file = std::fs::File::open(&path).expect("a file");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("Parquet")
            .with_batch_size(1 << 20)
            .build()
            .expect("a reader");
        batches.extend(reader.map(|b| b.expect("a batch")));
    }
    let schema = batches[0].schema();
    let batch = concat_batches(&schema, &batches).expect("one schema");
    let rows = batch.num_rows();

    let cost = |b: &RecordBatch| {
        let mut best = f64::INFINITY;
        let mut bytes = 0;
        for _ in 0..repeats {
            let t = Instant::now();
            bytes = encode(signal, b).expect("encodes").len();
            best = best.min(t.elapsed().as_secs_f64());
        }
        (best, bytes)
    };
    // COLUMN=name encodes that column alone, for a profiler.
    if let Ok(name) = std::env::var("COLUMN") {
        let one = batch
            .project(&[schema.index_of(&name).expect("a column of the table")])
            .expect("a column");
        let (s, bytes) = cost(&one);
        println!(
            "{name}: {:.0} ns/row, {:.2} B/row",
            s * 1e9 / rows as f64,
            bytes as f64 / rows as f64
        );
        return;
    }
    let (total_s, total_bytes) = cost(&batch);
    println!(
        "{rows} rows: {:.0} ns/row, {:.1} B/row",
        total_s * 1e9 / rows as f64,
        total_bytes as f64 / rows as f64
    );
    let mut lines = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let one = batch.project(&[i]).expect("a column");
        let (s, bytes) = cost(&one);
        lines.push((s, field.name().clone(), bytes));
    }
    lines.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (s, name, bytes) in lines {
        println!(
            "{name:28} {:7.0} ns/row {:5.1} % {:7.2} B/row",
            s * 1e9 / rows as f64,
            100.0 * s / total_s,
            bytes as f64 / rows as f64
        );
    }
}

/// A column of a million empty strings encoded as arrow builds it (no bytes, a dangling
/// address) and after `with_backed_strings`, and one of a million "x" for reference.
fn synth() {
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use std::sync::Arc;
    use strata_storage::parquet_file::{FLUSH_ZSTD_LEVEL, writer_properties};
    let n = 1_000_000;
    let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Utf8, false)]));
    let batch = |value: &str| {
        let column = Arc::new(StringArray::from(vec![value; n]));
        RecordBatch::try_new(schema.clone(), vec![column]).expect("one column")
    };
    let empty = batch("");
    let backed = strata_storage::parquet_file::with_backed_strings(&empty).expect("backed");
    for (label, batch) in [
        ("empty", empty),
        ("empty, backed", backed),
        ("x", batch("x")),
    ] {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            // The writer itself: `encode` would back the empty strings first.
            let props = writer_properties(Signal::Metrics, FLUSH_ZSTD_LEVEL);
            let mut out = Vec::new();
            let t = Instant::now();
            let mut writer =
                ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).expect("a writer");
            writer.write(&batch).expect("written");
            writer.close().expect("closed");
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{label}: {:.1} ns/row", best * 1e9 / n as f64);
    }
}
