//! The load driver: sends pre-encoded export requests over OTLP/gRPC or OTLP/HTTP on N
//! connections, flat out or at a target rate, and measures what the server acknowledged and
//! how long each acknowledgement took.
//!
//! Requests are encoded before the clock starts, so the driver spends its CPU on I/O only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use serde::Serialize;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::data::{Dataset, Signal};

/// Which OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Grpc,
    Http,
}

/// What to send, where, how.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub protocol: Protocol,
    /// `host:port` of the OTLP listener of that protocol.
    pub endpoint: String,
    pub connections: usize,
    /// Target items per second over all connections; `None` sends flat out.
    pub rate: Option<f64>,
    /// Stop after this long even if passes remain.
    pub max_duration: Option<Duration>,
    pub tenant: String,
    /// Compress bodies with gzip (HTTP) / grpc-encoding gzip.
    pub gzip: bool,
    /// Resend a request the node refused as retryable (HTTP 429/502/503/504, gRPC
    /// `UNAVAILABLE`/`RESOURCE_EXHAUSTED`), after a backoff, until it is acknowledged — as
    /// the OpenTelemetry SDK exporters do. Without it a refusal counts as a failure and its
    /// items are not sent again.
    pub retry: bool,
}

/// First wait before resending a refused request; doubled per attempt up to
/// `RETRY_MAX_BACKOFF`.
const RETRY_FIRST_BACKOFF: Duration = Duration::from_millis(20);
const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Whether an error of [`send`] is one the OTLP specification says to retry.
fn retryable(error: &str) -> bool {
    matches!(
        error,
        "http 429"
            | "http 502"
            | "http 503"
            | "http 504"
            | "grpc Unavailable"
            | "grpc ResourceExhausted"
    )
}

/// What a load run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub protocol: Option<Protocol>,
    pub connections: usize,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub items_acked: u64,
    pub items_rejected: u64,
    pub bytes_acked: u64,
    pub elapsed_s: f64,
    pub items_per_s: f64,
    pub mb_per_s: f64,
    pub latency_ms: Percentiles,
    /// Failures by kind (status code or error class).
    pub errors: BTreeMap<String, u64>,
    /// Refusals that were sent again (with `retry`), by kind; the request's items count once,
    /// when acknowledged.
    pub retried: BTreeMap<String, u64>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of latencies in microseconds (sorted in place).
    pub fn of(samples: &mut [u32]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            f64::from(samples[i]) / 1000.0
        };
        Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// The part of every OTLP export response this driver reads: `partial_success` (field 1)
/// with its rejected count (field 1) — the same layout for all three signals.
#[derive(Clone, PartialEq, Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
}

/// A gRPC codec for pre-encoded messages.
#[derive(Default, Clone)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http(reqwest::Client),
}

struct Outcome {
    items: u64,
    rejected: u64,
    bytes: u64,
    latency_us: u32,
    error: Option<String>,
    /// Refusals before this outcome (with `retry`).
    retried: Vec<String>,
}

fn gzip(body: &[u8]) -> Bytes {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).expect("writing to memory");
    Bytes::from(enc.finish().expect("writing to memory"))
}

async fn connect(config: &LoadConfig) -> Result<Client, String> {
    match config.protocol {
        Protocol::Grpc => {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://{}", config.endpoint))
                    .map_err(|e| e.to_string())?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| format!("connecting to {}: {e}", config.endpoint))?;
            let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20);
            if config.gzip {
                grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
            }
            Ok(Client::Grpc(grpc))
        }
        Protocol::Http => reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .build()
            .map(Client::Http)
            .map_err(|e| e.to_string()),
    }
}

async fn send(
    client: &mut Client,
    config: &LoadConfig,
    signal: Signal,
    body: Bytes,
    items: u64,
) -> Outcome {
    let started = Instant::now();
    let bytes = body.len() as u64;
    let result: Result<Bytes, String> = match client {
        Client::Grpc(grpc) => {
            let mut request = tonic::Request::new(body);
            if let Ok(v) = config.tenant.parse() {
                request.metadata_mut().insert("x-scope-orgid", v);
            }
            match grpc.ready().await {
                Err(e) => Err(format!("grpc not ready: {e}")),
                Ok(()) => {
                    let path = http::uri::PathAndQuery::from_static(signal.grpc_path());
                    grpc.unary(request, path, RawCodec)
                        .await
                        .map(|r| r.into_inner())
                        .map_err(|s| format!("grpc {:?}", s.code()))
                }
            }
        }
        Client::Http(http) => {
            let mut request = http
                .post(format!("http://{}{}", config.endpoint, signal.http_path()))
                .header("content-type", "application/x-protobuf")
                .header("x-scope-orgid", &config.tenant);
            request = if config.gzip {
                request.header("content-encoding", "gzip").body(gzip(&body))
            } else {
                request.body(body)
            };
            match request.send().await {
                Err(e) => Err(if e.is_connect() {
                    "http connect".into()
                } else {
                    "http io".into()
                }),
                Ok(r) if r.status().is_success() => r.bytes().await.map_err(|_| "http body".into()),
                Ok(r) => Err(format!("http {}", r.status().as_u16())),
            }
        }
    };
    let latency_us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    match result {
        Ok(response) => {
            let rejected = ExportResponse::decode(response)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected.max(0) as u64);
            Outcome {
                items,
                rejected,
                bytes,
                latency_us,
                error: None,
                retried: Vec::new(),
            }
        }
        Err(e) => Outcome {
            items: 0,
            rejected: 0,
            bytes: 0,
            latency_us,
            error: Some(e),
            retried: Vec::new(),
        },
    }
}

/// Requests to send: encoded bodies and their item counts.
pub type Requests = Box<dyn Iterator<Item = (Bytes, u64)> + Send>;

/// A data set sent `passes` times over.
pub fn passes(dataset: Arc<Dataset>, passes: usize) -> Requests {
    let n = dataset.requests.len();
    Box::new((0..n * passes.max(1)).map(move |k| {
        let i = k % n;
        (dataset.requests[i].clone(), dataset.items[i])
    }))
}

/// Sends `requests` of `signal` as configured and reports what was acknowledged. Requests are
/// produced on a separate thread and taken by whichever connection is free.
pub async fn run(
    requests: Requests,
    signal: Signal,
    config: LoadConfig,
) -> Result<LoadReport, String> {
    let connections = config.connections.max(1);
    // Connect everyone first: connection setup is not part of the measurement.
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(connect(&config).await?);
    }
    // Each request carries the moment it is due: with a rate, request k is due when the
    // items before it have been sent at that rate (one schedule for all connections, so that
    // many connections do not start with a burst); flat out, everything is due at once.
    let (tx, rx) = tokio::sync::mpsc::channel::<(Bytes, u64, Duration)>(connections * 2 + 16);
    let rate = config.rate;
    let producer = std::thread::spawn(move || {
        let mut items_before = 0u64;
        for (body, items) in requests {
            let due = rate.map_or(Duration::ZERO, |r| {
                Duration::from_secs_f64(items_before as f64 / r)
            });
            items_before += items;
            if tx.blocking_send((body, items, due)).is_err() {
                break;
            }
        }
    });
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let deadline = config.max_duration.map(|d| Instant::now() + d);
    let started = Instant::now();
    let config = Arc::new(config);
    let mut tasks = Vec::with_capacity(connections);
    for mut client in clients {
        let rx = rx.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let Some((body, items, due)) = rx.lock().await.recv().await else {
                    break;
                };
                tokio::time::sleep_until((started + due).into()).await;
                let first = Instant::now();
                let mut retried = Vec::new();
                let mut backoff = RETRY_FIRST_BACKOFF;
                let mut outcome = loop {
                    let outcome = send(&mut client, &config, signal, body.clone(), items).await;
                    match &outcome.error {
                        Some(e) if config.retry && retryable(e) => {
                            if deadline.is_some_and(|d| Instant::now() + backoff >= d) {
                                break outcome;
                            }
                            retried.push(e.clone());
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(RETRY_MAX_BACKOFF);
                        }
                        _ => break outcome,
                    }
                };
                if !retried.is_empty() {
                    // What the exporter waited: from the first send to the answer.
                    outcome.latency_us =
                        first.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                }
                outcome.retried = retried;
                outcomes.push(outcome);
            }
            outcomes
        }));
    }
    let mut report = LoadReport {
        protocol: Some(config.protocol),
        connections,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    for task in tasks {
        for o in task.await.map_err(|e| e.to_string())? {
            latencies.push(o.latency_us);
            for kind in o.retried {
                *report.retried.entry(kind).or_default() += 1;
            }
            match o.error {
                None => {
                    report.requests_ok += 1;
                    report.items_acked += o.items - o.rejected.min(o.items);
                    report.items_rejected += o.rejected;
                    report.bytes_acked += o.bytes;
                }
                Some(e) => {
                    report.requests_failed += 1;
                    *report.errors.entry(e).or_default() += 1;
                }
            }
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    drop(rx);
    let _ = producer.join();
    report.items_per_s = report.items_acked as f64 / report.elapsed_s;
    report.mb_per_s = report.bytes_acked as f64 / report.elapsed_s / 1e6;
    report.latency_ms = Percentiles::of(&mut latencies);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_sample() {
        let mut samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!((p.p50, p.p99, p.max), (51.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []).p99, 0.0);
    }
}
