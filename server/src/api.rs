//! The HTTP API: `POST /api/v1/sql`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::sync::Arc;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use strata_ingest::{Ingestor, TENANT_HEADER};
use strata_query::format::Format;
use strata_query::{QueryEngine, QueryError};

/// Largest SQL request body.
pub const MAX_SQL_BODY_BYTES: usize = 1024 * 1024;

/// What the API handlers share. Until the node is ready (the WAL is replayed), only the
/// health endpoints answer; the others say 503.
#[derive(Clone, Default)]
pub struct ApiState {
    inner: Arc<OnceLock<Ready>>,
}

struct Ready {
    engine: Arc<QueryEngine>,
    registry: Registry,
}

impl ApiState {
    /// The state of a node that is still starting.
    pub fn starting() -> Self {
        Self::default()
    }

    /// Makes the API serve queries and metrics.
    pub fn ready(&self, engine: Arc<QueryEngine>, registry: Registry) {
        let _ = self.inner.set(Ready { engine, registry });
    }

    fn get(&self) -> Result<&Ready, ApiError> {
        self.inner.get().ok_or_else(|| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the node is starting (replaying its write-ahead log)".into(),
        })
    }
}

/// The router of the HTTP API listener.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_SQL_BODY_BYTES))
        .with_state(state)
}

/// An error as the API reports it: a status and `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::User(message) => Self {
                status: StatusCode::BAD_REQUEST,
                message,
            },
            QueryError::ResourcesExhausted(message) => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                message,
            },
            QueryError::LimitExceeded(message) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message,
            },
            QueryError::Timeout(message) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message,
            },
            QueryError::Internal(message) => {
                tracing::error!(error = %message, "query failed");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "internal error; see the server log".into(),
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct SqlRequest {
    sql: String,
}

async fn sql(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = Ingestor::tenant(headers.get(TENANT_HEADER).map(|v| v.as_bytes()))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("request body must be JSON {{\"sql\": \"…\"}}: {e}"))
    })?;
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let result = state.get()?.engine.sql(&tenant, &request.sql).await?;
    let body = format.encode(&result)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ApiState>) -> Response {
    match state.get() {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response(),
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let ready = match state.get() {
        Ok(ready) => ready,
        Err(e) => return e.into_response(),
    };
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &ready.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
