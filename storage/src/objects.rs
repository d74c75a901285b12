//! Object stores from URLs: `file:///path`, `memory://`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::{Error, Result};

/// Opens the object store a `--storage` URL names, rooted at the URL's path so that every
/// object Strata writes lives below it.
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let parsed = Url::parse(url)
        .map_err(|e| Error::Config(format!("storage URL {url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "file" => {
            let path = parsed.to_file_path().map_err(|()| {
                Error::Config(format!("storage URL {url:?} is not an absolute file path"))
            })?;
            std::fs::create_dir_all(&path)?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(path)?))
        }
        "memory" => Ok(Arc::new(InMemory::new())),
        "s3" | "s3a" => {
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()?;
            Ok(prefixed(store, &parsed))
        }
        "gs" => {
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()?;
            Ok(prefixed(store, &parsed))
        }
        other => Err(Error::Config(format!(
            "storage URL scheme {other:?} is not supported (use file://, s3://, gs:// or memory://)"
        ))),
    }
}

fn prefixed<T: ObjectStore>(store: T, url: &Url) -> Arc<dyn ObjectStore> {
    let prefix = url.path().trim_matches('/');
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, Path::from(prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn refuses_unknown_schemes_and_relative_paths() {
        assert!(matches!(
            object_store_from_url("ftp://x/y"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            object_store_from_url("not a url"),
            Err(Error::Config(_))
        ));
    }

    #[tokio::test]
    async fn file_urls_create_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        let url = format!("file://{}", root.display());
        let store = object_store_from_url(&url).unwrap();
        store
            .put(&Path::from("a/b.txt"), "hello".into())
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("a/b.txt")).unwrap(), b"hello");
    }
}
