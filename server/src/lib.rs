//! # strata-server
//!
//! The `strata` binary: configuration (`config.rs`), wiring of one node (this file), the
//! HTTP API (`api.rs`), self-monitoring (`telemetry.rs`) and the `strata sql` client
//! (`sql_client.rs`).
//!
//! ```text
//!            ┌──────────── Node ─────────────────────────────────────────┐
//! :4317 gRPC ─┤ strata_ingest::grpc ─┐                                     │
//! :4318 HTTP ─┤ strata_ingest::http ─┴─► Ingestor ─► strata_storage::Storage ──► object store
//! :8080 HTTP ─┤ api: /api/v1/sql ─► strata_query::QueryEngine ─┘        └─► catalog (SQL)
//!             │      /api/v1/keys, /healthz /readyz /metrics              │
//!             └────────────────────────────────────────────────────────────┘
//! ```
//!
//! [`Node::start`] takes a resolved [`Config`] and returns once every listener is bound and
//! the WAL is replayed, so tests can start a whole node on port 0 in one process and learn
//! its addresses.

pub mod alerting;
pub mod api;
pub mod config;
pub mod drain;
pub mod keys;
pub mod sql_client;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use strata_ingest::{Auth, IngestConfig, Ingestor};
use strata_query::{QueryConfig, QueryEngine};
use strata_storage::cache::CacheStats;
use strata_storage::keys::KEY_CACHE_TTL;
use strata_storage::maintenance::MaintenanceConfig;
use strata_storage::wal::WalConfig;
use strata_storage::{KeyStore, SqlCatalog, Storage, StorageConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use config::AuthMode;
pub use config::Config;

/// How often the resident set is compared with `--memory-limit`: often enough that a burst of
/// requests cannot run far past the soft limit, rarely enough to cost nothing (one read of
/// `/proc/self/statm`).
const MEMORY_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(#[from] strata_storage::Error),
    #[error("query engine: {0}")]
    Query(#[from] strata_query::QueryError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("alerting: {0}")]
    Alerting(#[from] alerting::AlertingError),
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    /// Bound address of the OTLP/gRPC listener.
    pub grpc_addr: SocketAddr,
    /// Bound address of the OTLP/HTTP listener.
    pub otlp_http_addr: SocketAddr,
    /// Bound address of the HTTP API.
    pub http_addr: SocketAddr,
    pub storage: Arc<Storage>,
    pub engine: Arc<QueryEngine>,
    pub alerting: Arc<alerting::Alerting>,
    /// Stops the OTLP listeners.
    stop_ingest: watch::Sender<bool>,
    /// Stops the flusher (which then flushes everything and closes the WAL).
    stop_flusher: watch::Sender<bool>,
    /// Stops the HTTP API listener.
    stop_api: watch::Sender<bool>,
    ingest_tasks: Vec<JoinHandle<()>>,
    flusher: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    api_task: JoinHandle<()>,
}

impl Node {
    /// Binds the listeners, serves `/healthz` and `/readyz` at once, opens storage (replaying
    /// the WAL), then starts taking OTLP data and queries and turns `/readyz` ready.
    pub async fn start(config: Config) -> Result<Node, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        // TLS files are read before anything is bound: a bad file fails the start at once.
        let tls = match &config.tls {
            Some(files) => Some((files.server_config()?, files.read_pem()?)),
            None => None,
        };
        let http_tls = tls.as_ref().map(|(config, _)| config.clone());
        let grpc_tls = tls.map(|(_, pem)| pem);
        // Bind everything first: a taken port fails the start before any work is done.
        let grpc = bind("otlp-grpc", config.grpc_listen).await?;
        let otlp_http = bind("otlp-http", config.otlp_http_listen).await?;
        let http = bind("http", config.http_listen).await?;
        let grpc_addr = local_addr(&grpc, config.grpc_listen);
        let otlp_http_addr = local_addr(&otlp_http, config.otlp_http_listen);
        let http_addr = local_addr(&http, config.http_listen);

        let (stop_api, api_rx) = watch::channel(false);
        let api_state = api::ApiState::starting();
        let api_task = tokio::spawn(serve_http(
            "http",
            http,
            http_tls.clone(),
            api::router(api_state.clone()),
            api_rx,
        ));
        tracing::info!(listener = "http", addr = %http_addr, "listening");

        let (storage, cache, catalog) = build_storage(&config).await?;
        let access = access(
            &config,
            catalog.clone(),
            [grpc_addr, otlp_http_addr, http_addr],
        );
        let ingestor = Ingestor::with_auth(
            storage.clone(),
            IngestConfig {
                max_body_bytes: config.max_body_bytes,
                limits: config.limits.ingest.clone(),
                max_inflight_bytes: config.max_inflight_bytes,
                ..IngestConfig::default()
            },
            access.auth.clone(),
        );
        let engine = Arc::new(
            QueryEngine::new(
                storage.clone(),
                QueryConfig {
                    target_partitions: config.query_threads,
                    limits: config.limits.query.clone(),
                },
            )?
            // The `audit` table of admin callers' sessions.
            .with_audit_log(catalog.clone())
            // The `alerts` table (alert history) of every session.
            .with_alert_history(catalog.clone()),
        );
        let alerting = alerting::Alerting::start(&config, engine.clone(), catalog).await?;

        let mut registry = Registry::default();
        ingestor.metrics().register(&mut registry);
        engine.metrics().register(&mut registry);
        telemetry::register_storage(&mut registry, storage.clone(), cache);
        telemetry::register_tenants(&mut registry, ingestor.clone(), engine.clone());

        let (stop_ingest, ingest_rx) = watch::channel(false);
        let ingest_tasks = vec![
            tokio::spawn(serve_grpc(
                grpc,
                grpc_tls,
                strata_ingest::grpc::routes(ingestor.clone()),
                ingest_rx.clone(),
            )),
            tokio::spawn(serve_http(
                "otlp-http",
                otlp_http,
                http_tls,
                strata_ingest::http::router(ingestor.clone()),
                ingest_rx,
            )),
        ];
        let (stop_flusher, flusher_rx) = watch::channel(false);
        let flusher = tokio::spawn(
            storage
                .clone()
                .run_flusher(wait_for_shutdown(flusher_rx.clone())),
        );
        // Exits at once without --memory-limit; otherwise ends with the flusher.
        tokio::spawn(storage.clone().run_memory_sampler(
            MEMORY_SAMPLE_INTERVAL,
            wait_for_shutdown(flusher_rx.clone()),
        ));
        let maintenance = tokio::spawn(
            storage
                .clone()
                .run_maintenance(wait_for_shutdown(flusher_rx)),
        );

        api_state.ready(
            engine.clone(),
            ingestor.clone(),
            registry,
            access,
            alerting.clone(),
        );
        for (listener, addr) in [("otlp-grpc", grpc_addr), ("otlp-http", otlp_http_addr)] {
            tracing::info!(listener, %addr, "listening");
        }
        tracing::info!(
            storage = %config.storage, data_dir = %config.data_dir.display(), "strata node ready"
        );
        Ok(Node {
            grpc_addr,
            otlp_http_addr,
            http_addr,
            storage,
            engine,
            alerting,
            stop_ingest,
            stop_flusher,
            stop_api,
            ingest_tasks,
            flusher,
            maintenance,
            api_task,
        })
    }

    /// Reads the alerter configuration and the rule files again (SIGHUP, `POST /-/reload`);
    /// an invalid file is refused with the reason and the configuration in force stays.
    pub async fn reload(&self) -> Result<(), String> {
        self.alerting.reload().await
    }

    /// Stops taking data and lets in-flight exports finish, then flushes the write buffer and
    /// closes the WAL, then stops the API.
    pub async fn shutdown(self) {
        let _ = self.stop_ingest.send(true);
        for task in self.ingest_tasks {
            let _ = task.await;
        }
        self.alerting.shutdown().await;
        let _ = self.stop_flusher.send(true);
        let _ = self.flusher.await;
        let _ = self.maintenance.await;
        let _ = self.stop_api.send(true);
        let _ = self.api_task.await;
    }
}

/// How this node authenticates (`docs/SECURITY.md`); warns about an open node on a network.
fn access(config: &Config, catalog: Arc<SqlCatalog>, addrs: [SocketAddr; 3]) -> api::Access {
    let keys = Arc::new(KeyStore::new(catalog.clone(), KEY_CACHE_TTL));
    let auth = match config.auth {
        AuthMode::None => {
            let exposed: Vec<String> = (addrs.iter())
                .filter(|a| !a.ip().is_loopback())
                .map(ToString::to_string)
                .collect();
            if !exposed.is_empty() {
                tracing::warn!(
                    listeners = %exposed.join(","),
                    "auth is none: anyone who reaches these listeners can write and read every \
                     tenant's data; use --auth keys, or listen on 127.0.0.1 only"
                );
            }
            if config.bootstrap_admin_key.is_some() {
                tracing::warn!("STRATA_BOOTSTRAP_ADMIN_KEY is ignored: auth is none");
            }
            Auth::none()
        }
        AuthMode::Keys => {
            let bootstrap = (config.bootstrap_admin_key.as_ref())
                .map(|key| (key.expose(), config.operator_tenant.clone()));
            Auth::keys(keys.clone(), bootstrap)
        }
    };
    tracing::info!(auth = ?config.auth, "authentication");
    api::Access {
        auth,
        keys,
        audit: catalog,
        operator_tenant: config.operator_tenant.clone(),
    }
}

/// This node's id: created once in the data directory, then kept.
fn node_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) | Err(_) => {
            let id = uuid::Uuid::now_v7().to_string();
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

async fn build_storage(
    config: &Config,
) -> Result<(Arc<Storage>, Option<Arc<CacheStats>>, Arc<SqlCatalog>), StartError> {
    let opened = strata_storage::objects::open_store(&config.storage, config.cache_bytes)?;
    let catalog = Arc::new(SqlCatalog::connect(&config.catalog).await?);
    let node_id = node_id(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let wal = WalConfig {
        dir: config.wal_dir.clone(),
        segment_bytes: config.wal_segment_bytes,
        max_bytes: config.wal_max_bytes,
        sync_delay: config.wal_sync_delay,
        decoder: Some(strata_ingest::wal_decoder()),
    };
    let storage = Storage::open(
        opened.store,
        catalog.clone(),
        StorageConfig {
            max_buffer_age: config.flush_interval,
            max_buffer_bytes: config.flush_max_bytes,
            max_total_buffer_bytes: config.max_buffer_bytes,
            wal: Some(wal),
            node_id,
            maintenance: MaintenanceConfig {
                compaction_interval: config.compaction_interval,
                compaction_target_bytes: config.compaction_target_bytes,
                retention_interval: config.retention_interval,
                delete_grace: config.delete_grace,
                retention: config.retention.clone(),
                ..MaintenanceConfig::default()
            },
            shutdown_flush_timeout: config.shutdown_timeout,
            memory_limit: config.memory_limit,
            ..StorageConfig::default()
        },
    )
    .await?;
    Ok((storage, opened.cache, catalog))
}

async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })
}

fn local_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

async fn wait_for_shutdown(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone: shut down as well.
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn serve_grpc(
    listener: TcpListener,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    routes: tonic::service::Routes,
    shutdown: watch::Receiver<bool>,
) {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder = match builder.tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(identity)
                .timeout(tls::HANDSHAKE_TIMEOUT),
        ) {
            Ok(builder) => builder,
            Err(e) => {
                tracing::error!(listener = "otlp-grpc", error = %e, "invalid TLS configuration");
                return;
            }
        };
    }
    let result = builder
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, wait_for_shutdown(shutdown))
        .await;
    if let Err(e) = result {
        tracing::error!(listener = "otlp-grpc", error = %e, "listener failed");
    }
}

async fn serve_http(
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    shutdown: watch::Receiver<bool>,
) {
    // Handlers learn the client's address (`api::Remote`, for the audit log) from the
    // connection info, plain or TLS.
    let service = router.into_make_service_with_connect_info::<api::ClientAddr>();
    let result = match tls {
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(wait_for_shutdown(shutdown))
                .await
        }
        Some(config) => match tls::TlsListener::new(listener, config) {
            Ok(listener) => {
                axum::serve(listener, service)
                    .with_graceful_shutdown(wait_for_shutdown(shutdown))
                    .await
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::error!(listener = name, error = %e, "listener failed");
    }
}
