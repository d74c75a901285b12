//! The query engine: a DataFusion session per query that sees only the tenant's tables, with
//! DDL, DML, `COPY`, `SET` and file or URL access switched off.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use strata_storage::{Signal, Storage, TenantId};

use crate::error::{QueryError, Result};
use crate::metrics::QueryMetrics;
use crate::stats::{QueryStats, ScanCounter, add_plan_metrics};
use crate::table::SignalTable;

/// The URL under which the storage's object store is registered with DataFusion.
pub const STORE_URL: &str = "strata://objects/";

/// Catalog and schema names of a tenant's session (`strata.public.spans`).
pub const CATALOG: &str = "strata";
pub const SCHEMA: &str = "public";

/// Settings of the query engine.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Partitions (threads) a query plan fans out to.
    pub target_partitions: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// A query's result: its schema, batches and what it took.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub stats: QueryStats,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Runs tenants' SQL over the storage engine.
#[derive(Debug)]
pub struct QueryEngine {
    storage: Arc<Storage>,
    template: SessionState,
    store_url: ObjectStoreUrl,
    metrics: QueryMetrics,
    /// CPU-heavy execution runs here, so queries never starve the ingest I/O threads.
    executor: tokio::runtime::Handle,
    executor_runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for QueryEngine {
    fn drop(&mut self) {
        // Dropping a runtime blocks; the engine may be dropped on an async thread.
        if let Some(runtime) = self.executor_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl QueryEngine {
    /// A query engine with its own multi-threaded runtime for execution.
    pub fn new(storage: Arc<Storage>, config: QueryConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.target_partitions.max(1))
            .thread_name("strata-query")
            .enable_all()
            .build()
            .map_err(|e| QueryError::Internal(format!("query runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let mut engine = Self::with_executor(storage, config, handle)?;
        engine.executor_runtime = Some(runtime);
        Ok(engine)
    }

    /// A query engine that executes on an existing runtime (tests).
    pub fn with_executor(
        storage: Arc<Storage>,
        config: QueryConfig,
        executor: tokio::runtime::Handle,
    ) -> Result<Self> {
        let store_url = ObjectStoreUrl::parse(STORE_URL)?;
        let runtime = RuntimeEnvBuilder::new().build_arc()?;
        runtime.register_object_store(store_url.as_ref(), storage.object_store());
        let template = Self::template(&config, runtime.clone());
        Ok(Self {
            storage,
            template,
            store_url,
            metrics: QueryMetrics::default(),
            executor,
            executor_runtime: None,
        })
    }

    /// Query counters and durations, for `/metrics`.
    pub fn metrics(&self) -> &QueryMetrics {
        &self.metrics
    }

    /// A session that sees only `tenant`'s tables.
    pub fn session(&self, tenant: &TenantId) -> Result<SessionContext> {
        self.session_with_counter(tenant, ScanCounter::default())
    }

    fn session_with_counter(
        &self,
        tenant: &TenantId,
        counter: ScanCounter,
    ) -> Result<SessionContext> {
        // A catalog of the tenant's own: sessions share the template's functions and settings,
        // never its (empty) catalog list.
        let schema = Arc::new(MemorySchemaProvider::new());
        for signal in Signal::ALL {
            let table = SignalTable::new(
                self.storage.clone(),
                tenant.clone(),
                signal,
                self.store_url.clone(),
            )
            .with_counter(counter.clone());
            schema.register_table(signal.as_str().to_string(), Arc::new(table))?;
        }
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(SCHEMA, schema)?;
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(CATALOG.to_string(), catalog);
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_catalog_list(catalogs)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// The settings and functions every session starts from, built once (building the
    /// function registry costs more than planning a simple query).
    fn template(config: &QueryConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
        let mut session_config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_target_partitions(config.target_partitions);
        let options = session_config.options_mut();
        // The tables' schemas use Utf8; read Parquet strings as such, without casts.
        options.execution.parquet.schema_force_view_types = false;
        // Late materialisation: evaluate filters while decoding, skip pages that cannot match.
        options.execution.parquet.pushdown_filters = true;
        options.execution.parquet.reorder_filters = true;
        SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build()
    }

    /// What a tenant's SQL may do: read, nothing else.
    pub fn sql_options() -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    }

    /// Plans and runs one SQL statement as `tenant`.
    pub async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult> {
        let started = Instant::now();
        let result = self.run(tenant, sql).await;
        self.metrics
            .observe(tenant, started.elapsed(), result.as_ref().err());
        result
    }

    async fn run(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult> {
        let started = Instant::now();
        let counter = ScanCounter::default();
        let ctx = self.session_with_counter(tenant, counter.clone())?;
        let frame = ctx.sql_with_options(sql, Self::sql_options()).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let task_ctx = frame.task_ctx();
        let plan = frame.create_physical_plan().await?;
        let (batches, plan) = self
            .executor
            .spawn(async move {
                let batches =
                    datafusion::physical_plan::collect(plan.clone(), task_ctx.into()).await;
                batches.map(|b| (b, plan))
            })
            .await
            .map_err(|e| QueryError::Internal(format!("query task failed: {e}")))??;
        let mut stats = counter.snapshot();
        add_plan_metrics(&plan, &mut stats);
        stats.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(QueryResult {
            schema,
            batches,
            stats,
        })
    }
}
