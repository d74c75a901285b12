//! Per-tenant query limits against a real storage engine: each limit fails the query with a
//! message naming it, other tenants' queries are unaffected, and the engine keeps serving.

mod common;

use std::sync::Arc;
use std::time::Duration;

use strata_query::{QueryConfig, QueryEngine, QueryError, QueryLimits};
use strata_storage::{PerTenant, Storage, TenantId};

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

/// Storage with the fixture's logs of `acme` and `globex`, flushed to Parquet.
async fn storage(dir: &tempfile::TempDir) -> Arc<Storage> {
    let storage = common::memory_storage(dir).await;
    for id in ["acme", "globex"] {
        let path = format!(
            "{}/tests/data/{id}/logs.flushed.json",
            env!("CARGO_MANIFEST_DIR")
        );
        common::write_logs(&storage, id, &std::fs::read(path).unwrap(), 0).await;
    }
    storage.flush_all().await.unwrap();
    storage
}

/// An engine where `acme` has `limits` and every other tenant the defaults.
fn engine(storage: Arc<Storage>, limits: QueryLimits) -> QueryEngine {
    let mut per_tenant = PerTenant::default();
    per_tenant.tenants.insert("acme".into(), limits);
    QueryEngine::with_executor(
        storage,
        QueryConfig {
            target_partitions: 2,
            limits: per_tenant,
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_memory_limit_fails_clearly_and_others_run() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(
        storage(&dir).await,
        QueryLimits {
            max_memory_bytes: 4 * 1024,
            ..QueryLimits::default()
        },
    );
    // Every column of every row, sorted: more than 4 KiB of result.
    let sql = "SELECT * FROM logs ORDER BY body";
    let err = engine.sql(&tenant("acme"), sql).await.unwrap_err();
    assert!(matches!(err, QueryError::LimitExceeded(_)), "{err:?}");
    assert!(err.to_string().contains("memory"), "{err}");
    assert!(err.to_string().contains("4.0 KiB"), "{err}");
    // The same query of a tenant with the default limit, and a small one of acme, run.
    let globex = engine.sql(&tenant("globex"), sql).await.unwrap();
    assert!(globex.num_rows() > 0);
    let small = engine
        .sql(&tenant("acme"), "SELECT count(*) FROM logs")
        .await
        .unwrap();
    assert_eq!(small.num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_scan_limit_fails_and_says_so() {
    // Below what the query reads of either tenant's fixture file (a body column of a few
    // dozen lines, compressed).
    const LIMIT: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(
        storage(&dir).await,
        QueryLimits {
            max_scan_bytes: LIMIT,
            ..QueryLimits::default()
        },
    );
    let sql = "SELECT count(*) FROM logs WHERE body LIKE '%a%'";
    let err = engine.sql(&tenant("acme"), sql).await.unwrap_err();
    assert!(matches!(err, QueryError::LimitExceeded(_)), "{err:?}");
    assert!(err.to_string().contains("query_max_scan_bytes"), "{err}");
    let ok = engine.sql(&tenant("globex"), sql).await.unwrap();
    assert!(
        ok.stats.bytes_scanned > LIMIT,
        "globex read its files: {:?}",
        ok.stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_timeout_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(
        storage(&dir).await,
        QueryLimits {
            timeout: Duration::from_millis(200),
            ..QueryLimits::default()
        },
    );
    // Ten billion rows: hours of work, never finished within the timeout.
    let sql = "SELECT count(*) FROM generate_series(1, 10000000000)";
    let err = engine.sql(&tenant("acme"), sql).await.unwrap_err();
    assert!(matches!(err, QueryError::Timeout(_)), "{err:?}");
    assert!(err.to_string().contains("200ms"), "{err}");
    // The slot is free again and the engine answers.
    let ok = engine
        .sql(&tenant("acme"), "SELECT count(*) FROM logs")
        .await
        .unwrap();
    assert_eq!(ok.num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_concurrency_is_refused_and_another_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(engine(
        storage(&dir).await,
        QueryLimits {
            max_concurrent: 1,
            timeout: Duration::from_secs(1),
            ..QueryLimits::default()
        },
    ));
    let long = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .sql(
                    &tenant("acme"),
                    "SELECT count(*) FROM generate_series(1, 10000000000)",
                )
                .await
        })
    };
    while engine.running_queries(&tenant("acme")) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = engine.sql(&tenant("acme"), "SELECT 1").await.unwrap_err();
    assert!(matches!(err, QueryError::ResourcesExhausted(_)), "{err:?}");
    assert!(err.to_string().contains("maximum of 1 concurrent"), "{err}");
    engine.sql(&tenant("globex"), "SELECT 1").await.unwrap();
    assert!(matches!(long.await.unwrap(), Err(QueryError::Timeout(_))));
    engine.sql(&tenant("acme"), "SELECT 1").await.unwrap();
}
