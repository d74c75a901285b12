//! Delivery end to end against a local HTTP receiver on 127.0.0.1 (allowed through the SSRF
//! guard by `delivery.allow`), with a manual clock: every instant asserted is computed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use strata_alert::model::{AlertSource, Labels};
use strata_alert::notify::sign::{self, IDEMPOTENCY_KEY, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use strata_alert::notify::{
    AttemptOutcome, DeliveryStatus, Notifier, NotifyError, Outbox, SharedConfig, backoff,
};
use strata_alert::receiver::{DeliveryConfig, Receiver, WebhookConfig};
use strata_alert::time::nanos;
use strata_alert::{Alert, ManualClock, Nanos, Notification, NotificationKind, Status};
use strata_storage::MemoryDocStore;

const T0: Nanos = 1_795_000_000_000_000_000;
const S: Nanos = 1_000_000_000;

#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    Hang,
    Redirect(String),
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Rx {
    log: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Rx {
    fn requests(&self) -> Vec<Request> {
        self.log.lock().clone()
    }
}

async fn handle(State(rx): State<Rx>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    rx.log.lock().push(Request {
        path: uri.path().to_string(),
        headers,
        body,
    });
    let reply = rx.script.lock().pop_front().unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::RetryAfter(code, secs) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Redirect(to) => (StatusCode::TEMPORARY_REDIRECT, [("location", to)]).into_response(),
    }
}

/// A receiver answering from `script` (then 200); returns it and its base URL.
async fn start(script: Vec<Reply>) -> (Rx, String) {
    let rx = Rx::default();
    rx.script.lock().extend(script);
    let app = Router::new().fallback(handle).with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rx, format!("http://{addr}"))
}

fn delivery() -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(10),
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        deadline: Duration::from_secs(3600),
        allow: vec!["127.0.0.1/32".into()],
        external_url: "https://strata.example.com".into(),
        ..DeliveryConfig::default()
    }
}

fn webhook(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: url.to_string(),
        secret: Some("s3cret".into()),
        send_resolved: true,
        max_alerts: 0,
        body_template: None,
        content_type: None,
        timeout: None,
    }
}

fn team(url: &str) -> Receiver {
    Receiver {
        name: "team".into(),
        webhook_configs: vec![webhook(url)],
        pagerduty_configs: vec![],
    }
}

fn notification(id: &str, status: Status) -> Notification {
    let labels: Labels = [("alertname", "HighErrors"), ("service", "cart")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Notification {
        id: id.into(),
        tenant: "acme".into(),
        receiver: "team".into(),
        kind: NotificationKind::Group,
        group_key: "{}:{alertname=\"HighErrors\"}".into(),
        status,
        group_labels: labels.clone(),
        common_labels: labels.clone(),
        common_annotations: Labels::new(),
        alerts: vec![Alert {
            labels,
            annotations: Labels::new(),
            starts_at: T0 - 60 * S,
            ends_at: (status == Status::Resolved).then_some(T0 - S),
            updated_at: T0,
            generator_url: String::new(),
            source: AlertSource::Rule,
            value: None,
        }],
        incident: None,
        escalation_step: None,
        created_at: T0,
    }
}

struct Env {
    store: Arc<MemoryDocStore>,
    config: Arc<SharedConfig>,
    outbox: Arc<Outbox>,
    notifier: Notifier,
}

fn env_with(store: Arc<MemoryDocStore>, receivers: Vec<Receiver>, cfg: DeliveryConfig) -> Env {
    let clock = ManualClock::new(T0);
    let config = Arc::new(SharedConfig::new(receivers, cfg));
    let outbox = Arc::new(Outbox::new(store.clone(), Arc::new(clock.clone())));
    let notifier = Notifier::new(outbox.clone(), config.clone(), Arc::new(clock.clone()));
    Env {
        store,
        config,
        outbox,
        notifier,
    }
}

fn env(receivers: Vec<Receiver>, cfg: DeliveryConfig) -> Env {
    env_with(Arc::default(), receivers, cfg)
}

#[tokio::test]
async fn retries_5xx_with_backoff_then_delivers_once_with_one_key() {
    let (rx, base) = start(vec![Reply::Status(503); 3]).await;
    let cfg = delivery();
    let e = env(vec![team(&format!("{base}/hook"))], cfg.clone());
    let n = notification("n1", Status::Firing);
    assert_eq!(
        e.outbox.enqueue(&n, &team("unused")).await.unwrap(),
        ["n1:0"]
    );

    let mut t = T0;
    assert_eq!(e.notifier.deliver_due(t).await.unwrap(), 1);
    for failure in 1..=3u32 {
        let entry = e.outbox.get("acme", "n1:0").await.unwrap();
        assert_eq!(entry.status, DeliveryStatus::Pending);
        let wait = backoff(&cfg, "n1:0", failure);
        let base = Duration::from_secs(1 << (failure - 1));
        assert!(wait >= base * 8 / 10 && wait <= base * 12 / 10, "{wait:?}");
        let next = t + nanos(wait);
        assert_eq!(entry.next_attempt_at, Some(next));
        // Not before it is due.
        assert_eq!(e.notifier.deliver_due(next - 1).await.unwrap(), 0);
        t = next;
        assert_eq!(e.notifier.deliver_due(t).await.unwrap(), 1);
    }
    let entry = e.outbox.get("acme", "n1:0").await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Delivered);
    assert_eq!(entry.delivered_at, Some(t));
    assert_eq!(entry.next_attempt_at, None);
    assert_eq!(entry.last_error, None);
    let outcomes: Vec<_> = entry
        .attempts
        .iter()
        .map(|a| (a.outcome, a.http_status))
        .collect();
    assert_eq!(
        outcomes,
        [
            (AttemptOutcome::Retry, Some(503)),
            (AttemptOutcome::Retry, Some(503)),
            (AttemptOutcome::Retry, Some(503)),
            (AttemptOutcome::Delivered, Some(200)),
        ]
    );
    // Nothing more is sent, however late.
    assert_eq!(e.notifier.deliver_due(t + 86_400 * S).await.unwrap(), 0);

    let requests = rx.requests();
    assert_eq!(requests.len(), 4);
    for (req, attempt) in requests.iter().zip(&entry.attempts) {
        assert_eq!(req.path, "/hook");
        assert_eq!(req.headers[IDEMPOTENCY_KEY], "n1:0");
        assert_eq!(req.headers["content-type"], "application/json");
        // The receiver's side of the signature recipe.
        let ts: i64 = req.headers[TIMESTAMP_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(ts, attempt.at / S);
        let sig = req.headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(
            sign::verify(
                "s3cret",
                ts,
                &req.body,
                sig,
                ts + 1,
                Duration::from_secs(300)
            ),
            Ok(())
        );
        assert!(sign::verify("wrong", ts, &req.body, sig, ts, Duration::from_secs(300)).is_err());
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["version"], "4");
        assert_eq!(body["receiver"], "team");
        assert_eq!(body["externalURL"], "https://strata.example.com");
    }
    let m = e.outbox.metrics();
    assert_eq!((m.delivered, m.retried, m.dead, m.pending), (1, 3, 0, 0));
}

#[tokio::test]
async fn client_error_is_dead_at_once_and_retry_by_id_delivers() {
    let (rx, base) = start(vec![Reply::Status(400)]).await;
    let e = env(vec![team(&format!("{base}/hook"))], delivery());
    e.outbox
        .enqueue(&notification("n2", Status::Firing), &team(&base))
        .await
        .unwrap();
    assert_eq!(e.notifier.deliver_due(T0).await.unwrap(), 1);
    let dead = e.outbox.get("acme", "n2:0").await.unwrap();
    assert_eq!(dead.status, DeliveryStatus::Dead);
    assert_eq!(dead.attempts.len(), 1);
    assert_eq!(dead.attempts[0].http_status, Some(400));
    assert_eq!(dead.last_error.as_deref(), Some("HTTP 400"));
    assert_eq!(e.outbox.metrics().dead, 1);
    assert_eq!(e.notifier.deliver_due(T0 + 3600 * S).await.unwrap(), 0);

    let listed = e
        .outbox
        .list("acme", Some(DeliveryStatus::Dead), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        e.outbox
            .list("acme", Some(DeliveryStatus::Pending), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Another tenant does not see it.
    assert!(matches!(
        e.outbox.get("other", "n2:0").await,
        Err(NotifyError::NotFound(_))
    ));
    assert!(matches!(
        e.outbox.retry("other", "n2:0", T0).await,
        Err(NotifyError::NotFound(_))
    ));

    let t1 = T0 + 7200 * S;
    let retried = e.outbox.retry("acme", "n2:0", t1).await.unwrap();
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.next_attempt_at, Some(t1));
    assert_eq!(retried.deadline_from, t1);
    assert_eq!(e.notifier.deliver_due(t1).await.unwrap(), 1);
    let done = e.outbox.get("acme", "n2:0").await.unwrap();
    assert_eq!(done.status, DeliveryStatus::Delivered);
    assert_eq!(done.attempts.len(), 2);
    // Retrying what is not dead is a conflict.
    let conflict = e.outbox.retry("acme", "n2:0", t1).await.unwrap_err();
    assert!(matches!(conflict, NotifyError::Conflict(_)));
    assert_eq!(conflict.http_status(), 409);
    let requests = rx.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.headers[IDEMPOTENCY_KEY] == "n2:0")
    );
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_is_retried() {
    let (rx, base) = start(vec![Reply::Hang]).await;
    let mut r = team(&format!("{base}/slow"));
    r.webhook_configs[0].timeout = Some(Duration::from_millis(200));
    let cfg = delivery();
    let e = env(vec![r.clone()], cfg.clone());
    e.outbox
        .enqueue(&notification("n3", Status::Firing), &r)
        .await
        .unwrap();
    assert_eq!(e.notifier.deliver_due(T0).await.unwrap(), 1);
    let entry = e.outbox.get("acme", "n3:0").await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Pending);
    assert_eq!(entry.attempts[0].outcome, AttemptOutcome::Retry);
    assert_eq!(entry.attempts[0].http_status, None);
    assert_eq!(entry.last_error.as_deref(), Some("timed out after 200ms"));
    assert_eq!(
        entry.next_attempt_at,
        Some(T0 + nanos(backoff(&cfg, "n3:0", 1)))
    );
    // The receiver answers the next time.
    assert_eq!(
        e.notifier
            .deliver_due(entry.next_attempt_at.unwrap())
            .await
            .unwrap(),
        1
    );
    let entry = e.outbox.get("acme", "n3:0").await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Delivered);
    assert_eq!(rx.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_is_respected() {
    let (_rx, base) = start(vec![Reply::RetryAfter(429, 7)]).await;
    let e = env(vec![team(&base)], delivery());
    e.outbox
        .enqueue(&notification("n4", Status::Firing), &team(&base))
        .await
        .unwrap();
    e.notifier.deliver_due(T0).await.unwrap();
    let entry = e.outbox.get("acme", "n4:0").await.unwrap();
    assert_eq!(entry.attempts[0].http_status, Some(429));
    assert_eq!(entry.next_attempt_at, Some(T0 + 7 * S));
}

#[tokio::test]
async fn gives_up_at_the_deadline() {
    let (rx, base) = start(vec![Reply::Status(500); 100]).await;
    let cfg = DeliveryConfig {
        deadline: Duration::from_secs(3),
        ..delivery()
    };
    let e = env(vec![team(&base)], cfg);
    e.outbox
        .enqueue(&notification("n5", Status::Firing), &team(&base))
        .await
        .unwrap();
    let mut t = T0;
    loop {
        e.notifier.deliver_due(t).await.unwrap();
        let entry = e.outbox.get("acme", "n5:0").await.unwrap();
        match entry.next_attempt_at {
            Some(next) => {
                assert!(next <= T0 + 3 * S);
                t = next;
            }
            None => {
                assert_eq!(entry.status, DeliveryStatus::Dead);
                // The last attempt is made at the deadline itself.
                assert_eq!(entry.attempts.last().unwrap().at, T0 + 3 * S);
                let err = entry.last_error.unwrap();
                assert!(err.starts_with("deadline passed after"), "{err}");
                assert!(err.ends_with("last error: HTTP 500"), "{err}");
                assert_eq!(rx.requests().len(), entry.attempts.len());
                break;
            }
        }
    }
}

#[tokio::test]
async fn pending_deliveries_resume_after_a_restart_exactly_once() {
    let (rx, base) = start(vec![]).await;
    let store: Arc<MemoryDocStore> = Arc::default();
    let n = notification("n6", Status::Firing);
    {
        let first = env_with(store.clone(), vec![team(&base)], delivery());
        first.outbox.enqueue(&n, &team(&base)).await.unwrap();
        // Stopped before delivering.
    }
    assert!(rx.requests().is_empty());
    let second = env_with(store.clone(), vec![team(&base)], delivery());
    // The alerter regenerates the same notification after the restart: no new entry.
    assert!(
        second
            .outbox
            .enqueue(&n, &team(&base))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(second.outbox.metrics().pending, 0, "not loaded yet");
    assert_eq!(second.outbox.next_due().await.unwrap(), Some(T0));
    assert_eq!(second.notifier.deliver_due(T0).await.unwrap(), 1);
    assert_eq!(second.notifier.deliver_due(T0 + S).await.unwrap(), 0);
    assert_eq!(rx.requests().len(), 1);
    // A third start finds nothing pending.
    let third = env_with(second.store.clone(), vec![team(&base)], delivery());
    assert_eq!(third.notifier.deliver_due(T0 + 2 * S).await.unwrap(), 0);
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn enqueuing_the_same_id_twice_delivers_once() {
    let (rx, base) = start(vec![]).await;
    let e = env(vec![team(&base)], delivery());
    let n = notification("n7", Status::Firing);
    assert_eq!(e.outbox.enqueue(&n, &team(&base)).await.unwrap(), ["n7:0"]);
    assert!(e.outbox.enqueue(&n, &team(&base)).await.unwrap().is_empty());
    assert_eq!(e.notifier.deliver_due(T0).await.unwrap(), 1);
    // Even once delivered, the same id is not queued again.
    assert!(e.outbox.enqueue(&n, &team(&base)).await.unwrap().is_empty());
    assert_eq!(e.notifier.deliver_due(T0 + 60 * S).await.unwrap(), 0);
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn resolved_to_a_send_resolved_false_receiver_is_skipped() {
    let (rx, base) = start(vec![]).await;
    let mut r = team(&base);
    r.webhook_configs[0].send_resolved = false;
    let e = env(vec![r.clone()], delivery());
    e.outbox
        .enqueue(&notification("n8", Status::Resolved), &r)
        .await
        .unwrap();
    assert_eq!(
        e.outbox.get("acme", "n8:0").await.unwrap().status,
        DeliveryStatus::Skipped
    );
    assert_eq!(e.notifier.deliver_due(T0).await.unwrap(), 0);
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn redirects_are_followed_through_the_guard() {
    // A relative redirect to an allowed place is followed, with the same key and body.
    let (rx, base) = start(vec![Reply::Redirect("/moved".into())]).await;
    let e = env(vec![team(&format!("{base}/hook"))], delivery());
    e.outbox
        .enqueue(&notification("n9", Status::Firing), &team(&base))
        .await
        .unwrap();
    e.notifier.deliver_due(T0).await.unwrap();
    assert_eq!(
        e.outbox.get("acme", "n9:0").await.unwrap().status,
        DeliveryStatus::Delivered
    );
    let requests = rx.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/hook", "/moved"]);
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[1].headers[IDEMPOTENCY_KEY], "n9:0");

    // Redirects to loopback outside the allow-list and to cloud metadata are refused, for
    // good: dead after one attempt, and nothing reaches the target.
    let port = base.rsplit(':').next().unwrap();
    for (target, reason) in [
        (
            format!("http://127.0.0.2:{port}/x"),
            "redirect refused: destination 127.0.0.2 resolves to 127.0.0.2 (loopback); \
             add it to delivery.allow to permit it",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "redirect refused: destination 169.254.169.254 resolves to 169.254.169.254 \
             (cloud metadata); add it to delivery.allow to permit it",
        ),
    ] {
        let (rx, base) = start(vec![Reply::Redirect(target)]).await;
        let e = env(vec![team(&base)], delivery());
        e.outbox
            .enqueue(&notification("n10", Status::Firing), &team(&base))
            .await
            .unwrap();
        e.notifier.deliver_due(T0).await.unwrap();
        let entry = e.outbox.get("acme", "n10:0").await.unwrap();
        assert_eq!(entry.status, DeliveryStatus::Dead);
        assert_eq!(entry.attempts.len(), 1);
        assert_eq!(entry.last_error.as_deref(), Some(reason));
        assert_eq!(rx.requests().len(), 1);
    }

    // Endless redirects stop after three hops.
    let (rx, base) = start(vec![Reply::Redirect("/a".into()); 10]).await;
    let e = env(vec![team(&base)], delivery());
    e.outbox
        .enqueue(&notification("n11", Status::Firing), &team(&base))
        .await
        .unwrap();
    e.notifier.deliver_due(T0).await.unwrap();
    let entry = e.outbox.get("acme", "n11:0").await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Dead);
    assert_eq!(entry.last_error.as_deref(), Some("more than 3 redirects"));
    assert_eq!(rx.requests().len(), 4);
}

#[tokio::test]
async fn guarded_destinations_and_missing_receivers_are_dead_without_a_request() {
    let (rx, base) = start(vec![]).await;
    // Loopback without an allow-list entry.
    let e = env(
        vec![team(&base)],
        DeliveryConfig {
            allow: vec![],
            ..delivery()
        },
    );
    e.outbox
        .enqueue(&notification("n12", Status::Firing), &team(&base))
        .await
        .unwrap();
    e.notifier.deliver_due(T0).await.unwrap();
    let entry = e.outbox.get("acme", "n12:0").await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Dead);
    assert_eq!(
        entry.last_error.as_deref(),
        Some(
            "destination 127.0.0.1 resolves to 127.0.0.1 (loopback); \
             add it to delivery.allow to permit it"
        )
    );
    // The receiver was removed from the configuration before delivery.
    let e = env(vec![team(&base)], delivery());
    e.outbox
        .enqueue(&notification("n13", Status::Firing), &team(&base))
        .await
        .unwrap();
    e.config.replace(vec![], delivery());
    e.notifier.deliver_due(T0).await.unwrap();
    let entry = e.outbox.get("acme", "n13:0").await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Dead);
    assert_eq!(
        entry.last_error.as_deref(),
        Some("receiver \"team\" no longer exists")
    );
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn run_delivers_until_shutdown() {
    let (rx, base) = start(vec![]).await;
    let e = env(vec![team(&base)], delivery());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let notifier = e.notifier.clone();
    let task = tokio::spawn(async move {
        notifier
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    e.outbox
        .enqueue(&notification("n14", Status::Firing), &team(&base))
        .await
        .unwrap();
    // Wait for the local receiver (the only real wait in these tests).
    while e.outbox.get("acme", "n14:0").await.unwrap().status == DeliveryStatus::Pending {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_the_others() {
    let (slow_rx, slow_base) = start(vec![Reply::Hang]).await;
    let (fast_rx, fast_base) = start(vec![]).await;
    let mut slow = team(&slow_base);
    slow.name = "slow".into();
    // Long enough that it is still hanging when the test ends (shutdown abandons it).
    slow.webhook_configs[0].timeout = Some(Duration::from_secs(600));
    let fast = team(&fast_base);
    let e = env(vec![slow.clone(), fast.clone()], delivery());
    let mut to_slow = notification("s1", Status::Firing);
    to_slow.receiver = "slow".into();
    e.outbox.enqueue(&to_slow, &slow).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let notifier = e.notifier.clone();
    let task = tokio::spawn(async move {
        notifier
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    // The slow receiver has the request and does not answer.
    while slow_rx.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    e.outbox
        .enqueue(&notification("f1", Status::Firing), &fast)
        .await
        .unwrap();
    while e.outbox.get("acme", "f1:0").await.unwrap().status == DeliveryStatus::Pending {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fast_rx.requests().len(), 1);
    let hanging = e.outbox.get("acme", "s1:0").await.unwrap();
    assert_eq!(hanging.status, DeliveryStatus::Pending);
    assert!(hanging.attempts.is_empty());
    stop.send(()).unwrap();
    task.await.unwrap();
    // Abandoned at shutdown: still pending, sent again (same key) by the next notifier.
    let restarted = env_with(e.store.clone(), vec![slow, fast], delivery());
    assert_eq!(restarted.outbox.next_due().await.unwrap(), Some(T0));
}

#[tokio::test]
async fn host_names_are_resolved_checked_and_pinned() {
    let (rx, base) = start(vec![]).await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let url = format!("http://localhost:{port}/named");
    // Allowed by name: resolved, and the connection goes to the checked addresses.
    let e = env(
        vec![team(&url)],
        DeliveryConfig {
            allow: vec!["localhost".into()],
            ..delivery()
        },
    );
    e.outbox
        .enqueue(&notification("h1", Status::Firing), &team(&url))
        .await
        .unwrap();
    e.notifier.deliver_due(T0).await.unwrap();
    let entry = e.outbox.get("acme", "h1:0").await.unwrap();
    assert_eq!(
        entry.status,
        DeliveryStatus::Delivered,
        "{:?}",
        entry.last_error
    );
    assert_eq!(rx.requests()[0].path, "/named");
    // Not allowed: `localhost` resolves to loopback, refused before any connection.
    let e = env(
        vec![team(&url)],
        DeliveryConfig {
            allow: vec![],
            ..delivery()
        },
    );
    e.outbox
        .enqueue(&notification("h2", Status::Firing), &team(&url))
        .await
        .unwrap();
    e.notifier.deliver_due(T0).await.unwrap();
    let entry = e.outbox.get("acme", "h2:0").await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Dead);
    assert!(
        entry
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("destination localhost resolves to"),
        "{:?}",
        entry.last_error
    );
    assert_eq!(rx.requests().len(), 1);
}
