//! What one query may use: time, memory, bytes read from the object store, and how many of a
//! tenant's queries run at once. Each limit is per tenant (`PerTenant<QueryLimits>`), and each
//! fails the query with a message that names the limit; none can take the node down.
//!
//! - **Timeout**: planning and execution together; the execution task is aborted, which
//!   cancels every operator (DataFusion streams stop when dropped).
//! - **Memory**: a DataFusion memory pool of the query's own. Operators that can spill (sorts,
//!   aggregations, joins) spill to disk when it is full; the others, and the result itself
//!   (its batches are reserved in the same pool as they are collected), fail the query.
//! - **Bytes scanned**: the scans read through a [`ScanBudget`], which counts every byte the
//!   object store returns and refuses further reads once the budget is spent.
//! - **Concurrency**: a semaphore per tenant; a query over the limit is refused at once
//!   (retryable), so one tenant's dashboards cannot queue up another's.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use parking_lot::Mutex;
use strata_storage::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of one tenant's queries. Zero means unlimited for the byte limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Longest a query may plan and run.
    pub timeout: Duration,
    /// Memory a query's operators and result may hold (bytes; 0 = unlimited).
    pub max_memory_bytes: usize,
    /// Bytes a query may read from the object store (0 = unlimited).
    pub max_scan_bytes: u64,
    /// Queries of one tenant running at once.
    pub max_concurrent: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            max_memory_bytes: 1024 * 1024 * 1024,
            max_scan_bytes: 0,
            max_concurrent: 16,
        }
    }
}

/// Running-query slots per tenant.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    slots: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

impl Admission {
    /// A slot for one more query of `tenant`, or `None` when it already runs `max`.
    pub(crate) fn try_admit(&self, tenant: &TenantId, max: usize) -> Option<OwnedSemaphorePermit> {
        let semaphore = self
            .slots
            .lock()
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(max.max(1))))
            .clone();
        semaphore.try_acquire_owned().ok()
    }

    /// Tenants that have run a query.
    pub(crate) fn tenants(&self) -> Vec<TenantId> {
        self.slots.lock().keys().cloned().collect()
    }

    /// Queries `tenant` is running now (for usage reports).
    pub(crate) fn running(&self, tenant: &TenantId, max: usize) -> usize {
        self.slots
            .lock()
            .get(tenant)
            .map_or(0, |s| max.max(1).saturating_sub(s.available_permits()))
    }
}

/// An object store that counts the bytes a query reads and refuses reads past its budget.
pub struct ScanBudget {
    inner: Arc<dyn ObjectStore>,
    limit: u64,
    read: AtomicU64,
    exceeded: AtomicBool,
}

impl ScanBudget {
    /// A budget of `limit` bytes (0 = unlimited) over `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, limit: u64) -> Arc<Self> {
        Arc::new(Self {
            inner,
            limit,
            read: AtomicU64::new(0),
            exceeded: AtomicBool::new(false),
        })
    }

    /// Whether a read was refused because the budget was spent.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Counts `bytes` about to be returned; an error once the total passes the limit.
    fn charge(&self, bytes: u64) -> object_store::Result<()> {
        let total = self.read.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.limit > 0 && total > self.limit {
            self.exceeded.store(true, Ordering::Relaxed);
            return Err(object_store::Error::Generic {
                store: "strata",
                source: format!("the query's scan limit of {} bytes is spent", self.limit).into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for ScanBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanBudget")
            .field("limit", &self.limit)
            .field("read", &self.bytes_read())
            .finish()
    }
}

impl fmt::Display for ScanBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScanBudget({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for ScanBudget {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        if !head {
            self.charge(result.range.end - result.range.start)?;
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let data = self.inner.get_ranges(location, ranges).await?;
        self.charge(data.iter().map(|b| b.len() as u64).sum())?;
        Ok(data)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// "1.5 GiB"-style sizes for messages.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn the_scan_budget_counts_reads_and_refuses_past_its_limit() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("f");
        inner
            .put(&path, Bytes::from(vec![7u8; 1000]).into())
            .await
            .unwrap();
        let budget = ScanBudget::new(inner, 600);
        assert_eq!(budget.get_range(&path, 0..400).await.unwrap().len(), 400);
        assert!(!budget.exceeded());
        let err = budget.get_ranges(&path, &[400..500, 600..800]).await;
        assert!(err.is_err(), "700 bytes > 600");
        assert!(budget.exceeded());
        assert_eq!(budget.bytes_read(), 700);
        // Metadata-only requests are free.
        assert_eq!(budget.head(&path).await.unwrap().size, 1000);
        assert_eq!(budget.bytes_read(), 700);

        let unlimited = ScanBudget::new(Arc::new(InMemory::new()), 0);
        unlimited.charge(u64::MAX / 2).unwrap();
        assert!(!unlimited.exceeded());
    }

    #[test]
    fn admission_counts_slots_per_tenant() {
        let admission = Admission::default();
        let a = TenantId::new("a").unwrap();
        let b = TenantId::new("b").unwrap();
        let first = admission.try_admit(&a, 2).unwrap();
        let _second = admission.try_admit(&a, 2).unwrap();
        assert!(admission.try_admit(&a, 2).is_none(), "a runs its maximum");
        assert!(admission.try_admit(&b, 2).is_some(), "b is not affected");
        assert_eq!(admission.running(&a, 2), 2);
        drop(first);
        assert!(admission.try_admit(&a, 2).is_some());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1024 * 1024 * 1024), "1.0 GiB");
    }
}
