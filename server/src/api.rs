//! The HTTP API: `POST /api/v1/sql`, `/api/v1/keys`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics`.
//!
//! Every `/api/v1/*` handler takes a [`Caller`]: the request's [`Principal`] (tenant, scopes,
//! key id), authenticated through the node's [`Auth`] (`docs/SECURITY.md`). `/healthz` and
//! `/readyz` are open; with auth `keys`, `/metrics` (node-wide, it names every tenant) needs an
//! admin key of the operator tenant.
//!
//! Key changes and refused admin requests are recorded in the tenant's audit log
//! (`strata_storage::audit`), with the caller's key id and the client address of the
//! connection ([`Remote`]); admins read it as the SQL table `audit`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use strata_ingest::auth::AUTHORIZATION_HEADER;
use strata_ingest::{Auth, AuthError, Ingestor, Principal, TENANT_HEADER};
use strata_query::format::Format;
use strata_query::{QueryEngine, QueryError, QueryOptions};
use strata_storage::audit::{self, ACTOR_ANONYMOUS, Actor, AuditEvent, AuditLog, Outcome};
use strata_storage::{KeyStore, Scope, Scopes, TenantId};
use tokio::net::TcpListener;

use crate::alerting::Alerting;

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
    access: Access,
    alerting: Arc<Alerting>,
}

/// Who may do what: the node's authentication and its keys.
#[derive(Debug, Clone)]
pub struct Access {
    pub auth: Auth,
    pub keys: Arc<KeyStore>,
    /// Where refused admin requests are recorded (key changes record themselves, through
    /// `keys`, in the same transaction as the change).
    pub audit: Arc<dyn AuditLog>,
    /// With auth `keys`, admin keys of this tenant may read `/metrics`.
    pub operator_tenant: TenantId,
}

impl ApiState {
    /// The state of a node that is still starting.
    pub fn starting() -> Self {
        Self::default()
    }

    /// Makes the API serve queries and metrics.
    pub fn ready(
        &self,
        engine: Arc<QueryEngine>,
        ingestor: Arc<Ingestor>,
        registry: Registry,
        access: Access,
        alerting: Arc<Alerting>,
    ) {
        let _ = self.inner.set(Ready {
            engine,
            ingestor,
            registry,
            access,
            alerting,
        });
    }

    /// The node's alerting (once ready).
    pub(crate) fn alerting(&self) -> Result<Arc<Alerting>, ApiError> {
        Ok(self.get()?.alerting.clone())
    }

    /// Requires a node-wide operation's right: anyone with auth `none`; with `keys`, an
    /// admin key of the operator tenant. A refusal is audited like other admin refusals.
    pub(crate) async fn require_operator(
        &self,
        caller: &Principal,
        remote: Remote,
        action: &str,
    ) -> Result<(), ApiError> {
        let access = &self.get()?.access;
        require_admin(access, caller, remote, action, None).await?;
        if access.auth.is_enabled() && caller.tenant != access.operator_tenant {
            return Err(AuthError::PermissionDenied(format!(
                "this operation covers the whole node: it needs an admin key of the operator \
                 tenant {}",
                access.operator_tenant
            ))
            .into());
        }
        Ok(())
    }

    fn get(&self) -> Result<&Ready, ApiError> {
        self.inner.get().ok_or_else(|| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the node is starting (replaying its write-ahead log)".into(),
        })
    }
}

/// The TCP peer of an HTTP connection (the client's `IP:port`, or a proxy's), recorded by the
/// listeners: `serve_http` (`lib.rs`) serves with
/// `into_make_service_with_connect_info::<ClientAddr>()`, plain or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// The request's client address, when the listener recorded one (an extractor that never
/// fails: a router served without connect info, as in tests, gives `None`). It is the TCP
/// peer; `X-Forwarded-For` is not trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remote(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = (parts.extensions.get::<ConnectInfo<ClientAddr>>()).map(|info| info.0.0);
        Ok(Remote(addr))
    }
}

/// The audit log's actor of a request: its key id (`bootstrap` for the bootstrap key), or
/// `anonymous` with auth `none`, and the client address.
pub(crate) fn actor(caller: &Principal, remote: Remote) -> Actor {
    Actor::new(
        caller.key_id.as_deref().unwrap_or(ACTOR_ANONYMOUS),
        remote.0.map(|addr| addr.to_string()),
    )
}

/// Longest target (a key id from the path) written to the audit log for a refused request.
const MAX_AUDIT_TARGET_CHARS: usize = 100;

/// Requires the admin scope. A refusal is recorded in the caller's tenant's audit log with
/// outcome `denied`; if that write fails the refusal still stands (nothing changed) and the
/// failure is logged.
async fn require_admin(
    access: &Access,
    caller: &Principal,
    remote: Remote,
    action: &str,
    target: Option<&str>,
) -> Result<(), ApiError> {
    let Err(refused) = caller.require(Scope::Admin) else {
        return Ok(());
    };
    let target: Option<String> = target.map(|t| t.chars().take(MAX_AUDIT_TARGET_CHARS).collect());
    let event = AuditEvent::new(
        caller.tenant.clone(),
        &actor(caller, remote),
        action,
        target.as_deref(),
        serde_json::json!({ "reason": refused.to_string() }),
        Outcome::Denied,
    );
    if let Err(e) = access.audit.append_audit(&event).await {
        tracing::error!(error = %e, action, "cannot record a refused request in the audit log");
    }
    Err(refused.into())
}

/// The router of the HTTP API listener.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/tenants/{id}/usage", get(usage))
        .route("/api/v1/keys", post(create_key).get(list_keys))
        .route("/api/v1/keys/{id}", get(get_key).delete(revoke_key))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_SQL_BODY_BYTES))
        .merge(crate::alerting::api::routes().layer(DefaultBodyLimit::max(
            crate::alerting::api::MAX_ALERTING_BODY_BYTES,
        )))
        // Answers given before the body is read (401, 404, 503 while starting) keep the
        // connection open for the client's next request.
        .layer(axum::middleware::from_fn(crate::drain::drain_unread_body))
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

impl ApiError {
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "API request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error; see the server log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match &e {
            AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AuthError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            AuthError::InvalidTenant(_) => StatusCode::BAD_REQUEST,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self {
            status,
            message: e.to_string(),
        }
    }
}

/// The authenticated caller of an API request (an extractor).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let ready = state.get()?;
        let header = |name: &str| parts.headers.get(name).map(|v| v.as_bytes());
        let principal = (ready.access.auth)
            .authenticate(header(AUTHORIZATION_HEADER), header(TENANT_HEADER))
            .await?;
        Ok(Caller(principal))
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
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let tenant = caller.tenant;
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("request body must be JSON {{\"sql\": \"…\"}}: {e}"))
    })?;
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // The `audit` table is in the session of admin callers only.
    let options = QueryOptions {
        audit: caller.scopes.allows(Scope::Admin),
    };
    let result = (state.get()?.engine)
        .sql_with(&tenant, &request.sql, options)
        .await?;
    let body = format.encode(&result)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// A tenant's limits and its current use of them. Another tenant's id is answered 404.
async fn usage(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let tenant = caller.tenant;
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

async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let ready = match state.get() {
        Ok(ready) => ready,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = metrics_allowed(&ready.access, &headers).await {
        return e.into_response();
    }
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

/// `/metrics` is open with auth `none`; with `keys` it needs an admin key of the operator
/// tenant, because it is node-wide (it names every tenant).
async fn metrics_allowed(access: &Access, headers: &HeaderMap) -> Result<(), ApiError> {
    if !access.auth.is_enabled() {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let caller = (access.auth)
        .authenticate(header(AUTHORIZATION_HEADER), header(TENANT_HEADER))
        .await?;
    caller.require(Scope::Admin)?;
    if caller.tenant != access.operator_tenant {
        return Err(AuthError::PermissionDenied(format!(
            "/metrics covers every tenant: it needs an admin key of the operator tenant {}",
            access.operator_tenant
        ))
        .into());
    }
    Ok(())
}

// ------------------------------------------------------------------------------ API keys

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeyRequest {
    name: String,
    scopes: Vec<String>,
    /// Lifetime, e.g. `30d`; absent: never expires.
    #[serde(default)]
    expires_in: Option<String>,
}

/// `POST /api/v1/keys` (admin): a new key of the caller's tenant; the key is in this answer
/// only.
async fn create_key(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    remote: Remote,
    body: Bytes,
) -> Result<Response, ApiError> {
    let access = &state.get()?.access;
    require_admin(access, &caller, remote, audit::KEY_CREATE, None).await?;
    let by = actor(&caller, remote);
    let request: CreateKeyRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "request body must be JSON {{\"name\": \"…\", \"scopes\": [\"ingest\", …], \
             \"expires_in\": \"30d\"}}: {e}"
        ))
    })?;
    let scopes = Scopes::parse(&request.scopes.join(",")).map_err(ApiError::bad_request)?;
    let lifetime = (request.expires_in.as_deref())
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let expires_at = crate::keys::expires_at(lifetime).map_err(ApiError::bad_request)?;
    let new = strata_storage::keys::NewKey {
        tenant: caller.tenant,
        name: request.name,
        scopes,
        expires_at,
        created_by: caller.key_id,
    };
    // The key and its audit row are written in one transaction: if the audit row cannot be
    // written, no key is created and the answer is 500.
    let (row, key) = (access.keys).create(new, &by).await.map_err(|e| match e {
        strata_storage::Error::Config(message) => ApiError::bad_request(message),
        other => ApiError::internal(other),
    })?;
    let mut body = crate::keys::key_json(&row);
    body["key"] = serde_json::Value::String(key);
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `GET /api/v1/keys` (admin): the caller's tenant's keys, without secrets.
async fn list_keys(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    remote: Remote,
) -> Result<Response, ApiError> {
    let access = &state.get()?.access;
    require_admin(access, &caller, remote, audit::KEY_LIST, None).await?;
    let keys = (access.keys)
        .list(Some(&caller.tenant))
        .await
        .map_err(ApiError::internal)?;
    let keys: Vec<_> = keys.iter().map(crate::keys::key_json).collect();
    Ok(axum::Json(serde_json::json!({ "keys": keys })).into_response())
}

/// `GET /api/v1/keys/{id}` (admin). Another tenant's key is 404, as if it did not exist.
async fn get_key(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    remote: Remote,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let access = &state.get()?.access;
    require_admin(access, &caller, remote, audit::KEY_GET, Some(&id)).await?;
    let key = (access.keys)
        .get(&id, Some(&caller.tenant))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no key with id {id:?}")))?;
    Ok(axum::Json(crate::keys::key_json(&key)).into_response())
}

/// `DELETE /api/v1/keys/{id}` (admin): revokes the key (idempotent); answers it as it now is.
/// Another tenant's key is 404 and stays untouched. The revocation and its audit row are
/// written in one transaction (an audit failure is 500 and revokes nothing); a 404 records
/// nothing.
async fn revoke_key(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    remote: Remote,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let access = &state.get()?.access;
    require_admin(access, &caller, remote, audit::KEY_REVOKE, Some(&id)).await?;
    let key = (access.keys)
        .revoke(&id, Some(&caller.tenant), &actor(&caller, remote))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no key with id {id:?}")))?;
    Ok(axum::Json(crate::keys::key_json(&key)).into_response())
}
