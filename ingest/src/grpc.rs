//! OTLP/gRPC receiver: `TraceService`, `LogsService` and `MetricsService` `Export`.
//!
//! The services are tonic unary handlers with a codec of our own, so that an undecodable
//! message is `INVALID_ARGUMENT` (tonic's stock codec answers `INTERNAL`). Messages over the
//! size limit, compressed or not, are `RESOURCE_EXHAUSTED`; gzip is accepted and inflated by
//! tonic up to the same limit.
//!
//! Admission comes first: while the write buffer is at its memory limit a call is refused
//! (`UNAVAILABLE` with `RetryInfo`) before its message is read, and a message is decoded only
//! once it holds its share of the in-flight budget (`--max-inflight-bytes`): the codec hands
//! over the undecoded bytes, the handler decodes them.
//! With auth on, `authorization` metadata is checked before anything else
//! (`UNAUTHENTICATED`, `PERMISSION_DENIED`; see `auth.rs`).

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http::HeaderValue;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder};
use tonic::server::{Grpc, UnaryService};
use tonic::{Code, Request, Response, Status};

use strata_storage::TenantId;

use crate::auth::AUTHORIZATION_HEADER;
use crate::convert::Converted;
use crate::{IngestError, Ingestor, Logs, Metrics, OtlpSignal, TENANT_HEADER, Traces, Transport};

/// A codec that hands the handler the message undecoded (decoded there, as protobuf, with
/// errors as `INVALID_ARGUMENT`) and encodes responses with prost.
struct OtlpCodec<S>(PhantomData<S>);

struct OtlpDecoder<S>(PhantomData<S>);

/// A request message (decompressed), not decoded yet.
struct Undecoded<S> {
    bytes: Bytes,
    _signal: PhantomData<S>,
}

impl<S: OtlpSignal> Undecoded<S> {
    fn convert(&self, received_ns: i64) -> Result<Converted, IngestError> {
        S::convert_protobuf(&self.bytes, received_ns)
            .map_err(|e| IngestError::Decode(format!("invalid protobuf message: {e}")))
    }
}

impl<S: OtlpSignal> Codec for OtlpCodec<S> {
    type Encode = S::Response;
    type Decode = Undecoded<S>;
    type Encoder = tonic_prost::ProstEncoder<S::Response>;
    type Decoder = OtlpDecoder<S>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder(PhantomData)
    }
}

impl<S: OtlpSignal> Decoder for OtlpDecoder<S> {
    type Item = Undecoded<S>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        // Splits the message off tonic's buffer; no copy.
        let bytes = buf.copy_to_bytes(buf.remaining());
        Ok(Some(Undecoded {
            bytes,
            _signal: PhantomData,
        }))
    }
}

/// The unary handler of one export service.
struct ExportHandler<S> {
    ingestor: Arc<Ingestor>,
    /// Resolved (and authorised) before the message was decoded.
    tenant: TenantId,
    /// Set once tonic has decoded a message and called the handler.
    called: Arc<AtomicBool>,
    _signal: PhantomData<S>,
}

impl<S: OtlpSignal> UnaryService<Undecoded<S>> for ExportHandler<S> {
    type Response = S::Response;
    type Future = BoxFuture<'static, Result<Response<S::Response>, Status>>;

    fn call(&mut self, request: Request<Undecoded<S>>) -> Self::Future {
        let ingestor = self.ingestor.clone();
        let tenant = self.tenant.clone();
        self.called.store(true, Ordering::Relaxed);
        Box::pin(async move {
            let signal = S::SIGNAL.as_str();
            let transport = Transport::Grpc.as_str();
            let result = async {
                let undecoded = request.into_inner();
                let len = undecoded.bytes.len();
                // Held until the rows are written (or refused): bounds what is decoded at once.
                let _inflight = ingestor.reserve_inflight(len).await?;
                let protobuf = Some(undecoded.bytes.clone());
                ingestor
                    .export::<S>(
                        &tenant,
                        move |received| undecoded.convert(received),
                        len,
                        protobuf,
                    )
                    .await
            }
            .await
            .map(Response::new);
            match result {
                Ok(response) => {
                    ingestor.metrics().request(signal, transport, "ok");
                    Ok(response)
                }
                Err(e) => {
                    ingestor.metrics().request(signal, transport, e.reason());
                    if matches!(
                        e,
                        IngestError::Throttled { .. } | IngestError::Unavailable { .. }
                    ) {
                        ingestor.log_refusal(&e, signal, transport);
                    }
                    Err(e.to_status())
                }
            }
        })
    }
}

/// The gRPC service for all three export methods, as a tower service to mount in tonic's
/// router (see [`routes`]).
#[derive(Clone)]
pub struct OtlpGrpcService {
    ingestor: Arc<Ingestor>,
}

impl OtlpGrpcService {
    pub fn new(ingestor: Arc<Ingestor>) -> Self {
        Self { ingestor }
    }

    async fn unary<S: OtlpSignal, B>(
        ingestor: Arc<Ingestor>,
        req: http::Request<B>,
    ) -> http::Response<tonic::body::Body>
    where
        B: http_body::Body + Send + 'static,
        B::Error: Into<tonic::codegen::StdError> + Send,
    {
        let limit = ingestor.config().max_body_bytes;
        let mut grpc = Grpc::new(OtlpCodec::<S>(PhantomData))
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit);
        // Authenticated before the message is read and decoded.
        let authorization = req.headers().get(AUTHORIZATION_HEADER).cloned();
        let tenant_header = req.headers().get(TENANT_HEADER).cloned();
        let tenant = match (ingestor.auth())
            .ingest_tenant(
                authorization.as_ref().map(HeaderValue::as_bytes),
                tenant_header.as_ref().map(HeaderValue::as_bytes),
            )
            .await
        {
            Ok(tenant) => tenant,
            Err(e) => {
                let (signal, transport) = (S::SIGNAL.as_str(), Transport::Grpc.as_str());
                ingestor.metrics().request(signal, transport, e.reason());
                return e.to_status().into_http();
            }
        };
        if let Err(e) = ingestor.admit() {
            // Authenticated, then refused before the message is read.
            let (signal, transport) = (S::SIGNAL.as_str(), Transport::Grpc.as_str());
            ingestor.metrics().request(signal, transport, e.reason());
            ingestor.log_refusal(&e, signal, transport);
            return e.to_status().into_http();
        }
        let called = Arc::new(AtomicBool::new(false));
        let handler = ExportHandler::<S> {
            ingestor: ingestor.clone(),
            tenant,
            called: called.clone(),
            _signal: PhantomData,
        };
        let response = normalise_status(grpc.unary(handler, req).await);
        if !called.load(Ordering::Relaxed) {
            // Tonic refused the message before the handler ran (size, compression, decoding).
            let reason = match grpc_status(&response) {
                Some(Code::ResourceExhausted) => "too_large",
                _ => "decode",
            };
            ingestor
                .metrics()
                .request(S::SIGNAL.as_str(), Transport::Grpc.as_str(), reason);
        }
        response
    }
}

/// Rewrites the codes tonic's framing layer answers with into the ones OTLP prescribes: a
/// message over the size limit is `RESOURCE_EXHAUSTED` (tonic says `OUT_OF_RANGE`), and a body
/// that does not inflate is the client's fault, `INVALID_ARGUMENT` (tonic says `INTERNAL`).
fn normalise_status(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let Some(code) = grpc_status(&response) else {
        return response;
    };
    let headers = response.headers_mut();
    // grpc-message is percent-encoded; the prefixes we look for have only spaces to decode.
    let message = headers
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).replace("%20", " "))
        .unwrap_or_default();
    let rewritten = match code {
        Code::OutOfRange if message.contains("message length too large") => {
            Some(Code::ResourceExhausted)
        }
        Code::Internal
            if message.starts_with("Error decompressing")
                || message.starts_with("protocol error") =>
        {
            Some(Code::InvalidArgument)
        }
        _ => None,
    };
    if let Some(code) = rewritten {
        headers.insert("grpc-status", HeaderValue::from(code as i32));
    }
    response
}

/// The `grpc-status` of a trailers-only response (an error before any message).
fn grpc_status<B>(response: &http::Response<B>) -> Option<Code> {
    let code = response
        .headers()
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Code::from_i32(code))
}

impl<B> tower::Service<http::Request<B>> for OtlpGrpcService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let ingestor = self.ingestor.clone();
        Box::pin(async move {
            let response = match req.uri().path() {
                p if p == Traces::GRPC_PATH => Self::unary::<Traces, B>(ingestor, req).await,
                p if p == Logs::GRPC_PATH => Self::unary::<Logs, B>(ingestor, req).await,
                p if p == Metrics::GRPC_PATH => Self::unary::<Metrics, B>(ingestor, req).await,
                _ => Status::unimplemented("unknown method").into_http(),
            };
            Ok(response)
        })
    }
}

/// The gRPC routes of the OTLP listener, for `tonic::transport::Server::add_routes`.
pub fn routes(ingestor: Arc<Ingestor>) -> tonic::service::Routes {
    let service = OtlpGrpcService::new(ingestor);
    let router = axum::Router::new()
        .route_service(Traces::GRPC_PATH, service.clone())
        .route_service(Logs::GRPC_PATH, service.clone())
        .route_service(Metrics::GRPC_PATH, service);
    tonic::service::Routes::from(router)
}
