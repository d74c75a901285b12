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
//!             │      /healthz /readyz /metrics                            │
//!             └────────────────────────────────────────────────────────────┘
//! ```
//!
//! [`Node::start`] takes a resolved [`Config`] and returns once every listener is bound, so
//! tests can start a whole node on port 0 in one process and learn its addresses.

pub mod api;
pub mod config;
pub mod sql_client;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use strata_ingest::{IngestConfig, Ingestor};
use strata_query::{QueryConfig, QueryEngine};
use strata_storage::{SqlCatalog, Storage, StorageConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;

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
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    flusher: JoinHandle<()>,
}

impl Node {
    /// Opens storage, binds the listeners and starts serving.
    pub async fn start(config: Config) -> Result<Node, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let storage = build_storage(&config).await?;
        let ingestor = Ingestor::new(
            storage.clone(),
            IngestConfig {
                max_body_bytes: config.max_body_bytes,
            },
        );
        let engine = Arc::new(QueryEngine::new(
            storage.clone(),
            QueryConfig {
                target_partitions: config.query_threads,
            },
        )?);

        let mut registry = Registry::default();
        ingestor.metrics().register(&mut registry);
        engine.metrics().register(&mut registry);
        telemetry::register_storage(&mut registry, storage.clone());

        let (shutdown, shutdown_rx) = watch::channel(false);
        let ready = Arc::new(AtomicBool::new(false));

        let grpc = bind("otlp-grpc", config.grpc_listen).await?;
        let otlp_http = bind("otlp-http", config.otlp_http_listen).await?;
        let http = bind("http", config.http_listen).await?;
        let grpc_addr = local_addr(&grpc, config.grpc_listen);
        let otlp_http_addr = local_addr(&otlp_http, config.otlp_http_listen);
        let http_addr = local_addr(&http, config.http_listen);

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(serve_grpc(
            grpc,
            strata_ingest::grpc::routes(ingestor.clone()),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(serve_http(
            "otlp-http",
            otlp_http,
            strata_ingest::http::router(ingestor.clone()),
            shutdown_rx.clone(),
        )));
        let api = api::router(api::ApiState {
            engine: engine.clone(),
            registry: Arc::new(registry),
            ready: ready.clone(),
        });
        tasks.push(tokio::spawn(serve_http(
            "http",
            http,
            api,
            shutdown_rx.clone(),
        )));

        let flusher = tokio::spawn(
            storage
                .clone()
                .run_flusher(wait_for_shutdown(shutdown_rx.clone())),
        );

        ready.store(true, Ordering::Release);
        for (listener, addr) in [
            ("otlp-grpc", grpc_addr),
            ("otlp-http", otlp_http_addr),
            ("http", http_addr),
        ] {
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
            shutdown,
            tasks,
            flusher,
        })
    }

    /// Stops accepting requests, lets in-flight ones finish, then flushes the write buffer.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // The flusher flushes everything buffered before it returns.
        let _ = self.flusher.await;
    }
}

async fn build_storage(config: &Config) -> Result<Arc<Storage>, StartError> {
    let store = strata_storage::objects::object_store_from_url(&config.storage)?;
    let catalog = Arc::new(SqlCatalog::connect(&config.catalog).await?);
    let storage = Storage::open(
        store,
        catalog,
        StorageConfig {
            max_buffer_age: config.flush_interval,
            max_buffer_bytes: config.flush_max_bytes,
            ..StorageConfig::default()
        },
    )
    .await?;
    Ok(storage)
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
    routes: tonic::service::Routes,
    shutdown: watch::Receiver<bool>,
) {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let result = tonic::transport::Server::builder()
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
    router: axum::Router,
    shutdown: watch::Receiver<bool>,
) {
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(wait_for_shutdown(shutdown))
        .await;
    if let Err(e) = result {
        tracing::error!(listener = name, error = %e, "listener failed");
    }
}
