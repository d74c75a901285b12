//! Aggregation groups and their notification log, as in Alertmanager's dispatcher.
//!
//! An alert goes to the routes [`crate::config::Route::routes_for`] picks and, on each, to the
//! group of its `group_by` label values. A new group is flushed `group_wait` after its
//! creation, then every `group_interval`. A flush sends one notification to the route's
//! receiver when (Alertmanager's dedup stage): nothing was sent yet and some alert fires; a
//! firing alert was not in the last notification; every alert stopped firing while the last
//! notification had firing ones; an alert resolved that the last notification did not list
//! as resolved; or `repeat_interval` passed since the last notification with alerts firing.
//! Silenced and inhibited alerts are left out of the notification; a flush left with no
//! alert at all sends nothing. While a route's mute (or
//! outside its active) time intervals hold, nothing is sent and the log is unchanged. After
//! a flush, resolved alerts leave the group; an empty group is removed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Fingerprint, Labels, NotificationKind, Status};
use crate::time::Nanos;

/// What the last notification of a group said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyLog {
    pub firing: BTreeSet<Fingerprint>,
    pub resolved: BTreeSet<Fingerprint>,
    pub sent_at: Nanos,
    /// Notifications sent so far (part of each notification's id).
    pub seq: u64,
}

/// One aggregation group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// `{route key}:{group labels}`, Alertmanager's group key.
    pub key: String,
    pub route: String,
    pub receiver: String,
    pub labels: Labels,
    pub alerts: BTreeSet<Fingerprint>,
    pub created_at: Nanos,
    pub next_flush: Nanos,
    pub log: Option<NotifyLog>,
    /// The incident the group's alerts belong to.
    pub incident: Option<String>,
}

/// The group key of `labels` on the route `route_key`.
pub fn group_key(route_key: &str, labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{route_key}:{{{}}}", inner.join(", "))
}

/// Whether a flush with these alerts sends (see the module documentation).
pub fn needs_update(
    log: Option<&NotifyLog>,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    repeat_interval: Nanos,
    now: Nanos,
) -> bool {
    let Some(log) = log else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&log.firing) {
        return true;
    }
    if firing.is_empty() {
        return !log.firing.is_empty();
    }
    if !resolved.is_subset(&log.resolved) {
        return true;
    }
    now >= log.sent_at.saturating_add(repeat_interval)
}

/// A notification's id: hex SHA-256 over what identifies it, stable across restarts.
#[allow(clippy::too_many_arguments)]
pub fn notification_id(
    tenant: &str,
    receiver: &str,
    group_key: &str,
    kind: NotificationKind,
    status: Status,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    counter: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [tenant, receiver, group_key, kind_str(kind), status.as_str()] {
        h.update(part.as_bytes());
        h.update([0xff]);
    }
    for set in [firing, resolved] {
        for fp in set {
            h.update(fp.0.to_be_bytes());
        }
        h.update([0xff]);
    }
    h.update(counter.as_bytes());
    hex::encode(h.finalize())
}

fn kind_str(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Group => "group",
        NotificationKind::Escalation => "escalation",
        NotificationKind::IncidentResolved => "incident_resolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<Fingerprint> {
        v.iter().map(|n| Fingerprint(*n)).collect()
    }

    #[test]
    fn dedup_follows_alertmanager() {
        let none = set(&[]);
        assert!(!needs_update(None, &none, &set(&[1]), 10, 0));
        assert!(needs_update(None, &set(&[1]), &none, 10, 0));
        let log = NotifyLog {
            firing: set(&[1, 2]),
            resolved: none.clone(),
            sent_at: 100,
            seq: 1,
        };
        assert!(!needs_update(Some(&log), &set(&[1, 2]), &none, 10, 105));
        assert!(needs_update(Some(&log), &set(&[1, 2]), &none, 10, 110));
        assert!(needs_update(Some(&log), &set(&[1, 3]), &none, 10, 101));
        assert!(needs_update(Some(&log), &set(&[1]), &set(&[2]), 10, 101));
        assert!(needs_update(Some(&log), &none, &set(&[1, 2]), 10, 101));
    }
}
