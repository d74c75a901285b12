//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with
//! `application/x-protobuf` or `application/json` bodies, optionally gzip-compressed, with or
//! without `Content-Length`.
//!
//! Responses use the request's content type. Failures carry a `google.rpc.Status` body
//! (protobuf or JSON to match the request), with the status codes of the OTLP specification:
//! 400 for undecodable data or an invalid tenant, 401 (with `WWW-Authenticate: Bearer`) or 403
//! when auth is on and the API key is missing or may not write (`auth.rs`), 413 for a body over the limit (counted after
//! decompression, so a gzip bomb stops at the limit), 415 for an unsupported content type or
//! encoding.
//!
//! Admission comes first: while the write buffer is at its memory limit a request is refused
//! (429) before its body is read into memory (the body is read and discarded, so that the
//! connection stays usable), and a body is decoded only once it holds its share of the
//! in-flight budget (`--max-inflight-bytes`).

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Limited};
use prost::Message;

use crate::auth::AUTHORIZATION_HEADER;
use crate::{IngestError, Ingestor, Logs, Metrics, OtlpSignal, TENANT_HEADER, Traces, Transport};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The encodings OTLP/HTTP bodies come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        }
    }

    fn transport(self) -> Transport {
        match self {
            Format::Protobuf => Transport::HttpProtobuf,
            Format::Json => Transport::HttpJson,
        }
    }
}

/// The router of the OTLP/HTTP listener.
pub fn router(ingestor: Arc<Ingestor>) -> Router {
    Router::new()
        .route(Traces::HTTP_PATH, post(export::<Traces>))
        .route(Logs::HTTP_PATH, post(export::<Logs>))
        .route(Metrics::HTTP_PATH, post(export::<Metrics>))
        // The handler enforces its own limit, after decompression.
        .layer(DefaultBodyLimit::disable())
        .with_state(ingestor)
}

/// The body format a `Content-Type` names (parameters such as `charset` are ignored).
pub fn format_of(headers: &HeaderMap) -> Result<Format, IngestError> {
    let raw = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        PROTOBUF => Ok(Format::Protobuf),
        JSON => Ok(Format::Json),
        _ => Err(IngestError::UnsupportedMediaType(raw)),
    }
}

async fn export<S: OtlpSignal>(
    State(ingestor): State<Arc<Ingestor>>,
    request: Request,
) -> Response {
    let signal = S::SIGNAL.as_str();
    // An HTTP/1 connection whose request body we did not read to the end cannot be reused:
    // error responses sent before that say `Connection: close`.
    let http1 = request.version() <= http::Version::HTTP_11;
    let format = match format_of(request.headers()) {
        Ok(f) => f,
        Err(e) => {
            ingestor.metrics().request(signal, "http", e.reason());
            // The client's format is unknown: answer in JSON, which every client can read.
            return error_response(&e, Format::Json, http1);
        }
    };
    match handle::<S>(&ingestor, format, request).await {
        Ok(body) => {
            ingestor
                .metrics()
                .request(signal, format.transport().as_str(), "ok");
            (
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                )],
                body,
            )
                .into_response()
        }
        Err((e, body_read)) => {
            ingestor
                .metrics()
                .request(signal, format.transport().as_str(), e.reason());
            match &e {
                IngestError::Internal(_) => tracing::error!(error = %e, signal, "export failed"),
                IngestError::Unavailable { .. } | IngestError::Throttled { .. } => {
                    ingestor.log_refusal(&e, signal, format.transport().as_str())
                }
                _ => {}
            }
            error_response(&e, format, http1 && !body_read)
        }
    }
}

/// Handles a request; on error, also says whether the request body was read to its end.
async fn handle<S: OtlpSignal>(
    ingestor: &Ingestor,
    format: Format,
    request: Request,
) -> Result<Vec<u8>, (IngestError, bool)> {
    let headers = request.headers();
    let unread = |e: IngestError| (e, false);
    // Before the body is read: an unauthorised client costs no decompression or decoding.
    let authorization = headers.get(AUTHORIZATION_HEADER).cloned();
    let tenant_header = headers.get(TENANT_HEADER).cloned();
    let tenant = (ingestor.auth())
        .ingest_tenant(
            authorization.as_ref().map(HeaderValue::as_bytes),
            tenant_header.as_ref().map(HeaderValue::as_bytes),
        )
        .await
        .map_err(unread)?;
    let headers = request.headers();
    let gzip = content_encoding_is_gzip(headers).map_err(unread)?;
    let limit = ingestor.config().max_body_bytes;
    if let Err(e) = ingestor.admit() {
        // Refused before the body is in memory. It is still read (and dropped chunk by
        // chunk) so that the answer is not lost to a connection reset.
        let read = discard_body(request.into_body(), limit).await;
        return Err((e, read));
    }
    let raw = read_body(request.into_body(), limit)
        .await
        .map_err(unread)?;
    let read = |e: IngestError| (e, true);
    let body = if gzip {
        let inflated = gunzip(&raw, limit);
        drop(raw);
        inflated.map_err(read)?
    } else {
        raw
    };
    // Held until the rows are written (or refused): bounds what is decoded at once.
    let _inflight = ingestor.reserve_inflight(body.len()).await.map_err(read)?;
    decode_and_export::<S>(ingestor, format, &tenant, body)
        .await
        .map_err(read)
}

async fn decode_and_export<S: OtlpSignal>(
    ingestor: &Ingestor,
    format: Format,
    tenant: &strata_storage::TenantId,
    body: Bytes,
) -> Result<Vec<u8>, IngestError> {
    let len = body.len();
    let response = match format {
        Format::Protobuf => {
            let protobuf = Some(body.clone());
            let convert = move |received| {
                S::convert_protobuf(&body, received)
                    .map_err(|e| IngestError::Decode(format!("invalid protobuf body: {e}")))
            };
            ingestor
                .export::<S>(tenant, convert, len, protobuf)
                .await?
                .encode_to_vec()
        }
        Format::Json => {
            let convert = move |received| {
                S::decode_json(&body)
                    .map(|request| S::convert(&request, received))
                    .map_err(|e| IngestError::Decode(format!("invalid OTLP/JSON body: {e}")))
            };
            S::encode_json(&ingestor.export::<S>(tenant, convert, len, None).await?)
        }
    };
    Ok(response)
}

/// `true` for gzip, `false` for no (or identity) encoding; an error for anything else.
pub fn content_encoding_is_gzip(headers: &HeaderMap) -> Result<bool, IngestError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(value.as_bytes())
        .trim()
        .to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(false),
        "gzip" | "x-gzip" => Ok(true),
        _ => Err(IngestError::UnsupportedEncoding(text)),
    }
}

/// Reads a body of at most `limit` bytes, whether or not it declares a `Content-Length`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, IngestError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(IngestError::TooLarge { limit })
        }
        Err(e) => Err(IngestError::Decode(format!(
            "could not read request body: {e}"
        ))),
    }
}

/// Reads a body to its end without keeping it, up to `limit` bytes; says whether it was read
/// to the end. (The API's listener drains unread bodies with it too: `server/src/drain.rs`.)
pub async fn discard_body(body: Body, limit: usize) -> bool {
    let mut body = Limited::new(body, limit);
    loop {
        match body.frame().await {
            None => return true,
            Some(Ok(_frame)) => {}
            Some(Err(_)) => return false,
        }
    }
}

/// Inflates a gzip body, refusing to produce more than `limit` bytes: memory stays bounded
/// however well the input compresses.
pub fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, IngestError> {
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut out = Vec::with_capacity((compressed.len() * 4).min(limit));
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Decode(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

fn error_response(error: &IngestError, format: Format, close: bool) -> Response {
    let status = error.to_rpc_status();
    let body = match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => status.to_json(),
    };
    let mut response = (
        error.http_status(),
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response();
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if matches!(error, IngestError::Unauthenticated(_)) {
        (response.headers_mut()).insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    if close {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
