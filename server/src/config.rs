//! Command line, environment and configuration file.
//!
//! Every option of `strata serve` is a flag, an environment variable `STRATA_<FLAG>` and a key
//! of the TOML file given by `--config`. One precedence, tested below:
//! flags > environment > file > defaults. `docs/CONFIG.md` lists every option.

mod limits;

pub use limits::{LimitArgs, Limits, LimitsFile};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use strata_storage::maintenance::{RetentionPolicy, TenantRetention};
use strata_storage::{Signal, TenantId};

/// Strata: an OpenTelemetry-native observability backend.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Strata node: OTLP receivers, storage, SQL API.
    Serve(Box<ServeArgs>),
    /// Run one SQL query against a running node and print the result.
    Sql(SqlArgs),
    /// Create, list and revoke API keys, directly in the catalog (works before the first
    /// start and while nodes run).
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// How requests are authenticated (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: single user. The tenant is `X-Scope-OrgID`, else `default`.
    None,
    /// Every OTLP export and API call needs an API key, which names its tenant.
    Keys,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `strata serve`. All optional here: unset ones fall back to the file, then to the
/// defaults (see [`ServeArgs::resolve`]).
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file; its keys are the flag names with `_` for `-`.
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for local state (catalog database, default object store) [default: ./data]
    #[arg(long, env = "STRATA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Object store URL: file:///path, s3://bucket/prefix, gs://bucket/prefix or memory://
    /// [default: file://<data-dir>/objects]
    #[arg(long, env = "STRATA_STORAGE", value_name = "URL")]
    pub storage: Option<String>,

    /// Catalog database URL: sqlite://path or postgres://user:pass@host/db
    /// [default: sqlite://<data-dir>/catalog.db]
    #[arg(long, env = "STRATA_CATALOG", value_name = "URL")]
    pub catalog: Option<String>,

    /// Address of the OTLP/gRPC listener [default: 0.0.0.0:4317]
    #[arg(long, env = "STRATA_GRPC_LISTEN", value_name = "ADDR")]
    pub grpc_listen: Option<SocketAddr>,

    /// Address of the OTLP/HTTP listener [default: 0.0.0.0:4318]
    #[arg(long, env = "STRATA_OTLP_HTTP_LISTEN", value_name = "ADDR")]
    pub otlp_http_listen: Option<SocketAddr>,

    /// Address of the HTTP API (SQL, health, metrics) and UI [default: 0.0.0.0:8080]
    #[arg(long, env = "STRATA_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Log format [default: text]
    #[arg(long, env = "STRATA_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. `info` or `strata_storage=debug,info` [default: info]
    #[arg(long, env = "STRATA_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Largest OTLP request body accepted, in bytes, counted after decompression
    /// [default: 20971520 (20 MiB)]
    #[arg(long, env = "STRATA_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// A table's write buffer is flushed to Parquet once its oldest row is this old, e.g.
    /// `30s`, `5m` [default: 30s]
    #[arg(long, env = "STRATA_FLUSH_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub flush_interval: Option<Duration>,

    /// A table's write buffer is flushed once it holds this many bytes of Arrow data
    /// [default: 67108864 (64 MiB), or a sixteenth of --memory-limit if smaller]
    #[arg(long, env = "STRATA_FLUSH_MAX_BYTES", value_name = "BYTES")]
    pub flush_max_bytes: Option<usize>,

    /// Threads that execute queries [default: the number of CPUs]
    #[arg(long, env = "STRATA_QUERY_THREADS", value_name = "N")]
    pub query_threads: Option<usize>,

    /// Writes are refused with HTTP 429 / gRPC UNAVAILABLE while the write buffers of all
    /// tables together hold this many bytes [default: 1073741824 (1 GiB), or an eighth of
    /// --memory-limit if smaller]
    #[arg(long, env = "STRATA_MAX_BUFFER_BYTES", value_name = "BYTES")]
    pub max_buffer_bytes: Option<usize>,

    /// Limit on the node's resident memory: from 80 % of it on, exports are refused with HTTP
    /// 429 / gRPC UNAVAILABLE and the largest write buffer is flushed; compaction starts a
    /// merge only under 50 % of it; the write buffer, flush, in-flight and cache budgets
    /// default to shares of it. 0 = none [default: 0]
    #[arg(long, env = "STRATA_MEMORY_LIMIT", value_name = "BYTES")]
    pub memory_limit: Option<usize>,

    /// Bytes of OTLP request bodies (after decompression) decoded and converted at once,
    /// across both receivers; a request that cannot get its share within 500 ms is refused
    /// with HTTP 429 / gRPC UNAVAILABLE [default: 67108864 (64 MiB), or a sixteenth of
    /// --memory-limit if smaller]
    #[arg(long, env = "STRATA_MAX_INFLIGHT_BYTES", value_name = "BYTES")]
    pub max_inflight_bytes: Option<usize>,

    /// Directory of the write-ahead log [default: <data-dir>/wal]
    #[arg(long, env = "STRATA_WAL_DIR", value_name = "DIR")]
    pub wal_dir: Option<PathBuf>,

    /// How long the WAL writer waits to group more writes into one fsync; 0 groups only the
    /// writes that arrive during the previous fsync [default: 0ms]
    #[arg(long, env = "STRATA_WAL_SYNC_DELAY", value_name = "DURATION", value_parser = parse_duration)]
    pub wal_sync_delay: Option<Duration>,

    /// A WAL segment is sealed once it holds this many bytes [default: 67108864 (64 MiB)]
    #[arg(long, env = "STRATA_WAL_SEGMENT_BYTES", value_name = "BYTES")]
    pub wal_segment_bytes: Option<u64>,

    /// Writes are refused with HTTP 503 / gRPC UNAVAILABLE while the WAL holds this many bytes
    /// (data not yet in Parquet) [default: 8589934592 (8 GiB)]
    #[arg(long, env = "STRATA_WAL_MAX_BYTES", value_name = "BYTES")]
    pub wal_max_bytes: Option<u64>,

    /// Bytes of object-store data (local directory, S3, GCS) kept in the node's read cache; 0 turns it
    /// off [default: 536870912 (512 MiB), or an eighth of --memory-limit if smaller]
    #[arg(long, env = "STRATA_CACHE_BYTES", value_name = "BYTES")]
    pub cache_bytes: Option<u64>,

    /// How long a shutdown keeps trying to flush the write buffer to the object store; what
    /// is left stays in the WAL for the next start [default: 30s]
    #[arg(long, env = "STRATA_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,

    /// How often compaction looks for partitions with small files to merge [default: 1m]
    #[arg(long, env = "STRATA_COMPACTION_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub compaction_interval: Option<Duration>,

    /// Compaction merges files smaller than half of this into files of up to about this many
    /// bytes [default: 134217728 (128 MiB)]
    #[arg(long, env = "STRATA_COMPACTION_TARGET_BYTES", value_name = "BYTES")]
    pub compaction_target_bytes: Option<u64>,

    /// Default retention of every tenant and signal, e.g. `30d`; unset keeps data forever.
    /// The file's `[retention]` table sets it per signal and per tenant (`retention.default`)
    #[arg(long, env = "STRATA_RETENTION", value_name = "DURATION", value_parser = parse_duration)]
    pub retention: Option<Duration>,

    /// How often retention and garbage collection run [default: 5m]
    #[arg(long, env = "STRATA_RETENTION_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_interval: Option<Duration>,

    /// How long files replaced by compaction or expired by retention stay readable (for
    /// queries already running) before their objects are deleted [default: 5m]
    #[arg(long, env = "STRATA_DELETE_GRACE", value_name = "DURATION", value_parser = parse_duration)]
    pub delete_grace: Option<Duration>,

    /// PEM file with the certificate chain every listener presents; with `--tls-key-file`,
    /// the OTLP/gRPC, OTLP/HTTP and API listeners all speak TLS only
    #[arg(long, env = "STRATA_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM file with the private key of `--tls-cert-file` (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "STRATA_TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Run rule evaluation, the alerter and the notifier on this node; in a cluster sharing
    /// one catalog, keep it on one node only [default: true]
    #[arg(long, env = "STRATA_ALERTING", value_name = "BOOL")]
    pub alerting: Option<bool>,

    /// Alert rule file, or directory of `*.yml`/`*.yaml` rule files (docs/ALERTING.md),
    /// loaded at start and on reload; its groups are read-only through the API
    #[arg(long, env = "STRATA_RULES", value_name = "PATH")]
    pub rules: Option<PathBuf>,

    /// Alerter configuration (YAML: routes, receivers, inhibition, time intervals,
    /// escalation policies; docs/ALERTING.md), reloaded on SIGHUP and `POST /-/reload`
    /// [default: one route to a receiver without integrations]
    #[arg(long, env = "STRATA_ALERTER_CONFIG", value_name = "FILE")]
    pub alerter_config: Option<PathBuf>,

    /// This node's URL as users reach it: links in notifications (`externalURL`,
    /// `generatorURL`) [default: the alerter file's `delivery.external_url`]
    #[arg(long, env = "STRATA_EXTERNAL_URL", value_name = "URL")]
    pub external_url: Option<String>,

    /// The window of spans the service graph (incident correlation) is derived from
    /// [default: 15m]
    #[arg(long, env = "STRATA_SERVICE_GRAPH_WINDOW", value_name = "DURATION", value_parser = parse_duration)]
    pub service_graph_window: Option<Duration>,

    #[command(flatten)]
    pub limits: LimitArgs,
    /// `none` (single user: the tenant is X-Scope-OrgID) or `keys` (every OTLP export and API
    /// call needs an API key, which names the tenant) [default: none]
    #[arg(long, env = "STRATA_AUTH", value_name = "MODE")]
    pub auth: Option<AuthMode>,
}

/// The keys of the configuration file (each optional; unknown keys are an error).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub storage: Option<String>,
    pub catalog: Option<String>,
    pub grpc_listen: Option<SocketAddr>,
    pub otlp_http_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub max_body_bytes: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    pub flush_interval: Option<Duration>,
    pub flush_max_bytes: Option<usize>,
    pub query_threads: Option<usize>,
    pub max_buffer_bytes: Option<usize>,
    pub memory_limit: Option<usize>,
    pub max_inflight_bytes: Option<usize>,
    pub wal_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration")]
    pub wal_sync_delay: Option<Duration>,
    pub wal_segment_bytes: Option<u64>,
    pub wal_max_bytes: Option<u64>,
    pub cache_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de_duration")]
    pub shutdown_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub compaction_interval: Option<Duration>,
    pub compaction_target_bytes: Option<u64>,
    pub retention: Option<RetentionFile>,
    #[serde(default, deserialize_with = "de_duration")]
    pub retention_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub delete_grace: Option<Duration>,
    pub limits: Option<LimitsFile>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub auth: Option<AuthMode>,
    pub alerting: Option<bool>,
    pub rules: Option<PathBuf>,
    pub alerter_config: Option<PathBuf>,
    pub external_url: Option<String>,
    #[serde(default, deserialize_with = "de_duration")]
    pub service_graph_window: Option<Duration>,
}

/// The `[retention]` table of the file: a default, per-signal defaults, per-tenant
/// overrides (`[retention.tenants.acme]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    #[serde(default, deserialize_with = "de_duration")]
    pub default: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub spans: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub logs: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub metrics: Option<Duration>,
    #[serde(default)]
    pub tenants: std::collections::HashMap<String, TenantRetentionFile>,
}

/// One tenant's `[retention.tenants.<id>]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRetentionFile {
    #[serde(default, deserialize_with = "de_duration")]
    pub default: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub spans: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub logs: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub metrics: Option<Duration>,
}

fn signal_durations(
    spans: Option<Duration>,
    logs: Option<Duration>,
    metrics: Option<Duration>,
) -> std::collections::HashMap<Signal, Duration> {
    [
        (Signal::Spans, spans),
        (Signal::Logs, logs),
        (Signal::Metrics, metrics),
    ]
    .into_iter()
    .filter_map(|(s, d)| d.map(|d| (s, d)))
    .collect()
}

/// The retention policy: `--retention` beats the file's `retention.default`.
fn retention_policy(
    flag: Option<Duration>,
    file: Option<RetentionFile>,
) -> Result<RetentionPolicy, ConfigError> {
    let file = file.unwrap_or_default();
    let mut tenants = std::collections::HashMap::new();
    for (id, t) in file.tenants {
        TenantId::new(&id).map_err(|e| {
            ConfigError::Invalid(format!("retention.tenants.{id}: invalid tenant id: {e}"))
        })?;
        tenants.insert(
            id,
            TenantRetention {
                default: t.default,
                signals: signal_durations(t.spans, t.logs, t.metrics),
            },
        );
    }
    Ok(RetentionPolicy {
        default: flag.or(file.default),
        signals: signal_durations(file.spans, file.logs, file.metrics),
        tenants,
    })
}

/// The resolved configuration of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub storage: String,
    pub catalog: String,
    pub grpc_listen: SocketAddr,
    pub otlp_http_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_body_bytes: usize,
    pub flush_interval: Duration,
    pub flush_max_bytes: usize,
    pub query_threads: usize,
    pub max_buffer_bytes: usize,
    pub max_inflight_bytes: usize,
    /// Bytes of resident memory; 0 = no limit.
    pub memory_limit: usize,
    pub wal_dir: PathBuf,
    pub wal_sync_delay: Duration,
    pub wal_segment_bytes: u64,
    pub wal_max_bytes: u64,
    pub cache_bytes: u64,
    pub shutdown_timeout: Duration,
    pub compaction_interval: Duration,
    pub compaction_target_bytes: u64,
    pub retention: RetentionPolicy,
    pub retention_interval: Duration,
    pub delete_grace: Duration,
    pub limits: Limits,
    /// TLS on every listener, when set.
    pub tls: Option<crate::tls::TlsFiles>,
    pub auth: AuthMode,
    /// `STRATA_BOOTSTRAP_ADMIN_KEY`: accepted as an admin key of `bootstrap_tenant` when
    /// auth is `keys` (environment only: a secret does not belong in argv or a file).
    pub bootstrap_admin_key: Option<Secret>,
    /// `STRATA_BOOTSTRAP_TENANT` [default: default]: the bootstrap key's tenant, whose admin
    /// keys may also read the node-wide `/metrics`.
    pub operator_tenant: TenantId,
    /// Whether this node evaluates rules, runs the alerter and delivers notifications.
    pub alerting: bool,
    /// Alert rule file or directory.
    pub rules: Option<PathBuf>,
    /// Alerter configuration file.
    pub alerter_config: Option<PathBuf>,
    /// Overrides the alerter file's `delivery.external_url`.
    pub external_url: Option<String>,
    pub service_graph_window: Duration,
}

/// A secret: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The bootstrap key and operator tenant, from the environment (`lookup` reads a variable).
pub fn bootstrap_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Option<Secret>, TenantId), ConfigError> {
    let tenant = match lookup("STRATA_BOOTSTRAP_TENANT").filter(|t| !t.is_empty()) {
        Some(t) => TenantId::new(&t).map_err(|e| {
            ConfigError::Invalid(format!("STRATA_BOOTSTRAP_TENANT: invalid tenant id: {e}"))
        })?,
        None => TenantId::default_tenant(),
    };
    let key = match lookup("STRATA_BOOTSTRAP_ADMIN_KEY").filter(|k| !k.is_empty()) {
        Some(k) => {
            let min = strata_ingest::auth::MIN_BOOTSTRAP_KEY_LEN;
            if k.len() < min || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::Invalid(format!(
                    "STRATA_BOOTSTRAP_ADMIN_KEY must be at least {min} characters without \
                     spaces (e.g. `openssl rand -hex 32`)"
                )));
            }
            Some(Secret(k))
        }
        None => None,
    };
    Ok((key, tenant))
}

/// Why the configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ServeArgs {
    /// Reads the file named by `--config` (if any) and resolves every option.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        self.resolve_with(file)
    }

    /// Resolves every option: flag (or its env var, which clap folds in) > file > default.
    pub fn resolve_with(self, file: FileConfig) -> Result<Config, ConfigError> {
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let data_dir = absolute(&data_dir)?;
        let storage = self
            .storage
            .or(file.storage)
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        let catalog = self
            .catalog
            .or(file.catalog)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display()));
        let default_addr = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
        let max_body_bytes = self
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(strata_ingest::DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be above 0".into(),
            ));
        }
        let query_threads = self
            .query_threads
            .or(file.query_threads)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
        if query_threads == 0 {
            return Err(ConfigError::Invalid("query_threads must be above 0".into()));
        }
        let memory_limit = self.memory_limit.or(file.memory_limit).unwrap_or(0);
        // Under a memory limit, the budgets that live inside it default to shares of it.
        let share = |default: usize, divisor: usize| {
            if memory_limit == 0 {
                default
            } else {
                default.min((memory_limit / divisor).max(1))
            }
        };
        let max_inflight_bytes = self
            .max_inflight_bytes
            .or(file.max_inflight_bytes)
            .unwrap_or_else(|| share(strata_ingest::DEFAULT_MAX_INFLIGHT_BYTES, 16));
        if max_inflight_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_inflight_bytes must be above 0".into(),
            ));
        }
        let wal_dir = self
            .wal_dir
            .or(file.wal_dir)
            .map(|d| absolute(&d))
            .transpose()?
            .unwrap_or_else(|| data_dir.join("wal"));
        let retention = retention_policy(self.retention, file.retention)?;
        let limits = self.limits.resolve(file.limits)?;
        let tls = match (
            self.tls_cert_file.or(file.tls_cert_file),
            self.tls_key_file.or(file.tls_key_file),
        ) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert_file and tls_key_file must be set together".into(),
                ));
            }
        };
        let (bootstrap_admin_key, operator_tenant) = bootstrap_from(|v| std::env::var(v).ok())?;
        let service_graph_window = self
            .service_graph_window
            .or(file.service_graph_window)
            .unwrap_or(Duration::from_secs(15 * 60));
        if service_graph_window.is_zero() {
            return Err(ConfigError::Invalid(
                "service_graph_window must be above 0".into(),
            ));
        }
        Ok(Config {
            alerting: self.alerting.or(file.alerting).unwrap_or(true),
            rules: self
                .rules
                .or(file.rules)
                .map(|p| absolute(&p))
                .transpose()?,
            alerter_config: self
                .alerter_config
                .or(file.alerter_config)
                .map(|p| absolute(&p))
                .transpose()?,
            external_url: self.external_url.or(file.external_url),
            service_graph_window,
            limits,
            tls,
            auth: self.auth.or(file.auth).unwrap_or(AuthMode::None),
            bootstrap_admin_key,
            operator_tenant,
            cache_bytes: self
                .cache_bytes
                .or(file.cache_bytes)
                .unwrap_or_else(|| share(512 * 1024 * 1024, 8) as u64),
            shutdown_timeout: self
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(Duration::from_secs(30)),
            compaction_interval: self
                .compaction_interval
                .or(file.compaction_interval)
                .unwrap_or(Duration::from_secs(60)),
            compaction_target_bytes: self
                .compaction_target_bytes
                .or(file.compaction_target_bytes)
                .unwrap_or(128 * 1024 * 1024),
            retention,
            retention_interval: self
                .retention_interval
                .or(file.retention_interval)
                .unwrap_or(Duration::from_secs(300)),
            delete_grace: self
                .delete_grace
                .or(file.delete_grace)
                .unwrap_or(Duration::from_secs(300)),
            max_buffer_bytes: self
                .max_buffer_bytes
                .or(file.max_buffer_bytes)
                .unwrap_or_else(|| share(1024 * 1024 * 1024, 8)),
            max_inflight_bytes,
            memory_limit,
            wal_dir,
            wal_sync_delay: self
                .wal_sync_delay
                .or(file.wal_sync_delay)
                .unwrap_or(Duration::ZERO),
            wal_segment_bytes: self
                .wal_segment_bytes
                .or(file.wal_segment_bytes)
                .unwrap_or(64 * 1024 * 1024),
            wal_max_bytes: self
                .wal_max_bytes
                .or(file.wal_max_bytes)
                .unwrap_or(8 * 1024 * 1024 * 1024),
            data_dir,
            storage,
            catalog,
            grpc_listen: self
                .grpc_listen
                .or(file.grpc_listen)
                .unwrap_or(default_addr(4317)),
            otlp_http_listen: self
                .otlp_http_listen
                .or(file.otlp_http_listen)
                .unwrap_or(default_addr(4318)),
            http_listen: self
                .http_listen
                .or(file.http_listen)
                .unwrap_or(default_addr(8080)),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            log_level: self
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            max_body_bytes,
            flush_interval: self
                .flush_interval
                .or(file.flush_interval)
                .unwrap_or(Duration::from_secs(30)),
            flush_max_bytes: self
                .flush_max_bytes
                .or(file.flush_max_bytes)
                .unwrap_or_else(|| share(64 * 1024 * 1024, 16)),
            query_threads,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn absolute(path: &Path) -> Result<PathBuf, ConfigError> {
    std::path::absolute(path).map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))
}

/// Parses `500ms`, `30s`, `5m`, `2h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}; use e.g. 500ms, 30s, 5m, 2h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => return Err(format!("invalid duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Flags of `strata sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The SQL statement to run.
    pub query: String,

    /// Base URL of the node's HTTP API.
    #[arg(long, env = "STRATA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,

    /// Tenant to query as (sent as X-Scope-OrgID); unset: none is sent, so the node uses
    /// `default`, or the API key's tenant.
    #[arg(long, env = "STRATA_TENANT")]
    pub tenant: Option<String>,

    /// API key (sent as `Authorization: Bearer`), for nodes with `--auth keys`.
    #[arg(
        long,
        env = "STRATA_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Where `strata keys` finds the catalog: the same flags, variables and file keys as
/// `strata serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct CatalogArgs {
    /// TOML configuration file of the node (its `data_dir` and `catalog` keys are used).
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The node's data directory [default: ./data]
    #[arg(long, env = "STRATA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Catalog database URL [default: sqlite://<data-dir>/catalog.db]
    #[arg(long, env = "STRATA_CATALOG", value_name = "URL")]
    pub catalog: Option<String>,
}

impl CatalogArgs {
    /// The catalog URL and the data directory, resolved as `strata serve` resolves them.
    pub fn resolve(&self) -> Result<(String, PathBuf), ConfigError> {
        let config = ServeArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            catalog: self.catalog.clone(),
            ..ServeArgs::default()
        }
        .resolve()?;
        Ok((config.catalog, config.data_dir))
    }
}

/// `strata keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once: only its hash is stored).
    Create(KeysCreateArgs),
    /// List keys (never their secrets).
    List(KeysListArgs),
    /// Revoke a key by id; every node refuses it within seconds.
    Revoke(KeysRevokeArgs),
}

#[derive(Debug, Args)]
pub struct KeysCreateArgs {
    /// Tenant the key belongs to (every request made with it is confined to this tenant).
    #[arg(long)]
    pub tenant: String,
    /// Comma-separated scopes: ingest, read, write, admin (admin implies the others).
    #[arg(long)]
    pub scopes: String,
    /// A name to recognise the key by, e.g. `collector-eu1`.
    #[arg(long)]
    pub name: String,
    /// Lifetime, e.g. `30d`, `12h`; unset: the key does not expire.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires: Option<Duration>,
    /// `text`: the key alone on stdout, details on stderr; `json`: one object on stdout.
    #[arg(long, value_enum, default_value_t = KeysFormat::Text)]
    pub format: KeysFormat,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

#[derive(Debug, Args)]
pub struct KeysListArgs {
    /// Only this tenant's keys.
    #[arg(long)]
    pub tenant: Option<String>,
    /// `text` (a table) or `json`.
    #[arg(long, value_enum, default_value_t = KeysFormat::Text)]
    pub format: KeysFormat,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    /// The key's id (the part after `strata_`, 12 hex digits), as `strata keys list` shows.
    pub id: String,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// How `strata keys` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeysFormat {
    Text,
    Json,
}

/// How `strata sql` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// The API's JSON.
    Json,
    /// CSV with a header row.
    Csv,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["strata", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => *args,
            _ => unreachable!(),
        }
    }

    /// The whole precedence chain, in one test because environment variables are global to
    /// the test process.
    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.toml");
        std::fs::write(
            &file,
            r#"
                data_dir = "/from/file"
                storage = "memory://"
                grpc_listen = "127.0.0.1:1001"
                otlp_http_listen = "127.0.0.1:1002"
                http_listen = "127.0.0.1:1003"
                flush_interval = "5m"
                log_format = "json"
                wal_sync_delay = "2ms"
                max_inflight_bytes = 1000
                auth = "keys"
            "#,
        )
        .unwrap();
        let config_flag = format!("--config={}", file.display());

        // Defaults only.
        let c = parse(&["--data-dir=/d"]).resolve().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        assert_eq!(c.storage, "file:///d/objects");
        assert_eq!(c.catalog, "sqlite:///d/catalog.db");
        assert_eq!(c.grpc_listen, "0.0.0.0:4317".parse().unwrap());
        assert_eq!(c.otlp_http_listen, "0.0.0.0:4318".parse().unwrap());
        assert_eq!(c.http_listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.max_body_bytes, 20 * 1024 * 1024);
        assert_eq!(c.flush_interval, Duration::from_secs(30));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.wal_dir, PathBuf::from("/d/wal"));
        assert_eq!(c.wal_sync_delay, Duration::ZERO);
        assert_eq!(c.max_buffer_bytes, 1 << 30);
        assert_eq!(c.max_inflight_bytes, 64 << 20);
        assert_eq!(c.auth, AuthMode::None);
        // Under a memory limit, a sixteenth of it when that is smaller.
        let c = parse(&["--memory-limit=268435456"]).resolve().unwrap();
        assert_eq!(c.max_inflight_bytes, 16 << 20);

        // The file beats the defaults.
        let c = parse(&[&config_flag]).resolve().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.storage, "memory://");
        assert_eq!(c.catalog, "sqlite:///from/file/catalog.db");
        assert_eq!(c.grpc_listen, "127.0.0.1:1001".parse().unwrap());
        assert_eq!(c.flush_interval, Duration::from_secs(300));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.wal_dir, PathBuf::from("/from/file/wal"));
        assert_eq!(c.wal_sync_delay, Duration::from_millis(2));
        assert_eq!(c.max_inflight_bytes, 1000);
        assert_eq!(c.auth, AuthMode::Keys);

        // The environment beats the file.
        // SAFETY: no other test of this binary reads these variables.
        unsafe {
            std::env::set_var("STRATA_GRPC_LISTEN", "127.0.0.1:2001");
            std::env::set_var("STRATA_MAX_INFLIGHT_BYTES", "2000");
            std::env::set_var("STRATA_DATA_DIR", "/from/env");
            std::env::set_var("STRATA_CONFIG", file.display().to_string());
            std::env::set_var("STRATA_AUTH", "none");
        }
        let c = parse(&[]).resolve().unwrap();
        assert_eq!(c.grpc_listen, "127.0.0.1:2001".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.max_inflight_bytes, 2000);
        assert_eq!(c.auth, AuthMode::None, "env beats the file");
        assert_eq!(
            c.otlp_http_listen,
            "127.0.0.1:1002".parse().unwrap(),
            "file still applies"
        );

        // Flags beat the environment.
        let c = parse(&[
            "--grpc-listen=127.0.0.1:3001",
            "--data-dir=/from/flag",
            "--max-inflight-bytes=3000",
            "--auth=keys",
        ])
        .resolve()
        .unwrap();
        assert_eq!(c.grpc_listen, "127.0.0.1:3001".parse().unwrap());
        assert_eq!(c.max_inflight_bytes, 3000);
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.auth, AuthMode::Keys, "the flag beats env");
        assert_eq!(
            c.http_listen,
            "127.0.0.1:1003".parse().unwrap(),
            "file still applies"
        );
        unsafe {
            std::env::remove_var("STRATA_GRPC_LISTEN");
            std::env::remove_var("STRATA_MAX_INFLIGHT_BYTES");
            std::env::remove_var("STRATA_DATA_DIR");
            std::env::remove_var("STRATA_CONFIG");
            std::env::remove_var("STRATA_AUTH");
        }
    }

    #[test]
    fn bootstrap_key_and_tenant_come_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let (key, tenant) = bootstrap_from(env(&[])).unwrap();
        assert_eq!((key, tenant.as_str()), (None, "default"));
        const LONG: &str = "0123456789abcdef0123456789abcdef";
        let (key, tenant) = bootstrap_from(env(&[
            ("STRATA_BOOTSTRAP_ADMIN_KEY", LONG),
            ("STRATA_BOOTSTRAP_TENANT", "ops"),
        ]))
        .unwrap();
        assert_eq!(key.as_ref().map(Secret::expose), Some(LONG));
        assert_eq!(tenant.as_str(), "ops");
        assert!(!format!("{key:?}").contains(LONG), "never printed");
        // Too short, or a bad tenant: refused with the variable's name.
        let err = bootstrap_from(env(&[("STRATA_BOOTSTRAP_ADMIN_KEY", "short")])).unwrap_err();
        assert!(
            err.to_string().contains("STRATA_BOOTSTRAP_ADMIN_KEY"),
            "{err}"
        );
        let err = bootstrap_from(env(&[("STRATA_BOOTSTRAP_TENANT", "a/b")])).unwrap_err();
        assert!(err.to_string().contains("STRATA_BOOTSTRAP_TENANT"), "{err}");
    }

    #[test]
    fn keys_commands_parse() {
        let cli = Cli::try_parse_from([
            "strata",
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "ingest,read",
            "--name",
            "collector",
            "--expires",
            "30d",
            "--catalog",
            "sqlite:///tmp/x.db",
        ])
        .unwrap();
        let Command::Keys(KeysCommand::Create(args)) = cli.command else {
            panic!("not keys create");
        };
        assert_eq!(args.expires, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(args.catalog.catalog.as_deref(), Some("sqlite:///tmp/x.db"));
        let cli = Cli::try_parse_from(["strata", "keys", "revoke", "0123456789ab"]).unwrap();
        assert!(matches!(cli.command, Command::Keys(KeysCommand::Revoke(_))));
        assert!(Cli::try_parse_from(["strata", "serve", "--auth", "maybe"]).is_err());
    }

    /// The in-flight budget is also derived, but its variable is set by the precedence test
    /// above, so that share is checked there.
    #[test]
    fn a_memory_limit_sizes_the_budgets_inside_it() {
        let resolve = |args: &[&str]| parse(args).resolve_with(FileConfig::default()).unwrap();
        const MIB: usize = 1 << 20;
        let c = resolve(&[]);
        assert_eq!(c.memory_limit, 0);
        assert_eq!(
            (c.max_buffer_bytes, c.flush_max_bytes, c.cache_bytes),
            (1024 * MIB, 64 * MIB, 512 * MIB as u64)
        );
        let c = resolve(&["--memory-limit=268435456"]);
        assert_eq!(c.memory_limit, 256 * MIB);
        assert_eq!(
            (c.max_buffer_bytes, c.flush_max_bytes, c.cache_bytes),
            (32 * MIB, 16 * MIB, 32 * MIB as u64)
        );
        // A generous limit leaves the defaults as they are.
        let c = resolve(&["--memory-limit=68719476736"]);
        assert_eq!(
            (c.max_buffer_bytes, c.flush_max_bytes, c.cache_bytes),
            (1024 * MIB, 64 * MIB, 512 * MIB as u64)
        );
        // What is set explicitly wins.
        let c = resolve(&["--memory-limit=268435456", "--max-buffer-bytes=1000"]);
        assert_eq!((c.max_buffer_bytes, c.flush_max_bytes), (1000, 16 * MIB));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "grpc_listn = \"x\"\n").unwrap();
        let err = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("grpc_listn"), "{err}");
        let err = ServeArgs {
            config: Some(dir.path().join("missing.toml")),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn retention_tables_resolve_per_tenant_and_signal() {
        let file: FileConfig = toml::from_str(
            r#"
                [retention]
                default = "30d"
                spans = "7d"
                [retention.tenants.acme]
                default = "90d"
                logs = "14d"
            "#,
        )
        .unwrap();
        let day = |d: u64| Some(Duration::from_secs(d * 86_400));
        let c = ServeArgs::default().resolve_with(file).unwrap();
        let acme = TenantId::new("acme").unwrap();
        let other = TenantId::new("other").unwrap();
        assert_eq!(c.retention.for_table(&acme, Signal::Logs), day(14));
        assert_eq!(c.retention.for_table(&acme, Signal::Spans), day(90));
        assert_eq!(c.retention.for_table(&other, Signal::Spans), day(7));
        assert_eq!(c.retention.for_table(&other, Signal::Metrics), day(30));
        // The flag replaces the file's default only.
        let file: FileConfig =
            toml::from_str("[retention]\ndefault = \"30d\"\nspans = \"7d\"").unwrap();
        let c = ServeArgs {
            retention: day(1),
            ..Default::default()
        }
        .resolve_with(file)
        .unwrap();
        assert_eq!(c.retention.for_table(&other, Signal::Metrics), day(1));
        assert_eq!(c.retention.for_table(&other, Signal::Spans), day(7));
        // No retention anywhere: keep forever.
        let c = ServeArgs::default()
            .resolve_with(FileConfig::default())
            .unwrap();
        assert_eq!(c.retention.for_table(&other, Signal::Logs), None);
        // Tenant ids in the file are validated.
        let file: FileConfig =
            toml::from_str("[retention.tenants.\"a/b\"]\ndefault = \"1d\"").unwrap();
        let err = ServeArgs::default().resolve_with(file).unwrap_err();
        assert!(err.to_string().contains("retention.tenants.a/b"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
