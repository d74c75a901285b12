//! The WAL keeps a protobuf request rather than its rows, and a replay through
//! `wal_decoder` rebuilds exactly the rows the receivers wrote: for every signal, both
//! receivers, rejected items, OTLP/JSON bodies (whose records keep their rows) and metrics the
//! series limit cut (likewise).

use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use strata_ingest::grpc::OtlpGrpcService;
use strata_ingest::limits::IngestLimits;
use strata_ingest::{IngestConfig, Ingestor, Logs, Metrics, OtlpSignal, TENANT_HEADER, Traces};
use strata_storage::objects::object_store_from_url;
use strata_storage::wal::WalConfig;
use strata_storage::{PerTenant, Signal, SqlCatalog, Storage, StorageConfig, TenantId, TimeRange};
use tower::{Service, ServiceExt};

const T0: u64 = 1_700_000_000_000_000_000;

async fn open(dir: &std::path::Path) -> Arc<Storage> {
    let catalog = SqlCatalog::connect(&format!("sqlite://{}/c.db", dir.display()))
        .await
        .unwrap();
    let mut wal = WalConfig::new(dir.join("wal"));
    wal.decoder = Some(strata_ingest::wal_decoder());
    Storage::open(
        object_store_from_url(&format!("file://{}/objects", dir.display())).unwrap(),
        Arc::new(catalog),
        StorageConfig {
            wal: Some(wal),
            ..StorageConfig::default()
        },
    )
    .await
    .unwrap()
}

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    })
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: text(value),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![attr("service.name", service)],
        ..Default::default()
    })
}

/// Two spans and one whose trace id is malformed (rejected).
fn traces() -> Vec<u8> {
    let span = |id: u8, trace_id: Vec<u8>| Span {
        trace_id,
        span_id: vec![id; 8],
        name: format!("op-{id}"),
        start_time_unix_nano: T0 + id as u64,
        end_time_unix_nano: T0 + 1_000 + id as u64,
        attributes: vec![attr("http.route", "/a"), attr("k", &id.to_string())],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("checkout"),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(1, vec![7; 16]),
                    span(2, vec![7; 3]),
                    span(3, vec![8; 16]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Two records, one without a time (it takes the time received).
fn logs() -> ExportLogsServiceRequest {
    let record = |body: &str, time: u64| LogRecord {
        time_unix_nano: time,
        body: text(body),
        severity_text: "INFO".into(),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("api"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![record("first", T0), record("no time", 0)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A gauge of `hosts` series (one point each), and a histogram when `histogram`.
fn metrics(hosts: usize, histogram: bool) -> Vec<u8> {
    let point = |host: usize| NumberDataPoint {
        attributes: vec![attr("host", &format!("h{host}"))],
        time_unix_nano: T0,
        value: Some(number_data_point::Value::AsDouble(host as f64 + 0.5)),
        ..Default::default()
    };
    let mut metrics = vec![Metric {
        name: "cpu".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: (0..hosts).map(point).collect(),
        })),
        ..Default::default()
    }];
    if histogram {
        metrics.push(Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: T0,
                    count: 3,
                    sum: Some(1.5),
                    bucket_counts: vec![1, 2],
                    explicit_bounds: vec![0.5],
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("db"),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post<S: OtlpSignal>(
    ingestor: &Arc<Ingestor>,
    tenant: &str,
    content_type: &str,
    body: Vec<u8>,
) {
    let request = http::Request::post(S::HTTP_PATH)
        .header("content-type", content_type)
        .header(TENANT_HEADER, tenant)
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = strata_ingest::http::router(ingestor.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn grpc<S: OtlpSignal>(ingestor: &Arc<Ingestor>, tenant: &str, message: Vec<u8>) {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let request = http::Request::post(S::GRPC_PATH)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(TENANT_HEADER, tenant)
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let response = OtlpGrpcService::new(ingestor.clone())
        .call(request)
        .await
        .unwrap();
    assert!(response.headers().get("grpc-status").is_none());
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
}

/// Every buffered batch of every table the test writes, in order, in the table's layout
/// (the buffer keeps converted rows with each request's resources once, and rows replayed
/// from the WAL's Arrow form with a map on every row).
fn buffered(storage: &Storage) -> Vec<(String, Signal, Vec<RecordBatch>)> {
    let mut out = Vec::new();
    for tenant in ["a", "limited"] {
        for signal in [Signal::Spans, Signal::Logs, Signal::Metrics] {
            let snapshot =
                storage.snapshot(&TenantId::new(tenant).unwrap(), signal, TimeRange::ALL);
            let batches = snapshot
                .batches
                .iter()
                .map(|b| strata_storage::resources::to_table(b).unwrap())
                .collect();
            out.push((tenant.to_string(), signal, batches));
        }
    }
    out
}

#[tokio::test]
async fn replayed_requests_rebuild_the_rows_written() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let mut limits = PerTenant::uniform(IngestLimits::default());
    limits.tenants.insert(
        "limited".into(),
        IngestLimits {
            max_series_per_metric: 2,
            ..IngestLimits::default()
        },
    );
    let ingestor = Ingestor::new(
        storage.clone(),
        IngestConfig {
            limits,
            ..IngestConfig::default()
        },
    );
    let protobuf = "application/x-protobuf";
    post::<Traces>(&ingestor, "a", protobuf, traces()).await;
    grpc::<Traces>(&ingestor, "a", traces()).await;
    post::<Logs>(&ingestor, "a", protobuf, logs().encode_to_vec()).await;
    grpc::<Logs>(&ingestor, "a", logs().encode_to_vec()).await;
    let json = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": T0.to_string(), "body": {"stringValue": "json"}},
        {"body": {"stringValue": "json, no time"}},
    ]}]}]});
    post::<Logs>(
        &ingestor,
        "a",
        "application/json",
        json.to_string().into_bytes(),
    )
    .await;
    post::<Metrics>(&ingestor, "a", protobuf, metrics(2, true)).await;
    grpc::<Metrics>(&ingestor, "a", metrics(3, false)).await;
    // Two of the three series fit the limit: the third is refused, so the stored rows are
    // not those of the request.
    grpc::<Metrics>(&ingestor, "limited", metrics(3, false)).await;
    let written = buffered(&storage);
    let rows = |tables: &[(String, Signal, Vec<RecordBatch>)]| -> Vec<usize> {
        tables
            .iter()
            .map(|(_, _, b)| b.iter().map(RecordBatch::num_rows).sum())
            .collect()
    };
    // Spans 2 + 2 (one of three refused each time), logs 2 × 3, metrics 2 + 1 + 3;
    // limited: 2 of 3.
    assert_eq!(rows(&written), [4, 6, 6, 0, 0, 2]);
    // A crash: no flush, no close.
    drop(ingestor);
    drop(storage);

    let storage = open(dir.path()).await;
    let replayed = buffered(&storage);
    assert_eq!(replayed, written);
}
