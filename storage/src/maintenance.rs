//! Background maintenance: compaction, retention and garbage collection. None of it takes a
//! lock that ingest waits on for longer than a list swap.
//!
//! - **Compaction** merges the small files of one hour partition into one sorted file of up
//!   to `target_bytes` and swaps the catalog rows atomically. A query that started before the
//!   swap keeps reading the old files (they are deleted only after `delete_grace`); one that
//!   starts after reads the new file: every row exactly once either way.
//! - **Retention** drops the files whose rows are all older than the tenant's retention for
//!   that signal (whole hour partitions).
//! - **Garbage collection** deletes the objects scheduled for deletion once their grace has
//!   passed, and objects no catalog row points to (a flush that wrote its file but died
//!   before its catalog row) once they are older than `orphan_age`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::catalog::{FileMeta, now_ns};
use crate::merge::{CancelOnDrop, MergeOutput, merge_sorted_files};
use crate::parquet_file::{COMPACTION_ZSTD_LEVEL, HOUR_NS, object_path};
use crate::store::Storage;
use crate::{Error, Result, Signal, TenantId};

/// Most files merged at once: a merge holds one row group and one batch of each input.
pub const MAX_MERGE_INPUTS: usize = 32;

/// Settings of the background jobs.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// How often compaction looks for work.
    pub compaction_interval: Duration,
    /// Files at least this large are left alone; merged files are at most about this large.
    pub compaction_target_bytes: u64,
    /// A partition is compacted once it has this many small files, or once its hour has
    /// been over for `compaction_settle` and it has two (or one still as the flush wrote it,
    /// which is then rewritten at the compaction level).
    pub compaction_min_files: usize,
    pub compaction_settle: Duration,
    /// How often retention and garbage collection run.
    pub retention_interval: Duration,
    /// How long replaced or expired files stay readable before their objects are deleted.
    pub delete_grace: Duration,
    /// Objects without a catalog row are deleted once they are this old.
    pub orphan_age: Duration,
    /// Retention per tenant and signal.
    pub retention: RetentionPolicy,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            compaction_interval: Duration::from_secs(60),
            compaction_target_bytes: 128 * 1024 * 1024,
            compaction_min_files: 4,
            compaction_settle: Duration::from_secs(10 * 60),
            retention_interval: Duration::from_secs(5 * 60),
            delete_grace: Duration::from_secs(5 * 60),
            orphan_age: Duration::from_secs(60 * 60),
            retention: RetentionPolicy::default(),
        }
    }
}

/// Retention periods: per tenant and signal, per tenant, per signal, default — the most
/// specific one that is set applies; none set keeps data forever.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPolicy {
    pub default: Option<Duration>,
    pub signals: HashMap<Signal, Duration>,
    pub tenants: HashMap<String, TenantRetention>,
}

/// A tenant's overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantRetention {
    pub default: Option<Duration>,
    pub signals: HashMap<Signal, Duration>,
}

impl RetentionPolicy {
    /// How long `signal` data of `tenant` is kept; `None` keeps it forever.
    pub fn for_table(&self, tenant: &TenantId, signal: Signal) -> Option<Duration> {
        let tenant = self.tenants.get(tenant.as_str());
        tenant
            .and_then(|t| t.signals.get(&signal).copied())
            .or_else(|| tenant.and_then(|t| t.default))
            .or_else(|| self.signals.get(&signal).copied())
            .or(self.default)
    }
}

/// Counters of the background jobs, for `/metrics`.
#[derive(Debug, Default)]
pub struct MaintenanceStats {
    pub compactions: AtomicU64,
    pub compaction_files_in: AtomicU64,
    pub compaction_bytes_in: AtomicU64,
    pub compaction_bytes_out: AtomicU64,
    pub compaction_errors: AtomicU64,
    /// Compaction passes in progress (a gauge: 0 or 1 on a node).
    pub compactions_running: AtomicU64,
    pub retention_files_deleted: AtomicU64,
    pub retention_rows_deleted: AtomicU64,
    pub retention_bytes_deleted: AtomicU64,
    pub objects_deleted: AtomicU64,
    pub orphans_deleted: AtomicU64,
}

/// What one compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    pub partitions: usize,
    pub files_in: usize,
    pub files_out: usize,
    /// The pass stopped before a merge because the process was over half of
    /// `--memory-limit`; the next pass takes it up.
    pub held_back_for_memory: bool,
}

impl Storage {
    /// Runs compaction, retention and garbage collection until `shutdown` resolves.
    pub async fn run_maintenance(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let config = self.maintenance_config().clone();
        tokio::pin!(shutdown);
        let mut compaction = tokio::time::interval(config.compaction_interval);
        let mut retention = tokio::time::interval(config.retention_interval);
        compaction.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first ticks fire at once; let the node settle first.
        compaction.reset();
        retention.reset();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = compaction.tick() => {
                    // Shutdown cancels a pass in the middle: a merge stops at its next batch
                    // and aborts its upload; the catalog still lists the inputs.
                    tokio::select! {
                        () = &mut shutdown => break,
                        result = self.compact(now_ns()) => {
                            if let Err(e) = result {
                                tracing::warn!(error = %e, "compaction pass failed");
                            }
                        }
                    }
                }
                _ = retention.tick() => {
                    if let Err(e) = self.apply_retention(now_ns()).await {
                        tracing::warn!(error = %e, "retention pass failed");
                    }
                    if let Err(e) = self.collect_garbage(now_ns()).await {
                        tracing::warn!(error = %e, "garbage collection failed");
                    }
                }
            }
        }
    }

    /// One compaction pass over every table, as of `now` (ns since the epoch).
    pub async fn compact(&self, now: i64) -> Result<CompactionReport> {
        struct Running<'a>(&'a AtomicU64);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let running = &self.maintenance_stats().compactions_running;
        running.fetch_add(1, Ordering::Relaxed);
        let _running = Running(running);
        let config = self.maintenance_config();
        let mut report = CompactionReport::default();
        for ((tenant, signal), files) in self.file_lists() {
            let mut by_hour: HashMap<i64, Vec<Arc<FileMeta>>> = HashMap::new();
            for file in files {
                if (file.size_bytes as u64) < config.compaction_target_bytes / 2 {
                    by_hour
                        .entry(file.min_time.div_euclid(HOUR_NS))
                        .or_default()
                        .push(file);
                }
            }
            let mut hours: Vec<_> = by_hour.into_iter().collect();
            hours.sort_by_key(|(hour, _)| *hour);
            for (hour, mut small) in hours {
                let hour_over = (hour + 1) * HOUR_NS + config.compaction_settle.as_nanos() as i64;
                // A settled hour's only flush file is rewritten once, at compaction's denser
                // zstd level, as if merged: an hour of slow ingest keeps no flush-level file.
                let lone_flush = small.len() == 1 && small[0].level == 0 && now >= hour_over;
                let due = small.len() >= config.compaction_min_files
                    || (small.len() >= 2 && now >= hour_over)
                    || lone_flush;
                if !due {
                    continue;
                }
                small.sort_by_key(|f| (f.min_time, f.id.clone()));
                let mut picked = Vec::new();
                let mut bytes = 0u64;
                for file in small {
                    if picked.len() >= 2
                        && (bytes + file.size_bytes as u64 > config.compaction_target_bytes
                            || picked.len() == MAX_MERGE_INPUTS)
                    {
                        break;
                    }
                    bytes += file.size_bytes as u64;
                    picked.push(file);
                }
                if picked.len() < 2 && !lone_flush {
                    continue;
                }
                if !self.memory().room_for_compaction() {
                    // A merge needs memory of its own; ingest's flushes come first.
                    tracing::debug!("compaction held back: over half the memory limit");
                    report.held_back_for_memory = true;
                    return Ok(report);
                }
                match self
                    .merge(&tenant, signal, hour * HOUR_NS, &picked, now)
                    .await
                {
                    Ok(out) => {
                        report.partitions += 1;
                        report.files_in += picked.len();
                        report.files_out += out;
                    }
                    Err(e) => {
                        self.maintenance_stats()
                            .compaction_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            tenant = %tenant, signal = %signal, files = picked.len(), error = %e,
                            "compaction of a partition failed"
                        );
                    }
                }
            }
        }
        Ok(report)
    }

    /// Merges `files` (one hour partition) into one sorted file and swaps them in; the old
    /// objects become deletable `delete_grace` after `now`.
    async fn merge(
        &self,
        tenant: &TenantId,
        signal: Signal,
        hour_start: i64,
        files: &[Arc<FileMeta>],
        now: i64,
    ) -> Result<usize> {
        let store = self.object_store();
        let id = uuid::Uuid::now_v7().to_string();
        let path = object_path(tenant.as_str(), signal, hour_start, &id);
        let inputs: Vec<FileMeta> = files.iter().map(|f| f.as_ref().clone()).collect();
        // Dropping this future (shutdown) cancels the merge at its next batch.
        let cancel = CancelOnDrop::default();
        let flag = cancel.0.clone();
        let handle = tokio::runtime::Handle::current();
        let out = MergeOutput::new(Path::from(path.as_str()), COMPACTION_ZSTD_LEVEL);
        let merged = tokio::task::spawn_blocking(move || {
            merge_sorted_files(&handle, &store, signal, &inputs, &out, &flag)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        drop(cancel);
        let level = files.iter().map(|f| f.level).max().unwrap_or(0) + 1;
        let mut added = Vec::new();
        if let Some(merged) = merged {
            // Every input lies in this hour, so the merged rows do too.
            debug_assert_eq!(merged.min_time.div_euclid(HOUR_NS) * HOUR_NS, hour_start);
            added.push(FileMeta {
                id,
                tenant: tenant.clone(),
                signal,
                path,
                min_time: merged.min_time,
                max_time: merged.max_time,
                rows: merged.rows,
                size_bytes: merged.size_bytes,
                level,
                created_at: now_ns(),
            });
        }
        let removed: Vec<FileMeta> = files.iter().map(|f| f.as_ref().clone()).collect();
        let grace = self.maintenance_config().delete_grace.as_nanos() as i64;
        self.catalog()
            .replace_files(&removed, &added, now.saturating_add(grace))
            .await?;
        let out = added.len();
        let stats = self.maintenance_stats();
        stats.compactions.fetch_add(1, Ordering::Relaxed);
        stats
            .compaction_files_in
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        stats.compaction_bytes_in.fetch_add(
            files.iter().map(|f| f.size_bytes as u64).sum(),
            Ordering::Relaxed,
        );
        stats.compaction_bytes_out.fetch_add(
            added.iter().map(|f| f.size_bytes as u64).sum(),
            Ordering::Relaxed,
        );
        tracing::debug!(
            tenant = %tenant, signal = %signal, files_in = files.len(), files_out = out,
            "compacted partition"
        );
        self.swap_files(tenant, signal, &removed, added);
        Ok(out)
    }

    /// Drops files whose rows are all older than their table's retention, as of `now`.
    /// Returns how many files were dropped.
    pub async fn apply_retention(&self, now: i64) -> Result<usize> {
        let config = self.maintenance_config();
        let grace = config.delete_grace.as_nanos() as i64;
        let mut dropped = 0;
        for ((tenant, signal), files) in self.file_lists() {
            let Some(keep) = config.retention.for_table(&tenant, signal) else {
                continue;
            };
            let cutoff = now.saturating_sub(keep.as_nanos().min(i64::MAX as u128) as i64);
            let expired: Vec<FileMeta> = files
                .iter()
                .filter(|f| f.max_time < cutoff)
                .map(|f| f.as_ref().clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            match self
                .catalog()
                .replace_files(&expired, &[], now + grace)
                .await
            {
                Ok(()) => {}
                // Another node dropped some of them first; the next pass sees the rest.
                Err(Error::Conflict(e)) => {
                    tracing::debug!(error = %e, "retention raced another node");
                    continue;
                }
                Err(e) => return Err(e),
            }
            let stats = self.maintenance_stats();
            stats
                .retention_files_deleted
                .fetch_add(expired.len() as u64, Ordering::Relaxed);
            stats.retention_rows_deleted.fetch_add(
                expired.iter().map(|f| f.rows as u64).sum(),
                Ordering::Relaxed,
            );
            stats.retention_bytes_deleted.fetch_add(
                expired.iter().map(|f| f.size_bytes as u64).sum(),
                Ordering::Relaxed,
            );
            tracing::info!(
                tenant = %tenant, signal = %signal, files = expired.len(),
                retention_s = keep.as_secs(), "retention dropped expired files"
            );
            dropped += expired.len();
            self.swap_files(&tenant, signal, &expired, Vec::new());
        }
        Ok(dropped)
    }

    /// Deletes objects whose scheduled deletion is due, and orphans older than
    /// `orphan_age`. Returns how many objects were deleted.
    pub async fn collect_garbage(&self, now: i64) -> Result<usize> {
        let store = self.object_store();
        let stats = self.maintenance_stats();
        let mut deleted = 0;
        loop {
            let due = self.catalog().due_deletes(now, 1000).await?;
            if due.is_empty() {
                break;
            }
            for path in &due {
                match store.delete(&Path::from(path.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.catalog().forget_deletes(&due).await?;
            stats
                .objects_deleted
                .fetch_add(due.len() as u64, Ordering::Relaxed);
            deleted += due.len();
        }

        // Orphans: Parquet objects no catalog row (and no pending deletion) knows.
        let known: HashSet<String> = self
            .catalog()
            .list_files()
            .await?
            .into_iter()
            .map(|f| f.path)
            .chain(self.catalog().pending_deletes().await?)
            .collect();
        let orphan_before =
            now.saturating_sub(self.maintenance_config().orphan_age.as_nanos() as i64);
        let mut listing = store.list(None);
        let mut orphans = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            let path = meta.location.to_string();
            let modified = meta.last_modified.timestamp_nanos_opt().unwrap_or(i64::MAX);
            if path.ends_with(".parquet") && !known.contains(&path) && modified < orphan_before {
                orphans.push(meta.location);
            }
        }
        for location in orphans {
            match store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    tracing::info!(path = %location, "deleted orphaned object");
                    stats.orphans_deleted.fetch_add(1, Ordering::Relaxed);
                    deleted += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;
