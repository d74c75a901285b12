//! Rule evaluation semantics: pure state transitions driven by `now` values, no I/O.
//!
//! A rule's result rows are its active instances. Each row's labels are its columns other
//! than `value`, as text (NULLs dropped), then the rule's `labels`, then `alertname` (later
//! ones win); `value` is the row's numeric `value` column as `f64` (any integer, float or
//! decimal type). A row whose `value` is NULL is not an instance. A result without a `value`
//! column, with a non-numeric one, or with two rows of the same labels makes the rule
//! unhealthy.
//!
//! States follow Prometheus exactly:
//!
//! - a new instance is **pending** while it has been active for less than `for`, then
//!   **firing** (with `for: 0` it fires at its first evaluation);
//! - when its row disappears, a pending instance is dropped (history `inactive`); a firing
//!   one keeps firing until it has been missing for `keep_firing_for`, then is **resolved**;
//! - a resolved instance is kept, and reported to the sink with `ends_at` set at every
//!   evaluation, for [`RESOLVED_RETENTION`] (15 minutes), then forgotten. If its row comes
//!   back meanwhile, it starts over as pending.
//!
//! A rule whose SQL fails (or whose result is unusable) is **unhealthy**: its health, error,
//! evaluation time and duration are kept, and its instances are left exactly as they were —
//! not advanced (a pending one does not fire), not resolved, and firing ones are still sent
//! to the sink. A failing query says nothing about the condition, and resolving on error
//! would page "resolved" on every transient storage hiccup (Prometheus does the same).
//!
//! **Flapping**: an instance that started or stopped firing at least [`FLAP_CHANGES`] (4)
//! times within [`FLAP_WINDOW`] (30 minutes) is flapping. While it flaps, the sink keeps
//! seeing the last state it was sent before the flapping began (a firing alert stays firing;
//! a resolved one is not re-announced), and the instance is not forgotten. It stops flapping
//! once it has not changed for a whole window; from then on the sink sees its real state
//! again. History rows are written for every real state change, flapping or not.
//!
//! Firing alerts are sent with `ends_at` = now + 4 × max(interval, 1m) (Prometheus'
//! `ValidUntil`), so an alerter stops considering them firing if evaluations stop.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};

use crate::model::{ALERTNAME, Alert, AlertSource, Fingerprint, Labels};
use crate::rules::Rule;
use crate::time::{Nanos, nanos};

/// How long a resolved instance is kept (and re-sent as resolved) before it is forgotten.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);
/// The window over which changes between firing and not firing are counted.
pub const FLAP_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Changes within [`FLAP_WINDOW`] that make an instance flapping.
pub const FLAP_CHANGES: usize = 4;
/// The result column holding an instance's value.
pub const VALUE_COLUMN: &str = "value";

/// An instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Active for less than `for`.
    Pending,
    Firing,
    /// Resolved (it fired, then its row went away), kept for [`RESOLVED_RETENTION`].
    Inactive,
}

/// A state change, as written to the alert history (`alerts` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Pending,
    Firing,
    /// A firing instance ended.
    Resolved,
    /// A pending instance ended without firing.
    Inactive,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Pending => "pending",
            Change::Firing => "firing",
            Change::Resolved => "resolved",
            Change::Inactive => "inactive",
        }
    }
}

/// One state change of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub time: Nanos,
    pub fingerprint: Fingerprint,
    pub labels: Labels,
    pub annotations: Labels,
    pub change: Change,
    pub value: Option<f64>,
}

/// One alert instance of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub labels: Labels,
    pub annotations: Labels,
    pub value: f64,
    pub state: InstanceState,
    /// When it became active (pending).
    pub active_at: Nanos,
    #[serde(default)]
    pub fired_at: Option<Nanos>,
    #[serde(default)]
    pub resolved_at: Option<Nanos>,
    /// When its row went away while it fired (`keep_firing_for` counts from here).
    #[serde(default)]
    pub keep_firing_since: Option<Nanos>,
    /// When it started or stopped firing, within the last [`FLAP_WINDOW`].
    #[serde(default)]
    pub flips: Vec<Nanos>,
    #[serde(default)]
    pub flapping: bool,
    /// What the sink was last sent for it (what it keeps being sent while flapping).
    #[serde(default)]
    pub reported: Option<Alert>,
}

/// A rule's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not evaluated yet.
    #[default]
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// How a rule's last evaluation went.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleStatus {
    pub health: Health,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_evaluation: Option<Nanos>,
    #[serde(default, with = "crate::time::duration")]
    pub evaluation_duration: Duration,
}

/// A rule's instances and status: what survives a restart (saved as kind `rule_state`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleState {
    pub instances: BTreeMap<Fingerprint, Instance>,
    #[serde(default)]
    pub status: RuleStatus,
}

/// When and how an evaluation ran.
#[derive(Debug, Clone, Copy)]
pub struct EvalAt {
    pub now: Nanos,
    /// The group's interval (for the firing alerts' `ends_at`).
    pub interval: Duration,
    /// How long the query took.
    pub took: Duration,
}

/// What one evaluation produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// For the sink: every firing instance, and resolved ones still retained.
    pub alerts: Vec<Alert>,
    /// For the history.
    pub changes: Vec<StateChange>,
    /// Whether the instances changed in a way worth saving (not just values).
    pub changed: bool,
}

/// Counts of a rule's instances by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub pending: usize,
    pub firing: usize,
    pub resolved: usize,
}

impl RuleState {
    pub fn counts(&self) -> StateCounts {
        let mut c = StateCounts::default();
        for i in self.instances.values() {
            match i.state {
                InstanceState::Pending => c.pending += 1,
                InstanceState::Firing => c.firing += 1,
                InstanceState::Inactive => c.resolved += 1,
            }
        }
        c
    }

    /// Applies one evaluation's result (`Err`: the query failed with that message).
    pub fn evaluate(
        &mut self,
        rule: &Rule,
        result: Result<&[RecordBatch], String>,
        at: EvalAt,
    ) -> Evaluation {
        let now = at.now;
        self.status.last_evaluation = Some(now);
        self.status.evaluation_duration = at.took;
        let rows = result.and_then(|batches| {
            let rows = rows_of(batches)?;
            let mut out = BTreeMap::new();
            for (row_labels, value) in rows {
                let labels = labels_for(rule, row_labels);
                let fp = Fingerprint::of(&labels);
                if out.insert(fp, (labels.clone(), value)).is_some() {
                    return Err(format!(
                        "two result rows have the same labels {}; make the columns other than \
                         'value' distinguish them (e.g. GROUP BY them)",
                        serde_json::to_string(&labels).unwrap_or_default()
                    ));
                }
            }
            Ok(out)
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) => {
                self.status.health = Health::Err;
                self.status.last_error = Some(error);
                // Instances stay as they are; firing ones are still reported.
                let mut eval = Evaluation::default();
                for instance in self.instances.values_mut() {
                    if let Some(alert) = send(instance, at) {
                        eval.alerts.push(alert);
                    }
                }
                return eval;
            }
        };
        self.status.health = Health::Ok;
        self.status.last_error = None;

        let templates = rule.annotation_templates();
        let hold = nanos(rule.hold());
        let keep = nanos(rule.keep_firing());
        let retention = nanos(RESOLVED_RETENTION);
        let mut eval = Evaluation::default();
        let mut present = HashSet::new();

        for (fp, (labels, value)) in rows {
            present.insert(fp);
            let annotations = render(&templates, &labels, value, &rule.alert);
            match self.instances.get_mut(&fp) {
                Some(i) if i.state != InstanceState::Inactive => {
                    i.value = value;
                    i.annotations = annotations;
                    if i.keep_firing_since.take().is_some() {
                        eval.changed = true;
                    }
                }
                existing => {
                    // New, or a resolved one coming back: it starts over (keeping its flap
                    // record and what the sink last saw).
                    let (flips, flapping, reported) = existing
                        .map(|i| (std::mem::take(&mut i.flips), i.flapping, i.reported.take()))
                        .unwrap_or_default();
                    self.instances.insert(
                        fp,
                        Instance {
                            labels,
                            annotations,
                            value,
                            state: InstanceState::Pending,
                            active_at: now,
                            fired_at: None,
                            resolved_at: None,
                            keep_firing_since: None,
                            flips,
                            flapping,
                            reported,
                        },
                    );
                    eval.changed = true;
                    if hold > 0 {
                        eval.changes
                            .push(change(&self.instances[&fp], fp, Change::Pending, now));
                    }
                }
            }
        }

        let mut forget = Vec::new();
        for (fp, i) in self.instances.iter_mut() {
            let was_firing = i.state == InstanceState::Firing;
            if present.contains(fp) {
                if i.state == InstanceState::Pending && now - i.active_at >= hold {
                    i.state = InstanceState::Firing;
                    i.fired_at = Some(now);
                    eval.changed = true;
                    eval.changes.push(change(i, *fp, Change::Firing, now));
                }
            } else {
                match i.state {
                    InstanceState::Pending => {
                        eval.changed = true;
                        eval.changes.push(change(i, *fp, Change::Inactive, now));
                        if i.flapping {
                            // Kept (as resolved) so its flap record and held state survive.
                            i.state = InstanceState::Inactive;
                            i.resolved_at = Some(now);
                        } else {
                            forget.push(*fp);
                            continue;
                        }
                    }
                    InstanceState::Firing => {
                        let since = *i.keep_firing_since.get_or_insert(now);
                        if keep > 0 && now - since < keep {
                            if since == now {
                                eval.changed = true;
                            }
                        } else {
                            i.state = InstanceState::Inactive;
                            i.resolved_at = Some(now);
                            i.keep_firing_since = None;
                            eval.changed = true;
                            eval.changes.push(change(i, *fp, Change::Resolved, now));
                        }
                    }
                    InstanceState::Inactive => {}
                }
            }
            // Flapping: count changes between firing and not firing within the window.
            if was_firing != (i.state == InstanceState::Firing) {
                i.flips.push(now);
            }
            let window_start = now - nanos(FLAP_WINDOW);
            let before = i.flips.len();
            i.flips.retain(|t| *t > window_start);
            if i.flips.len() != before {
                eval.changed = true;
            }
            if !i.flapping && i.flips.len() >= FLAP_CHANGES {
                i.flapping = true;
                eval.changed = true;
            } else if i.flapping && i.flips.is_empty() {
                i.flapping = false;
                eval.changed = true;
            }
            if i.state == InstanceState::Inactive
                && !i.flapping
                && i.resolved_at.is_some_and(|r| now - r >= retention)
                && !i.reported.as_ref().is_some_and(reported_firing)
            {
                forget.push(*fp);
            }
        }
        for fp in forget {
            self.instances.remove(&fp);
            eval.changed = true;
        }
        for instance in self.instances.values_mut() {
            if let Some(alert) = send(instance, at) {
                eval.alerts.push(alert);
            }
        }
        eval
    }
}

/// What the sink is sent for `i` now, remembering it as `reported` unless flapping.
fn send(i: &mut Instance, at: EvalAt) -> Option<Alert> {
    let valid_until = at.now + 4 * nanos(at.interval.max(Duration::from_secs(60)));
    if i.flapping {
        // The last stable state: a firing alert is kept alive, a resolved one not repeated.
        let held = i.reported.as_mut()?;
        if !reported_firing(held) {
            return None;
        }
        held.updated_at = at.now;
        held.ends_at = Some(valid_until);
        return Some(held.clone());
    }
    let (starts_at, ends_at) = match i.state {
        InstanceState::Pending => return None,
        InstanceState::Firing => (i.fired_at.unwrap_or(i.active_at), valid_until),
        InstanceState::Inactive => (
            i.fired_at.unwrap_or(i.active_at),
            i.resolved_at.unwrap_or(at.now),
        ),
    };
    let alert = Alert {
        labels: i.labels.clone(),
        annotations: i.annotations.clone(),
        starts_at,
        ends_at: Some(ends_at),
        updated_at: at.now,
        generator_url: String::new(),
        source: AlertSource::Rule,
        value: Some(i.value),
    };
    i.reported = Some(alert.clone());
    Some(alert)
}

/// Whether `alert` was sent as firing: its end lies after the time it was sent (firing
/// alerts carry a validity, resolved ones the time they resolved).
fn reported_firing(alert: &Alert) -> bool {
    alert.ends_at.is_none_or(|end| end > alert.updated_at)
}

fn change(i: &Instance, fp: Fingerprint, change: Change, now: Nanos) -> StateChange {
    StateChange {
        time: now,
        fingerprint: fp,
        labels: i.labels.clone(),
        annotations: i.annotations.clone(),
        change,
        value: Some(i.value),
    }
}

/// A row's labels, then the rule's, then `alertname`.
fn labels_for(rule: &Rule, mut labels: Labels) -> Labels {
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert(ALERTNAME.to_string(), rule.alert.clone());
    labels
}

/// Renders a rule's annotations for one instance.
pub fn render(
    templates: &[(String, crate::template::Template)],
    labels: &Labels,
    value: f64,
    alertname: &str,
) -> Labels {
    let lookup = |path: &str| -> Option<String> {
        match path {
            "$value" => Some(value.to_string()),
            "$alertname" => Some(alertname.to_string()),
            _ => path
                .strip_prefix("$labels.")
                .and_then(|name| labels.get(name).cloned()),
        }
    };
    (templates.iter())
        .map(|(name, t)| (name.clone(), t.render(&lookup)))
        .collect()
}

/// Each row's labels (columns other than `value`, as text, NULLs dropped) and value; rows
/// whose value is NULL are left out.
pub fn rows_of(batches: &[RecordBatch]) -> Result<Vec<(Labels, f64)>, String> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let Some(value_index) = schema.index_of(VALUE_COLUMN).ok() else {
            let columns: Vec<&str> = (schema.fields().iter())
                .map(|f| f.name().as_str())
                .collect();
            return Err(format!(
                "the result has no 'value' column (columns: {}); name the number to alert on \
                 'value', e.g. SELECT count(*) AS value",
                columns.join(", ")
            ));
        };
        let value_column = batch.column(value_index);
        if !value_column.data_type().is_numeric() {
            return Err(format!(
                "column 'value' is {}, not a number",
                value_column.data_type()
            ));
        }
        let values = arrow::compute::cast(value_column, &DataType::Float64)
            .map_err(|e| format!("column 'value': {e}"))?;
        let values = values.as_primitive::<Float64Type>();
        let options = FormatOptions::default();
        let mut formatters = Vec::new();
        for (index, field) in schema.fields().iter().enumerate() {
            if index == value_index {
                continue;
            }
            let column = batch.column(index);
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)
                .map_err(|e| format!("column {:?}: {e}", field.name()))?;
            formatters.push((field.name().clone(), column, formatter));
        }
        for row in 0..batch.num_rows() {
            if values.is_null(row) {
                continue;
            }
            let mut labels = Labels::new();
            for (name, column, formatter) in &formatters {
                if column.is_valid(row) {
                    labels.insert(name.clone(), formatter.value(row).to_string());
                }
            }
            out.push((labels, values.value(row)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
