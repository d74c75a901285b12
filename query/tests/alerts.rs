//! The `alerts` table: in every session of a tenant (no admin scope needed), only that
//! tenant's history rows, filters on `time` honoured, and read-only.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use strata_query::{QueryConfig, QueryEngine, QueryResult};
use strata_storage::objects::object_store_from_url;
use strata_storage::{
    AlertHistoryRow, DocStore, MemoryDocStore, SqlCatalog, Storage, StorageConfig, TenantId,
};

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn row(t: &str, secs: i64, alertname: &str, state: &str) -> AlertHistoryRow {
    AlertHistoryRow {
        id: format!("{t}-{secs}"),
        tenant: tenant(t),
        time: secs * 1_000_000_000,
        alertname: alertname.into(),
        fingerprint: "0123456789abcdef".into(),
        state: state.into(),
        value: (state != "resolved").then_some(0.5),
        labels: format!(r#"{{"alertname":"{alertname}"}}"#),
        annotations: "{}".into(),
        source: "rule".into(),
    }
}

/// An engine over an empty storage whose alert history holds three rows of `acme` (at 1 s,
/// 2 s, 3 s) and one of `globex`.
async fn engine(dir: &tempfile::TempDir) -> QueryEngine {
    let store = object_store_from_url("memory://").unwrap();
    let catalog = Arc::new(
        SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let history = Arc::new(MemoryDocStore::default());
    history
        .append_history(&[
            row("acme", 1, "HighErrorRate", "pending"),
            row("acme", 2, "HighErrorRate", "firing"),
            row("globex", 2, "GlobexOnly", "firing"),
            row("acme", 3, "HighErrorRate", "resolved"),
        ])
        .await
        .unwrap();
    let storage = Storage::open(store, catalog, StorageConfig::default())
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
    .with_alert_history(history)
}

fn strings(result: &QueryResult, column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in &result.batches {
        let array = batch.column_by_name(column).unwrap().as_string::<i32>();
        out.extend((0..array.len()).map(|i| array.is_valid(i).then(|| array.value(i).to_string())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_sees_its_own_tenants_alert_history_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    // Plain `sql`: no admin option is needed for `alerts`.
    let acme = engine
        .sql(&tenant("acme"), "SELECT * FROM alerts ORDER BY time")
        .await
        .unwrap();
    assert_eq!(
        strings(&acme, "state"),
        ["pending", "firing", "resolved"].map(|s| Some(s.to_string()))
    );
    assert!(
        strings(&acme, "alertname")
            .iter()
            .all(|n| n.as_deref() == Some("HighErrorRate"))
    );
    let columns: Vec<String> = (acme.schema.fields().iter())
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        columns,
        [
            "time",
            "alertname",
            "fingerprint",
            "state",
            "value",
            "labels",
            "annotations",
            "source"
        ]
    );

    let globex = engine
        .sql(&tenant("globex"), "SELECT alertname FROM alerts")
        .await
        .unwrap();
    assert_eq!(
        strings(&globex, "alertname"),
        [Some("GlobexOnly".to_string())]
    );

    let none = engine
        .sql(&tenant("initech"), "SELECT count(*) AS n FROM alerts")
        .await
        .unwrap();
    assert_eq!(none.num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_filters_apply_and_the_table_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let late = engine
        .sql(
            &tenant("acme"),
            "SELECT state FROM alerts WHERE time >= TIMESTAMP '1970-01-01T00:00:02Z' ORDER BY time",
        )
        .await
        .unwrap();
    assert_eq!(
        strings(&late, "state"),
        ["firing", "resolved"].map(|s| Some(s.to_string()))
    );
    for sql in [
        "INSERT INTO alerts SELECT * FROM alerts",
        "DELETE FROM alerts",
        "DROP TABLE alerts",
    ] {
        assert!(engine.sql(&tenant("acme"), sql).await.is_err(), "{sql}");
    }
}
