//! # strata-ingest
//!
//! The OTLP receivers: gRPC (`grpc.rs`, port 4317) and HTTP with protobuf or JSON bodies
//! (`http.rs`, port 4318). Both decode, validate, resolve the tenant, convert OTLP to Arrow
//! (`convert/`) and hand the record batches to `strata_storage::Storage`.
//!
//! ```text
//! gRPC Export ─┐                    ┌─► convert (OTLP → Arrow, invalid items counted)
//!              ├─► decode + limits ─┤
//! HTTP POST ───┘   (tenant, size,   └─► Storage::write ─► response (partial_success)
//!                   gzip, type)
//! ```
//!
//! Depends on `strata-proto` and `strata-storage` only.

pub mod auth;
pub mod convert;
mod error;
pub mod grpc;
pub mod http;
pub mod limits;
mod metrics;
pub mod process;
mod refusal_log;
mod signal;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_storage::wal::SourceRequest;
use strata_storage::{PerTenant, Signal, Storage, TenantId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::convert::Converted;
use crate::limits::{IngestLimits, Limiter};

pub use auth::{Auth, AuthError, Principal};
pub use error::{IngestError, Result};
pub use metrics::IngestMetrics;
pub use refusal_log::RateLimitedLog;
pub use signal::{Logs, Metrics, OtlpSignal, Traces, wal_decoder};

/// Default limit on a request body, counted after decompression (20 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Default limit on the bytes of request bodies being decoded and converted at once (64 MiB).
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 64 * 1024 * 1024;

/// How long a request waits for its share of the in-flight bytes before it is refused.
pub const DEFAULT_INFLIGHT_WAIT: Duration = Duration::from_millis(500);

/// Header (HTTP) and metadata key (gRPC) that names the tenant.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Settings of the receivers.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest accepted request body, after decompression.
    pub max_body_bytes: usize,
    /// Rates and cardinality per tenant.
    pub limits: PerTenant<IngestLimits>,
    /// Bytes of request bodies (after decompression) being decoded, converted and written at
    /// once, across both receivers. A request larger than this is taken when it is alone.
    pub max_inflight_bytes: usize,
    /// How long a request waits for its share of `max_inflight_bytes`; then it is refused as
    /// throttled (HTTP 429 / gRPC `UNAVAILABLE`, retryable).
    pub inflight_wait: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            limits: PerTenant::default(),
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            inflight_wait: DEFAULT_INFLIGHT_WAIT,
        }
    }
}

/// Which receiver a request came through (a `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::HttpProtobuf => "http_protobuf",
            Transport::HttpJson => "http_json",
        }
    }
}

/// Shared by both receivers: turns decoded requests into stored rows.
#[derive(Debug)]
pub struct Ingestor {
    storage: Arc<Storage>,
    config: IngestConfig,
    metrics: IngestMetrics,
    limiter: Limiter,
    /// One permit per byte of request body being decoded and converted.
    inflight: Arc<Semaphore>,
    /// The WARN line of refused exports, at most once a second.
    refusal_log: RateLimitedLog,
    auth: Auth,
}

impl Ingestor {
    /// An ingestor without authentication (the tenant comes from `X-Scope-OrgID`).
    pub fn new(storage: Arc<Storage>, config: IngestConfig) -> Arc<Self> {
        Self::with_auth(storage, config, Auth::none())
    }

    /// An ingestor whose receivers authenticate every export through `auth`.
    pub fn with_auth(storage: Arc<Storage>, config: IngestConfig, auth: Auth) -> Arc<Self> {
        let permits = config.max_inflight_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            storage,
            limiter: Limiter::new(config.limits.clone()),
            config,
            metrics: IngestMetrics::default(),
            inflight: Arc::new(Semaphore::new(permits)),
            refusal_log: RateLimitedLog::new(Duration::from_secs(1)),
            auth,
        })
    }

    /// How the receivers authenticate requests and resolve their tenant.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The per-tenant limits and their use.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Refuses (throttled: HTTP 429 / gRPC `UNAVAILABLE`) while the write buffer is at its
    /// memory limit. Cheap: the receivers call it before they read or decode anything, so a
    /// refused request costs no more than its headers. Counted as a refused write.
    pub fn admit(&self) -> Result<()> {
        Ok(self.storage.check_memory_limit()?)
    }

    /// Waits up to `inflight_wait` for `bytes` (a decompressed body) of the in-flight budget,
    /// to hold while the body is decoded, converted and written. A body larger than the whole
    /// budget takes all of it. Refused as throttled when the wait runs out.
    pub async fn reserve_inflight(&self, bytes: usize) -> Result<OwnedSemaphorePermit> {
        let budget = self
            .config
            .max_inflight_bytes
            .clamp(1, Semaphore::MAX_PERMITS);
        let wanted = bytes.clamp(1, budget).min(u32::MAX as usize) as u32;
        if let Ok(permit) = self.inflight.clone().try_acquire_many_owned(wanted) {
            return Ok(permit);
        }
        match tokio::time::timeout(
            self.config.inflight_wait,
            self.inflight.clone().acquire_many_owned(wanted),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(IngestError::Internal(closed.to_string())),
            Err(_elapsed) => Err(IngestError::Throttled {
                reason: "too many request bytes are being decoded at once".into(),
                retry_after_secs: 1,
            }),
        }
    }

    /// Bytes of the in-flight budget free now.
    pub fn inflight_available(&self) -> usize {
        self.inflight.available_permits()
    }

    /// Logs a refused export (throttled or unavailable) at WARN, at most once a second, with
    /// the number of refusals not logged since the previous line.
    pub fn log_refusal(&self, error: &IngestError, signal: &str, transport: &str) {
        if let Some(suppressed) = self.refusal_log.allow_at(Instant::now()) {
            tracing::warn!(error = %error, signal, transport, suppressed, "export refused");
        }
    }

    /// The receivers' counters, for registration in `/metrics`.
    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Resolves the tenant of a request from the value of its tenant header, if any (auth
    /// `none`; the receivers go through [`Ingestor::auth`]).
    pub fn tenant(header: Option<&[u8]>) -> Result<TenantId> {
        match header {
            None => Ok(TenantId::default_tenant()),
            Some(raw) => {
                let text = std::str::from_utf8(raw).map_err(|_| {
                    IngestError::InvalidTenant(strata_storage::InvalidTenant::BadChar(
                        char::REPLACEMENT_CHARACTER,
                    ))
                })?;
                Ok(TenantId::new(text)?)
            }
        }
    }

    /// Decodes and converts a request with `convert` (given the time it was received), stores
    /// what can be stored of it and builds the OTLP response, with a `partial_success` when
    /// items were rejected.
    ///
    /// `protobuf` is the request's body when `convert` is [`OtlpSignal::convert_protobuf`] of
    /// it: the WAL then keeps the body rather than the rows, and replays it with
    /// [`wal_decoder`] (unless the series limit dropped some of its points, when the stored
    /// rows are no longer the conversion of the body alone).
    ///
    /// The request is decoded, converted and dropped on one thread: the allocator then frees
    /// its many small strings locally instead of handing them back across threads.
    pub async fn export<S: OtlpSignal>(
        &self,
        tenant: &TenantId,
        convert: impl FnOnce(i64) -> Result<Converted> + Send + 'static,
        body_bytes: usize,
        mut protobuf: Option<Bytes>,
    ) -> Result<S::Response> {
        let received = chrono_now_ns();
        let convert = move || convert(received);
        // Decoding and conversion are CPU work proportional to the body; large bodies leave
        // the I/O threads.
        let mut converted = if body_bytes > BLOCKING_BODY_BYTES {
            tokio::task::spawn_blocking(convert)
                .await
                .map_err(|e| IngestError::Internal(e.to_string()))??
        } else {
            convert()?
        };
        let labels = metrics::TenantSignal {
            tenant: tenant.to_string(),
            signal: S::SIGNAL.as_str(),
        };
        let now = Instant::now();
        self.limiter
            .admit(tenant, converted.accepted, body_bytes as u64, now)
            .map_err(|refused| IngestError::Throttled {
                reason: format!(
                    "tenant {tenant} is over its ingest rate of {} {}/s",
                    refused.limit, refused.what
                ),
                retry_after_secs: refused.retry_after.as_secs_f64().ceil().max(1.0) as u32,
            })?;
        if S::SIGNAL == Signal::Metrics
            && let Some(batch) = converted.batch.take()
        {
            let before = converted.rejected.count;
            converted.batch = self
                .limiter
                .filter_series(tenant, batch, &mut converted.rejected, now)
                .map_err(|e| IngestError::Internal(e.to_string()))?;
            converted.accepted -= converted.rejected.count - before;
            if converted.rejected.count > before {
                protobuf = None;
            }
        }
        if let Some(batch) = converted.batch {
            let source = protobuf.map(|protobuf| SourceRequest {
                received_ns: received,
                protobuf,
            });
            self.storage
                .write_converted(tenant, S::SIGNAL, batch, source)
                .await?;
        }
        self.metrics
            .items
            .get_or_create(&labels)
            .inc_by(converted.accepted);
        self.metrics
            .bytes
            .get_or_create(&labels)
            .inc_by(body_bytes as u64);
        if converted.rejected.count > 0 {
            self.metrics
                .rejected_items
                .get_or_create(&labels)
                .inc_by(converted.rejected.count);
            tracing::debug!(
                tenant = %tenant, signal = %S::SIGNAL, rejected = converted.rejected.count,
                reason = converted.rejected.first_reason.as_deref().unwrap_or(""),
                "partial success"
            );
        }
        Ok(S::response(&converted.rejected))
    }
}

/// Bodies larger than this are decoded and converted on the blocking pool rather than on the
/// I/O thread that read them.
const BLOCKING_BODY_BYTES: usize = 256 * 1024;

fn chrono_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
