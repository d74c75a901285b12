//! The HTTP API: `POST /api/v1/sql`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::sync::Arc;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
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
    ingestor: Arc<Ingestor>,
    registry: Registry,
}

impl ApiState {
    /// The state of a node that is still starting.
    pub fn starting() -> Self {
        Self::default()
    }

    /// Makes the API serve queries and metrics.
    pub fn ready(&self, engine: Arc<QueryEngine>, ingestor: Arc<Ingestor>, registry: Registry) {
        let _ = self.inner.set(Ready {
            engine,
            ingestor,
            registry,
        });
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
        .route("/api/v1/tenants/{id}/usage", get(usage))
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

/// A tenant's limits and its current use of them. Another tenant's id is answered 404.
async fn usage(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = Ingestor::tenant(headers.get(TENANT_HEADER).map(|v| v.as_bytes()))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if tenant.as_str() != id {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no tenant {id:?}"),
        });
    }
    let ready = state.get()?;
    let ingest_limits = ready.ingestor.limiter().limits(&tenant).clone();
    let ingest = ready.ingestor.limiter().usage(&tenant);
    let query_limits = ready.engine.limits(&tenant).clone();
    let storage = ready.engine.storage();
    let tables: serde_json::Map<String, serde_json::Value> = strata_storage::Signal::ALL
        .into_iter()
        .map(|signal| {
            let snapshot = storage.snapshot(&tenant, signal, strata_storage::TimeRange::ALL);
            let value = serde_json::json!({
                "files": snapshot.files.len(),
                "file_bytes": snapshot.files.iter().map(|f| f.size_bytes).sum::<i64>(),
                "file_rows": snapshot.files.iter().map(|f| f.rows).sum::<i64>(),
                "buffered_rows": snapshot.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            });
            (signal.as_str().to_string(), value)
        })
        .collect();
    let body = serde_json::json!({
        "tenant": tenant.as_str(),
        "ingest": {
            "limits": {
                "rate_records": ingest_limits.rate_records,
                "rate_bytes": ingest_limits.rate_bytes,
                "burst_seconds": ingest_limits.burst.as_secs_f64(),
                "max_active_series": ingest_limits.max_active_series,
                "max_series_per_metric": ingest_limits.max_series_per_metric,
                "active_series_window_seconds": ingest_limits.active_series_window.as_secs_f64(),
            },
            "active_series": ingest.active_series,
            "requests_refused_rate": ingest.requests_refused_rate,
            "records_refused_rate": ingest.records_refused_rate,
            "points_refused_cardinality": ingest.points_refused_cardinality,
        },
        "query": {
            "limits": {
                "timeout_seconds": query_limits.timeout.as_secs_f64(),
                "max_memory_bytes": query_limits.max_memory_bytes,
                "max_scan_bytes": query_limits.max_scan_bytes,
                "max_concurrent": query_limits.max_concurrent,
            },
            "running": ready.engine.running_queries(&tenant),
        },
        "storage": tables,
    });
    Ok(axum::Json(body).into_response())
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
