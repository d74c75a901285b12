//! The storage engine: WAL, write buffer, flusher and the per-table file lists queries read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::catalog::{Catalog, FileMeta, Watermark, now_ns};
use crate::maintenance::{MaintenanceConfig, MaintenanceStats};
use crate::memory::{self, MemoryLimit};
use crate::parquet_file::{self, object_path, partition_and_sort};
use crate::schema::{buffer_schema_for, schema_for};
use crate::wal::{SourceRequest, Wal, WalConfig, WalRecord, WalStats};
use crate::{Error, Result, Signal, TenantId};

/// How the engine buffers, logs and flushes.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// A table's buffer is flushed once its oldest row has waited this long.
    pub max_buffer_age: Duration,
    /// A table's buffer is sealed for flushing as soon as it holds this many bytes of Arrow
    /// data, so one flush holds about this much (plus one batch).
    pub max_buffer_bytes: usize,
    /// Writes are refused (HTTP 429) while all buffers together, plus the writes admitted and
    /// on their way through the WAL, hold this many bytes.
    pub max_total_buffer_bytes: usize,
    /// How often the flusher looks for due buffers (and retries failed flushes).
    pub flush_check_interval: Duration,
    /// The write-ahead log; `None` keeps acknowledged data in memory only (tests).
    pub wal: Option<WalConfig>,
    /// This node's identity: the key of its WAL watermarks in the catalog.
    pub node_id: String,
    /// Compaction, retention and garbage collection.
    pub maintenance: MaintenanceConfig,
    /// How long a shutdown tries to flush the buffer; what is left stays in the WAL.
    pub shutdown_flush_timeout: Duration,
    /// Limit on the resident memory of the whole process, in bytes (0 = none): see
    /// [`crate::memory`]. Enforced once [`Storage::run_memory_sampler`] runs.
    pub memory_limit: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_buffer_age: Duration::from_secs(30),
            max_buffer_bytes: 64 * 1024 * 1024,
            max_total_buffer_bytes: 1024 * 1024 * 1024,
            flush_check_interval: Duration::from_secs(1),
            wal: None,
            node_id: "local".into(),
            maintenance: MaintenanceConfig::default(),
            shutdown_flush_timeout: Duration::from_secs(30),
            memory_limit: 0,
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
    /// Buffered batches that may hold rows of the requested time range, in the table's
    /// layout or the write buffer's (`resource_attributes` a dictionary of the batch's
    /// resources; [`crate::resources::to_table`] puts the map back on each row).
    pub batches: Vec<RecordBatch>,
}

#[derive(Debug, Clone)]
struct Buffered {
    batch: RecordBatch,
    /// WAL sequence number (0 without a WAL).
    seq: u64,
    min_time: i64,
    max_time: i64,
    bytes: usize,
}

/// Buffered rows on their way to Parquet; they stay visible to queries until their files are
/// in the catalog.
#[derive(Debug)]
struct PendingFlush {
    batches: Vec<Buffered>,
    attempts: u32,
    next_attempt: Instant,
    /// The Parquet files of these rows, once encoded: kept across failed attempts (the object
    /// store down) so that a retry does not sort and encode again. Parquet is far smaller
    /// than the Arrow rows it holds.
    encoded: Option<Arc<Vec<EncodedPart>>>,
}

/// One hour partition of a flush, encoded as a Parquet file.
#[derive(Debug)]
struct EncodedPart {
    hour_start: i64,
    min_time: i64,
    max_time: i64,
    rows: usize,
    bytes: Bytes,
}

/// Under memory pressure the flusher seals the largest buffer early, but not one smaller than
/// `--flush-max-bytes` divided by this: that would write tiny files and free little.
const PRESSURE_SEAL_DIVISOR: usize = 16;

#[derive(Debug, Default)]
struct TableState {
    active: Vec<Buffered>,
    active_bytes: usize,
    active_since: Option<Instant>,
    /// Sealed buffers, oldest first; flushed strictly in this order.
    pending: std::collections::VecDeque<PendingFlush>,
    /// Files of this table, in no particular order.
    files: Vec<Arc<FileMeta>>,
}

impl TableState {
    /// Moves the active buffer to the end of the pending flushes.
    fn seal(&mut self, now: Instant) {
        if self.active.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut self.active);
        self.active_bytes = 0;
        self.active_since = None;
        self.pending.push_back(PendingFlush {
            batches,
            attempts: 0,
            next_attempt: now,
            encoded: None,
        });
    }

    fn buffered(&self) -> impl Iterator<Item = &Buffered> {
        self.pending
            .iter()
            .flat_map(|p| p.batches.iter())
            .chain(self.active.iter())
    }
}

type TableKey = (TenantId, Signal);

/// The buffered tables, shared with the WAL writer (which inserts what it has made durable).
#[derive(Debug, Default)]
struct Tables {
    map: RwLock<HashMap<TableKey, Arc<Mutex<TableState>>>>,
    /// Bytes buffered across all tables.
    bytes: AtomicUsize,
    /// `bytes` plus the reservations of writes admitted but not yet applied by the WAL
    /// writer: what admission compares with the limit.
    admitted: AtomicUsize,
    flush_now: Notify,
    /// A write was refused for memory since the last flusher pass: seal the largest buffer
    /// even if it is not due.
    pressure: AtomicBool,
    /// A table's buffer is sealed once it holds this many bytes.
    max_buffer_bytes: usize,
}

/// Bytes of the write buffer reserved by an admitted write, from admission until its batch is
/// in the buffer (which then counts it) or the write has failed. Released on drop.
struct Reservation {
    tables: Arc<Tables>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.tables.admitted.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Tables {
    fn table(&self, tenant: &TenantId, signal: Signal) -> Arc<Mutex<TableState>> {
        let key = (tenant.clone(), signal);
        if let Some(t) = self.map.read().get(&key) {
            return t.clone();
        }
        self.map.write().entry(key).or_default().clone()
    }

    fn all(&self) -> Vec<(TableKey, Arc<Mutex<TableState>>)> {
        self.map
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Adds rows to a table's buffer.
    fn insert(&self, tenant: &TenantId, signal: Signal, batch: RecordBatch, seq: u64) {
        let Ok(Some((min_time, max_time))) = parquet_file::time_bounds(signal, &batch) else {
            return;
        };
        let bytes = batch.get_array_memory_size();
        let table = self.table(tenant, signal);
        // Counted before the rows are visible, so that `admitted` never misses them (the
        // write's reservation is released after this returns).
        self.admitted.fetch_add(bytes, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let sealed = {
            let mut state = table.lock();
            state.active.push(Buffered {
                batch,
                seq,
                min_time,
                max_time,
                bytes,
            });
            state.active_bytes += bytes;
            let now = Instant::now();
            state.active_since.get_or_insert(now);
            // Sealed here rather than by the flusher, so that a table written while another
            // is being flushed does not keep growing its next flush.
            let full = state.active_bytes >= self.max_buffer_bytes;
            if full {
                state.seal(now);
            }
            full
        };
        if sealed {
            self.flush_now.notify_one();
        }
    }

    /// The oldest WAL sequence number still buffered anywhere.
    fn oldest_buffered_seq(&self) -> Option<u64> {
        self.all()
            .iter()
            .filter_map(|(_, t)| t.lock().buffered().map(|b| b.seq).min())
            .min()
    }
}

/// Counters of the storage engine, read by `/metrics`.
#[derive(Debug, Default)]
pub struct StorageStats {
    pub files_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub rows_flushed: AtomicU64,
    pub flush_errors: AtomicU64,
    pub writes_refused_memory: AtomicU64,
    pub writes_refused_wal: AtomicU64,
    /// Flushes sorted and encoded to Parquet (a retry of a failed flush reuses its files).
    pub flushes_encoded: AtomicU64,
}

/// The storage engine of one node.
#[derive(Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    config: StorageConfig,
    tables: Arc<Tables>,
    wal: Option<Arc<Wal>>,
    /// Serialises flushes so that one table's pending batches are written by one task.
    flush_lock: tokio::sync::Mutex<()>,
    stats: StorageStats,
    maintenance_stats: MaintenanceStats,
    memory: MemoryLimit,
}

impl Storage {
    /// Opens the engine over a store and a catalog: loads the catalog's file list, replays the
    /// WAL (skipping what is already in Parquet) and starts the WAL writer.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        config: StorageConfig,
    ) -> Result<Arc<Self>> {
        let tables = Arc::new(Tables {
            max_buffer_bytes: config.max_buffer_bytes,
            ..Tables::default()
        });
        let memory_limit = config.memory_limit;
        let files = catalog.list_files().await?;
        let count = files.len();
        for file in files {
            tables
                .table(&file.tenant, file.signal)
                .lock()
                .files
                .push(Arc::new(file));
        }
        tracing::info!(files = count, "loaded catalog");

        let wal = match &config.wal {
            None => None,
            Some(wal_config) => {
                Some(Self::recover(&catalog, &config.node_id, wal_config, &tables).await?)
            }
        };
        let storage = Arc::new(Self {
            store,
            catalog,
            config,
            tables,
            wal,
            flush_lock: tokio::sync::Mutex::new(()),
            stats: StorageStats::default(),
            maintenance_stats: MaintenanceStats::default(),
            memory: MemoryLimit::new(memory_limit),
        });
        storage.release_wal();
        Ok(storage)
    }

    /// Replays the WAL into `tables` and starts its writer.
    async fn recover(
        catalog: &Arc<dyn Catalog>,
        node_id: &str,
        config: &WalConfig,
        tables: &Arc<Tables>,
    ) -> Result<Arc<Wal>> {
        let watermarks: HashMap<TableKey, u64> = catalog
            .watermarks(node_id)
            .await?
            .into_iter()
            .map(|w| ((w.tenant, w.signal), w.seq))
            .collect();
        let wal_config = config.clone();
        let mut replay = tokio::task::spawn_blocking(move || Wal::replay(&wal_config))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        let segments = std::mem::take(&mut replay.segments);
        let mut replayed = 0u64;
        let mut skipped = 0u64;
        for WalRecord {
            seq,
            tenant,
            signal,
            batch,
        } in std::mem::take(&mut replay.records)
        {
            let persisted = watermarks
                .get(&(tenant.clone(), signal))
                .is_some_and(|w| seq <= *w);
            if persisted {
                skipped += 1;
            } else {
                tables.insert(&tenant, signal, batch, seq);
                replayed += 1;
            }
        }
        let next_seq = replay
            .last_seq
            .into_iter()
            .chain(watermarks.values().copied())
            .max()
            .map_or(1, |s| s + 1);
        tracing::info!(
            replayed,
            already_in_parquet = skipped,
            corrupt_tails = replay.corrupt_tails,
            refused_records = replay.refused_records,
            bytes_cut = replay.bytes_cut,
            next_seq,
            "replayed WAL"
        );
        let apply_tables = tables.clone();
        let wal = Wal::start(
            config.clone(),
            segments,
            next_seq,
            Box::new(move |record: WalRecord| {
                apply_tables.insert(&record.tenant, record.signal, record.batch, record.seq);
            }),
        )?;
        wal.stats().count_replay(&replay, replayed);
        Ok(wal)
    }

    /// The object store files live in.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> &StorageStats {
        &self.stats
    }

    /// Settings of the background jobs.
    pub fn maintenance_config(&self) -> &MaintenanceConfig {
        &self.config.maintenance
    }

    /// Counters of the background jobs, for `/metrics`.
    pub fn maintenance_stats(&self) -> &MaintenanceStats {
        &self.maintenance_stats
    }

    /// The file list of every table.
    pub(crate) fn file_lists(&self) -> Vec<(TableKey, Vec<Arc<FileMeta>>)> {
        self.tables
            .all()
            .into_iter()
            .map(|(key, table)| {
                let files = table.lock().files.clone();
                (key, files)
            })
            .collect()
    }

    /// Replaces files in a table's list, in one critical section (after the catalog swap).
    pub(crate) fn swap_files(
        &self,
        tenant: &TenantId,
        signal: Signal,
        removed: &[FileMeta],
        added: Vec<FileMeta>,
    ) {
        let table = self.tables.table(tenant, signal);
        let mut state = table.lock();
        state
            .files
            .retain(|f| !removed.iter().any(|r| r.id == f.id));
        state.files.extend(added.into_iter().map(Arc::new));
    }

    /// WAL counters for `/metrics`, when there is a WAL.
    pub fn wal_stats(&self) -> Option<&WalStats> {
        self.wal.as_deref().map(Wal::stats)
    }

    /// Whether [`Storage::write`] would refuse for memory: the write buffer (with the writes
    /// admitted and on their way through the WAL) is at its limit, or the process is over the
    /// soft limit of `--memory-limit`. Cheap: two atomic loads.
    pub fn over_memory_limit(&self) -> bool {
        self.memory.is_over()
            || self.tables.admitted.load(Ordering::Acquire) >= self.config.max_total_buffer_bytes
    }

    /// Refuses while [`Storage::over_memory_limit`] ([`Error::MemoryLimit`] or
    /// [`Error::BufferFull`]), counting the refusal and asking the flusher to free memory,
    /// exactly as [`Storage::write`] does. For the receivers, before they read or decode a
    /// request.
    pub fn check_memory_limit(&self) -> Result<()> {
        if self.over_memory_limit() {
            return Err(self.refuse_for_memory());
        }
        Ok(())
    }

    /// The process-wide memory limit and the last resident size sampled.
    pub fn memory(&self) -> &MemoryLimit {
        &self.memory
    }

    /// Samples the process's resident set every `interval` until `shutdown` resolves, so that
    /// exports are refused, the largest buffer flushed and compaction held back while it is
    /// over the soft limit of `--memory-limit`. Returns at once when there is no limit.
    pub async fn run_memory_sampler(
        self: Arc<Self>,
        interval: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        if self.memory.limit() == 0 {
            return;
        }
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            let Some(resident) = memory::resident_bytes() else {
                tracing::warn!("cannot read the resident set; --memory-limit is not enforced");
                return;
            };
            let was_over = self.memory.is_over();
            if self.memory.observe(resident) && !was_over {
                tracing::info!(
                    resident_mib = resident >> 20,
                    limit_mib = self.memory.limit() >> 20,
                    "over the soft memory limit: refusing exports and flushing"
                );
                self.ask_flusher_for_memory();
            }
        }
    }

    /// Marks the buffer under pressure and wakes the flusher, whose next pass seals the
    /// largest buffer even if it is not due (see [`Storage::flush`]).
    fn ask_flusher_for_memory(&self) {
        self.tables.pressure.store(true, Ordering::Release);
        self.tables.flush_now.notify_one();
    }

    /// Counts a refusal for memory and wakes the flusher, which then seals the largest buffer
    /// even if it is not due (see [`Storage::flush`]).
    fn refuse_for_memory(&self) -> Error {
        self.stats
            .writes_refused_memory
            .fetch_add(1, Ordering::Relaxed);
        self.ask_flusher_for_memory();
        if self.memory.is_over() {
            Error::MemoryLimit {
                resident_mib: self.memory.resident() >> 20,
                soft_limit_mib: self.memory.soft_limit() >> 20,
                limit_mib: self.memory.limit() >> 20,
            }
        } else {
            Error::BufferFull
        }
    }

    /// Reserves `bytes` of the write buffer if it is under its limit, atomically: writes
    /// running at the same time cannot together get past the limit by more than one batch.
    /// Refused while the process is over its memory limit.
    fn reserve(&self, bytes: usize) -> Result<Reservation> {
        if self.memory.is_over() {
            return Err(self.refuse_for_memory());
        }
        let limit = self.config.max_total_buffer_bytes;
        let admitted =
            self.tables
                .admitted
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                    (current < limit).then(|| current.saturating_add(bytes))
                });
        match admitted {
            Ok(_) => Ok(Reservation {
                tables: self.tables.clone(),
                bytes,
            }),
            Err(_) => Err(self.refuse_for_memory()),
        }
    }

    /// Makes a batch of rows durable (WAL, fsynced) and visible to every later
    /// [`Storage::snapshot`]. The batch is in the table's schema or the write buffer's
    /// ([`crate::schema::buffer_schema_for`]). Refused with [`Error::BufferFull`] while the write buffer is over
    /// its memory limit, and with [`Error::WalFull`] while the WAL is.
    ///
    /// The batch's bytes are reserved at admission, before the WAL append, and the
    /// reservation is handed to the WAL writer, which releases it once the batch is in the
    /// buffer (or the append failed).
    pub async fn write(&self, tenant: &TenantId, signal: Signal, batch: RecordBatch) -> Result<()> {
        self.write_converted(tenant, signal, batch, None).await
    }

    /// [`Storage::write`] of the rows converted from `source`: the WAL then keeps the request
    /// rather than the rows, when it has a decoder to replay it with (see [`crate::wal`]).
    pub async fn write_converted(
        &self,
        tenant: &TenantId,
        signal: Signal,
        batch: RecordBatch,
        source: Option<SourceRequest>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema() != schema_for(signal) && batch.schema() != buffer_schema_for(signal) {
            return Err(Error::Schema {
                signal,
                reason: "batch schema differs from the table schema".into(),
            });
        }
        let reservation = self.reserve(batch.get_array_memory_size())?;
        match &self.wal {
            Some(wal) => {
                // The WAL writer inserts into the buffer once the record is durable, then
                // drops the reservation.
                let result = wal
                    .append_holding(tenant.clone(), signal, batch, source, reservation)
                    .await;
                if matches!(result, Err(Error::WalFull)) {
                    self.stats
                        .writes_refused_wal
                        .fetch_add(1, Ordering::Relaxed);
                }
                result.map(|_seq| ())
            }
            None => {
                self.tables.insert(tenant, signal, batch, 0);
                drop(reservation);
                Ok(())
            }
        }
    }

    /// The files and buffered batches of a tenant's table that may hold rows in `range`.
    pub fn snapshot(&self, tenant: &TenantId, signal: Signal, range: TimeRange) -> Snapshot {
        let Some(table) = self
            .tables
            .map
            .read()
            .get(&(tenant.clone(), signal))
            .cloned()
        else {
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
        snapshot.batches = state
            .buffered()
            .filter(|b| range.overlaps(b.min_time, b.max_time))
            .map(|b| b.batch.clone())
            .collect();
        snapshot
    }

    /// Runs the flusher until `shutdown` resolves, then flushes everything buffered and
    /// closes the WAL.
    pub async fn run_flusher(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.config.flush_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {}
                () = self.tables.flush_now.notified() => {}
            }
            self.flush(false).await;
        }
        self.close().await;
    }

    /// Stops the WAL writer (after it has answered every queued write) and flushes every
    /// buffered row. Whatever cannot be flushed stays in the WAL for the next start.
    pub async fn close(&self) {
        if let Some(wal) = self.wal.clone() {
            let _ = tokio::task::spawn_blocking(move || wal.close()).await;
        }
        match tokio::time::timeout(self.config.shutdown_flush_timeout, self.flush_all()).await {
            Ok(Ok(())) => tracing::info!("flushed write buffer"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not flush the write buffer; the WAL keeps it")
            }
            Err(_) => tracing::error!(
                timeout_s = self.config.shutdown_flush_timeout.as_secs(),
                "flushing the write buffer took too long; the WAL keeps what is left"
            ),
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

    /// The table to seal under memory pressure: the one with the largest active buffer, among
    /// those with no flush pending (a pending flush that fails would not free anything more
    /// for being joined by another) and at least `--flush-max-bytes` / 16 buffered.
    fn table_to_seal_for_memory(
        &self,
        tables: &[(TableKey, Arc<Mutex<TableState>>)],
    ) -> Option<TableKey> {
        let floor = (self.config.max_buffer_bytes / PRESSURE_SEAL_DIVISOR).max(1);
        tables
            .iter()
            .filter_map(|(key, table)| {
                let state = table.lock();
                (state.pending.is_empty() && state.active_bytes >= floor)
                    .then_some((state.active_bytes, key))
            })
            .max_by_key(|(bytes, _)| *bytes)
            .map(|(_, key)| key.clone())
    }

    /// One flusher pass: seals due buffers (all of them when `force`) and writes each table's
    /// pending flushes, oldest first, stopping at the first failure (retried later with
    /// backoff). When a write was refused for memory since the last pass, the largest buffer
    /// is sealed too, due or not: a memory limit below (tables × `--flush-max-bytes`) must not
    /// stall ingest until `--flush-interval`. Returns how many flushes remain pending.
    pub async fn flush(&self, force: bool) -> usize {
        let _guard = self.flush_lock.lock().await;
        let now = Instant::now();
        let mut remaining = 0;
        let mut flushed_any = false;
        let tables = self.tables.all();
        let pressure = self.tables.pressure.swap(false, Ordering::AcqRel);
        let seal_for_memory = if pressure && !force {
            self.table_to_seal_for_memory(&tables)
        } else {
            None
        };
        for (key, table) in tables {
            let (tenant, signal) = &key;
            let signal = *signal;
            {
                let mut state = table.lock();
                let due = state.active_since.is_some_and(|since| {
                    force
                        || state.active_bytes >= self.config.max_buffer_bytes
                        || now.duration_since(since) >= self.config.max_buffer_age
                        || seal_for_memory.as_ref() == Some(&key)
                });
                if due {
                    state.seal(now);
                }
            }
            loop {
                let work = {
                    let state = table.lock();
                    match state.pending.front() {
                        Some(p) if force || p.next_attempt <= now => {
                            Some((p.batches.clone(), p.encoded.clone()))
                        }
                        _ => None,
                    }
                };
                let Some((batches, encoded)) = work else {
                    break;
                };
                let max_seq = batches.iter().map(|b| b.seq).max().unwrap_or(0);
                let result = match encoded {
                    Some(encoded) => self.write_files(tenant, signal, max_seq, &encoded).await,
                    None => match self.encode_flush(signal, &batches).await {
                        Ok(encoded) => {
                            let encoded = Arc::new(encoded);
                            // Only this task pops pending flushes (under `flush_lock`), so the
                            // front is still the flush just encoded.
                            if let Some(p) = table.lock().pending.front_mut() {
                                p.encoded = Some(encoded.clone());
                            }
                            self.write_files(tenant, signal, max_seq, &encoded).await
                        }
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(files) => {
                        let bytes: usize = batches.iter().map(|b| b.bytes).sum();
                        let mut state = table.lock();
                        state.pending.pop_front();
                        state.files.extend(files.into_iter().map(Arc::new));
                        drop(state);
                        self.tables.bytes.fetch_sub(bytes, Ordering::Relaxed);
                        self.tables.admitted.fetch_sub(bytes, Ordering::AcqRel);
                        flushed_any = true;
                    }
                    Err(e) => {
                        self.stats.flush_errors.fetch_add(1, Ordering::Relaxed);
                        let mut state = table.lock();
                        if let Some(p) = state.pending.front_mut() {
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
                        break;
                    }
                }
            }
            remaining += table.lock().pending.len();
        }
        if flushed_any {
            self.release_wal();
        }
        remaining
    }

    /// Deletes the WAL segments whose records are all in Parquet.
    fn release_wal(&self) {
        if let Some(wal) = &self.wal {
            wal.release(self.tables.oldest_buffered_seq());
        }
    }

    /// Splits a flush's rows by hour, sorts each part and encodes it as Parquet; only the
    /// encoded files are kept.
    async fn encode_flush(
        &self,
        signal: Signal,
        buffered: &[Buffered],
    ) -> Result<Vec<EncodedPart>> {
        let batches: Vec<RecordBatch> = buffered.iter().map(|b| b.batch.clone()).collect();
        // Sorting and encoding are CPU work: keep them off the I/O threads.
        let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<_>> {
            partition_and_sort(signal, &batches)?
                .into_iter()
                .map(|part| {
                    let bytes = parquet_file::encode_file(
                        signal,
                        &part.batch,
                        part.resources.as_deref(),
                        parquet_file::FLUSH_ZSTD_LEVEL,
                    )?;
                    Ok(EncodedPart {
                        hour_start: part.hour_start,
                        min_time: part.min_time,
                        max_time: part.max_time,
                        rows: part.batch.num_rows(),
                        bytes,
                    })
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        self.stats.flushes_encoded.fetch_add(1, Ordering::Relaxed);
        Ok(encoded)
    }

    /// Writes one encoded flush: a file per hour partition, then their catalog rows and the
    /// table's WAL watermark (`max_seq`) in one transaction. Files without rows (a failure in
    /// between) are harmless orphans; every attempt writes under fresh object names.
    async fn write_files(
        &self,
        tenant: &TenantId,
        signal: Signal,
        max_seq: u64,
        encoded: &[EncodedPart],
    ) -> Result<Vec<FileMeta>> {
        let mut files = Vec::with_capacity(encoded.len());
        for part in encoded {
            let id = uuid::Uuid::now_v7().to_string();
            let path = object_path(tenant.as_str(), signal, part.hour_start, &id);
            let size = part.bytes.len();
            self.store
                .put(&Path::from(path.as_str()), part.bytes.clone().into())
                .await?;
            files.push(FileMeta {
                id,
                tenant: tenant.clone(),
                signal,
                path,
                min_time: part.min_time,
                max_time: part.max_time,
                rows: part.rows as i64,
                size_bytes: size as i64,
                level: 0,
                created_at: now_ns(),
            });
        }
        let watermark = (self.wal.is_some() && max_seq > 0).then(|| Watermark {
            node_id: self.config.node_id.clone(),
            tenant: tenant.clone(),
            signal,
            seq: max_seq,
        });
        self.catalog.add_files(&files, watermark.as_ref()).await?;
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
        self.tables.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
