//! Logs: nginx access logs (the body is the combined log format line), and application logs
//! made from templates with parameters, 40% of them carrying the trace and span id of a trace
//! of the trace generator (same seed), as trace-correlated logs do.

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::traces::{resource_attributes, service_names, trace_id};
use super::{Clock, int, s};
use crate::rng::Rng;

pub struct LogGenerator {
    seed: u64,
    rng: Rng,
    clock: Clock,
    nginx: bool,
    services: Vec<&'static str>,
    emitted: u64,
}

/// (severity number, severity text, template). `{}` placeholders are filled in order.
static TEMPLATES: &[(i32, &str, &str)] = &[
    (9, "INFO", "User {user} logged in from {ip}"),
    (
        9,
        "INFO",
        "Order {order} placed: {n} items, total {amount} USD",
    ),
    (
        9,
        "INFO",
        "Processed {n} messages from topic {topic} in {ms}ms",
    ),
    (9, "INFO", "GET /api/v1/products/{id} served in {ms}ms"),
    (5, "DEBUG", "Cache miss for key product:{id}"),
    (
        5,
        "DEBUG",
        "Loaded {n} feature flags from config revision {order}",
    ),
    (13, "WARN", "Payment {txn} declined: {reason}"),
    (
        13,
        "WARN",
        "Inventory for SKU-{id} below threshold: {n} left",
    ),
    (
        13,
        "WARN",
        "Slow query took {ms}ms: SELECT * FROM orders WHERE user_id = {user}",
    ),
    (
        17,
        "ERROR",
        "Request to {service} timed out after {ms}ms (attempt {attempt}/3)",
    ),
    (
        17,
        "ERROR",
        "Connection pool exhausted: {n}/64 connections in use",
    ),
];

/// Weights of the templates above: mostly INFO, some WARN, few ERROR.
static WEIGHTS: &[u64] = &[30, 20, 15, 20, 6, 2, 3, 2, 1, 1, 1];

static REASONS: &[&str] = &[
    "insufficient funds",
    "card expired",
    "fraud suspected",
    "invalid cvc",
];
static TOPICS: &[&str] = &["orders", "payments", "shipments", "inventory-events"];
static METHODS: &[&str] = &["GET", "GET", "GET", "GET", "POST", "PUT", "DELETE"];
static PATHS: &[&str] = &[
    "/",
    "/product/{id}",
    "/api/v1/products/{id}",
    "/cart",
    "/checkout",
    "/search?q={q}",
    "/static/js/app.{id}.js",
    "/static/css/site.css",
    "/images/{id}.jpg",
    "/api/v1/orders",
    "/healthz",
    "/favicon.ico",
];
static USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "kube-probe/1.29",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
];
static QUERIES: &[&str] = &[
    "shoes",
    "red+dress",
    "laptop",
    "coffee+beans",
    "usb-c+cable",
];

impl LogGenerator {
    pub fn new(seed: u64, clock: Clock, nginx: bool) -> Self {
        Self {
            seed,
            rng: Rng::new(seed).fork(if nginx { 2 } else { 3 }),
            clock,
            nginx,
            services: service_names().collect(),
            emitted: 0,
        }
    }

    /// The next request of `n` log records.
    pub fn next_request(&mut self, n: usize) -> ExportLogsServiceRequest {
        // Records grouped by resource, as an SDK or collector batches them.
        let mut by_resource: Vec<(String, usize, Vec<LogRecord>)> = Vec::new();
        for _ in 0..n {
            let (service, pod, record) = if self.nginx {
                self.nginx_record()
            } else {
                self.app_record()
            };
            match by_resource
                .iter_mut()
                .find(|(s, p, _)| s == service && *p == pod)
            {
                Some((_, _, records)) => records.push(record),
                None => by_resource.push((service.to_string(), pod, vec![record])),
            }
            self.emitted += 1;
        }
        ExportLogsServiceRequest {
            resource_logs: by_resource
                .into_iter()
                .map(|(service, pod, records)| ResourceLogs {
                    resource: Some(Resource {
                        attributes: resource_attributes(&service, pod),
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: if self.nginx {
                                "filelog"
                            } else {
                                "io.opentelemetry.log"
                            }
                            .into(),
                            ..Default::default()
                        }),
                        log_records: records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }

    fn ip(&mut self) -> String {
        let n = self.rng.skewed(20_000);
        format!(
            "{}.{}.{}.{}",
            10 + n % 200,
            (n / 200) % 256,
            (n * 7) % 256,
            (n * 13) % 256
        )
    }

    fn nginx_record(&mut self) -> (&'static str, usize, LogRecord) {
        let t = self.clock.next_trace_start(&mut self.rng);
        let ip = self.ip();
        let method = self.rng.pick_str(METHODS);
        let path = self
            .rng
            .pick(PATHS)
            .replace("{id}", &self.rng.skewed(50_000).to_string())
            .replace("{q}", self.rng.pick_str(QUERIES));
        let roll = self.rng.f64();
        let status = if roll < 0.90 {
            200
        } else if roll < 0.93 {
            304
        } else if roll < 0.97 {
            404
        } else if roll < 0.99 {
            401
        } else {
            502
        };
        let bytes = self.rng.lognormal(4_000.0, 1.2) as u64;
        let rt = self.rng.lognormal(0.012, 1.0);
        let at: DateTime<Utc> = DateTime::from_timestamp_nanos(t);
        let referer = if self.rng.chance(0.6) {
            "-"
        } else {
            "https://shop.example.com/"
        };
        let ua = self.rng.pick_str(USER_AGENTS);
        let line = format!(
            "{ip} - - [{}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{ua}\" rt={rt:.3}",
            at.format("%d/%b/%Y:%H:%M:%S +0000")
        );
        let severity = match status {
            500.. => (17, "ERROR"),
            400.. => (13, "WARN"),
            _ => (9, "INFO"),
        };
        let pod = self.rng.below(4) as usize;
        let record = LogRecord {
            // A collector parsing the line takes the event time from `$time_local`, which
            // has whole seconds; the observed time is its own clock when it read the line.
            time_unix_nano: (t - t.rem_euclid(1_000_000_000)) as u64,
            observed_time_unix_nano: (t + 50_000_000) as u64,
            severity_number: severity.0,
            severity_text: severity.1.into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(line)),
            }),
            attributes: vec![s("log.file.path", "/var/log/nginx/access.log")],
            ..Default::default()
        };
        ("nginx", pod, record)
    }

    fn app_record(&mut self) -> (&'static str, usize, LogRecord) {
        let t = self.clock.next_trace_start(&mut self.rng);
        let total: u64 = WEIGHTS.iter().sum();
        let mut pick = self.rng.below(total);
        let idx = WEIGHTS
            .iter()
            .position(|w| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .expect("weights cover the range");
        let (number, text, template) = TEMPLATES[idx];
        let mut body = template.to_string();
        let fills: [(&str, String); 12] = [
            ("{user}", format!("u{}", self.rng.skewed(100_000))),
            ("{ip}", self.ip()),
            ("{order}", format!("ord_{:08x}", self.rng.next_u64() as u32)),
            ("{n}", (1 + self.rng.below(60)).to_string()),
            ("{amount}", format!("{:.2}", self.rng.lognormal(60.0, 0.8))),
            ("{topic}", self.rng.pick_str(TOPICS).to_string()),
            ("{ms}", (self.rng.lognormal(20.0, 1.0) as u64).to_string()),
            ("{id}", self.rng.skewed(50_000).to_string()),
            (
                "{txn}",
                format!("txn_{:012x}", self.rng.next_u64() & 0xffff_ffff_ffff),
            ),
            ("{reason}", self.rng.pick_str(REASONS).to_string()),
            (
                "{service}",
                format!("{}.shop.svc", self.rng.pick_str(&self.services)),
            ),
            ("{attempt}", (1 + self.rng.below(3)).to_string()),
        ];
        for (placeholder, value) in &fills {
            body = body.replace(placeholder, value);
        }
        let service = self.rng.pick_str(&self.services);
        let pod = self.rng.below(2) as usize;
        let (trace, span) = if self.rng.chance(0.4) {
            // A trace the trace generator produced (or will): about 12 spans per trace.
            let n = self.rng.below((self.emitted / 4).max(1));
            (
                trace_id(self.seed, n).to_vec(),
                self.rng.bytes::<8>().to_vec(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let record = LogRecord {
            time_unix_nano: t as u64,
            observed_time_unix_nano: (t + 2_000_000) as u64,
            severity_number: number,
            severity_text: text.into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(body)),
            }),
            attributes: vec![
                s("code.function", &format!("{}.handle", service)),
                int("thread.id", 1 + self.rng.below(32) as i64),
            ],
            trace_id: trace,
            span_id: span.clone(),
            flags: if span.is_empty() { 0 } else { 1 },
            ..Default::default()
        };
        (service, pod, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(r: &ExportLogsServiceRequest) -> Vec<String> {
        r.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(|l| match l.body.as_ref().unwrap().value.as_ref().unwrap() {
                Value::StringValue(s) => s.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn nginx_lines_look_like_the_combined_format() {
        let mut g = LogGenerator::new(1, Clock::new(1_700_000_000_000_000_000, 1_000_000), true);
        let r = g.next_request(100);
        let lines = bodies(&r);
        assert_eq!(lines.len(), 100);
        assert!(lines[0].contains(" - - [14/Nov/2023:"), "{}", lines[0]);
        assert!(lines.iter().all(|l| l.contains(" HTTP/1.1\" ")));
    }

    #[test]
    fn app_logs_fill_every_placeholder_and_correlate_some() {
        let mut g = LogGenerator::new(1, Clock::new(0, 1_000_000), false);
        let r = g.next_request(1000);
        assert!(bodies(&r).iter().all(|b| !b.contains('{')));
        let correlated = r
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .filter(|l| l.trace_id.len() == 16)
            .count();
        assert!((300..500).contains(&correlated), "{correlated}");
    }
}
