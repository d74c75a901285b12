//! `google.rpc.Status`, the error body of OTLP/HTTP and of gRPC.
//!
//! OTLP/HTTP answers a failed request with a `Status` message, encoded as
//! protobuf or as proto3 JSON following the request's content type. The
//! message is hand-written here (rather than pulling in a crate of Google
//! API types) since it is two small messages.

use base64::Engine as _;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// gRPC status code `OK`: not an error.
pub const OK: i32 = 0;
/// gRPC status code `NOT_FOUND`.
pub const NOT_FOUND: i32 = 5;
/// gRPC status code `INVALID_ARGUMENT`: the request is malformed (HTTP 400); do not retry.
pub const INVALID_ARGUMENT: i32 = 3;
/// gRPC status code `PERMISSION_DENIED` (HTTP 403).
pub const PERMISSION_DENIED: i32 = 7;
/// gRPC status code `RESOURCE_EXHAUSTED`: throttled (HTTP 429); retryable.
pub const RESOURCE_EXHAUSTED: i32 = 8;
/// gRPC status code `INTERNAL` (HTTP 500).
pub const INTERNAL: i32 = 13;
/// gRPC status code `UNAVAILABLE`: temporarily unable to serve (HTTP 503); retryable.
pub const UNAVAILABLE: i32 = 14;
/// gRPC status code `UNAUTHENTICATED` (HTTP 401).
pub const UNAUTHENTICATED: i32 = 16;

/// `google.rpc.Status`: a status code, a developer-facing message and
/// optional typed details.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Status {
    /// The gRPC status code (one of the constants of this module).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// A developer-facing error message, in English.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Messages that carry the error details.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`: a serialized message with the URL of its type.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Any {
    /// Identifies the type of `value`, e.g. `type.googleapis.com/google.rpc.RetryInfo`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The protobuf encoding of the message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// Type URL of `google.rpc.RetryInfo`.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `google.rpc.RetryInfo`: how long the client should wait before retrying.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Any {
    /// A `RetryInfo` detail asking the client to wait `seconds` before retrying (OTLP's
    /// throttling signal).
    pub fn retry_info(seconds: i64) -> Self {
        use prost::Message as _;
        Self {
            type_url: RETRY_INFO_TYPE.into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds, nanos: 0 }),
            }
            .encode_to_vec(),
        }
    }
}

impl Status {
    /// A status without details.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The proto3 JSON encoding, e.g. `{"code":3,"message":"bad trace id"}`.
    ///
    /// Fields with default values (code 0, empty message, no details) are
    /// omitted. Details are written as `{"@type":<type_url>,"value":<base64>}`
    /// since their message types are not known here.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing strings, integers and maps into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.code != 0 {
            map.serialize_entry("code", &self.code)?;
        }
        if !self.message.is_empty() {
            map.serialize_entry("message", &self.message)?;
        }
        if !self.details.is_empty() {
            map.serialize_entry("details", &self.details)?;
        }
        map.end()
    }
}

impl Serialize for Any {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use prost::Message as _;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("@type", &self.type_url)?;
        // The one well-known detail Strata sends gets its proto3 JSON form.
        if self.type_url == RETRY_INFO_TYPE
            && let Ok(info) = RetryInfo::decode(self.value.as_slice())
        {
            let delay = info.retry_delay.unwrap_or_default();
            map.serialize_entry(
                "retryDelay",
                &format!("{}s", delay.seconds as f64 + f64::from(delay.nanos) / 1e9),
            )?;
            return map.end();
        }
        map.serialize_entry(
            "value",
            &base64::engine::general_purpose::STANDARD.encode(&self.value),
        )?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn json_omits_defaults_and_empty_details() {
        let status = Status::new(INVALID_ARGUMENT, "bad \"trace\" id");
        assert_eq!(
            String::from_utf8(status.to_json()).unwrap(),
            r#"{"code":3,"message":"bad \"trace\" id"}"#
        );
        assert_eq!(Status::default().to_json(), b"{}");
        assert_eq!(Status::new(UNAVAILABLE, "").to_json(), br#"{"code":14}"#);
    }

    #[test]
    fn json_writes_retry_info_and_other_details() {
        let status = Status {
            code: RESOURCE_EXHAUSTED,
            message: "slow down".into(),
            details: vec![
                Any {
                    type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                    value: vec![0x0a, 0x02, 0x08, 0x05],
                },
                Any {
                    type_url: "type.googleapis.com/example.Other".into(),
                    value: vec![1, 2],
                },
            ],
        };
        assert_eq!(status.details[0], Any::retry_info(5));
        let json: serde_json::Value = serde_json::from_slice(&status.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "code": 8,
                "message": "slow down",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": "5s",
                }, {
                    "@type": "type.googleapis.com/example.Other",
                    "value": "AQI=",
                }],
            })
        );
    }

    #[test]
    fn protobuf_encoding_matches_google_rpc_status() {
        let status = Status {
            code: INVALID_ARGUMENT,
            message: "x".into(),
            details: vec![Any {
                type_url: "t".into(),
                value: vec![1],
            }],
        };
        let bytes = status.encode_to_vec();
        // field 1 varint 3; field 2 "x"; field 3 { field 1 "t"; field 2 [1] }
        assert_eq!(
            bytes,
            [
                0x08, 0x03, 0x12, 0x01, b'x', 0x1a, 0x06, 0x0a, 0x01, b't', 0x12, 0x01, 0x01
            ]
        );
        assert_eq!(Status::decode(bytes.as_slice()).unwrap(), status);
    }

    #[test]
    fn code_constants_match_grpc() {
        assert_eq!(
            [
                OK,
                NOT_FOUND,
                INVALID_ARGUMENT,
                PERMISSION_DENIED,
                RESOURCE_EXHAUSTED,
                INTERNAL,
                UNAVAILABLE,
                UNAUTHENTICATED
            ],
            [0, 5, 3, 7, 8, 13, 14, 16]
        );
    }
}
