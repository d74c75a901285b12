//! Per-tenant rule groups: saved through the API as documents (kind [`RULE_GROUP_KIND`], id =
//! the group's name) in the [`DocStore`], or loaded read-only from `--rules` files.
//!
//! Every save is validated, including each rule's SQL, which is planned (never run) through
//! [`RuleQuerier::validate`]. Creations, updates and deletions write their audit row
//! ([`RULE_GROUP_CREATE`], …) in the same transaction as the document. Groups from rule files
//! cannot be changed through the store ([`RuleStoreError::ReadOnly`]); their names are taken
//! for the API too.
//!
//! The store also publishes each rule's live status, recorded by the scheduler after each
//! evaluation, for `GET /api/v1/rules` ([`RuleStore::rules_status`]), and signals changes to
//! the scheduler ([`RuleStore::subscribe`]).
//!
//! A create checks that the name is free, then writes: two concurrent creates of one name
//! may both succeed, the later one winning (the document store has no compare-and-set).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;
use serde_json::json;
use strata_storage::audit::{Actor, AuditEvent, Outcome};
use strata_storage::{Doc, DocStore, TenantId};
use tokio::sync::watch;

use crate::eval::{Health, RuleStatus, StateCounts};
use crate::rules::{RuleError, RuleGroup};
use crate::scheduler::RuleQuerier;
use crate::time::{Clock, Nanos};

/// Document kind of a saved rule group.
pub const RULE_GROUP_KIND: &str = "rule_group";
/// Document kind of a group's instance states (`BTreeMap<alert name, eval::RuleState>`).
pub const RULE_STATE_KIND: &str = "rule_state";
/// Audit actions.
pub const RULE_GROUP_CREATE: &str = "rule_group.create";
pub const RULE_GROUP_UPDATE: &str = "rule_group.update";
pub const RULE_GROUP_DELETE: &str = "rule_group.delete";

/// Why a rule store request failed.
#[derive(Debug, thiserror::Error)]
pub enum RuleStoreError {
    /// The group is invalid (syntax, names, templates, or SQL that does not plan). HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// HTTP 404.
    #[error("rule group {0:?} not found")]
    NotFound(String),
    /// A create of a name that exists. HTTP 409.
    #[error("rule group {0:?} already exists")]
    AlreadyExists(String),
    /// The group comes from a `--rules` file. HTTP 409.
    #[error(
        "rule group {0:?} is loaded from a rule file (--rules) and is read-only; change the file \
         and restart instead"
    )]
    ReadOnly(String),
    /// The catalog failed. HTTP 500 (the message goes to the log, not the client).
    #[error("rule store: {0}")]
    Storage(#[from] strata_storage::Error),
    /// A stored document does not parse. HTTP 500.
    #[error("rule store: stored rule group {0:?} is corrupt: {1}")]
    Corrupt(String, String),
}

impl RuleStoreError {
    /// The HTTP status the API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            RuleStoreError::Invalid(_) => 400,
            RuleStoreError::NotFound(_) => 404,
            RuleStoreError::AlreadyExists(_) | RuleStoreError::ReadOnly(_) => 409,
            RuleStoreError::Storage(_) | RuleStoreError::Corrupt(..) => 500,
        }
    }
}

impl From<RuleError> for RuleStoreError {
    fn from(e: RuleError) -> Self {
        RuleStoreError::Invalid(e.to_string())
    }
}

pub type Result<T, E = RuleStoreError> = std::result::Result<T, E>;

/// Where a group comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupOrigin {
    /// A `--rules` file: read-only.
    File,
    /// Saved through the API.
    Api,
}

/// A group as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredGroup {
    #[serde(flatten)]
    pub group: RuleGroup,
    pub origin: GroupOrigin,
    /// When it was last saved (API groups).
    pub updated_at: Option<Nanos>,
}

/// One rule's live status (`GET /api/v1/rules`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatusView {
    pub alert: String,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation: Option<Nanos>,
    pub evaluation_duration_seconds: f64,
    pub counts: StateCounts,
}

/// One group with its rules' status (`GET /api/v1/rules`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    pub name: String,
    pub origin: GroupOrigin,
    pub interval_seconds: f64,
    pub rules: Vec<RuleStatusView>,
}

type StatusKey = (String, String);
/// Each rule's name, status and instance counts, in group order.
type GroupRuleStatus = Vec<(String, RuleStatus, StateCounts)>;

/// Rule groups of every tenant.
pub struct RuleStore {
    docs: Arc<dyn DocStore>,
    querier: Arc<dyn RuleQuerier>,
    clock: Arc<dyn Clock>,
    files: RwLock<Arc<Vec<(TenantId, RuleGroup)>>>,
    changes: watch::Sender<u64>,
    status: RwLock<HashMap<StatusKey, GroupRuleStatus>>,
}

impl std::fmt::Debug for RuleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleStore")
            .field("file_groups", &self.files.read().len())
            .finish()
    }
}

impl RuleStore {
    /// A store of API groups in `docs`, validating SQL with `querier`.
    pub fn new(
        docs: Arc<dyn DocStore>,
        querier: Arc<dyn RuleQuerier>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            docs,
            querier,
            clock,
            files: RwLock::new(Arc::new(Vec::new())),
            changes: watch::channel(0).0,
            status: RwLock::new(HashMap::new()),
        }
    }

    /// Adds the read-only groups of `--rules` ([`crate::rules::load_rules`]).
    pub fn with_file_groups(self, groups: Vec<(TenantId, RuleGroup)>) -> Self {
        *self.files.write() = Arc::new(groups);
        self
    }

    /// Replaces the groups of `--rules` (a reload); the scheduler picks the change up.
    pub fn replace_file_groups(&self, groups: Vec<(TenantId, RuleGroup)>) {
        *self.files.write() = Arc::new(groups);
        self.changes.send_modify(|v| *v += 1);
    }

    /// The document store the groups live in.
    pub fn docs(&self) -> &Arc<dyn DocStore> {
        &self.docs
    }

    /// Changes whenever a group is created, updated or deleted.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn file_group(&self, tenant: &TenantId, name: &str) -> Option<RuleGroup> {
        (self.files.read().iter())
            .find(|(t, g)| t == tenant && g.name == name)
            .map(|(_, g)| g.clone())
    }

    /// Validates `group` for `tenant`, SQL included; returns it as stored (no `tenant` key).
    pub async fn validate(&self, tenant: &TenantId, group: &RuleGroup) -> Result<RuleGroup> {
        let mut group = group.clone();
        match group.tenant.take() {
            Some(t) if t != tenant.as_str() => {
                return Err(RuleStoreError::Invalid(format!(
                    "group {:?} names tenant {t:?}; groups saved through the API belong to the \
                     caller's tenant ({tenant}): leave 'tenant' out",
                    group.name
                )));
            }
            _ => {}
        }
        group.validate()?;
        for rule in &group.rules {
            self.querier
                .validate(tenant, &rule.evaluated_sql())
                .await
                .map_err(|e| {
                    RuleStoreError::Invalid(format!(
                        "group {:?}, rule {:?}: the SQL does not plan: {e}",
                        group.name, rule.alert
                    ))
                })?;
        }
        Ok(group)
    }

    /// Saves a new group.
    pub async fn create(
        &self,
        tenant: &TenantId,
        group: RuleGroup,
        by: &Actor,
    ) -> Result<StoredGroup> {
        let group = self.validate(tenant, &group).await?;
        if self.file_group(tenant, &group.name).is_some()
            || self
                .docs
                .get_doc(tenant, RULE_GROUP_KIND, &group.name)
                .await?
                .is_some()
        {
            return Err(RuleStoreError::AlreadyExists(group.name));
        }
        self.save(tenant, group, by, RULE_GROUP_CREATE).await
    }

    /// Replaces group `name` (the group's own name must be `name`: no renames).
    pub async fn update(
        &self,
        tenant: &TenantId,
        name: &str,
        group: RuleGroup,
        by: &Actor,
    ) -> Result<StoredGroup> {
        if self.file_group(tenant, name).is_some() {
            return Err(RuleStoreError::ReadOnly(name.to_string()));
        }
        if group.name != name {
            return Err(RuleStoreError::Invalid(format!(
                "the group is named {:?}, not {name:?}: groups cannot be renamed (create the \
                 new one, then delete the old one)",
                group.name
            )));
        }
        let group = self.validate(tenant, &group).await?;
        if self
            .docs
            .get_doc(tenant, RULE_GROUP_KIND, name)
            .await?
            .is_none()
        {
            return Err(RuleStoreError::NotFound(name.to_string()));
        }
        self.save(tenant, group, by, RULE_GROUP_UPDATE).await
    }

    async fn save(
        &self,
        tenant: &TenantId,
        group: RuleGroup,
        by: &Actor,
        action: &str,
    ) -> Result<StoredGroup> {
        let now = self.clock.now();
        let body = serde_json::to_string(&group)
            .map_err(|e| RuleStoreError::Corrupt(group.name.clone(), e.to_string()))?;
        let doc = Doc {
            tenant: tenant.clone(),
            kind: RULE_GROUP_KIND.into(),
            id: group.name.clone(),
            body,
            updated_at: now,
        };
        let event = AuditEvent::at(
            now,
            tenant.clone(),
            by,
            action,
            Some(&group.name),
            json!({
                "name": group.name,
                "interval": crate::time::format_duration(group.interval()),
                "rules": group.rules.iter().map(|r| r.alert.as_str()).collect::<Vec<_>>(),
            }),
            Outcome::Success,
        );
        self.docs.put_doc(&doc, Some(&event)).await?;
        self.changes.send_modify(|v| *v += 1);
        Ok(StoredGroup {
            group,
            origin: GroupOrigin::Api,
            updated_at: Some(now),
        })
    }

    /// Deletes group `name` (and its saved instance states).
    pub async fn delete(&self, tenant: &TenantId, name: &str, by: &Actor) -> Result<()> {
        if self.file_group(tenant, name).is_some() {
            return Err(RuleStoreError::ReadOnly(name.to_string()));
        }
        let event = AuditEvent::at(
            self.clock.now(),
            tenant.clone(),
            by,
            RULE_GROUP_DELETE,
            Some(name),
            json!({ "name": name }),
            Outcome::Success,
        );
        if !(self.docs)
            .delete_doc(tenant, RULE_GROUP_KIND, name, Some(&event))
            .await?
        {
            return Err(RuleStoreError::NotFound(name.to_string()));
        }
        self.docs
            .delete_doc(tenant, RULE_STATE_KIND, name, None)
            .await?;
        self.changes.send_modify(|v| *v += 1);
        Ok(())
    }

    /// One group of `tenant`.
    pub async fn get(&self, tenant: &TenantId, name: &str) -> Result<StoredGroup> {
        if let Some(group) = self.file_group(tenant, name) {
            return Ok(file_stored(&group));
        }
        match self.docs.get_doc(tenant, RULE_GROUP_KIND, name).await? {
            Some(doc) => stored_of(&doc),
            None => Err(RuleStoreError::NotFound(name.to_string())),
        }
    }

    /// `tenant`'s groups, by name (file groups and API groups together).
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<StoredGroup>> {
        let files = self.files.read().clone();
        let mut out: Vec<StoredGroup> = (files.iter())
            .filter(|(t, _)| t == tenant)
            .map(|(_, g)| file_stored(g))
            .collect();
        for doc in self.docs.list_docs(Some(tenant), RULE_GROUP_KIND).await? {
            out.push(stored_of(&doc)?);
        }
        out.sort_by(|a, b| a.group.name.cmp(&b.group.name));
        Ok(out)
    }

    /// Every tenant's groups: file groups first, then API groups by tenant and name. An API
    /// group shadowed by a file group of the same name is left out.
    pub async fn all_groups(&self) -> Result<Vec<(TenantId, StoredGroup)>> {
        let files = self.files.read().clone();
        let mut out: Vec<(TenantId, StoredGroup)> = (files.iter())
            .map(|(t, g)| (t.clone(), file_stored(g)))
            .collect();
        for doc in self.docs.list_docs(None, RULE_GROUP_KIND).await? {
            if self.file_group(&doc.tenant, &doc.id).is_none() {
                out.push((doc.tenant.clone(), stored_of(&doc)?));
            }
        }
        Ok(out)
    }

    /// `tenant`'s groups with each rule's health, instance counts and last error.
    pub async fn rules_status(&self, tenant: &TenantId) -> Result<Vec<GroupStatus>> {
        let groups = self.list(tenant).await?;
        let status = self.status.read();
        Ok(groups
            .into_iter()
            .map(|stored| {
                let key = (tenant.as_str().to_string(), stored.group.name.clone());
                let live = status.get(&key);
                let rules = (stored.group.rules.iter())
                    .map(|rule| {
                        let (st, counts) = live
                            .and_then(|l| l.iter().find(|(a, ..)| *a == rule.alert))
                            .map(|(_, s, c)| (s.clone(), *c))
                            .unwrap_or_default();
                        RuleStatusView {
                            alert: rule.alert.clone(),
                            health: st.health,
                            last_error: st.last_error,
                            last_evaluation: st.last_evaluation,
                            evaluation_duration_seconds: st.evaluation_duration.as_secs_f64(),
                            counts,
                        }
                    })
                    .collect();
                GroupStatus {
                    name: stored.group.name.clone(),
                    origin: stored.origin,
                    interval_seconds: stored.group.interval().as_secs_f64(),
                    rules,
                }
            })
            .collect())
    }

    /// Records a group's rules' status after an evaluation (the scheduler).
    pub fn record_status(
        &self,
        tenant: &TenantId,
        group: &str,
        rules: Vec<(String, RuleStatus, StateCounts)>,
    ) {
        self.status
            .write()
            .insert((tenant.as_str().to_string(), group.to_string()), rules);
    }

    /// Forgets a removed group's status.
    pub fn forget_status(&self, tenant: &TenantId, group: &str) {
        self.status
            .write()
            .remove(&(tenant.as_str().to_string(), group.to_string()));
    }
}

fn file_stored(group: &RuleGroup) -> StoredGroup {
    let mut group = group.clone();
    group.tenant = None;
    StoredGroup {
        group,
        origin: GroupOrigin::File,
        updated_at: None,
    }
}

fn stored_of(doc: &Doc) -> Result<StoredGroup> {
    let group: RuleGroup = serde_json::from_str(&doc.body)
        .map_err(|e| RuleStoreError::Corrupt(doc.id.clone(), e.to_string()))?;
    Ok(StoredGroup {
        group,
        origin: GroupOrigin::Api,
        updated_at: Some(doc.updated_at),
    })
}

#[cfg(test)]
mod tests;
