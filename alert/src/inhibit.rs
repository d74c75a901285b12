//! Inhibition: a firing alert matching a rule's source matchers mutes the alerts matching its
//! target matchers that have the same values of the `equal` labels (a label absent from both
//! counts as equal, as in Alertmanager). An alert never inhibits itself.

use std::collections::BTreeMap;

use crate::config::InhibitRule;
use crate::matchers::matches_all;
use crate::model::{Alert, Fingerprint};
use crate::time::Nanos;

/// The firing alerts inhibiting `target`, sorted.
pub fn inhibited_by(
    rules: &[InhibitRule],
    alerts: &BTreeMap<Fingerprint, Alert>,
    target: &Alert,
    now: Nanos,
) -> Vec<Fingerprint> {
    let target_fp = target.fingerprint();
    let mut out = Vec::new();
    for rule in rules {
        if !matches_all(&rule.target, &target.labels) {
            continue;
        }
        for (fp, source) in alerts {
            if *fp == target_fp
                || source.is_resolved(now)
                || !matches_all(&rule.source, &source.labels)
            {
                continue;
            }
            let equal = rule
                .equal
                .iter()
                .all(|l| source.labels.get(l) == target.labels.get(l));
            if equal {
                out.push(*fp);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
