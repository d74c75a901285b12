//! The audit log: who did what to a tenant's administrative objects, when, and from where.
//!
//! Rows live in the catalog's `audit_log` table (`migrations/0005_audit_log.sql`). The log is
//! append-only by construction: [`AuditLog`] can add a row and list a tenant's rows, and
//! nothing in Strata updates or deletes them. Changes that are audited write their row in the
//! same catalog transaction as the change itself (see [`crate::keys::KeyCatalog`]), so a
//! change without its audit row cannot happen; a refused request (outcome
//! [`Outcome::Denied`]) is appended on its own with [`AuditLog::append_audit`].
//!
//! The `detail` of a row is a JSON object describing the change (a key's name, scopes,
//! expiry…); it never holds a secret.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::keys::ApiKey;
use crate::{Result, TenantId, TimeRange};

/// The actor of changes made with the `strata keys` command line.
pub const ACTOR_CLI: &str = "cli";
/// The actor of API requests with auth `none` (no key names the caller).
pub const ACTOR_ANONYMOUS: &str = "anonymous";

/// `POST /api/v1/keys`, `strata keys create`.
pub const KEY_CREATE: &str = "key.create";
/// `DELETE /api/v1/keys/{id}`, `strata keys revoke`.
pub const KEY_REVOKE: &str = "key.revoke";
/// `GET /api/v1/keys` (audited only when refused).
pub const KEY_LIST: &str = "key.list";
/// `GET /api/v1/keys/{id}` (audited only when refused).
pub const KEY_GET: &str = "key.get";

/// How an audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The change was made.
    Success,
    /// The caller was authenticated but lacked the scope: nothing changed.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "success" => Ok(Outcome::Success),
            "denied" => Ok(Outcome::Denied),
            other => Err(format!("unknown audit outcome {other:?}")),
        }
    }
}

/// Who acts, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A key id, `bootstrap`, [`ACTOR_CLI`] or [`ACTOR_ANONYMOUS`].
    pub id: String,
    /// The client's `IP:port` for API requests; `user@host` for the CLI; `None` when unknown.
    pub remote_addr: Option<String>,
}

impl Actor {
    pub fn new(id: impl Into<String>, remote_addr: Option<String>) -> Self {
        Self {
            id: id.into(),
            remote_addr,
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// A UUIDv7 (ids sort by creation time).
    pub id: String,
    /// The tenant whose object the action concerns (for a denied request: the caller's).
    pub tenant: TenantId,
    /// ns since the epoch.
    pub time: i64,
    pub actor: String,
    /// `key.create`, `key.revoke`, … (the constants of this module).
    pub action: String,
    /// What the action concerns, e.g. a key id.
    pub target: Option<String>,
    /// A JSON object (text).
    pub detail: String,
    pub remote_addr: Option<String>,
    pub outcome: Outcome,
}

impl AuditEvent {
    /// An event happening now.
    pub fn new(
        tenant: TenantId,
        by: &Actor,
        action: &str,
        target: Option<&str>,
        detail: Value,
        outcome: Outcome,
    ) -> Self {
        Self::at(
            crate::catalog::now_ns(),
            tenant,
            by,
            action,
            target,
            detail,
            outcome,
        )
    }

    /// An event at `time` (ns since the epoch).
    pub fn at(
        time: i64,
        tenant: TenantId,
        by: &Actor,
        action: &str,
        target: Option<&str>,
        detail: Value,
        outcome: Outcome,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            tenant,
            time,
            actor: by.id.clone(),
            action: action.to_string(),
            target: target.map(str::to_string),
            detail: detail.to_string(),
            remote_addr: by.remote_addr.clone(),
            outcome,
        }
    }
}

/// Where audit rows live: append and read, nothing else.
#[async_trait]
pub trait AuditLog: Send + Sync + fmt::Debug {
    /// Adds a row.
    async fn append_audit(&self, event: &AuditEvent) -> Result<()>;

    /// `tenant`'s rows whose `time` is in `range` (both ends inclusive), oldest first, at
    /// most `limit` of them.
    async fn list_audit(
        &self,
        tenant: &TenantId,
        range: TimeRange,
        limit: Option<usize>,
    ) -> Result<Vec<AuditEvent>>;
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What the log says about a key: never its hash or secret.
fn key_detail(key: &ApiKey) -> serde_json::Map<String, Value> {
    let Value::Object(map) = json!({
        "name": key.name,
        "scopes": key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "expires_at": key.expires_at.map(rfc3339),
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// The row recording that `key` was created by `by`.
pub fn key_created(key: &ApiKey, by: &Actor) -> AuditEvent {
    AuditEvent::at(
        key.created_at,
        key.tenant.clone(),
        by,
        KEY_CREATE,
        Some(&key.id),
        Value::Object(key_detail(key)),
        Outcome::Success,
    )
}

/// The row recording that `by` revoked `key` (as it was before) at `at`.
pub fn key_revoked(key: &ApiKey, by: &Actor, at: i64) -> AuditEvent {
    let mut detail = key_detail(key);
    detail.insert(
        "already_revoked".into(),
        Value::Bool(key.revoked_at.is_some()),
    );
    AuditEvent::at(
        at,
        key.tenant.clone(),
        by,
        KEY_REVOKE,
        Some(&key.id),
        Value::Object(detail),
        Outcome::Success,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scopes;

    #[test]
    fn key_events_name_the_key_and_never_its_hash() {
        let key = ApiKey {
            id: "0123456789ab".into(),
            tenant: TenantId::new("acme").unwrap(),
            name: "collector".into(),
            scopes: Scopes::parse("ingest,read").unwrap(),
            hash: crate::keys::hash_key("strata_secret"),
            created_at: 5,
            expires_at: Some(0),
            revoked_at: None,
            created_by: Some("cli".into()),
        };
        let by = Actor::new("cli", Some("root@box".into()));
        let created = key_created(&key, &by);
        assert_eq!(created.time, 5);
        assert_eq!(created.action, KEY_CREATE);
        assert_eq!(created.target.as_deref(), Some("0123456789ab"));
        assert_eq!(created.remote_addr.as_deref(), Some("root@box"));
        let detail: Value = serde_json::from_str(&created.detail).unwrap();
        assert_eq!(
            detail,
            json!({"name": "collector", "scopes": ["ingest", "read"],
                   "expires_at": "1970-01-01T00:00:00.000Z"})
        );
        assert!(!created.detail.contains(&key.hash));
        let revoked = key_revoked(&key, &by, 9);
        assert_eq!((revoked.time, revoked.action.as_str()), (9, KEY_REVOKE));
        assert!(revoked.detail.contains(r#""already_revoked":false"#));
        assert_ne!(created.id, revoked.id);
        assert_eq!("denied".parse::<Outcome>(), Ok(Outcome::Denied));
        assert!("ok".parse::<Outcome>().is_err());
    }
}
