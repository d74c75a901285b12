//! Silences: a time window during which alerts matching all of a silence's matchers are not
//! notified (as in Alertmanager). A silence is pending before `starts_at`, active until
//! `ends_at`, expired after; expiring one early sets `ends_at` to now.

use serde::{Deserialize, Serialize};

use crate::matchers::Matcher;
use crate::model::Labels;
use crate::time::Nanos;

/// The longest comment or creator name accepted, in bytes.
pub const MAX_SILENCE_TEXT: usize = 4096;

/// A silence's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

/// What a user gives to create or update a silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceSpec {
    pub matchers: Vec<Matcher>,
    pub starts_at: Nanos,
    pub ends_at: Nanos,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// A UUIDv7.
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Nanos,
    pub ends_at: Nanos,
    pub created_by: String,
    pub comment: String,
    pub updated_at: Nanos,
}

impl Silence {
    pub fn state(&self, now: Nanos) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether the silence is active at `now` and matches the labels.
    pub fn mutes(&self, labels: &Labels, now: Nanos) -> bool {
        self.state(now) == SilenceState::Active
            && crate::matchers::matches_all(&self.matchers, labels)
    }
}

/// Why a silence is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid silence: {0}")]
pub struct SilenceError(pub String);

impl SilenceSpec {
    /// The checks of Alertmanager: at least one matcher, not all matching the empty string,
    /// ends after it starts, ends in the future, a creator and a comment.
    pub fn validate(&self, now: Nanos) -> Result<(), SilenceError> {
        let err = |m: &str| Err(SilenceError(m.to_string()));
        if self.matchers.is_empty() {
            return err("at least one matcher is required");
        }
        if self.matchers.len() > crate::matchers::MAX_MATCHERS {
            return err("too many matchers");
        }
        if self.matchers.iter().all(|m| m.matches_value("")) {
            return err("at least one matcher must not match the empty string");
        }
        if self.ends_at <= self.starts_at {
            return err("ends_at must be after starts_at");
        }
        if self.ends_at <= now {
            return err("ends_at must be in the future");
        }
        if self.created_by.trim().is_empty() {
            return err("created_by is required");
        }
        if self.comment.trim().is_empty() {
            return err("comment is required");
        }
        if self.created_by.len() > MAX_SILENCE_TEXT || self.comment.len() > MAX_SILENCE_TEXT {
            return err("created_by or comment too long");
        }
        Ok(())
    }
}
