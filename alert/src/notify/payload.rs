//! What a receiver is sent: the Alertmanager v4 webhook payload, a user's `body_template`,
//! or a PagerDuty Events API v2 event.
//!
//! ## Alertmanager v4 webhook
//!
//! Exactly the fields Alertmanager writes (`version`, `groupKey`, `truncatedAlerts`,
//! `status`, `receiver`, `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`,
//! `alerts[]` with `status`, `labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`,
//! `fingerprint`), so existing receivers work unchanged. An unset `endsAt` is written as
//! `0001-01-01T00:00:00Z`, Go's zero time, as Alertmanager does. One Strata addition, which
//! receivers ignore: `incident` (the incident id) when the alerts belong to one.
//!
//! `send_resolved: false` drops resolved alerts from a firing notification and does not send
//! a resolved one at all; `max_alerts` keeps the first alerts and counts the rest in
//! `truncatedAlerts`.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::model::{Alert, Labels, Notification, Status};
use crate::receiver::{PagerDutyConfig, Receiver, WebhookConfig};
use crate::template::Template;
use crate::time::{Nanos, rfc3339};

use super::outbox::Integration;

/// Go's zero `time.Time`, which Alertmanager writes for an unset `endsAt`.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Severities the Events API v2 accepts.
pub const PAGERDUTY_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub url: String,
    pub body: Vec<u8>,
    pub content_type: String,
    pub secret: Option<String>,
    /// The integration's own per-attempt timeout, if set.
    pub timeout: Option<Duration>,
}

/// The request for one integration of `receiver`, `None` when nothing is to be sent
/// (`send_resolved: false` and nothing firing). An error when the integration does not
/// exist (the configuration changed) or its template does not parse.
pub fn build(
    n: &Notification,
    receiver: &Receiver,
    integration: Integration,
    external_url: &str,
) -> Result<Option<Request>, String> {
    match integration {
        Integration::Webhook { index } => {
            let cfg = receiver.webhook_configs.get(index).ok_or_else(|| {
                format!(
                    "receiver {:?} has no webhook_configs[{index}]",
                    receiver.name
                )
            })?;
            webhook_request(n, cfg, external_url)
        }
        Integration::PagerDuty { index } => {
            let cfg = receiver.pagerduty_configs.get(index).ok_or_else(|| {
                format!(
                    "receiver {:?} has no pagerduty_configs[{index}]",
                    receiver.name
                )
            })?;
            Ok(pagerduty_event(n, cfg, external_url).map(|event| Request {
                url: cfg.url.clone(),
                body: event.to_string().into_bytes(),
                content_type: "application/json".into(),
                secret: cfg.secret.clone(),
                timeout: cfg.timeout,
            }))
        }
    }
}

fn webhook_request(
    n: &Notification,
    cfg: &WebhookConfig,
    external_url: &str,
) -> Result<Option<Request>, String> {
    let body = match &cfg.body_template {
        Some(src) => {
            let template = Template::parse(src).map_err(|e| format!("body_template: {e}"))?;
            let Some(alerts) = sendable(n, cfg.send_resolved) else {
                return Ok(None);
            };
            render_body(&template, n, &alerts, external_url).into_bytes()
        }
        None => match alertmanager_v4(n, cfg.send_resolved, cfg.max_alerts, external_url) {
            Some(v) => v.to_string().into_bytes(),
            None => return Ok(None),
        },
    };
    let content_type = match (&cfg.body_template, &cfg.content_type) {
        (Some(_), Some(ct)) => ct.clone(),
        _ => "application/json".into(),
    };
    Ok(Some(Request {
        url: cfg.url.clone(),
        body,
        content_type,
        secret: cfg.secret.clone(),
        timeout: cfg.timeout,
    }))
}

/// The alerts to send: all of them, or without the resolved ones when `send_resolved` is
/// off; `None` when the notification is not to be sent.
fn sendable(n: &Notification, send_resolved: bool) -> Option<Vec<&Alert>> {
    if send_resolved {
        return Some(n.alerts.iter().collect());
    }
    if n.status == Status::Resolved {
        return None;
    }
    let firing: Vec<&Alert> = (n.alerts.iter())
        .filter(|a| a.status(n.created_at) == Status::Firing)
        .collect();
    (!firing.is_empty()).then_some(firing)
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn alert_json(a: &Alert, now: Nanos) -> Value {
    json!({
        "status": a.status(now).as_str(),
        "labels": labels_json(&a.labels),
        "annotations": labels_json(&a.annotations),
        "startsAt": rfc3339(a.starts_at),
        // As Alertmanager: an end that has not come yet (a resolve timeout, a rule's
        // "valid until") is not shown; firing alerts carry the zero time.
        "endsAt": match a.ends_at {
            Some(end) if end <= now => rfc3339(end),
            _ => ZERO_TIME.to_string(),
        },
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint().to_string(),
    })
}

/// The Alertmanager v4 webhook payload, `None` when nothing is to be sent.
pub fn alertmanager_v4(
    n: &Notification,
    send_resolved: bool,
    max_alerts: usize,
    external_url: &str,
) -> Option<Value> {
    let alerts = sendable(n, send_resolved)?;
    let keep = if max_alerts == 0 {
        alerts.len()
    } else {
        max_alerts.min(alerts.len())
    };
    let mut v = json!({
        "receiver": n.receiver,
        "status": n.status.as_str(),
        "alerts": alerts[..keep].iter().map(|a| alert_json(a, n.created_at)).collect::<Vec<_>>(),
        "groupLabels": labels_json(&n.group_labels),
        "commonLabels": labels_json(&n.common_labels),
        "commonAnnotations": labels_json(&n.common_annotations),
        "externalURL": external_url,
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": alerts.len() - keep,
    });
    if let Some(incident) = &n.incident {
        v["incident"] = Value::String(incident.clone());
    }
    Some(v)
}

/// Renders a `body_template`. Paths: `.Status`, `.Receiver`, `.GroupKey`, `.ExternalURL`,
/// `.GroupLabels.<name>`, `.CommonLabels.<name>`, `.CommonAnnotations.<name>`,
/// `.Alerts.Count`, `.Alerts.Firing`, `.Alerts.Resolved` (numbers of alerts sent) and
/// `.Incident`. Unknown paths render empty.
pub fn render_body(
    template: &Template,
    n: &Notification,
    alerts: &[&Alert],
    external_url: &str,
) -> String {
    let firing = (alerts.iter())
        .filter(|a| a.status(n.created_at) == Status::Firing)
        .count();
    let lookup = |path: &str| -> Option<String> {
        let path = path.strip_prefix('.')?;
        match path {
            "Status" => return Some(n.status.as_str().into()),
            "Receiver" => return Some(n.receiver.clone()),
            "GroupKey" => return Some(n.group_key.clone()),
            "ExternalURL" => return Some(external_url.into()),
            "Incident" => return n.incident.clone(),
            "Alerts.Count" => return Some(alerts.len().to_string()),
            "Alerts.Firing" => return Some(firing.to_string()),
            "Alerts.Resolved" => return Some((alerts.len() - firing).to_string()),
            _ => {}
        }
        let (map, name) = path.split_once('.')?;
        match map {
            "GroupLabels" => n.group_labels.get(name).cloned(),
            "CommonLabels" => n.common_labels.get(name).cloned(),
            "CommonAnnotations" => n.common_annotations.get(name).cloned(),
            _ => None,
        }
    };
    template.render(&lookup)
}

/// The PagerDuty `dedup_key` of a group: the first 32 hex digits of SHA-256 over the
/// tenant and the group key, so one group is one PagerDuty incident, and tenants never
/// share one.
pub fn dedup_key(tenant: &str, group_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(group_key.as_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

/// `[FIRING:2] <group label values> (<other common label values>)`, as Alertmanager's
/// default subject reads.
fn summary(n: &Notification) -> String {
    if let Some(s) = n.common_annotations.get("summary") {
        return truncate(s, 1024);
    }
    let firing = (n.alerts.iter())
        .filter(|a| a.status(n.created_at) == Status::Firing)
        .count();
    let mut s = match n.status {
        Status::Firing => format!("[FIRING:{firing}]"),
        Status::Resolved => "[RESOLVED]".to_string(),
    };
    for v in n.group_labels.values() {
        s.push(' ');
        s.push_str(v);
    }
    let rest: Vec<&str> = (n.common_labels.iter())
        .filter(|(k, _)| !n.group_labels.contains_key(*k))
        .map(|(_, v)| v.as_str())
        .collect();
    if !rest.is_empty() {
        s.push_str(&format!(" ({})", rest.join(" ")));
    }
    truncate(&s, 1024)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The Events API v2 event, `None` for a resolution with `send_resolved: false`.
pub fn pagerduty_event(
    n: &Notification,
    cfg: &PagerDutyConfig,
    external_url: &str,
) -> Option<Value> {
    if n.status == Status::Resolved && !cfg.send_resolved {
        return None;
    }
    let severity = (cfg.severity.as_deref())
        .or_else(|| n.common_labels.get("severity").map(String::as_str))
        .filter(|s| PAGERDUTY_SEVERITIES.contains(s))
        .unwrap_or("error");
    let source = (n.common_labels.get("instance"))
        .or_else(|| n.common_labels.get("service"))
        .map_or("Strata", String::as_str);
    let firing = (n.alerts.iter())
        .filter(|a| a.status(n.created_at) == Status::Firing)
        .count();
    let mut details = json!({
        "firing": firing,
        "resolved": n.alerts.len() - firing,
        "group_key": n.group_key,
        "group_labels": labels_json(&n.group_labels),
        "common_labels": labels_json(&n.common_labels),
        "common_annotations": labels_json(&n.common_annotations),
    });
    if let Some(incident) = &n.incident {
        details["incident"] = Value::String(incident.clone());
    }
    Some(json!({
        "routing_key": cfg.routing_key,
        "event_action": match n.status {
            Status::Firing => "trigger",
            Status::Resolved => "resolve",
        },
        "dedup_key": dedup_key(&n.tenant, &n.group_key),
        "payload": {
            "summary": summary(n),
            "source": source,
            "severity": severity,
            "timestamp": rfc3339(n.created_at),
            "custom_details": details,
        },
        "client": "Strata",
        "client_url": external_url,
        "links": [{ "href": external_url, "text": "Strata" }],
    }))
}

/// Checks a receiver when the configuration is loaded: URLs, templates, PagerDuty fields.
pub fn validate(receiver: &Receiver) -> Result<(), String> {
    let url_ok = |what: &str, url: &str| -> Result<(), String> {
        let u = reqwest::Url::parse(url)
            .map_err(|e| format!("receiver {:?}: {what} url {url:?}: {e}", receiver.name))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(format!(
                "receiver {:?}: {what} url {url:?} must be http(s) with a host",
                receiver.name
            ));
        }
        Ok(())
    };
    for (i, w) in receiver.webhook_configs.iter().enumerate() {
        url_ok(&format!("webhook_configs[{i}]"), &w.url)?;
        if let Some(src) = &w.body_template {
            Template::parse(src).map_err(|e| {
                format!(
                    "receiver {:?}: webhook_configs[{i}].body_template: {e}",
                    receiver.name
                )
            })?;
        }
    }
    for (i, p) in receiver.pagerduty_configs.iter().enumerate() {
        url_ok(&format!("pagerduty_configs[{i}]"), &p.url)?;
        if p.routing_key.trim().is_empty() {
            return Err(format!(
                "receiver {:?}: pagerduty_configs[{i}].routing_key is empty",
                receiver.name
            ));
        }
        if let Some(s) = &p.severity
            && !PAGERDUTY_SEVERITIES.contains(&s.as_str())
        {
            return Err(format!(
                "receiver {:?}: pagerduty_configs[{i}].severity {s:?} is not one of {}",
                receiver.name,
                PAGERDUTY_SEVERITIES.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
