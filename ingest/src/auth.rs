//! Who is calling: the [`Auth`] handle turns a request's `Authorization` and `X-Scope-OrgID`
//! into a [`Principal`] (tenant, scopes, key id). Used by both OTLP receivers and by the HTTP
//! API of `strata-server`; `docs/SECURITY.md` states the rules.
//!
//! - **`none`**: every caller has every scope; the tenant is `X-Scope-OrgID`, else `default`;
//!   `Authorization` is ignored.
//! - **`keys`**: `Authorization: Bearer <key>` (gRPC metadata `authorization`) is required and
//!   names the tenant. A missing, malformed, unknown, expired or revoked key is
//!   [`AuthError::Unauthenticated`]; an `X-Scope-OrgID` naming another tenant than the key's is
//!   [`AuthError::PermissionDenied`] (one equal to it is allowed, so clients configured with the
//!   header keep working); a key without the needed scope is `PermissionDenied` too.

use std::fmt;
use std::sync::Arc;

use strata_storage::keys::{KeyError, KeyStore, constant_time_eq, hash_key};
use strata_storage::{InvalidTenant, Scope, Scopes, TenantId};

use crate::Ingestor;

/// Header (HTTP) and metadata key (gRPC) that carries the key.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// The key id of the principal of `STRATA_BOOTSTRAP_ADMIN_KEY`.
pub const BOOTSTRAP_KEY_ID: &str = "bootstrap";

/// Shortest `STRATA_BOOTSTRAP_ADMIN_KEY` accepted.
pub const MIN_BOOTSTRAP_KEY_LEN: usize = 32;

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every read and write of the request is confined to.
    pub tenant: TenantId,
    pub scopes: Scopes,
    /// The id of the key used (`bootstrap` for `STRATA_BOOTSTRAP_ADMIN_KEY`); `None` with auth
    /// `none`.
    pub key_id: Option<String>,
}

impl Principal {
    /// `Ok` when the principal's scopes allow `scope`, else `PermissionDenied`.
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied(format!(
                "this API key lacks the {scope} scope (it has {})",
                self.scopes
            )))
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No valid key: HTTP 401 with `WWW-Authenticate: Bearer`, gRPC `UNAUTHENTICATED`.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid key that may not do this: HTTP 403, gRPC `PERMISSION_DENIED`.
    #[error("{0}")]
    PermissionDenied(String),
    /// `X-Scope-OrgID` is not a valid tenant id (auth `none`): HTTP 400, gRPC
    /// `INVALID_ARGUMENT`.
    #[error("invalid tenant id: {0}")]
    InvalidTenant(#[from] InvalidTenant),
    /// The catalog could not be read to check the key: HTTP 503, gRPC `UNAVAILABLE`.
    #[error("{0}")]
    Unavailable(String),
}

/// How requests are authenticated; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    mode: Arc<Mode>,
}

enum Mode {
    None,
    Keys {
        store: Arc<KeyStore>,
        bootstrap: Option<Bootstrap>,
    },
}

struct Bootstrap {
    hash: String,
    tenant: TenantId,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.mode {
            Mode::None => f.write_str("Auth::None"),
            Mode::Keys { bootstrap, .. } => f
                .debug_struct("Auth::Keys")
                .field("bootstrap_tenant", &bootstrap.as_ref().map(|b| &b.tenant))
                .finish(),
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self::none()
    }
}

impl Auth {
    /// No authentication (single user): the tenant comes from `X-Scope-OrgID`.
    pub fn none() -> Self {
        Self {
            mode: Arc::new(Mode::None),
        }
    }

    /// API keys from `store`; `bootstrap` is an extra admin key of a tenant
    /// (`STRATA_BOOTSTRAP_ADMIN_KEY`, `STRATA_BOOTSTRAP_TENANT`).
    pub fn keys(store: Arc<KeyStore>, bootstrap: Option<(&str, TenantId)>) -> Self {
        Self {
            mode: Arc::new(Mode::Keys {
                store,
                bootstrap: bootstrap.map(|(key, tenant)| Bootstrap {
                    hash: hash_key(key),
                    tenant,
                }),
            }),
        }
    }

    /// Whether API keys are required.
    pub fn is_enabled(&self) -> bool {
        matches!(*self.mode, Mode::Keys { .. })
    }

    /// The principal of a request, from the raw values of its `Authorization` and
    /// `X-Scope-OrgID` headers (HTTP) or metadata (gRPC).
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        tenant_header: Option<&[u8]>,
    ) -> Result<Principal, AuthError> {
        let (store, bootstrap) = match &*self.mode {
            Mode::None => {
                let tenant = Ingestor::tenant(tenant_header).map_err(|e| match e {
                    crate::IngestError::InvalidTenant(e) => AuthError::InvalidTenant(e),
                    other => AuthError::Unauthenticated(other.to_string()),
                })?;
                return Ok(Principal {
                    tenant,
                    scopes: Scopes::all(),
                    key_id: None,
                });
            }
            Mode::Keys { store, bootstrap } => (store, bootstrap),
        };
        let key = bearer(authorization)?;
        let principal = match bootstrap {
            Some(b) if constant_time_eq(hash_key(key).as_bytes(), b.hash.as_bytes()) => Principal {
                tenant: b.tenant.clone(),
                scopes: Scopes::all(),
                key_id: Some(BOOTSTRAP_KEY_ID.into()),
            },
            _ => {
                let row = store.verify(key).await.map_err(|e| match e {
                    KeyError::Catalog(e) => {
                        tracing::warn!(error = %e, "cannot check an API key");
                        AuthError::Unavailable(
                            "cannot check the API key right now (catalog unavailable); retry"
                                .into(),
                        )
                    }
                    other => AuthError::Unauthenticated(other.to_string()),
                })?;
                Principal {
                    tenant: row.tenant.clone(),
                    scopes: row.scopes,
                    key_id: Some(row.id.clone()),
                }
            }
        };
        if let Some(raw) = tenant_header
            && raw != principal.tenant.as_str().as_bytes()
        {
            return Err(AuthError::PermissionDenied(format!(
                "X-Scope-OrgID names another tenant than the API key's ({}); omit the header \
                 or send the key's tenant",
                principal.tenant
            )));
        }
        Ok(principal)
    }
}

impl Auth {
    /// The tenant an OTLP export writes to: the key's, which needs the `ingest` scope (auth
    /// `keys`), or the header's (auth `none`).
    pub async fn ingest_tenant(
        &self,
        authorization: Option<&[u8]>,
        tenant_header: Option<&[u8]>,
    ) -> Result<TenantId, crate::IngestError> {
        let principal = self.authenticate(authorization, tenant_header).await?;
        principal.require(Scope::Ingest)?;
        Ok(principal.tenant)
    }
}

/// The key of an `Authorization: Bearer <key>` value.
fn bearer(authorization: Option<&[u8]>) -> Result<&str, AuthError> {
    let raw = authorization.ok_or_else(|| {
        AuthError::Unauthenticated(
            "an API key is required: send Authorization: Bearer <key>".into(),
        )
    })?;
    let text = std::str::from_utf8(raw)
        .map_err(|_| AuthError::Unauthenticated("malformed Authorization header".into()))?
        .trim();
    let (scheme, key) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(AuthError::Unauthenticated(
            "the Authorization header must be Bearer <key>".into(),
        ));
    }
    Ok(key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use strata_storage::keys::NewKey;

    async fn keys_auth() -> (Auth, Arc<KeyStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = Arc::new(strata_storage::SqlCatalog::connect(&url).await.unwrap());
        let store = Arc::new(KeyStore::new(catalog, Duration::from_secs(3600)));
        let bootstrap = "b".repeat(40);
        let auth = Auth::keys(
            store.clone(),
            Some((bootstrap.as_str(), TenantId::new("ops").unwrap())),
        );
        (auth, store, dir)
    }

    async fn create(store: &KeyStore, tenant: &str, scopes: &str) -> String {
        store
            .create(
                NewKey {
                    tenant: TenantId::new(tenant).unwrap(),
                    name: "k".into(),
                    scopes: Scopes::parse(scopes).unwrap(),
                    expires_at: None,
                    created_by: None,
                },
                &strata_storage::Actor::new("cli", None),
            )
            .await
            .unwrap()
            .1
    }

    #[tokio::test]
    async fn none_takes_the_tenant_header() {
        let auth = Auth::none();
        let p = auth.authenticate(None, Some(b"acme")).await.unwrap();
        assert_eq!(p.tenant.as_str(), "acme");
        assert_eq!(p.scopes, Scopes::all());
        let p = auth
            .authenticate(Some(b"Bearer whatever"), None)
            .await
            .unwrap();
        assert_eq!(p.tenant.as_str(), "default");
        assert!(matches!(
            auth.authenticate(None, Some(b"a/b")).await,
            Err(AuthError::InvalidTenant(_))
        ));
    }

    #[tokio::test]
    async fn keys_name_the_tenant_and_refuse_spoofing() {
        let (auth, store, _dir) = keys_auth().await;
        let key = create(&store, "acme", "ingest").await;
        let header = format!("Bearer {key}");
        let p = auth
            .authenticate(Some(header.as_bytes()), None)
            .await
            .unwrap();
        assert_eq!(p.tenant.as_str(), "acme");
        assert!(p.require(Scope::Ingest).is_ok());
        assert!(matches!(
            p.require(Scope::Read),
            Err(AuthError::PermissionDenied(_))
        ));
        // The same tenant in the header is fine; another is refused.
        let lower = format!("bearer  {key} ");
        assert!(
            auth.authenticate(Some(lower.as_bytes()), Some(b"acme"))
                .await
                .is_ok()
        );
        let err = auth
            .authenticate(Some(header.as_bytes()), Some(b"other"))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::PermissionDenied(_)), "{err:?}");
        assert!(err.to_string().contains("X-Scope-OrgID"));
    }

    #[tokio::test]
    async fn missing_bad_and_revoked_keys_are_unauthenticated() {
        let (auth, store, _dir) = keys_auth().await;
        let key = create(&store, "acme", "read").await;
        for header in [
            None,
            Some("".to_string()),
            Some("Basic abc".into()),
            Some("Bearer".into()),
            Some(format!("Token {key}")),
            Some(format!("Bearer {}", &key[..key.len() - 1])),
            Some("Bearer strata_000000000000_".to_string() + &"0".repeat(64)),
        ] {
            let err = auth
                .authenticate(header.as_deref().map(str::as_bytes), None)
                .await
                .unwrap_err();
            assert!(matches!(err, AuthError::Unauthenticated(_)), "{header:?}");
            // The message never echoes the key.
            assert!(!err.to_string().contains(&key[20..]));
        }
        let id = strata_storage::keys::parse_key(&key).unwrap().to_string();
        store
            .revoke(&id, None, &strata_storage::Actor::new("cli", None))
            .await
            .unwrap();
        let header = format!("Bearer {key}");
        let err = auth
            .authenticate(Some(header.as_bytes()), None)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::Unauthenticated("the API key has been revoked".into())
        );
    }

    #[tokio::test]
    async fn bootstrap_key_is_admin_of_its_tenant() {
        let (auth, _store, _dir) = keys_auth().await;
        let header = format!("Bearer {}", "b".repeat(40));
        let p = auth
            .authenticate(Some(header.as_bytes()), None)
            .await
            .unwrap();
        assert_eq!(p.tenant.as_str(), "ops");
        assert_eq!(p.key_id.as_deref(), Some(BOOTSTRAP_KEY_ID));
        assert!(p.require(Scope::Admin).is_ok());
        let wrong = format!("Bearer {}", "b".repeat(39));
        assert!(
            auth.authenticate(Some(wrong.as_bytes()), None)
                .await
                .is_err()
        );
        assert!(
            auth.authenticate(Some(header.as_bytes()), Some(b"default"))
                .await
                .is_err()
        );
    }
}
