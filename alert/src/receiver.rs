//! Receiver and delivery configuration (the `receivers:` and `delivery:` sections of the
//! alerter file, docs/ALERTING.md). Data only: delivery itself is `notify`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A named destination for notifications, with one or more integrations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    pub name: String,
    #[serde(default)]
    pub webhook_configs: Vec<WebhookConfig>,
    #[serde(default)]
    pub pagerduty_configs: Vec<PagerDutyConfig>,
}

/// An HTTP POST of the Alertmanager v4 webhook payload, or of `body_template` rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Signs each delivery (HMAC-SHA256 over `timestamp.body`) when set.
    #[serde(default)]
    pub secret: Option<String>,
    /// Whether resolved notifications are sent (default true).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// At most this many alerts in one payload (0: all), as in Alertmanager.
    #[serde(default)]
    pub max_alerts: usize,
    /// A user template for the body in place of the Alertmanager payload.
    #[serde(default)]
    pub body_template: Option<String>,
    /// The `Content-Type` of a templated body (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Per-attempt timeout (default: `delivery.timeout`).
    #[serde(default, with = "crate::time::option_duration")]
    pub timeout: Option<Duration>,
}

/// A PagerDuty Events API v2 event per notification, deduplicated by group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The Events API v2 endpoint (default `https://events.pagerduty.com/v2/enqueue`).
    #[serde(default = "pagerduty_url")]
    pub url: String,
    pub routing_key: String,
    /// `critical`, `error`, `warning` or `info` (default: the alerts' `severity` label, else
    /// `error`).
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default, with = "crate::time::option_duration")]
    pub timeout: Option<Duration>,
}

/// How deliveries are attempted (the `delivery:` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Per-attempt timeout.
    #[serde(with = "crate::time::duration")]
    pub timeout: Duration,
    /// First retry delay; doubles each attempt, with jitter.
    #[serde(with = "crate::time::duration")]
    pub initial_backoff: Duration,
    #[serde(with = "crate::time::duration")]
    pub max_backoff: Duration,
    /// After this long without success a notification goes to the dead letters.
    #[serde(with = "crate::time::duration")]
    pub deadline: Duration,
    /// Destinations allowed although they are loopback, private, link-local or metadata
    /// addresses: CIDRs (`10.0.0.0/8`, `127.0.0.1/32`) or host names.
    pub allow: Vec<String>,
    /// The `externalURL` of payloads (links back to this node's UI).
    pub external_url: String,
    /// At most this many deliveries in flight at once (default 8).
    pub concurrency: usize,
    /// Delivered, skipped and dead notifications are kept this long (default 7d), then
    /// deleted from the outbox.
    #[serde(with = "crate::time::duration")]
    pub retention: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            deadline: Duration::from_secs(3600),
            allow: Vec::new(),
            external_url: "http://localhost:8080".into(),
            concurrency: 8,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

fn yes() -> bool {
    true
}

fn pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}
