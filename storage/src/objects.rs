//! Object stores from URLs: `file:///path`, `memory://`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::cache::{CacheStats, CachedStore};
use crate::{Error, Result};

/// An opened object store, and its read cache when it is remote.
pub struct OpenedStore {
    pub store: Arc<dyn ObjectStore>,
    pub cache: Option<Arc<CacheStats>>,
}

/// Opens the store of a `--storage` URL; remote stores (S3, GCS) read through a block cache
/// of `cache_bytes` (none when 0).
pub fn open_store(url: &str, cache_bytes: u64) -> Result<OpenedStore> {
    let store = object_store_from_url(url)?;
    let remote = url.starts_with("s3") || url.starts_with("gs:");
    if remote && cache_bytes > 0 {
        let cached = CachedStore::new(store, cache_bytes);
        let stats = cached.stats();
        Ok(OpenedStore {
            store: Arc::new(cached),
            cache: Some(stats),
        })
    } else {
        Ok(OpenedStore { store, cache: None })
    }
}

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
            let builder = aws_profile(object_store::aws::AmazonS3Builder::from_env());
            let store = builder.with_url(url).with_retry(retry()).build()?;
            Ok(prefixed(store, &parsed))
        }
        "gs" => {
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry())
                .build()?;
            Ok(prefixed(store, &parsed))
        }
        other => Err(Error::Config(format!(
            "storage URL scheme {other:?} is not supported (use file://, s3://, gs:// or memory://)"
        ))),
    }
}

/// Retries of one request to a remote store: a few, bounded in time. The flusher retries
/// whole flushes with its own backoff (the WAL keeps the data meanwhile), so a long
/// request-level retry loop would only delay shutdown and hide an outage.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    }
}

/// Fills in credentials and region from the shared AWS files when the environment has none:
/// `AWS_PROFILE` (default `default`) in `AWS_SHARED_CREDENTIALS_FILE` (default
/// `~/.aws/credentials`) and `AWS_CONFIG_FILE` (default `~/.aws/config`). Web identity,
/// container and instance credentials are object_store's own chain, tried after these.
fn aws_profile(builder: object_store::aws::AmazonS3Builder) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::AmazonS3ConfigKey as Key;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").unwrap_or_default();
    let mut builder = builder;
    if env("AWS_ACCESS_KEY_ID").is_none() {
        let path = env("AWS_SHARED_CREDENTIALS_FILE")
            .unwrap_or_else(|| format!("{home}/.aws/credentials"));
        if let Some(section) = ini_section(&path, &profile) {
            for (key, config) in [
                ("aws_access_key_id", Key::AccessKeyId),
                ("aws_secret_access_key", Key::SecretAccessKey),
                ("aws_session_token", Key::Token),
            ] {
                if let Some(v) = section.get(key) {
                    builder = builder.with_config(config, v);
                }
            }
        }
    }
    if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
        let path = env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config"));
        let name = if profile == "default" {
            profile.clone()
        } else {
            format!("profile {profile}")
        };
        if let Some(region) = ini_section(&path, &name).and_then(|s| s.get("region").cloned()) {
            builder = builder.with_region(region);
        }
    }
    builder
}

/// The keys of `[section]` in an INI file, if the file and the section exist.
fn ini_section(path: &str, section: &str) -> Option<std::collections::HashMap<String, String>> {
    parse_ini_section(&std::fs::read_to_string(path).ok()?, section)
}

fn parse_ini_section(
    text: &str,
    section: &str,
) -> Option<std::collections::HashMap<String, String>> {
    let mut found = None;
    let mut current = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim() == section;
            if current {
                found.get_or_insert_with(std::collections::HashMap::new);
            }
            continue;
        }
        if current && let Some((k, v)) = line.split_once('=') {
            found
                .get_or_insert_with(std::collections::HashMap::new)
                .insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    found
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

    #[test]
    fn shared_credentials_sections_parse() {
        let text = "[default]\naws_access_key_id = A\n\n[profile dev]\nregion=eu-west-1\n# c\n[other]\nx=1";
        let default = parse_ini_section(text, "default").unwrap();
        assert_eq!(
            default.get("aws_access_key_id").map(String::as_str),
            Some("A")
        );
        let dev = parse_ini_section(text, "profile dev").unwrap();
        assert_eq!(dev.get("region").map(String::as_str), Some("eu-west-1"));
        assert!(parse_ini_section(text, "missing").is_none());
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
