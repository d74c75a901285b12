//! The three OTLP export services, as one trait so that each receiver is written once.

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use strata_proto::json::{self, JsonError};
use strata_storage::Signal;
use strata_storage::wal::RequestDecoder;

use crate::convert::{self, Converted, Rejected};

/// One OTLP export service: its messages, paths, conversion and response.
pub trait OtlpSignal: Send + Sync + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: prost::Message + Default + Send + 'static;

    /// The table its rows go to.
    const SIGNAL: Signal;
    /// What its items are called in `partial_success` messages.
    const ITEMS: &'static str;
    /// The gRPC method path.
    const GRPC_PATH: &'static str;
    /// The OTLP/HTTP path.
    const HTTP_PATH: &'static str;

    fn convert(request: &Self::Request, received_ns: i64) -> Converted;

    /// Converts a protobuf-encoded request straight from its bytes (`convert/wire.rs`); `None`
    /// when the reader leaves it to prost. What it returns is what `convert_protobuf`'s
    /// decoding would give.
    fn read_protobuf(body: &[u8], received_ns: i64) -> Option<Converted>;

    /// Decodes a protobuf-encoded request and converts it: the rows of
    /// `convert(&Request::decode(body)?)`, read straight from the bytes where the reader can.
    fn convert_protobuf(body: &[u8], received_ns: i64) -> Result<Converted, prost::DecodeError> {
        match Self::read_protobuf(body, received_ns) {
            Some(converted) => Ok(converted),
            None => {
                let request = <Self::Request as prost::Message>::decode(body)?;
                Ok(Self::convert(&request, received_ns))
            }
        }
    }
    fn response(rejected: &Rejected) -> Self::Response;
    fn decode_json(body: &[u8]) -> Result<Self::Request, JsonError>;
    fn encode_json(response: &Self::Response) -> Vec<u8>;
}

/// The conversion the WAL replays its request records with (see [`strata_storage::wal`]):
/// [`OtlpSignal::convert_protobuf`] of the record's signal, keeping the rows it accepted —
/// what [`crate::Ingestor::export`] wrote from the same bytes and receive time.
pub fn wal_decoder() -> RequestDecoder {
    fn rows<S: OtlpSignal>(body: &[u8], received_ns: i64) -> Result<Option<RecordBatch>, String> {
        S::convert_protobuf(body, received_ns)
            .map(|converted| converted.batch)
            .map_err(|e| format!("invalid protobuf message: {e}"))
    }
    RequestDecoder::new(|signal, body, received_ns| match signal {
        Signal::Spans => rows::<Traces>(body, received_ns),
        Signal::Logs => rows::<Logs>(body, received_ns),
        Signal::Metrics => rows::<Metrics>(body, received_ns),
    })
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct Traces;
/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct Logs;
/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
pub struct Metrics;

impl OtlpSignal for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const SIGNAL: Signal = Signal::Spans;
    const ITEMS: &'static str = "spans";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const HTTP_PATH: &'static str = "/v1/traces";

    fn convert(request: &Self::Request, _received_ns: i64) -> Converted {
        convert::spans_to_batch(request)
    }
    fn read_protobuf(body: &[u8], _received_ns: i64) -> Option<Converted> {
        convert::spans_from_protobuf(body).ok()
    }
    fn response(rejected: &Rejected) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected.count > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected.count as i64,
                error_message: rejected.message(Self::ITEMS),
            }),
        }
    }
    fn decode_json(body: &[u8]) -> Result<Self::Request, JsonError> {
        json::decode_traces(body)
    }
    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_traces_response(response)
    }
}

impl OtlpSignal for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const SIGNAL: Signal = Signal::Logs;
    const ITEMS: &'static str = "log records";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const HTTP_PATH: &'static str = "/v1/logs";

    fn convert(request: &Self::Request, received_ns: i64) -> Converted {
        convert::logs_to_batch(request, received_ns)
    }
    fn read_protobuf(body: &[u8], received_ns: i64) -> Option<Converted> {
        convert::logs_from_protobuf(body, received_ns).ok()
    }
    fn response(rejected: &Rejected) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected.count > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected.count as i64,
                error_message: rejected.message(Self::ITEMS),
            }),
        }
    }
    fn decode_json(body: &[u8]) -> Result<Self::Request, JsonError> {
        json::decode_logs(body)
    }
    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_logs_response(response)
    }
}

impl OtlpSignal for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const SIGNAL: Signal = Signal::Metrics;
    const ITEMS: &'static str = "data points";
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const HTTP_PATH: &'static str = "/v1/metrics";

    fn convert(request: &Self::Request, _received_ns: i64) -> Converted {
        convert::metrics_to_batch(request)
    }
    /// Gauges and sums; other metric types are left to prost.
    fn read_protobuf(body: &[u8], _received_ns: i64) -> Option<Converted> {
        convert::metrics_from_protobuf(body).ok()
    }
    fn response(rejected: &Rejected) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected.count > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected.count as i64,
                error_message: rejected.message(Self::ITEMS),
            }),
        }
    }
    fn decode_json(body: &[u8]) -> Result<Self::Request, JsonError> {
        json::decode_metrics(body)
    }
    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_metrics_response(response)
    }
}
