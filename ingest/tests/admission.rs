//! Admission on both receivers: a full write buffer refuses a request before it is decoded,
//! and the in-flight budget (`max_inflight_bytes`) bounds what is decoded at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use strata_ingest::grpc::OtlpGrpcService;
use strata_ingest::{IngestConfig, Ingestor, Logs, OtlpSignal as _};
use strata_storage::objects::object_store_from_url;
use strata_storage::{Signal, SqlCatalog, Storage, StorageConfig, TenantId, TimeRange};
use tower::{Service, ServiceExt};

struct Fixture {
    _dir: tempfile::TempDir,
    storage: Arc<Storage>,
    ingestor: Arc<Ingestor>,
}

async fn fixture(max_total_buffer_bytes: usize, ingest: IngestConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqlCatalog::connect(&format!("sqlite://{}/c.db", dir.path().display()))
        .await
        .unwrap();
    let storage = Storage::open(
        object_store_from_url("memory://").unwrap(),
        Arc::new(catalog),
        StorageConfig {
            max_total_buffer_bytes,
            ..StorageConfig::default()
        },
    )
    .await
    .unwrap();
    let ingestor = Ingestor::new(storage.clone(), ingest);
    Fixture {
        _dir: dir,
        storage,
        ingestor,
    }
}

/// An OTLP logs request with `n` records whose bodies are `body`.
fn logs_request(n: usize, body: &str) -> Vec<u8> {
    let record = LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record; n],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Not a protobuf message: field 1 with a length running past the end.
const UNDECODABLE: &[u8] = &[0x0a, 0xff, 0xff, 0x03, 0x01];

async fn post(f: &Fixture, body: Vec<u8>) -> http::Response<axum::body::Body> {
    let request = http::Request::post(Logs::HTTP_PATH)
        .header("content-type", "application/x-protobuf")
        .body(axum::body::Body::from(body))
        .unwrap();
    strata_ingest::http::router(f.ingestor.clone())
        .oneshot(request)
        .await
        .unwrap()
}

/// A unary gRPC call to the logs service; returns its `grpc-status` (0 when OK).
async fn grpc_call(f: &Fixture, message: &[u8]) -> i32 {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    let request = http::Request::post(Logs::GRPC_PATH)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let mut service = OtlpGrpcService::new(f.ingestor.clone());
    let response = service.call(request).await.unwrap();
    if let Some(status) = response.headers().get("grpc-status") {
        // Trailers-only: an error before any message.
        return status.to_str().unwrap().parse().unwrap();
    }
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    trailers["grpc-status"].to_str().unwrap().parse().unwrap()
}

fn stored_rows(f: &Fixture) -> usize {
    f.storage
        .snapshot(&TenantId::default_tenant(), Signal::Logs, TimeRange::ALL)
        .batches
        .iter()
        .map(|b| b.num_rows())
        .sum()
}

#[tokio::test]
async fn a_full_buffer_refuses_before_decoding() {
    // One byte: the first request fills the buffer.
    let f = fixture(1, IngestConfig::default()).await;
    let ok = post(&f, logs_request(3, "accepted")).await;
    assert_eq!(ok.status(), 200);
    assert!(f.storage.over_memory_limit());

    // An undecodable body is not even decoded: 429, not 400.
    let refused = post(&f, UNDECODABLE.to_vec()).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    // The body was read to its end, so the connection stays usable.
    assert!(!refused.headers().contains_key("connection"));
    let status = strata_proto::status::Status::decode(
        refused.into_body().collect().await.unwrap().to_bytes(),
    )
    .unwrap();
    assert_eq!(status.code, 14);
    assert!(
        status.message.contains("memory limit"),
        "{}",
        status.message
    );
    assert_eq!(status.details.len(), 1, "RetryInfo");

    // gRPC: UNAVAILABLE, not INVALID_ARGUMENT.
    assert_eq!(grpc_call(&f, UNDECODABLE).await, 14);
    // Valid requests are refused the same way and not stored.
    assert_eq!(post(&f, logs_request(2, "refused")).await.status(), 429);
    assert_eq!(grpc_call(&f, &logs_request(2, "refused")).await, 14);
    assert_eq!(stored_rows(&f), 3);
    assert_eq!(
        f.storage
            .stats()
            .writes_refused_memory
            .load(Ordering::Relaxed),
        4
    );
    // Once the buffer is flushed, requests are taken again.
    f.storage.flush_all().await.unwrap();
    assert_eq!(post(&f, UNDECODABLE.to_vec()).await.status(), 400);
    assert_eq!(grpc_call(&f, UNDECODABLE).await, 3);
    assert_eq!(grpc_call(&f, &logs_request(1, "later")).await, 0);
}

#[tokio::test]
async fn the_inflight_budget_bounds_decoding_and_admits_a_large_request_alone() {
    let budget = 1000;
    let f = fixture(
        1 << 30,
        IngestConfig {
            max_inflight_bytes: budget,
            inflight_wait: Duration::from_millis(20),
            ..IngestConfig::default()
        },
    )
    .await;
    // Far larger than the whole budget, and alone: taken.
    let large = logs_request(200, "a body of some length");
    assert!(large.len() > 4 * budget);
    assert_eq!(post(&f, large.clone()).await.status(), 200);
    assert_eq!(grpc_call(&f, &large).await, 0);
    assert_eq!(f.ingestor.inflight_available(), budget, "permits returned");

    // While other requests hold the whole budget, a request is refused, retryably.
    let held = f.ingestor.reserve_inflight(budget).await.unwrap();
    let refused = post(&f, logs_request(1, "refused")).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(grpc_call(&f, &logs_request(1, "refused")).await, 14);
    assert_eq!(stored_rows(&f), 400);
    drop(held);
    assert_eq!(post(&f, logs_request(1, "after")).await.status(), 200);
    assert_eq!(stored_rows(&f), 401);
}
