//! Errors of the storage layer.

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong below the ingest and query layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("catalog: {0}")]
    Catalog(#[from] sqlx::Error),
    #[error("catalog migration: {0}")]
    Migration(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("batch does not match the {signal} schema: {reason}")]
    Schema {
        signal: crate::Signal,
        reason: String,
    },
    #[error("the write buffer is full; retry later")]
    BufferFull,
    #[error(
        "the node is over its memory limit ({resident_mib} MiB resident, refusing from {soft_limit_mib} of {limit_mib} MiB); retry later"
    )]
    MemoryLimit {
        resident_mib: usize,
        soft_limit_mib: usize,
        limit_mib: usize,
    },
    #[error("the write-ahead log is full; retry later")]
    WalFull,
    #[error("catalog conflict: {0}")]
    Conflict(String),
    #[error("storage is shutting down")]
    ShuttingDown,
    #[error("{0} buffered flushes could not be written")]
    FlushIncomplete(usize),
}
