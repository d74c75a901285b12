//! Tests of the OTLP/JSON decoder and the JSON response encoder.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

use super::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn any(value: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: any(value),
        key_strindex: 0,
    }
}

fn string(s: &str) -> Value {
    Value::StringValue(s.into())
}

fn array(values: Vec<Value>) -> Value {
    Value::ArrayValue(ArrayValue {
        values: values
            .into_iter()
            .map(|v| AnyValue { value: Some(v) })
            .collect(),
    })
}

fn kvlist(values: Vec<KeyValue>) -> Value {
    Value::KvlistValue(KeyValueList { values })
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Decodes a single span wrapped in the request envelope.
fn one_span(span: &str) -> Result<Span, String> {
    let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}"#);
    let mut req = decode_traces(body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(req
        .resource_spans
        .remove(0)
        .scope_spans
        .remove(0)
        .spans
        .remove(0))
}

/// Decodes a single log record wrapped in the request envelope.
fn one_log(record: &str) -> Result<LogRecord, String> {
    let body = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{record}]}}]}}]}}"#);
    let mut req = decode_logs(body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(req
        .resource_logs
        .remove(0)
        .scope_logs
        .remove(0)
        .log_records
        .remove(0))
}

/// Decodes an AnyValue given as JSON (as a log body).
fn any_value(value: &str) -> Result<Option<AnyValue>, String> {
    Ok(one_log(&format!(r#"{{"body":{value}}}"#))?.body)
}

/// Decodes a single metric wrapped in the request envelope.
fn one_metric(metric: &str) -> Result<Metric, String> {
    let body = format!(r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{metric}]}}]}}]}}"#);
    let mut req = decode_metrics(body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(req
        .resource_metrics
        .remove(0)
        .scope_metrics
        .remove(0)
        .metrics
        .remove(0))
}

/// Decodes a single gauge data point.
fn gauge_point(point: &str) -> Result<NumberDataPoint, String> {
    match one_metric(&format!(r#"{{"gauge":{{"dataPoints":[{point}]}}}}"#))?.data {
        Some(metric::Data::Gauge(mut g)) => Ok(g.data_points.remove(0)),
        other => panic!("expected a gauge, got {other:?}"),
    }
}

/// Decodes a single histogram data point.
fn histogram_point(point: &str) -> Result<HistogramDataPoint, String> {
    match one_metric(&format!(r#"{{"histogram":{{"dataPoints":[{point}]}}}}"#))?.data {
        Some(metric::Data::Histogram(mut h)) => Ok(h.data_points.remove(0)),
        other => panic!("expected a histogram, got {other:?}"),
    }
}

fn assert_err_contains<T: fmt::Debug>(result: Result<T, String>, needle: &str) {
    match result {
        Ok(v) => panic!("expected an error containing {needle:?}, decoded {v:?}"),
        Err(e) => assert!(
            e.contains(needle),
            "error {e:?} does not contain {needle:?}"
        ),
    }
}

// ---------------------------------------------------------------------------
// Full samples, one per signal (after the OTLP specification examples)
// ---------------------------------------------------------------------------

const TRACE_SAMPLE: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "my.service" } }
        ],
        "droppedAttributesCount": 1,
        "entityRefs": [
          {
            "schemaUrl": "https://opentelemetry.io/schemas/1.30.0",
            "type": "service",
            "idKeys": ["service.name"],
            "descriptionKeys": []
          }
        ]
      },
      "scopeSpans": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              { "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } }
            ],
            "droppedAttributesCount": 0
          },
          "spans": [
            {
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "eee19b7ec3c1b174",
              "parentSpanId": "EEE19B7EC3C1B173",
              "traceState": "congo=t61rcWkgMzE",
              "flags": 257,
              "name": "I'm a server span",
              "startTimeUnixNano": "1544712660000000000",
              "endTimeUnixNano": "1544712661000000000",
              "kind": 2,
              "attributes": [
                { "key": "string", "value": { "stringValue": "some value" } },
                { "key": "bool", "value": { "boolValue": true } },
                { "key": "int.string", "value": { "intValue": "-42" } },
                { "key": "int.number", "value": { "intValue": 9007199254740993 } },
                { "key": "double", "value": { "doubleValue": 3.25 } },
                { "key": "bytes", "value": { "bytesValue": "aGVsbG8=" } },
                {
                  "key": "array",
                  "value": {
                    "arrayValue": {
                      "values": [
                        { "stringValue": "a" },
                        { "intValue": "1" },
                        { "arrayValue": {} }
                      ]
                    }
                  }
                },
                {
                  "key": "kvlist",
                  "value": {
                    "kvlistValue": {
                      "values": [
                        { "key": "nested", "value": { "boolValue": false } }
                      ]
                    }
                  }
                },
                { "key": "empty", "value": {} },
                { "key": "no.value" }
              ],
              "droppedAttributesCount": 3,
              "events": [
                {
                  "timeUnixNano": "1544712660500000000",
                  "name": "exception",
                  "attributes": [
                    { "key": "exception.message", "value": { "stringValue": "oops" } }
                  ],
                  "droppedAttributesCount": 2
                }
              ],
              "droppedEventsCount": 4,
              "links": [
                {
                  "traceId": "0102030405060708090a0b0c0d0e0f10",
                  "spanId": "0102030405060708",
                  "traceState": "x=y",
                  "attributes": [
                    { "key": "link.kind", "value": { "stringValue": "follows" } }
                  ],
                  "droppedAttributesCount": 1,
                  "flags": 256
                }
              ],
              "droppedLinksCount": 5,
              "status": { "code": 2, "message": "boom" }
            }
          ],
          "schemaUrl": "https://opentelemetry.io/schemas/1.30.0"
        }
      ],
      "schemaUrl": "https://opentelemetry.io/schemas/1.29.0"
    }
  ]
}"#;

fn trace_sample_expected() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: unhex("5b8efff798038103d269b633813fc60c"),
        span_id: unhex("eee19b7ec3c1b174"),
        trace_state: "congo=t61rcWkgMzE".into(),
        parent_span_id: unhex("eee19b7ec3c1b173"),
        flags: 257,
        name: "I'm a server span".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: 1_544_712_660_000_000_000,
        end_time_unix_nano: 1_544_712_661_000_000_000,
        attributes: vec![
            kv("string", string("some value")),
            kv("bool", Value::BoolValue(true)),
            kv("int.string", Value::IntValue(-42)),
            kv("int.number", Value::IntValue(9_007_199_254_740_993)),
            kv("double", Value::DoubleValue(3.25)),
            kv("bytes", Value::BytesValue(b"hello".to_vec())),
            kv(
                "array",
                array(vec![
                    string("a"),
                    Value::IntValue(1),
                    Value::ArrayValue(ArrayValue::default()),
                ]),
            ),
            kv(
                "kvlist",
                kvlist(vec![kv("nested", Value::BoolValue(false))]),
            ),
            KeyValue {
                key: "empty".into(),
                value: Some(AnyValue { value: None }),
                key_strindex: 0,
            },
            KeyValue {
                key: "no.value".into(),
                value: None,
                key_strindex: 0,
            },
        ],
        dropped_attributes_count: 3,
        events: vec![span::Event {
            time_unix_nano: 1_544_712_660_500_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.message", string("oops"))],
            dropped_attributes_count: 2,
        }],
        dropped_events_count: 4,
        links: vec![span::Link {
            trace_id: (1..=16).collect(),
            span_id: (1..=8).collect(),
            trace_state: "x=y".into(),
            attributes: vec![kv("link.kind", string("follows"))],
            dropped_attributes_count: 1,
            flags: 256,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "boom".into(),
            code: StatusCode::Error as i32,
        }),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", string("my.service"))],
                dropped_attributes_count: 1,
                entity_refs: vec![EntityRef {
                    schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                    r#type: "service".into(),
                    id_keys: vec!["service.name".into()],
                    description_keys: vec![],
                }],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "my.library".into(),
                    version: "1.0.0".into(),
                    attributes: vec![kv("my.scope.attribute", string("some scope attribute"))],
                    dropped_attributes_count: 0,
                }),
                spans: vec![span],
                schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.29.0".into(),
        }],
    }
}

const LOGS_SAMPLE: &str = r#"{
  "resourceLogs": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "my.service" } }
        ]
      },
      "scopeLogs": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              { "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } }
            ]
          },
          "logRecords": [
            {
              "timeUnixNano": "1544712660300000000",
              "observedTimeUnixNano": "1544712660300000001",
              "severityNumber": 10,
              "severityText": "Information",
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "flags": 1,
              "eventName": "app.startup",
              "body": { "stringValue": "Example log record" },
              "attributes": [
                { "key": "string.attribute", "value": { "stringValue": "some string" } },
                { "key": "boolean.attribute", "value": { "boolValue": true } },
                { "key": "int.attribute", "value": { "intValue": "10" } },
                { "key": "double.attribute", "value": { "doubleValue": 637.704 } },
                {
                  "key": "array.attribute",
                  "value": {
                    "arrayValue": {
                      "values": [
                        { "stringValue": "many" },
                        { "stringValue": "values" }
                      ]
                    }
                  }
                },
                {
                  "key": "map.attribute",
                  "value": {
                    "kvlistValue": {
                      "values": [
                        { "key": "some.map.key", "value": { "stringValue": "some value" } }
                      ]
                    }
                  }
                }
              ],
              "droppedAttributesCount": 1
            },
            {
              "timeUnixNano": 1544712660400000000,
              "body": {
                "kvlistValue": {
                  "values": [
                    { "key": "msg", "value": { "stringValue": "hi" } },
                    {
                      "key": "list",
                      "value": {
                        "arrayValue": {
                          "values": [
                            {
                              "arrayValue": {
                                "values": [ { "intValue": 1 }, { "boolValue": false } ]
                              }
                            },
                            { "kvlistValue": { "values": [] } }
                          ]
                        }
                      }
                    }
                  ]
                }
              }
            },
            { "body": { "intValue": "7" } },
            { "body": { "doubleValue": 1.5 } },
            { "body": { "boolValue": true } },
            { "body": { "bytesValue": "AAEC/w==" } },
            { "body": { "arrayValue": { "values": [] } } },
            { "body": {} },
            {}
          ],
          "schemaUrl": "https://opentelemetry.io/schemas/1.30.0"
        }
      ],
      "schemaUrl": "https://opentelemetry.io/schemas/1.29.0"
    }
  ]
}"#;

fn logs_sample_expected() -> ExportLogsServiceRequest {
    let body_only = |value: Option<Value>| LogRecord {
        body: Some(AnyValue { value }),
        ..Default::default()
    };
    let records = vec![
        LogRecord {
            time_unix_nano: 1_544_712_660_300_000_000,
            observed_time_unix_nano: 1_544_712_660_300_000_001,
            severity_number: SeverityNumber::Info2 as i32,
            severity_text: "Information".into(),
            body: any(string("Example log record")),
            attributes: vec![
                kv("string.attribute", string("some string")),
                kv("boolean.attribute", Value::BoolValue(true)),
                kv("int.attribute", Value::IntValue(10)),
                kv("double.attribute", Value::DoubleValue(637.704)),
                kv(
                    "array.attribute",
                    array(vec![string("many"), string("values")]),
                ),
                kv(
                    "map.attribute",
                    kvlist(vec![kv("some.map.key", string("some value"))]),
                ),
            ],
            dropped_attributes_count: 1,
            flags: 1,
            trace_id: unhex("5b8efff798038103d269b633813fc60c"),
            span_id: unhex("eee19b7ec3c1b174"),
            event_name: "app.startup".into(),
        },
        LogRecord {
            time_unix_nano: 1_544_712_660_400_000_000,
            body: any(kvlist(vec![
                kv("msg", string("hi")),
                kv(
                    "list",
                    array(vec![
                        array(vec![Value::IntValue(1), Value::BoolValue(false)]),
                        kvlist(vec![]),
                    ]),
                ),
            ])),
            ..Default::default()
        },
        body_only(Some(Value::IntValue(7))),
        body_only(Some(Value::DoubleValue(1.5))),
        body_only(Some(Value::BoolValue(true))),
        body_only(Some(Value::BytesValue(vec![0, 1, 2, 255]))),
        body_only(Some(array(vec![]))),
        body_only(None),
        LogRecord::default(),
    ];
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", string("my.service"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "my.library".into(),
                    version: "1.0.0".into(),
                    attributes: vec![kv("my.scope.attribute", string("some scope attribute"))],
                    dropped_attributes_count: 0,
                }),
                log_records: records,
                schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.29.0".into(),
        }],
    }
}

const METRICS_SAMPLE: &str = r#"{
  "resourceMetrics": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "my.service" } }
        ]
      },
      "scopeMetrics": [
        {
          "scope": { "name": "my.library", "version": "1.0.0" },
          "metrics": [
            {
              "name": "my.counter",
              "unit": "1",
              "description": "I am a Counter",
              "metadata": [ { "key": "origin", "value": { "stringValue": "sdk" } } ],
              "sum": {
                "aggregationTemporality": 2,
                "isMonotonic": true,
                "dataPoints": [
                  {
                    "asInt": "5",
                    "startTimeUnixNano": "1544712660300000000",
                    "timeUnixNano": "1544712660300000000",
                    "attributes": [
                      { "key": "my.counter.attr", "value": { "stringValue": "some value" } }
                    ]
                  }
                ]
              }
            },
            {
              "name": "my.gauge",
              "unit": "1",
              "description": "I am a Gauge",
              "gauge": {
                "dataPoints": [
                  {
                    "asDouble": 10.5,
                    "timeUnixNano": "1544712660300000000",
                    "flags": 1,
                    "exemplars": [
                      {
                        "timeUnixNano": "1544712660200000000",
                        "asDouble": 10.5,
                        "traceId": "5B8EFFF798038103D269B633813FC60C",
                        "spanId": "EEE19B7EC3C1B174",
                        "filteredAttributes": [
                          { "key": "user", "value": { "stringValue": "alice" } }
                        ]
                      }
                    ]
                  }
                ]
              }
            },
            {
              "name": "my.histogram",
              "unit": "ms",
              "description": "I am a Histogram",
              "histogram": {
                "aggregationTemporality": 1,
                "dataPoints": [
                  {
                    "startTimeUnixNano": "1544712660300000000",
                    "timeUnixNano": "1544712660300000000",
                    "count": "3",
                    "sum": 3,
                    "bucketCounts": ["1", 1, "1"],
                    "explicitBounds": [1, 2.5],
                    "min": 0.5,
                    "max": 3.0,
                    "exemplars": [ { "timeUnixNano": "1544712660200000000", "asInt": "2" } ],
                    "attributes": [
                      { "key": "my.histogram.attr", "value": { "stringValue": "some value" } }
                    ]
                  }
                ]
              }
            },
            {
              "name": "my.exponential.histogram",
              "unit": "s",
              "description": "I am an Exponential Histogram",
              "exponentialHistogram": {
                "aggregationTemporality": 1,
                "dataPoints": [
                  {
                    "startTimeUnixNano": "1544712660300000000",
                    "timeUnixNano": "1544712660300000000",
                    "count": 5,
                    "sum": -2.5,
                    "scale": -2,
                    "zeroCount": "1",
                    "zeroThreshold": 0.001,
                    "positive": { "offset": 1, "bucketCounts": ["1", 2] },
                    "negative": { "offset": -3, "bucketCounts": [1] },
                    "min": -4,
                    "max": 2,
                    "attributes": [
                      { "key": "my.exponential.histogram.attr", "value": { "stringValue": "some value" } }
                    ]
                  }
                ]
              }
            },
            {
              "name": "my.summary",
              "unit": "By",
              "description": "I am a Summary",
              "summary": {
                "dataPoints": [
                  {
                    "startTimeUnixNano": "1544712660300000000",
                    "timeUnixNano": "1544712660300000000",
                    "count": "4",
                    "sum": 10.25,
                    "quantileValues": [
                      { "quantile": 0, "value": 1 },
                      { "quantile": 0.5, "value": 2.5 },
                      { "quantile": 1, "value": 4 }
                    ],
                    "attributes": [
                      { "key": "my.summary.attr", "value": { "stringValue": "some value" } }
                    ]
                  }
                ]
              }
            },
            { "name": "no.data" }
          ]
        }
      ]
    }
  ]
}"#;

fn metrics_sample_expected() -> ExportMetricsServiceRequest {
    const T: u64 = 1_544_712_660_300_000_000;
    let metric = |name: &str, unit: &str, description: &str, data: metric::Data| Metric {
        name: name.into(),
        unit: unit.into(),
        description: description.into(),
        metadata: vec![],
        data: Some(data),
    };
    let metrics = vec![
        Metric {
            metadata: vec![kv("origin", string("sdk"))],
            ..metric(
                "my.counter",
                "1",
                "I am a Counter",
                metric::Data::Sum(Sum {
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                    data_points: vec![NumberDataPoint {
                        attributes: vec![kv("my.counter.attr", string("some value"))],
                        start_time_unix_nano: T,
                        time_unix_nano: T,
                        value: Some(number_data_point::Value::AsInt(5)),
                        ..Default::default()
                    }],
                }),
            )
        },
        metric(
            "my.gauge",
            "1",
            "I am a Gauge",
            metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: T,
                    value: Some(number_data_point::Value::AsDouble(10.5)),
                    flags: DataPointFlags::NoRecordedValueMask as u32,
                    exemplars: vec![Exemplar {
                        filtered_attributes: vec![kv("user", string("alice"))],
                        time_unix_nano: 1_544_712_660_200_000_000,
                        span_id: unhex("eee19b7ec3c1b174"),
                        trace_id: unhex("5b8efff798038103d269b633813fc60c"),
                        value: Some(exemplar::Value::AsDouble(10.5)),
                    }],
                    ..Default::default()
                }],
            }),
        ),
        metric(
            "my.histogram",
            "ms",
            "I am a Histogram",
            metric::Data::Histogram(Histogram {
                aggregation_temporality: AggregationTemporality::Delta as i32,
                data_points: vec![HistogramDataPoint {
                    attributes: vec![kv("my.histogram.attr", string("some value"))],
                    start_time_unix_nano: T,
                    time_unix_nano: T,
                    count: 3,
                    sum: Some(3.0),
                    bucket_counts: vec![1, 1, 1],
                    explicit_bounds: vec![1.0, 2.5],
                    exemplars: vec![Exemplar {
                        time_unix_nano: 1_544_712_660_200_000_000,
                        value: Some(exemplar::Value::AsInt(2)),
                        ..Default::default()
                    }],
                    flags: 0,
                    min: Some(0.5),
                    max: Some(3.0),
                }],
            }),
        ),
        metric(
            "my.exponential.histogram",
            "s",
            "I am an Exponential Histogram",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                aggregation_temporality: AggregationTemporality::Delta as i32,
                data_points: vec![ExponentialHistogramDataPoint {
                    attributes: vec![kv("my.exponential.histogram.attr", string("some value"))],
                    start_time_unix_nano: T,
                    time_unix_nano: T,
                    count: 5,
                    sum: Some(-2.5),
                    scale: -2,
                    zero_count: 1,
                    positive: Some(exponential_histogram_data_point::Buckets {
                        offset: 1,
                        bucket_counts: vec![1, 2],
                    }),
                    negative: Some(exponential_histogram_data_point::Buckets {
                        offset: -3,
                        bucket_counts: vec![1],
                    }),
                    flags: 0,
                    exemplars: vec![],
                    min: Some(-4.0),
                    max: Some(2.0),
                    zero_threshold: 0.001,
                }],
            }),
        ),
        metric(
            "my.summary",
            "By",
            "I am a Summary",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes: vec![kv("my.summary.attr", string("some value"))],
                    start_time_unix_nano: T,
                    time_unix_nano: T,
                    count: 4,
                    sum: 10.25,
                    quantile_values: vec![
                        summary_data_point::ValueAtQuantile {
                            quantile: 0.0,
                            value: 1.0,
                        },
                        summary_data_point::ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.5,
                        },
                        summary_data_point::ValueAtQuantile {
                            quantile: 1.0,
                            value: 4.0,
                        },
                    ],
                    flags: 0,
                }],
            }),
        ),
        Metric {
            name: "no.data".into(),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", string("my.service"))],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "my.library".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn full_trace_sample_decodes_every_field() {
    let decoded = decode_traces(TRACE_SAMPLE.as_bytes()).unwrap();
    assert_eq!(decoded, trace_sample_expected());
}

#[test]
fn full_logs_sample_decodes_every_body_kind() {
    let decoded = decode_logs(LOGS_SAMPLE.as_bytes()).unwrap();
    assert_eq!(decoded, logs_sample_expected());
}

#[test]
fn full_metrics_sample_decodes_every_metric_type() {
    let decoded = decode_metrics(METRICS_SAMPLE.as_bytes()).unwrap();
    assert_eq!(decoded, metrics_sample_expected());
}

/// The samples' expected values are built in Rust and sent through the
/// protobuf wire format: JSON and protobuf must carry the same request.
#[test]
fn json_decodes_to_the_same_request_as_protobuf() {
    let wire = trace_sample_expected().encode_to_vec();
    let from_json = decode_traces(TRACE_SAMPLE.as_bytes()).unwrap();
    assert_eq!(
        from_json,
        ExportTraceServiceRequest::decode(wire.as_slice()).unwrap()
    );
    assert_eq!(from_json.encode_to_vec(), wire);

    let wire = logs_sample_expected().encode_to_vec();
    let from_json = decode_logs(LOGS_SAMPLE.as_bytes()).unwrap();
    assert_eq!(
        from_json,
        ExportLogsServiceRequest::decode(wire.as_slice()).unwrap()
    );
    assert_eq!(from_json.encode_to_vec(), wire);

    let wire = metrics_sample_expected().encode_to_vec();
    let from_json = decode_metrics(METRICS_SAMPLE.as_bytes()).unwrap();
    assert_eq!(
        from_json,
        ExportMetricsServiceRequest::decode(wire.as_slice()).unwrap()
    );
    assert_eq!(from_json.encode_to_vec(), wire);
}

// ---------------------------------------------------------------------------
// Envelopes, empty input, nulls
// ---------------------------------------------------------------------------

#[test]
fn empty_object_is_an_empty_request() {
    assert_eq!(
        decode_traces(b"{}").unwrap(),
        ExportTraceServiceRequest::default()
    );
    assert_eq!(
        decode_logs(b" {} \n").unwrap(),
        ExportLogsServiceRequest::default()
    );
    assert_eq!(
        decode_metrics(b"{}").unwrap(),
        ExportMetricsServiceRequest::default()
    );
    assert_eq!(
        decode_traces(br#"{"resourceSpans":[]}"#).unwrap(),
        ExportTraceServiceRequest::default()
    );
}

#[test]
fn body_must_be_a_single_json_object() {
    for body in [
        &b""[..],
        b"   ",
        b"null",
        b"[]",
        b"1",
        b"\"x\"",
        b"{} {}",
        b"{},",
    ] {
        assert!(
            decode_traces(body).is_err(),
            "{:?} decoded",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn leading_byte_order_mark_is_ignored() {
    let body = [UTF8_BOM, br#"{"resourceLogs":[{}]}"#].concat();
    assert_eq!(decode_logs(&body).unwrap().resource_logs.len(), 1);
}

#[test]
fn null_means_default_for_every_kind_of_field() {
    let req = decode_traces(
        br#"{"resourceSpans":[{"resource":null,"schemaUrl":null,"scopeSpans":[{
            "scope":null,
            "spans":[{
                "traceId":null,"spanId":null,"parentSpanId":null,"traceState":null,
                "flags":null,"name":null,"kind":null,"startTimeUnixNano":null,
                "endTimeUnixNano":null,"attributes":null,"droppedAttributesCount":null,
                "events":null,"droppedEventsCount":null,"links":null,
                "droppedLinksCount":null,"status":null
            }, {
                "attributes":[{"key":"k","value":null}],
                "events":[{"timeUnixNano":null,"name":null}],
                "status":{"code":null,"message":null}
            }]
        }]}]}"#,
    )
    .unwrap();
    let rs = &req.resource_spans[0];
    assert_eq!(rs.resource, None);
    assert_eq!(rs.schema_url, "");
    assert_eq!(rs.scope_spans[0].scope, None);
    let spans = &rs.scope_spans[0].spans;
    assert_eq!(spans[0], Span::default());
    assert_eq!(
        spans[1].attributes,
        vec![KeyValue {
            key: "k".into(),
            value: None,
            key_strindex: 0
        }]
    );
    assert_eq!(spans[1].events, vec![span::Event::default()]);
    assert_eq!(spans[1].status, Some(Status::default()));

    let req = decode_traces(br#"{"resourceSpans":null}"#).unwrap();
    assert!(req.resource_spans.is_empty());
}

#[test]
fn null_optional_doubles_are_none_and_absent_ones_too() {
    let point = histogram_point(r#"{"count":1,"sum":null,"min":null}"#).unwrap();
    assert_eq!((point.sum, point.min, point.max), (None, None, None));
    let point = histogram_point(r#"{"sum":0,"min":-1.5,"max":"2"}"#).unwrap();
    assert_eq!(
        (point.sum, point.min, point.max),
        (Some(0.0), Some(-1.5), Some(2.0))
    );
}

#[test]
fn null_array_elements_are_rejected() {
    assert!(one_span(r#"{"attributes":[null]}"#).is_err());
    assert!(histogram_point(r#"{"bucketCounts":[1,null]}"#).is_err());
    assert!(decode_traces(br#"{"resourceSpans":[null]}"#).is_err());
}

#[test]
fn null_oneof_member_counts_as_unset() {
    assert_eq!(
        any_value(r#"{"stringValue":null,"intValue":"3","boolValue":null}"#).unwrap(),
        any(Value::IntValue(3))
    );
    assert_eq!(
        gauge_point(r#"{"asDouble":null,"asInt":4}"#).unwrap().value,
        Some(number_data_point::Value::AsInt(4))
    );
    assert_eq!(
        any_value(r#"{"stringValue":null}"#).unwrap(),
        Some(AnyValue { value: None })
    );
}

// ---------------------------------------------------------------------------
// Unknown fields, aliases, duplicates, oneofs
// ---------------------------------------------------------------------------

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let deep_unknown = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!(
        r#"{{
        "futureTopLevel": {{"a": [1, 2, {{"b": null}}]}},
        "resourceSpans": [{{
            "extra": "x",
            "resource": {{"attributes": [], "unknownResourceField": 1}},
            "scopeSpans": [{{
                "scope": {{"name": "lib", "shiny": true}},
                "instrumentationLibrary": {{"name": "old"}},
                "spans": [{{
                    "name": "s",
                    "deeplyNestedUnknown": {deep_unknown},
                    "attributes": [{{
                        "key": "k",
                        "value": {{"stringValue": "v", "futureValue": {{"x": [1]}}}},
                        "comment": "ignored"
                    }}],
                    "events": [{{"name": "e", "level": 3}}],
                    "links": [{{"spanId": "01", "weight": 1.5}}],
                    "status": {{"code": 1, "reason": "because"}}
                }}]
            }}]
        }}]
    }}"#
    );
    let req = decode_traces(body.as_bytes()).unwrap();
    let scope_spans = &req.resource_spans[0].scope_spans[0];
    assert_eq!(scope_spans.scope.as_ref().unwrap().name, "lib");
    let span = &scope_spans.spans[0];
    assert_eq!(span.name, "s");
    assert_eq!(span.attributes, vec![kv("k", string("v"))]);
    assert_eq!(span.events[0].name, "e");
    assert_eq!(span.links[0].span_id, vec![1]);
    assert_eq!(span.status.as_ref().unwrap().code, 1);
}

#[test]
fn anyvalue_with_only_unknown_keys_is_empty() {
    assert_eq!(
        any_value(r#"{"uuidValue":"abc","nested":{"arrayValue":{"values":[{"intValue":1}]}}}"#)
            .unwrap(),
        Some(AnyValue { value: None })
    );
}

#[test]
fn snake_case_field_names_are_accepted() {
    let camel = decode_traces(TRACE_SAMPLE.as_bytes()).unwrap();
    let snake = TRACE_SAMPLE
        .replace("resourceSpans", "resource_spans")
        .replace("scopeSpans", "scope_spans")
        .replace("droppedAttributesCount", "dropped_attributes_count")
        .replace("droppedEventsCount", "dropped_events_count")
        .replace("droppedLinksCount", "dropped_links_count")
        .replace("entityRefs", "entity_refs")
        .replace("schemaUrl", "schema_url")
        .replace("idKeys", "id_keys")
        .replace("descriptionKeys", "description_keys")
        .replace("traceId", "trace_id")
        .replace("parentSpanId", "parent_span_id")
        .replace("spanId", "span_id")
        .replace("traceState", "trace_state")
        .replace("startTimeUnixNano", "start_time_unix_nano")
        .replace("endTimeUnixNano", "end_time_unix_nano")
        .replace("timeUnixNano", "time_unix_nano")
        .replace("stringValue", "string_value")
        .replace("boolValue", "bool_value")
        .replace("intValue", "int_value")
        .replace("doubleValue", "double_value")
        .replace("bytesValue", "bytes_value")
        .replace("arrayValue", "array_value")
        .replace("kvlistValue", "kvlist_value");
    assert!(!snake.contains("Spans") && !snake.contains("Value\""));
    assert_eq!(decode_traces(snake.as_bytes()).unwrap(), camel);

    let camel = decode_logs(LOGS_SAMPLE.as_bytes()).unwrap();
    let snake = LOGS_SAMPLE
        .replace("resourceLogs", "resource_logs")
        .replace("scopeLogs", "scope_logs")
        .replace("logRecords", "log_records")
        .replace("observedTimeUnixNano", "observed_time_unix_nano")
        .replace("timeUnixNano", "time_unix_nano")
        .replace("severityNumber", "severity_number")
        .replace("severityText", "severity_text")
        .replace("eventName", "event_name")
        .replace("traceId", "trace_id")
        .replace("spanId", "span_id")
        .replace("droppedAttributesCount", "dropped_attributes_count")
        .replace("schemaUrl", "schema_url");
    assert_eq!(decode_logs(snake.as_bytes()).unwrap(), camel);

    let camel = decode_metrics(METRICS_SAMPLE.as_bytes()).unwrap();
    let snake = METRICS_SAMPLE
        .replace("resourceMetrics", "resource_metrics")
        .replace("scopeMetrics", "scope_metrics")
        .replace("dataPoints", "data_points")
        .replace("aggregationTemporality", "aggregation_temporality")
        .replace("isMonotonic", "is_monotonic")
        .replace("startTimeUnixNano", "start_time_unix_nano")
        .replace("timeUnixNano", "time_unix_nano")
        .replace("asInt", "as_int")
        .replace("asDouble", "as_double")
        .replace("filteredAttributes", "filtered_attributes")
        .replace("traceId", "trace_id")
        .replace("spanId", "span_id")
        .replace("bucketCounts", "bucket_counts")
        .replace("explicitBounds", "explicit_bounds")
        .replace("exponentialHistogram", "exponential_histogram")
        .replace("zeroCount", "zero_count")
        .replace("zeroThreshold", "zero_threshold")
        .replace("quantileValues", "quantile_values");
    assert!(!snake.contains("dataPoints") && !snake.contains("zeroCount"));
    assert_eq!(decode_metrics(snake.as_bytes()).unwrap(), camel);
}

#[test]
fn the_same_field_twice_is_an_error() {
    assert_err_contains(
        one_span(r#"{"traceId":"01","trace_id":"02"}"#),
        "duplicate field",
    );
    assert_err_contains(one_span(r#"{"name":"a","name":"b"}"#), "duplicate field");
}

#[test]
fn two_members_of_a_oneof_is_an_error() {
    assert_err_contains(
        any_value(r#"{"stringValue":"a","intValue":1}"#),
        "more than one member of the oneof `value`",
    );
    assert_err_contains(
        one_metric(r#"{"gauge":{},"sum":{}}"#),
        "more than one member of the oneof `data`",
    );
    assert_err_contains(
        gauge_point(r#"{"asDouble":1,"asInt":1}"#),
        "NumberDataPoint",
    );
    assert_err_contains(
        gauge_point(r#"{"exemplars":[{"asDouble":1,"asInt":"1"}]}"#),
        "Exemplar",
    );
}

#[test]
fn metric_data_kinds_map_to_the_oneof() {
    let data = |json: &str| one_metric(json).unwrap().data;
    assert!(matches!(
        data(r#"{"gauge":{}}"#),
        Some(metric::Data::Gauge(_))
    ));
    assert!(matches!(data(r#"{"sum":{}}"#), Some(metric::Data::Sum(_))));
    assert!(matches!(
        data(r#"{"histogram":{}}"#),
        Some(metric::Data::Histogram(_))
    ));
    assert!(matches!(
        data(r#"{"exponentialHistogram":{}}"#),
        Some(metric::Data::ExponentialHistogram(_))
    ));
    assert!(matches!(
        data(r#"{"summary":{}}"#),
        Some(metric::Data::Summary(_))
    ));
    assert_eq!(data(r#"{"name":"m","gauge":null}"#), None);
}

// ---------------------------------------------------------------------------
// Scalars: integers, doubles, enums, ids, bytes
// ---------------------------------------------------------------------------

#[test]
fn int64_fields_accept_a_number_or_a_decimal_string() {
    let time = |v: &str| -> Result<u64, String> {
        Ok(one_span(&format!(r#"{{"startTimeUnixNano":{v}}}"#))?.start_time_unix_nano)
    };
    assert_eq!(time("1544712660000000000"), Ok(1_544_712_660_000_000_000));
    assert_eq!(
        time(r#""1544712660000000000""#),
        Ok(1_544_712_660_000_000_000)
    );
    assert_eq!(time(r#""18446744073709551615""#), Ok(u64::MAX));
    assert_eq!(time("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(time(r#""0""#), Ok(0));
    // Integral values in exponent or fraction notation (proto3 conformance).
    assert_eq!(time("1e3"), Ok(1000));
    assert_eq!(time(r#""1e3""#), Ok(1000));
    assert_eq!(time("5.0"), Ok(5));

    let int = |v: &str| -> Result<Option<AnyValue>, String> {
        any_value(&format!(r#"{{"intValue":{v}}}"#))
    };
    assert_eq!(
        int(r#""-9223372036854775808""#),
        Ok(any(Value::IntValue(i64::MIN)))
    );
    assert_eq!(
        int("-9223372036854775808"),
        Ok(any(Value::IntValue(i64::MIN)))
    );
    assert_eq!(
        int("9223372036854775807"),
        Ok(any(Value::IntValue(i64::MAX)))
    );
    assert_eq!(int(r#""-7""#), Ok(any(Value::IntValue(-7))));

    let point = gauge_point(r#"{"asInt":"-12","flags":"1"}"#).unwrap();
    assert_eq!(point.value, Some(number_data_point::Value::AsInt(-12)));
    assert_eq!(point.flags, 1);

    // 32-bit fields too.
    let span = one_span(r#"{"droppedAttributesCount":"7","flags":"4294967295"}"#).unwrap();
    assert_eq!((span.dropped_attributes_count, span.flags), (7, u32::MAX));
}

#[test]
fn integers_reject_fractions_out_of_range_and_garbage() {
    let time = |v: &str| one_span(&format!(r#"{{"startTimeUnixNano":{v}}}"#));
    assert_err_contains(time("1.5"), "floating point `1.5`");
    assert_err_contains(time(r#""1.5""#), "invalid value");
    assert_err_contains(time("-1"), "out of range for u64");
    assert_err_contains(time(r#""18446744073709551616""#), "out of range");
    assert_err_contains(time("18446744073709551616"), "out of range");
    assert_err_contains(time("1e300"), "invalid value");
    assert_err_contains(time(r#""""#), "invalid value");
    assert_err_contains(time(r#""12abc""#), "invalid value");
    assert_err_contains(time(r#"" 12""#), "invalid value");
    assert_err_contains(time(r#""NaN""#), "invalid value");
    assert_err_contains(time("true"), "invalid type");
    assert_err_contains(time("[1]"), "invalid type");
    assert_err_contains(time("{}"), "invalid type");

    assert_err_contains(
        any_value(r#"{"intValue":"9223372036854775808"}"#),
        "out of range for i64",
    );
    assert_err_contains(
        one_span(r#"{"droppedAttributesCount":4294967296}"#),
        "out of range for u32",
    );
    assert_err_contains(
        one_span(r#"{"droppedEventsCount":-1}"#),
        "out of range for u32",
    );
    let scale = |v: &str| {
        one_metric(&format!(
            r#"{{"exponentialHistogram":{{"dataPoints":[{{"scale":{v}}}]}}}}"#
        ))
    };
    assert_err_contains(scale("2147483648"), "out of range for i32");
    assert!(scale("-2147483648").is_ok());
}

#[test]
fn doubles_accept_nan_infinity_and_numeric_strings() {
    let double = |v: &str| -> f64 {
        match gauge_point(&format!(r#"{{"asDouble":{v}}}"#))
            .unwrap()
            .value
        {
            Some(number_data_point::Value::AsDouble(d)) => d,
            other => panic!("not a double: {other:?}"),
        }
    };
    assert!(double(r#""NaN""#).is_nan());
    assert_eq!(double(r#""Infinity""#), f64::INFINITY);
    assert_eq!(double(r#""-Infinity""#), f64::NEG_INFINITY);
    assert_eq!(double(r#""2.5""#), 2.5);
    assert_eq!(double(r#""-1e-3""#), -0.001);
    assert_eq!(double("7"), 7.0);
    assert_eq!(double("-7"), -7.0);
    assert_eq!(double("1.25e2"), 125.0);

    let point = histogram_point(
        r#"{"sum":"NaN","min":"-Infinity","max":"Infinity","explicitBounds":["-Infinity",0,"1.5","Infinity"]}"#,
    )
    .unwrap();
    assert!(point.sum.unwrap().is_nan());
    assert_eq!(point.min, Some(f64::NEG_INFINITY));
    assert_eq!(point.max, Some(f64::INFINITY));
    assert_eq!(
        point.explicit_bounds,
        vec![f64::NEG_INFINITY, 0.0, 1.5, f64::INFINITY]
    );

    let Some(Value::DoubleValue(d)) = any_value(r#"{"doubleValue":"NaN"}"#)
        .unwrap()
        .and_then(|v| v.value)
    else {
        panic!("not a double")
    };
    assert!(d.is_nan());

    let summary = one_metric(
        r#"{"summary":{"dataPoints":[{"sum":"Infinity","quantileValues":[{"quantile":"0.99","value":"NaN"}]}]}}"#,
    )
    .unwrap();
    let Some(metric::Data::Summary(summary)) = summary.data else {
        panic!("not a summary")
    };
    assert_eq!(summary.data_points[0].sum, f64::INFINITY);
    assert_eq!(summary.data_points[0].quantile_values[0].quantile, 0.99);
    assert!(summary.data_points[0].quantile_values[0].value.is_nan());
}

#[test]
fn doubles_reject_other_strings() {
    for bad in [
        r#""nan""#,
        r#""inf""#,
        r#""infinity""#,
        r#""+Infinity""#,
        r#""1e999""#,
        r#""""#,
        r#""abc""#,
        "true",
    ] {
        assert_err_contains(gauge_point(&format!(r#"{{"asDouble":{bad}}}"#)), "invalid");
    }
    // serde_json itself refuses numbers that overflow a double.
    assert!(gauge_point(r#"{"asDouble":1e999}"#).is_err());
}

#[test]
fn enums_accept_integers_and_value_names() {
    let span =
        one_span(r#"{"kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"}}"#).unwrap();
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.status.unwrap().code, StatusCode::Error as i32);
    assert_eq!(
        one_span(r#"{"kind":3}"#).unwrap().kind,
        SpanKind::Client as i32
    );
    assert_eq!(
        one_log(r#"{"severityNumber":"SEVERITY_NUMBER_INFO"}"#)
            .unwrap()
            .severity_number,
        SeverityNumber::Info as i32
    );
    assert_eq!(
        one_log(r#"{"severityNumber":17}"#).unwrap().severity_number,
        SeverityNumber::Error as i32
    );
    let Some(metric::Data::Sum(sum)) = one_metric(
        r#"{"sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","dataPoints":[{"flags":"DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK"}]}}"#,
    )
    .unwrap()
    .data
    else {
        panic!("not a sum")
    };
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Delta as i32
    );
    assert_eq!(
        sum.data_points[0].flags,
        DataPointFlags::NoRecordedValueMask as u32
    );
    assert_eq!(
        one_span(r#"{"flags":"SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK"}"#)
            .unwrap()
            .flags,
        SpanFlags::ContextHasIsRemoteMask as u32
    );
    assert_eq!(
        one_log(r#"{"flags":"LOG_RECORD_FLAGS_TRACE_FLAGS_MASK"}"#)
            .unwrap()
            .flags,
        255
    );
}

#[test]
fn unknown_enum_integers_are_kept_and_unknown_names_rejected() {
    assert_eq!(one_span(r#"{"kind":42}"#).unwrap().kind, 42);
    assert_eq!(one_span(r#"{"kind":-1}"#).unwrap().kind, -1);
    assert_eq!(
        one_log(r#"{"severityNumber":99}"#).unwrap().severity_number,
        99
    );
    assert_err_contains(
        one_span(r#"{"kind":"SPAN_KIND_BOGUS"}"#),
        "unknown SpanKind value name \"SPAN_KIND_BOGUS\"",
    );
    // Names are case-sensitive, and belong to their own enum.
    assert_err_contains(
        one_span(r#"{"kind":"span_kind_server"}"#),
        "unknown SpanKind",
    );
    assert_err_contains(one_span(r#"{"kind":"STATUS_CODE_OK"}"#), "unknown SpanKind");
    assert_err_contains(
        one_log(r#"{"severityNumber":"INFO"}"#),
        "unknown SeverityNumber",
    );
    assert_err_contains(one_span(r#"{"kind":2147483648}"#), "out of range for i32");
    assert_err_contains(one_span(r#"{"kind":1.5}"#), "invalid value");
}

#[test]
fn ids_are_case_insensitive_hex_without_length_validation() {
    let span = one_span(
        r#"{"traceId":"5B8EFFF798038103d269b633813fc6","spanId":"","parentSpanId":"AbCd"}"#,
    )
    .unwrap();
    assert_eq!(span.trace_id, unhex("5b8efff798038103d269b633813fc6"));
    assert_eq!(span.trace_id.len(), 15);
    assert!(span.span_id.is_empty());
    assert_eq!(span.parent_span_id, vec![0xab, 0xcd]);
}

#[test]
fn invalid_hex_ids_are_errors() {
    assert_err_contains(one_span(r#"{"traceId":"abc"}"#), "invalid hex id \"abc\"");
    assert_err_contains(
        one_span(r#"{"spanId":"zzzzzzzzzzzzzzzz"}"#),
        "invalid hex id",
    );
    assert_err_contains(
        one_span(r#"{"parentSpanId":"0x0102030405060708"}"#),
        "invalid hex id",
    );
    // Base64 (the generic proto3 mapping of bytes) is not accepted for ids.
    assert_err_contains(
        one_span(r#"{"traceId":"W47/95gDgQPSabYzgT/GDA=="}"#),
        "invalid hex id",
    );
    assert_err_contains(one_span(r#"{"traceId":12}"#), "hex-encoded");
    assert_err_contains(one_span(r#"{"links":[{"traceId":"0g"}]}"#), "invalid hex");
    assert_err_contains(one_log(r#"{"spanId":"123"}"#), "invalid hex");
    assert_err_contains(
        gauge_point(r#"{"exemplars":[{"traceId":"xyz1"}]}"#),
        "invalid hex",
    );
    // Huge garbage is not echoed back whole.
    let long = "z".repeat(10_000);
    let err = one_span(&format!(r#"{{"traceId":"{long}"}}"#)).unwrap_err();
    assert!(err.len() < 300, "{err}");
}

#[test]
fn bytes_accept_standard_url_safe_and_unpadded_base64() {
    let bytes = |v: &str| any_value(&format!(r#"{{"bytesValue":"{v}"}}"#));
    let expected = any(Value::BytesValue(vec![0xfb, 0xff, 0xbf, 0x01]));
    assert_eq!(bytes("+/+/AQ=="), Ok(expected.clone()));
    assert_eq!(bytes("+/+/AQ"), Ok(expected.clone()));
    assert_eq!(bytes("-_-_AQ=="), Ok(expected.clone()));
    assert_eq!(bytes("-_-_AQ"), Ok(expected));
    assert_eq!(bytes(""), Ok(any(Value::BytesValue(vec![]))));
    assert_err_contains(bytes("not base64!"), "invalid base64");
    assert_err_contains(bytes("A"), "invalid base64");
    assert_err_contains(any_value(r#"{"bytesValue":[1,2]}"#), "base64");
}

// ---------------------------------------------------------------------------
// Malformed and hostile input
// ---------------------------------------------------------------------------

#[test]
fn every_truncation_of_a_valid_body_is_an_error() {
    for sample in [TRACE_SAMPLE, LOGS_SAMPLE, METRICS_SAMPLE] {
        let bytes = sample.as_bytes();
        for end in 0..bytes.len() {
            let prefix = &bytes[..end];
            let (t, l, m) = (
                decode_traces(prefix),
                decode_logs(prefix),
                decode_metrics(prefix),
            );
            assert!(
                t.is_err() && l.is_err() && m.is_err(),
                "prefix of {end} bytes decoded"
            );
        }
    }
    let err = decode_traces(&TRACE_SAMPLE.as_bytes()[..200]).unwrap_err();
    assert!(err.is_eof(), "{err}");
}

#[test]
fn corrupted_bodies_never_panic() {
    let mut rejected = 0;
    let mut accepted = 0;
    type Decodes = fn(&[u8]) -> bool;
    let samples: [(&str, Decodes); 3] = [
        (TRACE_SAMPLE, |b| decode_traces(b).is_ok()),
        (LOGS_SAMPLE, |b| decode_logs(b).is_ok()),
        (METRICS_SAMPLE, |b| decode_metrics(b).is_ok()),
    ];
    for (sample, decodes) in samples {
        let original = sample.as_bytes();
        for i in 0..original.len() {
            for replacement in [b'"', b'{', b']', b'0', b'-', b'x', 0xff] {
                let mut body = original.to_vec();
                body[i] = replacement;
                if decodes(&body) {
                    accepted += 1;
                } else {
                    rejected += 1;
                }
            }
        }
    }
    // Most corruptions break the JSON or an OTLP rule; some (inside strings,
    // or turning a value into another valid one) leave a valid request.
    assert!(
        rejected > accepted && accepted > 0,
        "{rejected} / {accepted}"
    );
}

#[test]
fn deeply_nested_arrays_are_an_error_not_a_stack_overflow() {
    for body in [
        "[".repeat(10_000),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        format!(r#"{{"resourceSpans":{}"#, "[".repeat(10_000)),
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}}}]}}]}}]}}"#,
            r#"{"arrayValue":{"values":["#.repeat(10_000)
        ),
    ] {
        assert!(decode_traces(body.as_bytes()).is_err());
        assert!(decode_logs(body.as_bytes()).is_err());
        assert!(decode_metrics(body.as_bytes()).is_err());
    }
}

/// Nested AnyValues decode up to serde_json's recursion limit (on a test
/// thread's default stack) and fail cleanly beyond it.
#[test]
fn anyvalue_nesting_is_bounded_by_the_recursion_limit() {
    let nested = |depth: usize| {
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}{{"stringValue":"leaf"}}{}}}]}}]}}]}}"#,
            r#"{"arrayValue":{"values":["#.repeat(depth),
            "]}}".repeat(depth)
        )
    };
    let mut deepest = 0;
    for depth in 0..200 {
        match decode_logs(nested(depth).as_bytes()) {
            Ok(req) => {
                let mut value = req.resource_logs[0].scope_logs[0].log_records[0]
                    .body
                    .clone()
                    .unwrap();
                for _ in 0..depth {
                    let Some(Value::ArrayValue(mut a)) = value.value else {
                        panic!("expected an array at depth {depth}")
                    };
                    value = a.values.remove(0);
                }
                assert_eq!(
                    value,
                    AnyValue {
                        value: Some(string("leaf"))
                    }
                );
                deepest = depth;
            }
            Err(e) => {
                assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
                break;
            }
        }
    }
    // 128 levels, 3 per AnyValue, 7 for the envelope.
    assert_eq!(deepest, 39);
}

#[test]
fn invalid_utf8_is_an_error() {
    assert!(decode_traces(b"{\"resourceSpans\":[{\"schemaUrl\":\"\xff\"}]}").is_err());
}

#[test]
fn errors_report_line_and_column() {
    let body = "{\n  \"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [\n    {\"traceId\": \"xyz\"}\n  ]}]}]\n}";
    let err = decode_traces(body.as_bytes()).unwrap_err();
    assert_eq!(err.line(), 3);
    assert!(err.column() > 5, "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("invalid OTLP/JSON: invalid hex id"),
        "{message}"
    );
    assert!(message.contains("at line 3 column"), "{message}");
    assert!(!err.is_eof());

    // Errors found when an object is complete (oneofs) point just past it.
    let err = decode_metrics(
        b"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[\n\n{\"gauge\":{},\"sum\":{}}]}]}]}",
    )
    .unwrap_err();
    assert_eq!(err.line(), 3);
}

#[test]
fn large_bodies_decode() {
    let span = r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"http.method","value":{"stringValue":"GET"}}]}"#;
    let spans = vec![span; 20_000].join(",");
    let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    let req = decode_traces(body.as_bytes()).unwrap();
    let spans = &req.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 20_000);
    assert!(
        spans
            .iter()
            .all(|s| s.name == "GET /" && s.span_id.len() == 8)
    );
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

#[test]
fn full_success_responses_encode_as_empty_objects() {
    assert_eq!(
        encode_traces_response(&ExportTraceServiceResponse::default()),
        b"{}"
    );
    assert_eq!(
        encode_logs_response(&ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess::default()),
        }),
        b"{}"
    );
    assert_eq!(
        encode_metrics_response(&ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess::default()),
        }),
        b"{}"
    );
}

#[test]
fn partial_success_responses_use_proto3_json() {
    let traces = encode_traces_response(&ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 3,
            error_message: "trace id must be 16 bytes".into(),
        }),
    });
    assert_eq!(
        String::from_utf8(traces).unwrap(),
        r#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"trace id must be 16 bytes"}}"#
    );

    let logs = encode_logs_response(&ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 9_007_199_254_740_993,
            error_message: String::new(),
        }),
    });
    assert_eq!(
        String::from_utf8(logs).unwrap(),
        r#"{"partialSuccess":{"rejectedLogRecords":"9007199254740993"}}"#
    );

    let message = "quote \" backslash \\ newline \n control \u{1} unicode é";
    let metrics = encode_metrics_response(&ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: 0,
            error_message: message.into(),
        }),
    });
    let text = String::from_utf8(metrics.clone()).unwrap();
    assert!(text.starts_with(
        r#"{"partialSuccess":{"errorMessage":"quote \" backslash \\ newline \n control \u0001"#
    ));
    let parsed: serde_json::Value = serde_json::from_slice(&metrics).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!({"partialSuccess": {"errorMessage": message}})
    );
}
