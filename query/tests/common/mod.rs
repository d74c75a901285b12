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
