//! Incidents: the alerts of one group, and the alerts correlated with them, handled as one
//! problem with a root-cause candidate, a timeline, acknowledgement, resolution and
//! escalation (driven by [`crate::alerter::Alerter::tick`]).
//!
//! Correlation: a group's first notification opens an incident, unless one of its alerts
//! joins an open incident: the alert is notified within `correlation.window` of the
//! incident's latest join and either its service and one of the incident's services depend
//! on one another in the tenant's service graph (one reaches the other along caller→callee
//! edges), or it shares the values of every label of a `correlation.by_labels` entry with one
//! of the incident's alerts.
//!
//! Root-cause candidate: among the services with a firing alert in the incident, the most
//! downstream one, i.e. one from which no other failing service is reachable; ties go to the
//! smallest name.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::{Fingerprint, Labels, Status};
use crate::time::Nanos;

/// Most timeline entries kept per incident.
pub const MAX_TIMELINE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

/// What happened to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimelineEvent {
    Opened,
    AlertJoined {
        fingerprint: Fingerprint,
        alertname: String,
    },
    AlertResolved {
        fingerprint: Fingerprint,
    },
    NotificationSent {
        receiver: String,
        notification: String,
    },
    EscalationStep {
        step: usize,
        receivers: Vec<String>,
    },
    Acknowledged {
        by: String,
    },
    Resolved {
        by: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Nanos,
    #[serde(flatten)]
    pub event: TimelineEvent,
}

/// One alert of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAlert {
    pub labels: Labels,
    pub service: Option<String>,
    pub status: Status,
    pub joined_at: Nanos,
}

/// Escalation progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationState {
    pub policy: String,
    /// The next step over repetitions (see [`crate::config::EscalationPolicy::step`]).
    pub next: usize,
    /// Every receiver paged so far.
    pub paged: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub status: IncidentStatus,
    pub services: BTreeSet<String>,
    pub alerts: BTreeMap<Fingerprint, IncidentAlert>,
    pub root_cause: Option<String>,
    /// The group that opened it.
    pub group_key: String,
    pub opened_at: Nanos,
    pub last_join_at: Nanos,
    pub acknowledged_at: Option<Nanos>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Nanos>,
    /// `None` when resolved because all its alerts resolved.
    pub resolved_by: Option<String>,
    pub escalation: Option<EscalationState>,
    pub timeline: Vec<TimelineEntry>,
}

/// Why an incident operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    /// No such incident for this tenant (another tenant's id is not found either).
    #[error("incident {0} not found")]
    NotFound(String),
    /// The incident's status does not allow it (e.g. acknowledging a resolved incident).
    #[error("incident {id} is {status}: cannot {action}")]
    Conflict {
        id: String,
        status: &'static str,
        action: &'static str,
    },
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

impl Incident {
    /// Appends to the timeline; past [`MAX_TIMELINE`] entries the oldest after the opening
    /// are dropped.
    pub fn push(&mut self, at: Nanos, event: TimelineEvent) {
        if self.timeline.len() >= MAX_TIMELINE {
            self.timeline.remove(1);
        }
        self.timeline.push(TimelineEntry { at, event });
    }

    pub fn is_resolved(&self) -> bool {
        self.status == IncidentStatus::Resolved
    }

    /// Services with a firing alert.
    pub fn failing_services(&self) -> BTreeSet<String> {
        (self.alerts.values())
            .filter(|a| a.status == Status::Firing)
            .filter_map(|a| a.service.clone())
            .collect()
    }

    /// Recomputes the root-cause candidate (kept as is when nothing fails any more).
    pub fn update_root_cause(&mut self, graph: &ServiceGraph) {
        let failing = self.failing_services();
        if let Some(rc) = graph.root_cause(&failing) {
            self.root_cause = Some(rc);
        }
    }
}

/// A tenant's caller→callee edges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceGraph {
    callees: BTreeMap<String, BTreeSet<String>>,
}

impl ServiceGraph {
    pub fn new(edges: Vec<(String, String)>) -> Self {
        let mut callees: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (caller, callee) in edges {
            if caller != callee {
                callees.entry(caller).or_default().insert(callee);
            }
        }
        Self { callees }
    }

    /// Services reachable from `from` (excluding itself unless on a cycle).
    pub fn reachable(&self, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([from.to_string()]);
        while let Some(s) = queue.pop_front() {
            for c in self.callees.get(&s).into_iter().flatten() {
                if seen.insert(c.clone()) {
                    queue.push_back(c.clone());
                }
            }
        }
        seen
    }

    /// Whether one of the two calls the other, directly or transitively.
    pub fn connected(&self, a: &str, b: &str) -> bool {
        a == b || self.reachable(a).contains(b) || self.reachable(b).contains(a)
    }

    /// The most downstream failing service: none of its (transitive) callees fail; the
    /// smallest such name; on a cycle of failing services, the smallest failing name.
    pub fn root_cause(&self, failing: &BTreeSet<String>) -> Option<String> {
        failing
            .iter()
            .find(|s| {
                self.reachable(s)
                    .iter()
                    .all(|c| c == *s || !failing.contains(c))
            })
            .or_else(|| failing.iter().next())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> ServiceGraph {
        ServiceGraph::new(
            edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn root_cause_is_the_most_downstream_failing_service() {
        let g = graph(&[("web", "cart"), ("cart", "redis"), ("web", "pay")]);
        let failing = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            g.root_cause(&failing(&["web", "cart"])).as_deref(),
            Some("cart")
        );
        assert_eq!(
            g.root_cause(&failing(&["web", "redis"])).as_deref(),
            Some("redis")
        );
        // Two independent leaves: the smallest name.
        assert_eq!(
            g.root_cause(&failing(&["web", "pay", "redis"])).as_deref(),
            Some("pay")
        );
        assert!(g.connected("web", "redis"));
        assert!(!g.connected("pay", "cart"));
        let cyc = graph(&[("a", "b"), ("b", "a")]);
        assert_eq!(cyc.root_cause(&failing(&["b", "a"])).as_deref(), Some("a"));
    }
}
