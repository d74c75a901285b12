//! # strata-bench
//!
//! The load generator and benchmark runner: deterministic OTLP data shaped like real
//! services, load over gRPC and HTTP, and the suite that publishes `docs/BENCHMARKS.md`.
//! Nothing here yet: the benchmark issue builds it. Depends on `strata-proto` only.
