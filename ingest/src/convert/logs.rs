//! `ExportLogsServiceRequest` → a `logs` record batch.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, TimestampNanosecondArray, UInt32Array};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use strata_storage::schema::{self, UTC};

use super::{
    Converted, MapColumn, Rejected, Rendered, append_hex, attributes_of, check_id, service_name,
    strings, timestamp, write_text,
};

/// Times of a record: `time` falls back to the observed time, which falls back to the
/// time the request arrived (`received`), as the OTLP data model prescribes.
fn validate(record: &LogRecord, received: i64) -> Result<(i64, i64), String> {
    check_id(&record.trace_id, 16, "trace_id", true)?;
    check_id(&record.span_id, 8, "span_id", true)?;
    let observed = match record.observed_time_unix_nano {
        0 => received,
        ns => timestamp(ns, "observed_time_unix_nano")?,
    };
    let time = match record.time_unix_nano {
        0 => observed,
        ns => timestamp(ns, "time_unix_nano")?,
    };
    Ok((time, observed))
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
    let mut rejected = Rejected::default();
    let mut time = Vec::with_capacity(rows);
    let mut observed_time = Vec::with_capacity(rows);
    let mut severity_number = Vec::with_capacity(rows);
    let mut severity_text = strings(rows, 16);
    let mut body = strings(rows, 16);
    let mut trace_id = strings(rows, 16);
    let mut span_id = strings(rows, 16);
    let mut flags = Vec::with_capacity(rows);
    let mut event_name = strings(rows, 16);
    let mut service = strings(rows, 16);
    let mut resource_attributes = MapColumn::with_capacity(rows);
    let mut scope_name = strings(rows, 16);
    let mut scope_version = strings(rows, 16);
    let mut attributes = MapColumn::with_capacity(rows);
    let mut dropped_attributes = Vec::with_capacity(rows);
    let mut text = String::new();

    for (ri, rl) in request.resource_logs.iter().enumerate() {
        let resource_attrs = attributes_of(rl.resource.as_ref());
        let service_name = service_name(resource_attrs);
        let resource_rendered = Rendered::new(resource_attrs);
        for sl in &rl.scope_logs {
            let (sname, sversion) = sl
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or(("", ""));
            for (li, record) in sl.log_records.iter().enumerate() {
                let (t, observed) = match validate(record, received) {
                    Ok(times) => times,
                    Err(reason) => {
                        rejected.add(|| format!("log record {li} of resource {ri}: {reason}"));
                        continue;
                    }
                };
                time.push(t);
                observed_time.push(observed);
                severity_number.push(record.severity_number);
                severity_text.append_value(&record.severity_text);
                text.clear();
                if write_text(record.body.as_ref(), &mut text) {
                    body.append_value(&text);
                } else {
                    body.append_null();
                }
                append_hex(&mut trace_id, &record.trace_id);
                append_hex(&mut span_id, &record.span_id);
                flags.push(record.flags);
                event_name
                    .append_option((!record.event_name.is_empty()).then_some(&record.event_name));
                service.append_value(service_name);
                resource_attributes.append_rendered(&resource_rendered);
                scope_name.append_value(sname);
                scope_version.append_value(sversion);
                attributes.append(&record.attributes);
                dropped_attributes.push(record.dropped_attributes_count);
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
    let columns: Vec<ArrayRef> = vec![
        ts(time),
        ts(observed_time),
        Arc::new(Int32Array::from(severity_number)),
        Arc::new(severity_text.finish()),
        Arc::new(body.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(UInt32Array::from(flags)),
        Arc::new(event_name.finish()),
        Arc::new(service.finish()),
        Arc::new(resource_attributes.finish()),
        Arc::new(scope_name.finish()),
        Arc::new(scope_version.finish()),
        Arc::new(attributes.finish()),
        Arc::new(UInt32Array::from(dropped_attributes)),
    ];
    let batch = RecordBatch::try_new(schema::logs_schema(), columns)
        .expect("columns are built to the logs schema");
    Converted {
        batch: Some(batch),
        accepted,
        rejected,
    }
}
