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

use crate::{Error, Result, Signal, TenantId};

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
}

/// Migrations, applied in order, each once. Append; never edit a released one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "files", include_str!("../migrations/0001_files.sql")),
    (
        2,
        "wal_watermarks",
        include_str!("../migrations/0002_wal_watermarks.sql"),
    ),
];

/// The catalog on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlCatalog {
    pool: AnyPool,
    url_for_logs: String,
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
        };
        catalog.migrate().await?;
        Ok(catalog)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS strata_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .execute(&self.pool)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
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
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn add_files(&self, files: &[FileMeta], watermark: Option<&Watermark>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for f in files {
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
            .execute(&mut *tx)
            .await?;
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
    use super::*;

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

    #[tokio::test]
    async fn sqlite_round_trip_and_idempotent_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = SqlCatalog::connect(&url).await.unwrap();
        catalog
            .add_files(&[file("b", "t1", 20), file("a", "t2", 10)], None)
            .await
            .unwrap();
        drop(catalog);
        // Reopening applies no migration twice and finds the rows.
        let catalog = SqlCatalog::connect(&url).await.unwrap();
        let files = catalog.list_files().await.unwrap();
        assert_eq!(files, vec![file("a", "t2", 10), file("b", "t1", 20)]);
    }

    #[tokio::test]
    async fn add_files_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = SqlCatalog::connect(&url).await.unwrap();
        let mark = |seq| Watermark {
            node_id: "n1".into(),
            tenant: TenantId::new("t").unwrap(),
            signal: Signal::Logs,
            seq,
        };
        catalog
            .add_files(&[file("a", "t", 1)], Some(&mark(5)))
            .await
            .unwrap();
        // The second row collides with the first: nothing of this call may land.
        let err = catalog
            .add_files(&[file("c", "t", 2), file("a", "t", 3)], Some(&mark(9)))
            .await;
        assert!(err.is_err());
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
    }
}
