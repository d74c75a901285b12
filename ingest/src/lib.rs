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

pub mod convert;
mod error;
pub mod grpc;
pub mod http;
pub mod limits;
mod metrics;
mod signal;

use std::sync::Arc;
use std::time::Instant;

use strata_storage::{PerTenant, Signal, Storage, TenantId};

use crate::limits::{IngestLimits, Limiter};

pub use error::{IngestError, Result};
pub use metrics::IngestMetrics;
pub use signal::{Logs, Metrics, OtlpSignal, Traces};

/// Default limit on a request body, counted after decompression (20 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Header (HTTP) and metadata key (gRPC) that names the tenant.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Settings of the receivers.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest accepted request body, after decompression.
    pub max_body_bytes: usize,
    /// Rates and cardinality per tenant.
    pub limits: PerTenant<IngestLimits>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            limits: PerTenant::default(),
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
}

impl Ingestor {
    pub fn new(storage: Arc<Storage>, config: IngestConfig) -> Arc<Self> {
        Arc::new(Self {
            storage,
            limiter: Limiter::new(config.limits.clone()),
            config,
            metrics: IngestMetrics::default(),
        })
    }

    /// The per-tenant limits and their use.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The receivers' counters, for registration in `/metrics`.
    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Resolves the tenant of a request from the value of its tenant header, if any.
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

    /// Stores what can be stored of a decoded request and builds the OTLP response, with a
    /// `partial_success` when items were rejected.
    pub async fn export<S: OtlpSignal>(
        &self,
        tenant: &TenantId,
        request: S::Request,
        body_bytes: usize,
    ) -> Result<S::Response> {
        let received = chrono_now_ns();
        // Conversion is CPU work proportional to the body; large bodies leave the I/O threads.
        let mut converted = if body_bytes > 256 * 1024 {
            tokio::task::spawn_blocking(move || S::convert(&request, received))
                .await
                .map_err(|e| IngestError::Internal(e.to_string()))?
        } else {
            S::convert(&request, received)
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
        }
        if let Some(batch) = converted.batch {
            self.storage.write(tenant, S::SIGNAL, batch).await?;
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

fn chrono_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
