//! # strata-tests
//!
//! End-to-end tests against the real `strata` binary and real clients. The suite lives in
//! `tests/e2e/` (Python: the OpenTelemetry SDK and exporters, grpcio, requests, pyarrow,
//! moto for S3, Debian's PostgreSQL) and runs through `scripts/test.sh`; see
//! `tests/e2e/README.md`. This crate holds no code of its own yet: it marks the folder's place
//! in the workspace and will carry Rust clients' tests when a Rust client needs testing.
