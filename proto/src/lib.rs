//! Wire formats Strata speaks: OTLP protobuf (re-exported from
//! `opentelemetry-proto`), OTLP/JSON decoding (and JSON export responses),
//! and `google.rpc.Status`, the error body of OTLP/HTTP.

pub use opentelemetry_proto;

pub mod json;
pub mod status;
