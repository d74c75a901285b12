//! Metrics: TSBS "cpu-only" (every host reports 10 CPU gauges every 10 s, with the TSBS host
//! tags as resource attributes; as in TSBS, each field is a random walk with standard normal
//! steps clamped to [0, 100] and reported truncated to an integer) and OpenTelemetry SDK
//! `http.server.request.duration` histograms (cumulative, explicit buckets, per service, route,
//! method and status, every 10 s).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::traces::{resource_attributes, service_names};
use super::{Workload, int, s};
use crate::rng::Rng;

/// The reporting interval.
pub const INTERVAL_NS: i64 = 10_000_000_000;

/// TSBS cpu-only fields.
pub static CPU_FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

static REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
];
static OSES: &[&str] = &["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
static ARCHES: &[&str] = &["x64", "x86"];
static TEAMS: &[&str] = &["SF", "NYC", "LON", "CHI"];
static ENVIRONMENTS: &[&str] = &["production", "staging", "test"];

/// HTTP server duration buckets of the OpenTelemetry semantic conventions (seconds).
pub static BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

struct HistogramSeries {
    service: &'static str,
    route: String,
    method: &'static str,
    status: i64,
    /// Median latency of the route, seconds.
    median: f64,
    counts: [u64; 15],
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

pub struct MetricGenerator {
    rng: Rng,
    start_ns: i64,
    workload: Workload,
    /// TSBS: hosts and their current field values.
    hosts: Vec<(
        Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
        [f64; 10],
    )>,
    histograms: Vec<HistogramSeries>,
    intervals: i64,
    /// Position: interval and the next host or series within it.
    interval: i64,
    cursor: usize,
}

impl MetricGenerator {
    /// A generator of about `total` points over `span_ns` of simulated time.
    pub fn new(seed: u64, start_ns: i64, workload: Workload, total: u64, span_ns: i64) -> Self {
        let mut rng = Rng::new(seed).fork(4);
        let mut intervals = (span_ns / INTERVAL_NS).max(1);
        let mut hosts = Vec::new();
        let mut histograms = Vec::new();
        match workload {
            Workload::TsbsCpu => {
                let mut n = (total as i64 / (10 * intervals)).max(1);
                if n == 1 {
                    intervals = (total as i64 / 10).max(1);
                }
                n = n.max(1);
                for h in 0..n {
                    let region = rng.pick_str(REGIONS);
                    let tags = vec![
                        s("hostname", &format!("host_{h}")),
                        s("region", region),
                        s(
                            "datacenter",
                            &format!("{region}{}", ["a", "b", "c"][rng.below(3) as usize]),
                        ),
                        s("rack", &rng.below(100).to_string()),
                        s("os", rng.pick_str(OSES)),
                        s("arch", rng.pick_str(ARCHES)),
                        s("team", rng.pick_str(TEAMS)),
                        s("service", &rng.below(20).to_string()),
                        s("service_version", &rng.below(2).to_string()),
                        s("service_environment", rng.pick_str(ENVIRONMENTS)),
                    ];
                    let mut values = [0.0; 10];
                    for v in &mut values {
                        *v = rng.f64() * 100.0;
                    }
                    hosts.push((tags, values));
                }
            }
            Workload::HttpHistograms => {
                let routes = [
                    "/",
                    "/product/{id}",
                    "/cart",
                    "/checkout",
                    "/search",
                    "/api/v1/orders",
                    "/api/v1/orders/{id}",
                    "/login",
                ];
                let mut series = Vec::new();
                for service in service_names() {
                    for route in routes.iter().take(2 + rng.below(6) as usize) {
                        for (method, status) in
                            [("GET", 200), ("GET", 404), ("POST", 200), ("GET", 500)]
                        {
                            series.push((service, route.to_string(), method, status));
                        }
                    }
                }
                let per_interval = series.len() as i64;
                intervals = intervals.min((total as i64 / per_interval).max(1));
                for (service, route, method, status) in series {
                    histograms.push(HistogramSeries {
                        service,
                        route,
                        method,
                        status,
                        median: rng.lognormal(0.03, 0.8),
                        counts: [0; 15],
                        count: 0,
                        sum: 0.0,
                        min: f64::INFINITY,
                        max: 0.0,
                    });
                }
            }
            _ => unreachable!("not a metrics workload"),
        }
        Self {
            rng,
            start_ns,
            workload,
            hosts,
            histograms,
            intervals,
            interval: 0,
            cursor: 0,
        }
    }

    /// The end of the simulated window.
    pub fn end_ns(&self) -> i64 {
        self.start_ns + self.intervals * INTERVAL_NS
    }

    /// The next request of about `batch` points, and its point count (0 when done).
    pub fn next_request(&mut self, batch: usize) -> (ExportMetricsServiceRequest, u64) {
        let mut resource_metrics = Vec::new();
        let mut points = 0u64;
        while (points as usize) < batch && self.interval < self.intervals {
            // Exact multiples of the interval, as TSBS and scrapers produce them.
            let t = self.start_ns + self.interval * INTERVAL_NS;
            match self.workload {
                Workload::TsbsCpu => {
                    let host = self.cursor;
                    let (tags, values) = &mut self.hosts[host];
                    let mut metrics = Vec::with_capacity(10);
                    for (field, value) in CPU_FIELDS.iter().zip(values.iter_mut()) {
                        // TSBS: a clamped random walk with N(0, 1) steps, reported as an
                        // int64 (TSBS's cpu measurement writes every field truncated).
                        *value = (*value + self.rng.normal()).clamp(0.0, 100.0);
                        metrics.push(Metric {
                            name: format!("cpu_{field}"),
                            unit: "%".into(),
                            data: Some(Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint {
                                    time_unix_nano: t as u64,
                                    value: Some(number_data_point::Value::AsInt(*value as i64)),
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        });
                    }
                    resource_metrics.push(ResourceMetrics {
                        resource: Some(Resource {
                            attributes: tags.clone(),
                            ..Default::default()
                        }),
                        scope_metrics: vec![ScopeMetrics {
                            scope: Some(InstrumentationScope {
                                name: "tsbs".into(),
                                ..Default::default()
                            }),
                            metrics,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    });
                    points += 10;
                    self.cursor += 1;
                    if self.cursor == self.hosts.len() {
                        self.cursor = 0;
                        self.interval += 1;
                    }
                }
                Workload::HttpHistograms => {
                    let series = &mut self.histograms[self.cursor];
                    let requests = self.rng.skewed(200);
                    for _ in 0..requests {
                        let v = self.rng.lognormal(series.median, 0.9);
                        let bucket = BOUNDS.iter().position(|b| v <= *b).unwrap_or(BOUNDS.len());
                        series.counts[bucket] += 1;
                        series.count += 1;
                        series.sum += v;
                        series.min = series.min.min(v);
                        series.max = series.max.max(v);
                    }
                    let point = HistogramDataPoint {
                        attributes: vec![
                            s("http.request.method", series.method),
                            s("http.route", &series.route),
                            int("http.response.status_code", series.status),
                            s("url.scheme", "https"),
                            s("network.protocol.version", "1.1"),
                        ],
                        start_time_unix_nano: self.start_ns as u64,
                        time_unix_nano: t as u64,
                        count: series.count,
                        sum: Some(series.sum),
                        bucket_counts: series.counts.to_vec(),
                        explicit_bounds: BOUNDS.to_vec(),
                        min: series.min.is_finite().then_some(series.min),
                        max: (series.count > 0).then_some(series.max),
                        ..Default::default()
                    };
                    resource_metrics.push(ResourceMetrics {
                        resource: Some(Resource {
                            attributes: resource_attributes(series.service, 0),
                            ..Default::default()
                        }),
                        scope_metrics: vec![ScopeMetrics {
                            scope: Some(InstrumentationScope {
                                name:
                                    "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
                                        .into(),
                                version: "0.53.0".into(),
                                ..Default::default()
                            }),
                            metrics: vec![Metric {
                                name: "http.server.request.duration".into(),
                                description: "Duration of HTTP server requests.".into(),
                                unit: "s".into(),
                                data: Some(Data::Histogram(Histogram {
                                    data_points: vec![point],
                                    aggregation_temporality: AggregationTemporality::Cumulative
                                        as i32,
                                })),
                                ..Default::default()
                            }],
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    });
                    points += 1;
                    self.cursor += 1;
                    if self.cursor == self.histograms.len() {
                        self.cursor = 0;
                        self.interval += 1;
                    }
                }
                _ => unreachable!(),
            }
        }
        (ExportMetricsServiceRequest { resource_metrics }, points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsbs_sizes_hosts_and_intervals_to_the_total() {
        // 6 hours at 10 s is 2160 intervals; 432,000 points is 20 hosts.
        let g = MetricGenerator::new(1, 0, Workload::TsbsCpu, 432_000, 6 * 3600 * 1_000_000_000);
        assert_eq!((g.hosts.len(), g.intervals), (20, 2160));
        let mut g = g;
        let (r, n) = g.next_request(1000);
        assert_eq!(n, 1000);
        assert_eq!(r.resource_metrics.len(), 100);
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut g = MetricGenerator::new(
            1,
            0,
            Workload::HttpHistograms,
            100_000,
            3600 * 1_000_000_000,
        );
        let series = g.histograms.len();
        let (first, _) = g.next_request(series);
        let (second, _) = g.next_request(series);
        let count = |r: &ExportMetricsServiceRequest| match &r.resource_metrics[0].scope_metrics[0]
            .metrics[0]
            .data
        {
            Some(Data::Histogram(h)) => h.data_points[0].count,
            _ => unreachable!(),
        };
        assert!(count(&second) >= count(&first));
    }
}
