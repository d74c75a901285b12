//! Errors of the receivers, with the one mapping from an error kind to both the HTTP status
//! and the gRPC code the OTLP specification prescribes.

use http::StatusCode;
use strata_storage::InvalidTenant;
use tonic::Code;

/// Result type of this crate.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Why an export was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The tenant header names no valid tenant.
    #[error("invalid tenant id: {0}")]
    InvalidTenant(#[from] InvalidTenant),
    /// The body is not a valid OTLP message in the declared encoding.
    #[error("{0}")]
    Decode(String),
    /// The body (after decompression) is larger than the limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The `Content-Type` is not one OTLP defines.
    #[error("unsupported content type {0:?}; use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// The `Content-Encoding` is not one Strata decodes.
    #[error("unsupported content encoding {0:?}; use gzip or none")]
    UnsupportedEncoding(String),
    /// The node takes no more data for now (write buffer over its memory limit): HTTP 429,
    /// gRPC `UNAVAILABLE`, with a retry delay.
    #[error("{reason}; retry in {retry_after_secs}s")]
    Throttled {
        reason: String,
        retry_after_secs: u32,
    },
    /// The node cannot make data durable for now (WAL full or failing, shutting down): HTTP
    /// 503, gRPC `UNAVAILABLE`, with a retry delay.
    #[error("{reason}; retry in {retry_after_secs}s")]
    Unavailable {
        reason: String,
        retry_after_secs: u32,
    },
    /// A fault on our side.
    #[error("internal error: {0}")]
    Internal(String),
    /// No valid API key: HTTP 401 (with `WWW-Authenticate: Bearer`), gRPC `UNAUTHENTICATED`.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid key that may not do this (scope, or another tenant named): HTTP 403, gRPC
    /// `PERMISSION_DENIED`.
    #[error("{0}")]
    PermissionDenied(String),
}

impl IngestError {
    /// The HTTP status of the OTLP/HTTP response.
    pub fn http_status(&self) -> StatusCode {
        match self {
            IngestError::InvalidTenant(_) | IngestError::Decode(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            IngestError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            IngestError::PermissionDenied(_) => StatusCode::FORBIDDEN,
        }
    }

    /// Seconds the client should wait before retrying, for retryable errors.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            IngestError::Throttled {
                retry_after_secs, ..
            }
            | IngestError::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The gRPC status code of the OTLP/gRPC response.
    pub fn grpc_code(&self) -> Code {
        match self {
            IngestError::InvalidTenant(_)
            | IngestError::Decode(_)
            | IngestError::UnsupportedMediaType(_)
            | IngestError::UnsupportedEncoding(_) => Code::InvalidArgument,
            IngestError::TooLarge { .. } => Code::ResourceExhausted,
            IngestError::Throttled { .. } | IngestError::Unavailable { .. } => Code::Unavailable,
            IngestError::Internal(_) => Code::Internal,
            IngestError::Unauthenticated(_) => Code::Unauthenticated,
            IngestError::PermissionDenied(_) => Code::PermissionDenied,
        }
    }

    /// A short, fixed label for `/metrics` (never a client-supplied value).
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::InvalidTenant(_) => "invalid_tenant",
            IngestError::Decode(_) => "decode",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
            IngestError::Throttled { .. } => "throttled",
            IngestError::Unavailable { .. } => "unavailable",
            IngestError::Internal(_) => "internal",
            IngestError::Unauthenticated(_) => "unauthenticated",
            IngestError::PermissionDenied(_) => "permission_denied",
        }
    }

    /// As a `google.rpc.Status`, with a `RetryInfo` detail for retryable errors.
    pub fn to_rpc_status(&self) -> strata_proto::status::Status {
        strata_proto::status::Status {
            code: self.grpc_code() as i32,
            message: self.to_string(),
            details: self
                .retry_after()
                .map(|s| strata_proto::status::Any::retry_info(i64::from(s)))
                .into_iter()
                .collect(),
        }
    }

    /// As a gRPC status (with `RetryInfo` in `grpc-status-details-bin` when retryable).
    pub fn to_status(&self) -> tonic::Status {
        if self.retry_after().is_some() {
            use prost::Message as _;
            let details = self.to_rpc_status().encode_to_vec();
            tonic::Status::with_details(self.grpc_code(), self.to_string(), details.into())
        } else {
            tonic::Status::new(self.grpc_code(), self.to_string())
        }
    }
}

impl From<crate::AuthError> for IngestError {
    fn from(e: crate::AuthError) -> Self {
        use crate::AuthError as A;
        match e {
            A::Unauthenticated(m) => IngestError::Unauthenticated(m),
            A::PermissionDenied(m) => IngestError::PermissionDenied(m),
            A::InvalidTenant(e) => IngestError::InvalidTenant(e),
            A::Unavailable(reason) => IngestError::Unavailable {
                reason,
                retry_after_secs: 1,
            },
        }
    }
}

impl From<strata_storage::Error> for IngestError {
    fn from(e: strata_storage::Error) -> Self {
        use strata_storage::Error as E;
        match e {
            E::BufferFull => IngestError::Throttled {
                reason: "the write buffer is over its memory limit".into(),
                retry_after_secs: 5,
            },
            e @ E::MemoryLimit { .. } => IngestError::Throttled {
                reason: e.to_string(),
                retry_after_secs: 2,
            },
            E::WalFull => IngestError::Unavailable {
                reason: "the write-ahead log is full".into(),
                retry_after_secs: 10,
            },
            E::ShuttingDown => IngestError::Unavailable {
                reason: "the node is shutting down".into(),
                retry_after_secs: 1,
            },
            E::Io(e) => IngestError::Unavailable {
                reason: format!("cannot write the write-ahead log: {e}"),
                retry_after_secs: 5,
            },
            other => IngestError::Internal(other.to_string()),
        }
    }
}
