//! Turning buffered record batches into sorted, compressed Parquet files.
//!
//! Rows are split by the hour of `time` (one Hive partition per hour), sorted by the
//! signal's sort key (`schema::sort_columns`) and written with zstd, dictionaries for
//! strings, page statistics (on strings only where filters prune by them), delta encoding
//! for timestamps and a bloom filter on `trace_id`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::UInt32Type;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use chrono::{DateTime, Timelike, Utc};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::resources::{
    Numbering, RESOURCE_ATTRIBUTES, RESOURCES_ID_KEY, RESOURCES_KEY, file_schema_of,
};
use crate::schema::{TIME_COLUMN, file_schema_for, sort_columns};
use crate::{Error, Result, Signal};

/// Nanoseconds in one hour, the width of a time partition.
pub const HOUR_NS: i64 = 3_600 * 1_000_000_000;

/// Rows per Parquet row group: small enough for statistics and trace id bloom filters to
/// prune, large enough to compress well.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows per row group of a logs file. Lines stored by field keep a dictionary per field
/// position, written again in every row group: the benchmark's hour of 208 k access log
/// lines takes 2 % fewer bytes in one row group than in two of [`ROW_GROUP_ROWS`] (12.46 →
/// 12.21 B per line, docs/BENCHMARKS.md, "Round 14"). Twice the rows of other signals, so a
/// merge input's row group (what compaction holds per input) stays a few MiB.
pub const LOGS_ROW_GROUP_ROWS: usize = 256 * 1024;

/// Rows per row group of a signal's files.
pub fn row_group_rows(signal: Signal) -> usize {
    match signal {
        Signal::Logs => LOGS_ROW_GROUP_ROWS,
        Signal::Spans | Signal::Metrics => ROW_GROUP_ROWS,
    }
}

/// zstd level of files written by a flush: the fastest, since flushes are on the ingest
/// path and compaction rewrites every file of a settled hour at [`COMPACTION_ZSTD_LEVEL`]
/// (level 1 cost 5-10 % less CPU per flushed span or log record than 3, for 1 % more
/// bytes, or fewer).
pub const FLUSH_ZSTD_LEVEL: i32 = 1;
/// zstd level of files written by compaction: denser, off the ingest path.
pub const COMPACTION_ZSTD_LEVEL: i32 = 6;

/// Floating-point columns whose values rarely repeat (measurements): byte-stream-split
/// groups their bytes by significance so that zstd finds the repetition in exponents and
/// high mantissa bytes.
const MEASUREMENT_COLUMNS: [&str; 5] = ["value", "sum", "min", "max", "zero_threshold"];

/// String columns whose page statistics are written, for the filters that prune by them:
/// the sort keys (`service_name`, `metric_name`), the few-valued columns dashboards filter
/// on, and `trace_id` (a file or row group of few traces is ruled out by its min/max before
/// its bloom filter is read).
pub const PRUNING_STRING_COLUMNS: [&str; 11] = [
    "service_name",
    "scope_name",
    "trace_id",
    "name",
    "kind",
    "status_code",
    "severity_text",
    "event_name",
    "metric_name",
    "metric_type",
    "aggregation_temporality",
];

/// Columns whose values are unique to (almost) every row: span ids, span durations and log
/// bodies (a template's parameters make most lines unique). A dictionary of them only grows
/// until the writer falls back to plain encoding, and costs a hash lookup per value until
/// then. Written plain: spans take 12 % fewer bytes, app logs 3 % and nginx lines 1 %, and
/// sorting plus encoding them in process is 1-6 % faster. `trace_id` keeps its dictionary:
/// a trace's spans of one service lie together and share it.
pub const PLAIN_COLUMNS: [&str; 4] = ["span_id", "parent_span_id", "duration_ns", "body"];

/// Writer settings of a signal's files at a zstd level.
///
/// Pages are written in the v1 format: its repetition and definition levels are compressed
/// with the values, which matters for the map and list columns (in v2 pages the levels of a
/// ten-entry attribute map stay uncompressed and cost more than the entries).
pub fn writer_properties(signal: Signal, zstd_level: i32) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows(signal)));
    let schema = file_schema_for(signal);
    let leaves = ArrowSchemaConverter::new()
        .convert(&schema)
        .expect("the table schemas convert to Parquet");
    for leaf in leaves.columns() {
        // Min/max of a string column cost a string comparison per value, twice: worth it
        // only where a filter can prune by them. Every other string leaf (attribute map
        // entries, random ids, free text, nested items) is written without statistics.
        let parts = leaf.path().parts();
        let prunes = parts.len() == 1 && PRUNING_STRING_COLUMNS.contains(&parts[0].as_str());
        if leaf.physical_type() == PhysicalType::BYTE_ARRAY && !prunes {
            builder =
                builder.set_column_statistics_enabled(leaf.path().clone(), EnabledStatistics::None);
        }
        // At any depth: the ids of links and exemplars too.
        if parts
            .last()
            .is_some_and(|name| PLAIN_COLUMNS.contains(&name.as_str()))
        {
            builder = builder.set_column_dictionary_enabled(leaf.path().clone(), false);
        }
    }
    for field in schema.fields() {
        if matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(..)) {
            // Sorted nanosecond timestamps delta-encode to a few bits each.
            let path = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    if signal == Signal::Metrics {
        for name in MEASUREMENT_COLUMNS {
            let path = ColumnPath::from(name);
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
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
    /// The rows in the file layout ([`file_schema_for`]).
    pub batch: RecordBatch,
    /// The file's resources (JSON, see [`crate::resources`]); `None` for rows without
    /// resource attributes.
    pub resources: Option<String>,
    pub min_time: i64,
    pub max_time: i64,
}

/// Splits `batches` by the hour of `time` and sorts each part by the signal's sort key.
///
/// The rows are copied once: the sort runs over the key columns only (concatenated), and
/// each hour's rows are then gathered from the input batches in sorted order. Resource
/// attribute maps are not copied: the batches' distinct maps (a write buffer's dictionaries,
/// or each row's map) are numbered in arrival order (reading the batches front to back),
/// each row's number is gathered, and each part keeps its distinct maps once
/// ([`crate::resources`]).
pub fn partition_and_sort(signal: Signal, batches: &[RecordBatch]) -> Result<Vec<PartitionBatch>> {
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    // Global row number → (batch, row).
    let mut origin: Vec<(usize, usize)> =
        Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for (b, batch) in batches.iter().enumerate() {
        origin.extend((0..batch.num_rows()).map(|r| (b, r)));
    }
    let key_column = |name: &str| -> Result<ArrayRef> {
        let parts: Vec<&dyn Array> = batches
            .iter()
            .map(|b| column(signal, b, name).map(|c| c.as_ref()))
            .collect::<Result<_>>()?;
        Ok(arrow::compute::concat(&parts)?)
    };
    let time = key_column(TIME_COLUMN)?;
    let time = time
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| Error::Schema {
            signal,
            reason: "time is not a nanosecond timestamp".into(),
        })?;
    let hours = arrow::array::Int64Array::from_iter_values(
        time.values().iter().map(|t| t.div_euclid(HOUR_NS)),
    );
    let mut keys = Vec::new();
    for name in sort_columns(signal) {
        keys.push(key_column(name)?);
    }
    let order = sort_order(&hours, &keys)?;

    // The batches in the file layout, each row's resource map replaced by its number.
    let numbering = match batches[0].schema().index_of(RESOURCE_ATTRIBUTES) {
        Ok(index) => {
            let maps: Vec<&ArrayRef> = batches.iter().map(|b| b.column(index)).collect();
            Some((index, Numbering::of_buffer(&maps)?))
        }
        Err(_) => None,
    };
    let file_schema = file_schema_of(&batches[0].schema());
    let numbered: Vec<RecordBatch> = match &numbering {
        Some((index, numbering)) => batches
            .iter()
            .zip(&numbering.ids)
            .map(|(batch, ids)| {
                let mut columns = batch.columns().to_vec();
                columns[*index] = Arc::new(ids.clone());
                RecordBatch::try_new(file_schema.clone(), columns)
            })
            .collect::<std::result::Result<_, _>>()?,
        None => batches.iter().map(|b| (*b).clone()).collect(),
    };
    let numbered: Vec<&RecordBatch> = numbered.iter().collect();

    let mut parts = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let hour = hours.value(order[start] as usize);
        let mut end = start;
        while end < order.len() && hours.value(order[end] as usize) == hour {
            end += 1;
        }
        let rows: Vec<(usize, usize)> = order[start..end]
            .iter()
            .map(|&i| origin[i as usize])
            .collect();
        let mut batch = crate::lines::to_file(&crate::gather::gather(&numbered, &rows)?)?;
        let mut resources = None;
        if let Some((index, numbering)) = &numbering {
            let ids = batch.column(*index).as_primitive::<UInt32Type>();
            let (ids, json) = numbering.for_file(ids);
            let mut columns = batch.columns().to_vec();
            columns[*index] = Arc::new(ids);
            batch = RecordBatch::try_new(batch.schema(), columns)?;
            resources = Some(json);
        }
        let (min_time, max_time) = order[start..end]
            .iter()
            .map(|&i| time.value(i as usize))
            .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        parts.push(PartitionBatch {
            hour_start: hour * HOUR_NS,
            batch,
            resources,
            min_time,
            max_time,
        });
        start = end;
    }
    Ok(parts)
}

/// The rows in the order of their hour, then of `keys`; equal rows in input order.
///
/// Each row's key is a few integers that compare as the columns do: a string column by the
/// rank of its value among the column's distinct values (these are few: service or metric
/// names), a timestamp or integer by its value. Comparing them is a few instructions, where
/// comparing the row format's bytes was a `memcmp` into a buffer the size of the keys.
/// Keys of other types, or integers with nulls, are sorted on the row format.
fn sort_order(hours: &arrow::array::Int64Array, keys: &[ArrayRef]) -> Result<Vec<u32>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, TimeUnit, TimestampNanosecondType, UInt64Type};
    let rows = hours.len();
    let min_hour = hours.values().iter().copied().min().unwrap_or(0);
    // Each column as order-preserving u64s: the first joins the hour in one word.
    let mut words: Vec<Vec<u64>> = Vec::with_capacity(keys.len());
    for key in keys {
        words.push(match key.data_type() {
            DataType::Utf8 => string_ranks(key.as_string::<i32>()),
            DataType::UInt64 if key.null_count() == 0 => {
                key.as_primitive::<UInt64Type>().values().to_vec()
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) if key.null_count() == 0 => key
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .iter()
                .map(|&t| (t as u64) ^ (1 << 63))
                .collect(),
            _ => return sort_on_rows(hours, keys),
        });
    }
    // The hour and the first column in one word: an hour fits 32 bits counted from the
    // batch's first (for 490,000 years), and so does a rank.
    let Some(ranks) = words.first() else {
        return sort_on_rows(hours, keys);
    };
    let mut first = Vec::with_capacity(rows);
    for (&hour, &rank) in hours.values().iter().zip(ranks) {
        let hour = (hour - min_hour) as u64;
        if hour >> 32 != 0 || rank >> 32 != 0 {
            return sort_on_rows(hours, keys);
        }
        first.push((hour << 32) | rank);
    }
    Ok(match words.as_slice() {
        [_, b] => sorted(rows, |i| [first[i], b[i]]),
        [_, b, c] => sorted(rows, |i| [first[i], b[i], c[i]]),
        _ => sort_on_rows(hours, keys)?,
    })
}

/// The row numbers `0..rows` in the order of their keys, ties in input order.
fn sorted<const K: usize>(rows: usize, key: impl Fn(usize) -> [u64; K]) -> Vec<u32> {
    let mut keyed: Vec<([u64; K], u32)> = (0..rows).map(|i| (key(i), i as u32)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Each row's rank among the column's distinct values in byte order, from 1; 0 for null.
fn string_ranks(strings: &arrow::array::StringArray) -> Vec<u64> {
    let mut distinct: std::collections::HashMap<&str, u32> = Default::default();
    let mut ids = Vec::with_capacity(strings.len());
    let mut last: Option<(&str, u32)> = None;
    for value in strings.iter() {
        let id = match (value, last) {
            (None, _) => u32::MAX,
            (Some(v), Some((l, id))) if v == l => id,
            (Some(v), _) => {
                let next = distinct.len() as u32;
                let id = *distinct.entry(v).or_insert(next);
                last = Some((v, id));
                id
            }
        };
        ids.push(id);
    }
    let mut by_value: Vec<(&str, u32)> = distinct.into_iter().collect();
    by_value.sort_unstable();
    let mut rank = vec![0u64; by_value.len()];
    for (r, (_, id)) in by_value.iter().enumerate() {
        rank[*id as usize] = r as u64 + 1;
    }
    ids.into_iter()
        .map(|id| if id == u32::MAX { 0 } else { rank[id as usize] })
        .collect()
}

/// [`sort_order`] on the row format, for any key types.
fn sort_on_rows(hours: &arrow::array::Int64Array, keys: &[ArrayRef]) -> Result<Vec<u32>> {
    let mut columns: Vec<ArrayRef> = vec![Arc::new(hours.clone())];
    columns.extend(keys.iter().cloned());
    let converter = RowConverter::new(
        columns
            .iter()
            .map(|k| SortField::new(k.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(&columns)?;
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    Ok(order)
}

/// Encodes sorted table rows as one Parquet file, as a flush writes them.
pub fn encode(signal: Signal, batch: &RecordBatch) -> Result<Bytes> {
    encode_with_level(signal, batch, FLUSH_ZSTD_LEVEL)
}

/// Encodes sorted table rows as one Parquet file at a zstd level.
pub fn encode_with_level(signal: Signal, batch: &RecordBatch, zstd_level: i32) -> Result<Bytes> {
    let (batch, resources) = crate::resources::to_file(batch)?;
    let batch = crate::lines::to_file(&batch)?;
    encode_file(signal, &batch, resources.as_deref(), zstd_level)
}

/// Encodes sorted rows in the file layout, with their resources, as one Parquet file.
pub fn encode_file(
    signal: Signal,
    batch: &RecordBatch,
    resources: Option<&str>,
    zstd_level: i32,
) -> Result<Bytes> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let props = writer_properties(signal, zstd_level);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(&with_backed_strings(batch)?)?;
    if let Some(resources) = resources {
        append_resources(resources, |kv| writer.append_key_value_metadata(kv));
    }
    writer.close()?;
    Ok(Bytes::from(out))
}

/// Hands a file's resources, and a fresh id for them, to a writer's key-value metadata.
pub fn append_resources(
    resources: &str,
    mut append: impl FnMut(parquet::file::metadata::KeyValue),
) {
    use parquet::file::metadata::KeyValue;
    append(KeyValue::new(
        RESOURCES_KEY.to_string(),
        resources.to_string(),
    ));
    append(KeyValue::new(
        RESOURCES_ID_KEY.to_string(),
        uuid::Uuid::now_v7().simple().to_string(),
    ));
}

/// The rows with every string column's bytes at a real address, for the Parquet writer.
///
/// A string column whose values are all empty (or null) holds no bytes, and arrow gives its
/// empty data buffer a dangling address in the never-mapped first page. The writer's
/// dictionary compares each value with the entry its hash finds, and glibc's AVX-512
/// `memcmp` reads even an empty string with a masked vector load, which at an unmapped
/// address takes a microcode assist: a column of empty strings written at a flush's
/// settings cost 352 ns per value against 19 ns with real memory behind it
/// (`SYNTH=1 examples/column_cost`), and TSBS points carry two such columns (`description`,
/// `scope_version`), 29 % of their flush's encoding. Each such column is given a small
/// allocation of its own; the values are the same.
pub fn with_backed_strings(batch: &RecordBatch) -> Result<RecordBatch> {
    let Some(columns) = backed_columns(batch.columns())? else {
        return Ok(batch.clone());
    };
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The arrays with [`backed`] in place of each one it changes; `None` if it changes none.
fn backed_columns(arrays: &[ArrayRef]) -> Result<Option<Vec<ArrayRef>>> {
    let mut changed = None::<Vec<ArrayRef>>;
    for (i, array) in arrays.iter().enumerate() {
        if let Some(new) = backed(array)? {
            changed.get_or_insert_with(|| arrays.to_vec())[i] = new;
        }
    }
    Ok(changed)
}

/// The array with its string data (at any depth of lists, maps and structs) over real
/// memory; `None` when it already is.
fn backed(array: &ArrayRef) -> Result<Option<ArrayRef>> {
    use arrow::array::{AsArray, ListArray, MapArray, StringArray, StructArray};
    use arrow::datatypes::DataType;
    Ok(match array.data_type() {
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            if strings.is_empty() || !strings.values().is_empty() {
                return Ok(None);
            }
            // A real allocation that holds no bytes.
            let values = arrow::buffer::Buffer::from_vec(Vec::<u8>::with_capacity(64));
            Some(Arc::new(StringArray::try_new(
                strings.offsets().clone(),
                values,
                strings.nulls().cloned(),
            )?))
        }
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            backed_columns(structs.columns())?
                .map(|columns| {
                    StructArray::try_new(fields.clone(), columns, structs.nulls().cloned())
                })
                .transpose()?
                .map(|a| Arc::new(a) as ArrayRef)
        }
        DataType::List(field) => {
            let lists = array.as_list::<i32>();
            backed(lists.values())?
                .map(|values| {
                    ListArray::try_new(
                        field.clone(),
                        lists.offsets().clone(),
                        values,
                        lists.nulls().cloned(),
                    )
                })
                .transpose()?
                .map(|a| Arc::new(a) as ArrayRef)
        }
        DataType::Map(field, ordered) => {
            let maps = array.as_map();
            let entries: ArrayRef = Arc::new(maps.entries().clone());
            backed(&entries)?
                .map(|entries| {
                    MapArray::try_new(
                        field.clone(),
                        maps.offsets().clone(),
                        entries.as_struct().clone(),
                        maps.nulls().cloned(),
                        *ordered,
                    )
                })
                .transpose()?
                .map(|a| Arc::new(a) as ArrayRef)
        }
        _ => None,
    })
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
    fn writer_settings_per_signal() {
        let props = |s| writer_properties(s, FLUSH_ZSTD_LEVEL);
        let trace = ColumnPath::from("trace_id");
        assert!(
            props(Signal::Spans)
                .bloom_filter_properties(&trace)
                .is_some()
        );
        assert!(
            props(Signal::Logs)
                .bloom_filter_properties(&trace)
                .is_some()
        );
        assert!(
            props(Signal::Metrics)
                .bloom_filter_properties(&trace)
                .is_none()
        );
        let value = ColumnPath::from("value");
        assert_eq!(
            props(Signal::Metrics).encoding(&value),
            Some(Encoding::BYTE_STREAM_SPLIT)
        );
        assert!(!props(Signal::Metrics).dictionary_enabled(&value));
        let time = ColumnPath::from("time");
        let logs = props(Signal::Logs);
        assert_eq!(logs.encoding(&time), Some(Encoding::DELTA_BINARY_PACKED));
        assert!(!logs.dictionary_enabled(&time));
        assert_eq!(logs.writer_version(), WriterVersion::PARQUET_1_0);
        // Logs in row groups of 256 Ki rows, spans and metrics of 128 Ki.
        assert_eq!(logs.max_row_group_row_count(), Some(256 * 1024));
        assert_eq!(
            props(Signal::Spans).max_row_group_row_count(),
            Some(ROW_GROUP_ROWS)
        );
        // The line columns: the template and texts with a dictionary and no statistics.
        for name in ["body_template", "body_text_0", "body_number_11"] {
            assert!(logs.dictionary_enabled(&ColumnPath::from(name)), "{name}");
        }
        assert_eq!(
            logs.statistics_enabled(&ColumnPath::from("body_text_3")),
            EnabledStatistics::None
        );
        assert_eq!(
            writer_properties(Signal::Logs, COMPACTION_ZSTD_LEVEL).compression(&time),
            Compression::ZSTD(ZstdLevel::try_new(COMPACTION_ZSTD_LEVEL).unwrap())
        );
        // No statistics for the entries of attribute maps; page statistics elsewhere.
        for signal in Signal::ALL {
            let props = props(signal);
            // Resource attributes are not a column of the files (crate::resources).
            assert!(
                props.dictionary_enabled(&ColumnPath::from("resource")),
                "{signal}"
            );
            for map in ["attributes"] {
                for leaf in ["keys", "values"] {
                    let path = ColumnPath::new(vec![map.into(), "entries".into(), leaf.into()]);
                    assert_eq!(
                        props.statistics_enabled(&path),
                        EnabledStatistics::None,
                        "{signal} {map}.{leaf}"
                    );
                }
            }
            assert_eq!(props.statistics_enabled(&time), EnabledStatistics::Page);
            assert_eq!(
                props.statistics_enabled(&ColumnPath::from("service_name")),
                EnabledStatistics::Page
            );
        }
        // Per column: its dictionary (none for per-row ids, durations and log bodies, at any
        // depth; trace ids keep theirs) and its statistics (strings that no filter prunes by
        // have none; those that prune keep them).
        let (none, page) = (EnabledStatistics::None, EnabledStatistics::Page);
        for (signal, path, dictionary, statistics) in [
            (Signal::Spans, "span_id", false, none),
            (Signal::Spans, "parent_span_id", false, none),
            (Signal::Spans, "duration_ns", false, page),
            (Signal::Spans, "links.list.item.span_id", false, none),
            (Signal::Spans, "status_message", true, none),
            (Signal::Spans, "events.list.item.name", true, none),
            (Signal::Spans, "trace_id", true, page),
            (Signal::Spans, "status_code", true, page),
            (Signal::Spans, "name", true, page),
            (Signal::Logs, "span_id", false, none),
            (Signal::Logs, "body", false, none),
            (Signal::Logs, "scope_version", true, none),
            (Signal::Logs, "trace_id", true, page),
            (Signal::Logs, "severity_text", true, page),
            (Signal::Metrics, "exemplars.list.item.span_id", false, none),
            (Signal::Metrics, "description", true, none),
            (Signal::Metrics, "unit", true, none),
            (Signal::Metrics, "metric_name", true, page),
            (Signal::Metrics, "value", false, page),
        ] {
            let path = ColumnPath::new(path.split('.').map(String::from).collect());
            let props = props(signal);
            assert_eq!(
                props.dictionary_enabled(&path),
                dictionary,
                "{signal} {path} dictionary"
            );
            assert_eq!(
                props.statistics_enabled(&path),
                statistics,
                "{signal} {path} statistics"
            );
        }
    }

    #[test]
    fn rows_are_split_by_hour_and_sorted_by_the_signal_key() {
        // A two-column stand-in is enough: only the key columns are looked at.
        let schema = Arc::new(Schema::new(vec![
            Field::new("service_name", DataType::Utf8, false),
            Field::new("time", crate::schema::timestamp_type(), false),
        ]));
        let batch = |names: Vec<&str>, times: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
                ],
            )
            .unwrap()
        };
        let h = HOUR_NS;
        let parts = partition_and_sort(
            Signal::Spans,
            &[
                batch(vec!["b", "a", "b"], vec![h + 4, h + 3, 2]),
                batch(vec![], vec![]),
                batch(vec!["a", "a"], vec![1, h + 1]),
            ],
        )
        .unwrap();
        let rows = |p: &PartitionBatch| -> Vec<(String, i64)> {
            let names = p
                .batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let times = p
                .batch
                .column(1)
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .unwrap();
            (0..p.batch.num_rows())
                .map(|i| (names.value(i).to_string(), times.value(i)))
                .collect()
        };
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].hour_start, parts[0].min_time, parts[0].max_time),
            (0, 1, 2)
        );
        assert_eq!(rows(&parts[0]), vec![("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(
            (parts[1].hour_start, parts[1].min_time, parts[1].max_time),
            (h, h + 1, h + 4)
        );
        assert_eq!(
            rows(&parts[1]),
            vec![
                ("a".into(), h + 1),
                ("a".into(), h + 3),
                ("b".into(), h + 4)
            ]
        );
        assert!(partition_and_sort(Signal::Spans, &[]).unwrap().is_empty());
    }

    #[test]
    fn encoded_files_read_back() {
        let schema = crate::schema::logs_schema();
        let batch = RecordBatch::new_empty(schema.clone());
        let bytes = encode(Signal::Logs, &batch).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(
            reader.schema().fields(),
            crate::schema::file_schema_for(Signal::Logs).fields()
        );
    }

    /// Where each string leaf of `array` keeps its bytes, depth first.
    fn string_data(array: &ArrayRef, out: &mut Vec<usize>) {
        use arrow::array::AsArray;
        match array.data_type() {
            DataType::Utf8 => out.push(array.as_string::<i32>().values().as_ptr() as usize),
            DataType::Struct(_) => {
                for c in array.as_struct().columns() {
                    string_data(c, out);
                }
            }
            DataType::List(_) => string_data(array.as_list::<i32>().values(), out),
            DataType::Map(..) => string_data(
                &(Arc::new(array.as_map().entries().clone()) as ArrayRef),
                out,
            ),
            _ => {}
        }
    }

    #[test]
    fn empty_strings_reach_the_writer_over_real_memory() {
        use arrow::array::{ListArray, MapArray, StructArray};
        use arrow::buffer::OffsetBuffer;
        // As a flush builds them: a column of empty strings (a gauge's `description`), a
        // nested one (a link's `trace_state` inside a list of structs), a map whose values
        // are all empty and one whose values are all null (no bytes either way).
        let empty = |n: usize| Arc::new(StringArray::from(vec![""; n])) as ArrayRef;
        let map = |values: ArrayRef| -> ArrayRef {
            let entries = match crate::schema::map_entries_field().data_type() {
                DataType::Struct(fields) => StructArray::new(
                    fields.clone(),
                    vec![
                        Arc::new(StringArray::from(vec!["k"; 3])) as ArrayRef,
                        values,
                    ],
                    None,
                ),
                _ => unreachable!(),
            };
            Arc::new(MapArray::new(
                crate::schema::map_entries_field(),
                OffsetBuffer::from_lengths([1, 2]),
                entries,
                None,
                false,
            ))
        };
        let link = Field::new("trace_state", DataType::Utf8, false);
        let links: ArrayRef = Arc::new(ListArray::new(
            Arc::new(Field::new(
                "item",
                DataType::Struct(vec![link.clone()].into()),
                false,
            )),
            OffsetBuffer::from_lengths([0, 3]),
            Arc::new(StructArray::new(vec![link].into(), vec![empty(3)], None)),
            None,
        ));
        let columns = vec![
            empty(2),
            links,
            map(empty(3)),
            map(arrow::array::new_null_array(&DataType::Utf8, 3)),
            Arc::new(StringArray::from(vec!["a", ""])) as ArrayRef,
        ];
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let leaves = |b: &RecordBatch| {
            let mut out = Vec::new();
            b.columns().iter().for_each(|c| string_data(c, &mut out));
            out
        };
        // Arrow puts a column without bytes in the never-mapped first page.
        let before = leaves(&batch);
        assert_eq!(before.len(), 7);
        let dangling: Vec<bool> = before.iter().map(|&p| p < 4096).collect();
        assert_eq!(
            dangling,
            [true, true, false, true, false, true, false],
            "{before:x?}"
        );

        let backed = with_backed_strings(&batch).unwrap();
        assert_eq!(backed, batch, "the same values");
        let after = leaves(&backed);
        assert!(after.iter().all(|&p| p >= 4096), "{after:x?}");
        // Columns that had bytes are the same arrays, not copies.
        for (b, a) in before.iter().zip(&after).filter(|(b, _)| **b >= 4096) {
            assert_eq!(b, a);
        }
        // A batch with nothing to change comes back as it was.
        let full = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec!["x"])) as ArrayRef],
        )
        .unwrap();
        let same = with_backed_strings(&full).unwrap();
        assert!(Arc::ptr_eq(same.column(0), full.column(0)));
        // And the file holds the same rows.
        let bytes = encode(Signal::Metrics, &batch).unwrap();
        let read: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(read, [batch]);
    }

    #[test]
    fn rows_sort_on_integer_keys_as_on_the_row_format() {
        use arrow::array::{Int64Array, StringArray, UInt64Array};
        // A small xorshift: the same cases on every run.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let names = ["", "a", "ab", "b", "é", "checkout", "cart", "Z"];
        for case in 0..200 {
            let rows = 1 + next(300) as usize;
            // Few hours (some before 1970), few names with nulls, colliding times and series.
            let hours = Int64Array::from_iter_values((0..rows).map(|_| next(4) as i64 - 2));
            let strings: ArrayRef = Arc::new(StringArray::from_iter((0..rows).map(|_| {
                let i = next(names.len() as u64 + 1) as usize;
                names.get(i).copied()
            })));
            let series: ArrayRef = Arc::new(UInt64Array::from_iter_values(
                (0..rows).map(|_| next(3) << 62),
            ));
            let time: ArrayRef = Arc::new(TimestampNanosecondArray::from_iter_values(
                (0..rows).map(|_| next(5) as i64 * HOUR_NS / 2 - HOUR_NS),
            ));
            for keys in [
                vec![strings.clone(), time.clone()],
                vec![strings.clone(), series.clone(), time.clone()],
            ] {
                assert_eq!(
                    sort_order(&hours, &keys).unwrap(),
                    sort_on_rows(&hours, &keys).unwrap(),
                    "case {case}"
                );
            }
        }
        // Keys it has no integers for go to the row format.
        let hours = Int64Array::from(vec![0, 0]);
        let floats: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![2.0, 1.0]));
        assert_eq!(sort_order(&hours, &[floats]).unwrap(), [1, 0]);
    }
}
