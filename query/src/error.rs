//! Errors of the query engine, split into the client's mistakes and ours.

use datafusion::error::DataFusionError;

/// Result type of this crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is invalid, refers to something that does not exist, is not allowed, or fails
    /// on the data (a bad cast, a division by zero): the client's to fix. HTTP 400.
    #[error("{0}")]
    User(String),
    /// The tenant runs as many queries as it may at once: retry later. HTTP 429.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// The query needs more memory or reads more bytes than its limits allow: it fails the
    /// same way when retried. HTTP 422.
    #[error("{0}")]
    LimitExceeded(String),
    /// The query ran longer than its timeout and was cancelled. HTTP 503.
    #[error("{0}")]
    Timeout(String),
    /// A fault on our side (storage, a bug). HTTP 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// A short, fixed label for `/metrics`.
    pub fn kind(&self) -> &'static str {
        match self {
            QueryError::User(_) => "user",
            QueryError::ResourcesExhausted(_) => "resources_exhausted",
            QueryError::LimitExceeded(_) => "limit_exceeded",
            QueryError::Timeout(_) => "timeout",
            QueryError::Internal(_) => "internal",
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        let message = error.to_string();
        match error.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_)
            | DataFusionError::Execution(_)
            | DataFusionError::ArrowError(..) => QueryError::User(message),
            DataFusionError::ResourcesExhausted(_) => QueryError::ResourcesExhausted(message),
            _ => QueryError::Internal(message),
        }
    }
}
