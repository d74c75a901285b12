//! The delivery worker: attempts due outbox entries, classifies the outcome, and schedules
//! retries with exponential backoff and deterministic jitter.
//!
//! * 2xx: `delivered`.
//! * 5xx, 429 (after `Retry-After` seconds when given), timeouts, connection and DNS
//!   errors: retried after [`backoff`] until `delivery.deadline` after creation (or after
//!   the last manual retry), then `dead`.
//! * other 4xx, a refused destination (SSRF guard), an invalid URL, a receiver or
//!   integration that no longer exists in the configuration: `dead` at once.
//! * redirects are followed by hand, at most [`MAX_REDIRECTS`], each target checked by the
//!   guard; the same POST (body and headers) is sent to the new location.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

use crate::receiver::{DeliveryConfig, Receiver};
use crate::time::{Clock, Nanos, nanos};

use super::Result;
use super::outbox::{Attempt, AttemptOutcome, DeliveryStatus, Outbox, OutboxEntry};
use super::payload::{self, Request};
use super::sign::{IDEMPOTENCY_KEY, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use super::ssrf::Guard;

/// Redirect hops followed per attempt.
pub const MAX_REDIRECTS: usize = 3;

/// Where the notifier reads the configuration, at each attempt (it can be reloaded).
pub trait NotifyConfig: Send + Sync + fmt::Debug {
    /// The receiver named `name` for `tenant`, if it (still) exists.
    fn receiver(&self, tenant: &str, name: &str) -> Option<Receiver>;
    /// The `delivery:` section.
    fn delivery(&self) -> DeliveryConfig;
}

/// A [`NotifyConfig`] held in memory and replaced on reload (receivers shared by all
/// tenants).
#[derive(Debug, Default)]
pub struct SharedConfig {
    inner: RwLock<(Vec<Receiver>, DeliveryConfig)>,
}

impl SharedConfig {
    pub fn new(receivers: Vec<Receiver>, delivery: DeliveryConfig) -> Self {
        Self {
            inner: RwLock::new((receivers, delivery)),
        }
    }

    /// Installs a reloaded configuration.
    pub fn replace(&self, receivers: Vec<Receiver>, delivery: DeliveryConfig) {
        *self.inner.write() = (receivers, delivery);
    }
}

impl NotifyConfig for SharedConfig {
    fn receiver(&self, _tenant: &str, name: &str) -> Option<Receiver> {
        self.inner.read().0.iter().find(|r| r.name == name).cloned()
    }

    fn delivery(&self) -> DeliveryConfig {
        self.inner.read().1.clone()
    }
}

/// The wait before retry number `failures` (1 after the first failure) of entry `id`:
/// `initial_backoff` doubled per failure, at most `max_backoff`, then moved by a jitter in
/// [-20 %, +20 %] derived from the id and the failure number (so it is reproducible).
pub fn backoff(cfg: &DeliveryConfig, id: &str, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(63);
    let base = cfg
        .initial_backoff
        .as_nanos()
        .saturating_mul(1u128 << shift)
        .min(cfg.max_backoff.as_nanos());
    let h = Sha256::digest(format!("{id}:{failures}").as_bytes());
    let r = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let permille = 800 + u128::from(r % 401); // 800..=1200
    let ns = base * permille / 1000;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// What one attempt came to.
#[derive(Debug)]
struct Sent {
    outcome: AttemptOutcome,
    http_status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Sent {
    fn failed(error: String) -> Self {
        Sent {
            outcome: AttemptOutcome::Failed,
            http_status: None,
            error: Some(error),
            retry_after: None,
        }
    }

    fn retry(error: String) -> Self {
        Sent {
            outcome: AttemptOutcome::Retry,
            http_status: None,
            error: Some(error),
            retry_after: None,
        }
    }
}

/// The delivery worker. Build one per process on the shared [`Outbox`].
#[derive(Debug, Clone)]
pub struct Notifier {
    outbox: Arc<Outbox>,
    config: Arc<dyn NotifyConfig>,
    clock: Arc<dyn Clock>,
}

impl Notifier {
    pub fn new(outbox: Arc<Outbox>, config: Arc<dyn NotifyConfig>, clock: Arc<dyn Clock>) -> Self {
        Self {
            outbox,
            config,
            clock,
        }
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Attempts every entry due at `now` (at most `delivery.concurrency` at once) and waits
    /// for them. Returns the number of attempts made.
    pub async fn deliver_due(&self, now: Nanos) -> Result<usize> {
        let due = self.outbox.due(now).await?;
        let concurrency = self.config.delivery().concurrency.max(1);
        let results: Vec<Result<bool>> = futures::stream::iter(due)
            .map(|(tenant, id)| async move { self.attempt(&tenant, &id, now).await })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut attempts = 0;
        for r in results {
            match r {
                Ok(true) => attempts += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "notification delivery bookkeeping failed"),
            }
        }
        Ok(attempts)
    }

    /// Delivers until `shutdown` resolves. Each due entry is attempted in its own task, at
    /// most `delivery.concurrency` at once, so a slow receiver holds one slot for at most
    /// its timeout and never delays the others. Wakes when an entry is enqueued or retried,
    /// when an attempt ends, when the next attempt is due, and at least every second.
    /// Prunes entries older than `delivery.retention` hourly.
    ///
    /// On shutdown, attempts in flight are abandoned: their entries stay `pending` and are
    /// sent again, with the same `Idempotency-Key`, by the next notifier on the store.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut next_prune = Nanos::MIN;
        let mut tasks: tokio::task::JoinSet<(String, String)> = tokio::task::JoinSet::new();
        let mut in_flight: std::collections::HashSet<(String, String)> = Default::default();
        loop {
            let now = self.clock.now();
            let limit = self.config.delivery().concurrency.max(1);
            match self.outbox.due(now).await {
                Ok(due) => {
                    for key in due {
                        if tasks.len() >= limit {
                            break;
                        }
                        if !in_flight.insert(key.clone()) {
                            continue;
                        }
                        let this = self.clone();
                        tasks.spawn(async move {
                            if let Err(e) = this.attempt(&key.0, &key.1, now).await {
                                tracing::warn!(error = %e, "notification delivery bookkeeping failed");
                            }
                            key
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the notification outbox failed"),
            }
            if now >= next_prune {
                let retention = nanos(self.config.delivery().retention);
                match self.outbox.prune(now.saturating_sub(retention)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "pruned old notifications"),
                    Err(e) => tracing::warn!(error = %e, "pruning notifications failed"),
                }
                next_prune = now.saturating_add(3_600_000_000_000);
            }
            let wait = match self.outbox.next_due().await {
                Ok(Some(at)) => at
                    .saturating_sub(self.clock.now())
                    .clamp(50_000_000, 1_000_000_000),
                _ => 1_000_000_000,
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(Duration::from_nanos(wait.unsigned_abs())) => {}
                () = self.outbox.woken() => {}
                Some(done) = tasks.join_next() => {
                    match done {
                        Ok(key) => { in_flight.remove(&key); }
                        Err(e) => tracing::error!(error = %e, "a delivery task failed"),
                    }
                }
            }
            // Collect other finished attempts without waiting.
            while let Some(done) = tasks.try_join_next() {
                if let Ok(key) = done {
                    in_flight.remove(&key);
                }
            }
        }
        tasks.abort_all();
    }

    /// One attempt of one entry; `Ok(false)` when it was no longer pending.
    async fn attempt(&self, tenant: &str, id: &str, now: Nanos) -> Result<bool> {
        let Some(mut e) = self.outbox.load_pending(tenant, id).await? else {
            return Ok(false);
        };
        let cfg = self.config.delivery();
        let sent = match self.prepare(&e, &cfg) {
            Err(reason) => Sent::failed(reason),
            Ok(None) => {
                e.status = DeliveryStatus::Skipped;
                e.next_attempt_at = None;
                self.outbox.record(&e, now).await?;
                return Ok(false);
            }
            Ok(Some((guard, req))) => {
                let timeout = req.timeout.unwrap_or(cfg.timeout);
                // The timeout bounds the whole attempt, redirects included.
                match tokio::time::timeout(timeout, send(&guard, &req, &e.id, now, timeout)).await {
                    Ok(sent) => sent,
                    Err(_) => Sent::retry(timed_out(timeout)),
                }
            }
        };
        self.apply(&mut e, sent, &cfg, now);
        match e.status {
            DeliveryStatus::Delivered => tracing::info!(tenant, id, "notification delivered"),
            DeliveryStatus::Dead => {
                tracing::warn!(tenant, id, error = ?e.last_error, "notification dead")
            }
            _ => tracing::debug!(tenant, id, error = ?e.last_error, "notification will be retried"),
        }
        self.outbox.record(&e, now).await?;
        Ok(true)
    }

    /// The guard and request for an entry under the current configuration.
    fn prepare(
        &self,
        e: &OutboxEntry,
        cfg: &DeliveryConfig,
    ) -> Result<Option<(Guard, Request)>, String> {
        let receiver = (self.config.receiver(&e.tenant, &e.receiver))
            .ok_or_else(|| format!("receiver {:?} no longer exists", e.receiver))?;
        let guard = Guard::new(&cfg.allow)?;
        let req = payload::build(&e.notification, &receiver, e.integration, &cfg.external_url)?;
        Ok(req.map(|r| (guard, r)))
    }

    /// Updates the entry with an attempt's result.
    fn apply(&self, e: &mut OutboxEntry, sent: Sent, cfg: &DeliveryConfig, now: Nanos) {
        e.attempts.push(Attempt {
            at: now,
            outcome: sent.outcome,
            http_status: sent.http_status,
            error: sent.error.clone(),
        });
        e.last_error = sent.error;
        match sent.outcome {
            AttemptOutcome::Delivered => {
                e.status = DeliveryStatus::Delivered;
                e.delivered_at = Some(now);
                e.next_attempt_at = None;
                e.last_error = None;
            }
            AttemptOutcome::Failed => {
                e.status = DeliveryStatus::Dead;
                e.next_attempt_at = None;
            }
            AttemptOutcome::Retry => {
                let deadline = e.deadline_from.saturating_add(nanos(cfg.deadline));
                if now >= deadline {
                    e.status = DeliveryStatus::Dead;
                    e.next_attempt_at = None;
                    e.last_error = Some(format!(
                        "deadline passed after {} attempts; last error: {}",
                        e.attempts.len(),
                        e.last_error.as_deref().unwrap_or("none")
                    ));
                    return;
                }
                let failures = (e.attempts.iter())
                    .filter(|a| a.at >= e.deadline_from && a.outcome == AttemptOutcome::Retry)
                    .count();
                let delay = sent.retry_after.unwrap_or_else(|| {
                    backoff(cfg, &e.id, u32::try_from(failures).unwrap_or(u32::MAX))
                });
                e.next_attempt_at = Some(now.saturating_add(nanos(delay)).min(deadline));
            }
        }
    }
}

/// Sends one request, following redirects through the guard.
async fn send(guard: &Guard, req: &Request, key: &str, now: Nanos, timeout: Duration) -> Sent {
    let ts = now.div_euclid(1_000_000_000);
    let mut url = req.url.clone();
    for hop in 0..=MAX_REDIRECTS {
        let checked = match guard.check(&url).await {
            Ok(c) => c,
            Err(refused) if refused.is_retryable() => return Sent::retry(refused.to_string()),
            Err(refused) => {
                let prefix = if hop == 0 { "" } else { "redirect refused: " };
                return Sent::failed(format!("{prefix}{refused}"));
            }
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("Strata-Alert/", env!("CARGO_PKG_VERSION")));
        if let Some((host, addrs)) = &checked.pin {
            builder = builder.resolve_to_addrs(host, addrs);
        }
        let client = match builder.build() {
            Ok(c) => c,
            Err(e) => return Sent::retry(format!("HTTP client: {e}")),
        };
        let mut request = client
            .post(checked.url.clone())
            .header(reqwest::header::CONTENT_TYPE, &req.content_type)
            .header(IDEMPOTENCY_KEY, key)
            .body(req.body.clone());
        if let Some(secret) = &req.secret {
            request = request
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(secret, ts, &req.body));
        }
        let resp = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Sent::retry(timed_out(timeout));
            }
            Err(e) => return Sent::retry(format!("request failed: {}", error_chain(&e))),
        };
        let status = resp.status();
        let code = status.as_u16();
        if status.is_success() {
            return Sent {
                outcome: AttemptOutcome::Delivered,
                http_status: Some(code),
                error: None,
                retry_after: None,
            };
        }
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            let Some(location) = location else {
                return Sent::failed(format!("HTTP {code} without a Location"));
            };
            if hop == MAX_REDIRECTS {
                return Sent::failed(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match checked.url.join(&location) {
                Ok(next) => url = next.to_string(),
                Err(e) => return Sent::failed(format!("bad redirect Location {location:?}: {e}")),
            }
            continue;
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let snippet = body_prefix(resp, 200).await;
        let error = if snippet.is_empty() {
            format!("HTTP {code}")
        } else {
            format!("HTTP {code}: {snippet}")
        };
        let retryable = code == 429 || status.is_server_error();
        return Sent {
            outcome: if retryable {
                AttemptOutcome::Retry
            } else {
                AttemptOutcome::Failed
            },
            http_status: Some(code),
            error: Some(error),
            retry_after: if retryable { retry_after } else { None },
        };
    }
    unreachable!("the loop returns by its last hop")
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", crate::time::format_duration(timeout))
}

/// The first `max` characters of an error response's body (for `last_error`), reading no
/// more than needed.
async fn body_prefix(mut resp: reqwest::Response, max: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < max * 4 {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    String::from_utf8_lossy(&bytes)
        .trim()
        .chars()
        .take(max)
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Checks the `delivery:` section when the configuration is loaded.
pub fn validate_delivery(cfg: &DeliveryConfig) -> std::result::Result<(), String> {
    Guard::new(&cfg.allow)?;
    if cfg.concurrency == 0 {
        return Err("delivery.concurrency must be at least 1".into());
    }
    if cfg.timeout.is_zero() {
        return Err("delivery.timeout must be positive".into());
    }
    if cfg.initial_backoff.is_zero() || cfg.initial_backoff > cfg.max_backoff {
        return Err("delivery.initial_backoff must be positive and at most max_backoff".into());
    }
    let url = reqwest::Url::parse(&cfg.external_url)
        .map_err(|e| format!("delivery.external_url {:?}: {e}", cfg.external_url))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "delivery.external_url {:?} must be http(s)",
            cfg.external_url
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_reproducibly() {
        let cfg = DeliveryConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            ..DeliveryConfig::default()
        };
        for failures in 1..=10u32 {
            let base = Duration::from_secs((1u64 << (failures - 1)).min(10));
            for id in ["a:0", "b:1", "n1:0"] {
                let d = backoff(&cfg, id, failures);
                assert!(
                    d >= base * 8 / 10 && d <= base * 12 / 10,
                    "{id} {failures} {d:?}"
                );
                assert_eq!(d, backoff(&cfg, id, failures), "deterministic");
            }
        }
        // Jitter differs between entries, so retries of a burst do not line up.
        let spread: std::collections::BTreeSet<Duration> = (0..20)
            .map(|i| backoff(&cfg, &format!("n{i}:0"), 3))
            .collect();
        assert!(spread.len() > 10);
        // No overflow for absurd failure counts.
        assert!(backoff(&cfg, "x", u32::MAX) <= Duration::from_secs(12));
    }

    #[test]
    fn delivery_section_is_checked_at_load() {
        assert_eq!(validate_delivery(&DeliveryConfig::default()), Ok(()));
        let bad = |f: fn(&mut DeliveryConfig)| {
            let mut c = DeliveryConfig::default();
            f(&mut c);
            validate_delivery(&c).unwrap_err()
        };
        assert!(bad(|c| c.allow = vec!["10.0.0.0/40".into()]).contains("prefix length"));
        assert!(bad(|c| c.concurrency = 0).contains("concurrency"));
        assert!(bad(|c| c.timeout = Duration::ZERO).contains("timeout"));
        assert!(bad(|c| c.initial_backoff = Duration::from_secs(900)).contains("initial_backoff"));
        assert!(bad(|c| c.external_url = "nope".into()).contains("external_url"));
    }
}
