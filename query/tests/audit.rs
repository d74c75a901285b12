//! The `audit` table: only in sessions that ask for it (admin callers), only the session's
//! tenant's rows, filters on `time` and `LIMIT` honoured, and read-only.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampNanosecondType;
use strata_query::{QueryConfig, QueryEngine, QueryError, QueryOptions, QueryResult};
use strata_storage::audit::{Actor, AuditEvent, AuditLog, Outcome};
use strata_storage::objects::object_store_from_url;
use strata_storage::{SqlCatalog, Storage, StorageConfig, TenantId};

const ADMIN: QueryOptions = QueryOptions { audit: true };

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

/// An engine over an empty storage whose catalog's audit log holds three rows of `acme` (at
/// 1 s, 2 s, 3 s) and one of `globex`.
async fn engine(dir: &tempfile::TempDir) -> QueryEngine {
    let store = object_store_from_url("memory://").unwrap();
    let catalog = Arc::new(
        SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let by = Actor::new("0123456789ab", Some("127.0.0.1:5555".into()));
    for (t, time, action, outcome) in [
        ("acme", 1, "key.create", Outcome::Success),
        ("acme", 2, "key.list", Outcome::Denied),
        ("acme", 3, "key.revoke", Outcome::Success),
        ("globex", 2, "key.create", Outcome::Success),
    ] {
        let mut event = AuditEvent::at(
            time * 1_000_000_000,
            tenant(t),
            &by,
            action,
            Some(&format!("{t}-target")),
            serde_json::json!({ "name": t }),
            outcome,
        );
        if time == 2 {
            event.target = None;
            event.remote_addr = None;
        }
        catalog.append_audit(&event).await.unwrap();
    }
    let storage = Storage::open(store, catalog.clone(), StorageConfig::default())
        .await
        .unwrap();
    QueryEngine::with_executor(
        storage,
        QueryConfig {
            target_partitions: 2,
            ..QueryConfig::default()
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap()
    .with_audit_log(catalog)
}

/// The values of a text column.
fn strings(result: &QueryResult, column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in &result.batches {
        let array = batch.column_by_name(column).unwrap().as_string::<i32>();
        out.extend((0..array.len()).map(|i| array.is_valid(i).then(|| array.value(i).to_string())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_their_own_tenants_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let acme = engine
        .sql_with(&tenant("acme"), "SELECT * FROM audit ORDER BY time", ADMIN)
        .await
        .unwrap();
    let names: Vec<_> = acme
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "time",
            "actor",
            "action",
            "target",
            "detail",
            "remote_addr",
            "outcome"
        ]
    );
    assert_eq!(
        strings(&acme, "action"),
        [Some("key.create"), Some("key.list"), Some("key.revoke")].map(|s| s.map(String::from))
    );
    assert_eq!(
        strings(&acme, "outcome"),
        [Some("success"), Some("denied"), Some("success")].map(|s| s.map(String::from))
    );
    assert_eq!(
        strings(&acme, "remote_addr"),
        [Some("127.0.0.1:5555"), None, Some("127.0.0.1:5555")].map(|s| s.map(String::from))
    );
    assert_eq!(strings(&acme, "target")[1], None);
    assert!(
        strings(&acme, "detail")
            .iter()
            .all(|d| d.as_deref() == Some(r#"{"name":"acme"}"#))
    );
    let times = acme.batches[0]
        .column_by_name("time")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    assert_eq!(times.value(0), 1_000_000_000);
    let globex = engine
        .sql_with(&tenant("globex"), "SELECT actor, action FROM audit", ADMIN)
        .await
        .unwrap();
    assert_eq!(strings(&globex, "action"), [Some("key.create".to_string())]);
    // A tenant without rows sees an empty table.
    let empty = engine
        .sql_with(&tenant("initech"), "SELECT * FROM audit", ADMIN)
        .await
        .unwrap();
    assert_eq!(empty.num_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_filters_limits_and_aggregates_work() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let acme = tenant("acme");
    for (sql, rows) in [
        ("SELECT action FROM audit WHERE time >= to_timestamp(2)", 2),
        (
            "SELECT action FROM audit WHERE time > to_timestamp(2) AND time <= to_timestamp(3)",
            1,
        ),
        ("SELECT action FROM audit WHERE outcome = 'denied'", 1),
        ("SELECT action FROM audit LIMIT 2", 2),
        (
            "SELECT action FROM audit WHERE outcome = 'success' LIMIT 1",
            1,
        ),
    ] {
        let result = engine.sql_with(&acme, sql, ADMIN).await.unwrap();
        assert_eq!(result.num_rows(), rows, "{sql}");
    }
    let result = engine
        .sql_with(
            &acme,
            "SELECT action FROM audit WHERE outcome = 'success' ORDER BY time DESC LIMIT 1",
            ADMIN,
        )
        .await
        .unwrap();
    assert_eq!(strings(&result, "action"), [Some("key.revoke".to_string())]);
    let result = engine
        .sql_with(
            &acme,
            "SELECT count(*) AS n FROM audit a JOIN logs l ON a.actor = l.body",
            ADMIN,
        )
        .await
        .unwrap();
    assert_eq!(result.num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_there_is_no_audit_table() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let acme = tenant("acme");
    for result in [
        engine.sql(&acme, "SELECT * FROM audit").await,
        engine
            .sql_with(&acme, "SELECT * FROM audit", QueryOptions::default())
            .await,
        engine.sql(&acme, "SELECT * FROM strata.public.audit").await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, QueryError::User(_)), "{err:?}");
        assert!(err.to_string().contains("not found"), "{err}");
        assert!(err.to_string().contains("admin scope"), "{err}");
    }
    let tables = "SELECT table_name FROM information_schema.tables WHERE table_name = 'audit'";
    assert_eq!(engine.sql(&acme, tables).await.unwrap().num_rows(), 0);
    assert_eq!(
        engine
            .sql_with(&acme, tables, ADMIN)
            .await
            .unwrap()
            .num_rows(),
        1
    );
    // The signal tables are unaffected.
    engine
        .sql(&acme, "SELECT count(*) FROM logs")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_table_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let acme = tenant("acme");
    for sql in [
        "INSERT INTO audit VALUES (now(), 'x', 'key.create', NULL, '{}', NULL, 'success')",
        "INSERT INTO audit SELECT * FROM audit",
        "DELETE FROM audit",
        "DELETE FROM audit WHERE action = 'key.create'",
        "UPDATE audit SET actor = 'someone else'",
        "DROP TABLE audit",
        "TRUNCATE TABLE audit",
        "CREATE TABLE audit AS SELECT 1",
        "CREATE OR REPLACE VIEW audit AS SELECT 1",
        "ALTER TABLE audit RENAME TO old_audit",
    ] {
        let err = engine.sql_with(&acme, sql, ADMIN).await;
        assert!(err.is_err(), "{sql} succeeded");
        assert!(matches!(err, Err(QueryError::User(_))), "{sql}: {err:?}");
    }
    let rows = engine
        .sql_with(&acme, "SELECT * FROM audit", ADMIN)
        .await
        .unwrap();
    assert_eq!(rows.num_rows(), 3, "the rows are untouched");
}
