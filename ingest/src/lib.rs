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
mod metrics;
mod signal;

use std::sync::Arc;

use strata_storage::{Storage, TenantId};

pub use auth::{Auth, AuthError, Principal};
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
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
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
    auth: Auth,
}

impl Ingestor {
    /// An ingestor without authentication (the tenant comes from `X-Scope-OrgID`).
    pub fn new(storage: Arc<Storage>, config: IngestConfig) -> Arc<Self> {
        Self::with_auth(storage, config, Auth::none())
    }

    /// An ingestor whose receivers authenticate every export through `auth`.
    pub fn with_auth(storage: Arc<Storage>, config: IngestConfig, auth: Auth) -> Arc<Self> {
        Arc::new(Self {
            storage,
            config,
            metrics: IngestMetrics::default(),
            auth,
        })
    }

    /// How the receivers authenticate requests and resolve their tenant.
    pub fn auth(&self) -> &Auth {
        &self.auth
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
        let converted = if body_bytes > 256 * 1024 {
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
