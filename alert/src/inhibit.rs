//! Inhibition: a firing alert matching a rule's source matchers mutes the alerts matching its
//! target matchers that have the same values of the `equal` labels (a label absent from both
//! counts as equal, as in Alertmanager). An alert never inhibits itself.
//!
//! [`Inhibitor`] indexes the firing source alerts of each rule by their `equal` values once
//! (per tick), so checking an alert costs a lookup per rule, not a scan of every alert.

use std::collections::BTreeMap;

use crate::config::InhibitRule;
use crate::matchers::matches_all;
use crate::model::{Alert, Fingerprint};
use crate::time::Nanos;

/// The firing source alerts of each rule, by their values of the rule's `equal` labels.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<(InhibitRule, SourceIndex)>,
}

/// Source fingerprints by their values of the `equal` labels.
type SourceIndex = BTreeMap<Vec<Option<String>>, Vec<Fingerprint>>;

fn equal_values(rule: &InhibitRule, alert: &Alert) -> Vec<Option<String>> {
    rule.equal
        .iter()
        .map(|l| alert.labels.get(l).cloned())
        .collect()
}

impl Inhibitor {
    /// Indexes `alerts` (those firing at `now`) for `rules`.
    pub fn new(rules: &[InhibitRule], alerts: &BTreeMap<Fingerprint, Alert>, now: Nanos) -> Self {
        let rules = rules
            .iter()
            .map(|rule| {
                let mut index = SourceIndex::new();
                for (fp, a) in alerts {
                    if !a.is_resolved(now) && matches_all(&rule.source, &a.labels) {
                        index.entry(equal_values(rule, a)).or_default().push(*fp);
                    }
                }
                (rule.clone(), index)
            })
            .collect();
        Self { rules }
    }

    /// The firing alerts inhibiting `target`, sorted.
    pub fn inhibited_by(&self, target: &Alert) -> Vec<Fingerprint> {
        let target_fp = target.fingerprint();
        let mut out = Vec::new();
        for (rule, index) in &self.rules {
            if !matches_all(&rule.target, &target.labels) {
                continue;
            }
            if let Some(sources) = index.get(&equal_values(rule, target)) {
                out.extend(sources.iter().filter(|fp| **fp != target_fp));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The firing alerts inhibiting `target`, sorted (indexes `alerts` for this one question;
/// use an [`Inhibitor`] to ask about many alerts).
pub fn inhibited_by(
    rules: &[InhibitRule],
    alerts: &BTreeMap<Fingerprint, Alert>,
    target: &Alert,
    now: Nanos,
) -> Vec<Fingerprint> {
    Inhibitor::new(rules, alerts, now).inhibited_by(target)
}
