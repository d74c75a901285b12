//! # strata-storage
//!
//! Owns everything Strata keeps: the Arrow schemas of the signal tables, the in-memory write
//! buffer, the sorted and compressed Parquet files on object storage, and the catalog that
//! lists those files (SQLite by default, PostgreSQL by URL).
//!
//! ```text
//! ingest ──► Storage::write(tenant, signal, batch)
//!              │  (write buffer: queryable at once)
//!              ▼
//!            flusher ──► sort ─► Parquet (zstd) ─► object store: tenant=/signal=/date=/hour=/{id}.parquet
//!                                                   └─► catalog row per file
//! query  ◄── Storage::snapshot(tenant, signal, time range) = catalog files ∪ buffered batches
//! ```
//!
//! A snapshot sees every acknowledged row exactly once: a flushed batch leaves the buffer in
//! the same critical section in which its files join the table's file list.
//!
//! Depends on `strata-proto` only (per `docs/ARCHITECTURE.md`); nothing here knows about
//! HTTP, gRPC or SQL.

pub mod audit;
pub mod cache;
pub mod catalog;
pub mod docs;
mod error;
mod gather;
pub mod keys;
pub mod lines;
pub mod maintenance;
pub mod memory;
mod merge;
pub mod objects;
pub mod parquet_file;
pub mod resources;
pub mod schema;
mod store;
mod tenant;
pub mod wal;

pub use audit::{Actor, AuditEvent, AuditLog, Outcome};
pub use catalog::{Catalog, FileMeta, SqlCatalog, Watermark};
pub use docs::{AlertHistoryRow, Doc, DocStore, MemoryDocStore};
pub use error::{Error, Result};
pub use keys::{ApiKey, KeyCatalog, KeyStore, Scope, Scopes};
pub use store::{Snapshot, Storage, StorageConfig, TimeRange};
pub use tenant::{DEFAULT_TENANT, InvalidTenant, MAX_TENANT_LEN, PerTenant, TenantId};

use std::fmt;
use std::str::FromStr;

/// The three OpenTelemetry signals Strata stores, one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Spans,
    Logs,
    Metrics,
}

impl Signal {
    /// Every signal, in table order.
    pub const ALL: [Signal; 3] = [Signal::Spans, Signal::Logs, Signal::Metrics];

    /// The table name (and the `signal=` path segment).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "spans" => Ok(Signal::Spans),
            "logs" => Ok(Signal::Logs),
            "metrics" => Ok(Signal::Metrics),
            other => Err(format!("unknown signal {other:?}")),
        }
    }
}
