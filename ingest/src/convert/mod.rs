//! OTLP → Arrow: one record batch per export request and signal, in the schemas of
//! `strata_storage::schema`.
//!
//! Items that cannot be stored (an invalid id, a timestamp past 2262) are left out and
//! counted, so the receiver can answer with an OTLP `partial_success`.
//!
//! Attribute values keep their OTLP type in a documented text form (`docs/SCHEMA.md`):
//! strings as they are, integers in decimal, doubles in shortest round-trip form (`NaN`,
//! `Infinity`, `-Infinity` for the non-finite ones), booleans as `true`/`false`, bytes in
//! standard base64, arrays and key-value lists as JSON.

mod logs;
mod metrics;
mod traces;
mod wire;

#[cfg(test)]
mod tests;

pub(crate) use logs::logs_from_protobuf;
pub use logs::logs_to_batch;
pub(crate) use metrics::metrics_from_protobuf;
pub use metrics::metrics_to_batch;
pub(crate) use traces::spans_from_protobuf;
pub use traces::spans_to_batch;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    ArrayRef, BooleanBufferBuilder, DictionaryArray, ListArray, MapArray, NullBufferBuilder,
    StringArray, StringBuilder, StructArray, UInt32Array,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer};
use arrow::datatypes::{Fields, UInt32Type};
use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use strata_storage::schema::{self, list_item};

/// The outcome of converting one request for one signal.
#[derive(Debug, Default, PartialEq)]
pub struct Converted {
    /// The rows that can be stored; `None` when there are none.
    pub batch: Option<arrow::array::RecordBatch>,
    /// Items accepted.
    pub accepted: u64,
    /// Items left out, and why (the first reason, for the `partial_success` message).
    pub rejected: Rejected,
}

impl Converted {
    /// `accepted` items, whose rows `batch` builds (called only when there are any).
    pub(crate) fn of(
        accepted: u64,
        rejected: Rejected,
        batch: impl FnOnce() -> arrow::array::RecordBatch,
    ) -> Self {
        Self {
            batch: (accepted > 0).then(batch),
            accepted,
            rejected,
        }
    }
}

/// A UTC nanosecond timestamp column.
pub(crate) fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(arrow::array::TimestampNanosecondArray::from(values).with_timezone(schema::UTC))
}

/// Items of a request that could not be stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub count: u64,
    pub first_reason: Option<String>,
}

impl Rejected {
    pub(crate) fn add(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.first_reason.is_none() {
            self.first_reason = Some(reason());
        }
    }

    /// The `error_message` of a `partial_success`.
    pub fn message(&self, item: &str) -> String {
        match &self.first_reason {
            Some(reason) if self.count > 1 => {
                format!("{} {item} rejected; first: {reason}", self.count)
            }
            Some(reason) => format!("1 {item} rejected: {reason}"),
            None => String::new(),
        }
    }
}

/// Value of the `service_name` column when the resource names no service (the OpenTelemetry
/// SDK default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The attributes of a resource (none when there is no resource).
pub(crate) fn attributes_of(resource: Option<&Resource>) -> &[KeyValue] {
    resource.map_or(&[], |r| r.attributes.as_slice())
}

/// The `service.name` attribute of a resource's attributes (the first, if repeated).
pub(crate) fn service_name<A: Attribute>(resource_attributes: &[A]) -> &str {
    resource_attributes
        .iter()
        .find(|kv| kv.key() == "service.name")
        .and_then(|kv| match kv.value() {
            AttrValue::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        })
        .unwrap_or(UNKNOWN_SERVICE)
}

/// Appends the lowercase hex of an id (up to 32 bytes) to a string column; `NULL` for an
/// empty id. Encodes on the stack, two digits per table lookup: ids are on every row.
pub(crate) fn append_hex(builder: &mut StringBuilder, bytes: &[u8]) {
    /// The two digits of each byte.
    static DIGITS: [[u8; 2]; 256] = {
        let hex = b"0123456789abcdef";
        let mut table = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            table[i] = [hex[i >> 4], hex[i & 15]];
            i += 1;
        }
        table
    };
    let mut buf = [0u8; 64];
    match bytes.len() {
        0 => builder.append_null(),
        n if n <= 32 => {
            for (pair, &b) in buf.chunks_exact_mut(2).zip(bytes) {
                pair.copy_from_slice(&DIGITS[b as usize]);
            }
            // SAFETY: every byte written is an ASCII hex digit.
            builder.append_value(unsafe { std::str::from_utf8_unchecked(&buf[..2 * n]) });
        }
        _ => builder.append_value(hex::encode(bytes)),
    }
}

/// Checks an id's length; empty ids are allowed where `optional`.
pub(crate) fn check_id(bytes: &[u8], len: usize, name: &str, optional: bool) -> Result<(), String> {
    if bytes.is_empty() {
        return if optional {
            Ok(())
        } else {
            Err(format!("{name} is empty"))
        };
    }
    if bytes.len() != len {
        return Err(format!("{name} is {} bytes, expected {len}", bytes.len()));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("{name} is all zeroes"));
    }
    Ok(())
}

/// A `u64` nanosecond timestamp as Arrow's `i64`, refusing values past 2262-04-11.
pub(crate) fn timestamp(ns: u64, name: &str) -> Result<i64, String> {
    i64::try_from(ns).map_err(|_| format!("{name} {ns} is out of range"))
}

/// An attribute value as the conversion reads it: borrowed from a decoded request
/// ([`AttrValue::from_any`]) or from the protobuf bytes of one (`wire.rs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum AttrValue<'a> {
    /// No value, or a reference into a profiles string table (meaningless outside profiles).
    #[default]
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An array or a key-value list.
    Nested(Cow<'a, Value>),
}

impl<'a> AttrValue<'a> {
    pub(crate) fn from_any(value: Option<&'a AnyValue>) -> Self {
        match value.and_then(|v| v.value.as_ref()) {
            None | Some(Value::StringValueStrindex(_)) => Self::Empty,
            Some(Value::StringValue(s)) => Self::Str(s),
            Some(Value::BoolValue(b)) => Self::Bool(*b),
            Some(Value::IntValue(i)) => Self::Int(*i),
            Some(Value::DoubleValue(d)) => Self::Double(*d),
            Some(Value::BytesValue(b)) => Self::Bytes(b),
            Some(nested @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
                Self::Nested(Cow::Borrowed(nested))
            }
        }
    }

    /// The same value, borrowed from this one.
    fn reborrow(&self) -> AttrValue<'_> {
        match self {
            Self::Nested(value) => AttrValue::Nested(Cow::Borrowed(value.as_ref())),
            Self::Empty => AttrValue::Empty,
            Self::Str(s) => AttrValue::Str(s),
            Self::Bool(b) => AttrValue::Bool(*b),
            Self::Int(i) => AttrValue::Int(*i),
            Self::Double(d) => AttrValue::Double(*d),
            Self::Bytes(b) => AttrValue::Bytes(b),
        }
    }

    /// Bytes [`Self::write_text`] writes, or a guess for numbers and nested values: what to
    /// reserve before writing many values.
    fn text_len_hint(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Str(s) => s.len(),
            Self::Bool(_) => 5,
            Self::Int(_) | Self::Double(_) => 20,
            Self::Bytes(b) => b.len().div_ceil(3) * 4,
            Self::Nested(_) => 64,
        }
    }

    /// Appends the text form of the value to `out`; `false` when the value is empty.
    pub(crate) fn write_text(&self, out: &mut String) -> bool {
        match self {
            Self::Empty => return false,
            Self::Str(s) => out.push_str(s),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Self::Double(d) => write_double(*d, out),
            Self::Bytes(b) => base64::engine::general_purpose::STANDARD.encode_string(b, out),
            Self::Nested(value) => out.push_str(&any_to_json(value).to_string()),
        }
        true
    }
}

/// A key and value, from a decoded request or from protobuf bytes.
pub(crate) trait Attribute {
    fn key(&self) -> &str;
    fn value(&self) -> AttrValue<'_>;
}

impl Attribute for KeyValue {
    fn key(&self) -> &str {
        &self.key
    }
    fn value(&self) -> AttrValue<'_> {
        AttrValue::from_any(self.value.as_ref())
    }
}

/// An attribute read from protobuf bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireAttr<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: AttrValue<'a>,
}

impl Attribute for WireAttr<'_> {
    fn key(&self) -> &str {
        self.key
    }
    fn value(&self) -> AttrValue<'_> {
        self.value.reborrow()
    }
}

/// The text form of a double: shortest round-trip decimal, or `NaN`/`Infinity`/`-Infinity`.
pub(crate) fn write_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // serde_json formats with ryu: shortest form that parses back to the same double.
        out.push_str(&serde_json::Number::from_f64(d).expect("finite").to_string());
    }
}

/// An OTLP value as plain JSON: arrays as arrays, key-value lists as objects, bytes as
/// base64 strings, non-finite doubles as strings.
pub(crate) fn any_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let inner = |v: &Option<AnyValue>| match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(v) => any_to_json(v),
        None => J::Null,
    };
    match value {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => J::Number(n),
            None => {
                let mut s = String::new();
                write_double(*d, &mut s);
                J::String(s)
            }
        },
        Value::BytesValue(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(J::Null, any_to_json))
                .collect(),
        ),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), inner(&kv.value)))
                .collect(),
        ),
        Value::StringValueStrindex(_) => J::Null,
    }
}

/// A string builder sized for `rows` values of about `bytes_per_row` bytes. Sizing matters:
/// the write buffer accounts batches by allocated capacity, and a default builder reserves
/// room for 1024 values.
pub(crate) fn strings(rows: usize, bytes_per_row: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * bytes_per_row)
}

/// What the rows of one resource and scope share.
pub(crate) struct Origin<'a> {
    /// Unique to this origin in the process: [`OriginColumns`] counts the rows of one
    /// origin as a run by it.
    id: u64,
    pub(crate) service: &'a str,
    pub(crate) resource: &'a Rendered,
    pub(crate) scope_name: &'a str,
    pub(crate) scope_version: &'a str,
}

impl<'a> Origin<'a> {
    /// The origin of one scope's rows. Make one per scope, not per row.
    pub(crate) fn new(
        service: &'a str,
        resource: &'a Rendered,
        scope_name: &'a str,
        scope_version: &'a str,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            service,
            resource,
            scope_name,
            scope_version,
        }
    }

    /// Bytes of text one row of this origin repeats: its service and scope.
    fn row_size(&self) -> usize {
        self.service.len() + self.scope_name.len() + self.scope_version.len()
    }

    /// Bytes of text and map entries of its resource, which a batch holds once per run of
    /// rows of this origin.
    fn resource_size(&self) -> usize {
        let e = &*self.resource.0;
        e.keys.bytes.len() + e.values.bytes.len() + e.keys.len()
    }

    /// The origin of a decoded scope's rows.
    pub(crate) fn of(
        resource_attributes: &'a [KeyValue],
        rendered: &'a Rendered,
        scope: Option<&'a InstrumentationScope>,
    ) -> Self {
        Self::new(
            service_name(resource_attributes),
            rendered,
            scope.map_or("", |s| s.name.as_str()),
            scope.map_or("", |s| s.version.as_str()),
        )
    }
}

/// The columns every table takes from a row's [`Origin`], next to each other in each
/// schema: `service_name`, `resource_attributes`, `scope_name`, `scope_version`.
///
/// Every row of a scope has the same four values, so rows are counted in runs, one per
/// origin, and the columns are built once at [`Self::finish`], sized exactly: a row costs
/// a comparison while converting. `resource_attributes` is built as the write buffer keeps
/// it (`strata_storage::resources::buffer_schema_of`): each resource's pre-encoded map
/// entries once, and each row's index into them.
pub(crate) struct OriginColumns {
    runs: Vec<OriginRun>,
    /// Bytes of text and map entries the rows so far hold of their origins, and how many
    /// they may ([`MAX_ORIGIN_SIZE`]).
    size: usize,
    limit: usize,
}

impl Default for OriginColumns {
    fn default() -> Self {
        Self {
            runs: Vec::new(),
            size: 0,
            limit: MAX_ORIGIN_SIZE,
        }
    }
}

/// What the rows of one batch may hold of their origins, in bytes of text plus map entries:
/// the columns' offsets are 32-bit. A request of many rows under one large scope would
/// otherwise repeat it past what a column can hold; the rows past this are rejected. A
/// resource counts once per run of rows (a scope of it), service and scope once per row.
const MAX_ORIGIN_SIZE: usize = i32::MAX as usize;

/// Consecutive rows of one origin.
struct OriginRun {
    id: u64,
    service: String,
    resource: Rendered,
    scope_name: String,
    scope_version: String,
    rows: usize,
}

impl OriginColumns {
    /// Appends a row of `origin`, or nothing and the reason when the batch cannot hold
    /// another copy of it ([`MAX_ORIGIN_SIZE`]). Call it before the row's other columns.
    pub(crate) fn append(&mut self, origin: &Origin<'_>) -> Result<(), String> {
        let same_run = matches!(self.runs.last(), Some(run) if run.id == origin.id);
        let mut size = self.size + origin.row_size();
        if !same_run {
            size += origin.resource_size();
        }
        if size > self.limit {
            return Err(format!(
                "its resource, service and scope, with those of the request's rows before it, \
                 exceed {} bytes",
                self.limit
            ));
        }
        self.size = size;
        match self.runs.last_mut() {
            Some(run) if same_run => run.rows += 1,
            _ => self.runs.push(OriginRun {
                id: origin.id,
                service: origin.service.to_owned(),
                resource: origin.resource.clone(),
                scope_name: origin.scope_name.to_owned(),
                scope_version: origin.scope_version.to_owned(),
                rows: 1,
            }),
        }
        Ok(())
    }

    /// The value of a row's own checks, once a row of `origin` is appended; the first
    /// failure otherwise, with nothing appended.
    pub(crate) fn admit<T>(
        &mut self,
        origin: &Origin<'_>,
        checked: Result<T, String>,
    ) -> Result<T, String> {
        let value = checked?;
        self.append(origin)?;
        Ok(value)
    }

    /// The four columns, in schema order.
    pub(crate) fn finish(self) -> [ArrayRef; 4] {
        let rows = self.runs.iter().map(|r| r.rows).sum();
        let column = |value: fn(&OriginRun) -> &str| {
            let bytes = self.runs.iter().map(|r| r.rows * value(r).len()).sum();
            let mut b = StringBuilder::with_capacity(rows, bytes);
            for run in &self.runs {
                b.append_value_n(value(run), run.rows);
            }
            Arc::new(b.finish()) as ArrayRef
        };
        // A resource's scopes are consecutive runs sharing its rendered entries: each such
        // stretch is one entry of the dictionary. (A resource sent twice in a request is
        // two; the flush stores each distinct map once per file.)
        let mut distinct: Vec<&Rendered> = Vec::new();
        let mut keys: Vec<u32> = Vec::with_capacity(rows);
        for run in &self.runs {
            if !distinct
                .last()
                .is_some_and(|last| Arc::ptr_eq(&last.0, &run.resource.0))
            {
                distinct.push(&run.resource);
            }
            // Fewer resources than rows, and a batch's rows fit in 32 bits.
            let key = (distinct.len() - 1) as u32;
            keys.extend(std::iter::repeat_n(key, run.rows));
        }
        let resources = Rendered::column(&distinct);
        let resource_attributes =
            DictionaryArray::<UInt32Type>::try_new(UInt32Array::from(keys), Arc::new(resources))
                .expect("each key indexes a resource");
        [
            column(|r| &r.service),
            Arc::new(resource_attributes),
            column(|r| &r.scope_name),
            column(|r| &r.scope_version),
        ]
    }
}

/// Builds a `Map<Utf8, Utf8>` column one row at a time. Each value's text is written
/// straight into the values' bytes.
pub(crate) struct MapColumn {
    keys: StringColumn,
    values: StringColumn,
    valid: NullBufferBuilder,
    offsets: Vec<i32>,
}

/// Attributes rendered once in their text form (repeated keys dropped) and laid out as the
/// entries of one map row: a resource's attributes, which every row of that resource refers
/// to. Cloning shares them.
#[derive(Clone)]
pub(crate) struct Rendered(Arc<RenderedEntries>);

struct RenderedEntries {
    keys: StringColumn,
    /// The values' text (nothing for an empty value), and which are not empty.
    values: StringColumn,
    valid: Vec<bool>,
}

impl Rendered {
    pub(crate) fn new<A: Attribute>(attributes: &[A]) -> Self {
        // Sized up front: grown from empty, the two strings were reallocated a few times
        // for every resource of a request (3 % of a TSBS node's CPU).
        let key_bytes = attributes.iter().map(|kv| kv.key().len()).sum();
        let value_bytes = attributes.iter().map(|kv| kv.value().text_len_hint()).sum();
        let mut e = RenderedEntries {
            keys: StringColumn::with_capacity(attributes.len(), key_bytes),
            values: StringColumn::with_capacity(attributes.len(), value_bytes),
            valid: Vec::with_capacity(attributes.len()),
        };
        append_entries(attributes, &mut e.keys, &mut e.values, |v| e.valid.push(v));
        Self(Arc::new(e))
    }

    /// A map column of one row per entry set, in order.
    fn column(rendered: &[&Rendered]) -> MapArray {
        let (mut entries, mut key_bytes, mut value_bytes) = (0, 0, 0);
        let mut any_empty = false;
        for r in rendered {
            entries += r.0.keys.len();
            key_bytes += r.0.keys.bytes.len();
            value_bytes += r.0.values.bytes.len();
            any_empty |= r.0.valid.contains(&false);
        }
        let mut map_offsets = Vec::with_capacity(rendered.len() + 1);
        map_offsets.push(0i32);
        let mut keys = StringColumn::with_capacity(entries, key_bytes);
        let mut values = StringColumn::with_capacity(entries, value_bytes);
        let mut valid = BooleanBufferBuilder::new(if any_empty { entries } else { 0 });
        for r in rendered {
            let e = &*r.0;
            keys.push_column(&e.keys);
            values.push_column(&e.values);
            if any_empty {
                e.valid.iter().for_each(|&v| valid.append(v));
            }
            map_offsets.push(keys.len() as i32);
        }
        let nulls = any_empty.then(|| NullBuffer::new(valid.finish()));
        map_array(
            OffsetBuffer::new(map_offsets.into()),
            keys.finish(None),
            values.finish(nulls),
        )
    }
}

/// A string column written one string, or one run of whole strings, at a time.
struct StringColumn {
    bytes: String,
    offsets: Vec<i32>,
}

impl StringColumn {
    fn with_capacity(strings: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(strings + 1);
        offsets.push(0);
        Self {
            bytes: String::with_capacity(bytes),
            offsets,
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn push_str(&mut self, s: &str) {
        self.bytes.push_str(s);
        self.end_string();
    }

    /// Ends a string at the end of the bytes written so far.
    fn end_string(&mut self) {
        self.offsets.push(offset(self.bytes.len()));
    }

    /// Appends every string of `other`.
    fn push_column(&mut self, other: &StringColumn) {
        let base = offset(self.bytes.len());
        self.bytes.push_str(&other.bytes);
        self.offsets
            .extend(other.offsets[1..].iter().map(|&end| base + end));
    }

    fn finish(self, nulls: Option<NullBuffer>) -> ArrayRef {
        let offsets = OffsetBuffer::new(self.offsets.into());
        // SAFETY: the bytes are a `String`, and every offset is the end of a `str` pushed
        // onto it, so each value is valid UTF-8; offsets start at 0 and ascend within the
        // bytes.
        let strings = unsafe {
            StringArray::new_unchecked(offsets, Buffer::from_vec(self.bytes.into_bytes()), nulls)
        };
        Arc::new(strings)
    }
}

/// A `Map<Utf8, Utf8>` array of rows ending at `offsets` in `keys` and `values`.
fn map_array(offsets: OffsetBuffer<i32>, keys: ArrayRef, values: ArrayRef) -> MapArray {
    let entries = match schema::map_entries_field().data_type() {
        arrow::datatypes::DataType::Struct(fields) => fields.clone(),
        _ => unreachable!("map entries are a struct"),
    };
    let entries = StructArray::new(entries, vec![keys, values], None);
    MapArray::try_new(schema::map_entries_field(), offsets, entries, None, false)
        .expect("offsets and entries are built together")
}

/// Calls `f` for each attribute whose key did not occur before it in the list (OTLP keys are
/// unique; a repeated one keeps its first value). Small lists, the usual case, are checked by
/// comparison without allocating.
fn for_unique<'a, A: Attribute>(attributes: &'a [A], mut f: impl FnMut(&'a A)) {
    if attributes.len() <= 32 {
        for (i, kv) in attributes.iter().enumerate() {
            if !attributes[..i]
                .iter()
                .any(|earlier| earlier.key() == kv.key())
            {
                f(kv);
            }
        }
    } else {
        let mut seen: HashSet<&str> = HashSet::with_capacity(attributes.len());
        for kv in attributes {
            if seen.insert(kv.key()) {
                f(kv);
            }
        }
    }
}

impl MapColumn {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            keys: StringColumn::with_capacity(rows * 4, rows * 4 * 12),
            values: StringColumn::with_capacity(rows * 4, rows * 4 * 16),
            valid: NullBufferBuilder::new(rows * 4),
            offsets,
        }
    }

    /// Appends one row. Keys must be unique per OTLP; a repeated key keeps its first value.
    pub(crate) fn append<A: Attribute>(&mut self, attributes: &[A]) {
        let valid = &mut self.valid;
        append_entries(attributes, &mut self.keys, &mut self.values, |v| {
            valid.append(v)
        });
        self.offsets.push(offset(self.keys.len()));
    }

    pub(crate) fn finish(mut self) -> MapArray {
        map_array(
            OffsetBuffer::new(self.offsets.into()),
            self.keys.finish(None),
            self.values.finish(self.valid.finish()),
        )
    }
}

/// Appends the attributes' keys and their values' text as map entries (a repeated key keeps
/// its first value), telling `valid` whether each value is there.
fn append_entries<A: Attribute>(
    attributes: &[A],
    keys: &mut StringColumn,
    values: &mut StringColumn,
    mut valid: impl FnMut(bool),
) {
    for_unique(attributes, |kv| {
        keys.push_str(kv.key());
        valid(kv.value().write_text(&mut values.bytes));
        values.end_string();
    });
}

/// A length as an offset of a 32-bit offset column. The receivers' body limit keeps a
/// request's columns far below 2 GiB (the origin columns check theirs, [`MAX_ORIGIN_SIZE`]).
fn offset(len: usize) -> i32 {
    i32::try_from(len).expect("a request's column holds less than 2 GiB")
}

/// Offsets (and validity) of a `List<…>` column built one row at a time.
pub(crate) struct ListOffsets {
    offsets: Vec<i32>,
    validity: BooleanBufferBuilder,
    has_nulls: bool,
}

impl ListOffsets {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            offsets,
            validity: BooleanBufferBuilder::new(rows),
            has_nulls: false,
        }
    }

    /// Ends a row whose items end at `len` children.
    pub(crate) fn push(&mut self, len: usize) {
        self.offsets.push(len as i32);
        self.validity.append(true);
    }

    /// Ends a null row.
    pub(crate) fn push_null(&mut self) {
        let last = *self.offsets.last().expect("starts with 0");
        self.offsets.push(last);
        self.validity.append(false);
        self.has_nulls = true;
    }

    pub(crate) fn finish(
        mut self,
        item: arrow::datatypes::DataType,
        values: ArrayRef,
    ) -> ListArray {
        let nulls = self
            .has_nulls
            .then(|| NullBuffer::new(self.validity.finish()));
        ListArray::try_new(
            list_item(item, false),
            OffsetBuffer::new(self.offsets.into()),
            values,
            nulls,
        )
        .expect("offsets and values are built together")
    }
}

/// A struct array from its fields and columns (no nulls).
pub(crate) fn struct_array(fields: Fields, columns: Vec<ArrayRef>) -> ArrayRef {
    Arc::new(StructArray::new(fields, columns, None))
}
