//! Turning buffered record batches into sorted, compressed Parquet files.
//!
//! Rows are split by the hour of `time` (one Hive partition per hour), sorted by the
//! signal's sort key (`schema::sort_columns`) and written with zstd, dictionaries for
//! strings, page statistics, delta encoding for timestamps and a bloom filter on `trace_id`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampNanosecondArray, UInt32Array};
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use bytes::Bytes;
use chrono::{DateTime, Timelike, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::schema::{TIME_COLUMN, schema_for, sort_columns};
use crate::{Error, Result, Signal};

/// Nanoseconds in one hour, the width of a time partition.
pub const HOUR_NS: i64 = 3_600 * 1_000_000_000;

/// Rows per Parquet row group: small enough for statistics to prune, large enough to
/// compress well.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Writer settings of a signal's files.
pub fn writer_properties(signal: Signal) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    let schema = schema_for(signal);
    for field in schema.fields() {
        if matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(..)) {
            // Sorted nanosecond timestamps delta-encode to a few bits each.
            let path = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    if matches!(signal, Signal::Spans | Signal::Logs) {
        // Trace-by-id lookups skip row groups whose bloom filter says "absent".
        let path = ColumnPath::from("trace_id");
        builder = builder
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path, 0.01);
    }
    builder.build()
}

/// One file's worth of rows: all within one hour, sorted.
#[derive(Debug)]
pub struct PartitionBatch {
    /// Start of the hour, ns since the epoch.
    pub hour_start: i64,
    pub batch: RecordBatch,
    pub min_time: i64,
    pub max_time: i64,
}

/// Concatenates `batches`, splits them by hour of `time` and sorts each part by the
/// signal's sort key.
pub fn partition_and_sort(signal: Signal, batches: &[RecordBatch]) -> Result<Vec<PartitionBatch>> {
    let schema = schema_for(signal);
    let all = concat_batches(&schema, batches)?;
    if all.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let times = time_column(signal, &all)?;
    let mut by_hour: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (i, t) in times.values().iter().enumerate() {
        by_hour
            .entry(t.div_euclid(HOUR_NS) * HOUR_NS)
            .or_default()
            .push(i as u32);
    }
    let mut parts = Vec::with_capacity(by_hour.len());
    for (hour_start, rows) in by_hour {
        let part = if rows.len() == all.num_rows() {
            all.clone()
        } else {
            take_record_batch(&all, &UInt32Array::from(rows))?
        };
        let sorted = sort_batch(signal, &part)?;
        let times = time_column(signal, &sorted)?;
        let (min_time, max_time) = times
            .values()
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        parts.push(PartitionBatch {
            hour_start,
            batch: sorted,
            min_time,
            max_time,
        });
    }
    Ok(parts)
}

/// Sorts a batch by the signal's sort key (ascending, nulls first).
pub fn sort_batch(signal: Signal, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<SortColumn> = sort_columns(signal)
        .iter()
        .map(|name| {
            Ok(SortColumn {
                values: column(signal, batch, name)?.clone(),
                options: Some(SortOptions::default()),
            })
        })
        .collect::<Result<_>>()?;
    let indices = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

/// Encodes sorted rows as one Parquet file.
pub fn encode(signal: Signal, batch: &RecordBatch) -> Result<Bytes> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(writer_properties(signal)))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

/// Object-store path of a file: `tenant={t}/signal={s}/date=YYYY-MM-DD/hour=HH/{id}.parquet`.
pub fn object_path(tenant: &str, signal: Signal, hour_start: i64, id: &str) -> String {
    let at: DateTime<Utc> = DateTime::from_timestamp_nanos(hour_start);
    format!(
        "tenant={tenant}/signal={signal}/date={}/hour={:02}/{id}.parquet",
        at.format("%Y-%m-%d"),
        at.hour()
    )
}

fn column<'a>(signal: Signal, batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| Error::Schema {
        signal,
        reason: format!("missing column {name}"),
    })
}

fn time_column(signal: Signal, batch: &RecordBatch) -> Result<Arc<TimestampNanosecondArray>> {
    let col = column(signal, batch, TIME_COLUMN)?;
    let times = col
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| Error::Schema {
            signal,
            reason: "time is not a nanosecond timestamp".into(),
        })?;
    Ok(Arc::new(times.clone()))
}

/// Smallest and largest `time` of a batch, `None` when it has no rows.
pub fn time_bounds(signal: Signal, batch: &RecordBatch) -> Result<Option<(i64, i64)>> {
    let times = time_column(signal, batch)?;
    Ok(arrow::compute::min(times.as_ref()).zip(arrow::compute::max(times.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn paths_follow_the_hive_layout() {
        // 2024-03-05T07:00:00Z
        let hour = 1_709_622_000 * 1_000_000_000;
        assert_eq!(
            object_path("acme", Signal::Spans, hour, "0190"),
            "tenant=acme/signal=spans/date=2024-03-05/hour=07/0190.parquet"
        );
    }

    #[test]
    fn writer_enables_bloom_filters_only_where_trace_ids_live() {
        let trace = ColumnPath::from("trace_id");
        assert!(
            writer_properties(Signal::Spans)
                .bloom_filter_properties(&trace)
                .is_some()
        );
        assert!(
            writer_properties(Signal::Logs)
                .bloom_filter_properties(&trace)
                .is_some()
        );
        assert!(
            writer_properties(Signal::Metrics)
                .bloom_filter_properties(&trace)
                .is_none()
        );
        let time = ColumnPath::from("time");
        let props = writer_properties(Signal::Logs);
        assert_eq!(props.encoding(&time), Some(Encoding::DELTA_BINARY_PACKED));
        assert!(!props.dictionary_enabled(&time));
    }

    #[test]
    fn sort_uses_the_signal_key() {
        // A two-column stand-in is enough to check the key order of lexsort.
        let schema = Arc::new(Schema::new(vec![
            Field::new("service_name", DataType::Utf8, false),
            Field::new("time", crate::schema::timestamp_type(), false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["b", "a", "b", "a"])),
                Arc::new(TimestampNanosecondArray::from(vec![4, 3, 2, 1]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let sorted = sort_batch(Signal::Logs, &batch).unwrap();
        let names = sorted
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let times = sorted
            .column(1)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        assert_eq!(
            names.iter().flatten().collect::<Vec<_>>(),
            ["a", "a", "b", "b"]
        );
        assert_eq!(times.values().to_vec(), vec![1, 3, 2, 4]);
    }

    #[test]
    fn encoded_files_read_back() {
        let schema = crate::schema::logs_schema();
        let batch = RecordBatch::new_empty(schema.clone());
        let bytes = encode(Signal::Logs, &batch).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(reader.schema().fields().len(), schema.fields().len());
    }
}
