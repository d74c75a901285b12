//! Notifiers: what a receiver is sent, and delivery that survives failures and restarts.
//!
//! ```text
//! Alerter ─ Notification ─► Outbox::enqueue ─► DocStore (kind `notification`, one entry per
//!                                              │          receiver integration, `pending`)
//!                       Notifier::deliver_due ◄┘
//!                         │ receiver looked up by name in the current config
//!                         │ payload::build  (Alertmanager v4 | body_template | PagerDuty v2)
//!                         │ ssrf::Guard     (resolve, classify, pin the checked address)
//!                         │ sign            (Idempotency-Key, X-Strata-Signature)
//!                         ▼
//!                       POST ─► 2xx delivered · 5xx/429/timeout retry with backoff until the
//!                               deadline, then dead · other 4xx, refused targets: dead at once
//! ```
//!
//! ## The delivery contract: at least once, with a key
//!
//! Every request of an outbox entry carries `Idempotency-Key: <notification id>:<integration
//! index>`, the same on every retry and after restarts. An entry is persisted as `pending`
//! before [`Outbox::enqueue`] returns and is resumed by the next [`Notifier`] built on the
//! same store. If the process stops between a receiver's 2xx and the write of `delivered`,
//! the entry is sent again with the same key: receivers that must not act twice deduplicate
//! on `Idempotency-Key`. The alerter regenerates the same deterministic notification id
//! for the same event, and enqueuing an id that already exists changes nothing, so a
//! restart does not create a second entry.
//!
//! One notifier delivers per store: two nodes delivering from the same catalog would both
//! send (each with the same key).

pub mod deliver;
pub mod outbox;
pub mod payload;
pub mod sign;
pub mod ssrf;

pub use deliver::{Notifier, NotifyConfig, SharedConfig, backoff, validate_delivery};
pub use outbox::{
    Attempt, AttemptOutcome, DeliveryStatus, Integration, Metrics, Outbox, OutboxEntry,
};
pub use payload::validate;

/// Errors of the notification API (`/api/v1/notifications`) and of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No such entry for this tenant (another tenant's ids are not found either).
    #[error("notification {0:?} not found")]
    NotFound(String),
    /// The request does not fit the entry's state (e.g. retrying one that is not dead).
    #[error("{0}")]
    Conflict(String),
    /// A tenant id that cannot be stored.
    #[error("invalid tenant: {0}")]
    InvalidTenant(String),
    /// The document store failed.
    #[error("notification store: {0}")]
    Store(#[from] strata_storage::Error),
    /// A stored entry that does not parse (a bug or a hand-edited catalog).
    #[error("stored notification {id:?} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
}

impl NotifyError {
    /// The HTTP status the API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            NotifyError::NotFound(_) => 404,
            NotifyError::Conflict(_) => 409,
            NotifyError::InvalidTenant(_) => 400,
            NotifyError::Store(_) | NotifyError::Corrupt { .. } => 500,
        }
    }
}

pub type Result<T, E = NotifyError> = std::result::Result<T, E>;
