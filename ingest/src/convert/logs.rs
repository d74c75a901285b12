//! `ExportLogsServiceRequest` → a `logs` record batch.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringBuilder, UInt32Array};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use strata_storage::{Signal, schema};

use super::wire::{self, Fields, Unsupported, once, push_key_value};
use super::{
    AttrValue, Attribute, Converted, MapColumn, Origin, OriginColumns, Rejected, Rendered,
    WireAttr, append_hex, attributes_of, check_id, strings, timestamp, timestamps,
};

/// The fields of a log record other than its attributes, borrowed from a decoded record or
/// from its protobuf bytes.
#[derive(Debug, Default)]
struct RecordFields<'a> {
    time: u64,
    observed_time: u64,
    severity_number: i32,
    severity_text: &'a str,
    body: AttrValue<'a>,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    flags: u32,
    event_name: &'a str,
    dropped_attributes: u32,
}

impl<'a> RecordFields<'a> {
    fn of(record: &'a LogRecord) -> Self {
        Self {
            time: record.time_unix_nano,
            observed_time: record.observed_time_unix_nano,
            severity_number: record.severity_number,
            severity_text: &record.severity_text,
            body: AttrValue::from_any(record.body.as_ref()),
            trace_id: &record.trace_id,
            span_id: &record.span_id,
            flags: record.flags,
            event_name: &record.event_name,
            dropped_attributes: record.dropped_attributes_count,
        }
    }

    /// Times of a record: `time` falls back to the observed time, which falls back to the
    /// time the request arrived (`received`), as the OTLP data model prescribes.
    fn validate(&self, received: i64) -> Result<(i64, i64), String> {
        check_id(self.trace_id, 16, "trace_id", true)?;
        check_id(self.span_id, 8, "span_id", true)?;
        let observed = match self.observed_time {
            0 => received,
            ns => timestamp(ns, "observed_time_unix_nano")?,
        };
        let time = match self.time {
            0 => observed,
            ns => timestamp(ns, "time_unix_nano")?,
        };
        Ok((time, observed))
    }
}

/// The columns of a `logs` batch, appended to one record at a time.
struct LogsBuilder {
    received: i64,
    rejected: Rejected,
    time: Vec<i64>,
    observed_time: Vec<i64>,
    severity_number: Vec<i32>,
    severity_text: StringBuilder,
    body: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    flags: Vec<u32>,
    event_name: StringBuilder,
    origin: OriginColumns,
    attributes: MapColumn,
    dropped_attributes: Vec<u32>,
    text: String,
}

impl LogsBuilder {
    fn with_capacity(rows: usize, received: i64) -> Self {
        Self {
            received,
            rejected: Rejected::default(),
            time: Vec::with_capacity(rows),
            observed_time: Vec::with_capacity(rows),
            severity_number: Vec::with_capacity(rows),
            severity_text: strings(rows, 16),
            body: strings(rows, 16),
            trace_id: strings(rows, 16),
            span_id: strings(rows, 16),
            flags: Vec::with_capacity(rows),
            event_name: strings(rows, 16),
            origin: OriginColumns::default(),
            attributes: MapColumn::with_capacity(rows),
            dropped_attributes: Vec::with_capacity(rows),
            text: String::new(),
        }
    }

    /// Appends a record, or counts it rejected: record `index` of its scope, in resource
    /// `resource`.
    fn push<A: Attribute>(
        &mut self,
        (resource, index): (usize, usize),
        origin: &Origin<'_>,
        record: &RecordFields<'_>,
        attributes: &[A],
    ) {
        let (time, observed) = match self.origin.admit(origin, record.validate(self.received)) {
            Ok(times) => times,
            Err(reason) => {
                self.rejected
                    .add(|| format!("log record {index} of resource {resource}: {reason}"));
                return;
            }
        };
        self.time.push(time);
        self.observed_time.push(observed);
        self.severity_number.push(record.severity_number);
        self.severity_text.append_value(record.severity_text);
        self.text.clear();
        if record.body.write_text(&mut self.text) {
            self.body.append_value(&self.text);
        } else {
            self.body.append_null();
        }
        append_hex(&mut self.trace_id, record.trace_id);
        append_hex(&mut self.span_id, record.span_id);
        self.flags.push(record.flags);
        self.event_name
            .append_option((!record.event_name.is_empty()).then_some(record.event_name));
        self.attributes.append(attributes);
        self.dropped_attributes.push(record.dropped_attributes);
    }

    fn finish(mut self) -> Converted {
        let rejected = std::mem::take(&mut self.rejected);
        Converted::of(self.time.len() as u64, rejected, || self.batch())
    }

    fn batch(self) -> RecordBatch {
        let ts = timestamps;
        let mut b = self;
        let [service, resource_attributes, scope_name, scope_version] = b.origin.finish();
        let columns: Vec<ArrayRef> = vec![
            ts(b.time),
            ts(b.observed_time),
            Arc::new(Int32Array::from(b.severity_number)),
            Arc::new(b.severity_text.finish()),
            Arc::new(b.body.finish()),
            Arc::new(b.trace_id.finish()),
            Arc::new(b.span_id.finish()),
            Arc::new(UInt32Array::from(b.flags)),
            Arc::new(b.event_name.finish()),
            service,
            resource_attributes,
            scope_name,
            scope_version,
            Arc::new(b.attributes.finish()),
            Arc::new(UInt32Array::from(b.dropped_attributes)),
        ];
        RecordBatch::try_new(schema::buffer_schema_for(Signal::Logs), columns)
            .expect("columns are built to the logs schema")
    }
}

/// Converts the log records of a request; records with invalid ids or timestamps are
/// rejected. `received` (ns since the epoch) stands in for missing timestamps.
pub fn logs_to_batch(request: &ExportLogsServiceRequest, received: i64) -> Converted {
    let rows: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let mut b = LogsBuilder::with_capacity(rows, received);
    for (ri, rl) in request.resource_logs.iter().enumerate() {
        let resource_attrs = attributes_of(rl.resource.as_ref());
        let rendered = Rendered::new(resource_attrs);
        for sl in &rl.scope_logs {
            let origin = Origin::of(resource_attrs, &rendered, sl.scope.as_ref());
            for (li, record) in sl.log_records.iter().enumerate() {
                b.push(
                    (ri, li),
                    &origin,
                    &RecordFields::of(record),
                    &record.attributes,
                );
            }
        }
    }
    b.finish()
}

/// Converts the log records of a protobuf-encoded `ExportLogsServiceRequest` without
/// decoding it into messages first: the same rows as `logs_to_batch` of the decoded request.
/// [`Unsupported`] when the body is not read exactly as prost reads it (`wire.rs`).
pub(crate) fn logs_from_protobuf(body: &[u8], received: i64) -> wire::Result<Converted> {
    let request = wire::Request::read(body)?;
    let mut b = LogsBuilder::with_capacity(request.items.len(), received);
    let mut attrs = Vec::new();
    request.for_each_scope(|ri, _, origin, items| {
        for (li, record) in request.items[items].iter().enumerate() {
            let fields = record_fields(record, &mut attrs)?;
            b.push((ri, li), origin, &fields, &attrs);
        }
        Ok(())
    })?;
    Ok(b.finish())
}

/// A `LogRecord`'s fields; its attributes into `attrs` (cleared first).
fn record_fields<'a>(
    buf: &'a [u8],
    attrs: &mut Vec<WireAttr<'a>>,
) -> wire::Result<RecordFields<'a>> {
    let mut record = RecordFields::default();
    let mut body = None;
    attrs.clear();
    for field in Fields::new(buf) {
        match field? {
            (1, f) => record.time = f.fixed64()?,
            (2, f) => record.severity_number = f.int32()?,
            (3, f) => record.severity_text = f.string()?,
            (5, f) => once(&mut body, f)?,
            (6, f) => push_key_value(attrs, f)?,
            (7, f) => record.dropped_attributes = f.uint32()?,
            (8, f) => record.flags = f.fixed32()?,
            (9, f) => record.trace_id = f.bytes()?,
            (10, f) => record.span_id = f.bytes()?,
            (11, f) => record.observed_time = f.fixed64()?,
            (12, f) => record.event_name = f.string()?,
            _ => return Err(Unsupported),
        }
    }
    record.body = wire::optional_any_value(body)?;
    Ok(record)
}
