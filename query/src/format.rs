//! Query results as the SQL API returns them: JSON rows, CSV, or an Arrow IPC stream.
//!
//! JSON: `{"columns":[{"name":…,"type":…}],"rows":[[…],…],"stats":{…}}`. Values keep their JSON type
//! where JSON has one (numbers, booleans, strings, `null`); timestamps are RFC 3339 strings
//! in UTC with nine fractional digits; maps and structs are objects; lists are arrays;
//! binary is base64; non-finite floats are the strings `NaN`, `Infinity`, `-Infinity`.
//! CSV uses the same text for scalars and JSON text for nested values.

use std::io::Write;

use arrow::array::{Array, AsArray, GenericListArray, OffsetSizeTrait};
use arrow::datatypes::{
    DataType, Date32Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::ipc::writer::StreamWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};

use crate::QueryResult;
use crate::error::{QueryError, Result};

/// The formats of the SQL API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    ArrowStream,
}

impl Format {
    pub const JSON_TYPE: &'static str = "application/json";
    pub const CSV_TYPE: &'static str = "text/csv";
    pub const ARROW_TYPE: &'static str = "application/vnd.apache.arrow.stream";

    /// The format an `Accept` header asks for: the first supported media type it lists,
    /// JSON when it lists none (or `*/*`).
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Json;
        };
        for part in accept.split(',') {
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match media.as_str() {
                Self::CSV_TYPE => return Format::Csv,
                Self::ARROW_TYPE => return Format::ArrowStream,
                Self::JSON_TYPE | "*/*" | "application/*" => return Format::Json,
                _ => {}
            }
        }
        Format::Json
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => Self::JSON_TYPE,
            Format::Csv => "text/csv; charset=utf-8",
            Format::ArrowStream => Self::ARROW_TYPE,
        }
    }

    /// Encodes a result.
    pub fn encode(self, result: &QueryResult) -> Result<Vec<u8>> {
        match self {
            Format::Json => to_json(result),
            Format::Csv => to_csv(result),
            Format::ArrowStream => to_arrow_stream(result),
        }
    }
}

fn io_error(e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(format!("encoding result: {e}"))
}

/// `{"columns":[…],"rows":[[…],…]}`.
pub fn to_json(result: &QueryResult) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + result.num_rows() * 64);
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
            })
        })
        .collect();
    out.extend_from_slice(b"{\"columns\":");
    serde_json::to_writer(&mut out, &columns).map_err(io_error)?;
    out.extend_from_slice(b",\"rows\":[");
    let mut first_row = true;
    for batch in &result.batches {
        for row in 0..batch.num_rows() {
            if !first_row {
                out.push(b',');
            }
            first_row = false;
            out.push(b'[');
            for (i, column) in batch.columns().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, &cell(column.as_ref(), row)).map_err(io_error)?;
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(b"],\"stats\":");
    serde_json::to_writer(&mut out, &result.stats).map_err(io_error)?;
    out.push(b'}');
    Ok(out)
}

/// RFC 4180 CSV with a header row.
pub fn to_csv(result: &QueryResult) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let header: Vec<String> = result
        .schema
        .fields()
        .iter()
        .map(|f| csv_field(f.name()))
        .collect();
    writeln!(out, "{}", header.join(",")).map_err(io_error)?;
    for batch in &result.batches {
        for row in 0..batch.num_rows() {
            let fields: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| match cell(c.as_ref(), row) {
                    Value::Null => String::new(),
                    Value::String(s) => csv_field(&s),
                    other => csv_field(&other.to_string()),
                })
                .collect();
            writeln!(out, "{}", fields.join(",")).map_err(io_error)?;
        }
    }
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// An Arrow IPC stream (schema, then the batches).
pub fn to_arrow_stream(result: &QueryResult) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &result.schema).map_err(io_error)?;
    for batch in &result.batches {
        writer.write(batch).map_err(io_error)?;
    }
    writer.finish().map_err(io_error)?;
    drop(writer);
    Ok(out)
}

fn float(v: f64) -> Value {
    match serde_json::Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".into()),
        None if v > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

fn timestamp(ns: Option<i64>, tz: bool) -> Value {
    match ns {
        Some(ns) => {
            let t = DateTime::from_timestamp_nanos(ns);
            if tz {
                Value::String(t.to_rfc3339_opts(SecondsFormat::Nanos, true))
            } else {
                Value::String(t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.9f").to_string())
            }
        }
        None => Value::Null,
    }
}

fn list<O: OffsetSizeTrait>(array: &GenericListArray<O>, row: usize) -> Value {
    let values = array.value(row);
    Value::Array(
        (0..values.len())
            .map(|i| cell(values.as_ref(), i))
            .collect(),
    )
}

/// The JSON value of one cell.
pub fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Binary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i32>().value(row)),
        ),
        DataType::LargeBinary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i64>().value(row)),
        ),
        DataType::BinaryView => Value::String(
            base64::engine::general_purpose::STANDARD.encode(array.as_binary_view().value(row)),
        ),
        DataType::Timestamp(unit, tz) => {
            let ns = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1_000_000),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(row)
                    .checked_mul(1_000),
                TimeUnit::Nanosecond => {
                    Some(array.as_primitive::<TimestampNanosecondType>().value(row))
                }
            };
            match ns {
                Some(_) => timestamp(ns, tz.is_some()),
                None => display(array, row),
            }
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            match DateTime::from_timestamp(i64::from(days) * 86_400, 0) {
                Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                None => display(array, row),
            }
        }
        DataType::List(_) => list(array.as_list::<i32>(), row),
        DataType::LargeList(_) => list(array.as_list::<i64>(), row),
        DataType::FixedSizeList(..) => {
            let values = array.as_fixed_size_list().value(row);
            Value::Array(
                (0..values.len())
                    .map(|i| cell(values.as_ref(), i))
                    .collect(),
            )
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut object = Map::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(s.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row));
            }
            Value::Object(object)
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            let keys = entries.column(0);
            let values = entries.column(1);
            let mut object = Map::with_capacity(entries.len());
            for i in 0..entries.len() {
                let key = match cell(keys.as_ref(), i) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                object.insert(key, cell(values.as_ref(), i));
            }
            Value::Object(object)
        }
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            cell(dict.values().as_ref(), key)
        }
        _ => display(array, row),
    }
}

/// Arrow's own display text of a cell, for types JSON has no better form for.
fn display(array: &dyn Array, row: usize) -> Value {
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(f) => Value::String(f.value(row).to_string()),
        Err(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{
        Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
    };
    use arrow::datatypes::{Field, Schema};

    fn result() -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("a,\"b\""), Some("plain")])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
                Arc::new(
                    TimestampNanosecondArray::from(vec![Some(1_700_000_000_123_456_789), None])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        QueryResult {
            schema,
            batches: vec![batch],
            stats: Default::default(),
        }
    }

    #[test]
    fn json_rows_keep_types() {
        let json: Value = serde_json::from_slice(&to_json(&result()).unwrap()).unwrap();
        assert_eq!(
            json["columns"][0],
            serde_json::json!({"name": "n", "type": "Int64"})
        );
        assert_eq!(
            json["rows"],
            serde_json::json!([
                [1, "a,\"b\"", 1.5, "2023-11-14T22:13:20.123456789Z"],
                [null, "plain", "NaN", null]
            ])
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let csv = String::from_utf8(to_csv(&result()).unwrap()).unwrap();
        assert_eq!(
            csv,
            "n,s,f,t\n1,\"a,\"\"b\"\"\",1.5,2023-11-14T22:13:20.123456789Z\n,plain,NaN,\n"
        );
    }

    #[test]
    fn arrow_stream_reads_back() {
        let bytes = to_arrow_stream(&result()).unwrap();
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].num_rows(), 2);
    }

    #[test]
    fn accept_header_negotiation() {
        assert_eq!(Format::from_accept(None), Format::Json);
        assert_eq!(Format::from_accept(Some("text/csv")), Format::Csv);
        assert_eq!(
            Format::from_accept(Some("application/vnd.apache.arrow.stream")),
            Format::ArrowStream
        );
        assert_eq!(
            Format::from_accept(Some("text/html, text/csv;q=0.9")),
            Format::Csv
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Json);
    }
}
