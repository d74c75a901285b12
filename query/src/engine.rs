//! The query engine: a DataFusion session per query that sees only the tenant's tables, with
//! DDL, DML, `COPY`, `SET` and file or URL access switched off. Admin callers' sessions also
//! hold the tenant's `audit` table ([`QueryOptions::audit`], `crate::audit`); every session
//! holds the tenant's `alerts` history when the engine has one ([`QueryEngine::with_alert_history`]).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{FunctionRegistry, TaskContext};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::ObjectStore;
use std::num::NonZeroUsize;
use strata_storage::audit::AuditLog;
use strata_storage::docs::DocStore;
use strata_storage::{PerTenant, Signal, Storage, TenantId};

use crate::alerts::{ALERTS_TABLE, AlertsTable};
use crate::audit::{AUDIT_TABLE, AuditTable};
use crate::catalog_table::CatalogTable;
use crate::error::{QueryError, Result};
use crate::functions::UtcDateTrunc;
use crate::incidents::{INCIDENTS_TABLE, IncidentsTable};
use crate::limits::{Admission, QueryLimits, ScanBudget, human_bytes};
use crate::metrics::QueryMetrics;
use crate::percentile::ApproxPercentile;
use crate::series_index::SeriesIndex;
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
    /// What one query of a tenant may use.
    pub limits: PerTenant<QueryLimits>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            limits: PerTenant::default(),
        }
    }
}

/// What one query's session holds beyond the tenant's signal tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Register the tenant's `audit` table (callers with the admin scope only). Without it,
    /// `audit` is an unknown table. Needs [`QueryEngine::with_audit_log`].
    pub audit: bool,
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
    limits: PerTenant<QueryLimits>,
    admission: Admission,
    /// Where the `audit` table's rows come from; `None`: no session has an `audit` table.
    audit_log: Option<Arc<dyn AuditLog>>,
    /// Where the `alerts` table's rows come from; `None`: no session has an `alerts` table.
    alert_history: Option<Arc<dyn DocStore>>,
    /// Series indexes of metrics files, shared by every session.
    series_index: Arc<SeriesIndex>,
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
            limits: config.limits,
            admission: Admission::default(),
            audit_log: None,
            alert_history: None,
            executor,
            executor_runtime: None,
            series_index: Arc::new(SeriesIndex::default()),
        })
    }

    /// Serves the `audit` table of sessions that ask for it ([`QueryOptions::audit`]) from
    /// `log`.
    pub fn with_audit_log(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// Serves the `alerts` table (alert history) of every session from `store`: every
    /// caller of a tenant sees that tenant's rows.
    pub fn with_alert_history(mut self, store: Arc<dyn DocStore>) -> Self {
        self.alert_history = Some(store);
        self
    }

    /// Query counters and durations, for `/metrics`.
    pub fn metrics(&self) -> &QueryMetrics {
        &self.metrics
    }

    /// The storage the engine reads.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// The limits of `tenant`'s queries.
    pub fn limits(&self, tenant: &TenantId) -> &QueryLimits {
        self.limits.get(tenant)
    }

    /// Queries `tenant` is running now.
    pub fn running_queries(&self, tenant: &TenantId) -> usize {
        self.admission
            .running(tenant, self.limits(tenant).max_concurrent)
    }

    /// Every tenant that has run a query, and how many it runs now.
    pub fn running_by_tenant(&self) -> Vec<(TenantId, usize)> {
        self.admission
            .tenants()
            .into_iter()
            .map(|t| {
                let running = self.running_queries(&t);
                (t, running)
            })
            .collect()
    }

    /// A session that sees only `tenant`'s tables (without the per-query limits).
    pub fn session(&self, tenant: &TenantId) -> Result<SessionContext> {
        self.session_with(
            tenant,
            ScanCounter::default(),
            self.storage.object_store(),
            self.template.runtime_env().clone(),
            QueryOptions::default(),
        )
    }

    fn session_with(
        &self,
        tenant: &TenantId,
        counter: ScanCounter,
        store: Arc<dyn ObjectStore>,
        runtime: Arc<RuntimeEnv>,
        options: QueryOptions,
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
            .with_counter(counter.clone())
            .with_store(store.clone())
            .with_series_index(self.series_index.clone());
            schema.register_table(signal.as_str().to_string(), Arc::new(table))?;
        }
        if let (true, Some(log)) = (options.audit, &self.audit_log) {
            let table = CatalogTable(AuditTable::new(log.clone(), tenant.clone()));
            schema.register_table(AUDIT_TABLE.to_string(), Arc::new(table))?;
        }
        if let Some(store) = &self.alert_history {
            let table = CatalogTable(AlertsTable::new(store.clone(), tenant.clone()));
            schema.register_table(ALERTS_TABLE.to_string(), Arc::new(table))?;
            let table = CatalogTable(IncidentsTable::new(store.clone(), tenant.clone()));
            schema.register_table(INCIDENTS_TABLE.to_string(), Arc::new(table))?;
        }
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(SCHEMA, schema)?;
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(CATALOG.to_string(), catalog);
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_catalog_list(catalogs)
            .with_runtime_env(runtime)
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
        let mut state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        // `date_trunc` over UTC timestamps by arithmetic (`functions.rs`); it replaces
        // DataFusion's under the same name and alias.
        state
            .register_udf(Arc::new(UtcDateTrunc::udf()))
            .expect("registering a scalar function cannot fail");
        // `approx_percentile_cont` with a groups accumulator (`percentile.rs`), over
        // DataFusion's under the same name.
        state
            .register_udaf(Arc::new(ApproxPercentile::udaf()))
            .expect("registering an aggregate function cannot fail");
        state
    }

    /// What a tenant's SQL may do: read, nothing else.
    pub fn sql_options() -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    }

    /// Plans and runs one SQL statement as `tenant` (signal tables only: no `audit`).
    pub async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult> {
        self.sql_with(tenant, sql, QueryOptions::default()).await
    }

    /// Plans and runs one SQL statement as `tenant`, with the tables `options` add.
    pub async fn sql_with(
        &self,
        tenant: &TenantId,
        sql: &str,
        options: QueryOptions,
    ) -> Result<QueryResult> {
        let started = Instant::now();
        let result = self.run(tenant, sql, options).await.map_err(|e| match e {
            // Say why `audit` is missing, rather than only that it is.
            QueryError::User(message)
                if !options.audit
                    && message
                        .contains(&format!("{CATALOG}.{SCHEMA}.{AUDIT_TABLE}' not found")) =>
            {
                QueryError::User(format!(
                    "{message} (the audit table is visible to keys with the admin scope only)"
                ))
            }
            other => other,
        });
        self.metrics
            .observe(tenant, started.elapsed(), result.as_ref().err());
        result
    }

    async fn run(
        &self,
        tenant: &TenantId,
        sql: &str,
        options: QueryOptions,
    ) -> Result<QueryResult> {
        let started = Instant::now();
        let limits = self.limits(tenant).clone();
        let _slot = self
            .admission
            .try_admit(tenant, limits.max_concurrent)
            .ok_or_else(|| {
                QueryError::ResourcesExhausted(format!(
                    "tenant {tenant} already runs its maximum of {} concurrent queries; retry \
                     when one has finished",
                    limits.max_concurrent
                ))
            })?;
        let budget = ScanBudget::new(self.storage.object_store(), limits.max_scan_bytes);
        let pool: Arc<dyn MemoryPool> = if limits.max_memory_bytes == 0 {
            Arc::new(UnboundedMemoryPool::default())
        } else {
            Arc::new(TrackConsumersPool::new(
                GreedyMemoryPool::new(limits.max_memory_bytes),
                NonZeroUsize::new(3).expect("3 > 0"),
            ))
        };
        let shared = self.template.runtime_env();
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: pool.clone(),
            disk_manager: shared.disk_manager.clone(),
            cache_manager: shared.cache_manager.clone(),
            object_store_registry: shared.object_store_registry.clone(),
        });
        let counter = ScanCounter::default();
        let ctx = self.session_with(tenant, counter.clone(), budget.clone(), runtime, options)?;

        let work = async {
            let frame = ctx.sql_with_options(sql, Self::sql_options()).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let task_ctx = frame.task_ctx();
            let plan = frame.create_physical_plan().await?;
            let pool = pool.clone();
            // Dropped before completion (timeout): the guard aborts the execution too.
            let mut task = AbortOnDrop(self.executor.spawn(async move {
                let batches = collect_reserved(plan.clone(), task_ctx.into(), &pool).await;
                batches.map(|b| (b, plan))
            }));
            let (batches, plan) = (&mut task.0)
                .await
                .map_err(|e| QueryError::Internal(format!("query task failed: {e}")))??;
            Ok::<_, QueryError>((schema, batches, plan))
        };
        let outcome = match tokio::time::timeout(limits.timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(QueryError::Timeout(format!(
                    "the query ran longer than its limit of {:?} and was cancelled",
                    limits.timeout
                )));
            }
        };
        let (schema, batches, plan) = outcome.map_err(|e| match e {
            _ if budget.exceeded() => QueryError::LimitExceeded(format!(
                "the query read more than its limit of {} from storage \
                 (query_max_scan_bytes); narrow its time range or its filters",
                human_bytes(limits.max_scan_bytes)
            )),
            QueryError::ResourcesExhausted(message) => QueryError::LimitExceeded(format!(
                "the query needs more memory than its limit of {} (query_max_memory_bytes); \
                 aggregate more, select fewer columns or add a LIMIT: {message}",
                human_bytes(limits.max_memory_bytes as u64)
            )),
            other => other,
        })?;
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

/// Runs `plan` to completion, reserving every result batch in the query's memory pool: a
/// result larger than the query's memory limit fails instead of growing without bound.
async fn collect_reserved(
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    pool: &Arc<dyn MemoryPool>,
) -> Result<Vec<RecordBatch>> {
    let reservation = MemoryConsumer::new("query result").register(pool);
    let mut stream = execute_stream(plan, task_ctx)?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        reservation.try_grow(batch.get_array_memory_size())?;
        batches.push(batch);
    }
    Ok(batches)
}

/// Aborts a task when dropped: a query given up on (timeout) stops executing.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
