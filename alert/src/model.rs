//! The alerting data model shared by rules, the alerter and the notifiers.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Nanos;

/// Label names to values, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// The label naming an alert (`alertname`, as in Prometheus).
pub const ALERTNAME: &str = "alertname";

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the Prometheus label name syntax (rule labels, annotations and
/// alerts received on the intake).
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An alert's identity: the 64-bit FNV-1a hash of its sorted labels, computed exactly as
/// Prometheus and Alertmanager compute a label set's fingerprint (name, 0xff, value, 0xff, …),
/// so fingerprints match those shown by existing tools. Written as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    pub fn of(labels: &Labels) -> Self {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(PRIME);
            }
        };
        for (name, value) in labels {
            feed(name.as_bytes());
            feed(&[0xff]);
            feed(value.as_bytes());
            feed(&[0xff]);
        }
        Fingerprint(h)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.to_string()
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        u64::from_str_radix(&s, 16)
            .map(Fingerprint)
            .map_err(|_| format!("invalid fingerprint {s:?}"))
    }
}

/// Where an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSource {
    /// One of the tenant's SQL rules.
    Rule,
    /// `POST /api/v2/alerts` (Prometheus or another ruler).
    Api,
}

impl AlertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Rule => "rule",
            AlertSource::Api => "api",
        }
    }
}

/// An alert as the alerter holds it (the Alertmanager model): firing while `ends_at` is
/// unset or in the future, resolved once `ends_at` has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub starts_at: Nanos,
    /// When the alert stops (resolved); `None` while it fires with no known end.
    #[serde(default)]
    pub ends_at: Option<Nanos>,
    /// When the alerter last received it.
    pub updated_at: Nanos,
    #[serde(default)]
    pub generator_url: String,
    pub source: AlertSource,
    /// The rule's last value (rules only).
    #[serde(default)]
    pub value: Option<f64>,
}

impl Alert {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels)
    }

    pub fn name(&self) -> &str {
        self.labels.get(ALERTNAME).map_or("", String::as_str)
    }

    /// Whether the alert is resolved at `now`.
    pub fn is_resolved(&self, now: Nanos) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }

    pub fn status(&self, now: Nanos) -> Status {
        if self.is_resolved(now) {
            Status::Resolved
        } else {
            Status::Firing
        }
    }
}

/// The status of an alert or of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A group's alerts changed or its repeat interval passed.
    Group,
    /// An escalation policy's step paged its receivers.
    Escalation,
    /// An incident was resolved: those who were paged hear of it.
    IncidentResolved,
}

/// One message for one receiver, as the alerter hands it to the notifiers. Its `id` is the
/// delivery's idempotency key: stable across retries and restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub tenant: String,
    /// The receiver's name in the alerter configuration.
    pub receiver: String,
    pub kind: NotificationKind,
    /// The aggregation group's key (Alertmanager's `groupKey`).
    pub group_key: String,
    pub status: Status,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: Labels,
    /// The group's alerts, firing and resolved, at the time of the notification.
    pub alerts: Vec<Alert>,
    /// The incident the alerts belong to, if any.
    #[serde(default)]
    pub incident: Option<String>,
    /// The escalation step that paged (kind `escalation`).
    #[serde(default)]
    pub escalation_step: Option<usize>,
    pub created_at: Nanos,
}

/// Where evaluated and received alerts go: the alerter. Rules hand it every active instance
/// at each evaluation (and resolved ones once, with `ends_at` set), the way Prometheus sends
/// to Alertmanager; the intake hands it what `POST /api/v2/alerts` received.
pub trait AlertSink: Send + Sync {
    fn receive(&self, tenant: &str, alerts: Vec<Alert>, now: Nanos);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_matches_the_prometheus_label_set_hash() {
        // The empty label set hashes to the FNV-1a offset basis.
        assert_eq!(
            Fingerprint::of(&Labels::new()).to_string(),
            "cbf29ce484222325"
        );
        // Order of insertion does not matter; any change of name or value does.
        let a = labels(&[("alertname", "HighErrors"), ("service", "cart")]);
        let b = labels(&[("service", "cart"), ("alertname", "HighErrors")]);
        let c = labels(&[("alertname", "HighErrors"), ("service", "carts")]);
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&b));
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&c));
        // The separator keeps `a=bc` and `ab=c` apart.
        assert_ne!(
            Fingerprint::of(&labels(&[("a", "bc")])),
            Fingerprint::of(&labels(&[("ab", "c")]))
        );
        // What Alertmanager 0.25 printed for this label set in a webhook payload.
        assert_eq!(Fingerprint::of(&a).to_string(), "6e1789e424e8a27c");
        let f = Fingerprint::of(&a);
        assert_eq!(Fingerprint::try_from(f.to_string()), Ok(f));
    }

    #[test]
    fn alerts_resolve_when_their_end_passes() {
        let alert = Alert {
            labels: labels(&[("alertname", "X")]),
            annotations: Labels::new(),
            starts_at: 10,
            ends_at: Some(20),
            updated_at: 10,
            generator_url: String::new(),
            source: AlertSource::Api,
            value: None,
        };
        assert_eq!(alert.status(19), Status::Firing);
        assert_eq!(alert.status(20), Status::Resolved);
        assert_eq!(alert.name(), "X");
    }
}
