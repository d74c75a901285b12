//! `ExportTraceServiceRequest` → a `spans` record batch.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringBuilder, TimestampNanosecondArray, UInt32Array,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use strata_storage::schema::{self, UTC};

use super::{
    Converted, ListOffsets, MapColumn, Rejected, Rendered, append_hex, check_id, service_name,
    strings, struct_array, timestamp,
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

fn validate(span: &Span) -> Result<(i64, i64), String> {
    check_id(&span.trace_id, 16, "trace_id", false)?;
    check_id(&span.span_id, 8, "span_id", false)?;
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!(
            "parent_span_id is {} bytes, expected 8 or none",
            span.parent_span_id.len()
        ));
    }
    let start = timestamp(span.start_time_unix_nano, "start_time_unix_nano")?;
    let end = timestamp(span.end_time_unix_nano, "end_time_unix_nano")?;
    Ok((start, end))
}

/// Converts the spans of a request; spans with invalid ids or timestamps are rejected.
pub fn spans_to_batch(request: &ExportTraceServiceRequest) -> Converted {
    let rows: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut rejected = Rejected::default();
    let mut time = Vec::with_capacity(rows);
    let mut end_time = Vec::with_capacity(rows);
    let mut duration = Vec::with_capacity(rows);
    let mut trace_id = StringBuilder::with_capacity(rows, rows * 32);
    let mut span_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut parent_span_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut trace_state = strings(rows, 16);
    let mut flags = Vec::with_capacity(rows);
    let mut name = strings(rows, 16);
    let mut kind = strings(rows, 16);
    let mut status_code = strings(rows, 16);
    let mut status_message = strings(rows, 16);
    let mut service = strings(rows, 16);
    let mut resource_attributes = MapColumn::with_capacity(rows);
    let mut scope_name = strings(rows, 16);
    let mut scope_version = strings(rows, 16);
    let mut attributes = MapColumn::with_capacity(rows);
    let mut dropped_attributes = Vec::with_capacity(rows);
    let mut dropped_events = Vec::with_capacity(rows);
    let mut dropped_links = Vec::with_capacity(rows);

    let mut events = ListOffsets::with_capacity(rows);
    let mut ev_time = Vec::new();
    let mut ev_name = strings(0, 0);
    let mut ev_attributes = MapColumn::with_capacity(0);
    let mut ev_dropped = Vec::new();

    let mut links = ListOffsets::with_capacity(rows);
    let mut ln_trace_id = strings(0, 0);
    let mut ln_span_id = strings(0, 0);
    let mut ln_trace_state = strings(0, 0);
    let mut ln_flags = Vec::new();
    let mut ln_attributes = MapColumn::with_capacity(0);
    let mut ln_dropped = Vec::new();

    for (ri, rs) in request.resource_spans.iter().enumerate() {
        let resource = rs.resource.as_ref();
        let service_name = service_name(resource);
        let resource_attrs = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let resource_rendered = Rendered::new(resource_attrs);
        for ss in &rs.scope_spans {
            let (sname, sversion) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or(("", ""));
            for (si, span) in ss.spans.iter().enumerate() {
                let (start, end) = match validate(span) {
                    Ok(times) => times,
                    Err(reason) => {
                        rejected.add(|| format!("span {si} of resource {ri}: {reason}"));
                        continue;
                    }
                };
                time.push(start);
                end_time.push(end);
                duration.push(end.saturating_sub(start));
                append_hex(&mut trace_id, &span.trace_id);
                append_hex(&mut span_id, &span.span_id);
                append_hex(&mut parent_span_id, &span.parent_span_id);
                trace_state
                    .append_option((!span.trace_state.is_empty()).then_some(&span.trace_state));
                flags.push(span.flags);
                name.append_value(&span.name);
                kind.append_value(super::traces::kind_name(span.kind));
                let status = span.status.as_ref();
                status_code.append_value(status_name(status.map_or(0, |s| s.code)));
                status_message
                    .append_option(status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()));
                service.append_value(service_name);
                resource_attributes.append_rendered(&resource_rendered);
                scope_name.append_value(sname);
                scope_version.append_value(sversion);
                attributes.append(&span.attributes);
                dropped_attributes.push(span.dropped_attributes_count);
                dropped_events.push(span.dropped_events_count);
                dropped_links.push(span.dropped_links_count);

                for event in &span.events {
                    // An event time past 2262 cannot be stored; clamp rather than lose the span.
                    ev_time.push(i64::try_from(event.time_unix_nano).unwrap_or(i64::MAX));
                    ev_name.append_value(&event.name);
                    ev_attributes.append(&event.attributes);
                    ev_dropped.push(event.dropped_attributes_count);
                }
                events.push(ev_time.len());

                for link in &span.links {
                    append_hex(&mut ln_trace_id, &link.trace_id);
                    append_hex(&mut ln_span_id, &link.span_id);
                    ln_trace_state
                        .append_option((!link.trace_state.is_empty()).then_some(&link.trace_state));
                    ln_flags.push(link.flags);
                    ln_attributes.append(&link.attributes);
                    ln_dropped.push(link.dropped_attributes_count);
                }
                links.push(ln_flags.len());
            }
        }
    }

    let accepted = time.len() as u64;
    if accepted == 0 {
        return Converted {
            batch: None,
            accepted,
            rejected,
        };
    }
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(v).with_timezone(UTC))
    };
    let u32s = |v: Vec<u32>| -> ArrayRef { Arc::new(UInt32Array::from(v)) };

    let event_values = struct_array(
        schema::span_event_fields(),
        vec![
            ts(ev_time),
            Arc::new(ev_name.finish()),
            Arc::new(ev_attributes.finish()),
            u32s(ev_dropped),
        ],
    );
    let link_values = struct_array(
        schema::span_link_fields(),
        vec![
            Arc::new(ln_trace_id.finish()),
            Arc::new(ln_span_id.finish()),
            Arc::new(ln_trace_state.finish()),
            u32s(ln_flags),
            Arc::new(ln_attributes.finish()),
            u32s(ln_dropped),
        ],
    );

    let columns: Vec<ArrayRef> = vec![
        ts(time),
        ts(end_time),
        Arc::new(Int64Array::from(duration)),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent_span_id.finish()),
        Arc::new(trace_state.finish()),
        u32s(flags),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
        Arc::new(service.finish()),
        Arc::new(resource_attributes.finish()),
        Arc::new(scope_name.finish()),
        Arc::new(scope_version.finish()),
        Arc::new(attributes.finish()),
        u32s(dropped_attributes),
        Arc::new(events.finish(
            arrow::datatypes::DataType::Struct(schema::span_event_fields()),
            event_values,
        )),
        u32s(dropped_events),
        Arc::new(links.finish(
            arrow::datatypes::DataType::Struct(schema::span_link_fields()),
            link_values,
        )),
        u32s(dropped_links),
    ];
    let batch = RecordBatch::try_new(schema::spans_schema(), columns)
        .expect("columns are built to the spans schema");
    Converted {
        batch: Some(batch),
        accepted,
        rejected,
    }
}
