//! The catalog: one row per Parquet file, in a SQL database.
//!
//! SQLite (a file in the data directory) by default; PostgreSQL when the catalog URL is
//! `postgres://…`. Both run the same migrations (`storage/migrations/*.sql`), written in the
//! subset of SQL the two share, through sqlx's `Any` driver with `$n` placeholders.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::audit::{Actor, AuditEvent, AuditLog, Outcome};
use crate::keys::{ApiKey, KeyCatalog, Scopes};
use crate::{Error, Result, Signal, TenantId, TimeRange};

/// One Parquet file of one tenant's signal table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Unique id (a UUIDv7, so ids sort by creation time).
    pub id: String,
    pub tenant: TenantId,
    pub signal: Signal,
    /// Object-store path, relative to the store's root.
    pub path: String,
    /// Smallest `time` in the file, ns since the epoch.
    pub min_time: i64,
    /// Largest `time` in the file, ns since the epoch.
    pub max_time: i64,
    pub rows: i64,
    pub size_bytes: i64,
    /// 0 for files written by a flush; compaction writes higher levels.
    pub level: i32,
    /// When the file was committed, ns since the epoch.
    pub created_at: i64,
}

/// Every WAL record of one node and table up to `seq` is in Parquet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub node_id: String,
    pub tenant: TenantId,
    pub signal: Signal,
    pub seq: u64,
}

/// Where file rows live. Narrow on purpose so a test can swap it.
#[async_trait]
pub trait Catalog: Send + Sync + fmt::Debug {
    /// Adds the rows of freshly written files and advances the table's WAL watermark, all or
    /// nothing.
    async fn add_files(&self, files: &[FileMeta], watermark: Option<&Watermark>) -> Result<()>;

    /// Every file row of every tenant.
    async fn list_files(&self) -> Result<Vec<FileMeta>>;

    /// The WAL watermarks of one node.
    async fn watermarks(&self, node_id: &str) -> Result<Vec<Watermark>>;

    /// Swaps files atomically: removes the rows of `removed` (every one must still exist,
    /// else nothing changes and [`Error::Conflict`] is returned), adds `added`, and schedules
    /// the removed objects for deletion at `delete_after` (ns since the epoch).
    async fn replace_files(
        &self,
        removed: &[FileMeta],
        added: &[FileMeta],
        delete_after: i64,
    ) -> Result<()>;

    /// Paths whose deletion is due at `now`, at most `limit` of them.
    async fn due_deletes(&self, now: i64, limit: i64) -> Result<Vec<String>>;

    /// Forgets scheduled deletions that are done.
    async fn forget_deletes(&self, paths: &[String]) -> Result<()>;

    /// Every path scheduled for deletion.
    async fn pending_deletes(&self) -> Result<Vec<String>>;
}

/// Migrations, applied in order, each once. Append; never edit a released one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "files", include_str!("../migrations/0001_files.sql")),
    (
        2,
        "wal_watermarks",
        include_str!("../migrations/0002_wal_watermarks.sql"),
    ),
    (
        3,
        "pending_deletes",
        include_str!("../migrations/0003_pending_deletes.sql"),
    ),
    (
        4,
        "api_keys",
        include_str!("../migrations/0004_api_keys.sql"),
    ),
    (
        5,
        "audit_log",
        include_str!("../migrations/0005_audit_log.sql"),
    ),
    (
        6,
        "alerting",
        include_str!("../migrations/0006_alerting.sql"),
    ),
];

/// The catalog on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlCatalog {
    pool: AnyPool,
    url_for_logs: String,
    is_postgres: bool,
}

impl fmt::Debug for SqlCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlCatalog")
            .field("url", &self.url_for_logs)
            .finish()
    }
}

impl SqlCatalog {
    /// Connects to `url` (`sqlite://path`, `postgres://…`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains("mode=") {
            // Create the database file on first start.
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let mut options = AnyPoolOptions::new();
        if is_sqlite {
            // One writer at a time is all SQLite offers; WAL mode lets readers go on meanwhile.
            options = options.max_connections(4).after_connect(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA journal_mode=WAL").await?;
                    conn.execute("PRAGMA synchronous=FULL").await?;
                    conn.execute("PRAGMA busy_timeout=10000").await?;
                    Ok(())
                })
            });
        } else {
            options = options.max_connections(8);
        }
        let pool = options.connect(&url).await?;
        let catalog = Self {
            pool,
            url_for_logs: redact(&url),
            is_postgres: url.starts_with("postgres"),
        };
        catalog.migrate().await?;
        Ok(catalog)
    }

    /// The connection pool (for the other stores of this crate that live in the catalog).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies pending migrations. On PostgreSQL, nodes starting together on one catalog
    /// take turns through an advisory lock; SQLite serialises writers by itself.
    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.is_postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let result = migrate_on(&mut conn).await;
        if self.is_postgres {
            // Released with the session anyway; unlock now so the connection is clean.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await;
        }
        result
    }
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn add_files(&self, files: &[FileMeta], watermark: Option<&Watermark>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for f in files {
            insert_file(&mut tx, f).await?;
        }
        if let Some(w) = watermark {
            sqlx::query(
                "INSERT INTO wal_watermarks (node_id, tenant, signal, seq) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (node_id, tenant, signal) DO UPDATE SET seq = excluded.seq",
            )
            .bind(&w.node_id)
            .bind(w.tenant.as_str())
            .bind(w.signal.as_str())
            .bind(w.seq as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn watermarks(&self, node_id: &str) -> Result<Vec<Watermark>> {
        let rows = sqlx::query("SELECT tenant, signal, seq FROM wal_watermarks WHERE node_id = $1")
            .bind(node_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant")?;
                let signal: String = row.try_get("signal")?;
                let seq: i64 = row.try_get("seq")?;
                Ok(Watermark {
                    node_id: node_id.to_string(),
                    tenant: TenantId::new(&tenant).map_err(|e| {
                        Error::Migration(format!("catalog holds invalid tenant {tenant:?}: {e}"))
                    })?,
                    signal: Signal::from_str(&signal).map_err(Error::Migration)?,
                    seq: seq as u64,
                })
            })
            .collect()
    }

    async fn replace_files(
        &self,
        removed: &[FileMeta],
        added: &[FileMeta],
        delete_after: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for f in removed {
            let done = sqlx::query("DELETE FROM files WHERE id = $1")
                .bind(&f.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                // Another job (or node) got there first; the transaction rolls back on drop.
                return Err(Error::Conflict(format!(
                    "file {} is no longer in the catalog",
                    f.id
                )));
            }
            sqlx::query(
                "INSERT INTO pending_deletes (path, delete_after) VALUES ($1, $2) \
                 ON CONFLICT (path) DO NOTHING",
            )
            .bind(&f.path)
            .bind(delete_after)
            .execute(&mut *tx)
            .await?;
        }
        for f in added {
            insert_file(&mut tx, f).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due_deletes(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT path FROM pending_deletes WHERE delete_after <= $1 ORDER BY delete_after LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn forget_deletes(&self, paths: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for path in paths {
            sqlx::query("DELETE FROM pending_deletes WHERE path = $1")
                .bind(path)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_deletes(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT path FROM pending_deletes")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn list_files(&self) -> Result<Vec<FileMeta>> {
        let rows = sqlx::query(
            "SELECT id, tenant, signal, path, min_time, max_time, row_count, size_bytes, level, \
             created_at FROM files ORDER BY min_time",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant")?;
                let signal: String = row.try_get("signal")?;
                Ok(FileMeta {
                    id: row.try_get("id")?,
                    tenant: TenantId::new(&tenant).map_err(|e| {
                        Error::Migration(format!("catalog holds invalid tenant {tenant:?}: {e}"))
                    })?,
                    signal: Signal::from_str(&signal).map_err(Error::Migration)?,
                    path: row.try_get("path")?,
                    min_time: row.try_get("min_time")?,
                    max_time: row.try_get("max_time")?,
                    rows: row.try_get("row_count")?,
                    size_bytes: row.try_get("size_bytes")?,
                    level: row.try_get::<i32, _>("level")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

const KEY_COLUMNS: &str =
    "id, tenant, name, scopes, hash, created_at, expires_at, revoked_at, created_by";

#[async_trait]
impl KeyCatalog for SqlCatalog {
    async fn insert_key(&self, k: &ApiKey, audit: &AuditEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, audit).await?;
        sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&k.id)
        .bind(k.tenant.as_str())
        .bind(&k.name)
        .bind(k.scopes.to_string())
        .bind(&k.hash)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.revoked_at)
        .bind(k.created_by.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_of_row).transpose()
    }

    async fn list_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>> {
        let rows =
            match tenant {
                Some(t) => sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"
                ))
                .bind(t.as_str())
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query(&format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY tenant, created_at, id"
                    ))
                    .fetch_all(&self.pool)
                    .await?
                }
            };
        rows.iter().map(key_of_row).collect()
    }

    async fn revoke_key(
        &self,
        id: &str,
        tenant: Option<&TenantId>,
        at: i64,
        by: &Actor,
    ) -> Result<Option<ApiKey>> {
        let select = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&select)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(key) = row.as_ref().map(key_of_row).transpose()? else {
            return Ok(None);
        };
        if tenant.is_some_and(|t| &key.tenant != t) {
            return Ok(None);
        }
        // The first revocation time stays.
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, &crate::audit::key_revoked(&key, by, at)).await?;
        let row = sqlx::query(&select).bind(id).fetch_one(&mut *tx).await?;
        let revoked = key_of_row(&row)?;
        tx.commit().await?;
        Ok(Some(revoked))
    }
}

const AUDIT_COLUMNS: &str = "id, tenant, time, actor, action, target, detail, remote_addr, outcome";

/// The audit log is append-only: this impl (and the one insert in `insert_audit`) is all the
/// code that touches `audit_log`; nothing updates or deletes its rows.
#[async_trait]
impl AuditLog for SqlCatalog {
    async fn append_audit(&self, event: &AuditEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        range: TimeRange,
        limit: Option<usize>,
    ) -> Result<Vec<AuditEvent>> {
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE tenant = $1 AND time >= $2 AND time <= $3 \
             ORDER BY time, id LIMIT $4"
        ))
        .bind(tenant.as_str())
        .bind(range.start.unwrap_or(i64::MIN))
        .bind(range.end.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_of_row).collect()
    }
}

pub(crate) async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    e: &AuditEvent,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&e.id)
    .bind(e.tenant.as_str())
    .bind(e.time)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(e.target.as_deref())
    .bind(&e.detail)
    .bind(e.remote_addr.as_deref())
    .bind(e.outcome.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn audit_of_row(row: &sqlx::any::AnyRow) -> Result<AuditEvent> {
    let tenant: String = row.try_get("tenant")?;
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        tenant: TenantId::new(&tenant).map_err(|e| {
            Error::Migration(format!("catalog holds invalid tenant {tenant:?}: {e}"))
        })?,
        time: row.try_get("time")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        remote_addr: row.try_get("remote_addr")?,
        outcome: outcome.parse::<Outcome>().map_err(Error::Migration)?,
    })
}

fn key_of_row(row: &sqlx::any::AnyRow) -> Result<ApiKey> {
    let tenant: String = row.try_get("tenant")?;
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        tenant: TenantId::new(&tenant).map_err(|e| {
            Error::Migration(format!("catalog holds invalid tenant {tenant:?}: {e}"))
        })?,
        name: row.try_get("name")?,
        scopes: Scopes::parse(&scopes).map_err(Error::Migration)?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_by: row.try_get("created_by")?,
    })
}

async fn insert_file(tx: &mut sqlx::Transaction<'_, sqlx::Any>, f: &FileMeta) -> Result<()> {
    sqlx::query(
        "INSERT INTO files (id, tenant, signal, path, min_time, max_time, row_count, \
         size_bytes, level, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&f.id)
    .bind(f.tenant.as_str())
    .bind(f.signal.as_str())
    .bind(&f.path)
    .bind(f.min_time)
    .bind(f.max_time)
    .bind(f.rows)
    .bind(f.size_bytes)
    .bind(f.level)
    .bind(f.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Key of the PostgreSQL advisory lock held while migrating ("strata" in ASCII).
const MIGRATION_LOCK: i64 = 0x7374_7261_7461;

async fn migrate_on(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS strata_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut **conn)
    .await?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM strata_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        for statement in statements(sql) {
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(|e| Error::Migration(format!("{version} {name}: {e}")))?;
        }
        sqlx::query(
            "INSERT INTO strata_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(*name)
        .bind(now_ns())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied catalog migration");
    }
    Ok(())
}

/// The statements of a migration file: `--` comment lines dropped, split at `;`.
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Nanoseconds since the epoch, now.
pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .expect("the clock is within the years 1677..2262")
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! Every test runs twice, as `<test>::sqlite` and `<test>::postgres`, and asserts the same
    //! behaviour on both. The PostgreSQL variants need a server: `STRATA_TEST_POSTGRES_URL`
    //! names a database on it that may create databases (`./scripts/test.sh` starts one and
    //! sets it); each test creates a fresh database there. Without the variable they fail and
    //! say how to run them: a catalog that only works on SQLite must not look green.

    use super::*;
    use sqlx::{Connection, Executor};

    const POSTGRES_URL_VAR: &str = "STRATA_TEST_POSTGRES_URL";

    /// A fresh, empty catalog database for one test.
    struct TestDb {
        url: String,
        /// The SQLite file's directory, removed on drop.
        _dir: Option<tempfile::TempDir>,
        /// PostgreSQL: the admin URL and the database to drop when the test has passed.
        postgres: Option<(String, String)>,
    }

    impl TestDb {
        fn sqlite() -> Self {
            let dir = tempfile::tempdir().unwrap();
            Self {
                url: format!("sqlite://{}/catalog.db", dir.path().display()),
                _dir: Some(dir),
                postgres: None,
            }
        }

        /// Creates a database named after the test (and a random suffix) through the admin
        /// URL in `STRATA_TEST_POSTGRES_URL`.
        async fn postgres(test: &str) -> Self {
            let admin = std::env::var(POSTGRES_URL_VAR).unwrap_or_default();
            assert!(
                !admin.is_empty(),
                "\n\n{POSTGRES_URL_VAR} is not set: this test runs the catalog against a real \
                 PostgreSQL.\nRun `./scripts/test.sh rust` (it starts PostgreSQL and sets the \
                 variable), or start one yourself:\n    url=$(scripts/services.sh start-postgres 0 \
                 /tmp/strata-pg)   # prints postgres://postgres@127.0.0.1:PORT/strata\n    \
                 {POSTGRES_URL_VAR}=$url cargo test -p strata-storage catalog\n    \
                 scripts/services.sh stop-postgres /tmp/strata-pg\n\n"
            );
            let suffix = uuid::Uuid::now_v7().simple().to_string();
            // v7 ids start with the time: the random tail keeps parallel tests apart.
            let name = format!(
                "strata_test_{}_{}",
                &test[..test.len().min(30)],
                &suffix[20..]
            );
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}={admin}: {e}"));
            conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
            conn.close().await.unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&name);
            Self {
                url: url.to_string(),
                _dir: None,
                postgres: Some((admin, name)),
            }
        }

        /// Drops the PostgreSQL database (after a pass only: a failed test leaves it to look at).
        async fn remove(self) {
            if let Some((admin, name)) = &self.postgres {
                let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
                conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Turns each `async fn name(url: &str)` below into the tests `name::sqlite` and
    /// `name::postgres`.
    macro_rules! on_sqlite_and_postgres {
        ($($name:ident),* $(,)?) => {$(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = super::TestDb::sqlite();
                    super::$name(&db.url).await;
                    db.remove().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let db = super::TestDb::postgres(stringify!($name)).await;
                    super::$name(&db.url).await;
                    db.remove().await;
                }
            }
        )*};
    }

    on_sqlite_and_postgres!(
        round_trip_and_idempotent_migrations,
        add_files_is_all_or_nothing,
        times_and_sequence_numbers_keep_64_bits,
        watermarks_are_per_node_and_table,
        api_keys_round_trip_revoke_and_tenant_filter,
        api_keys_checked_through_the_store,
        audit_log_appends_lists_by_tenant_and_time,
        audit_rows_land_with_key_changes_or_not_at_all,
        alerting_docs_upsert_list_delete_per_tenant,
        alert_history_appends_and_lists_by_tenant_and_time,
    );

    fn file(id: &str, tenant: &str, min: i64) -> FileMeta {
        FileMeta {
            id: id.into(),
            tenant: TenantId::new(tenant).unwrap(),
            signal: Signal::Logs,
            path: format!("tenant={tenant}/signal=logs/{id}.parquet"),
            min_time: min,
            max_time: min + 10,
            rows: 3,
            size_bytes: 100,
            level: 0,
            created_at: 1,
        }
    }

    fn mark(node: &str, tenant: &str, signal: Signal, seq: u64) -> Watermark {
        Watermark {
            node_id: node.into(),
            tenant: TenantId::new(tenant).unwrap(),
            signal,
            seq,
        }
    }

    /// The rows of `strata_migrations`: (version, name).
    async fn applied_migrations(catalog: &SqlCatalog) -> Vec<(i64, String)> {
        sqlx::query("SELECT version, name FROM strata_migrations ORDER BY version")
            .fetch_all(&catalog.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<i64, _>("version"), row.get::<String, _>("name")))
            .collect()
    }

    async fn round_trip_and_idempotent_migrations(url: &str) {
        let every_migration: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|(version, name, _)| (*version, name.to_string()))
            .collect();
        let catalog = SqlCatalog::connect(url).await.unwrap();
        assert_eq!(applied_migrations(&catalog).await, every_migration);
        assert_eq!(catalog.list_files().await.unwrap(), vec![]);
        catalog
            .add_files(&[file("b", "t1", 20), file("a", "t2", 10)], None)
            .await
            .unwrap();
        catalog.pool.close().await;
        drop(catalog);
        // Reopening (twice) applies no migration again and finds the rows.
        for _ in 0..2 {
            let catalog = SqlCatalog::connect(url).await.unwrap();
            assert_eq!(applied_migrations(&catalog).await, every_migration);
            let files = catalog.list_files().await.unwrap();
            assert_eq!(files, vec![file("a", "t2", 10), file("b", "t1", 20)]);
            catalog.pool.close().await;
        }
    }

    async fn add_files_is_all_or_nothing(url: &str) {
        let catalog = SqlCatalog::connect(url).await.unwrap();
        let mark = |seq| mark("n1", "t", Signal::Logs, seq);
        catalog
            .add_files(&[file("a", "t", 1)], Some(&mark(5)))
            .await
            .unwrap();
        // The second row collides with the first: nothing of this call may land.
        let err = catalog
            .add_files(&[file("c", "t", 2), file("a", "t", 3)], Some(&mark(9)))
            .await;
        assert!(matches!(err, Err(Error::Catalog(_))), "{err:?}");
        assert_eq!(catalog.watermarks("n1").await.unwrap(), vec![mark(5)]);
        assert!(catalog.watermarks("n2").await.unwrap().is_empty());
        catalog
            .add_files(&[file("d", "t", 4)], Some(&mark(12)))
            .await
            .unwrap();
        assert_eq!(catalog.watermarks("n1").await.unwrap(), vec![mark(12)]);
        let ids: Vec<_> = catalog
            .list_files()
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids, vec!["a".to_string(), "d".to_string()]);
        catalog.pool.close().await;
    }

    /// Nanosecond times, sizes and WAL sequence numbers past 32 bits come back unchanged.
    async fn times_and_sequence_numbers_keep_64_bits(url: &str) {
        let catalog = SqlCatalog::connect(url).await.unwrap();
        let big = FileMeta {
            id: "01929a3c-0000-7000-8000-000000000001".into(),
            tenant: TenantId::new("tenant.with-all_chars.0").unwrap(),
            signal: Signal::Metrics,
            path: "tenant=tenant.with-all_chars.0/signal=metrics/date=2262-04-11/hour=23/x.parquet"
                .into(),
            min_time: -1_000_000_000_000_000_000,
            max_time: i64::MAX,
            rows: 5_000_000_000,
            size_bytes: i64::MAX - 1,
            level: i32::MAX,
            created_at: 1_763_000_000_123_456_789,
        };
        let seq = i64::MAX as u64;
        let w = mark("node-64", "tenant.with-all_chars.0", Signal::Metrics, seq);
        catalog
            .add_files(std::slice::from_ref(&big), Some(&w))
            .await
            .unwrap();
        assert_eq!(catalog.list_files().await.unwrap(), vec![big]);
        assert_eq!(catalog.watermarks("node-64").await.unwrap(), vec![w]);
        catalog.pool.close().await;
    }

    /// Watermarks are kept per (node, tenant, signal); a flush without one leaves them alone.
    async fn watermarks_are_per_node_and_table(url: &str) {
        let catalog = SqlCatalog::connect(url).await.unwrap();
        let writes = [
            mark("n1", "a", Signal::Logs, 3),
            mark("n1", "a", Signal::Spans, 4),
            mark("n1", "b", Signal::Logs, 5),
            mark("n2", "a", Signal::Logs, 6),
            mark("n1", "a", Signal::Logs, 7),
        ];
        for (i, w) in writes.iter().enumerate() {
            let f = file(&format!("f{i}"), w.tenant.as_str(), i as i64);
            catalog.add_files(&[f], Some(w)).await.unwrap();
        }
        catalog
            .add_files(&[file("no-mark", "a", 100)], None)
            .await
            .unwrap();
        let mut n1 = catalog.watermarks("n1").await.unwrap();
        n1.sort_by(|x, y| (x.tenant.as_str(), x.signal).cmp(&(y.tenant.as_str(), y.signal)));
        assert_eq!(
            n1,
            vec![
                mark("n1", "a", Signal::Spans, 4),
                mark("n1", "a", Signal::Logs, 7),
                mark("n1", "b", Signal::Logs, 5),
            ]
        );
        assert_eq!(
            catalog.watermarks("n2").await.unwrap(),
            vec![mark("n2", "a", Signal::Logs, 6)]
        );
        assert_eq!(catalog.list_files().await.unwrap().len(), 6);
        catalog.pool.close().await;
    }

    fn cli() -> Actor {
        Actor::new("cli", Some("root@box".into()))
    }

    fn created(key: &ApiKey) -> AuditEvent {
        crate::audit::key_created(key, &cli())
    }

    fn key(id: &str, tenant: &str, created_at: i64) -> ApiKey {
        ApiKey {
            id: id.into(),
            tenant: TenantId::new(tenant).unwrap(),
            name: format!("key {id}"),
            scopes: Scopes::parse("ingest,read").unwrap(),
            hash: crate::keys::hash_key(id),
            created_at,
            expires_at: None,
            revoked_at: None,
            created_by: None,
        }
    }

    /// Key rows keep every field (NULLs, 64-bit times), list per tenant, revoke once.
    async fn api_keys_round_trip_revoke_and_tenant_filter(url: &str) {
        let catalog = SqlCatalog::connect(url).await.unwrap();
        assert_eq!(catalog.list_keys(None).await.unwrap(), vec![]);
        let mut full = key("aaaaaaaaaaaa", "acme", 1_763_000_000_123_456_789);
        full.expires_at = Some(i64::MAX);
        full.created_by = Some("cli".into());
        full.scopes = Scopes::all();
        let plain = key("bbbbbbbbbbbb", "acme", 2);
        let other = key("cccccccccccc", "other", 3);
        for k in [&full, &plain, &other] {
            catalog.insert_key(k, &created(k)).await.unwrap();
        }
        // A duplicate id is refused.
        assert!(
            catalog
                .insert_key(&key("aaaaaaaaaaaa", "x", 4), &created(&full))
                .await
                .is_err()
        );
        assert_eq!(
            catalog.get_key("aaaaaaaaaaaa").await.unwrap(),
            Some(full.clone())
        );
        assert_eq!(
            catalog.get_key("bbbbbbbbbbbb").await.unwrap(),
            Some(plain.clone())
        );
        assert_eq!(catalog.get_key("zzzzzzzzzzzz").await.unwrap(), None);
        let acme = TenantId::new("acme").unwrap();
        assert_eq!(
            catalog.list_keys(Some(&acme)).await.unwrap(),
            vec![plain.clone(), full.clone()]
        );
        assert_eq!(catalog.list_keys(None).await.unwrap().len(), 3);
        // Another tenant's key cannot be revoked through a tenant filter.
        assert_eq!(
            catalog
                .revoke_key("cccccccccccc", Some(&acme), 10, &cli())
                .await
                .unwrap(),
            None
        );
        assert_eq!(catalog.get_key("cccccccccccc").await.unwrap(), Some(other));
        let revoked = catalog
            .revoke_key("bbbbbbbbbbbb", Some(&acme), 10, &cli())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(10));
        let again = catalog
            .revoke_key("bbbbbbbbbbbb", None, 20, &cli())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            again.revoked_at,
            Some(10),
            "the first revocation time stays"
        );
        assert_eq!(
            catalog
                .revoke_key("zzzzzzzzzzzz", None, 1, &cli())
                .await
                .unwrap(),
            None
        );
        catalog.pool.close().await;
    }

    /// The key store on the real catalog: create, verify, revoke seen by a second store.
    async fn api_keys_checked_through_the_store(url: &str) {
        use crate::keys::{KeyError, KeyStore, NewKey};
        use std::sync::Arc;
        use std::time::Duration;
        let catalog = Arc::new(SqlCatalog::connect(url).await.unwrap());
        let node_a = KeyStore::new(catalog.clone(), Duration::from_secs(3600));
        let node_b = KeyStore::new(catalog.clone(), Duration::ZERO);
        let (row, secret) = node_a
            .create(
                NewKey {
                    tenant: TenantId::new("acme").unwrap(),
                    name: "collector".into(),
                    scopes: Scopes::parse("ingest").unwrap(),
                    expires_at: None,
                    created_by: Some("cli".into()),
                },
                &cli(),
            )
            .await
            .unwrap();
        assert_eq!(catalog.get_key(&row.id).await.unwrap(), Some(row.clone()));
        assert_eq!(node_b.verify(&secret).await.unwrap().id, row.id);
        node_a.verify(&secret).await.unwrap();
        node_b.revoke(&row.id, None, &cli()).await.unwrap().unwrap();
        assert!(matches!(
            node_b.verify(&secret).await,
            Err(KeyError::Revoked)
        ));
        // Node A still trusts its cached row: the TTL is the bound (here an hour).
        assert!(node_a.verify(&secret).await.is_ok());
        let node_a_fresh = KeyStore::new(catalog.clone(), Duration::ZERO);
        assert!(matches!(
            node_a_fresh.verify(&secret).await,
            Err(KeyError::Revoked)
        ));
        catalog.pool.close().await;
    }

    fn event(tenant: &str, time: i64, action: &str, outcome: Outcome) -> AuditEvent {
        AuditEvent::at(
            time,
            TenantId::new(tenant).unwrap(),
            &Actor::new("0123456789ab", Some("[::1]:51234".into())),
            action,
            Some("target-1"),
            serde_json::json!({"name": "n", "quote": "it's \"fine\""}),
            outcome,
        )
    }

    /// Rows come back whole (NULLs, 64-bit times, JSON text), per tenant, by time, limited.
    async fn audit_log_appends_lists_by_tenant_and_time(url: &str) {
        let catalog = SqlCatalog::connect(url).await.unwrap();
        let acme = TenantId::new("acme").unwrap();
        assert_eq!(
            catalog
                .list_audit(&acme, TimeRange::ALL, None)
                .await
                .unwrap(),
            vec![]
        );
        let mut late = event(
            "acme",
            1_763_000_000_123_456_789,
            "key.create",
            Outcome::Success,
        );
        late.target = None;
        late.remote_addr = None;
        let early = event("acme", -5, "key.revoke", Outcome::Denied);
        let middle = event("acme", 100, "key.list", Outcome::Denied);
        let other = event("other", 100, "key.create", Outcome::Success);
        for e in [&late, &early, &other, &middle] {
            catalog.append_audit(e).await.unwrap();
        }
        // An id is never reused: appending the same row again fails.
        assert!(catalog.append_audit(&early).await.is_err());
        let all = catalog
            .list_audit(&acme, TimeRange::ALL, None)
            .await
            .unwrap();
        assert_eq!(all, vec![early.clone(), middle.clone(), late.clone()]);
        let range = TimeRange {
            start: Some(0),
            end: Some(100),
        };
        assert_eq!(
            catalog.list_audit(&acme, range, None).await.unwrap(),
            vec![middle.clone()]
        );
        assert_eq!(
            catalog
                .list_audit(&acme, TimeRange::ALL, Some(2))
                .await
                .unwrap(),
            vec![early, middle]
        );
        let o = TenantId::new("other").unwrap();
        assert_eq!(
            catalog.list_audit(&o, TimeRange::ALL, None).await.unwrap(),
            vec![other]
        );
        catalog.pool.close().await;
    }

    /// A key change and its audit row commit together; a failed change leaves no row, and a
    /// revocation of an unknown (or another tenant's) key records nothing.
    async fn audit_rows_land_with_key_changes_or_not_at_all(url: &str) {
        use crate::audit::{KEY_CREATE, KEY_REVOKE};
        let catalog = SqlCatalog::connect(url).await.unwrap();
        let acme = TenantId::new("acme").unwrap();
        let k = key("aaaaaaaaaaaa", "acme", 10);
        catalog.insert_key(&k, &created(&k)).await.unwrap();
        // A duplicate key id fails, and its audit row goes with it.
        let dup = key("aaaaaaaaaaaa", "acme", 11);
        assert!(catalog.insert_key(&dup, &created(&dup)).await.is_err());
        // An audit row whose id is taken fails the key insert too.
        let fresh = key("bbbbbbbbbbbb", "acme", 12);
        let mut clash = created(&fresh);
        clash.id = catalog
            .list_audit(&acme, TimeRange::ALL, None)
            .await
            .unwrap()[0]
            .id
            .clone();
        assert!(catalog.insert_key(&fresh, &clash).await.is_err());
        assert_eq!(catalog.get_key("bbbbbbbbbbbb").await.unwrap(), None);
        let other = TenantId::new("other").unwrap();
        assert_eq!(
            catalog
                .revoke_key("aaaaaaaaaaaa", Some(&other), 20, &cli())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            catalog
                .revoke_key("zzzzzzzzzzzz", None, 20, &cli())
                .await
                .unwrap(),
            None
        );
        catalog
            .revoke_key("aaaaaaaaaaaa", Some(&acme), 30, &cli())
            .await
            .unwrap();
        catalog
            .revoke_key("aaaaaaaaaaaa", None, 40, &cli())
            .await
            .unwrap();
        let log = catalog
            .list_audit(&acme, TimeRange::ALL, None)
            .await
            .unwrap();
        let summary: Vec<_> = log
            .iter()
            .map(|e| {
                (
                    e.time,
                    e.action.as_str(),
                    e.target.as_deref(),
                    e.actor.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (10, KEY_CREATE, Some("aaaaaaaaaaaa"), "cli"),
                (30, KEY_REVOKE, Some("aaaaaaaaaaaa"), "cli"),
                (40, KEY_REVOKE, Some("aaaaaaaaaaaa"), "cli"),
            ]
        );
        assert!(log[1].detail.contains(r#""already_revoked":false"#));
        assert!(log[2].detail.contains(r#""already_revoked":true"#));
        assert_eq!(log[0].remote_addr.as_deref(), Some("root@box"));
        assert!(log.iter().all(|e| !e.detail.contains(&k.hash)));
        assert!(
            catalog
                .list_audit(&other, TimeRange::ALL, None)
                .await
                .unwrap()
                .is_empty()
        );
        catalog.pool.close().await;
    }

    /// Alerting documents: put replaces, lists are per tenant and kind, deletes say whether
    /// something was there, and an audited change lands with its audit row.
    async fn alerting_docs_upsert_list_delete_per_tenant(url: &str) {
        use crate::docs::{Doc, DocStore};
        let catalog = SqlCatalog::connect(url).await.unwrap();
        let a = TenantId::new("a").unwrap();
        let b = TenantId::new("b").unwrap();
        let doc = |tenant: &TenantId, kind: &str, id: &str, body: &str, at: i64| Doc {
            tenant: tenant.clone(),
            kind: kind.into(),
            id: id.into(),
            body: body.into(),
            updated_at: at,
        };
        let event = AuditEvent::at(
            5,
            a.clone(),
            &Actor::new("k1", None),
            "silence.create",
            Some("s1"),
            serde_json::json!({}),
            Outcome::Success,
        );
        catalog
            .put_doc(&doc(&a, "silence", "s1", r#"{"v":1}"#, 1), Some(&event))
            .await
            .unwrap();
        catalog
            .put_doc(&doc(&a, "silence", "s1", r#"{"v":2}"#, 2), None)
            .await
            .unwrap();
        catalog
            .put_doc(&doc(&a, "incident", "i1", "{}", 3), None)
            .await
            .unwrap();
        catalog
            .put_docs(&[
                doc(&b, "silence", "s2", "{}", 4),
                doc(&b, "incident", "i9", "{}", 4),
            ])
            .await
            .unwrap();
        assert!(
            catalog
                .get_doc(&b, "incident", "i9")
                .await
                .unwrap()
                .is_some()
        );

        let got = catalog.get_doc(&a, "silence", "s1").await.unwrap().unwrap();
        assert_eq!((got.body.as_str(), got.updated_at), (r#"{"v":2}"#, 2));
        assert_eq!(catalog.get_doc(&b, "silence", "s1").await.unwrap(), None);
        let ids = |docs: Vec<Doc>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(
            ids(catalog.list_docs(Some(&a), "silence").await.unwrap()),
            ["s1"]
        );
        assert_eq!(
            ids(catalog.list_docs(None, "silence").await.unwrap()),
            ["s1", "s2"]
        );

        // Deleting another tenant's document finds nothing and writes no audit row.
        assert!(
            !catalog
                .delete_doc(&b, "silence", "s1", Some(&event))
                .await
                .unwrap()
        );
        assert!(catalog.delete_doc(&a, "silence", "s1", None).await.unwrap());
        assert_eq!(catalog.get_doc(&a, "silence", "s1").await.unwrap(), None);
        let audit = catalog.list_audit(&a, TimeRange::ALL, None).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, "silence.create");
    }

    async fn alert_history_appends_and_lists_by_tenant_and_time(url: &str) {
        use crate::docs::{AlertHistoryRow, DocStore};
        let catalog = SqlCatalog::connect(url).await.unwrap();
        let row = |id: &str, tenant: &str, time: i64, value: Option<f64>| AlertHistoryRow {
            id: id.into(),
            tenant: TenantId::new(tenant).unwrap(),
            time,
            alertname: "HighErrors".into(),
            fingerprint: "00000000000000ff".into(),
            state: "firing".into(),
            value,
            labels: r#"{"service":"cart"}"#.into(),
            annotations: "{}".into(),
            source: "rule".into(),
        };
        catalog
            .append_history(&[
                row("1", "a", 10, Some(0.25)),
                row("2", "a", 20, None),
                row("3", "b", 15, Some(1.0)),
            ])
            .await
            .unwrap();
        let a = TenantId::new("a").unwrap();
        let all = catalog
            .list_history(&a, TimeRange::ALL, None)
            .await
            .unwrap();
        assert_eq!(
            all,
            vec![row("1", "a", 10, Some(0.25)), row("2", "a", 20, None)]
        );
        let late = TimeRange {
            start: Some(11),
            end: None,
        };
        let got = catalog.list_history(&a, late, Some(5)).await.unwrap();
        assert_eq!(got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["2"]);
    }
}
