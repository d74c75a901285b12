//! Object stores from URLs: `file:///path`, `memory://`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::cache::{BLOCK_BYTES, CacheStats, CachedStore, LOCAL_BLOCK_BYTES};
use crate::{Error, Result};

/// An opened object store, and its read cache when it has one.
pub struct OpenedStore {
    pub store: Arc<dyn ObjectStore>,
    pub cache: Option<Arc<CacheStats>>,
}

/// Opens the store of a `--storage` URL, reading through a block cache of `cache_bytes` (none
/// when 0, nor for `memory://`, which is memory already). A local directory has one too: a
/// read from it costs a blocking task, an `open` and a `pread` even when the kernel has the
/// bytes, and a lookup by trace id makes one such read per row group for its bloom filters.
pub fn open_store(url: &str, cache_bytes: u64) -> Result<OpenedStore> {
    let store = object_store_from_url(url)?;
    if !url.starts_with("memory:") && cache_bytes > 0 {
        let block = if url.starts_with("file:") {
            LOCAL_BLOCK_BYTES
        } else {
            BLOCK_BYTES
        };
        let cached = CachedStore::with_block_bytes(store, cache_bytes, block);
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
        "s3" | "s3a" | "gs" if parsed.host_str().is_none_or(str::is_empty) => {
            Err(Error::Config(format!(
                "storage URL {url:?} names no bucket: use {}://BUCKET/prefix",
                parsed.scheme()
            )))
        }
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
        match object_store_from_url("ftp://x/y") {
            Err(Error::Config(msg)) => assert!(
                msg.contains("\"ftp\"") && msg.contains("not supported") && msg.contains("gs://"),
                "{msg}"
            ),
            other => panic!(
                "ftp:// should be refused: {:?}",
                other.map(|s| s.to_string())
            ),
        }
        match object_store_from_url("not a url") {
            Err(Error::Config(msg)) => assert!(msg.contains("is not a URL"), "{msg}"),
            other => panic!(
                "a relative path should be refused: {:?}",
                other.map(|s| s.to_string())
            ),
        }
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

    // ------------------------------------------------------------------ gs:// and s3://
    //
    // object_store reads the configuration of GCS and S3 from the process environment, which
    // all the tests of this binary share: setting variables while other tests' threads run is
    // unsound (`std::env::set_var` is `unsafe` for that reason). So the environment-dependent
    // checks all live in one test, `gs_and_s3_urls_from_the_environment`, which runs each case
    // in a child process of this test binary with the environment of that case (inherited
    // `GOOGLE_*` / `AWS_*` variables removed, `HOME` a temporary directory). The requests the
    // stores make go to a tiny HTTP endpoint of the parent, which records them: that is how the
    // prefix and the credentials are checked, offline.

    /// Makes `gs_and_s3_urls_from_the_environment` run one case (in a child process).
    const CASE_VAR: &str = "STRATA_OBJECTS_TEST_CASE";
    const THIS_TEST: &str = "objects::tests::gs_and_s3_urls_from_the_environment";

    /// One request received by [`Endpoint`]: request line, headers (names in lower case), body.
    #[derive(Debug, Clone)]
    struct Received {
        line: String,
        headers: std::collections::HashMap<String, String>,
        body: Vec<u8>,
    }

    /// An HTTP endpoint on 127.0.0.1 that answers every request with 200 and an ETag (what an
    /// S3 or GCS PUT returns), closing the connection, and records what it received.
    struct Endpoint {
        url: String,
        received: Arc<std::sync::Mutex<Vec<Received>>>,
    }

    impl Endpoint {
        fn start() -> Self {
            use std::io::{BufRead, BufReader, Read, Write};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let received = Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = received.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        continue;
                    }
                    let mut headers = std::collections::HashMap::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let len = headers
                        .get("content-length")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        continue;
                    }
                    log.lock().unwrap().push(Received {
                        line: line.trim().to_string(),
                        headers,
                        body,
                    });
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nETag: \"etag-1\"\r\nx-goog-generation: 7\r\n\
                          Content-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
            Self { url, received }
        }

        /// The requests received since the last call.
        fn take(&self) -> Vec<Received> {
            std::mem::take(&mut *self.received.lock().unwrap())
        }
    }

    /// Runs `case` of `gs_and_s3_urls_from_the_environment` in a child process with `env`.
    fn in_child(case: &str, home: &std::path::Path, env: &[(&str, &str)]) {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([THIS_TEST, "--exact", "--nocapture", "--test-threads=1"]);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("GOOGLE_") || k.starts_with("AWS_") || k == "SERVICE_ACCOUNT" {
                cmd.env_remove(&*k);
            }
        }
        cmd.env("HOME", home).env(CASE_VAR, case);
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("test result: ok. 1 passed"),
            "case {case} failed in its child process ({}):\n{text}",
            out.status
        );
    }

    /// The message of an error `object_store_from_url` must give (not a panic, not a store).
    fn refused(url: &str) -> String {
        match object_store_from_url(url) {
            Ok(store) => panic!("{url} should be refused, got {store}"),
            Err(e) => e.to_string(),
        }
    }

    /// One case, in the child process.
    fn run_case(case: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            match case {
                // A service-account file with `gcs_base_url` and `disable_oauth` (how the e2e
                // test points Strata at its emulator): builds, rooted at the URL's path.
                "gcs-put" | "s3-put" | "s3-profile" => {
                    let scheme = if case == "gcs-put" { "gs" } else { "s3" };
                    let url = format!("{scheme}://strata-bucket/some/prefix");
                    let store = object_store_from_url(&url).unwrap();
                    assert_eq!(store.to_string(), "PrefixObjectStore(some/prefix)");
                    assert!(format!("{store:?}").contains("strata-bucket"), "{store:?}");
                    let put = store
                        .put(&Path::from("a/b.txt"), "hello".into())
                        .await
                        .unwrap();
                    assert_eq!(put.e_tag.as_deref(), Some("\"etag-1\""));
                    // Through open_store too: remote, so with a read cache.
                    let opened = open_store(&url, 1 << 20).unwrap();
                    assert!(opened.cache.is_some());
                    assert_eq!(
                        opened.store.to_string(),
                        "Cached(PrefixObjectStore(some/prefix))"
                    );
                }
                "gcs-malformed-json" => {
                    let msg = refused("gs://strata-bucket/p");
                    assert!(
                        msg.contains("Unable to decode service account file"),
                        "{msg}"
                    );
                }
                "gcs-missing-field" => {
                    let msg = refused("gs://strata-bucket/p");
                    assert!(
                        msg.contains("Unable to decode service account file")
                            && msg.contains("client_email"),
                        "{msg}"
                    );
                }
                "gcs-missing-file" => {
                    let msg = refused("gs://strata-bucket/p");
                    let path = std::env::var("GOOGLE_SERVICE_ACCOUNT").unwrap();
                    assert!(
                        msg.contains("Unable to open service account file") && msg.contains(&path),
                        "{msg}"
                    );
                }
                // object_store's message names the URL ("URL did not match any known
                // pattern for scheme: gs:///prefix"); it does not say that the bucket is
                // what is missing.
                "gs-without-bucket" => {
                    for url in ["gs:///prefix", "gs://", "gs:prefix"] {
                        let msg = refused(url);
                        assert!(
                            msg.contains(url)
                                && (msg.contains("bucket")
                                    || msg.contains("did not match any known pattern")),
                            "{url}: {msg}"
                        );
                    }
                }
                other => panic!("unknown case {other}"),
            }
        });
    }

    #[test]
    fn gs_and_s3_urls_from_the_environment() {
        if let Ok(case) = std::env::var(CASE_VAR) {
            return run_case(&case);
        }
        let home = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::start();
        let file = |name: &str, text: &str| {
            let path = home.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };

        // gs://: a service-account file, named by GOOGLE_SERVICE_ACCOUNT.
        let sa = file(
            "sa.json",
            &format!(
                r#"{{"gcs_base_url": "{}", "disable_oauth": true, "client_email": "e2e@example.com",
                    "private_key": "", "private_key_id": ""}}"#,
                endpoint.url
            ),
        );
        in_child("gcs-put", home.path(), &[("GOOGLE_SERVICE_ACCOUNT", &sa)]);
        let got = endpoint.take();
        assert_eq!(got.len(), 1, "{got:?}"); // no OAuth token request: only the PUT
        // object_store's XML-API upload, below the prefix (bucket and name with every
        // non-alphanumeric byte escaped).
        assert_eq!(
            got[0].line,
            "PUT /strata%2Dbucket/some%2Fprefix%2Fa%2Fb%2Etxt HTTP/1.1"
        );
        assert_eq!(got[0].body, b"hello");
        assert_eq!(
            got[0].headers.get("authorization").map(|a| a.trim()),
            Some("Bearer")
        );

        // Bad service-account files: clear errors naming what is wrong.
        let bad = file("bad.json", r#"{"gcs_base_url": "http://127.0.0.1:9", "#);
        in_child(
            "gcs-malformed-json",
            home.path(),
            &[("GOOGLE_SERVICE_ACCOUNT", &bad)],
        );
        let partial = file(
            "partial.json",
            r#"{"private_key": "", "private_key_id": ""}"#,
        );
        in_child(
            "gcs-missing-field",
            home.path(),
            &[("GOOGLE_SERVICE_ACCOUNT", &partial)],
        );
        let missing = home.path().join("nonexistent.json");
        in_child(
            "gcs-missing-file",
            home.path(),
            &[("GOOGLE_SERVICE_ACCOUNT", missing.to_str().unwrap())],
        );
        // A gs:// URL without a bucket, with valid credentials otherwise.
        in_child(
            "gs-without-bucket",
            home.path(),
            &[("GOOGLE_SERVICE_ACCOUNT", &sa)],
        );
        assert!(endpoint.take().is_empty());

        // s3://: keys from the environment, path-style, below the prefix.
        in_child(
            "s3-put",
            home.path(),
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", "us-west-2"),
                ("AWS_ENDPOINT_URL", &endpoint.url),
                ("AWS_ALLOW_HTTP", "true"),
            ],
        );
        let got = endpoint.take();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[0].line,
            "PUT /strata-bucket/some/prefix/a/b.txt HTTP/1.1"
        );
        assert_eq!(got[0].body, b"hello");
        let auth = got[0]
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDENV/")
                && auth.contains("/us-west-2/s3/aws4_request"),
            "{auth}"
        );

        // s3:// without keys in the environment: AWS_PROFILE's section of ~/.aws/credentials
        // and its region from ~/.aws/config.
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        file(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n\n\
             [dev]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = p\n",
        );
        file(
            ".aws/config",
            "[default]\nregion = us-east-2\n[profile dev]\nregion = eu-west-1\n",
        );
        in_child(
            "s3-profile",
            home.path(),
            &[
                ("AWS_PROFILE", "dev"),
                ("AWS_ENDPOINT_URL", &endpoint.url),
                ("AWS_ALLOW_HTTP", "true"),
            ],
        );
        let got = endpoint.take();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[0].line,
            "PUT /strata-bucket/some/prefix/a/b.txt HTTP/1.1"
        );
        let auth = got[0]
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDPROFILE/")
                && auth.contains("/eu-west-1/s3/aws4_request"),
            "{auth}"
        );
    }
}
