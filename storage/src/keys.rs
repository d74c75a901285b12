//! API keys: generation, parsing, hashing, scopes, and the key store with its cache.
//!
//! A key is `strata_<id>_<secret>`: `id` is 12 lowercase hex digits (48 random bits, public:
//! it names the key in listings and logs), `secret` is 64 lowercase hex digits (256 bits from
//! the operating system's CSPRNG). The catalog keeps only the SHA-256 of the whole key
//! (`api_keys.hash`); the key itself is shown once, when it is created. A fast hash is enough
//! because the secret has 256 bits of entropy: there is nothing to brute-force.
//!
//! [`KeyStore::verify`] answers from an in-memory cache: a key's row is read from the catalog
//! at most once per [`KEY_CACHE_TTL`] per node, so a revocation made on any node (or with
//! `strata keys revoke`) is in force everywhere within that bound; the node that revokes
//! forgets the key at once. Expiry is checked on every request against the cached row.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::audit::{Actor, AuditEvent};
use crate::{Error, Result, TenantId};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "strata_";
/// Hex digits of a key's public id.
pub const ID_HEX_LEN: usize = 12;
/// Hex digits of a key's secret (256 bits).
pub const SECRET_HEX_LEN: usize = 64;
/// How long a node trusts what it read about a key: the bound on how long a revoked key
/// keeps working on a node that did not revoke it.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries the cache holds at most (a flood of made-up key ids cannot grow it further).
const MAX_CACHED: usize = 100_000;
/// Longest key name, in characters.
pub const MAX_NAME_LEN: usize = 200;

/// What a key may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send OTLP data.
    Ingest,
    /// Run SQL queries.
    Read,
    /// Change the tenant's control-plane objects (rules, silences, dashboards).
    Write,
    /// Manage API keys; implies every scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}; scopes are ingest, read, write, admin"))
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope (what `admin` grants, and what every caller has when auth is off).
    pub fn all() -> Self {
        Scopes::from_iter(Scope::ALL)
    }

    /// Parses `ingest,read` (spaces around names allowed; at least one; no unknown names).
    pub fn parse(list: &str) -> std::result::Result<Self, String> {
        let mut scopes = Scopes::default();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            scopes.0 |= Scope::from_str(name)?.bit();
        }
        if scopes.is_empty() {
            return Err("at least one scope is needed: ingest, read, write or admin".into());
        }
        Ok(scopes)
    }

    /// Whether these scopes allow `scope` (`admin` allows everything).
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes named, in the order of [`Scope::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// One key's row in the catalog (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public id (the `<id>` of `strata_<id>_<secret>`).
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub scopes: Scopes,
    /// Lowercase hex SHA-256 of the whole key.
    pub hash: String,
    /// ns since the epoch.
    pub created_at: i64,
    /// ns since the epoch; `None`: never expires.
    pub expires_at: Option<i64>,
    /// ns since the epoch; `None`: not revoked.
    pub revoked_at: Option<i64>,
    /// Who created it: the id of the key that called the API, or `cli`.
    pub created_by: Option<String>,
}

impl ApiKey {
    /// Whether the key has expired at `now` (ns since the epoch).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Where key rows live. Narrow, so that the cache can be tested without a database.
///
/// Every change writes its audit row (`crate::audit`) in the same transaction: the change
/// and its row land together or not at all.
#[async_trait]
pub trait KeyCatalog: Send + Sync + fmt::Debug {
    /// Adds a key (its id must be new) and the audit row `audit`, all or nothing.
    async fn insert_key(&self, key: &ApiKey, audit: &AuditEvent) -> Result<()>;

    /// The key with this id, if any (revoked or expired ones included).
    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>>;

    /// Every key, or every key of one tenant, oldest first.
    async fn list_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>>;

    /// Marks the key revoked at `at` unless it already is (the first revocation time stays),
    /// records [`crate::audit::key_revoked`] by `by` in the same transaction, and returns the
    /// key; `None` (and no audit row) when there is no key with this id (of `tenant`, when
    /// given).
    async fn revoke_key(
        &self,
        id: &str,
        tenant: Option<&TenantId>,
        at: i64,
        by: &Actor,
    ) -> Result<Option<ApiKey>>;
}

/// A freshly generated key: its public id and the whole key to hand out once.
pub struct GeneratedKey {
    pub id: String,
    /// `strata_<id>_<secret>`: shown once, never stored.
    pub key: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Generates a key from the operating system's CSPRNG.
pub fn generate() -> Result<GeneratedKey> {
    let mut id = [0u8; ID_HEX_LEN / 2];
    let mut secret = [0u8; SECRET_HEX_LEN / 2];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut secret))
        .map_err(|e| Error::Io(std::io::Error::other(format!("no random numbers: {e}"))))?;
    let id = hex::encode(id);
    let key = format!("{KEY_PREFIX}{id}_{}", hex::encode(secret));
    Ok(GeneratedKey { id, key })
}

/// The id of a well-formed key (`strata_` + 12 hex + `_` + 64 hex, lowercase), else `None`.
pub fn parse_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (lower_hex(id, ID_HEX_LEN) && lower_hex(secret, SECRET_HEX_LEN)).then_some(id)
}

/// The SHA-256 of a key, as stored (lowercase hex).
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a presented key was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not of the form `strata_<id>_<secret>`.
    #[error("malformed API key")]
    Malformed,
    /// No key has this id, or the secret does not match.
    #[error("invalid API key")]
    Unknown,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key has been revoked")]
    Revoked,
    /// The catalog could not be read.
    #[error("cannot check the API key: {0}")]
    Catalog(#[from] Error),
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant: TenantId,
    pub name: String,
    pub scopes: Scopes,
    /// ns since the epoch.
    pub expires_at: Option<i64>,
    pub created_by: Option<String>,
}

struct Cached {
    /// `None`: no key has this id (a negative entry).
    key: Option<Arc<ApiKey>>,
    fetched: Instant,
}

/// Keys in the catalog, checked through a per-node cache (see the module docs).
pub struct KeyStore {
    catalog: Arc<dyn KeyCatalog>,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("catalog", &self.catalog)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl KeyStore {
    /// A store whose cache trusts a row for `ttl` ([`KEY_CACHE_TTL`] in a node).
    pub fn new(catalog: Arc<dyn KeyCatalog>, ttl: Duration) -> Self {
        Self {
            catalog,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How long a revocation may take to reach this node.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Creates a key on behalf of `by`, with its `key.create` audit row; returns its row and
    /// the key itself (to be shown once).
    pub async fn create(&self, new: NewKey, by: &Actor) -> Result<(ApiKey, String)> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
            return Err(Error::Config(format!(
                "a key name must have 1 to {MAX_NAME_LEN} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::Config(
                "a key name must not contain control characters".into(),
            ));
        }
        if new.scopes.is_empty() {
            return Err(Error::Config("a key needs at least one scope".into()));
        }
        let generated = generate()?;
        let row = ApiKey {
            id: generated.id.clone(),
            tenant: new.tenant,
            name: name.to_string(),
            scopes: new.scopes,
            hash: hash_key(&generated.key),
            created_at: crate::catalog::now_ns(),
            expires_at: new.expires_at,
            revoked_at: None,
            created_by: new.created_by,
        };
        self.catalog
            .insert_key(&row, &crate::audit::key_created(&row, by))
            .await?;
        // A negative entry for this id (someone guessed it) must not hide the new key.
        self.cache.lock().remove(&row.id);
        Ok((row, generated.key))
    }

    /// Checks a presented key: well-formed, known, matching, not revoked, not expired.
    pub async fn verify(&self, key: &str) -> std::result::Result<Arc<ApiKey>, KeyError> {
        let id = parse_key(key).ok_or(KeyError::Malformed)?;
        let row = self.lookup(id).await?.ok_or(KeyError::Unknown)?;
        if !constant_time_eq(hash_key(key).as_bytes(), row.hash.as_bytes()) {
            return Err(KeyError::Unknown);
        }
        if row.revoked_at.is_some() {
            return Err(KeyError::Revoked);
        }
        if row.is_expired(crate::catalog::now_ns()) {
            return Err(KeyError::Expired);
        }
        Ok(row)
    }

    /// The row of `id`, from the cache while it is fresh, else from the catalog.
    async fn lookup(&self, id: &str) -> Result<Option<Arc<ApiKey>>> {
        let fresh = (self.cache.lock().get(id))
            .filter(|c| c.fetched.elapsed() < self.ttl)
            .map(|c| c.key.clone());
        if let Some(key) = fresh {
            return Ok(key);
        }
        let fetched = Instant::now();
        let key = self.catalog.get_key(id).await?.map(Arc::new);
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            let ttl = self.ttl;
            cache.retain(|_, c| c.fetched.elapsed() < ttl);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            id.to_string(),
            Cached {
                key: key.clone(),
                fetched,
            },
        );
        Ok(key)
    }

    /// Every key, or every key of one tenant.
    pub async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>> {
        self.catalog.list_keys(tenant).await
    }

    /// The key with this id (of `tenant`, when given).
    pub async fn get(&self, id: &str, tenant: Option<&TenantId>) -> Result<Option<ApiKey>> {
        let key = self.catalog.get_key(id).await?;
        Ok(key.filter(|k| tenant.is_none_or(|t| &k.tenant == t)))
    }

    /// Revokes the key with this id (of `tenant`, when given) on behalf of `by`, with its
    /// `key.revoke` audit row; in force on this node at once.
    pub async fn revoke(
        &self,
        id: &str,
        tenant: Option<&TenantId>,
        by: &Actor,
    ) -> Result<Option<ApiKey>> {
        let revoked = self
            .catalog
            .revoke_key(id, tenant, crate::catalog::now_ns(), by)
            .await?;
        self.cache.lock().remove(id);
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key rows and audit rows in memory, counting reads.
    #[derive(Debug, Default)]
    struct MemKeys {
        keys: Mutex<Vec<ApiKey>>,
        audit: Mutex<Vec<AuditEvent>>,
        reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl KeyCatalog for MemKeys {
        async fn insert_key(&self, key: &ApiKey, audit: &AuditEvent) -> Result<()> {
            self.keys.lock().push(key.clone());
            self.audit.lock().push(audit.clone());
            Ok(())
        }
        async fn get_key(&self, id: &str) -> Result<Option<ApiKey>> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(self.keys.lock().iter().find(|k| k.id == id).cloned())
        }
        async fn list_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>> {
            Ok(self
                .keys
                .lock()
                .iter()
                .filter(|k| tenant.is_none_or(|t| &k.tenant == t))
                .cloned()
                .collect())
        }
        async fn revoke_key(
            &self,
            id: &str,
            tenant: Option<&TenantId>,
            at: i64,
            by: &Actor,
        ) -> Result<Option<ApiKey>> {
            let mut keys = self.keys.lock();
            let Some(k) = keys
                .iter_mut()
                .find(|k| k.id == id && tenant.is_none_or(|t| &k.tenant == t))
            else {
                return Ok(None);
            };
            self.audit.lock().push(crate::audit::key_revoked(k, by, at));
            k.revoked_at.get_or_insert(at);
            Ok(Some(k.clone()))
        }
    }

    impl MemKeys {
        fn reads(&self) -> usize {
            self.reads.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    fn by() -> Actor {
        Actor::new("cli", None)
    }

    fn new_key(tenant: &str, scopes: &str) -> NewKey {
        NewKey {
            tenant: TenantId::new(tenant).unwrap(),
            name: "test key".into(),
            scopes: Scopes::parse(scopes).unwrap(),
            expires_at: None,
            created_by: Some("cli".into()),
        }
    }

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.key, b.key);
        assert_ne!(a.id, b.id);
        assert_eq!(parse_key(&a.key), Some(a.id.as_str()));
        assert!(a.key.starts_with("strata_"));
        assert_eq!(
            a.key.len(),
            KEY_PREFIX.len() + ID_HEX_LEN + 1 + SECRET_HEX_LEN
        );
        // The secret is not printed by Debug.
        assert!(!format!("{a:?}").contains(&a.key[20..]));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = generate().unwrap().key;
        let upper = good.to_ascii_uppercase().replace("STRATA_", "strata_");
        for bad in [
            "",
            "strata_",
            "strata__",
            &good[1..],
            &good[..good.len() - 1],
            &format!("{good}0"),
            &good.replace("strata_", "strat4_"),
            &upper,
            &good.replacen('_', "-", 2),
            "strata_0123456789ab_zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn scopes_parse_print_and_admin_implies_all() {
        let s = Scopes::parse("read, ingest").unwrap();
        assert_eq!(s.to_string(), "ingest,read");
        assert!(s.allows(Scope::Read) && s.allows(Scope::Ingest));
        assert!(!s.allows(Scope::Write) && !s.allows(Scope::Admin));
        let admin = Scopes::parse("admin").unwrap();
        for scope in Scope::ALL {
            assert!(admin.allows(scope));
        }
        assert!(Scopes::parse("").is_err());
        assert!(Scopes::parse(" , ").is_err());
        assert!(Scopes::parse("read,delete").unwrap_err().contains("delete"));
        assert_eq!(Scopes::all().to_string(), "ingest,read,write,admin");
    }

    #[tokio::test]
    async fn verify_accepts_good_keys_and_refuses_the_rest() {
        let mem = Arc::new(MemKeys::default());
        let store = KeyStore::new(mem.clone(), Duration::from_secs(3600));
        let (row, key) = store
            .create(new_key("acme", "ingest"), &by())
            .await
            .unwrap();
        assert_eq!(row.hash, hash_key(&key));
        assert!(!format!("{row:?}").contains(&key));
        let verified = store.verify(&key).await.unwrap();
        assert_eq!(verified.tenant.as_str(), "acme");
        assert_eq!(verified.id, row.id);
        // Right id, wrong secret.
        let forged = format!("strata_{}_{}", row.id, "0".repeat(SECRET_HEX_LEN));
        assert!(matches!(
            store.verify(&forged).await,
            Err(KeyError::Unknown)
        ));
        // Unknown id.
        let other = generate().unwrap().key;
        assert!(matches!(store.verify(&other).await, Err(KeyError::Unknown)));
        assert!(matches!(
            store.verify("Bearer nonsense").await,
            Err(KeyError::Malformed)
        ));
    }

    #[tokio::test]
    async fn expired_keys_are_refused() {
        let store = KeyStore::new(Arc::new(MemKeys::default()), Duration::from_secs(3600));
        let mut past = new_key("acme", "read");
        past.expires_at = Some(crate::catalog::now_ns() - 1);
        let (_, key) = store.create(past, &by()).await.unwrap();
        assert!(matches!(store.verify(&key).await, Err(KeyError::Expired)));
        let mut future = new_key("acme", "read");
        future.expires_at = Some(crate::catalog::now_ns() + 3_600_000_000_000);
        let (_, key) = store.create(future, &by()).await.unwrap();
        assert!(store.verify(&key).await.is_ok());
    }

    #[tokio::test]
    async fn cache_answers_without_the_catalog_until_the_ttl() {
        let mem = Arc::new(MemKeys::default());
        let store = KeyStore::new(mem.clone(), Duration::from_secs(3600));
        let (_, key) = store
            .create(new_key("acme", "ingest"), &by())
            .await
            .unwrap();
        for _ in 0..100 {
            store.verify(&key).await.unwrap();
        }
        assert_eq!(mem.reads(), 1, "one catalog read for many checks");
        // Unknown ids are cached too.
        let unknown = generate().unwrap().key;
        for _ in 0..10 {
            assert!(store.verify(&unknown).await.is_err());
        }
        assert_eq!(mem.reads(), 2);
        // A zero TTL reads every time.
        let uncached = KeyStore::new(mem.clone(), Duration::ZERO);
        uncached.verify(&key).await.unwrap();
        uncached.verify(&key).await.unwrap();
        assert_eq!(mem.reads(), 4);
    }

    #[tokio::test]
    async fn revocation_is_immediate_here_and_after_the_ttl_elsewhere() {
        let mem = Arc::new(MemKeys::default());
        let here = KeyStore::new(mem.clone(), Duration::from_secs(3600));
        // Another node on the same catalog, whose cache entries are stale at once.
        let elsewhere = KeyStore::new(mem.clone(), Duration::ZERO);
        // And one that has cached the key for an hour.
        let cached_elsewhere = KeyStore::new(mem.clone(), Duration::from_secs(3600));
        let (row, key) = here.create(new_key("acme", "ingest"), &by()).await.unwrap();
        here.verify(&key).await.unwrap();
        elsewhere.verify(&key).await.unwrap();
        cached_elsewhere.verify(&key).await.unwrap();
        let revoked = here.revoke(&row.id, None, &by()).await.unwrap().unwrap();
        let first = revoked.revoked_at.unwrap();
        assert!(matches!(here.verify(&key).await, Err(KeyError::Revoked)));
        assert!(matches!(
            elsewhere.verify(&key).await,
            Err(KeyError::Revoked)
        ));
        // Within its TTL a node may still accept the key: that is the documented bound.
        assert!(cached_elsewhere.verify(&key).await.is_ok());
        // Revoking again keeps the first time.
        let again = here.revoke(&row.id, None, &by()).await.unwrap().unwrap();
        assert_eq!(again.revoked_at, Some(first));
    }

    #[tokio::test]
    async fn other_tenants_keys_are_invisible_through_the_tenant_filter() {
        let store = KeyStore::new(Arc::new(MemKeys::default()), KEY_CACHE_TTL);
        let (a, key_a) = store.create(new_key("a", "admin"), &by()).await.unwrap();
        let (b, _) = store.create(new_key("b", "admin"), &by()).await.unwrap();
        let ta = TenantId::new("a").unwrap();
        assert_eq!(store.get(&b.id, Some(&ta)).await.unwrap(), None);
        assert_eq!(store.get(&a.id, Some(&ta)).await.unwrap(), Some(a.clone()));
        assert_eq!(store.revoke(&b.id, Some(&ta), &by()).await.unwrap(), None);
        assert_eq!(store.list(Some(&ta)).await.unwrap(), vec![a]);
        assert_eq!(store.list(None).await.unwrap().len(), 2);
        store.verify(&key_a).await.unwrap();
    }

    #[tokio::test]
    async fn names_and_scopes_are_validated() {
        let store = KeyStore::new(Arc::new(MemKeys::default()), KEY_CACHE_TTL);
        let mut k = new_key("a", "read");
        k.name = " ".into();
        assert!(store.create(k, &by()).await.is_err());
        let mut k = new_key("a", "read");
        k.name = "a\nb".into();
        assert!(store.create(k, &by()).await.is_err());
        let mut k = new_key("a", "read");
        k.scopes = Scopes::default();
        assert!(store.create(k, &by()).await.is_err());
    }

    #[tokio::test]
    async fn create_and_revoke_record_who_and_from_where() {
        let mem = Arc::new(MemKeys::default());
        let store = KeyStore::new(mem.clone(), KEY_CACHE_TTL);
        let by = Actor::new("0123456789ab", Some("10.0.0.7:40000".into()));
        let (row, key) = store.create(new_key("acme", "read"), &by).await.unwrap();
        store.revoke(&row.id, None, &by).await.unwrap().unwrap();
        // Unknown keys change nothing and record nothing.
        assert_eq!(store.revoke("000000000000", None, &by).await.unwrap(), None);
        let log = mem.audit.lock().clone();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, vec!["key.create", "key.revoke"]);
        for e in &log {
            assert_eq!(e.actor, "0123456789ab");
            assert_eq!(e.remote_addr.as_deref(), Some("10.0.0.7:40000"));
            assert_eq!(e.target.as_deref(), Some(row.id.as_str()));
            assert_eq!(e.tenant.as_str(), "acme");
            assert!(!e.detail.contains(&key) && !e.detail.contains(&row.hash));
        }
    }
}
