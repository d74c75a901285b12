//! The storage engine: write buffer, flusher and the per-table file lists queries read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::catalog::{Catalog, FileMeta, now_ns};
use crate::parquet_file::{self, encode, object_path, partition_and_sort};
use crate::schema::schema_for;
use crate::{Error, Result, Signal, TenantId};

/// When buffered rows are written out as Parquet.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// A table's buffer is flushed once its oldest row has waited this long.
    pub max_buffer_age: Duration,
    /// A table's buffer is flushed once it holds this many bytes of Arrow data.
    pub max_buffer_bytes: usize,
    /// How often the flusher looks for due buffers (and retries failed flushes).
    pub flush_check_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_buffer_age: Duration::from_secs(30),
            max_buffer_bytes: 64 * 1024 * 1024,
            flush_check_interval: Duration::from_secs(1),
        }
    }
}

/// An inclusive time range in ns since the epoch; `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeRange {
    /// Everything.
    pub const ALL: TimeRange = TimeRange {
        start: None,
        end: None,
    };

    /// Whether `[min, max]` can hold a row of this range.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.start.is_none_or(|s| max >= s) && self.end.is_none_or(|e| min <= e)
    }
}

/// A consistent view of one tenant's table: every acknowledged row is in exactly one of
/// `files` and `batches`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Files that may hold rows of the requested time range.
    pub files: Vec<Arc<FileMeta>>,
    /// Files of the table that the time range excluded.
    pub files_pruned: usize,
    /// Buffered batches that may hold rows of the requested time range.
    pub batches: Vec<RecordBatch>,
}

#[derive(Debug, Clone)]
struct Buffered {
    batch: RecordBatch,
    min_time: i64,
    max_time: i64,
}

/// A batch of buffered rows on its way to Parquet; it stays visible to queries until its
/// files are in the catalog.
#[derive(Debug)]
struct PendingFlush {
    id: u64,
    batches: Vec<Buffered>,
    attempts: u32,
    next_attempt: Instant,
}

#[derive(Debug, Default)]
struct TableState {
    active: Vec<Buffered>,
    active_bytes: usize,
    active_since: Option<Instant>,
    pending: Vec<PendingFlush>,
    /// Files of this table, in no particular order.
    files: Vec<Arc<FileMeta>>,
}

type TableKey = (TenantId, Signal);

/// The storage engine of one node.
#[derive(Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    config: StorageConfig,
    tables: RwLock<HashMap<TableKey, Arc<Mutex<TableState>>>>,
    next_flush_id: AtomicU64,
    /// Serialises flushes so that one table's pending batches are written by one task.
    flush_lock: tokio::sync::Mutex<()>,
    flush_now: Notify,
    stats: StorageStats,
}

/// Counters of the storage engine, read by `/metrics`.
#[derive(Debug, Default)]
pub struct StorageStats {
    pub files_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub rows_flushed: AtomicU64,
    pub flush_errors: AtomicU64,
}

impl Storage {
    /// Opens the engine over a store and a catalog, loading the catalog's file list.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        config: StorageConfig,
    ) -> Result<Arc<Self>> {
        let storage = Arc::new(Self {
            store,
            catalog,
            config,
            tables: RwLock::new(HashMap::new()),
            next_flush_id: AtomicU64::new(1),
            flush_lock: tokio::sync::Mutex::new(()),
            flush_now: Notify::new(),
            stats: StorageStats::default(),
        });
        let files = storage.catalog.list_files().await?;
        let count = files.len();
        for file in files {
            let table = storage.table(&file.tenant, file.signal);
            table.lock().files.push(Arc::new(file));
        }
        tracing::info!(files = count, "loaded catalog");
        Ok(storage)
    }

    /// The object store files live in.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> &StorageStats {
        &self.stats
    }

    fn table(&self, tenant: &TenantId, signal: Signal) -> Arc<Mutex<TableState>> {
        let key = (tenant.clone(), signal);
        if let Some(t) = self.tables.read().get(&key) {
            return t.clone();
        }
        self.tables.write().entry(key).or_default().clone()
    }

    /// Adds a batch of rows to a tenant's table. When this returns, the rows are visible to
    /// every later [`Storage::snapshot`].
    pub fn write(&self, tenant: &TenantId, signal: Signal, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema() != schema_for(signal) {
            return Err(Error::Schema {
                signal,
                reason: "batch schema differs from the table schema".into(),
            });
        }
        let Some((min_time, max_time)) = parquet_file::time_bounds(signal, &batch)? else {
            return Ok(());
        };
        let bytes = batch.get_array_memory_size();
        let table = self.table(tenant, signal);
        let due = {
            let mut state = table.lock();
            state.active.push(Buffered {
                batch,
                min_time,
                max_time,
            });
            state.active_bytes += bytes;
            state.active_since.get_or_insert_with(Instant::now);
            state.active_bytes >= self.config.max_buffer_bytes
        };
        if due {
            self.flush_now.notify_one();
        }
        Ok(())
    }

    /// The files and buffered batches of a tenant's table that may hold rows in `range`.
    pub fn snapshot(&self, tenant: &TenantId, signal: Signal, range: TimeRange) -> Snapshot {
        let Some(table) = self.tables.read().get(&(tenant.clone(), signal)).cloned() else {
            return Snapshot::default();
        };
        let state = table.lock();
        let mut snapshot = Snapshot::default();
        for file in &state.files {
            if range.overlaps(file.min_time, file.max_time) {
                snapshot.files.push(file.clone());
            } else {
                snapshot.files_pruned += 1;
            }
        }
        let buffered = state
            .pending
            .iter()
            .flat_map(|p| p.batches.iter())
            .chain(state.active.iter());
        snapshot.batches = buffered
            .filter(|b| range.overlaps(b.min_time, b.max_time))
            .map(|b| b.batch.clone())
            .collect();
        snapshot
    }

    /// Runs the flusher until `shutdown` resolves, then flushes everything buffered.
    pub async fn run_flusher(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.config.flush_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {}
                () = self.flush_now.notified() => {}
            }
            self.flush(false).await;
        }
        match self.flush_all().await {
            Ok(()) => tracing::info!("flushed write buffer on shutdown"),
            Err(e) => tracing::error!(error = %e, "could not flush write buffer on shutdown"),
        }
    }

    /// Flushes every buffered row now, retrying failed writes a few times.
    pub async fn flush_all(&self) -> Result<()> {
        let mut remaining = 0;
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            remaining = self.flush(true).await;
            if remaining == 0 {
                return Ok(());
            }
        }
        Err(Error::FlushIncomplete(remaining))
    }

    /// One flusher pass: seals due buffers (all of them when `force`) and writes every
    /// pending flush whose retry time has come. Returns how many flushes remain pending.
    pub async fn flush(&self, force: bool) -> usize {
        let _guard = self.flush_lock.lock().await;
        let now = Instant::now();
        let tables: Vec<(TableKey, Arc<Mutex<TableState>>)> = self
            .tables
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut remaining = 0;
        for ((tenant, signal), table) in tables {
            let work: Vec<(u64, Vec<RecordBatch>)> = {
                let mut state = table.lock();
                let due = state.active_since.is_some_and(|since| {
                    force
                        || state.active_bytes >= self.config.max_buffer_bytes
                        || now.duration_since(since) >= self.config.max_buffer_age
                });
                if due {
                    let batches = std::mem::take(&mut state.active);
                    state.active_bytes = 0;
                    state.active_since = None;
                    state.pending.push(PendingFlush {
                        id: self.next_flush_id.fetch_add(1, Ordering::Relaxed),
                        batches,
                        attempts: 0,
                        next_attempt: now,
                    });
                }
                state
                    .pending
                    .iter()
                    .filter(|p| force || p.next_attempt <= now)
                    .map(|p| (p.id, p.batches.iter().map(|b| b.batch.clone()).collect()))
                    .collect()
            };
            for (id, batches) in work {
                match self.write_files(&tenant, signal, &batches).await {
                    Ok(files) => {
                        let mut state = table.lock();
                        state.pending.retain(|p| p.id != id);
                        state.files.extend(files.into_iter().map(Arc::new));
                    }
                    Err(e) => {
                        self.stats.flush_errors.fetch_add(1, Ordering::Relaxed);
                        let mut state = table.lock();
                        if let Some(p) = state.pending.iter_mut().find(|p| p.id == id) {
                            p.attempts += 1;
                            let backoff =
                                Duration::from_millis((250u64 << p.attempts.min(8)).min(60_000));
                            p.next_attempt = Instant::now() + backoff;
                            tracing::warn!(
                                tenant = %tenant, signal = %signal, attempts = p.attempts,
                                retry_in_ms = backoff.as_millis() as u64, error = %e,
                                "flush failed; will retry"
                            );
                        }
                    }
                }
            }
            remaining += table.lock().pending.len();
        }
        remaining
    }

    /// Writes one flush: a file per hour partition, then their catalog rows in one
    /// transaction. Files without rows (a failure in between) are harmless orphans.
    async fn write_files(
        &self,
        tenant: &TenantId,
        signal: Signal,
        batches: &[RecordBatch],
    ) -> Result<Vec<FileMeta>> {
        let batches = batches.to_vec();
        // Sorting and encoding are CPU work: keep them off the I/O threads.
        let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<_>> {
            partition_and_sort(signal, &batches)?
                .into_iter()
                .map(|part| {
                    let bytes = encode(signal, &part.batch)?;
                    Ok((part, bytes))
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;

        let mut files = Vec::with_capacity(encoded.len());
        for (part, bytes) in encoded {
            let id = uuid::Uuid::now_v7().to_string();
            let path = object_path(tenant.as_str(), signal, part.hour_start, &id);
            let size = bytes.len();
            self.store
                .put(&Path::from(path.as_str()), bytes.into())
                .await?;
            files.push(FileMeta {
                id,
                tenant: tenant.clone(),
                signal,
                path,
                min_time: part.min_time,
                max_time: part.max_time,
                rows: part.batch.num_rows() as i64,
                size_bytes: size as i64,
                level: 0,
                created_at: now_ns(),
            });
        }
        self.catalog.add_files(&files).await?;
        let rows: i64 = files.iter().map(|f| f.rows).sum();
        let bytes: i64 = files.iter().map(|f| f.size_bytes).sum();
        self.stats
            .files_written
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats
            .rows_flushed
            .fetch_add(rows as u64, Ordering::Relaxed);
        tracing::debug!(tenant = %tenant, signal = %signal, files = files.len(), rows, bytes, "flushed");
        Ok(files)
    }

    /// Bytes of Arrow data buffered across all tables (not yet in Parquet).
    pub fn buffered_bytes(&self) -> usize {
        self.tables
            .read()
            .values()
            .map(|t| {
                let s = t.lock();
                s.active_bytes
                    + s.pending
                        .iter()
                        .flat_map(|p| &p.batches)
                        .map(|b| b.batch.get_array_memory_size())
                        .sum::<usize>()
            })
            .sum()
    }
}
