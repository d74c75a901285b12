//! API keys outside the request path: `strata keys create|list|revoke`, which work directly
//! on the catalog (before a node's first start, or while nodes run), and the JSON form of a
//! key shared with the HTTP API (`api.rs`, `/api/v1/keys`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strata_storage::audit::ACTOR_CLI;
use strata_storage::keys::{KEY_CACHE_TTL, NewKey};
use strata_storage::{Actor, ApiKey, KeyStore, Scopes, SqlCatalog, TenantId};

use crate::config::{CatalogArgs, KeysCommand, KeysFormat};

/// `created_by` of keys made with the CLI (and the actor of its audit rows).
pub const CLI_CREATOR: &str = ACTOR_CLI;

/// The actor of changes made with `strata keys`: `cli`, from `user@host` of this process
/// (`$USER` or `$LOGNAME`, and the kernel's host name) when known. Informational only: whoever
/// runs the CLI can write the catalog anyway.
pub fn cli_actor() -> Actor {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let from = match (user, host) {
        (Some(user), Some(host)) => Some(format!("{user}@{host}")),
        (None, Some(host)) => Some(format!("@{host}")),
        (Some(user), None) => Some(user),
        (None, None) => None,
    };
    Actor::new(ACTOR_CLI, from)
}

/// An RFC 3339 UTC time (milliseconds) of ns since the epoch.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `active`, `expired` or `revoked`, at `now` (ns since the epoch).
pub fn status(key: &ApiKey, now: i64) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.is_expired(now) {
        "expired"
    } else {
        "active"
    }
}

/// A key as the API and `--format json` show it (never its hash or secret).
pub fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "tenant": key.tenant.as_str(),
        "name": key.name,
        "scopes": key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "status": status(key, now_ns()),
        "created_at": rfc3339(key.created_at),
        "expires_at": key.expires_at.map(rfc3339),
        "revoked_at": key.revoked_at.map(rfc3339),
        "created_by": key.created_by,
    })
}

/// ns since the epoch, now.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The expiry time of a key created now with this lifetime.
pub fn expires_at(lifetime: Option<Duration>) -> Result<Option<i64>, String> {
    lifetime
        .map(|d| {
            i64::try_from(d.as_nanos())
                .ok()
                .and_then(|ns| now_ns().checked_add(ns))
                .ok_or_else(|| "the expiry is too far in the future".to_string())
        })
        .transpose()
}

/// Runs `strata keys …`; returns the exit code.
pub async fn main(command: KeysCommand) -> i32 {
    match run(command).await {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    }
}

async fn open(args: &CatalogArgs) -> Result<KeyStore, String> {
    let (url, data_dir) = args.resolve().map_err(|e| e.to_string())?;
    if url.starts_with("sqlite:") {
        // The default catalog lives in the data directory, which may not exist yet.
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    }
    let catalog = SqlCatalog::connect(&url)
        .await
        .map_err(|e| format!("catalog: {e}"))?;
    Ok(KeyStore::new(Arc::new(catalog), KEY_CACHE_TTL))
}

fn tenant(id: &str) -> Result<TenantId, String> {
    TenantId::new(id).map_err(|e| format!("invalid tenant id {id:?}: {e}"))
}

async fn run(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Create(args) => {
            let new = NewKey {
                tenant: tenant(&args.tenant)?,
                name: args.name,
                scopes: Scopes::parse(&args.scopes)?,
                expires_at: expires_at(args.expires)?,
                created_by: Some(CLI_CREATOR.into()),
            };
            let store = open(&args.catalog).await?;
            let (row, key) = store
                .create(new, &cli_actor())
                .await
                .map_err(|e| e.to_string())?;
            match args.format {
                KeysFormat::Json => {
                    let mut value = key_json(&row);
                    value["key"] = Value::String(key);
                    println!("{value}");
                }
                KeysFormat::Text => {
                    println!("{key}");
                    eprintln!(
                        "created key {} for tenant {} (scopes {}, expires {}); it is shown \
                         only this once",
                        row.id,
                        row.tenant,
                        row.scopes,
                        row.expires_at.map(rfc3339).as_deref().unwrap_or("never"),
                    );
                }
            }
            Ok(())
        }
        KeysCommand::List(args) => {
            let filter = args.tenant.as_deref().map(tenant).transpose()?;
            let store = open(&args.catalog).await?;
            let keys = store
                .list(filter.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            match args.format {
                KeysFormat::Json => {
                    let list: Vec<Value> = keys.iter().map(key_json).collect();
                    println!("{}", Value::Array(list));
                }
                KeysFormat::Text => print!("{}", table(&keys)),
            }
            Ok(())
        }
        KeysCommand::Revoke(args) => {
            let store = open(&args.catalog).await?;
            let key = store
                .revoke(&args.id, None, &cli_actor())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no key with id {:?}", args.id))?;
            eprintln!(
                "revoked key {} of tenant {} (every node refuses it within {}s)",
                key.id,
                key.tenant,
                KEY_CACHE_TTL.as_secs()
            );
            Ok(())
        }
    }
}

/// An aligned text table of keys.
fn table(keys: &[ApiKey]) -> String {
    let now = now_ns();
    let header = [
        "ID",
        "TENANT",
        "NAME",
        "SCOPES",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "CREATED_BY",
    ];
    let rows: Vec<[String; 8]> = keys
        .iter()
        .map(|k| {
            [
                k.id.clone(),
                k.tenant.to_string(),
                k.name.clone(),
                k.scopes.to_string(),
                status(k, now).to_string(),
                rfc3339(k.created_at),
                k.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                k.created_by.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_expiry() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(expires_at(None), Ok(None));
        let at = expires_at(Some(Duration::from_secs(60))).unwrap().unwrap();
        assert!(at > now_ns());
        assert!(expires_at(Some(Duration::from_secs(u64::MAX / 2))).is_err());
    }

    #[tokio::test]
    async fn cli_creates_lists_and_revokes_in_a_fresh_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let args = CatalogArgs {
            data_dir: Some(dir.path().join("not-yet")),
            ..CatalogArgs::default()
        };
        let store = open(&args).await.unwrap();
        let (row, key) = store
            .create(
                NewKey {
                    tenant: TenantId::new("acme").unwrap(),
                    name: "collector".into(),
                    scopes: Scopes::parse("ingest").unwrap(),
                    expires_at: None,
                    created_by: Some(CLI_CREATOR.into()),
                },
                &cli_actor(),
            )
            .await
            .unwrap();
        let text = table(&store.list(None).await.unwrap());
        assert!(text.contains(&row.id) && text.contains("active") && !text.contains(&key));
        let json = key_json(&row);
        assert_eq!(json["scopes"], json!(["ingest"]));
        assert!(!json.to_string().contains(&row.hash));
        let code = main(KeysCommand::Revoke(crate::config::KeysRevokeArgs {
            id: row.id.clone(),
            catalog: args.clone(),
        }))
        .await;
        assert_eq!(code, 0);
        assert!(store.verify(&key).await.is_err());
        // Both changes are in the audit log, by `cli`.
        use strata_storage::AuditLog;
        let (url, _) = args.resolve().unwrap();
        let catalog = SqlCatalog::connect(&url).await.unwrap();
        let log = catalog
            .list_audit(&row.tenant, strata_storage::TimeRange::ALL, None)
            .await
            .unwrap();
        let actions: Vec<_> = log
            .iter()
            .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_deref()))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("cli", "key.create", Some(row.id.as_str())),
                ("cli", "key.revoke", Some(row.id.as_str())),
            ]
        );
        let code = main(KeysCommand::Revoke(crate::config::KeysRevokeArgs {
            id: "000000000000".into(),
            catalog: args,
        }))
        .await;
        assert_eq!(code, 1);
    }
}
