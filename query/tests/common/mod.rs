//! What the query crate's integration tests share.

use std::sync::Arc;

use strata_storage::objects::object_store_from_url;
use strata_storage::{SqlCatalog, Storage, StorageConfig};

/// Storage on an in-memory object store, with its catalog in a SQLite file in `dir`.
pub async fn memory_storage(dir: &tempfile::TempDir) -> Arc<Storage> {
    let store = object_store_from_url("memory://").unwrap();
    let catalog = SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
        .await
        .unwrap();
    Storage::open(store, Arc::new(catalog), StorageConfig::default())
        .await
        .unwrap()
}

#[allow(dead_code)]
/// An object store in a local directory under `dir` and a SQLite catalog beside it, for tests
/// that place files of their own before opening `Storage` over them.
pub async fn local_store_and_catalog(
    dir: &tempfile::TempDir,
) -> (Arc<dyn object_store::ObjectStore>, Arc<SqlCatalog>) {
    std::fs::create_dir_all(dir.path().join("objects")).unwrap();
    let store = object_store_from_url(&format!("file://{}/objects", dir.path().display())).unwrap();
    let catalog = SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
        .await
        .unwrap();
    (store, Arc::new(catalog))
}

/// Puts a Parquet file at `path` and lists it in the catalog: `rows` rows of `tenant`'s
/// `signal` between `min_time` and `max_time`.
#[allow(clippy::too_many_arguments, dead_code)]
pub async fn put_file(
    store: &Arc<dyn object_store::ObjectStore>,
    catalog: &SqlCatalog,
    tenant: &str,
    signal: strata_storage::Signal,
    path: &str,
    bytes: Vec<u8>,
    (min_time, max_time): (i64, i64),
    rows: usize,
) {
    use object_store::ObjectStoreExt;
    use strata_storage::Catalog;
    let size_bytes = bytes.len() as i64;
    store
        .put(&path.into(), bytes::Bytes::from(bytes).into())
        .await
        .unwrap();
    catalog
        .add_files(
            &[strata_storage::catalog::FileMeta {
                id: path.into(),
                tenant: strata_storage::TenantId::new(tenant).unwrap(),
                signal,
                path: path.into(),
                min_time,
                max_time,
                rows: rows as i64,
                size_bytes,
                level: 1,
                created_at: 0,
            }],
            None,
        )
        .await
        .unwrap();
}

/// Writes an OTLP/JSON logs request to `tenant`'s write buffer (`received` stands in for
/// missing timestamps).
#[allow(dead_code)]
pub async fn write_logs(storage: &Storage, tenant: &str, json: &[u8], received: i64) {
    let request = strata_proto::json::decode_logs(json).unwrap();
    let batch = strata_ingest::convert::logs_to_batch(&request, received)
        .batch
        .unwrap();
    storage
        .write(
            &strata_storage::TenantId::new(tenant).unwrap(),
            strata_storage::Signal::Logs,
            batch,
        )
        .await
        .unwrap();
}
