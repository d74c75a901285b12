//! The alerter configuration file (YAML, the Alertmanager layout with Strata extensions):
//!
//! ```yaml
//! route:                      # the routing tree; children inherit unset fields
//!   receiver: default         # required at the root
//!   group_by: [alertname]     # ['...'] groups by every label
//!   group_wait: 30s
//!   group_interval: 5m
//!   repeat_interval: 4h
//!   escalation: oncall        # Strata: an escalation policy for incidents of these groups
//!   routes:
//!     - matchers: ['service=~"cart|checkout"']
//!       receiver: shop
//!       continue: false
//!       mute_time_intervals: [nights]
//!       active_time_intervals: []
//! inhibit_rules:
//!   - source_matchers: ['severity="critical"']
//!     target_matchers: ['severity="warning"']
//!     equal: [service]
//! time_intervals:
//!   - name: nights
//!     time_intervals:
//!       - times: [{start_time: "22:00", end_time: "24:00"}]
//!         weekdays: ['monday:friday']
//!         days_of_month: ['1:5', '-1']
//!         months: ['january', '3:4']
//!         years: ['2026:2030']
//!         location: UTC       # UTC (default) or a fixed offset such as +02:00
//! receivers: [{name: default}, {name: shop, webhook_configs: [{url: "https://…"}]}]
//! escalation_policies:
//!   - name: oncall
//!     steps: [{after: 0m, receivers: [primary]}, {after: 15m, receivers: [secondary]}]
//!     repeat: 1               # run the whole list this many more times
//! correlation:
//!   window: 5m
//!   service_label: service    # falls back to service_name, then service.name
//!   by_labels: [[cluster, namespace]]
//! delivery: {timeout: 10s}
//! ```
//!
//! [`AlerterConfig::from_yaml`] parses and validates; its errors name where the problem is
//! (`route.routes[2].matchers[0]: …`). Time zones: only `UTC` and fixed offsets (`+02:00`,
//! `-05:30`) are supported; named zones (`Europe/Paris`, `Local`) are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{Datelike, FixedOffset, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

use crate::matchers::{Matcher, format_matchers, parse_matchers};
use crate::model::Labels;
use crate::receiver::{DeliveryConfig, Receiver};
use crate::time::Nanos;

/// Why a configuration is refused; `path` says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Syntax(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("reading {path}: {message}")]
    Io { path: String, message: String },
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlerterConfig {
    pub route: RouteConfig,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    #[serde(default)]
    pub escalation_policies: Vec<EscalationPolicy>,
    #[serde(default)]
    pub correlation: CorrelationConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

impl Default for AlerterConfig {
    /// Everything goes to the receiver `default`, which has no integrations.
    fn default() -> Self {
        Self {
            route: RouteConfig {
                receiver: Some("default".into()),
                ..RouteConfig::default()
            },
            inhibit_rules: Vec::new(),
            time_intervals: Vec::new(),
            receivers: vec![Receiver {
                name: "default".into(),
                webhook_configs: Vec::new(),
                pagerduty_configs: Vec::new(),
            }],
            escalation_policies: Vec::new(),
            correlation: CorrelationConfig::default(),
            delivery: DeliveryConfig::default(),
        }
    }
}

/// A node of the routing tree as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default, with = "crate::time::option_duration")]
    pub group_wait: Option<Duration>,
    #[serde(default, with = "crate::time::option_duration")]
    pub group_interval: Option<Duration>,
    #[serde(default, with = "crate::time::option_duration")]
    pub repeat_interval: Option<Duration>,
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub mute_time_intervals: Option<Vec<String>>,
    #[serde(default)]
    pub active_time_intervals: Option<Vec<String>>,
    #[serde(default)]
    pub escalation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default)]
    pub source_matchers: Vec<String>,
    #[serde(default)]
    pub target_matchers: Vec<String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<TimeSpecConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpecConfig {
    #[serde(default)]
    pub times: Vec<TimeRangeConfig>,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default)]
    pub days_of_month: Vec<String>,
    #[serde(default)]
    pub months: Vec<String>,
    #[serde(default)]
    pub years: Vec<String>,
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    pub start_time: String,
    pub end_time: String,
}

/// Who is paged, and when, while an incident is not acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    pub name: String,
    pub steps: Vec<EscalationStep>,
    /// How many more times the whole list runs after its last step. Each repetition starts
    /// one "last gap" after the previous one's last step (the gap between the last two
    /// steps, or the single step's `after`), so the list repeats with period
    /// `last.after - first.after + gap`.
    #[serde(default)]
    pub repeat: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// Measured from the incident's opening.
    #[serde(with = "crate::time::duration")]
    pub after: Duration,
    pub receivers: Vec<String>,
}

impl EscalationPolicy {
    /// Steps across all repetitions.
    pub fn total_steps(&self) -> usize {
        self.steps.len() * (self.repeat as usize + 1)
    }

    fn period(&self) -> Duration {
        let (Some(first), Some(last)) = (self.steps.first(), self.steps.last()) else {
            return Duration::ZERO;
        };
        let gap = if self.steps.len() >= 2 {
            last.after - self.steps[self.steps.len() - 2].after
        } else {
            last.after
        };
        last.after - first.after + gap
    }

    /// Step `i` (over repetitions): its index in `steps` and its delay after the opening.
    pub fn step(&self, i: usize) -> Option<(usize, Duration)> {
        if i >= self.total_steps() {
            return None;
        }
        let n = self.steps.len();
        let cycle = u32::try_from(i / n).unwrap_or(u32::MAX);
        let s = i % n;
        // Saturating: durations go up to u64::MAX ms, and 1000 repetitions of such a period
        // do not fit in a Duration (a step that far out never comes).
        Some((
            s,
            self.steps[s]
                .after
                .saturating_add(self.period().saturating_mul(cycle)),
        ))
    }
}

/// How alerts are correlated into incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    /// An alert notified within this long of an open incident's latest alert may join it.
    #[serde(with = "crate::time::duration")]
    pub window: Duration,
    /// The label naming an alert's service; when absent, `service_name` then `service.name`
    /// are tried.
    pub service_label: String,
    /// Alerts sharing the values of all labels of one entry join the same incident.
    pub by_labels: Vec<Vec<String>>,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            service_label: "service".into(),
            by_labels: Vec::new(),
        }
    }
}

impl CorrelationConfig {
    /// The service an alert concerns.
    pub fn service_of<'a>(&self, labels: &'a Labels) -> Option<&'a str> {
        [self.service_label.as_str(), "service_name", "service.name"]
            .iter()
            .find_map(|l| labels.get(*l).filter(|v| !v.is_empty()))
            .map(String::as_str)
    }
}

impl AlerterConfig {
    /// Parses and validates a file's text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: AlerterConfig =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        config.compile()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text)
    }

    /// Validates and resolves the configuration (inheritance, matchers, time intervals).
    pub fn compile(&self) -> Result<Compiled, ConfigError> {
        let mut names = BTreeSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            if r.name.is_empty() {
                return Err(invalid(format!("receivers[{i}].name"), "must not be empty"));
            }
            if !names.insert(r.name.clone()) {
                return Err(invalid(
                    format!("receivers[{i}].name"),
                    format!("duplicate receiver {:?}", r.name),
                ));
            }
            crate::notify::validate(r).map_err(|e| invalid(format!("receivers[{i}]"), e))?;
        }
        crate::notify::validate_delivery(&self.delivery).map_err(|e| invalid("delivery", e))?;
        let mut intervals = BTreeMap::new();
        for (i, t) in self.time_intervals.iter().enumerate() {
            let path = format!("time_intervals[{i}]");
            if t.name.is_empty() {
                return Err(invalid(format!("{path}.name"), "must not be empty"));
            }
            let specs = (t.time_intervals.iter().enumerate())
                .map(|(j, s)| TimeSpec::compile(s, &format!("{path}.time_intervals[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            if intervals.insert(t.name.clone(), specs).is_some() {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("duplicate time interval {:?}", t.name),
                ));
            }
        }
        let mut policies = BTreeMap::new();
        for (i, p) in self.escalation_policies.iter().enumerate() {
            let path = format!("escalation_policies[{i}]");
            if p.steps.is_empty() {
                return Err(invalid(format!("{path}.steps"), "needs at least one step"));
            }
            for (j, s) in p.steps.iter().enumerate() {
                if j > 0 && s.after <= p.steps[j - 1].after {
                    return Err(invalid(
                        format!("{path}.steps[{j}].after"),
                        "must be later than the previous step's",
                    ));
                }
                if s.receivers.is_empty() {
                    return Err(invalid(
                        format!("{path}.steps[{j}].receivers"),
                        "needs at least one receiver",
                    ));
                }
                for (k, r) in s.receivers.iter().enumerate() {
                    if !names.contains(r) {
                        return Err(invalid(
                            format!("{path}.steps[{j}].receivers[{k}]"),
                            format!("unknown receiver {r:?}"),
                        ));
                    }
                }
            }
            if p.repeat > 0 && p.period().is_zero() {
                return Err(invalid(
                    format!("{path}.repeat"),
                    "a repeated policy needs a last step with `after` > 0",
                ));
            }
            if p.repeat > 1000 {
                return Err(invalid(format!("{path}.repeat"), "at most 1000"));
            }
            if policies.insert(p.name.clone(), p.clone()).is_some() {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("duplicate escalation policy {:?}", p.name),
                ));
            }
        }
        let mut inhibit = Vec::new();
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            let path = format!("inhibit_rules[{i}]");
            let source = compile_matchers(&r.source_matchers, &format!("{path}.source_matchers"))?;
            let target = compile_matchers(&r.target_matchers, &format!("{path}.target_matchers"))?;
            if source.is_empty() || target.is_empty() {
                return Err(invalid(path, "needs source_matchers and target_matchers"));
            }
            inhibit.push(InhibitRule {
                source,
                target,
                equal: r.equal.clone(),
            });
        }
        let c = &self.correlation;
        if c.window.is_zero() {
            return Err(invalid("correlation.window", "must be > 0"));
        }
        if c.service_label.is_empty() {
            return Err(invalid("correlation.service_label", "must not be empty"));
        }
        for (i, l) in c.by_labels.iter().enumerate() {
            if l.is_empty() {
                return Err(invalid(
                    format!("correlation.by_labels[{i}]"),
                    "needs at least one label",
                ));
            }
        }
        let ctx = Ctx {
            receivers: &names,
            intervals: &intervals,
            policies: &policies,
        };
        let root = &self.route;
        if root.receiver.is_none() {
            return Err(invalid("route.receiver", "the root route needs a receiver"));
        }
        if !root.matchers.is_empty() {
            return Err(invalid(
                "route.matchers",
                "the root route must not have matchers",
            ));
        }
        let defaults = Route {
            key: String::new(),
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            matchers: Vec::new(),
            continue_: false,
            routes: Vec::new(),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            escalation: None,
        };
        let route = compile_route(root, &defaults, "route", "", &ctx)?;
        Ok(Compiled {
            route,
            inhibit,
            intervals,
            policies,
            correlation: self.correlation.clone(),
        })
    }
}

fn compile_matchers(list: &[String], path: &str) -> Result<Vec<Matcher>, ConfigError> {
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        out.extend(parse_matchers(m).map_err(|e| invalid(format!("{path}[{i}]"), e.to_string()))?);
    }
    Ok(out)
}

struct Ctx<'a> {
    receivers: &'a BTreeSet<String>,
    intervals: &'a BTreeMap<String, Vec<TimeSpec>>,
    policies: &'a BTreeMap<String, EscalationPolicy>,
}

fn compile_route(
    r: &RouteConfig,
    parent: &Route,
    path: &str,
    parent_key: &str,
    ctx: &Ctx,
) -> Result<Route, ConfigError> {
    let matchers = compile_matchers(&r.matchers, &format!("{path}.matchers"))?;
    let receiver = r
        .receiver
        .clone()
        .unwrap_or_else(|| parent.receiver.clone());
    if !ctx.receivers.contains(&receiver) {
        return Err(invalid(
            format!("{path}.receiver"),
            format!("unknown receiver {receiver:?}"),
        ));
    }
    let group_by = match &r.group_by {
        None => parent.group_by.clone(),
        Some(list) if list.iter().any(|l| l == "...") => {
            if list.len() > 1 {
                return Err(invalid(
                    format!("{path}.group_by"),
                    "'...' must be the only entry",
                ));
            }
            GroupBy::All
        }
        Some(list) => {
            let mut labels = list.clone();
            labels.sort();
            labels.dedup();
            GroupBy::Labels(labels)
        }
    };
    let dur = |v: Option<Duration>, inherited: Duration, name: &str| {
        let d = v.unwrap_or(inherited);
        if d.is_zero() {
            Err(invalid(format!("{path}.{name}"), "must be > 0"))
        } else {
            Ok(d)
        }
    };
    let group_wait = r.group_wait.unwrap_or(parent.group_wait);
    let group_interval = dur(r.group_interval, parent.group_interval, "group_interval")?;
    let repeat_interval = dur(r.repeat_interval, parent.repeat_interval, "repeat_interval")?;
    let check_intervals = |list: &Option<Vec<String>>, inherited: &Vec<String>, name: &str| {
        let list = list.clone().unwrap_or_else(|| inherited.clone());
        for (i, n) in list.iter().enumerate() {
            if !ctx.intervals.contains_key(n) {
                return Err(invalid(
                    format!("{path}.{name}[{i}]"),
                    format!("unknown time interval {n:?}"),
                ));
            }
        }
        Ok(list)
    };
    let mute = check_intervals(
        &r.mute_time_intervals,
        &parent.mute_time_intervals,
        "mute_time_intervals",
    )?;
    let active = check_intervals(
        &r.active_time_intervals,
        &parent.active_time_intervals,
        "active_time_intervals",
    )?;
    let escalation = r.escalation.clone().or_else(|| parent.escalation.clone());
    if let Some(p) = &escalation
        && !ctx.policies.contains_key(p)
    {
        return Err(invalid(
            format!("{path}.escalation"),
            format!("unknown escalation policy {p:?}"),
        ));
    }
    let mut route = Route {
        key: String::new(),
        receiver,
        group_by,
        group_wait,
        group_interval,
        repeat_interval,
        matchers,
        continue_: r.continue_,
        routes: Vec::new(),
        mute_time_intervals: mute,
        active_time_intervals: active,
        escalation,
    };
    route.key = if parent_key.is_empty() {
        "{}".to_string()
    } else {
        format!("{parent_key}/{}", format_matchers(&route.matchers))
    };
    let mut keys = BTreeSet::new();
    for (i, child) in r.routes.iter().enumerate() {
        let mut c = compile_route(
            child,
            &route,
            &format!("{path}.routes[{i}]"),
            &route.key,
            ctx,
        )?;
        if !keys.insert(c.key.clone()) {
            // Siblings with the same matchers keep distinct keys, as in Alertmanager.
            c.key = format!("{}/{i}", c.key);
            rekey_children(&mut c);
        }
        route.routes.push(c);
    }
    Ok(route)
}

fn rekey_children(route: &mut Route) {
    let key = route.key.clone();
    for (i, c) in route.routes.iter_mut().enumerate() {
        c.key = format!("{key}/{}/{i}", format_matchers(&c.matchers));
        rekey_children(c);
    }
}

/// How a route groups alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `['...']`: every label.
    All,
    Labels(Vec<String>),
}

/// A resolved route: every inherited field filled in.
#[derive(Debug, Clone)]
pub struct Route {
    /// Alertmanager's route key (`{}/{service="cart"}`), unique in the tree.
    pub key: String,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub routes: Vec<Route>,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub escalation: Option<String>,
}

impl Route {
    /// The routes an alert goes to: the deepest matching ones, first match unless
    /// `continue`, the node itself when no child matches.
    pub fn routes_for<'a>(&'a self, labels: &Labels) -> Vec<&'a Route> {
        let mut out = Vec::new();
        for child in &self.routes {
            if crate::matchers::matches_all(&child.matchers, labels) {
                out.extend(child.routes_for(labels));
                if !child.continue_ {
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(self);
        }
        out
    }

    /// Finds a route by key.
    pub fn find(&self, key: &str) -> Option<&Route> {
        if self.key == key {
            return Some(self);
        }
        self.routes.iter().find_map(|c| c.find(key))
    }

    /// The group labels of an alert on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// A compiled inhibition rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// A validated, resolved configuration, as the alerter uses it.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub route: Route,
    pub inhibit: Vec<InhibitRule>,
    pub intervals: BTreeMap<String, Vec<TimeSpec>>,
    pub policies: BTreeMap<String, EscalationPolicy>,
    pub correlation: CorrelationConfig,
}

impl Compiled {
    /// Whether a named time interval contains `now` (an unknown name: no).
    pub fn in_interval(&self, name: &str, now: Nanos) -> bool {
        self.intervals
            .get(name)
            .is_some_and(|specs| specs.iter().any(|s| s.contains(now)))
    }

    /// Whether notifications of `route` are suppressed at `now` by its mute or active
    /// time intervals.
    pub fn muted(&self, route: &Route, now: Nanos) -> bool {
        route
            .mute_time_intervals
            .iter()
            .any(|n| self.in_interval(n, now))
            || (!route.active_time_intervals.is_empty()
                && !route
                    .active_time_intervals
                    .iter()
                    .any(|n| self.in_interval(n, now)))
    }
}

/// One compiled entry of a time interval: every non-empty list must contain the instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSpec {
    /// Minutes of the day, `[start, end)`.
    pub times: Vec<(u32, u32)>,
    /// 0 = Sunday … 6 = Saturday, inclusive ranges.
    pub weekdays: Vec<(u32, u32)>,
    /// Inclusive; negative counts from the month's end (-1 = last day).
    pub days_of_month: Vec<(i32, i32)>,
    pub months: Vec<(u32, u32)>,
    pub years: Vec<(i32, i32)>,
    /// Seconds east of UTC.
    pub offset: i32,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn split_range(s: &str) -> (&str, &str) {
    // `-3:-1` splits at the ':'; a single value is its own range.
    match s.split_once(':') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    }
}

fn parse_hhmm(s: &str, path: &str) -> Result<u32, ConfigError> {
    let bad = || invalid(path, format!("invalid time {s:?} (want HH:MM)"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_offset(s: &str, path: &str) -> Result<i32, ConfigError> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Ok(0);
    }
    let bad = || {
        invalid(
            path,
            format!("unsupported location {s:?} (want UTC or a fixed offset such as +02:00)"),
        )
    };
    let sign = match s.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(bad()),
    };
    let minutes = parse_hhmm(&s[1..], path).map_err(|_| bad())?;
    if minutes > 18 * 60 {
        return Err(bad());
    }
    Ok(sign * i32::try_from(minutes * 60).map_err(|_| bad())?)
}

impl TimeSpec {
    fn compile(s: &TimeSpecConfig, path: &str) -> Result<Self, ConfigError> {
        let mut times = Vec::new();
        for (i, t) in s.times.iter().enumerate() {
            let p = format!("{path}.times[{i}]");
            let a = parse_hhmm(&t.start_time, &format!("{p}.start_time"))?;
            let b = parse_hhmm(&t.end_time, &format!("{p}.end_time"))?;
            if a >= b {
                return Err(invalid(p, "start_time must be before end_time"));
            }
            times.push((a, b));
        }
        let named = |list: &[String], names: &[&str], base: u32, field: &str| {
            list.iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = format!("{path}.{field}[{i}]");
                    let (a, b) = split_range(item);
                    let one = |v: &str| -> Result<u32, ConfigError> {
                        let lower = v.to_ascii_lowercase();
                        if let Some(i) = names.iter().position(|n| *n == lower) {
                            return Ok(u32::try_from(i).unwrap_or(0) + base);
                        }
                        match v.parse::<u32>() {
                            Ok(n) if base == 1 && (1..=12).contains(&n) => Ok(n),
                            _ => Err(invalid(&p, format!("invalid {field} entry {item:?}"))),
                        }
                    };
                    let (a, b) = (one(a)?, one(b)?);
                    if a > b {
                        return Err(invalid(&p, "range start after its end"));
                    }
                    Ok((a, b))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let weekdays = named(&s.weekdays, &WEEKDAYS, 0, "weekdays")?;
        let months = named(&s.months, &MONTHS, 1, "months")?;
        let mut days_of_month = Vec::new();
        for (i, item) in s.days_of_month.iter().enumerate() {
            let p = format!("{path}.days_of_month[{i}]");
            let (a, b) = split_range(item);
            let one = |v: &str| -> Result<i32, ConfigError> {
                match v.parse::<i32>() {
                    Ok(n) if n != 0 && (-31..=31).contains(&n) => Ok(n),
                    _ => Err(invalid(&p, format!("invalid day of month {item:?}"))),
                }
            };
            let (a, b) = (one(a)?, one(b)?);
            if a.signum() == b.signum() && a > b {
                return Err(invalid(&p, "range start after its end"));
            }
            days_of_month.push((a, b));
        }
        let mut years = Vec::new();
        for (i, item) in s.years.iter().enumerate() {
            let p = format!("{path}.years[{i}]");
            let (a, b) = split_range(item);
            let one = |v: &str| -> Result<i32, ConfigError> {
                match v.parse::<i32>() {
                    Ok(n) if (1..=9999).contains(&n) => Ok(n),
                    _ => Err(invalid(&p, format!("invalid year {item:?}"))),
                }
            };
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(invalid(&p, "range start after its end"));
            }
            years.push((a, b));
        }
        let offset = match &s.location {
            None => 0,
            Some(l) => parse_offset(l, &format!("{path}.location"))?,
        };
        Ok(Self {
            times,
            weekdays,
            days_of_month,
            months,
            years,
            offset,
        })
    }

    /// Whether the instant is inside.
    pub fn contains(&self, now: Nanos) -> bool {
        let Some(tz) = FixedOffset::east_opt(self.offset) else {
            return false;
        };
        let t = tz.timestamp_nanos(now);
        let minute = t.hour() * 60 + t.minute();
        if !self.times.is_empty() && !self.times.iter().any(|(a, b)| (*a..*b).contains(&minute)) {
            return false;
        }
        let wd = t.weekday().num_days_from_sunday();
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|(a, b)| (*a..=*b).contains(&wd))
        {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days_in_month = {
                let (y, m) = (t.year(), t.month());
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                chrono::NaiveDate::from_ymd_opt(ny, nm, 1)
                    .and_then(|d| d.pred_opt())
                    .map_or(31, |d| i32::try_from(d.day()).unwrap_or(31))
            };
            let day = i32::try_from(t.day()).unwrap_or(0);
            let abs = |d: i32| if d < 0 { days_in_month + 1 + d } else { d };
            if !self
                .days_of_month
                .iter()
                .any(|(a, b)| (abs(*a)..=abs(*b)).contains(&day))
            {
                return false;
            }
        }
        let month = t.month();
        if !self.months.is_empty() && !self.months.iter().any(|(a, b)| (*a..=*b).contains(&month)) {
            return false;
        }
        let year = t.year();
        if !self.years.is_empty() && !self.years.iter().any(|(a, b)| (*a..=*b).contains(&year)) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Caught by fuzz/fuzz_targets/alerter_config.rs, which walks every policy's steps: with
    /// durations near the largest accepted and many repetitions, a late step's delay
    /// overflowed `Duration` (a panic).
    #[test]
    fn escalation_steps_saturate_instead_of_overflowing() {
        let config = AlerterConfig::from_yaml(
            "route: {receiver: a, escalation: p}\n\
             receivers: [{name: a}]\n\
             escalation_policies:\n\
             - name: p\n  \
               steps: [{after: 1s, receivers: [a]}, {after: 500000000y, receivers: [a]}]\n  \
               repeat: 1000\n",
        )
        .unwrap();
        let p = &config.escalation_policies[0];
        assert_eq!(p.total_steps(), 2002);
        assert_eq!(p.step(0), Some((0, Duration::from_secs(1))));
        let mut previous = Duration::ZERO;
        for i in 0..p.total_steps() {
            let (_, delay) = p.step(i).unwrap();
            assert!(delay >= previous, "step {i}");
            previous = delay;
        }
        assert_eq!(p.step(2001), Some((1, Duration::MAX)));
        assert_eq!(p.step(2002), None);
    }
}
