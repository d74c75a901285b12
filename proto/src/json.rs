//! OTLP/JSON: decoding of export requests and encoding of export responses.
//!
//! This module implements the "JSON Protobuf Encoding" of the OTLP
//! specification (OTLP/HTTP with `Content-Type: application/json`), which is
//! the proto3 JSON mapping of the OTLP messages with two OTLP-specific
//! deviations. The rules implemented, per field kind:
//!
//! * **Keys** are the lowerCamelCase JSON names (`resourceSpans`,
//!   `startTimeUnixNano`, ...). As every proto3 JSON parser does, the
//!   original snake_case proto field names (`resource_spans`, ...) are
//!   accepted too. The same field given twice (also once under each name) is
//!   an error.
//! * **Unknown keys are ignored** at every level, including inside `AnyValue`
//!   objects (OTLP requires this for forward compatibility). Ignored values
//!   are skipped without recursion, however deeply nested they are.
//! * **`null`** as the value of any field means "field not set", i.e. the
//!   default value (and `None` for `optional` fields and messages). A `null`
//!   element *inside* an array is an error (proto3 JSON has no null
//!   elements).
//! * **Trace and span ids** (`traceId`, `spanId`, `parentSpanId`, on spans,
//!   links, logs and exemplars) are hex strings, case-insensitive, and *not*
//!   base64 as the generic proto3 mapping would have them (OTLP deviation).
//!   An empty string is an empty id. Odd length or a non-hex character is an
//!   error. Lengths are not validated here: a 15-byte trace id is decoded
//!   as-is, so that the caller can reject it as a partial success.
//! * **64-bit integers** (timestamps, counts, `asInt`, `intValue`, bucket
//!   counts, ...) accept a JSON number or a string holding a decimal number;
//!   32-bit integers accept the same. A value with a fractional part, or out
//!   of the range of the field's type, is an error. Integral values written
//!   with an exponent or a zero fraction (`1e3`, `"5.0"`) are accepted, as
//!   the proto3 conformance suite requires.
//! * **Doubles** accept a JSON number, the strings `"NaN"`, `"Infinity"` and
//!   `"-Infinity"`, or a string holding a finite decimal number.
//! * **Enums** (`kind`, `status.code`, `severityNumber`,
//!   `aggregationTemporality`) accept the integer value (unknown integers are
//!   kept as-is, as proto3 requires for open enums) or the enum value's name
//!   (`"SPAN_KIND_SERVER"`); an unknown name is an error. The bit-field
//!   `flags` fields additionally accept the name of one value of their flags
//!   enum (`"DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK"`, ...).
//! * **`bytesValue`** is base64, standard alphabet, with or without padding;
//!   the URL-safe alphabet is accepted too.
//! * **Oneofs** (`AnyValue`'s value, `Metric`'s data, the value of number
//!   data points and exemplars): at most one member may be set, setting
//!   two is an error; a member set to `null` counts as not set. An `AnyValue`
//!   without any known member is the empty `AnyValue` (`value: None`).
//!
//! Decoding runs straight over the input bytes with `serde_json` (no
//! intermediate `serde_json::Value` tree): each JSON object is read into a
//! small private mirror struct and immediately converted into its `prost`
//! type, so the peak memory is the decoded request plus one object. The
//! default recursion limit of `serde_json` (128 nested arrays/objects) stays
//! in force, so nesting depth (and thus stack use) is bounded; decoding never
//! panics on any input.
//!
//! Responses are encoded as proto3 JSON: `{}` for a full success, else
//! `{"partialSuccess":{"rejectedSpans":"3","errorMessage":"..."}}` with the
//! int64 count as a string and zero/empty fields omitted.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{
    LogRecord, LogRecordFlags, ResourceLogs, ScopeLogs, SeverityNumber,
};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar,
    exponential_histogram_data_point, metric, number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, SpanFlags, Status, span, status,
};
use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` (body of `POST /v1/traces`).
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    decode(body)
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest` (body of `POST /v1/logs`).
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    decode(body)
}

/// Decodes an OTLP/JSON `ExportMetricsServiceRequest` (body of `POST /v1/metrics`).
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    decode(body)
}

/// Encodes an `ExportTraceServiceResponse` as proto3 JSON.
pub fn encode_traces_response(r: &ExportTraceServiceResponse) -> Vec<u8> {
    let partial = r.partial_success.as_ref();
    encode_response(
        "rejectedSpans",
        partial.map_or(0, |p| p.rejected_spans),
        partial.map_or("", |p| &p.error_message),
    )
}

/// Encodes an `ExportLogsServiceResponse` as proto3 JSON.
pub fn encode_logs_response(r: &ExportLogsServiceResponse) -> Vec<u8> {
    let partial = r.partial_success.as_ref();
    encode_response(
        "rejectedLogRecords",
        partial.map_or(0, |p| p.rejected_log_records),
        partial.map_or("", |p| &p.error_message),
    )
}

/// Encodes an `ExportMetricsServiceResponse` as proto3 JSON.
pub fn encode_metrics_response(r: &ExportMetricsServiceResponse) -> Vec<u8> {
    let partial = r.partial_success.as_ref();
    encode_response(
        "rejectedDataPoints",
        partial.map_or(0, |p| p.rejected_data_points),
        partial.map_or("", |p| &p.error_message),
    )
}

/// An OTLP/JSON body that could not be decoded: malformed JSON, or JSON that
/// breaks one of the OTLP/JSON rules (bad hex id, fractional integer, unknown
/// enum name, two members of a oneof, ...).
///
/// The message names what was expected and where (line and column in the
/// body). Callers answer it with HTTP 400.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON: {inner}")]
pub struct JsonError {
    inner: serde_json::Error,
}

impl JsonError {
    /// 1-based line of the body at which the error was detected.
    pub fn line(&self) -> usize {
        self.inner.line()
    }

    /// 1-based column (in bytes) at which the error was detected.
    pub fn column(&self) -> usize {
        self.inner.column()
    }

    /// Whether the body ended prematurely (truncated input).
    pub fn is_eof(&self) -> bool {
        self.inner.is_eof()
    }
}

impl From<serde_json::Error> for JsonError {
    fn from(inner: serde_json::Error) -> Self {
        Self { inner }
    }
}

/// RFC 8259 lets parsers ignore a leading byte order mark; `serde_json` does not.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

fn decode<T: FromJson>(body: &[u8]) -> Result<T, JsonError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    Ok(serde_json::from_slice::<Msg<T>>(body)?.0)
}

// ---------------------------------------------------------------------------
// Response encoding
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct ResponseJson<'a> {
    #[serde(rename = "partialSuccess", skip_serializing_if = "Option::is_none")]
    partial_success: Option<PartialSuccessJson<'a>>,
}

/// `Export*PartialSuccess` in proto3 JSON: the signal-specific
/// `rejected<Items>` int64 (as a string) and `errorMessage`, each omitted
/// when it has its default value.
struct PartialSuccessJson<'a> {
    rejected_field: &'static str,
    rejected: i64,
    error_message: &'a str,
}

impl Serialize for PartialSuccessJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.rejected != 0 {
            map.serialize_entry(self.rejected_field, &self.rejected.to_string())?;
        }
        if !self.error_message.is_empty() {
            map.serialize_entry("errorMessage", self.error_message)?;
        }
        map.end()
    }
}

fn encode_response(rejected_field: &'static str, rejected: i64, error_message: &str) -> Vec<u8> {
    // A partial_success with default values is equivalent to it being absent.
    let partial_success =
        (rejected != 0 || !error_message.is_empty()).then_some(PartialSuccessJson {
            rejected_field,
            rejected,
            error_message,
        });
    // Serializing plain strings and maps into a Vec cannot fail.
    serde_json::to_vec(&ResponseJson { partial_success }).unwrap_or_else(|_| b"{}".to_vec())
}

// ---------------------------------------------------------------------------
// Decoding machinery
// ---------------------------------------------------------------------------

/// A prost message that can be built from its OTLP/JSON mirror struct.
trait FromJson: Sized {
    /// Private serde mirror of the message (all fields optional).
    type Json: DeserializeOwned;

    /// Converts the mirror; fails only on rules serde cannot express (oneofs).
    fn from_json(json: Self::Json) -> Result<Self, String>;
}

/// Deserializes the prost message `T` from its OTLP/JSON object.
///
/// The conversion runs as soon as the object is read, so errors it reports
/// carry the position of the object in the body.
#[repr(transparent)]
struct Msg<T>(T);

impl<'de, T: FromJson> Deserialize<'de> for Msg<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = T::Json::deserialize(deserializer)?;
        T::from_json(json).map(Msg).map_err(de::Error::custom)
    }
}

/// Turns a decoded JSON field into the value stored in the prost message.
trait IntoProto {
    type Proto: Default;
    fn into_proto(self) -> Self::Proto;
}

/// The value of an optional (absent or `null` means default) field.
fn field<F: IntoProto>(value: Option<F>) -> F::Proto {
    value.map(IntoProto::into_proto).unwrap_or_default()
}

/// The value of an optional sub-message or `optional` scalar (`None` if absent).
fn optional<F: IntoProto>(value: Option<F>) -> Option<F::Proto> {
    value.map(IntoProto::into_proto)
}

/// At most one of the members of a oneof may be set.
fn oneof<T, const N: usize>(
    message: &str,
    oneof: &str,
    members: [Option<T>; N],
) -> Result<Option<T>, String> {
    let mut set = members.into_iter().flatten();
    let first = set.next();
    if set.next().is_some() {
        return Err(format!(
            "{message}: more than one member of the oneof `{oneof}` is set"
        ));
    }
    Ok(first)
}

impl IntoProto for String {
    type Proto = String;
    fn into_proto(self) -> String {
        self
    }
}

impl IntoProto for bool {
    type Proto = bool;
    fn into_proto(self) -> bool {
        self
    }
}

impl<T: FromJson + Default> IntoProto for Msg<T> {
    type Proto = T;
    fn into_proto(self) -> T {
        self.0
    }
}

impl<F: IntoProto> IntoProto for Vec<F> {
    type Proto = Vec<F::Proto>;
    fn into_proto(self) -> Self::Proto {
        self.into_iter().map(IntoProto::into_proto).collect()
    }
}

/// Shortens a (possibly huge) offending input for an error message.
fn snippet(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &s[..end])
}

// ----- integers -------------------------------------------------------------

/// An integer field (any width, signed or not): a JSON number or a string
/// holding a decimal number; must be integral and in range of `T`.
struct Int<T>(T);

impl<T: Default> IntoProto for Int<T> {
    type Proto = T;
    fn into_proto(self) -> T {
        self.0
    }
}

/// `v` as an integer if it has no fractional part (and fits an `i128`).
fn integral(v: f64) -> Option<i128> {
    // |v| < 2^127 keeps the cast exact; NaN and infinities fail `fract`.
    (v.fract() == 0.0 && v.abs() < 1.7e38).then_some(v as i128)
}

/// A decimal integer in a string; `"1e3"` and `"5.0"` are integral too.
fn parse_integer(s: &str) -> Option<i128> {
    s.parse::<i128>()
        .ok()
        .or_else(|| integral(s.parse::<f64>().ok()?))
}

fn int_in_range<T: TryFrom<i128>, E: de::Error>(v: i128) -> Result<T, E> {
    T::try_from(v).map_err(|_| {
        E::custom(format_args!(
            "integer {v} is out of range for {}",
            type_name::<T>()
        ))
    })
}

struct IntVisitor<T>(PhantomData<T>);

impl<T: TryFrom<i128>> Visitor<'_> for IntVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an integer ({}) as a JSON number or a decimal string",
            type_name::<T>()
        )
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        int_in_range(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        int_in_range(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        match integral(v) {
            Some(v) => int_in_range(v),
            None => Err(E::invalid_value(Unexpected::Float(v), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        match parse_integer(s) {
            Some(v) => int_in_range(v),
            None => Err(E::invalid_value(Unexpected::Str(&snippet(s)), &self)),
        }
    }
}

impl<'de, T: TryFrom<i128>> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(IntVisitor(PhantomData))
            .map(Int)
    }
}

// ----- doubles ----------------------------------------------------------------

/// A double field: a JSON number, `"NaN"`, `"Infinity"`, `"-Infinity"`, or a
/// string holding a finite decimal number.
struct Float(f64);

impl IntoProto for Float {
    type Proto = f64;
    fn into_proto(self) -> f64 {
        self.0
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            r#"a double as a JSON number, "NaN", "Infinity", "-Infinity" or a decimal string"#,
        )
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<f64, E> {
        match s {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            // Rust also parses "inf", "nan", ... and overflows to infinity:
            // only finite values are numbers here.
            _ => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(E::invalid_value(Unexpected::Str(&snippet(s)), &self)),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FloatVisitor).map(Float)
    }
}

// ----- enums and flags ----------------------------------------------------------

/// A protobuf enum whose value names are accepted in JSON.
trait ProtoEnum {
    /// Short type name, for error messages.
    const NAME: &'static str;
    /// The integer value of the enum value named `name`.
    fn value_of(name: &str) -> Option<i32>;
}

macro_rules! proto_enum {
    ($($ty:ident),* $(,)?) => {$(
        impl ProtoEnum for $ty {
            const NAME: &'static str = stringify!($ty);
            fn value_of(name: &str) -> Option<i32> {
                $ty::from_str_name(name).map(|v| v as i32)
            }
        }
    )*};
}

use span::SpanKind;
use status::StatusCode;

proto_enum!(
    SpanKind,
    StatusCode,
    SpanFlags,
    SeverityNumber,
    LogRecordFlags,
    AggregationTemporality,
    DataPointFlags,
);

/// An integer field of type `T` that also accepts the names of enum `E`:
/// enum fields (`T = i32`) and bit-field `flags` (`T = u32`).
struct Named<E, T>(T, PhantomData<E>);

/// An enum field (proto3 enums are open: unknown integers are kept).
type Enum<E> = Named<E, i32>;
/// A `flags` bit field, whose single-bit values are named by enum `E`.
type Flags<E> = Named<E, u32>;

impl<E, T: Default> IntoProto for Named<E, T> {
    type Proto = T;
    fn into_proto(self) -> T {
        self.0
    }
}

struct NamedVisitor<E, T>(PhantomData<(E, T)>);

impl<E: ProtoEnum, T: TryFrom<i128>> Visitor<'_> for NamedVisitor<E, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} value as an integer or a value name", E::NAME)
    }

    fn visit_i64<E2: de::Error>(self, v: i64) -> Result<T, E2> {
        IntVisitor(PhantomData).visit_i64(v)
    }

    fn visit_u64<E2: de::Error>(self, v: u64) -> Result<T, E2> {
        IntVisitor(PhantomData).visit_u64(v)
    }

    fn visit_f64<E2: de::Error>(self, v: f64) -> Result<T, E2> {
        IntVisitor(PhantomData).visit_f64(v)
    }

    fn visit_str<E2: de::Error>(self, s: &str) -> Result<T, E2> {
        if let Some(v) = E::value_of(s) {
            return int_in_range(v.into());
        }
        match parse_integer(s) {
            Some(v) => int_in_range(v),
            None => Err(E2::custom(format_args!(
                "unknown {} value name {}",
                E::NAME,
                snippet(s)
            ))),
        }
    }
}

impl<'de, E: ProtoEnum, T: TryFrom<i128>> Deserialize<'de> for Named<E, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NamedVisitor::<E, T>(PhantomData))
            .map(|v| Named(v, PhantomData))
    }
}

// ----- bytes ----------------------------------------------------------------------

/// A trace or span id: a hex string (either case), not validated for length.
struct HexId(Vec<u8>);

impl IntoProto for HexId {
    type Proto = Vec<u8>;
    fn into_proto(self) -> Vec<u8> {
        self.0
    }
}

struct HexVisitor;

impl Visitor<'_> for HexVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a hex-encoded trace or span id")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
        hex::decode(s).map_err(|e| E::custom(format_args!("invalid hex id {}: {e}", snippet(s))))
    }
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(HexVisitor).map(HexId)
    }
}

/// A `bytes` field: base64, standard or URL-safe alphabet, padded or not.
struct Base64(Vec<u8>);

impl IntoProto for Base64 {
    type Proto = Vec<u8>;
    fn into_proto(self) -> Vec<u8> {
        self.0
    }
}

const LENIENT_BASE64: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT_BASE64);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT_BASE64);

struct Base64Visitor;

impl Visitor<'_> for Base64Visitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("base64-encoded bytes")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
        BASE64_STANDARD
            .decode(s)
            .or_else(|_| BASE64_URL_SAFE.decode(s))
            .map_err(|e| E::custom(format_args!("invalid base64 {}: {e}", snippet(s))))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Base64Visitor).map(Base64)
    }
}

// ---------------------------------------------------------------------------
// Mirror structs: common, resource
// ---------------------------------------------------------------------------
//
// One private struct per OTLP message, every field `Option` (absent and
// `null` both mean default), JSON name in lowerCamelCase with the proto
// snake_case name as alias. Unknown keys are skipped by serde.

#[derive(Deserialize)]
#[serde(rename = "AnyValue", rename_all = "camelCase")]
struct AnyValueJson {
    #[serde(alias = "string_value")]
    string_value: Option<String>,
    #[serde(alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value")]
    int_value: Option<Int<i64>>,
    #[serde(alias = "double_value")]
    double_value: Option<Float>,
    #[serde(alias = "array_value")]
    array_value: Option<Msg<ArrayValue>>,
    #[serde(alias = "kvlist_value")]
    kvlist_value: Option<Msg<KeyValueList>>,
    #[serde(alias = "bytes_value")]
    bytes_value: Option<Base64>,
    #[serde(alias = "string_value_strindex")]
    string_value_strindex: Option<Int<i32>>,
}

impl FromJson for AnyValue {
    type Json = AnyValueJson;
    fn from_json(j: AnyValueJson) -> Result<Self, String> {
        use any_value::Value;
        let value = oneof(
            "AnyValue",
            "value",
            [
                j.string_value.map(Value::StringValue),
                j.bool_value.map(Value::BoolValue),
                j.int_value.map(|v| Value::IntValue(v.0)),
                j.double_value.map(|v| Value::DoubleValue(v.0)),
                j.array_value.map(|v| Value::ArrayValue(v.0)),
                j.kvlist_value.map(|v| Value::KvlistValue(v.0)),
                j.bytes_value.map(|v| Value::BytesValue(v.0)),
                j.string_value_strindex
                    .map(|v| Value::StringValueStrindex(v.0)),
            ],
        )?;
        Ok(AnyValue { value })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ArrayValue")]
struct ArrayValueJson {
    values: Option<Vec<Msg<AnyValue>>>,
}

impl FromJson for ArrayValue {
    type Json = ArrayValueJson;
    fn from_json(j: ArrayValueJson) -> Result<Self, String> {
        Ok(ArrayValue {
            values: field(j.values),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "KeyValueList")]
struct KeyValueListJson {
    values: Option<Vec<Msg<KeyValue>>>,
}

impl FromJson for KeyValueList {
    type Json = KeyValueListJson;
    fn from_json(j: KeyValueListJson) -> Result<Self, String> {
        Ok(KeyValueList {
            values: field(j.values),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "KeyValue", rename_all = "camelCase")]
struct KeyValueJson {
    key: Option<String>,
    value: Option<Msg<AnyValue>>,
    #[serde(alias = "key_strindex")]
    key_strindex: Option<Int<i32>>,
}

impl FromJson for KeyValue {
    type Json = KeyValueJson;
    fn from_json(j: KeyValueJson) -> Result<Self, String> {
        Ok(KeyValue {
            key: field(j.key),
            value: optional(j.value),
            key_strindex: field(j.key_strindex),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "InstrumentationScope", rename_all = "camelCase")]
struct InstrumentationScopeJson {
    name: Option<String>,
    version: Option<String>,
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
}

impl FromJson for InstrumentationScope {
    type Json = InstrumentationScopeJson;
    fn from_json(j: InstrumentationScopeJson) -> Result<Self, String> {
        Ok(InstrumentationScope {
            name: field(j.name),
            version: field(j.version),
            attributes: field(j.attributes),
            dropped_attributes_count: field(j.dropped_attributes_count),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "EntityRef", rename_all = "camelCase")]
struct EntityRefJson {
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
    r#type: Option<String>,
    #[serde(alias = "id_keys")]
    id_keys: Option<Vec<String>>,
    #[serde(alias = "description_keys")]
    description_keys: Option<Vec<String>>,
}

impl FromJson for EntityRef {
    type Json = EntityRefJson;
    fn from_json(j: EntityRefJson) -> Result<Self, String> {
        Ok(EntityRef {
            schema_url: field(j.schema_url),
            r#type: field(j.r#type),
            id_keys: field(j.id_keys),
            description_keys: field(j.description_keys),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Resource", rename_all = "camelCase")]
struct ResourceJson {
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    #[serde(alias = "entity_refs")]
    entity_refs: Option<Vec<Msg<EntityRef>>>,
}

impl FromJson for Resource {
    type Json = ResourceJson;
    fn from_json(j: ResourceJson) -> Result<Self, String> {
        Ok(Resource {
            attributes: field(j.attributes),
            dropped_attributes_count: field(j.dropped_attributes_count),
            entity_refs: field(j.entity_refs),
        })
    }
}

// ---------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename = "ExportTraceServiceRequest", rename_all = "camelCase")]
struct ExportTraceServiceRequestJson {
    #[serde(alias = "resource_spans")]
    resource_spans: Option<Vec<Msg<ResourceSpans>>>,
}

impl FromJson for ExportTraceServiceRequest {
    type Json = ExportTraceServiceRequestJson;
    fn from_json(j: ExportTraceServiceRequestJson) -> Result<Self, String> {
        Ok(ExportTraceServiceRequest {
            resource_spans: field(j.resource_spans),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ResourceSpans", rename_all = "camelCase")]
struct ResourceSpansJson {
    resource: Option<Msg<Resource>>,
    #[serde(alias = "scope_spans")]
    scope_spans: Option<Vec<Msg<ScopeSpans>>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl FromJson for ResourceSpans {
    type Json = ResourceSpansJson;
    fn from_json(j: ResourceSpansJson) -> Result<Self, String> {
        Ok(ResourceSpans {
            resource: optional(j.resource),
            scope_spans: field(j.scope_spans),
            schema_url: field(j.schema_url),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ScopeSpans", rename_all = "camelCase")]
struct ScopeSpansJson {
    scope: Option<Msg<InstrumentationScope>>,
    spans: Option<Vec<Msg<Span>>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl FromJson for ScopeSpans {
    type Json = ScopeSpansJson;
    fn from_json(j: ScopeSpansJson) -> Result<Self, String> {
        Ok(ScopeSpans {
            scope: optional(j.scope),
            spans: field(j.spans),
            schema_url: field(j.schema_url),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Span", rename_all = "camelCase")]
struct SpanJson {
    #[serde(alias = "trace_id")]
    trace_id: Option<HexId>,
    #[serde(alias = "span_id")]
    span_id: Option<HexId>,
    #[serde(alias = "trace_state")]
    trace_state: Option<String>,
    #[serde(alias = "parent_span_id")]
    parent_span_id: Option<HexId>,
    flags: Option<Flags<SpanFlags>>,
    name: Option<String>,
    kind: Option<Enum<SpanKind>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<Int<u64>>,
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    events: Option<Vec<Msg<span::Event>>>,
    #[serde(alias = "dropped_events_count")]
    dropped_events_count: Option<Int<u32>>,
    links: Option<Vec<Msg<span::Link>>>,
    #[serde(alias = "dropped_links_count")]
    dropped_links_count: Option<Int<u32>>,
    status: Option<Msg<Status>>,
}

impl FromJson for Span {
    type Json = SpanJson;
    fn from_json(j: SpanJson) -> Result<Self, String> {
        Ok(Span {
            trace_id: field(j.trace_id),
            span_id: field(j.span_id),
            trace_state: field(j.trace_state),
            parent_span_id: field(j.parent_span_id),
            flags: field(j.flags),
            name: field(j.name),
            kind: field(j.kind),
            start_time_unix_nano: field(j.start_time_unix_nano),
            end_time_unix_nano: field(j.end_time_unix_nano),
            attributes: field(j.attributes),
            dropped_attributes_count: field(j.dropped_attributes_count),
            events: field(j.events),
            dropped_events_count: field(j.dropped_events_count),
            links: field(j.links),
            dropped_links_count: field(j.dropped_links_count),
            status: optional(j.status),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Event", rename_all = "camelCase")]
struct EventJson {
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    name: Option<String>,
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
}

impl FromJson for span::Event {
    type Json = EventJson;
    fn from_json(j: EventJson) -> Result<Self, String> {
        Ok(span::Event {
            time_unix_nano: field(j.time_unix_nano),
            name: field(j.name),
            attributes: field(j.attributes),
            dropped_attributes_count: field(j.dropped_attributes_count),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Link", rename_all = "camelCase")]
struct LinkJson {
    #[serde(alias = "trace_id")]
    trace_id: Option<HexId>,
    #[serde(alias = "span_id")]
    span_id: Option<HexId>,
    #[serde(alias = "trace_state")]
    trace_state: Option<String>,
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    flags: Option<Flags<SpanFlags>>,
}

impl FromJson for span::Link {
    type Json = LinkJson;
    fn from_json(j: LinkJson) -> Result<Self, String> {
        Ok(span::Link {
            trace_id: field(j.trace_id),
            span_id: field(j.span_id),
            trace_state: field(j.trace_state),
            attributes: field(j.attributes),
            dropped_attributes_count: field(j.dropped_attributes_count),
            flags: field(j.flags),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Status")]
struct StatusJson {
    message: Option<String>,
    code: Option<Enum<StatusCode>>,
}

impl FromJson for Status {
    type Json = StatusJson;
    fn from_json(j: StatusJson) -> Result<Self, String> {
        Ok(Status {
            message: field(j.message),
            code: field(j.code),
        })
    }
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename = "ExportLogsServiceRequest", rename_all = "camelCase")]
struct ExportLogsServiceRequestJson {
    #[serde(alias = "resource_logs")]
    resource_logs: Option<Vec<Msg<ResourceLogs>>>,
}

impl FromJson for ExportLogsServiceRequest {
    type Json = ExportLogsServiceRequestJson;
    fn from_json(j: ExportLogsServiceRequestJson) -> Result<Self, String> {
        Ok(ExportLogsServiceRequest {
            resource_logs: field(j.resource_logs),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ResourceLogs", rename_all = "camelCase")]
struct ResourceLogsJson {
    resource: Option<Msg<Resource>>,
    #[serde(alias = "scope_logs")]
    scope_logs: Option<Vec<Msg<ScopeLogs>>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl FromJson for ResourceLogs {
    type Json = ResourceLogsJson;
    fn from_json(j: ResourceLogsJson) -> Result<Self, String> {
        Ok(ResourceLogs {
            resource: optional(j.resource),
            scope_logs: field(j.scope_logs),
            schema_url: field(j.schema_url),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ScopeLogs", rename_all = "camelCase")]
struct ScopeLogsJson {
    scope: Option<Msg<InstrumentationScope>>,
    #[serde(alias = "log_records")]
    log_records: Option<Vec<Msg<LogRecord>>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl FromJson for ScopeLogs {
    type Json = ScopeLogsJson;
    fn from_json(j: ScopeLogsJson) -> Result<Self, String> {
        Ok(ScopeLogs {
            scope: optional(j.scope),
            log_records: field(j.log_records),
            schema_url: field(j.schema_url),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "LogRecord", rename_all = "camelCase")]
struct LogRecordJson {
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "observed_time_unix_nano")]
    observed_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "severity_number")]
    severity_number: Option<Enum<SeverityNumber>>,
    #[serde(alias = "severity_text")]
    severity_text: Option<String>,
    body: Option<Msg<AnyValue>>,
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    flags: Option<Flags<LogRecordFlags>>,
    #[serde(alias = "trace_id")]
    trace_id: Option<HexId>,
    #[serde(alias = "span_id")]
    span_id: Option<HexId>,
    #[serde(alias = "event_name")]
    event_name: Option<String>,
}

impl FromJson for LogRecord {
    type Json = LogRecordJson;
    fn from_json(j: LogRecordJson) -> Result<Self, String> {
        Ok(LogRecord {
            time_unix_nano: field(j.time_unix_nano),
            observed_time_unix_nano: field(j.observed_time_unix_nano),
            severity_number: field(j.severity_number),
            severity_text: field(j.severity_text),
            body: optional(j.body),
            attributes: field(j.attributes),
            dropped_attributes_count: field(j.dropped_attributes_count),
            flags: field(j.flags),
            trace_id: field(j.trace_id),
            span_id: field(j.span_id),
            event_name: field(j.event_name),
        })
    }
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename = "ExportMetricsServiceRequest", rename_all = "camelCase")]
struct ExportMetricsServiceRequestJson {
    #[serde(alias = "resource_metrics")]
    resource_metrics: Option<Vec<Msg<ResourceMetrics>>>,
}

impl FromJson for ExportMetricsServiceRequest {
    type Json = ExportMetricsServiceRequestJson;
    fn from_json(j: ExportMetricsServiceRequestJson) -> Result<Self, String> {
        Ok(ExportMetricsServiceRequest {
            resource_metrics: field(j.resource_metrics),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ResourceMetrics", rename_all = "camelCase")]
struct ResourceMetricsJson {
    resource: Option<Msg<Resource>>,
    #[serde(alias = "scope_metrics")]
    scope_metrics: Option<Vec<Msg<ScopeMetrics>>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl FromJson for ResourceMetrics {
    type Json = ResourceMetricsJson;
    fn from_json(j: ResourceMetricsJson) -> Result<Self, String> {
        Ok(ResourceMetrics {
            resource: optional(j.resource),
            scope_metrics: field(j.scope_metrics),
            schema_url: field(j.schema_url),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ScopeMetrics", rename_all = "camelCase")]
struct ScopeMetricsJson {
    scope: Option<Msg<InstrumentationScope>>,
    metrics: Option<Vec<Msg<Metric>>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl FromJson for ScopeMetrics {
    type Json = ScopeMetricsJson;
    fn from_json(j: ScopeMetricsJson) -> Result<Self, String> {
        Ok(ScopeMetrics {
            scope: optional(j.scope),
            metrics: field(j.metrics),
            schema_url: field(j.schema_url),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Metric", rename_all = "camelCase")]
struct MetricJson {
    name: Option<String>,
    description: Option<String>,
    unit: Option<String>,
    metadata: Option<Vec<Msg<KeyValue>>>,
    gauge: Option<Msg<Gauge>>,
    sum: Option<Msg<Sum>>,
    histogram: Option<Msg<Histogram>>,
    #[serde(alias = "exponential_histogram")]
    exponential_histogram: Option<Msg<ExponentialHistogram>>,
    summary: Option<Msg<Summary>>,
}

impl FromJson for Metric {
    type Json = MetricJson;
    fn from_json(j: MetricJson) -> Result<Self, String> {
        use metric::Data;
        let data = oneof(
            "Metric",
            "data",
            [
                j.gauge.map(|v| Data::Gauge(v.0)),
                j.sum.map(|v| Data::Sum(v.0)),
                j.histogram.map(|v| Data::Histogram(v.0)),
                j.exponential_histogram
                    .map(|v| Data::ExponentialHistogram(v.0)),
                j.summary.map(|v| Data::Summary(v.0)),
            ],
        )?;
        Ok(Metric {
            name: field(j.name),
            description: field(j.description),
            unit: field(j.unit),
            metadata: field(j.metadata),
            data,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Gauge", rename_all = "camelCase")]
struct GaugeJson {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<Msg<NumberDataPoint>>>,
}

impl FromJson for Gauge {
    type Json = GaugeJson;
    fn from_json(j: GaugeJson) -> Result<Self, String> {
        Ok(Gauge {
            data_points: field(j.data_points),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Sum", rename_all = "camelCase")]
struct SumJson {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<Msg<NumberDataPoint>>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Option<Enum<AggregationTemporality>>,
    #[serde(alias = "is_monotonic")]
    is_monotonic: Option<bool>,
}

impl FromJson for Sum {
    type Json = SumJson;
    fn from_json(j: SumJson) -> Result<Self, String> {
        Ok(Sum {
            data_points: field(j.data_points),
            aggregation_temporality: field(j.aggregation_temporality),
            is_monotonic: field(j.is_monotonic),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Histogram", rename_all = "camelCase")]
struct HistogramJson {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<Msg<HistogramDataPoint>>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Option<Enum<AggregationTemporality>>,
}

impl FromJson for Histogram {
    type Json = HistogramJson;
    fn from_json(j: HistogramJson) -> Result<Self, String> {
        Ok(Histogram {
            data_points: field(j.data_points),
            aggregation_temporality: field(j.aggregation_temporality),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ExponentialHistogram", rename_all = "camelCase")]
struct ExponentialHistogramJson {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<Msg<ExponentialHistogramDataPoint>>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Option<Enum<AggregationTemporality>>,
}

impl FromJson for ExponentialHistogram {
    type Json = ExponentialHistogramJson;
    fn from_json(j: ExponentialHistogramJson) -> Result<Self, String> {
        Ok(ExponentialHistogram {
            data_points: field(j.data_points),
            aggregation_temporality: field(j.aggregation_temporality),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Summary", rename_all = "camelCase")]
struct SummaryJson {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<Msg<SummaryDataPoint>>>,
}

impl FromJson for Summary {
    type Json = SummaryJson;
    fn from_json(j: SummaryJson) -> Result<Self, String> {
        Ok(Summary {
            data_points: field(j.data_points),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "NumberDataPoint", rename_all = "camelCase")]
struct NumberDataPointJson {
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "as_double")]
    as_double: Option<Float>,
    #[serde(alias = "as_int")]
    as_int: Option<Int<i64>>,
    exemplars: Option<Vec<Msg<Exemplar>>>,
    flags: Option<Flags<DataPointFlags>>,
}

impl FromJson for NumberDataPoint {
    type Json = NumberDataPointJson;
    fn from_json(j: NumberDataPointJson) -> Result<Self, String> {
        use number_data_point::Value;
        let value = oneof(
            "NumberDataPoint",
            "value",
            [
                j.as_double.map(|v| Value::AsDouble(v.0)),
                j.as_int.map(|v| Value::AsInt(v.0)),
            ],
        )?;
        Ok(NumberDataPoint {
            attributes: field(j.attributes),
            start_time_unix_nano: field(j.start_time_unix_nano),
            time_unix_nano: field(j.time_unix_nano),
            exemplars: field(j.exemplars),
            flags: field(j.flags),
            value,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "HistogramDataPoint", rename_all = "camelCase")]
struct HistogramDataPointJson {
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    count: Option<Int<u64>>,
    sum: Option<Float>,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Option<Vec<Int<u64>>>,
    #[serde(alias = "explicit_bounds")]
    explicit_bounds: Option<Vec<Float>>,
    exemplars: Option<Vec<Msg<Exemplar>>>,
    flags: Option<Flags<DataPointFlags>>,
    min: Option<Float>,
    max: Option<Float>,
}

impl FromJson for HistogramDataPoint {
    type Json = HistogramDataPointJson;
    fn from_json(j: HistogramDataPointJson) -> Result<Self, String> {
        Ok(HistogramDataPoint {
            attributes: field(j.attributes),
            start_time_unix_nano: field(j.start_time_unix_nano),
            time_unix_nano: field(j.time_unix_nano),
            count: field(j.count),
            sum: optional(j.sum),
            bucket_counts: field(j.bucket_counts),
            explicit_bounds: field(j.explicit_bounds),
            exemplars: field(j.exemplars),
            flags: field(j.flags),
            min: optional(j.min),
            max: optional(j.max),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ExponentialHistogramDataPoint", rename_all = "camelCase")]
struct ExponentialHistogramDataPointJson {
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    count: Option<Int<u64>>,
    sum: Option<Float>,
    scale: Option<Int<i32>>,
    #[serde(alias = "zero_count")]
    zero_count: Option<Int<u64>>,
    positive: Option<Msg<exponential_histogram_data_point::Buckets>>,
    negative: Option<Msg<exponential_histogram_data_point::Buckets>>,
    flags: Option<Flags<DataPointFlags>>,
    exemplars: Option<Vec<Msg<Exemplar>>>,
    min: Option<Float>,
    max: Option<Float>,
    #[serde(alias = "zero_threshold")]
    zero_threshold: Option<Float>,
}

impl FromJson for ExponentialHistogramDataPoint {
    type Json = ExponentialHistogramDataPointJson;
    fn from_json(j: ExponentialHistogramDataPointJson) -> Result<Self, String> {
        Ok(ExponentialHistogramDataPoint {
            attributes: field(j.attributes),
            start_time_unix_nano: field(j.start_time_unix_nano),
            time_unix_nano: field(j.time_unix_nano),
            count: field(j.count),
            sum: optional(j.sum),
            scale: field(j.scale),
            zero_count: field(j.zero_count),
            positive: optional(j.positive),
            negative: optional(j.negative),
            flags: field(j.flags),
            exemplars: field(j.exemplars),
            min: optional(j.min),
            max: optional(j.max),
            zero_threshold: field(j.zero_threshold),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Buckets", rename_all = "camelCase")]
struct BucketsJson {
    offset: Option<Int<i32>>,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Option<Vec<Int<u64>>>,
}

impl FromJson for exponential_histogram_data_point::Buckets {
    type Json = BucketsJson;
    fn from_json(j: BucketsJson) -> Result<Self, String> {
        Ok(exponential_histogram_data_point::Buckets {
            offset: field(j.offset),
            bucket_counts: field(j.bucket_counts),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "SummaryDataPoint", rename_all = "camelCase")]
struct SummaryDataPointJson {
    attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    count: Option<Int<u64>>,
    sum: Option<Float>,
    #[serde(alias = "quantile_values")]
    quantile_values: Option<Vec<Msg<summary_data_point::ValueAtQuantile>>>,
    flags: Option<Flags<DataPointFlags>>,
}

impl FromJson for SummaryDataPoint {
    type Json = SummaryDataPointJson;
    fn from_json(j: SummaryDataPointJson) -> Result<Self, String> {
        Ok(SummaryDataPoint {
            attributes: field(j.attributes),
            start_time_unix_nano: field(j.start_time_unix_nano),
            time_unix_nano: field(j.time_unix_nano),
            count: field(j.count),
            sum: field(j.sum),
            quantile_values: field(j.quantile_values),
            flags: field(j.flags),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "ValueAtQuantile")]
struct ValueAtQuantileJson {
    quantile: Option<Float>,
    value: Option<Float>,
}

impl FromJson for summary_data_point::ValueAtQuantile {
    type Json = ValueAtQuantileJson;
    fn from_json(j: ValueAtQuantileJson) -> Result<Self, String> {
        Ok(summary_data_point::ValueAtQuantile {
            quantile: field(j.quantile),
            value: field(j.value),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename = "Exemplar", rename_all = "camelCase")]
struct ExemplarJson {
    #[serde(alias = "filtered_attributes")]
    filtered_attributes: Option<Vec<Msg<KeyValue>>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "as_double")]
    as_double: Option<Float>,
    #[serde(alias = "as_int")]
    as_int: Option<Int<i64>>,
    #[serde(alias = "span_id")]
    span_id: Option<HexId>,
    #[serde(alias = "trace_id")]
    trace_id: Option<HexId>,
}

impl FromJson for Exemplar {
    type Json = ExemplarJson;
    fn from_json(j: ExemplarJson) -> Result<Self, String> {
        use exemplar::Value;
        let value = oneof(
            "Exemplar",
            "value",
            [
                j.as_double.map(|v| Value::AsDouble(v.0)),
                j.as_int.map(|v| Value::AsInt(v.0)),
            ],
        )?;
        Ok(Exemplar {
            filtered_attributes: field(j.filtered_attributes),
            time_unix_nano: field(j.time_unix_nano),
            span_id: field(j.span_id),
            trace_id: field(j.trace_id),
            value,
        })
    }
}
