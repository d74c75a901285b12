//! Arrow schemas of the three signal tables: `spans`, `logs` and `metrics`.
//!
//! These are the exact schemas of the record batches that ingest produces, of the write
//! buffer, of every Parquet file and of the SQL tables a tenant sees. `docs/SCHEMA.md`
//! documents every column; keep the two in step.
//!
//! Conventions:
//! - every timestamp is `Timestamp(Nanosecond, "UTC")`;
//! - ids (trace, span) are lowercase hex strings, `NULL` when absent;
//! - attributes are `Map<Utf8, Utf8>`; non-string values are stored in the text form described
//!   in `docs/SCHEMA.md` (integers in decimal, doubles in shortest round-trip form, booleans as
//!   `true`/`false`, bytes in base64, arrays and key-value lists as JSON);
//! - enums (span kind, status code, metric type, temporality) are lowercase strings.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

use crate::Signal;

/// Name of the column every table is time-partitioned and pruned by.
pub const TIME_COLUMN: &str = "time";

/// The time zone every timestamp column carries.
pub const UTC: &str = "UTC";

/// `Timestamp(Nanosecond, "UTC")`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
}

/// Field of a map entry's key.
pub const MAP_KEY: &str = "keys";
/// Field of a map entry's value.
pub const MAP_VALUE: &str = "values";
/// Field of a map's entries struct.
pub const MAP_ENTRIES: &str = "entries";

/// The struct of one map entry: `{keys: Utf8 not null, values: Utf8}`.
pub fn map_entries_field() -> FieldRef {
    Arc::new(Field::new(
        MAP_ENTRIES,
        DataType::Struct(Fields::from(vec![
            Field::new(MAP_KEY, DataType::Utf8, false),
            Field::new(MAP_VALUE, DataType::Utf8, true),
        ])),
        false,
    ))
}

/// `Map<Utf8, Utf8>`, the type of every attribute column.
pub fn attributes_type() -> DataType {
    DataType::Map(map_entries_field(), false)
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn attrs(name: &str) -> Field {
    Field::new(name, attributes_type(), false)
}

fn u32(name: &str) -> Field {
    Field::new(name, DataType::UInt32, false)
}

/// Item field of `List<T>` columns.
pub fn list_item(data_type: DataType, nullable: bool) -> FieldRef {
    Arc::new(Field::new("item", data_type, nullable))
}

fn list(name: &str, item: DataType, nullable: bool) -> Field {
    Field::new(name, DataType::List(list_item(item, false)), nullable)
}

/// Columns every table starts with, in this order.
fn common_resource_fields() -> Vec<Field> {
    vec![
        utf8("service_name", false),
        attrs("resource_attributes"),
        utf8("scope_name", false),
        utf8("scope_version", false),
    ]
}

/// Fields of one span event (`spans.events` items).
pub fn span_event_fields() -> Fields {
    Fields::from(vec![
        ts("time", false),
        utf8("name", false),
        attrs("attributes"),
        u32("dropped_attributes_count"),
    ])
}

/// Fields of one span link (`spans.links` items).
pub fn span_link_fields() -> Fields {
    Fields::from(vec![
        utf8("trace_id", true),
        utf8("span_id", true),
        utf8("trace_state", true),
        u32("flags"),
        attrs("attributes"),
        u32("dropped_attributes_count"),
    ])
}

/// Fields of one summary quantile (`metrics.quantiles` items).
pub fn quantile_fields() -> Fields {
    Fields::from(vec![
        Field::new("quantile", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
    ])
}

/// Fields of one exemplar (`metrics.exemplars` items).
pub fn exemplar_fields() -> Fields {
    Fields::from(vec![
        ts("time", false),
        Field::new("value", DataType::Float64, true),
        utf8("trace_id", true),
        utf8("span_id", true),
        attrs("filtered_attributes"),
    ])
}

/// Schema of the `spans` table.
pub fn spans_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![
            ts("time", false),
            ts("end_time", false),
            Field::new("duration_ns", DataType::Int64, false),
            utf8("trace_id", false),
            utf8("span_id", false),
            utf8("parent_span_id", true),
            utf8("trace_state", true),
            u32("flags"),
            utf8("name", false),
            utf8("kind", false),
            utf8("status_code", false),
            utf8("status_message", true),
        ];
        fields.extend(common_resource_fields());
        fields.extend([
            attrs("attributes"),
            u32("dropped_attributes_count"),
            list("events", DataType::Struct(span_event_fields()), false),
            u32("dropped_events_count"),
            list("links", DataType::Struct(span_link_fields()), false),
            u32("dropped_links_count"),
        ]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `logs` table.
pub fn logs_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![
            ts("time", false),
            ts("observed_time", false),
            Field::new("severity_number", DataType::Int32, false),
            utf8("severity_text", false),
            utf8("body", true),
            utf8("trace_id", true),
            utf8("span_id", true),
            u32("flags"),
            utf8("event_name", true),
        ];
        fields.extend(common_resource_fields());
        fields.extend([attrs("attributes"), u32("dropped_attributes_count")]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `metrics` table: one wide table for every metric type.
pub fn metrics_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let f64n = |name: &str| Field::new(name, DataType::Float64, true);
        let mut fields = vec![
            ts("time", false),
            ts("start_time", true),
            utf8("metric_name", false),
            utf8("metric_type", false),
            utf8("description", false),
            utf8("unit", false),
            Field::new("series", DataType::UInt64, false),
        ];
        fields.extend(common_resource_fields());
        fields.extend([
            attrs("attributes"),
            utf8("aggregation_temporality", true),
            Field::new("is_monotonic", DataType::Boolean, true),
            u32("flags"),
            f64n("value"),
            Field::new("count", DataType::UInt64, true),
            f64n("sum"),
            f64n("min"),
            f64n("max"),
            list("bucket_counts", DataType::UInt64, true),
            list("explicit_bounds", DataType::Float64, true),
            Field::new("scale", DataType::Int32, true),
            Field::new("zero_count", DataType::UInt64, true),
            f64n("zero_threshold"),
            Field::new("positive_offset", DataType::Int32, true),
            list("positive_bucket_counts", DataType::UInt64, true),
            Field::new("negative_offset", DataType::Int32, true),
            list("negative_bucket_counts", DataType::UInt64, true),
            list("quantiles", DataType::Struct(quantile_fields()), true),
            list("exemplars", DataType::Struct(exemplar_fields()), false),
        ]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// The schema of a signal's table.
pub fn schema_for(signal: Signal) -> SchemaRef {
    match signal {
        Signal::Spans => spans_schema(),
        Signal::Logs => logs_schema(),
        Signal::Metrics => metrics_schema(),
    }
}

/// Schema of a signal's rows in the write buffer: the table's, with `resource_attributes` a
/// dictionary of each batch's distinct maps ([`crate::resources::buffer_schema_of`]). What
/// conversion builds and [`crate::Storage::snapshot`] returns.
pub fn buffer_schema_for(signal: Signal) -> SchemaRef {
    use crate::resources::buffer_schema_of;
    static SCHEMAS: LazyLock<[SchemaRef; 3]> = LazyLock::new(|| {
        [
            buffer_schema_of(&spans_schema()),
            buffer_schema_of(&logs_schema()),
            buffer_schema_of(&metrics_schema()),
        ]
    });
    SCHEMAS[match signal {
        Signal::Spans => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }]
    .clone()
}

/// Schema of a signal's Parquet files: the table's, with `resource_attributes` replaced by
/// `resource` (`UInt32`, an index into the file's resources; see [`crate::resources`]), and
/// for logs the columns of lines stored by field after the table's ([`crate::lines`]).
pub fn file_schema_for(signal: Signal) -> SchemaRef {
    use crate::resources::file_schema_of;
    static SCHEMAS: LazyLock<[SchemaRef; 3]> = LazyLock::new(|| {
        [
            file_schema_of(&spans_schema()),
            crate::lines::file_schema_of(&file_schema_of(&logs_schema())),
            file_schema_of(&metrics_schema()),
        ]
    });
    SCHEMAS[match signal {
        Signal::Spans => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }]
    .clone()
}

/// Columns a signal's rows are sorted by inside each Parquet file (and so, within a file,
/// the order a scan returns them in).
pub fn sort_columns(signal: Signal) -> &'static [&'static str] {
    match signal {
        Signal::Spans => &["service_name", "time"],
        // The observed time orders a second's lines (an access log's times are whole
        // seconds), so that it delta-encodes.
        Signal::Logs => &["service_name", "time", "observed_time"],
        Signal::Metrics => &["metric_name", "series", "time"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_the_common_columns() {
        for signal in Signal::ALL {
            let schema = schema_for(signal);
            for name in [
                "time",
                "service_name",
                "attributes",
                "resource_attributes",
                "scope_name",
            ] {
                assert!(
                    schema.field_with_name(name).is_ok(),
                    "{signal} lacks {name}"
                );
            }
            assert_eq!(schema.field(0).name(), TIME_COLUMN);
            assert_eq!(schema.field(0).data_type(), &timestamp_type());
            for col in sort_columns(signal) {
                assert!(schema.field_with_name(col).is_ok());
            }
        }
    }
}
