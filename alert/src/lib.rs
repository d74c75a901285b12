//! # strata-alert
//!
//! Alert rules written in SQL, their evaluation, alert state, and the alerter (routing,
//! grouping, inhibition, silences, correlation into incidents, escalation) with its
//! notifiers (docs/ALERTING.md).
//!
//! ```text
//! scheduler::Scheduler ─ SQL ─► strata_query ─► eval::RuleState ─► Alerter::receive ◄─ POST /api/v2/alerts
//!                                                  │ alerts table        │ route, group, inhibit,
//!                                                  ▼                     │ silence, correlate,
//!                                            alert_history            ▼ escalate
//!                                                              notify::Outbox ─► webhooks
//! ```
//!
//! Every component takes its time from a [`time::Clock`]: tests drive each timer with a
//! [`time::ManualClock`]. State lives in the catalog through [`strata_storage::DocStore`].

pub mod alerter;
pub mod config;
pub mod dispatch;
pub mod eval;
pub mod incident;
pub mod inhibit;
pub mod intake;
pub mod matchers;
pub mod model;
pub mod notify;
pub mod receiver;
pub mod rule_store;
pub mod rules;
pub mod scheduler;
pub mod silence;
pub mod template;
pub mod time;

pub use alerter::{AlertState, AlertStatus, Alerter, AlerterError};
pub use config::{AlerterConfig, ConfigError};
pub use incident::{Incident, IncidentError, IncidentStatus};
pub use matchers::{Matcher, MatcherError};
pub use model::{
    Alert, AlertSink, AlertSource, Fingerprint, Labels, Notification, NotificationKind, Status,
};
pub use silence::{Silence, SilenceSpec, SilenceState};
pub use time::{Clock, ManualClock, Nanos, SystemClock};
