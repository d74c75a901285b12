//! Deterministic, seeded, realistic OTLP data: the same seed and sizes give the same bytes.
//!
//! - traces: a microservice shop (`traces.rs`);
//! - logs: nginx access logs, application logs from templates, trace-correlated logs
//!   (`logs.rs`);
//! - metrics: TSBS "cpu-only" (hosts × 10 fields every 10 s) and OpenTelemetry SDK HTTP
//!   server duration histograms (`metrics.rs`).
//!
//! Every generator produces export requests of a requested size; timestamps advance over a
//! simulated time window so that the data spans hours, like real data.

pub mod logs;
pub mod metrics;
pub mod traces;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Which data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Traces of a microservice shop.
    Traces,
    /// nginx access log lines.
    NginxLogs,
    /// Application logs from templates, a share of them trace-correlated.
    AppLogs,
    /// TSBS cpu-only: hosts × 10 gauges every 10 s.
    TsbsCpu,
    /// OpenTelemetry SDK `http.server.request.duration` histograms.
    HttpHistograms,
}

impl Workload {
    /// The OTLP signal (and so the HTTP path and gRPC service) of the workload.
    pub fn signal(self) -> Signal {
        match self {
            Workload::Traces => Signal::Traces,
            Workload::NginxLogs | Workload::AppLogs => Signal::Logs,
            Workload::TsbsCpu | Workload::HttpHistograms => Signal::Metrics,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Traces => "traces",
            Workload::NginxLogs => "nginx-logs",
            Workload::AppLogs => "app-logs",
            Workload::TsbsCpu => "tsbs-cpu",
            Workload::HttpHistograms => "http-histograms",
        }
    }
}

/// An OTLP signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }

    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }
}

/// Simulated time: each event advances the clock by `step_ns` on average.
#[derive(Debug, Clone)]
pub struct Clock {
    now: i64,
    step_ns: i64,
}

impl Clock {
    /// A clock starting at `start_ns` that advances `step_ns` per event.
    pub fn new(start_ns: i64, step_ns: i64) -> Self {
        Self {
            now: start_ns,
            step_ns: step_ns.max(1),
        }
    }

    /// The start of the next trace (or log line): exponential inter-arrival times.
    pub fn next_trace_start(&mut self, rng: &mut Rng) -> i64 {
        let gap = -(self.step_ns as f64) * (1.0 - rng.f64()).ln();
        self.now += gap as i64;
        self.now
    }
}

/// A generated data set: encoded export requests and what they hold.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub workload: Workload,
    /// Encoded (protobuf) export requests.
    pub requests: Vec<Bytes>,
    /// Items (spans, log records, data points) per request.
    pub items: Vec<u64>,
    /// First and last timestamp of the data, ns since the epoch.
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Dataset {
    pub fn total_items(&self) -> u64 {
        self.items.iter().sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.requests.iter().map(|r| r.len() as u64).sum()
    }
}

/// How much to generate.
#[derive(Debug, Clone)]
pub struct Size {
    /// Total items.
    pub items: u64,
    /// Items per export request.
    pub batch: usize,
    /// Start of the simulated time window, ns since the epoch.
    pub start_ns: i64,
    /// Length of the simulated time window, ns.
    pub span_ns: i64,
}

/// Encoded export requests produced one at a time, so that data sets larger than memory
/// can be sent.
pub struct Stream {
    source: Source,
    remaining: u64,
    batch: usize,
    pub start_ns: i64,
    pub end_ns: i64,
}

enum Source {
    Traces(traces::TraceGenerator),
    Logs(logs::LogGenerator),
    Metrics(metrics::MetricGenerator),
}

impl Stream {
    /// A stream of about `size.items` items of `workload`.
    pub fn new(workload: Workload, seed: u64, size: &Size) -> Self {
        let (source, end_ns) = match workload {
            Workload::Traces => {
                // About 12 spans per trace.
                let step = size.span_ns / (size.items / 12).max(1) as i64;
                (
                    Source::Traces(traces::TraceGenerator::new(
                        seed,
                        Clock::new(size.start_ns, step),
                    )),
                    size.start_ns + size.span_ns,
                )
            }
            Workload::NginxLogs | Workload::AppLogs => {
                let step = size.span_ns / size.items.max(1) as i64;
                (
                    Source::Logs(logs::LogGenerator::new(
                        seed,
                        Clock::new(size.start_ns, step),
                        workload == Workload::NginxLogs,
                    )),
                    size.start_ns + size.span_ns,
                )
            }
            Workload::TsbsCpu | Workload::HttpHistograms => {
                let g = metrics::MetricGenerator::new(
                    seed,
                    size.start_ns,
                    workload,
                    size.items,
                    size.span_ns,
                );
                let end = g.end_ns();
                (Source::Metrics(g), end)
            }
        };
        Self {
            source,
            remaining: size.items,
            batch: size.batch,
            start_ns: size.start_ns,
            end_ns,
        }
    }
}

impl Iterator for Stream {
    /// An encoded request and its item count.
    type Item = (Bytes, u64);

    fn next(&mut self) -> Option<(Bytes, u64)> {
        if self.remaining == 0 {
            return None;
        }
        let want = (self.remaining.min(self.batch as u64)) as usize;
        let (bytes, n) = match &mut self.source {
            Source::Traces(g) => {
                let r = g.next_request(want);
                let n: u64 = r
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum();
                (r.encode_to_vec(), n)
            }
            Source::Logs(g) => (g.next_request(want).encode_to_vec(), want as u64),
            Source::Metrics(g) => {
                let (r, n) = g.next_request(want);
                (r.encode_to_vec(), n)
            }
        };
        if n == 0 {
            self.remaining = 0;
            return None;
        }
        self.remaining = self.remaining.saturating_sub(n);
        Some((Bytes::from(bytes), n))
    }
}

/// Generates a whole data set in memory.
pub fn generate(workload: Workload, seed: u64, size: &Size) -> Dataset {
    let stream = Stream::new(workload, seed, size);
    let (start_ns, end_ns) = (stream.start_ns, stream.end_ns);
    let (requests, items) = stream.unzip();
    Dataset {
        workload,
        requests,
        items,
        start_ns,
        end_ns,
    }
}

pub(crate) fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

pub(crate) fn int(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
