//! The alerting HTTP API (docs/ALERTING.md, "HTTP API"). Every route is per tenant: the
//! caller's tenant is the only one it sees, and another tenant's ids answer 404.
//!
//! | route | scope |
//! |---|---|
//! | `GET /api/v1/alerts`, `GET /api/v2/alerts` | read |
//! | `POST /api/v2/alerts` (Alertmanager-compatible intake) | ingest |
//! | `GET /api/v1/silences`, `GET /api/v1/silences/{id}` | read |
//! | `POST /api/v1/silences`, `PUT /api/v1/silences/{id}`, `DELETE /api/v1/silences/{id}` | write |
//! | `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}` | read |
//! | `POST /api/v1/incidents/{id}/acknowledge`, `POST /api/v1/incidents/{id}/resolve` | write |
//! | `GET /api/v1/rules`, `GET /api/v1/rules/{name}` | read |
//! | `POST /api/v1/rules`, `PUT /api/v1/rules/{name}`, `DELETE /api/v1/rules/{name}` | write |
//! | `GET /api/v1/notifications`, `GET /api/v1/notifications/{id}` | read |
//! | `POST /api/v1/notifications/{id}/retry` | write |
//! | `POST /-/reload` | admin (of the operator tenant with auth `keys`) |
//!
//! Times are RFC 3339 in answers and requests.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_alert::incident::{Incident, TimelineEntry};
use strata_alert::matchers::{MatchOp, Matcher};
use strata_alert::notify::{DeliveryStatus, NotifyError, OutboxEntry};
use strata_alert::rule_store::{GroupStatus, RuleStoreError, StoredGroup};
use strata_alert::rules::parse_group;
use strata_alert::time::{parse_rfc3339, rfc3339};
use strata_alert::{
    AlertState, AlertStatus, AlerterError, IncidentError, Nanos, Silence, SilenceSpec,
    intake::parse_postable_alerts,
};
use strata_storage::{Actor, Scope, TenantId};

use super::Alerting;
use crate::api::{ApiError, ApiState, Caller, Remote, actor};

/// Largest alerting request body (an intake batch, a silence).
pub const MAX_ALERTING_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The alerting routes (merged into the API router).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v2/alerts", post(intake).get(list_alerts_v2))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route(
            "/api/v1/silences/{id}",
            get(get_silence).put(update_silence).delete(expire_silence),
        )
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route("/api/v1/incidents/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/incidents/{id}/resolve", post(resolve))
        .route("/api/v1/rules", get(list_rules).post(create_rules))
        .route(
            "/api/v1/rules/{name}",
            get(get_rules).put(update_rules).delete(delete_rules),
        )
        .route("/api/v1/notifications", get(list_notifications))
        .route("/api/v1/notifications/{id}", get(get_notification))
        .route("/api/v1/notifications/{id}/retry", post(retry_notification))
        .route("/-/reload", post(reload))
}

/// The node's alerting; 503 on a node started with `--alerting false` (its alerter holds
/// nothing current, and what it accepted would never be evaluated or sent).
fn alerting(state: &ApiState) -> Result<Arc<Alerting>, ApiError> {
    let alerting = state.alerting()?;
    if !alerting.is_enabled() {
        return Err(ApiError::unavailable(
            "alerting is off on this node (--alerting false); use the node that runs it",
        ));
    }
    Ok(alerting)
}

/// A caller with the `read` scope, and the node's alerting (an extractor).
struct Reader {
    alerting: Arc<Alerting>,
    tenant: TenantId,
}

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        caller.require(Scope::Read)?;
        Ok(Self {
            alerting: alerting(state)?,
            tenant: caller.tenant,
        })
    }
}

/// A caller with the `write` scope, as the audit log names it, and the node's alerting (an
/// extractor).
struct Writer {
    alerting: Arc<Alerting>,
    tenant: TenantId,
    by: Actor,
}

impl FromRequestParts<ApiState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        let remote = Remote::from_request_parts(parts, state)
            .await
            .unwrap_or_default();
        caller.require(Scope::Write)?;
        Ok(Self {
            alerting: alerting(state)?,
            by: actor(&caller, remote),
            tenant: caller.tenant,
        })
    }
}

fn alerter_error(e: AlerterError) -> ApiError {
    match e {
        AlerterError::SilenceNotFound(_) => ApiError::not_found(e.to_string()),
        AlerterError::Incident(IncidentError::NotFound(_)) => ApiError::not_found(e.to_string()),
        AlerterError::SilenceExpired(_)
        | AlerterError::Incident(IncidentError::Conflict { .. }) => {
            ApiError::conflict(e.to_string())
        }
        AlerterError::InvalidSilence(_) => ApiError::bad_request(e.to_string()),
        AlerterError::Storage(_) => ApiError::internal(e),
    }
}

fn time_json(ns: Option<Nanos>) -> Value {
    ns.map_or(Value::Null, |ns| Value::String(rfc3339(ns)))
}

// ---------------------------------------------------------------------------------- alerts

fn alert_json(a: &AlertStatus) -> Value {
    json!({
        "fingerprint": a.fingerprint.to_string(),
        "labels": a.alert.labels,
        "annotations": a.alert.annotations,
        "startsAt": rfc3339(a.alert.starts_at),
        "endsAt": time_json(a.alert.ends_at),
        "updatedAt": rfc3339(a.alert.updated_at),
        "generatorURL": a.alert.generator_url,
        "source": a.alert.source.as_str(),
        "value": a.alert.value,
        "status": {
            "state": match a.state {
                AlertState::Active => "active",
                AlertState::Suppressed => "suppressed",
            },
            "silencedBy": a.silenced_by,
            "inhibitedBy": a.inhibited_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "receivers": a.receivers.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>(),
        "incident": a.incident,
    })
}

/// The caller's tenant's active alerts, as the API answers them.
fn active_alerts(alerting: &Alerting, tenant: &TenantId) -> Vec<Value> {
    let now = alerting.clock.now();
    (alerting.alerter.alerts(tenant.as_str(), now).iter())
        .map(alert_json)
        .collect()
}

/// `GET /api/v1/alerts`: every active alert the alerter holds, from rules and the intake.
async fn list_alerts(Reader { alerting, tenant }: Reader) -> Result<Response, ApiError> {
    let alerts = active_alerts(&alerting, &tenant);
    Ok(axum::Json(json!({ "alerts": alerts })).into_response())
}

/// `GET /api/v2/alerts`: the same, as a bare array (Alertmanager's shape).
async fn list_alerts_v2(Reader { alerting, tenant }: Reader) -> Result<Response, ApiError> {
    Ok(axum::Json(Value::Array(active_alerts(&alerting, &tenant))).into_response())
}

/// `POST /api/v2/alerts`: alerts from Prometheus or another ruler (Alertmanager API v2).
async fn intake(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Ingest)?;
    let alerting = alerting(&state)?;
    let alerts = parse_postable_alerts(&body, alerting.clock.now())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    alerting.receive(&caller.tenant, alerts);
    Ok(StatusCode::OK.into_response())
}

// -------------------------------------------------------------------------------- silences

fn silence_json(s: &Silence, now: Nanos) -> Value {
    json!({
        "id": s.id,
        "matchers": s.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "startsAt": rfc3339(s.starts_at),
        "endsAt": rfc3339(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
        "updatedAt": rfc3339(s.updated_at),
        "status": { "state": s.state(now) },
    })
}

/// A matcher as a string (`service="cart"`) or as Alertmanager's API writes it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MatcherIn {
    Text(String),
    Object {
        name: String,
        value: String,
        #[serde(default, rename = "isRegex")]
        is_regex: bool,
        #[serde(default = "yes", rename = "isEqual")]
        is_equal: bool,
    },
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SilenceRequest {
    matchers: Vec<MatcherIn>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    /// Instead of `endsAt`: how long from the start, e.g. `2h`.
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: String,
}

fn silence_spec(body: &[u8], default_author: &str, now: Nanos) -> Result<SilenceSpec, ApiError> {
    let request: SilenceRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "request body must be JSON {{\"matchers\": [\"service=\\\"cart\\\"\"], \
             \"endsAt\": \"…\" or \"duration\": \"2h\", \"comment\": \"…\"}}: {e}"
        ))
    })?;
    let mut matchers = Vec::with_capacity(request.matchers.len());
    for (i, m) in request.matchers.into_iter().enumerate() {
        let matcher = match m {
            MatcherIn::Text(text) => text.parse::<Matcher>(),
            MatcherIn::Object {
                name,
                value,
                is_regex,
                is_equal,
            } => {
                let op = match (is_regex, is_equal) {
                    (false, true) => MatchOp::Eq,
                    (false, false) => MatchOp::NotEq,
                    (true, true) => MatchOp::Re,
                    (true, false) => MatchOp::NotRe,
                };
                Matcher::new(&name, op, &value)
            }
        };
        matchers.push(matcher.map_err(|e| ApiError::bad_request(format!("matchers[{i}]: {e}")))?);
    }
    let time = |field: &str, value: Option<String>| {
        value
            .map(|v| parse_rfc3339(&v).map_err(|e| ApiError::bad_request(format!("{field}: {e}"))))
            .transpose()
    };
    let starts_at = time("startsAt", request.starts_at)?.unwrap_or(now);
    let ends_at = match (time("endsAt", request.ends_at)?, request.duration) {
        (Some(end), None) => end,
        (None, Some(duration)) => {
            let d = strata_alert::time::parse_duration(&duration)
                .map_err(|e| ApiError::bad_request(format!("duration: {e}")))?;
            starts_at.saturating_add(strata_alert::time::nanos(d))
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of endsAt and duration",
            ));
        }
    };
    Ok(SilenceSpec {
        matchers,
        starts_at,
        ends_at,
        created_by: request
            .created_by
            .unwrap_or_else(|| default_author.to_string()),
        comment: request.comment,
    })
}

async fn list_silences(Reader { alerting, tenant }: Reader) -> Result<Response, ApiError> {
    let now = alerting.clock.now();
    let silences: Vec<Value> = (alerting.alerter.silences(tenant.as_str()).iter())
        .map(|s| silence_json(s, now))
        .collect();
    Ok(axum::Json(json!({ "silences": silences })).into_response())
}

async fn get_silence(
    Reader { alerting, tenant }: Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let silence = (alerting.alerter.silence(tenant.as_str(), &id))
        .ok_or_else(|| ApiError::not_found(format!("silence {id} not found")))?;
    Ok(axum::Json(silence_json(&silence, alerting.clock.now())).into_response())
}

/// `POST /api/v1/silences` (write): answers 201 with the silence (and its `id`).
async fn create_silence(
    Writer {
        alerting,
        tenant,
        by,
    }: Writer,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = alerting.clock.now();
    let spec = silence_spec(&body, &by.id, now)?;
    let silence = (alerting.alerter)
        .create_silence_audited(alerting.store.as_ref(), tenant.as_str(), spec, &by, now)
        .await
        .map_err(alerter_error)?;
    Ok((StatusCode::CREATED, axum::Json(silence_json(&silence, now))).into_response())
}

async fn update_silence(
    Writer {
        alerting,
        tenant,
        by,
    }: Writer,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = alerting.clock.now();
    let spec = silence_spec(&body, &by.id, now)?;
    let silence = (alerting.alerter)
        .update_silence_audited(
            alerting.store.as_ref(),
            tenant.as_str(),
            &id,
            spec,
            &by,
            now,
        )
        .await
        .map_err(alerter_error)?;
    Ok(axum::Json(silence_json(&silence, now)).into_response())
}

/// `DELETE /api/v1/silences/{id}` (write): expires the silence now.
async fn expire_silence(
    Writer {
        alerting,
        tenant,
        by,
    }: Writer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = alerting.clock.now();
    let silence = (alerting.alerter)
        .expire_silence_audited(alerting.store.as_ref(), tenant.as_str(), &id, &by, now)
        .await
        .map_err(alerter_error)?;
    Ok(axum::Json(silence_json(&silence, now)).into_response())
}

// ------------------------------------------------------------------------------- incidents

fn timeline_json(entry: &TimelineEntry) -> Value {
    let mut value = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("at".into(), Value::String(rfc3339(entry.at)));
    }
    value
}

/// An incident as the API answers it (and as the `incidents` table shows it).
pub fn incident_json(i: &Incident) -> Value {
    let alerts: Vec<Value> = (i.alerts.iter())
        .map(|(fingerprint, a)| {
            json!({
                "fingerprint": fingerprint.to_string(),
                "labels": a.labels,
                "service": a.service,
                "status": a.status.as_str(),
                "joinedAt": rfc3339(a.joined_at),
            })
        })
        .collect();
    json!({
        "id": i.id,
        "title": i.title,
        "status": i.status.as_str(),
        "services": i.services,
        "rootCause": i.root_cause,
        "groupKey": i.group_key,
        "openedAt": rfc3339(i.opened_at),
        "acknowledgedAt": time_json(i.acknowledged_at),
        "acknowledgedBy": i.acknowledged_by,
        "resolvedAt": time_json(i.resolved_at),
        "resolvedBy": i.resolved_by,
        "escalation": i.escalation.as_ref().map(|e| json!({
            "policy": e.policy,
            "nextStep": e.next,
            "paged": e.paged,
        })),
        "alerts": alerts,
        "timeline": i.timeline.iter().map(timeline_json).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize)]
struct IncidentFilter {
    #[serde(default)]
    status: Option<String>,
}

/// `GET /api/v1/incidents[?status=open|acknowledged|resolved]`, newest first.
async fn list_incidents(
    Reader { alerting, tenant }: Reader,
    Query(filter): Query<IncidentFilter>,
) -> Result<Response, ApiError> {
    if let Some(status) = &filter.status
        && !["open", "acknowledged", "resolved"].contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "status must be open, acknowledged or resolved, not {status:?}"
        )));
    }
    let incidents: Vec<Value> = (alerting.alerter.incidents(tenant.as_str()).iter())
        .filter(|i| {
            filter
                .status
                .as_deref()
                .is_none_or(|s| i.status.as_str() == s)
        })
        .map(incident_json)
        .collect();
    Ok(axum::Json(json!({ "incidents": incidents })).into_response())
}

async fn get_incident(
    Reader { alerting, tenant }: Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let incident =
        (alerting.alerter.incident(tenant.as_str(), &id)).map_err(|e| alerter_error(e.into()))?;
    Ok(axum::Json(incident_json(&incident)).into_response())
}

/// What a caller may do to an incident.
#[derive(Debug, Clone, Copy)]
enum IncidentAction {
    Acknowledge,
    Resolve,
}

/// `POST /api/v1/incidents/{id}/acknowledge` (write): stops escalation.
async fn acknowledge(writer: Writer, id: Path<String>) -> Result<Response, ApiError> {
    change_incident(writer, id, IncidentAction::Acknowledge).await
}

/// `POST /api/v1/incidents/{id}/resolve` (write): resolves it; whoever was paged hears so.
async fn resolve(writer: Writer, id: Path<String>) -> Result<Response, ApiError> {
    change_incident(writer, id, IncidentAction::Resolve).await
}

async fn change_incident(
    Writer {
        alerting,
        tenant,
        by,
    }: Writer,
    Path(id): Path<String>,
    action: IncidentAction,
) -> Result<Response, ApiError> {
    let (store, tenant) = (alerting.store.as_ref(), tenant.as_str());
    let now = alerting.clock.now();
    let incident = match action {
        IncidentAction::Acknowledge => {
            (alerting
                .alerter
                .acknowledge_audited(store, tenant, &id, &by, now))
            .await
        }
        IncidentAction::Resolve => {
            (alerting
                .alerter
                .resolve_audited(store, tenant, &id, &by, now))
            .await
        }
    }
    .map_err(alerter_error)?;
    Ok(axum::Json(incident_json(&incident)).into_response())
}

// ----------------------------------------------------------------------------------- rules

fn rule_store_error(e: RuleStoreError) -> ApiError {
    match e.http_status() {
        400 => ApiError::bad_request(e.to_string()),
        404 => ApiError::not_found(e.to_string()),
        409 => ApiError::conflict(e.to_string()),
        _ => ApiError::internal(e),
    }
}

/// A group as the API answers it: its definition, where it comes from, and each rule's
/// live status.
fn group_json(stored: &StoredGroup, status: Option<&GroupStatus>) -> Value {
    let mut value = serde_json::to_value(&stored.group).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("tenant");
        object.insert("origin".into(), json!(stored.origin));
        object.insert("updatedAt".into(), time_json(stored.updated_at));
        object.insert(
            "interval".into(),
            json!(strata_alert::time::format_duration(stored.group.interval())),
        );
        if let Some(Value::Array(rules)) = object.get_mut("rules") {
            for rule in rules.iter_mut() {
                let name = rule
                    .get("alert")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let live = status.and_then(|g| g.rules.iter().find(|r| r.alert == name));
                if let (Some(rule), Some(live)) = (rule.as_object_mut(), live) {
                    rule.insert("health".into(), json!(live.health));
                    rule.insert("lastError".into(), json!(live.last_error));
                    rule.insert("lastEvaluation".into(), time_json(live.last_evaluation));
                    rule.insert(
                        "evaluationDurationSeconds".into(),
                        json!(live.evaluation_duration_seconds),
                    );
                    rule.insert("alerts".into(), json!(live.counts));
                }
            }
        }
    }
    value
}

async fn groups_json(
    alerting: &Alerting,
    tenant: &strata_storage::TenantId,
    only: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let status = (alerting.rules.rules_status(tenant).await).map_err(rule_store_error)?;
    let groups = match only {
        Some(name) => vec![(alerting.rules.get(tenant, name).await).map_err(rule_store_error)?],
        None => (alerting.rules.list(tenant).await).map_err(rule_store_error)?,
    };
    Ok(groups
        .iter()
        .map(|g| group_json(g, status.iter().find(|s| s.name == g.group.name)))
        .collect())
}

fn parse_group_body(body: &[u8]) -> Result<strata_alert::rules::RuleGroup, ApiError> {
    parse_group(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /api/v1/rules`: the tenant's rule groups with each rule's health and instances.
async fn list_rules(Reader { alerting, tenant }: Reader) -> Result<Response, ApiError> {
    let groups = groups_json(&alerting, &tenant, None).await?;
    Ok(axum::Json(json!({ "groups": groups })).into_response())
}

async fn get_rules(
    Reader { alerting, tenant }: Reader,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let mut groups = groups_json(&alerting, &tenant, Some(&name)).await?;
    Ok(axum::Json(groups.remove(0)).into_response())
}

/// `POST /api/v1/rules` (write): a new group (YAML or JSON); its SQL must plan. 201.
async fn create_rules(
    Writer {
        alerting,
        tenant,
        by,
    }: Writer,
    body: Bytes,
) -> Result<Response, ApiError> {
    let group = parse_group_body(&body)?;
    let stored = (alerting.rules)
        .create(&tenant, group, &by)
        .await
        .map_err(rule_store_error)?;
    Ok((StatusCode::CREATED, axum::Json(group_json(&stored, None))).into_response())
}

/// `PUT /api/v1/rules/{name}` (write): replaces a group (its name must stay `name`).
async fn update_rules(
    Writer {
        alerting,
        tenant,
        by,
    }: Writer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let group = parse_group_body(&body)?;
    let stored = (alerting.rules)
        .update(&tenant, &name, group, &by)
        .await
        .map_err(rule_store_error)?;
    Ok(axum::Json(group_json(&stored, None)).into_response())
}

/// `DELETE /api/v1/rules/{name}` (write): its firing alerts resolve. 204.
async fn delete_rules(
    Writer {
        alerting,
        tenant,
        by,
    }: Writer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    (alerting.rules)
        .delete(&tenant, &name, &by)
        .await
        .map_err(rule_store_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --------------------------------------------------------------------------- notifications

fn notify_error(e: NotifyError) -> ApiError {
    match e {
        NotifyError::NotFound(_) => ApiError::not_found(e.to_string()),
        NotifyError::Conflict(_) => ApiError::conflict(e.to_string()),
        NotifyError::InvalidTenant(_) => ApiError::bad_request(e.to_string()),
        NotifyError::Store(_) | NotifyError::Corrupt { .. } => ApiError::internal(e),
    }
}

/// A delivery as the API answers it.
fn entry_json(e: &OutboxEntry) -> Value {
    let n = &e.notification;
    json!({
        "id": e.id,
        "receiver": e.receiver,
        "integration": e.integration,
        "status": e.status.as_str(),
        "notification": {
            "id": n.id,
            "kind": n.kind,
            "status": n.status.as_str(),
            "groupKey": n.group_key,
            "groupLabels": n.group_labels,
            "alerts": n.alerts.len(),
            "incident": n.incident,
            "escalationStep": n.escalation_step,
        },
        "createdAt": rfc3339(e.created_at),
        "nextAttemptAt": time_json(e.next_attempt_at),
        "deliveredAt": time_json(e.delivered_at),
        "lastError": e.last_error,
        "attempts": e.attempts.iter().map(|a| json!({
            "at": rfc3339(a.at),
            "outcome": a.outcome,
            "httpStatus": a.http_status,
            "error": a.error,
        })).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationFilter {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/notifications[?status=pending|delivered|dead|skipped][&limit=N]`, newest
/// first (at most 1,000; 100 by default). `status=dead` is the dead-letter list.
async fn list_notifications(
    Reader { alerting, tenant }: Reader,
    Query(filter): Query<NotificationFilter>,
) -> Result<Response, ApiError> {
    let status = match filter.status.as_deref() {
        None => None,
        Some("pending") => Some(DeliveryStatus::Pending),
        Some("delivered") => Some(DeliveryStatus::Delivered),
        Some("dead") => Some(DeliveryStatus::Dead),
        Some("skipped") => Some(DeliveryStatus::Skipped),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status must be pending, delivered, dead or skipped, not {other:?}"
            )));
        }
    };
    let limit = filter.limit.unwrap_or(100).min(1000);
    let entries = (alerting.outbox)
        .list(tenant.as_str(), status, limit)
        .await
        .map_err(notify_error)?;
    let entries: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(axum::Json(json!({ "notifications": entries })).into_response())
}

async fn get_notification(
    Reader { alerting, tenant }: Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = (alerting.outbox.get(tenant.as_str(), &id).await).map_err(notify_error)?;
    Ok(axum::Json(entry_json(&entry)).into_response())
}

/// `POST /api/v1/notifications/{id}/retry` (write): a dead letter is delivered again.
async fn retry_notification(
    Writer {
        alerting, tenant, ..
    }: Writer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = (alerting.outbox)
        .retry(tenant.as_str(), &id, alerting.clock.now())
        .await
        .map_err(notify_error)?;
    Ok(axum::Json(entry_json(&entry)).into_response())
}

// ---------------------------------------------------------------------------------- reload

/// `POST /-/reload`: reads the alerter file and the rule files again. An invalid file is
/// refused (400, with the reason) and the configuration in force stays.
async fn reload(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    remote: Remote,
) -> Result<Response, ApiError> {
    state
        .require_operator(&caller, remote, "alerting.reload")
        .await?;
    let alerting = alerting(&state)?;
    alerting.reload().await.map_err(ApiError::bad_request)?;
    Ok(axum::Json(json!({ "status": "reloaded" })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_alert::matchers::format_matchers;

    #[test]
    fn silence_requests_take_strings_or_alertmanager_objects() {
        let now = 1_000_000_000_000;
        let body =
            br#"{"matchers":["service=\"cart\"",{"name":"env","value":"prod|dev","isRegex":true}],
                        "duration":"1h","comment":"deploy"}"#;
        let spec = silence_spec(body, "k1", now).unwrap();
        assert_eq!(
            format_matchers(&spec.matchers),
            r#"{service="cart", env=~"prod|dev"}"#
        );
        assert_eq!(spec.starts_at, now);
        assert_eq!(spec.ends_at, now + 3_600_000_000_000);
        assert_eq!(spec.created_by, "k1");
        for bad in [
            &br#"{"matchers":["service=\"cart\""]}"#[..],
            br#"{"matchers":["service=\"cart\""],"duration":"1h","endsAt":"2026-01-01T00:00:00Z"}"#,
            br#"{"matchers":["1x=\"y\""],"duration":"1h"}"#,
            br#"{"matchers":[],"duration":"soon"}"#,
            br#"{"matchers":[],"duration":"1h","extra":1}"#,
            b"not json",
        ] {
            assert!(
                silence_spec(bad, "k1", now).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
