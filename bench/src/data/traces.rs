//! Traces shaped like a microservice shop: two dozen services calling each other, client and
//! server span pairs, fan-out, long-tailed latencies, ~1% errors with exception events, and
//! the attributes of OpenTelemetry's semantic conventions.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::{Clock, int, s};
use crate::rng::Rng;

/// One operation a service serves, and what it calls downstream.
struct Operation {
    name: &'static str,
    route: &'static str,
    method: &'static str,
    /// Downstream calls: (service, operation index, probability of the call).
    calls: &'static [(&'static str, usize, f64)],
    /// Median of the operation's own work, in milliseconds.
    self_ms: f64,
}

struct Service {
    name: &'static str,
    kind: ServiceKind,
    ops: &'static [Operation],
}

#[derive(Clone, Copy, PartialEq)]
enum ServiceKind {
    Http,
    Grpc,
    Database(&'static str),
    Cache,
}

macro_rules! op {
    ($name:expr, $method:expr, $route:expr, $ms:expr, [$($call:expr),*]) => {
        Operation { name: $name, method: $method, route: $route, self_ms: $ms, calls: &[$($call),*] }
    };
}

/// The shop. Callees are named; every name resolves (checked by a test).
static SERVICES: &[Service] = &[
    Service {
        name: "frontend",
        kind: ServiceKind::Http,
        ops: &[
            op!(
                "GET /",
                "GET",
                "/",
                2.0,
                [
                    ("productcatalog", 0, 1.0),
                    ("recommendation", 0, 0.8),
                    ("ad", 0, 0.6),
                    ("currency", 0, 0.9)
                ]
            ),
            op!(
                "GET /product/{id}",
                "GET",
                "/product/{id}",
                2.5,
                [
                    ("productcatalog", 1, 1.0),
                    ("review", 0, 0.7),
                    ("recommendation", 0, 0.8),
                    ("inventory", 0, 0.5)
                ]
            ),
            op!(
                "POST /cart",
                "POST",
                "/cart",
                1.5,
                [("cart", 1, 1.0), ("auth", 0, 1.0)]
            ),
            op!(
                "GET /cart",
                "GET",
                "/cart",
                1.5,
                [("cart", 0, 1.0), ("currency", 0, 0.8), ("shipping", 0, 0.5)]
            ),
            op!(
                "POST /checkout",
                "POST",
                "/checkout",
                3.0,
                [("auth", 0, 1.0), ("checkout", 0, 1.0)]
            ),
            op!(
                "GET /search",
                "GET",
                "/search",
                2.0,
                [("search", 0, 1.0), ("ad", 0, 0.4)]
            ),
        ],
    },
    Service {
        name: "gateway",
        kind: ServiceKind::Http,
        ops: &[
            op!(
                "GET /api/v1/orders",
                "GET",
                "/api/v1/orders",
                1.0,
                [("auth", 0, 1.0), ("order", 0, 1.0)]
            ),
            op!(
                "POST /api/v1/orders",
                "POST",
                "/api/v1/orders",
                1.2,
                [("auth", 0, 1.0), ("checkout", 0, 1.0)]
            ),
        ],
    },
    Service {
        name: "auth",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "auth.Auth/Verify",
            "POST",
            "/auth.Auth/Verify",
            0.8,
            [("redis", 0, 0.9), ("user", 0, 0.1)]
        )],
    },
    Service {
        name: "user",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "user.Users/Get",
            "POST",
            "/user.Users/Get",
            1.0,
            [("postgres", 0, 1.0)]
        )],
    },
    Service {
        name: "productcatalog",
        kind: ServiceKind::Grpc,
        ops: &[
            op!(
                "catalog.Catalog/ListProducts",
                "POST",
                "/catalog.Catalog/ListProducts",
                3.0,
                [("postgres", 0, 0.7), ("redis", 0, 0.9)]
            ),
            op!(
                "catalog.Catalog/GetProduct",
                "POST",
                "/catalog.Catalog/GetProduct",
                1.0,
                [("redis", 0, 1.0), ("postgres", 0, 0.2)]
            ),
        ],
    },
    Service {
        name: "recommendation",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "reco.Recommendations/List",
            "POST",
            "/reco.Recommendations/List",
            6.0,
            [("productcatalog", 0, 1.0)]
        )],
    },
    Service {
        name: "ad",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "ads.Ads/Get",
            "POST",
            "/ads.Ads/Get",
            2.0,
            [("redis", 0, 0.5)]
        )],
    },
    Service {
        name: "currency",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "currency.Currency/Convert",
            "POST",
            "/currency.Currency/Convert",
            0.3,
            []
        )],
    },
    Service {
        name: "review",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "review.Reviews/List",
            "POST",
            "/review.Reviews/List",
            2.0,
            [("postgres", 0, 1.0)]
        )],
    },
    Service {
        name: "inventory",
        kind: ServiceKind::Grpc,
        ops: &[
            op!(
                "inventory.Inventory/Check",
                "POST",
                "/inventory.Inventory/Check",
                1.0,
                [("postgres", 0, 1.0)]
            ),
            op!(
                "inventory.Inventory/Reserve",
                "POST",
                "/inventory.Inventory/Reserve",
                2.0,
                [("postgres", 1, 1.0), ("kafka", 0, 1.0)]
            ),
        ],
    },
    Service {
        name: "cart",
        kind: ServiceKind::Grpc,
        ops: &[
            op!(
                "cart.Cart/Get",
                "POST",
                "/cart.Cart/Get",
                0.6,
                [("redis", 0, 1.0)]
            ),
            op!(
                "cart.Cart/Add",
                "POST",
                "/cart.Cart/Add",
                0.8,
                [("redis", 1, 1.0), ("inventory", 0, 0.5)]
            ),
        ],
    },
    Service {
        name: "checkout",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "checkout.Checkout/PlaceOrder",
            "POST",
            "/checkout.Checkout/PlaceOrder",
            4.0,
            [
                ("cart", 0, 1.0),
                ("currency", 0, 1.0),
                ("pricing", 0, 1.0),
                ("tax", 0, 1.0),
                ("inventory", 1, 1.0),
                ("payment", 0, 1.0),
                ("shipping", 1, 1.0),
                ("order", 1, 1.0),
                ("email", 0, 0.9),
                ("notification", 0, 0.5)
            ]
        )],
    },
    Service {
        name: "pricing",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "pricing.Pricing/Quote",
            "POST",
            "/pricing.Pricing/Quote",
            1.5,
            [("redis", 0, 0.6)]
        )],
    },
    Service {
        name: "tax",
        kind: ServiceKind::Grpc,
        ops: &[op!("tax.Tax/Compute", "POST", "/tax.Tax/Compute", 1.2, [])],
    },
    Service {
        name: "payment",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "payment.Payment/Charge",
            "POST",
            "/payment.Payment/Charge",
            25.0,
            [("fraud", 0, 1.0), ("ledger", 0, 1.0)]
        )],
    },
    Service {
        name: "fraud",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "fraud.Fraud/Score",
            "POST",
            "/fraud.Fraud/Score",
            8.0,
            [("postgres", 0, 0.5)]
        )],
    },
    Service {
        name: "ledger",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "ledger.Ledger/Record",
            "POST",
            "/ledger.Ledger/Record",
            3.0,
            [("postgres", 1, 1.0)]
        )],
    },
    Service {
        name: "shipping",
        kind: ServiceKind::Grpc,
        ops: &[
            op!(
                "shipping.Shipping/Quote",
                "POST",
                "/shipping.Shipping/Quote",
                1.0,
                []
            ),
            op!(
                "shipping.Shipping/Ship",
                "POST",
                "/shipping.Shipping/Ship",
                3.0,
                [("kafka", 0, 1.0)]
            ),
        ],
    },
    Service {
        name: "order",
        kind: ServiceKind::Grpc,
        ops: &[
            op!(
                "order.Orders/List",
                "POST",
                "/order.Orders/List",
                2.0,
                [("postgres", 0, 1.0)]
            ),
            op!(
                "order.Orders/Create",
                "POST",
                "/order.Orders/Create",
                2.0,
                [("postgres", 1, 1.0), ("kafka", 0, 1.0)]
            ),
        ],
    },
    Service {
        name: "email",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "email.Email/SendConfirmation",
            "POST",
            "/email.Email/SendConfirmation",
            12.0,
            []
        )],
    },
    Service {
        name: "notification",
        kind: ServiceKind::Grpc,
        ops: &[op!(
            "notify.Notify/Push",
            "POST",
            "/notify.Notify/Push",
            5.0,
            [("kafka", 0, 1.0)]
        )],
    },
    Service {
        name: "search",
        kind: ServiceKind::Http,
        ops: &[op!(
            "GET /search",
            "GET",
            "/search",
            9.0,
            [("productcatalog", 0, 0.5), ("redis", 0, 0.8)]
        )],
    },
    Service {
        name: "postgres",
        kind: ServiceKind::Database("postgresql"),
        ops: &[
            op!("SELECT", "", "SELECT * FROM items WHERE id = $1", 0.8, []),
            op!(
                "INSERT",
                "",
                "INSERT INTO events (id, payload) VALUES ($1, $2)",
                1.2,
                []
            ),
        ],
    },
    Service {
        name: "redis",
        kind: ServiceKind::Cache,
        ops: &[
            op!("GET", "", "GET", 0.15, []),
            op!("SET", "", "SET", 0.2, []),
        ],
    },
    Service {
        name: "kafka",
        kind: ServiceKind::Database("kafka"),
        ops: &[op!("publish", "", "orders", 0.5, [])],
    },
];

/// Roots of traces, with their weights: where user traffic enters.
static ROOTS: &[(&str, usize, u64)] = &[
    ("frontend", 0, 30),
    ("frontend", 1, 30),
    ("frontend", 2, 8),
    ("frontend", 3, 10),
    ("frontend", 4, 4),
    ("frontend", 5, 10),
    ("gateway", 0, 5),
    ("gateway", 1, 3),
];

/// Services that are leaves (databases) emit no spans of their own: their work shows as the
/// caller's client span, as with real instrumentation.
fn is_instrumented(service: &Service) -> bool {
    matches!(service.kind, ServiceKind::Http | ServiceKind::Grpc)
}

fn service_index(name: &str) -> usize {
    SERVICES
        .iter()
        .position(|s| s.name == name)
        .unwrap_or_else(|| panic!("unknown service {name}"))
}

/// The trace id of trace number `n` of a data set: also used by the log generator for
/// trace-correlated logs.
pub fn trace_id(seed: u64, n: u64) -> [u8; 16] {
    Rng::new(seed).fork(0x7472_6163_6500 ^ n).bytes::<16>()
}

/// Spans of one resource (service instance) in the request being built.
struct Batch {
    by_pod: Vec<(usize, usize, Vec<Span>)>,
    spans: usize,
}

impl Batch {
    fn push(&mut self, service: usize, pod: usize, span: Span) {
        self.spans += 1;
        if let Some((_, _, spans)) = self
            .by_pod
            .iter_mut()
            .find(|(s, p, _)| *s == service && *p == pod)
        {
            spans.push(span);
        } else {
            self.by_pod.push((service, pod, vec![span]));
        }
    }
}

/// Generates traces into export requests of about `batch` spans each.
pub struct TraceGenerator {
    seed: u64,
    rng: Rng,
    clock: Clock,
    next_trace: u64,
    error_rate: f64,
}

impl TraceGenerator {
    pub fn new(seed: u64, clock: Clock) -> Self {
        Self {
            seed,
            rng: Rng::new(seed).fork(1),
            clock,
            next_trace: 0,
            error_rate: 0.01,
        }
    }

    /// The next request of about `batch` spans (whole traces only).
    pub fn next_request(&mut self, batch: usize) -> ExportTraceServiceRequest {
        let mut b = Batch {
            by_pod: Vec::new(),
            spans: 0,
        };
        while b.spans < batch {
            self.trace(&mut b);
        }
        let resource_spans = b
            .by_pod
            .into_iter()
            .map(|(service, pod, spans)| ResourceSpans {
                resource: Some(resource(service, pod)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: scope_name(SERVICES[service].kind).into(),
                        version: "1.28.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    fn trace(&mut self, b: &mut Batch) {
        let n = self.next_trace;
        self.next_trace += 1;
        let trace_id = trace_id(self.seed, n);
        let weights: u64 = ROOTS.iter().map(|r| r.2).sum();
        let mut pick = self.rng.below(weights);
        let &(root_service, root_op, _) = ROOTS
            .iter()
            .find(|r| {
                if pick < r.2 {
                    true
                } else {
                    pick -= r.2;
                    false
                }
            })
            .expect("weights cover the range");
        let start = self.clock.next_trace_start(&mut self.rng);
        let failing = self.rng.chance(self.error_rate);
        self.server_span(
            b,
            &trace_id,
            None,
            service_index(root_service),
            root_op,
            start,
            0,
            failing,
        );
    }

    /// Emits the server span of `service.op` and its subtree; returns its end time.
    #[allow(clippy::too_many_arguments)]
    fn server_span(
        &mut self,
        b: &mut Batch,
        trace_id: &[u8; 16],
        parent: Option<[u8; 8]>,
        service: usize,
        op: usize,
        start: i64,
        depth: usize,
        failing: bool,
    ) -> i64 {
        let svc = &SERVICES[service];
        let operation = &svc.ops[op];
        let pod = self.rng.below(pods(svc.name)) as usize;
        let span_id = self.rng.bytes::<8>();
        let mut t = start + ms(self.rng.lognormal(operation.self_ms * 0.3, 0.4));
        // Which downstream call fails, if the trace fails: the deepest one we reach.
        let calls: Vec<_> = operation
            .calls
            .iter()
            .filter(|c| depth < 5 && self.rng.chance(c.2))
            .collect();
        let failing_call = if failing && !calls.is_empty() {
            Some(self.rng.below(calls.len() as u64) as usize)
        } else {
            None
        };
        let mut child_failed = false;
        for (i, &&(callee, callee_op, _)) in calls.iter().enumerate() {
            let callee_idx = service_index(callee);
            let fails_here = failing_call == Some(i);
            let client_id = self.rng.bytes::<8>();
            let client_start = t;
            let end = if is_instrumented(&SERVICES[callee_idx]) {
                let net = ms(self.rng.lognormal(0.2, 0.5));
                self.server_span(
                    b,
                    trace_id,
                    Some(client_id),
                    callee_idx,
                    callee_op,
                    client_start + net,
                    depth + 1,
                    fails_here,
                ) + net
            } else {
                let callee_op = &SERVICES[callee_idx].ops[callee_op];
                client_start + ms(self.rng.lognormal(callee_op.self_ms, 0.8))
            };
            child_failed |= fails_here;
            b.push(
                service,
                pod,
                self.client_span(
                    trace_id,
                    span_id,
                    client_id,
                    callee_idx,
                    callee_op,
                    client_start,
                    end,
                    fails_here,
                ),
            );
            t = end;
        }
        let end = t + ms(self.rng.lognormal(operation.self_ms * 0.7, 0.6));
        // A failing leaf fails itself; a failing parent fails because its child did.
        let error = failing && (failing_call.is_none() || child_failed);
        let mut attributes = match svc.kind {
            ServiceKind::Http => vec![
                s("http.request.method", operation.method),
                s("http.route", operation.route),
                s(
                    "url.path",
                    &operation
                        .route
                        .replace("{id}", &self.rng.below(5000).to_string()),
                ),
                s("url.scheme", "https"),
                int("http.response.status_code", if error { 500 } else { 200 }),
                s("server.address", &format!("{}.shop.svc", svc.name)),
                int("server.port", 8080),
                s("user_agent.original", self.rng.pick_str(USER_AGENTS)),
                s(
                    "client.address",
                    &format!(
                        "10.{}.{}.{}",
                        self.rng.below(256),
                        self.rng.below(256),
                        self.rng.below(256)
                    ),
                ),
            ],
            _ => vec![
                s("rpc.system", "grpc"),
                s(
                    "rpc.service",
                    operation.name.split('/').next().unwrap_or(""),
                ),
                s("rpc.method", operation.name.split('/').nth(1).unwrap_or("")),
                int("rpc.grpc.status_code", if error { 13 } else { 0 }),
                s("server.address", &format!("{}.shop.svc", svc.name)),
                int("server.port", 50051),
            ],
        };
        if self.rng.chance(0.3) {
            attributes.push(s(
                "enduser.id",
                &format!("user-{}", self.rng.skewed(100_000)),
            ));
        }
        let events = if error {
            vec![Event {
                time_unix_nano: (end - 1_000) as u64,
                name: "exception".into(),
                attributes: vec![
                    s("exception.type", self.rng.pick_str(EXCEPTIONS)),
                    s("exception.message", "upstream request failed"),
                    s(
                        "exception.stacktrace",
                        "at handler (handler.go:123)\nat serve (server.go:88)",
                    ),
                ],
                dropped_attributes_count: 0,
            }]
        } else {
            Vec::new()
        };
        b.push(
            service,
            pod,
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                trace_state: String::new(),
                parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                flags: 0x101,
                name: operation.name.into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: start as u64,
                end_time_unix_nano: end as u64,
                attributes,
                dropped_attributes_count: 0,
                events,
                dropped_events_count: 0,
                links: Vec::new(),
                dropped_links_count: 0,
                status: Some(Status {
                    message: if error {
                        "internal error".into()
                    } else {
                        String::new()
                    },
                    code: if error {
                        StatusCode::Error
                    } else {
                        StatusCode::Unset
                    } as i32,
                }),
            },
        );
        end
    }

    #[allow(clippy::too_many_arguments)]
    fn client_span(
        &mut self,
        trace_id: &[u8; 16],
        parent: [u8; 8],
        span_id: [u8; 8],
        callee: usize,
        callee_op: usize,
        start: i64,
        end: i64,
        error: bool,
    ) -> Span {
        let svc = &SERVICES[callee];
        let op = &svc.ops[callee_op];
        let (name, attributes) = match svc.kind {
            ServiceKind::Database(system) => (
                format!("{} {}", op.name, svc.name),
                vec![
                    s("db.system", system),
                    s("db.statement", op.route),
                    s("db.operation", op.name),
                    s("server.address", &format!("{}.shop.svc", svc.name)),
                ],
            ),
            ServiceKind::Cache => (
                format!("{} {}", op.name, svc.name),
                vec![
                    s("db.system", "redis"),
                    s(
                        "db.statement",
                        &format!("{} cache:{}", op.route, self.rng.skewed(10_000)),
                    ),
                    s("server.address", "redis.shop.svc"),
                ],
            ),
            ServiceKind::Http => (
                format!("{} {}", op.method, op.route),
                vec![
                    s("http.request.method", op.method),
                    s(
                        "url.full",
                        &format!("http://{}.shop.svc{}", svc.name, op.route),
                    ),
                    int("http.response.status_code", if error { 500 } else { 200 }),
                    s("server.address", &format!("{}.shop.svc", svc.name)),
                ],
            ),
            ServiceKind::Grpc => (
                op.name.to_string(),
                vec![
                    s("rpc.system", "grpc"),
                    s("rpc.service", op.name.split('/').next().unwrap_or("")),
                    s("rpc.method", op.name.split('/').nth(1).unwrap_or("")),
                    s("server.address", &format!("{}.shop.svc", svc.name)),
                    int("rpc.grpc.status_code", if error { 13 } else { 0 }),
                ],
            ),
        };
        Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent.to_vec(),
            flags: 0x101,
            name,
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start as u64,
            end_time_unix_nano: end as u64,
            attributes,
            status: Some(Status {
                message: String::new(),
                code: if error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                } as i32,
            }),
            ..Default::default()
        }
    }
}

fn ms(v: f64) -> i64 {
    (v * 1e6) as i64
}

fn pods(service: &str) -> u64 {
    match service {
        "frontend" | "gateway" => 6,
        "productcatalog" | "cart" | "auth" => 4,
        _ => 2,
    }
}

fn scope_name(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Http => "io.opentelemetry.http",
        _ => "io.opentelemetry.grpc",
    }
}

/// Resource of pod `pod` of service `service`.
pub(super) fn resource(service: usize, pod: usize) -> Resource {
    let name = SERVICES[service].name;
    Resource {
        attributes: resource_attributes(name, pod),
        ..Default::default()
    }
}

pub(super) fn resource_attributes(name: &str, pod: usize) -> Vec<KeyValue> {
    vec![
        s("service.name", name),
        s("service.namespace", "shop"),
        s("service.version", "1.4.2"),
        s("deployment.environment.name", "production"),
        s("k8s.namespace.name", "shop"),
        s("k8s.pod.name", &format!("{name}-7d9f8c-{pod:05}")),
        s("k8s.node.name", &format!("node-{}", pod % 8)),
        s("host.name", &format!("{name}-7d9f8c-{pod:05}")),
        s("telemetry.sdk.language", "go"),
        s("telemetry.sdk.name", "opentelemetry"),
        s("telemetry.sdk.version", "1.28.0"),
    ]
}

/// Every service name, for the other generators.
pub(super) fn service_names() -> impl Iterator<Item = &'static str> {
    SERVICES
        .iter()
        .filter(|s| is_instrumented(s))
        .map(|s| s.name)
}

static USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "shop-ios/4.12.0",
    "okhttp/4.12.0",
];

static EXCEPTIONS: &[&str] = &[
    "io.grpc.StatusRuntimeException",
    "java.net.SocketTimeoutException",
    "context.DeadlineExceeded",
    "psycopg2.OperationalError",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_callee_exists_and_there_are_twenty_services_or_more() {
        for svc in SERVICES {
            for op in svc.ops {
                for (callee, op_idx, p) in op.calls {
                    let c = &SERVICES[service_index(callee)];
                    assert!(
                        *op_idx < c.ops.len(),
                        "{}.{} calls {callee}#{op_idx}",
                        svc.name,
                        op.name
                    );
                    assert!((0.0..=1.0).contains(p));
                }
            }
        }
        assert!(SERVICES.len() >= 20);
    }

    #[test]
    fn traces_are_well_formed_and_reproducible() {
        let clock = Clock::new(1_700_000_000_000_000_000, 10_000);
        let a = TraceGenerator::new(42, clock.clone()).next_request(2000);
        let b = TraceGenerator::new(42, clock).next_request(2000);
        assert_eq!(a, b);
        let spans: Vec<&Span> = a
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert!(spans.len() >= 2000);
        let ids: std::collections::HashSet<_> = spans.iter().map(|s| s.span_id.clone()).collect();
        assert_eq!(ids.len(), spans.len(), "span ids are unique");
        for s in &spans {
            assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
            if !s.parent_span_id.is_empty() {
                assert!(
                    ids.contains(&s.parent_span_id),
                    "parents are in the same request"
                );
            }
        }
        let services: std::collections::HashSet<_> = a
            .resource_spans
            .iter()
            .map(|r| format!("{:?}", r.resource.as_ref().unwrap().attributes[0].value))
            .collect();
        assert!(services.len() >= 15, "{} services", services.len());
        let errors = spans
            .iter()
            .filter(|s| s.status.as_ref().unwrap().code == StatusCode::Error as i32)
            .count();
        assert!(errors > 0 && errors < spans.len() / 10, "{errors} errors");
    }
}
