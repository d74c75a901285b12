//! OTLP → Arrow conversion, field by field.

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, MapArray,
    RecordBatch, StringArray, StructArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    self as m, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use strata_storage::schema;

use super::*;
use crate::OtlpSignal;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", s(service)), kv("host.name", s("h1"))],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "lib".into(),
        version: "1.0".into(),
        ..Default::default()
    })
}

/// Every attribute value type.
fn all_types() -> Vec<KeyValue> {
    vec![
        kv("str", s("x")),
        kv("bool", Value::BoolValue(true)),
        kv("int", Value::IntValue(-42)),
        kv("double", Value::DoubleValue(0.1)),
        kv("big", Value::DoubleValue(1e300)),
        kv("nan", Value::DoubleValue(f64::NAN)),
        kv("inf", Value::DoubleValue(f64::NEG_INFINITY)),
        kv("bytes", Value::BytesValue(vec![1, 2, 3])),
        kv(
            "array",
            Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(s("a")),
                    },
                    AnyValue {
                        value: Some(Value::IntValue(1)),
                    },
                    AnyValue {
                        value: Some(Value::BoolValue(false)),
                    },
                    AnyValue { value: None },
                ],
            }),
        ),
        kv(
            "kvlist",
            Value::KvlistValue(KeyValueList {
                values: vec![kv("k", s("v")), kv("n", Value::DoubleValue(2.5))],
            }),
        ),
        KeyValue {
            key: "empty".into(),
            value: None,
            ..Default::default()
        },
    ]
}

/// A map cell as (key, value) pairs.
/// A row of a map column, or of a dictionary of maps (`resource_attributes` as conversion
/// builds it).
fn map_row(array: &dyn Array, row: usize) -> Vec<(String, Option<String>)> {
    if let Some(dictionary) = array.as_dictionary_opt::<arrow::datatypes::UInt32Type>() {
        let key = dictionary.keys().value(row) as usize;
        return map_row(dictionary.values().as_ref(), key);
    }
    let map = array.as_any().downcast_ref::<MapArray>().unwrap();
    let entries = map.value(row);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    (0..entries.len())
        .map(|i| {
            (
                keys.value(i).to_string(),
                values.is_valid(i).then(|| values.value(i).to_string()),
            )
        })
        .collect()
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} has another type"))
}

fn strs(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    col::<StringArray>(batch, name)
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn attribute_values_keep_a_documented_text_form() {
    let mut column = MapColumn::with_capacity(1);
    column.append(&all_types());
    let map = column.finish();
    let some = |v: &str| Some(v.to_string());
    assert_eq!(
        map_row(&map, 0),
        vec![
            ("str".into(), some("x")),
            ("bool".into(), some("true")),
            ("int".into(), some("-42")),
            ("double".into(), some("0.1")),
            ("big".into(), some("1e+300")),
            ("nan".into(), some("NaN")),
            ("inf".into(), some("-Infinity")),
            ("bytes".into(), some("AQID")),
            ("array".into(), some(r#"["a",1,false,null]"#)),
            ("kvlist".into(), some(r#"{"k":"v","n":2.5}"#)),
            ("empty".into(), None),
        ]
    );
}

#[test]
fn repeated_attribute_keys_keep_the_first_value() {
    let mut column = MapColumn::with_capacity(2);
    column.append(&[kv("a", s("1")), kv("b", s("2")), kv("a", s("3"))]);
    column.append::<KeyValue>(&[]);
    let map = column.finish();
    assert_eq!(
        map_row(&map, 0),
        vec![
            ("a".into(), Some("1".into())),
            ("b".into(), Some("2".into()))
        ]
    );
    assert!(map_row(&map, 1).is_empty());
}

/// Converts a request both ways, decoded and from its protobuf bytes, and checks that the
/// bytes were read by the fast path to the same rows.
fn convert_spans(request: &ExportTraceServiceRequest) -> Converted {
    let decoded = spans_to_batch(request);
    let read = spans_from_protobuf(&prost::Message::encode_to_vec(request))
        .expect("the fast path reads what prost encodes");
    assert_eq!(read, decoded);
    decoded
}

fn span(trace: u8, id: u8) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("op{id}"),
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 1_500,
        ..Default::default()
    }
}

fn traces(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("checkout"),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn spans_map_every_field() {
    let full = Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        parent_span_id: vec![9; 8],
        trace_state: "k=v".into(),
        flags: 0x301,
        name: "GET /users".into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_001,
        end_time_unix_nano: 1_700_000_000_000_500_001,
        attributes: all_types(),
        dropped_attributes_count: 1,
        events: vec![Event {
            time_unix_nano: 1_700_000_000_000_100_000,
            name: "exception".into(),
            attributes: vec![kv("exception.type", s("E"))],
            dropped_attributes_count: 2,
        }],
        dropped_events_count: 3,
        links: vec![Link {
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            trace_state: "a=b".into(),
            attributes: vec![kv("l", Value::IntValue(7))],
            dropped_attributes_count: 4,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
    };
    let converted = convert_spans(&traces(vec![full, span(2, 2)]));
    assert_eq!(converted.accepted, 2);
    assert_eq!(converted.rejected.count, 0);
    let b = converted.batch.unwrap();
    assert_eq!(
        b.schema(),
        schema::buffer_schema_for(strata_storage::Signal::Spans)
    );
    let times = col::<TimestampNanosecondArray>(&b, "time");
    assert_eq!(times.value(0), 1_700_000_000_000_000_001);
    assert_eq!(
        col::<TimestampNanosecondArray>(&b, "end_time").value(0),
        1_700_000_000_000_500_001
    );
    assert_eq!(
        col::<Int64Array>(&b, "duration_ns").values().to_vec(),
        vec![500_000, 500]
    );
    assert_eq!(
        strs(&b, "trace_id")[0].as_deref(),
        Some("0102030405060708090a0b0c0d0e0f10")
    );
    assert_eq!(strs(&b, "span_id")[0].as_deref(), Some("0102030405060708"));
    assert_eq!(
        strs(&b, "parent_span_id"),
        vec![Some("0909090909090909".into()), None]
    );
    assert_eq!(strs(&b, "trace_state"), vec![Some("k=v".into()), None]);
    assert_eq!(col::<UInt32Array>(&b, "flags").value(0), 0x301);
    assert_eq!(strs(&b, "name")[0].as_deref(), Some("GET /users"));
    assert_eq!(
        strs(&b, "kind"),
        vec![Some("server".into()), Some("unspecified".into())]
    );
    assert_eq!(
        strs(&b, "status_code"),
        vec![Some("error".into()), Some("unset".into())]
    );
    assert_eq!(strs(&b, "status_message"), vec![Some("boom".into()), None]);
    assert_eq!(strs(&b, "service_name")[0].as_deref(), Some("checkout"));
    assert_eq!(
        map_row(b.column_by_name("resource_attributes").unwrap().as_ref(), 0),
        vec![
            ("service.name".into(), Some("checkout".into())),
            ("host.name".into(), Some("h1".into()))
        ]
    );
    assert_eq!(strs(&b, "scope_name")[0].as_deref(), Some("lib"));
    assert_eq!(strs(&b, "scope_version")[0].as_deref(), Some("1.0"));
    assert_eq!(
        map_row(b.column_by_name("attributes").unwrap().as_ref(), 0).len(),
        11
    );
    assert_eq!(
        col::<UInt32Array>(&b, "dropped_attributes_count").value(0),
        1
    );
    assert_eq!(col::<UInt32Array>(&b, "dropped_events_count").value(0), 3);
    assert_eq!(col::<UInt32Array>(&b, "dropped_links_count").value(0), 5);

    let events = col::<ListArray>(&b, "events");
    assert_eq!(events.value_length(0), 1);
    assert_eq!(events.value_length(1), 0);
    let event = events.value(0);
    let event = event.as_any().downcast_ref::<StructArray>().unwrap();
    assert_eq!(
        event
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
            .value(0),
        1_700_000_000_000_100_000
    );
    assert_eq!(event.column(1).as_string::<i32>().value(0), "exception");
    assert_eq!(
        map_row(event.column(2).as_ref(), 0),
        vec![("exception.type".into(), Some("E".into()))]
    );
    assert_eq!(
        event
            .column(3)
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .value(0),
        2
    );

    let links = col::<ListArray>(&b, "links");
    let link = links.value(0);
    let link = link.as_any().downcast_ref::<StructArray>().unwrap();
    assert_eq!(link.column(0).as_string::<i32>().value(0), "ab".repeat(16));
    assert_eq!(link.column(1).as_string::<i32>().value(0), "cd".repeat(8));
    assert_eq!(link.column(2).as_string::<i32>().value(0), "a=b");
    assert_eq!(
        link.column(3)
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .value(0),
        1
    );
    assert_eq!(
        map_row(link.column(4).as_ref(), 0),
        vec![("l".into(), Some("7".into()))]
    );
    assert_eq!(
        link.column(5)
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .value(0),
        4
    );
}

#[test]
fn invalid_spans_are_counted_not_stored() {
    let mut short_trace = span(1, 1);
    short_trace.trace_id.pop();
    let mut zero_trace = span(1, 2);
    zero_trace.trace_id = vec![0; 16];
    let mut long_span = span(1, 3);
    long_span.span_id.push(1);
    let mut bad_parent = span(1, 4);
    bad_parent.parent_span_id = vec![1; 3];
    let mut future = span(1, 5);
    future.end_time_unix_nano = u64::MAX;
    let converted = convert_spans(&traces(vec![
        span(1, 6),
        short_trace,
        zero_trace,
        long_span,
        bad_parent,
        future,
        span(1, 7),
    ]));
    assert_eq!(converted.accepted, 2);
    assert_eq!(converted.rejected.count, 5);
    assert_eq!(
        converted.rejected.message("spans"),
        "5 spans rejected; first: span 1 of resource 0: trace_id is 15 bytes, expected 16"
    );
    let b = converted.batch.unwrap();
    assert_eq!(
        strs(&b, "name"),
        vec![Some("op6".into()), Some("op7".into())]
    );
}

/// Rows take their resource's and scope's columns, whatever comes between them: several
/// resources and scopes, a scope without spans, a resource without attributes, a rejected
/// span inside a scope, an attribute without a value.
#[test]
fn every_row_has_the_origin_of_its_scope() {
    let mut rejected = span(1, 9);
    rejected.trace_id.pop();
    let scope_spans = |scope, spans| ScopeSpans {
        scope,
        spans,
        ..Default::default()
    };
    let mut first = resource("a").unwrap();
    first.attributes.push(KeyValue {
        key: "empty".into(),
        value: None,
        ..Default::default()
    });
    let other_scope = Some(InstrumentationScope {
        name: "other".into(),
        version: "2".into(),
        ..Default::default()
    });
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(first),
                scope_spans: vec![
                    scope_spans(scope(), vec![span(1, 1), span(1, 2)]),
                    scope_spans(None, vec![rejected, span(1, 3)]),
                    scope_spans(other_scope, vec![span(1, 4)]),
                ],
                ..Default::default()
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![scope_spans(scope(), vec![span(2, 1)])],
                ..Default::default()
            },
            ResourceSpans {
                resource: resource("b"),
                scope_spans: vec![
                    scope_spans(scope(), vec![]),
                    scope_spans(scope(), vec![span(3, 1), span(3, 2)]),
                ],
                ..Default::default()
            },
        ],
    };
    let converted = convert_spans(&request);
    assert_eq!((converted.accepted, converted.rejected.count), (7, 1));
    let b = converted.batch.unwrap();
    let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(
        strs(&b, "name"),
        some(&["op1", "op2", "op3", "op4", "op1", "op1", "op2"])
    );
    assert_eq!(
        strs(&b, "service_name"),
        some(&["a", "a", "a", "a", UNKNOWN_SERVICE, "b", "b"])
    );
    assert_eq!(
        strs(&b, "scope_name"),
        some(&["lib", "lib", "", "other", "lib", "lib", "lib"])
    );
    assert_eq!(
        strs(&b, "scope_version"),
        some(&["1.0", "1.0", "", "2", "1.0", "1.0", "1.0"])
    );
    let entry = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
    let a = vec![
        entry("service.name", Some("a")),
        entry("host.name", Some("h1")),
        entry("empty", None),
    ];
    let resource_b = vec![
        entry("service.name", Some("b")),
        entry("host.name", Some("h1")),
    ];
    let maps = b.column_by_name("resource_attributes").unwrap();
    let rows: Vec<_> = (0..b.num_rows()).map(|r| map_row(maps, r)).collect();
    // Each resource's map once, whatever its scopes: the write buffer's layout.
    let dictionary = maps.as_dictionary::<arrow::datatypes::UInt32Type>();
    assert_eq!(dictionary.values().len(), 3);
    assert_eq!(dictionary.keys().values(), &[0, 0, 0, 0, 1, 2, 2]);
    assert_eq!(
        rows,
        vec![
            a.clone(),
            a.clone(),
            a.clone(),
            a,
            vec![],
            resource_b.clone(),
            resource_b
        ]
    );
}

/// A batch holds its rows' service and scope, and each run's resource, up to a limit
/// (32-bit offsets); past it a row is refused whole, and the rows before it are built as
/// usual.
#[test]
fn rows_past_the_origin_limit_are_refused() {
    let no_value = KeyValue {
        key: "empty".into(),
        value: None,
        ..Default::default()
    };
    let resource = Rendered::new(&[kv("k", s("v")), no_value]);
    let other = Rendered::new(&[kv("k", s("w"))]);
    // Per row 3 + 3 + 3 bytes of service and scope; once per run "k" "empty" "v": 7 bytes of
    // map text and 2 entries. Three rows hold 9 + 27 = 36.
    let origin = Origin::new("svc", &resource, "lib", "1.0");
    let small = Origin::new("s", &other, "", "");
    let mut columns = OriginColumns {
        limit: 40,
        ..OriginColumns::default()
    };
    for _ in 0..3 {
        columns.append(&origin).unwrap();
    }
    let refused = columns.append(&origin).unwrap_err();
    assert_eq!(
        refused,
        "its resource, service and scope, with those of the request's rows before it, \
         exceed 40 bytes"
    );
    // A smaller origin still fits in what is left (1 byte of service, "k" "w" and 1 entry);
    // another row of it (1 more byte) does not.
    columns.append(&small).unwrap();
    assert!(columns.append(&small).is_err());

    let [service, resource_attributes, scope_name, scope_version] = columns.finish();
    let strings = |a: &ArrayRef| {
        a.as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strings(&service), ["svc", "svc", "svc", "s"]);
    assert_eq!(strings(&scope_name), ["lib", "lib", "lib", ""]);
    assert_eq!(strings(&scope_version), ["1.0", "1.0", "1.0", ""]);
    let entry = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
    let first = vec![entry("k", Some("v")), entry("empty", None)];
    assert_eq!(
        (0..4)
            .map(|r| map_row(resource_attributes.as_ref(), r))
            .collect::<Vec<_>>(),
        vec![
            first.clone(),
            first.clone(),
            first,
            vec![entry("k", Some("w"))]
        ]
    );
    resource_attributes.to_data().validate_full().unwrap();
    // Each run's resource once.
    let dictionary = resource_attributes.as_dictionary::<arrow::datatypes::UInt32Type>();
    assert_eq!(dictionary.values().len(), 2);
    assert_eq!(dictionary.keys().values(), &[0, 0, 0, 1]);
}

#[test]
fn empty_requests_convert_to_nothing() {
    let converted = convert_spans(&ExportTraceServiceRequest::default());
    assert!(converted.batch.is_none());
    assert_eq!(converted.accepted, 0);
    assert_eq!(converted.rejected, Rejected::default());
    assert!(
        convert_logs(&ExportLogsServiceRequest::default(), 0)
            .batch
            .is_none()
    );
    assert!(
        convert_metrics(&ExportMetricsServiceRequest::default(), true)
            .batch
            .is_none()
    );
}

#[test]
fn unknown_service_when_the_resource_names_none() {
    let mut request = traces(vec![span(1, 1)]);
    request.resource_spans[0].resource = None;
    let b = convert_spans(&request).batch.unwrap();
    assert_eq!(
        strs(&b, "service_name")[0].as_deref(),
        Some(UNKNOWN_SERVICE)
    );
    assert_eq!(strs(&b, "scope_name")[0].as_deref(), Some("lib"));
}

/// Converts a request both ways, decoded and from its protobuf bytes (see `convert_spans`).
fn convert_logs(request: &ExportLogsServiceRequest, received: i64) -> Converted {
    let decoded = logs_to_batch(request, received);
    let read = logs_from_protobuf(&prost::Message::encode_to_vec(request), received)
        .expect("the fast path reads what prost encodes");
    assert_eq!(read, decoded);
    decoded
}

fn logs(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("api"),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn logs_map_every_field_and_body_type() {
    let base = LogRecord {
        time_unix_nano: 10,
        observed_time_unix_nano: 20,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(s("disk full")),
        }),
        attributes: vec![kv("code", Value::IntValue(28))],
        dropped_attributes_count: 2,
        flags: 1,
        trace_id: vec![0x11; 16],
        span_id: vec![0x22; 8],
        event_name: "app.disk".into(),
    };
    let kvlist_body = LogRecord {
        body: Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("msg", s("hi")), kv("n", Value::IntValue(1))],
            })),
        }),
        trace_id: vec![],
        span_id: vec![],
        event_name: String::new(),
        time_unix_nano: 0,
        ..base.clone()
    };
    let no_times = LogRecord {
        time_unix_nano: 0,
        observed_time_unix_nano: 0,
        body: None,
        ..base.clone()
    };
    let int_body = LogRecord {
        body: Some(AnyValue {
            value: Some(Value::IntValue(5)),
        }),
        ..base.clone()
    };
    let converted = convert_logs(&logs(vec![base, kvlist_body, no_times, int_body]), 99);
    assert_eq!(converted.accepted, 4);
    let b = converted.batch.unwrap();
    assert_eq!(
        b.schema(),
        schema::buffer_schema_for(strata_storage::Signal::Logs)
    );
    assert_eq!(
        col::<TimestampNanosecondArray>(&b, "time")
            .values()
            .to_vec(),
        vec![10, 20, 99, 10]
    );
    assert_eq!(
        col::<TimestampNanosecondArray>(&b, "observed_time")
            .values()
            .to_vec(),
        vec![20, 20, 99, 20]
    );
    assert_eq!(col::<Int32Array>(&b, "severity_number").value(0), 17);
    assert_eq!(strs(&b, "severity_text")[0].as_deref(), Some("ERROR"));
    assert_eq!(
        strs(&b, "body"),
        vec![
            Some("disk full".into()),
            Some(r#"{"msg":"hi","n":1}"#.into()),
            None,
            Some("5".into())
        ]
    );
    assert_eq!(
        strs(&b, "trace_id")[0].as_deref(),
        Some("11".repeat(16).as_str())
    );
    assert_eq!(strs(&b, "trace_id")[1], None);
    assert_eq!(
        strs(&b, "span_id")[0].as_deref(),
        Some("22".repeat(8).as_str())
    );
    assert_eq!(strs(&b, "event_name")[..2], [Some("app.disk".into()), None]);
    assert_eq!(col::<UInt32Array>(&b, "flags").value(0), 1);
    assert_eq!(
        col::<UInt32Array>(&b, "dropped_attributes_count").value(0),
        2
    );
    assert_eq!(
        map_row(b.column_by_name("attributes").unwrap().as_ref(), 0),
        vec![("code".into(), Some("28".into()))]
    );
    assert_eq!(strs(&b, "service_name")[0].as_deref(), Some("api"));
}

#[test]
fn logs_with_invalid_ids_are_rejected() {
    let good = LogRecord {
        time_unix_nano: 1,
        ..Default::default()
    };
    let bad = LogRecord {
        trace_id: vec![1; 15],
        ..good.clone()
    };
    let converted = convert_logs(&logs(vec![good.clone(), bad, good]), 0);
    assert_eq!(converted.accepted, 2);
    assert_eq!(converted.rejected.count, 1);
    assert_eq!(
        converted.rejected.message("log records"),
        "1 log records rejected: log record 1 of resource 0: trace_id is 15 bytes, expected 16"
    );
}

fn number(time: u64, value: number_data_point::Value, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: 5,
        time_unix_nano: time,
        value: Some(value),
        exemplars: vec![],
        flags: 0,
    }
}

fn metric(name: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} description"),
        unit: "1".into(),
        data: Some(data),
        ..Default::default()
    }
}

/// Converts a request decoded and through the receivers' path (`Metrics::convert_protobuf`),
/// which must agree. `read_directly`: the request has only gauges and sums without exemplars,
/// which the fast path reads itself (anything else it leaves to prost).
fn convert_metrics(request: &ExportMetricsServiceRequest, read_directly: bool) -> Converted {
    let decoded = metrics_to_batch(request);
    let body = prost::Message::encode_to_vec(request);
    match metrics_from_protobuf(&body) {
        Ok(read) => assert_eq!(read, decoded),
        Err(wire::Unsupported) => assert!(!read_directly, "left to prost"),
    }
    assert_eq!(crate::Metrics::convert_protobuf(&body, 0).unwrap(), decoded);
    decoded
}

fn metrics(list: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("db"),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: list,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn every_metric_type_becomes_rows() {
    use number_data_point::Value::{AsDouble, AsInt};
    let exemplar = Exemplar {
        filtered_attributes: vec![kv("user", s("u1"))],
        time_unix_nano: 7,
        span_id: vec![3; 8],
        trace_id: vec![4; 16],
        value: Some(m::exemplar::Value::AsInt(9)),
    };
    let mut gauge_point = number(100, AsDouble(0.5), vec![kv("cpu", s("0"))]);
    gauge_point.exemplars = vec![exemplar];
    gauge_point.start_time_unix_nano = 0;
    let request = metrics(vec![
        metric(
            "temp",
            Data::Gauge(Gauge {
                data_points: vec![gauge_point],
            }),
        ),
        metric(
            "requests",
            Data::Sum(Sum {
                data_points: vec![number(100, AsInt(42), vec![])],
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        ),
        metric(
            "latency",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: 100,
                    count: 6,
                    sum: Some(12.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![1.0, 5.0],
                    min: Some(0.1),
                    max: None,
                    ..Default::default()
                }],
                aggregation_temporality: 1,
            }),
        ),
        metric(
            "size",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    time_unix_nano: 100,
                    count: 4,
                    sum: Some(10.0),
                    scale: 3,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: -2,
                        bucket_counts: vec![1, 2],
                    }),
                    negative: None,
                    zero_threshold: 0.001,
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "rpc",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: 100,
                    count: 3,
                    sum: 9.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 5.0,
                        },
                    ],
                    ..Default::default()
                }],
            }),
        ),
    ]);
    let converted = convert_metrics(&request, false);
    assert_eq!(converted.accepted, 5);
    assert_eq!(converted.rejected.count, 0);
    let b = converted.batch.unwrap();
    assert_eq!(
        b.schema(),
        schema::buffer_schema_for(strata_storage::Signal::Metrics)
    );
    let some = |v: &str| Some(v.to_string());
    assert_eq!(
        strs(&b, "metric_type"),
        vec![
            some("gauge"),
            some("sum"),
            some("histogram"),
            some("exponential_histogram"),
            some("summary")
        ]
    );
    assert_eq!(
        strs(&b, "aggregation_temporality"),
        vec![
            None,
            some("cumulative"),
            some("delta"),
            some("cumulative"),
            None
        ]
    );
    let monotonic = col::<BooleanArray>(&b, "is_monotonic");
    assert!(monotonic.is_null(0) && monotonic.value(1) && monotonic.is_null(2));
    let value = col::<Float64Array>(&b, "value");
    assert_eq!((value.value(0), value.value(1)), (0.5, 42.0));
    assert!(value.is_null(2) && value.is_null(4));
    let start = col::<TimestampNanosecondArray>(&b, "start_time");
    assert!(start.is_null(0));
    assert_eq!(start.value(1), 5);
    let count = col::<UInt64Array>(&b, "count");
    assert!(count.is_null(0));
    assert_eq!((count.value(2), count.value(3), count.value(4)), (6, 4, 3));
    let sum = col::<Float64Array>(&b, "sum");
    assert_eq!(
        (sum.value(2), sum.value(3), sum.value(4)),
        (12.5, 10.0, 9.0)
    );
    let min = col::<Float64Array>(&b, "min");
    assert_eq!(min.value(2), 0.1);
    assert!(col::<Float64Array>(&b, "max").is_null(2));
    let buckets = col::<ListArray>(&b, "bucket_counts");
    assert!(buckets.is_null(0));
    assert_eq!(
        buckets
            .value(2)
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .values()
            .to_vec(),
        vec![1, 2, 3]
    );
    let bounds = col::<ListArray>(&b, "explicit_bounds");
    assert_eq!(
        bounds
            .value(2)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .to_vec(),
        vec![1.0, 5.0]
    );
    assert_eq!(col::<Int32Array>(&b, "scale").value(3), 3);
    assert_eq!(col::<UInt64Array>(&b, "zero_count").value(3), 1);
    assert_eq!(col::<Float64Array>(&b, "zero_threshold").value(3), 0.001);
    assert_eq!(col::<Int32Array>(&b, "positive_offset").value(3), -2);
    assert_eq!(
        col::<ListArray>(&b, "positive_bucket_counts")
            .value(3)
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .values()
            .to_vec(),
        vec![1, 2]
    );
    assert_eq!(
        col::<ListArray>(&b, "negative_bucket_counts").value_length(3),
        0
    );
    let quantiles = col::<ListArray>(&b, "quantiles");
    assert!(quantiles.is_null(0));
    let q = quantiles.value(4);
    let q = q.as_any().downcast_ref::<StructArray>().unwrap();
    assert_eq!(
        q.column(0)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .to_vec(),
        vec![0.5, 0.99]
    );
    assert_eq!(
        q.column(1)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .to_vec(),
        vec![2.0, 5.0]
    );
    let exemplars = col::<ListArray>(&b, "exemplars");
    assert_eq!(exemplars.value_length(0), 1);
    assert_eq!(exemplars.value_length(1), 0);
    let e = exemplars.value(0);
    let e = e.as_any().downcast_ref::<StructArray>().unwrap();
    assert_eq!(
        e.column(1)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(0),
        9.0
    );
    assert_eq!(e.column(2).as_string::<i32>().value(0), "04".repeat(16));
    assert_eq!(e.column(3).as_string::<i32>().value(0), "03".repeat(8));
    assert_eq!(
        map_row(e.column(4).as_ref(), 0),
        vec![("user".into(), Some("u1".into()))]
    );
    assert_eq!(strs(&b, "unit")[0].as_deref(), Some("1"));
    assert_eq!(
        strs(&b, "description")[1].as_deref(),
        Some("requests description")
    );
}

/// The columns a metric type has no value for are null on its rows, wherever rows of other
/// types lie before or after them, and a request of one type holds only nulls in the others'
/// columns (built without a value per row, `Group` in metrics.rs).
#[test]
fn the_columns_of_other_metric_types_are_null_on_a_row() {
    use number_data_point::Value::AsDouble;
    let gauge = |name: &str, points: usize| {
        let points = (0..points)
            .map(|i| number(100 + i as u64, AsDouble(i as f64), vec![]))
            .collect();
        metric(
            name,
            Data::Gauge(Gauge {
                data_points: points,
            }),
        )
    };
    let histogram = metric(
        "latency",
        Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: 100,
                count: 2,
                sum: Some(3.0),
                bucket_counts: vec![1, 1],
                explicit_bounds: vec![2.0],
                min: Some(1.0),
                max: Some(2.0),
                ..Default::default()
            }],
            aggregation_temporality: 2,
        }),
    );
    let sum = metric(
        "requests",
        Data::Sum(Sum {
            data_points: vec![number(100, AsDouble(7.0), vec![])],
            aggregation_temporality: 1,
            is_monotonic: true,
        }),
    );
    // The columns of each type: a row of that type has a value in them, every other row null.
    let sum_columns = ["is_monotonic"];
    let histogram_columns = [
        "count",
        "sum",
        "min",
        "max",
        "bucket_counts",
        "explicit_bounds",
    ];
    let exponential_columns = [
        "scale",
        "zero_count",
        "zero_threshold",
        "positive_offset",
        "positive_bucket_counts",
        "negative_offset",
        "negative_bucket_counts",
    ];
    let check = |b: &RecordBatch, types: &[&str]| {
        assert_eq!(b.num_rows(), types.len());
        let expect = |column: &str, row_type: &str| match column {
            "aggregation_temporality" => matches!(row_type, "sum" | "histogram"),
            "value" => matches!(row_type, "gauge" | "sum"),
            "quantiles" => false,
            c if sum_columns.contains(&c) => row_type == "sum",
            c if histogram_columns.contains(&c) => row_type == "histogram",
            c if exponential_columns.contains(&c) => false,
            c => unreachable!("{c}"),
        };
        let columns = ["aggregation_temporality", "value", "quantiles"]
            .into_iter()
            .chain(sum_columns)
            .chain(histogram_columns)
            .chain(exponential_columns);
        for column in columns {
            let array = b.column_by_name(column).unwrap();
            assert_eq!(array.len(), types.len(), "{column}");
            for (row, row_type) in types.iter().enumerate() {
                assert_eq!(
                    array.is_valid(row),
                    expect(column, row_type),
                    "{column} on row {row} ({row_type})"
                );
            }
        }
    };

    // Other types' rows before, between and after; the fast path leaves histograms to prost.
    let mixed = convert_metrics(
        &metrics(vec![
            gauge("cpu", 2),
            histogram.clone(),
            gauge("mem", 1),
            sum.clone(),
            gauge("disk", 2),
        ]),
        false,
    );
    check(
        &mixed.batch.unwrap(),
        &[
            "gauge",
            "gauge",
            "histogram",
            "gauge",
            "sum",
            "gauge",
            "gauge",
        ],
    );
    let value = |b: &RecordBatch, column: &str, row: usize| {
        b.column_by_name(column)
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(row)
    };
    let histogram_first = convert_metrics(&metrics(vec![histogram, gauge("cpu", 3)]), false)
        .batch
        .unwrap();
    check(&histogram_first, &["histogram", "gauge", "gauge", "gauge"]);
    assert_eq!(value(&histogram_first, "sum", 0), 3.0);
    assert_eq!(value(&histogram_first, "value", 3), 2.0);

    // One type only, through the fast path too.
    let gauges = convert_metrics(&metrics(vec![gauge("cpu", 3)]), true)
        .batch
        .unwrap();
    check(&gauges, &["gauge"; 3]);
    let sums = convert_metrics(&metrics(vec![sum, gauge("cpu", 1)]), true)
        .batch
        .unwrap();
    check(&sums, &["sum", "gauge"]);
    assert_eq!(value(&sums, "value", 0), 7.0);
}

#[test]
fn series_ids_are_stable_and_ignore_attribute_order() {
    use number_data_point::Value::AsDouble;
    let one = |attrs: Vec<KeyValue>, name: &str| {
        let b = convert_metrics(
            &metrics(vec![metric(
                name,
                Data::Gauge(Gauge {
                    data_points: vec![number(1, AsDouble(1.0), attrs)],
                }),
            )]),
            true,
        )
        .batch
        .unwrap();
        col::<UInt64Array>(&b, "series").value(0)
    };
    let ab = one(vec![kv("a", s("1")), kv("b", s("2"))], "m");
    let ba = one(vec![kv("b", s("2")), kv("a", s("1"))], "m");
    assert_eq!(ab, ba);
    assert_ne!(ab, one(vec![kv("a", s("1")), kv("b", s("3"))], "m"));
    assert_ne!(ab, one(vec![kv("a", s("1")), kv("b", s("2"))], "n"));
    // Key and value boundaries matter: {"ab": "c"} is not {"a": "bc"}.
    assert_ne!(
        one(vec![kv("ab", s("c"))], "m"),
        one(vec![kv("a", s("bc"))], "m")
    );
    // The same input hashes the same in every release.
    assert_eq!(ab, 0xbe2c_863a_c5f1_dcdf, "series hash changed: {ab:#x}");
}

#[test]
fn points_without_values_are_rejected() {
    let point = NumberDataPoint {
        time_unix_nano: 1,
        value: None,
        ..Default::default()
    };
    let converted = convert_metrics(
        &metrics(vec![metric(
            "g",
            Data::Gauge(Gauge {
                data_points: vec![point],
            }),
        )]),
        true,
    );
    assert!(converted.batch.is_none());
    assert_eq!(converted.rejected.count, 1);
    assert_eq!(
        converted.rejected.message("data points"),
        "1 data points rejected: data point 0 of metric \"g\" (resource 0): data point has no value"
    );
}

// ---- The protobuf fast path (`wire.rs`, `spans_from_protobuf`) against prost ----

/// A length-delimited field: tag, length, bytes.
fn len_field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// A message's fields, in the order they are encoded.
fn fields_of(message: &[u8]) -> Vec<(u32, wire::Field<'_>)> {
    wire::Fields::new(message).map(|f| f.unwrap()).collect()
}

/// One field, encoded again.
fn encode_field(number: u32, field: wire::Field<'_>) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut out = Vec::new();
    match field {
        wire::Field::Varint(v) => {
            encode_key(number, WireType::Varint, &mut out);
            encode_varint(v, &mut out);
        }
        wire::Field::Fixed64(v) => {
            encode_key(number, WireType::SixtyFourBit, &mut out);
            out.extend_from_slice(&v.to_le_bytes());
        }
        wire::Field::Fixed32(v) => {
            encode_key(number, WireType::ThirtyTwoBit, &mut out);
            out.extend_from_slice(&v.to_le_bytes());
        }
        wire::Field::Len(b) => out = len_field(number, b),
    }
    out
}

/// A message's fields in reverse order.
fn reversed(message: &[u8]) -> Vec<u8> {
    let fields = fields_of(message);
    fields
        .into_iter()
        .rev()
        .flat_map(|(n, f)| encode_field(n, f))
        .collect()
}

/// A request of one resource (`service`) and one scope, each encoded after what it holds:
/// the `items` (field 2 of the scope), then the scope, then the resource.
fn request_after_items(items: &[Vec<u8>], service: &str) -> Vec<u8> {
    let items: Vec<u8> = items.iter().flat_map(|item| len_field(2, item)).collect();
    let scope_items = [items, len_field(1, &encoded(&scope().unwrap()))].concat();
    let resource_items = [
        len_field(2, &scope_items),
        len_field(1, &encoded(&resource(service).unwrap())),
    ]
    .concat();
    len_field(1, &resource_items)
}

/// The rows prost and the conversion of the decoded request give, or prost's error.
fn decoded_rows(body: &[u8]) -> Result<Converted, String> {
    let request = <ExportTraceServiceRequest as prost::Message>::decode(body);
    request
        .map(|r| spans_to_batch(&r))
        .map_err(|e| e.to_string())
}

fn encoded<M: prost::Message>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

/// A span with every kind of field: attributes of every type, an event and a link.
fn full_span(id: u8) -> Span {
    Span {
        parent_span_id: vec![9; 8],
        trace_state: "k=v".into(),
        flags: 0x301,
        kind: 3,
        attributes: all_types(),
        events: vec![Event {
            time_unix_nano: 1_200,
            name: "exception".into(),
            attributes: vec![kv("exception.type", s("E"))],
            dropped_attributes_count: 2,
        }],
        links: vec![Link {
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            attributes: vec![kv("l", Value::IntValue(7))],
            flags: 1,
            ..Default::default()
        }],
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
        dropped_links_count: 5,
        ..span(1, id)
    }
}

#[test]
fn the_fast_path_reads_fields_in_any_order() {
    // Spans with their fields reversed (status first, ids last), the scope after its spans,
    // the resource after its scopes; a rejected span's events and links are still read.
    let mut rejected = full_span(3);
    rejected.trace_id.pop();
    let spans: Vec<u8> = [full_span(1), span(1, 2), rejected]
        .iter()
        .flat_map(|span| len_field(2, &reversed(&encoded(span))))
        .collect();
    let scope_spans = [spans, len_field(1, &encoded(&scope().unwrap()))].concat();
    let resource_spans = [
        len_field(2, &scope_spans),
        len_field(2, &scope_spans),
        len_field(1, &encoded(&resource("checkout").unwrap())),
        len_field(3, b"https://opentelemetry.io/schemas/1.26.0"),
    ]
    .concat();
    let body = [len_field(1, &resource_spans), len_field(1, &resource_spans)].concat();

    let read = spans_from_protobuf(&body).expect("read by the fast path");
    let decoded = decoded_rows(&body).unwrap();
    assert_eq!(read, decoded);
    assert_eq!(read.accepted, 8);
    assert_eq!(read.rejected.count, 4);
    let b = read.batch.unwrap();
    assert_eq!(strs(&b, "service_name")[7].as_deref(), Some("checkout"));
    assert_eq!(strs(&b, "scope_name")[7].as_deref(), Some("lib"));
}

#[test]
fn an_attribute_value_keeps_its_last_oneof_field() {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let array = encoded(&ArrayValue {
        values: vec![AnyValue {
            value: Some(s("a")),
        }],
    });
    let mut int_then_string = Vec::new();
    encode_key(3, WireType::Varint, &mut int_then_string);
    encode_varint(7, &mut int_then_string);
    int_then_string.extend(len_field(1, b"text"));
    let string_then_array = [len_field(1, b"text"), len_field(5, &array)].concat();
    let array_then_int = [&len_field(5, &array)[..], &int_then_string[..2]].concat();
    for value in [int_then_string, string_then_array, array_then_int] {
        let key_value = [len_field(1, b"k"), len_field(2, &value)].concat();
        let span = [encoded(&span(1, 1)), len_field(9, &key_value)].concat();
        let body = len_field(1, &len_field(2, &len_field(2, &span)));
        let read = spans_from_protobuf(&body).expect("read by the fast path");
        assert_eq!(read, decoded_rows(&body).unwrap());
    }
}

#[test]
fn the_fast_path_gives_way_to_prost_where_they_could_differ() {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let span_bytes = encoded(&span(1, 1));
    let in_request = |span: &[u8]| len_field(1, &len_field(2, &len_field(2, span)));
    let resource = encoded(&resource("checkout").unwrap());
    let other_resource = encoded(&Resource {
        attributes: vec![kv("region", s("eu"))],
        ..Default::default()
    });
    let mut unknown_field = span_bytes.clone();
    encode_key(99, WireType::Varint, &mut unknown_field);
    encode_varint(1, &mut unknown_field);
    let mut group = span_bytes.clone();
    encode_key(99, WireType::StartGroup, &mut group);
    encode_key(99, WireType::EndGroup, &mut group);
    let status = encoded(&Status {
        message: "a".into(),
        code: 2,
    });
    let twice_status = [
        &span_bytes[..],
        &len_field(15, &status),
        &len_field(15, &status),
    ]
    .concat();
    let value = encoded(&AnyValue {
        value: Some(s("v")),
    });
    let twice_value = [
        len_field(1, b"k"),
        len_field(2, &value),
        len_field(2, &value),
    ]
    .concat();
    let mut deep = AnyValue {
        value: Some(s("leaf")),
    };
    for _ in 0..30 {
        deep = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![deep] })),
        };
    }
    let deep_value = [len_field(1, b"k"), len_field(2, &encoded(&deep))].concat();
    let bad_name = [&span_bytes[..], &len_field(5, &[0xff, 0xfe])].concat();
    let full = encoded(&traces(vec![full_span(1)]));

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a resource twice (prost merges them)",
            len_field(
                1,
                &[
                    len_field(1, &resource),
                    len_field(1, &other_resource),
                    len_field(2, &len_field(2, &span_bytes)),
                ]
                .concat(),
            ),
        ),
        ("a status twice", in_request(&twice_status)),
        (
            "an attribute value twice",
            in_request(&[&span_bytes[..], &len_field(9, &twice_value)].concat()),
        ),
        ("an unknown field", in_request(&unknown_field)),
        ("a group", in_request(&group)),
        (
            "values nested 30 deep",
            in_request(&[&span_bytes[..], &len_field(9, &deep_value)].concat()),
        ),
        ("a name that is not UTF-8", in_request(&bad_name)),
        ("a truncated body", full[..full.len() - 3].to_vec()),
        ("a wrong wire type", {
            let mut body = Vec::new();
            encode_key(1, WireType::Varint, &mut body);
            encode_varint(1, &mut body);
            body
        }),
    ];
    for (case, body) in cases {
        assert_eq!(
            spans_from_protobuf(&body),
            Err(wire::Unsupported),
            "{case}: not for the fast path"
        );
        let received = crate::Traces::convert_protobuf(&body, 0).map_err(|e| e.to_string());
        assert_eq!(received, decoded_rows(&body), "{case}: as prost decides");
    }
    // The cases prost accepts are stored as it reads them.
    let merged = crate::Traces::convert_protobuf(&in_request(&twice_status), 0).unwrap();
    assert_eq!(
        strs(&merged.batch.unwrap(), "status_code")[0].as_deref(),
        Some("error")
    );
}

#[test]
fn log_records_are_read_from_protobuf_in_any_order() {
    let record = |body: Value| LogRecord {
        time_unix_nano: 5,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue { value: Some(body) }),
        attributes: all_types(),
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        flags: 1,
        event_name: "e".into(),
        ..Default::default()
    };
    let mut rejected = record(s("x"));
    rejected.span_id.pop();
    let records: Vec<Vec<u8>> = [record(s("GET /")), record(Value::IntValue(3)), rejected]
        .iter()
        .map(|r| reversed(&encoded(r)))
        .collect();
    let body = request_after_items(&records, "api");
    let read = logs_from_protobuf(&body, 7).expect("read by the fast path");
    let decoded = <ExportLogsServiceRequest as prost::Message>::decode(&body[..]).unwrap();
    assert_eq!(read, logs_to_batch(&decoded, 7));
    assert_eq!((read.accepted, read.rejected.count), (2, 1));

    // A body twice: prost merges the two, so the fast path leaves it to prost.
    let value = encoded(&AnyValue {
        value: Some(s("b")),
    });
    let twice = [encoded(&record(s("a"))), len_field(5, &value)].concat();
    let body = len_field(1, &len_field(2, &len_field(2, &twice)));
    assert_eq!(logs_from_protobuf(&body, 7), Err(wire::Unsupported));
    let received = crate::Logs::convert_protobuf(&body, 7).unwrap();
    let decoded = <ExportLogsServiceRequest as prost::Message>::decode(&body[..]).unwrap();
    assert_eq!(received, logs_to_batch(&decoded, 7));
    assert_eq!(
        strs(&received.batch.unwrap(), "body")[0].as_deref(),
        Some("b")
    );
}

#[test]
fn gauges_and_sums_are_read_from_protobuf_in_any_order() {
    use number_data_point::Value::{AsDouble, AsInt};
    let point = |time, value| number(time, value, vec![kv("cpu", s("0")), kv("mode", s("idle"))]);
    let gauge = metric(
        "temp",
        Data::Gauge(Gauge {
            data_points: vec![point(100, AsDouble(0.5)), point(u64::MAX, AsDouble(1.0))],
        }),
    );
    let sum = metric(
        "requests",
        Data::Sum(Sum {
            data_points: vec![point(100, AsInt(-42))],
            aggregation_temporality: 1,
            is_monotonic: true,
        }),
    );
    // Each metric, its data and its points with their fields reversed (data before the name,
    // a sum's temporality after its points); a point with both values keeps the last.
    let reversed_metric = |m: &Metric| -> Vec<u8> {
        let bytes = encoded(m);
        let reversed_data = |data: &[u8]| -> Vec<u8> {
            let fields = fields_of(data);
            fields
                .into_iter()
                .rev()
                .flat_map(|(n, f)| match (n, f) {
                    (1, wire::Field::Len(p)) => len_field(1, &reversed(p)),
                    (n, f) => encode_field(n, f),
                })
                .collect()
        };
        let fields = fields_of(&bytes);
        fields
            .into_iter()
            .rev()
            .flat_map(|(n, f)| match (n, f) {
                (5 | 7, wire::Field::Len(data)) => len_field(n, &reversed_data(data)),
                (n, f) => encode_field(n, f),
            })
            .collect()
    };
    let mut both_values = encoded(&point(100, AsInt(1)));
    both_values.extend([0x21]); // field 4 (as_double), fixed64
    both_values.extend(2.5f64.to_le_bytes());
    let both = [
        len_field(1, b"both"),
        len_field(5, &len_field(1, &both_values)),
    ]
    .concat();
    let body = request_after_items(
        &[reversed_metric(&gauge), reversed_metric(&sum), both],
        "db",
    );
    let read = metrics_from_protobuf(&body).expect("read by the fast path");
    let decoded = <ExportMetricsServiceRequest as prost::Message>::decode(&body[..]).unwrap();
    assert_eq!(read, metrics_to_batch(&decoded));
    assert_eq!((read.accepted, read.rejected.count), (3, 1));
    let b = read.batch.unwrap();
    assert_eq!(
        col::<Float64Array>(&b, "value").values().to_vec(),
        vec![0.5, -42.0, 2.5]
    );

    // What the fast path leaves to prost: a gauge twice (prost merges them), a histogram
    // (above, in every_metric_type_becomes_rows), exemplars.
    let gauge_bytes = encoded(&gauge);
    let twice = [&gauge_bytes[..], &len_field(5, &encoded(&Gauge::default()))].concat();
    let mut with_exemplar = point(100, AsDouble(1.0));
    with_exemplar.exemplars = vec![Exemplar::default()];
    let exemplar_metric = encoded(&metric(
        "e",
        Data::Gauge(Gauge {
            data_points: vec![with_exemplar],
        }),
    ));
    for metric in [twice, exemplar_metric] {
        let body = len_field(1, &len_field(2, &len_field(2, &metric)));
        assert_eq!(metrics_from_protobuf(&body), Err(wire::Unsupported));
        let decoded = <ExportMetricsServiceRequest as prost::Message>::decode(&body[..]).unwrap();
        assert_eq!(
            crate::Metrics::convert_protobuf(&body, 0).unwrap(),
            metrics_to_batch(&decoded)
        );
    }
}
