//! # strata-query
//!
//! SQL over a tenant's signal tables with Apache DataFusion.
//!
//! ```text
//! SQL ─► QueryEngine::sql(tenant, sql)
//!          └─ session: catalog strata.public = { spans, logs, metrics } of that tenant only
//!               └─ SignalTable::scan ─► Storage::snapshot(tenant, signal, time range from filters)
//!                    ├─ DataSourceExec(Parquet files on the object store; row groups pruned
//!                    │    by statistics and bloom filters; metrics: only the rows of the
//!                    │    series a label filter matches, from the series index;
//!                    │    `resource_attributes` taken from each file's resources)
//!                    └─ DataSourceExec(write-buffer batches)         ── UnionExec
//! result ─► format: JSON rows, CSV, Arrow IPC stream
//! ```
//!
//! Depends on `strata-storage` only.

pub mod alerts;
pub mod audit;
pub mod catalog_table;
mod engine;
mod error;
pub mod format;
mod functions;
pub mod incidents;
pub mod limits;
pub mod lines;
mod metrics;
mod percentile;
pub mod resources;
pub mod series_index;
pub mod stats;
pub mod table;

pub use engine::{CATALOG, QueryConfig, QueryEngine, QueryOptions, QueryResult, SCHEMA, STORE_URL};
pub use error::{QueryError, Result};
pub use limits::QueryLimits;
pub use metrics::QueryMetrics;
