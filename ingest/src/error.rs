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
    /// A fault on our side; the client may retry.
    #[error("internal error: {0}")]
    Internal(String),
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
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            IngestError::Internal(_) => Code::Internal,
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
            IngestError::Internal(_) => "internal",
        }
    }

    /// As a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), self.to_string())
    }
}

impl From<strata_storage::Error> for IngestError {
    fn from(e: strata_storage::Error) -> Self {
        IngestError::Internal(e.to_string())
    }
}
