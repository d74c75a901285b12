//! # strata-bench (library)
//!
//! The deterministic data generators (`data`), their seeded random source (`rng`) and the
//! data-set file format (`dataset_file`), shared by the `strata-bench` binary and by the
//! in-process pipeline benchmark of the ingest crate (`ingest/examples/pipeline.rs`).
//! Depends on `strata-proto` only.

pub mod data;
pub mod dataset_file;
pub mod rng;
