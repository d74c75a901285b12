//! Tenant ids: validated once at the edge, then carried as a type that cannot hold a bad one.

use std::fmt;
use std::sync::Arc;

/// Longest tenant id accepted, in bytes.
pub const MAX_TENANT_LEN: usize = 150;

/// The tenant used when a request names none.
pub const DEFAULT_TENANT: &str = "default";

/// A validated tenant id.
///
/// Tenant ids become path segments on the object store (`tenant={id}/…`) and labels in
/// `/metrics`, so only a conservative alphabet is allowed: ASCII letters, digits, `-`, `_`
/// and `.`, at most [`MAX_TENANT_LEN`] bytes, and never `.` or `..`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// Why a tenant id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTenant {
    #[error("tenant id is empty")]
    Empty,
    #[error("tenant id is longer than {MAX_TENANT_LEN} bytes")]
    TooLong,
    #[error("tenant id must not be '.' or '..'")]
    Dots,
    #[error("tenant id contains {0:?}; allowed are ASCII letters, digits, '-', '_' and '.'")]
    BadChar(char),
}

impl TenantId {
    /// Validates `id` and wraps it.
    pub fn new(id: &str) -> Result<Self, InvalidTenant> {
        if id.is_empty() {
            return Err(InvalidTenant::Empty);
        }
        if id.len() > MAX_TENANT_LEN {
            return Err(InvalidTenant::TooLong);
        }
        if id == "." || id == ".." {
            return Err(InvalidTenant::Dots);
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(InvalidTenant::BadChar(c));
        }
        Ok(Self(id.into()))
    }

    /// The tenant of requests that name none.
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A setting with a default for every tenant and overrides for some (limits, for example).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerTenant<T> {
    pub default: T,
    pub tenants: std::collections::HashMap<String, T>,
}

impl<T> PerTenant<T> {
    /// The same setting for every tenant.
    pub fn uniform(default: T) -> Self {
        Self {
            default,
            tenants: Default::default(),
        }
    }

    /// The setting of `tenant`: its override, else the default.
    pub fn get(&self, tenant: &TenantId) -> &T {
        self.tenants.get(tenant.as_str()).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tenant_settings_fall_back_to_the_default() {
        let mut limits = PerTenant::uniform(10);
        limits.tenants.insert("acme".into(), 3);
        assert_eq!(*limits.get(&TenantId::new("acme").unwrap()), 3);
        assert_eq!(*limits.get(&TenantId::new("globex").unwrap()), 10);
    }

    #[test]
    fn accepts_ordinary_ids() {
        for ok in [
            "default",
            "team-a",
            "acme_prod",
            "a.b",
            "A1",
            &"x".repeat(150),
        ] {
            assert_eq!(TenantId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_path_and_control_characters() {
        assert_eq!(TenantId::new(""), Err(InvalidTenant::Empty));
        assert_eq!(TenantId::new("."), Err(InvalidTenant::Dots));
        assert_eq!(TenantId::new(".."), Err(InvalidTenant::Dots));
        assert_eq!(TenantId::new(&"x".repeat(151)), Err(InvalidTenant::TooLong));
        for (bad, c) in [
            ("a/b", '/'),
            ("a\\b", '\\'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\nb", '\n'),
            ("a\u{0}b", '\u{0}'),
            ("tenant=x", '='),
            ("é", 'é'),
        ] {
            assert_eq!(
                TenantId::new(bad),
                Err(InvalidTenant::BadChar(c)),
                "{bad:?}"
            );
        }
    }
}
