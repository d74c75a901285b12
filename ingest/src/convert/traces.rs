//! `ExportTraceServiceRequest` → a `spans` record batch.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringBuilder, UInt32Array};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use strata_storage::{Signal, schema};

use super::wire::{self, Fields, Unsupported, once, push_key_value};
use super::{
    Attribute, Converted, ListOffsets, MapColumn, Origin, OriginColumns, Rejected, Rendered,
    WireAttr, append_hex, attributes_of, check_id, strings, struct_array, timestamp, timestamps,
};

/// The `kind` column's value for a span kind.
pub fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Ok(SpanKind::Unspecified) | Err(_) => "unspecified",
    }
}

/// The `status_code` column's value for a status code.
pub fn status_name(code: i32) -> &'static str {
    match StatusCode::try_from(code) {
        Ok(StatusCode::Ok) => "ok",
        Ok(StatusCode::Error) => "error",
        Ok(StatusCode::Unset) | Err(_) => "unset",
    }
}

/// The scalar fields of a span, borrowed from a decoded span or from its protobuf bytes.
#[derive(Debug, Default)]
struct SpanFields<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a str,
    flags: u32,
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    status_code: i32,
    status_message: &'a str,
    dropped_attributes: u32,
    dropped_events: u32,
    dropped_links: u32,
}

impl<'a> SpanFields<'a> {
    fn of(span: &'a Span) -> Self {
        let status = span.status.as_ref();
        Self {
            trace_id: &span.trace_id,
            span_id: &span.span_id,
            parent_span_id: &span.parent_span_id,
            trace_state: &span.trace_state,
            flags: span.flags,
            name: &span.name,
            kind: span.kind,
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano,
            status_code: status.map_or(0, |s| s.code),
            status_message: status.map_or("", |s| s.message.as_str()),
            dropped_attributes: span.dropped_attributes_count,
            dropped_events: span.dropped_events_count,
            dropped_links: span.dropped_links_count,
        }
    }

    /// The start and end times, or why the span cannot be stored.
    fn validate(&self) -> Result<(i64, i64), String> {
        check_id(self.trace_id, 16, "trace_id", false)?;
        check_id(self.span_id, 8, "span_id", false)?;
        if !self.parent_span_id.is_empty() && self.parent_span_id.len() != 8 {
            return Err(format!(
                "parent_span_id is {} bytes, expected 8 or none",
                self.parent_span_id.len()
            ));
        }
        let start = timestamp(self.start, "start_time_unix_nano")?;
        let end = timestamp(self.end, "end_time_unix_nano")?;
        Ok((start, end))
    }
}

/// The columns of a `spans` batch, appended to one span at a time.
struct SpansBuilder {
    rejected: Rejected,
    time: Vec<i64>,
    end_time: Vec<i64>,
    duration: Vec<i64>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    flags: Vec<u32>,
    name: StringBuilder,
    kind: StringBuilder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    origin: OriginColumns,
    attributes: MapColumn,
    dropped_attributes: Vec<u32>,
    dropped_events: Vec<u32>,
    dropped_links: Vec<u32>,

    events: ListOffsets,
    ev_time: Vec<i64>,
    ev_name: StringBuilder,
    ev_attributes: MapColumn,
    ev_dropped: Vec<u32>,

    links: ListOffsets,
    ln_trace_id: StringBuilder,
    ln_span_id: StringBuilder,
    ln_trace_state: StringBuilder,
    ln_flags: Vec<u32>,
    ln_attributes: MapColumn,
    ln_dropped: Vec<u32>,
}

impl SpansBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            rejected: Rejected::default(),
            time: Vec::with_capacity(rows),
            end_time: Vec::with_capacity(rows),
            duration: Vec::with_capacity(rows),
            trace_id: StringBuilder::with_capacity(rows, rows * 32),
            span_id: StringBuilder::with_capacity(rows, rows * 16),
            parent_span_id: StringBuilder::with_capacity(rows, rows * 16),
            trace_state: strings(rows, 16),
            flags: Vec::with_capacity(rows),
            name: strings(rows, 16),
            kind: strings(rows, 16),
            status_code: strings(rows, 16),
            status_message: strings(rows, 16),
            origin: OriginColumns::default(),
            attributes: MapColumn::with_capacity(rows),
            dropped_attributes: Vec::with_capacity(rows),
            dropped_events: Vec::with_capacity(rows),
            dropped_links: Vec::with_capacity(rows),
            events: ListOffsets::with_capacity(rows),
            ev_time: Vec::new(),
            ev_name: strings(0, 0),
            ev_attributes: MapColumn::with_capacity(0),
            ev_dropped: Vec::new(),
            links: ListOffsets::with_capacity(rows),
            ln_trace_id: strings(0, 0),
            ln_span_id: strings(0, 0),
            ln_trace_state: strings(0, 0),
            ln_flags: Vec::new(),
            ln_attributes: MapColumn::with_capacity(0),
            ln_dropped: Vec::new(),
        }
    }

    /// Appends the span's own columns, or counts it rejected (`false`): span `index` of its
    /// scope, in resource `resource`. Its events and links follow, then [`Self::end_span`].
    fn start_span<A: Attribute>(
        &mut self,
        (resource, index): (usize, usize),
        origin: &Origin<'_>,
        span: &SpanFields<'_>,
        attributes: &[A],
    ) -> bool {
        let (start, end) = match self.origin.admit(origin, span.validate()) {
            Ok(times) => times,
            Err(reason) => {
                self.rejected
                    .add(|| format!("span {index} of resource {resource}: {reason}"));
                return false;
            }
        };
        self.time.push(start);
        self.end_time.push(end);
        self.duration.push(end.saturating_sub(start));
        append_hex(&mut self.trace_id, span.trace_id);
        append_hex(&mut self.span_id, span.span_id);
        append_hex(&mut self.parent_span_id, span.parent_span_id);
        self.trace_state
            .append_option((!span.trace_state.is_empty()).then_some(span.trace_state));
        self.flags.push(span.flags);
        self.name.append_value(span.name);
        self.kind.append_value(kind_name(span.kind));
        self.status_code.append_value(status_name(span.status_code));
        self.status_message
            .append_option((!span.status_message.is_empty()).then_some(span.status_message));
        self.attributes.append(attributes);
        self.dropped_attributes.push(span.dropped_attributes);
        self.dropped_events.push(span.dropped_events);
        self.dropped_links.push(span.dropped_links);
        true
    }

    fn push_event<A: Attribute>(&mut self, time: u64, name: &str, attributes: &[A], dropped: u32) {
        // An event time past 2262 cannot be stored; clamp rather than lose the span.
        self.ev_time.push(i64::try_from(time).unwrap_or(i64::MAX));
        self.ev_name.append_value(name);
        self.ev_attributes.append(attributes);
        self.ev_dropped.push(dropped);
    }

    fn push_link<A: Attribute>(&mut self, link: &LinkFields<'_>, attributes: &[A]) {
        append_hex(&mut self.ln_trace_id, link.trace_id);
        append_hex(&mut self.ln_span_id, link.span_id);
        self.ln_trace_state
            .append_option((!link.trace_state.is_empty()).then_some(link.trace_state));
        self.ln_flags.push(link.flags);
        self.ln_attributes.append(attributes);
        self.ln_dropped.push(link.dropped_attributes);
    }

    /// Ends a span started by [`Self::start_span`].
    fn end_span(&mut self) {
        self.events.push(self.ev_time.len());
        self.links.push(self.ln_flags.len());
    }

    fn finish(mut self) -> Converted {
        let rejected = std::mem::take(&mut self.rejected);
        Converted::of(self.time.len() as u64, rejected, || self.batch())
    }

    fn batch(self) -> RecordBatch {
        let ts = timestamps;
        let u32s = |v: Vec<u32>| -> ArrayRef { Arc::new(UInt32Array::from(v)) };
        let mut b = self;

        let event_values = struct_array(
            schema::span_event_fields(),
            vec![
                ts(b.ev_time),
                Arc::new(b.ev_name.finish()),
                Arc::new(b.ev_attributes.finish()),
                u32s(b.ev_dropped),
            ],
        );
        let link_values = struct_array(
            schema::span_link_fields(),
            vec![
                Arc::new(b.ln_trace_id.finish()),
                Arc::new(b.ln_span_id.finish()),
                Arc::new(b.ln_trace_state.finish()),
                u32s(b.ln_flags),
                Arc::new(b.ln_attributes.finish()),
                u32s(b.ln_dropped),
            ],
        );

        let [service, resource_attributes, scope_name, scope_version] = b.origin.finish();
        let columns: Vec<ArrayRef> = vec![
            ts(b.time),
            ts(b.end_time),
            Arc::new(Int64Array::from(b.duration)),
            Arc::new(b.trace_id.finish()),
            Arc::new(b.span_id.finish()),
            Arc::new(b.parent_span_id.finish()),
            Arc::new(b.trace_state.finish()),
            u32s(b.flags),
            Arc::new(b.name.finish()),
            Arc::new(b.kind.finish()),
            Arc::new(b.status_code.finish()),
            Arc::new(b.status_message.finish()),
            service,
            resource_attributes,
            scope_name,
            scope_version,
            Arc::new(b.attributes.finish()),
            u32s(b.dropped_attributes),
            Arc::new(b.events.finish(
                arrow::datatypes::DataType::Struct(schema::span_event_fields()),
                event_values,
            )),
            u32s(b.dropped_events),
            Arc::new(b.links.finish(
                arrow::datatypes::DataType::Struct(schema::span_link_fields()),
                link_values,
            )),
            u32s(b.dropped_links),
        ];
        RecordBatch::try_new(schema::buffer_schema_for(Signal::Spans), columns)
            .expect("columns are built to the spans schema")
    }
}

/// The scalar fields of a link.
#[derive(Debug, Default)]
struct LinkFields<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    trace_state: &'a str,
    flags: u32,
    dropped_attributes: u32,
}

/// Converts the spans of a request; spans with invalid ids or timestamps are rejected.
pub fn spans_to_batch(request: &ExportTraceServiceRequest) -> Converted {
    let rows: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut b = SpansBuilder::with_capacity(rows);
    for (ri, rs) in request.resource_spans.iter().enumerate() {
        let resource_attrs = attributes_of(rs.resource.as_ref());
        let rendered = Rendered::new(resource_attrs);
        for ss in &rs.scope_spans {
            let origin = Origin::of(resource_attrs, &rendered, ss.scope.as_ref());
            for (si, span) in ss.spans.iter().enumerate() {
                if !b.start_span((ri, si), &origin, &SpanFields::of(span), &span.attributes) {
                    continue;
                }
                for event in &span.events {
                    b.push_event(
                        event.time_unix_nano,
                        &event.name,
                        &event.attributes,
                        event.dropped_attributes_count,
                    );
                }
                for link in &span.links {
                    let fields = LinkFields {
                        trace_id: &link.trace_id,
                        span_id: &link.span_id,
                        trace_state: &link.trace_state,
                        flags: link.flags,
                        dropped_attributes: link.dropped_attributes_count,
                    };
                    b.push_link(&fields, &link.attributes);
                }
                b.end_span();
            }
        }
    }
    b.finish()
}

/// Converts the spans of a protobuf-encoded `ExportTraceServiceRequest` without decoding it
/// into messages first: the same rows as `spans_to_batch` of the decoded request.
/// [`Unsupported`] when the body is not read exactly as prost reads it (`wire.rs`); the
/// caller then decodes it.
pub(crate) fn spans_from_protobuf(body: &[u8]) -> wire::Result<Converted> {
    let request = wire::Request::read(body)?;
    let mut b = SpansBuilder::with_capacity(request.items.len());
    let (mut attrs, mut nested) = (Vec::new(), Vec::new());
    let (mut events, mut links) = (Vec::new(), Vec::new());
    request.for_each_scope(|ri, _, origin, items| {
        for (si, span) in request.items[items].iter().enumerate() {
            let fields = span_fields(span, &mut attrs, &mut events, &mut links)?;
            let stored = b.start_span((ri, si), origin, &fields, &attrs);
            for &event in &events {
                let (time, name, dropped) = event_fields(event, &mut nested)?;
                if stored {
                    b.push_event(time, name, &nested, dropped);
                }
            }
            for &link in &links {
                let fields = link_fields(link, &mut nested)?;
                if stored {
                    b.push_link(&fields, &nested);
                }
            }
            if stored {
                b.end_span();
            }
        }
        Ok(())
    })?;
    Ok(b.finish())
}

/// A `Span`: its scalar fields, its attributes into `attrs`, and its events' and links'
/// messages (each list cleared first).
fn span_fields<'a>(
    buf: &'a [u8],
    attrs: &mut Vec<WireAttr<'a>>,
    events: &mut Vec<&'a [u8]>,
    links: &mut Vec<&'a [u8]>,
) -> wire::Result<SpanFields<'a>> {
    let mut span = SpanFields::default();
    let mut status = None;
    attrs.clear();
    events.clear();
    links.clear();
    for field in Fields::new(buf) {
        match field? {
            (1, f) => span.trace_id = f.bytes()?,
            (2, f) => span.span_id = f.bytes()?,
            (3, f) => span.trace_state = f.string()?,
            (4, f) => span.parent_span_id = f.bytes()?,
            (5, f) => span.name = f.string()?,
            (6, f) => span.kind = f.int32()?,
            (7, f) => span.start = f.fixed64()?,
            (8, f) => span.end = f.fixed64()?,
            (9, f) => push_key_value(attrs, f)?,
            (10, f) => span.dropped_attributes = f.uint32()?,
            (11, f) => events.push(f.bytes()?),
            (12, f) => span.dropped_events = f.uint32()?,
            (13, f) => links.push(f.bytes()?),
            (14, f) => span.dropped_links = f.uint32()?,
            (15, f) => once(&mut status, f)?,
            (16, f) => span.flags = f.fixed32()?,
            _ => return Err(Unsupported),
        }
    }
    if let Some(status) = status {
        for field in Fields::new(status) {
            match field? {
                (2, f) => span.status_message = f.string()?,
                (3, f) => span.status_code = f.int32()?,
                _ => return Err(Unsupported),
            }
        }
    }
    Ok(span)
}

/// An `Event`: time, name and dropped count; its attributes into `attrs` (cleared first).
fn event_fields<'a>(
    buf: &'a [u8],
    attrs: &mut Vec<WireAttr<'a>>,
) -> wire::Result<(u64, &'a str, u32)> {
    let (mut time, mut name, mut dropped) = (0, "", 0);
    attrs.clear();
    for field in Fields::new(buf) {
        match field? {
            (1, f) => time = f.fixed64()?,
            (2, f) => name = f.string()?,
            (3, f) => push_key_value(attrs, f)?,
            (4, f) => dropped = f.uint32()?,
            _ => return Err(Unsupported),
        }
    }
    Ok((time, name, dropped))
}

/// A `Link`'s scalar fields; its attributes into `attrs` (cleared first).
fn link_fields<'a>(buf: &'a [u8], attrs: &mut Vec<WireAttr<'a>>) -> wire::Result<LinkFields<'a>> {
    let mut link = LinkFields::default();
    attrs.clear();
    for field in Fields::new(buf) {
        match field? {
            (1, f) => link.trace_id = f.bytes()?,
            (2, f) => link.span_id = f.bytes()?,
            (3, f) => link.trace_state = f.string()?,
            (4, f) => push_key_value(attrs, f)?,
            (5, f) => link.dropped_attributes = f.uint32()?,
            (6, f) => link.flags = f.fixed32()?,
            _ => return Err(Unsupported),
        }
    }
    Ok(link)
}
