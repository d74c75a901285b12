//! A read-through cache in front of a remote object store.
//!
//! Parquet files are immutable (every file has a fresh UUIDv7 name), so byte ranges of them
//! can be cached without invalidation. Ranged reads are served from fixed-size blocks kept in
//! an LRU of bounded total size; object metadata (size, for clamping the last block) is
//! cached too. Runs of missing blocks are fetched with one ranged request each. Everything
//! else (writes, lists, conditional reads) goes straight to the inner store.
//!
//! Together with DataFusion's Parquet metadata cache (footers) this makes a warm query on S3
//! or GCS read from memory what it would read from local disk. On a local directory it saves
//! what a read from the page cache costs there: one blocking task, an `open` and a `pread`
//! per range, which a lookup that reads a bloom filter per row group pays a hundred times.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions,
};
use parking_lot::Mutex;

/// Bytes per cached block of a remote store: a miss is one request, so blocks are large.
pub const BLOCK_BYTES: u64 = 1024 * 1024;

/// Bytes per cached block of a local directory: a miss is one `pread`, and a small block
/// keeps a first read of a bloom filter from reading a mebibyte around it.
pub const LOCAL_BLOCK_BYTES: u64 = 64 * 1024;

/// Marks a read (in [`GetOptions::extensions`]) that must not enter the cache: compaction
/// reads each of its inputs once, just before they are deleted.
#[derive(Debug, Clone, Copy)]
pub struct BypassCache;

/// Hits, misses and evictions, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub evictions: AtomicU64,
    /// Bytes currently held.
    pub bytes: AtomicU64,
}

type BlockKey = (Path, u64);

#[derive(Default)]
struct Lru {
    blocks: HashMap<BlockKey, (Bytes, u64)>,
    /// Use order: tick → key.
    order: BTreeMap<u64, BlockKey>,
    tick: u64,
    bytes: u64,
}

impl Lru {
    fn get(&mut self, key: &BlockKey) -> Option<Bytes> {
        let (data, tick) = self.blocks.get_mut(key)?;
        self.order.remove(tick);
        self.tick += 1;
        *tick = self.tick;
        self.order.insert(self.tick, key.clone());
        Some(data.clone())
    }

    fn insert(&mut self, key: BlockKey, data: Bytes, capacity: u64) -> u64 {
        let mut evicted = 0;
        if let Some((old, tick)) = self.blocks.remove(&key) {
            self.order.remove(&tick);
            self.bytes -= old.len() as u64;
        }
        while self.bytes + data.len() as u64 > capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((old, _)) = self.blocks.remove(&oldest) {
                self.bytes -= old.len() as u64;
                evicted += 1;
            }
        }
        if data.len() as u64 <= capacity {
            self.tick += 1;
            self.bytes += data.len() as u64;
            self.order.insert(self.tick, key.clone());
            self.blocks.insert(key, (data, self.tick));
        }
        evicted
    }
}

/// An object store with a block cache for ranged reads.
pub struct CachedStore {
    inner: Arc<dyn ObjectStore>,
    capacity: u64,
    block_bytes: u64,
    lru: Mutex<Lru>,
    metas: Mutex<HashMap<Path, ObjectMeta>>,
    stats: Arc<CacheStats>,
}

impl CachedStore {
    /// Caches up to `capacity` bytes of `inner`'s objects in blocks of [`BLOCK_BYTES`].
    pub fn new(inner: Arc<dyn ObjectStore>, capacity: u64) -> Self {
        Self::with_block_bytes(inner, capacity, BLOCK_BYTES)
    }

    /// Caches up to `capacity` bytes of `inner`'s objects in blocks of `block_bytes`.
    pub fn with_block_bytes(inner: Arc<dyn ObjectStore>, capacity: u64, block_bytes: u64) -> Self {
        Self {
            inner,
            capacity,
            block_bytes: block_bytes.max(1),
            lru: Mutex::new(Lru::default()),
            metas: Mutex::new(HashMap::new()),
            stats: Arc::new(CacheStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    async fn meta(&self, location: &Path) -> object_store::Result<ObjectMeta> {
        if let Some(meta) = self.metas.lock().get(location) {
            return Ok(meta.clone());
        }
        let meta = self.inner.head(location).await?;
        self.metas.lock().insert(location.clone(), meta.clone());
        Ok(meta)
    }

    /// Reads `range` (within the object) through the block cache.
    async fn read_range(
        &self,
        location: &Path,
        range: Range<u64>,
        size: u64,
    ) -> object_store::Result<Bytes> {
        let block_len = self.block_bytes;
        let first = range.start / block_len;
        let last = (range.end - 1) / block_len;
        let mut blocks: Vec<Option<Bytes>> = {
            let mut lru = self.lru.lock();
            (first..=last)
                .map(|b| lru.get(&(location.clone(), b)))
                .collect()
        };
        // Fetch each run of missing blocks with one request.
        let mut i = 0;
        while i < blocks.len() {
            if blocks[i].is_some() {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                i += 1;
                continue;
            }
            let run_start = i;
            while i < blocks.len() && blocks[i].is_none() {
                i += 1;
            }
            let start = (first + run_start as u64) * block_len;
            let end = ((first + i as u64) * block_len).min(size);
            let data = self.inner.get_range(location, start..end).await?;
            self.stats
                .misses
                .fetch_add((i - run_start) as u64, Ordering::Relaxed);
            self.stats
                .bytes_fetched
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            let mut lru = self.lru.lock();
            for (k, slot) in blocks[run_start..i].iter_mut().enumerate() {
                let from = (k as u64 * block_len) as usize;
                let to = ((k as u64 + 1) * block_len).min(data.len() as u64) as usize;
                let block = data.slice(from..to);
                let evicted = lru.insert(
                    (location.clone(), first + (run_start + k) as u64),
                    block.clone(),
                    self.capacity,
                );
                self.stats.evictions.fetch_add(evicted, Ordering::Relaxed);
                *slot = Some(block);
            }
            self.stats.bytes.store(lru.bytes, Ordering::Relaxed);
        }
        // Assemble the requested range from its blocks.
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for (k, block) in blocks.into_iter().enumerate() {
            let block = block.expect("every block is filled");
            let block_start = (first + k as u64) * block_len;
            let from = range.start.saturating_sub(block_start) as usize;
            let to = ((range.end - block_start) as usize).min(block.len());
            out.extend_from_slice(&block[from..to]);
        }
        Ok(out.freeze())
    }
}

impl fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("capacity", &self.capacity)
            .field("block_bytes", &self.block_bytes)
            .finish()
    }
}

impl fmt::Display for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cached({})", self.inner)
    }
}

fn plain_range_read(options: &GetOptions) -> bool {
    options.range.is_some()
        && !options.head
        && options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
}

#[async_trait]
impl ObjectStore for CachedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.metas.lock().remove(location);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.metas.lock().remove(location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if !plain_range_read(&options)
            || self.capacity == 0
            || options.extensions.get::<BypassCache>().is_some()
        {
            return self.inner.get_opts(location, options).await;
        }
        let meta = self.meta(location).await?;
        let size = meta.size;
        let range = match options.range.as_ref().expect("checked") {
            GetRange::Bounded(r) => r.start..r.end.min(size),
            GetRange::Offset(o) => *o..size,
            GetRange::Suffix(n) => size.saturating_sub(*n)..size,
        };
        if range.start >= range.end {
            // Let the inner store produce its own error for an unsatisfiable range.
            return self.inner.get_opts(location, options).await;
        }
        let data = self.read_range(location, range.clone(), size).await?;
        let stream: BoxStream<'static, object_store::Result<Bytes>> =
            Box::pin(futures::stream::once(async move { Ok(data) }));
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta,
            range,
            attributes: Default::default(),
        })
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
        self.metas.lock().remove(to);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.metas.lock().remove(to);
        self.metas.lock().remove(from);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    async fn store(capacity: u64) -> (CachedStore, Bytes) {
        store_with(3 * BLOCK_BYTES + 100, capacity, BLOCK_BYTES).await
    }

    /// A cache over an object `f` of `len` bytes.
    async fn store_with(len: u64, capacity: u64, block_bytes: u64) -> (CachedStore, Bytes) {
        let inner = Arc::new(InMemory::new());
        let data: Bytes = (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
        inner
            .put(&Path::from("f"), data.clone().into())
            .await
            .unwrap();
        (
            CachedStore::with_block_bytes(inner, capacity, block_bytes),
            data,
        )
    }

    #[tokio::test]
    async fn ranges_come_back_exact_and_the_second_read_is_a_hit() {
        let (cache, data) = store(64 * BLOCK_BYTES).await;
        let path = Path::from("f");
        for range in [
            0..10,
            5..BLOCK_BYTES + 7,
            BLOCK_BYTES - 1..3 * BLOCK_BYTES + 100,
            3 * BLOCK_BYTES..3 * BLOCK_BYTES + 100,
        ] {
            let got = cache.get_range(&path, range.clone()).await.unwrap();
            assert_eq!(
                got,
                data.slice(range.start as usize..range.end as usize),
                "{range:?}"
            );
        }
        let misses = cache.stats.misses.load(Ordering::Relaxed);
        assert_eq!(misses, 4, "each block fetched once");
        let again = cache
            .get_range(&path, 0..3 * BLOCK_BYTES + 100)
            .await
            .unwrap();
        assert_eq!(again, data);
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), misses);
        // Suffix and offset reads (Parquet footers) work too.
        let opts = GetOptions {
            range: Some(GetRange::Suffix(8)),
            ..Default::default()
        };
        let tail = cache
            .get_opts(&path, opts)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(tail, data.slice(data.len() - 8..));
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let (cache, data) = store(2 * BLOCK_BYTES).await;
        let path = Path::from("f");
        let all = cache.get_range(&path, 0..data.len() as u64).await.unwrap();
        assert_eq!(all, data);
        assert!(cache.stats.bytes.load(Ordering::Relaxed) <= 2 * BLOCK_BYTES);
        assert!(cache.stats.evictions.load(Ordering::Relaxed) >= 2);
    }

    #[tokio::test]
    async fn whole_object_reads_and_writes_pass_through() {
        let (cache, data) = store(64 * BLOCK_BYTES).await;
        let path = Path::from("f");
        assert_eq!(cache.get(&path).await.unwrap().bytes().await.unwrap(), data);
        cache
            .put(&Path::from("g"), Bytes::from_static(b"x").into())
            .await
            .unwrap();
        assert_eq!(
            cache.get_range(&Path::from("g"), 0..1).await.unwrap(),
            Bytes::from_static(b"x")
        );
        assert!(cache.get_range(&Path::from("missing"), 0..1).await.is_err());
    }

    #[tokio::test]
    async fn a_read_marked_bypass_is_served_but_not_kept() {
        let (cache, data) = store(64 * BLOCK_BYTES).await;
        let path = Path::from("f");
        let mut opts = GetOptions::new().with_range(Some(10..BLOCK_BYTES + 10));
        opts.extensions.insert(BypassCache);
        let got = cache.get_opts(&path, opts).await.unwrap().bytes().await;
        assert_eq!(got.unwrap(), data.slice(10..BLOCK_BYTES as usize + 10));
        assert_eq!(cache.stats.bytes.load(Ordering::Relaxed), 0);
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), 0);
        // The same range read normally is a miss, then kept.
        cache.get_range(&path, 10..BLOCK_BYTES + 10).await.unwrap();
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), 2);
        assert_eq!(cache.stats.bytes.load(Ordering::Relaxed), 2 * BLOCK_BYTES);
    }

    #[tokio::test]
    async fn blocks_can_be_small() {
        let (cache, data) = store_with(1000, 1 << 20, 100).await;
        let got = cache.get_range(&Path::from("f"), 150..420).await.unwrap();
        assert_eq!(got, data.slice(150..420));
        // Blocks 1..=4 were fetched, 100 bytes each, and nothing around them.
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), 4);
        assert_eq!(cache.stats.bytes_fetched.load(Ordering::Relaxed), 400);
        let again = cache.get_range(&Path::from("f"), 100..500).await.unwrap();
        assert_eq!(again, data.slice(100..500));
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn every_store_but_memory_reads_through_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let local = format!("file://{}", dir.path().display());
        assert!(
            crate::objects::open_store(&local, 1 << 20)
                .unwrap()
                .cache
                .is_some()
        );
        assert!(
            crate::objects::open_store(&local, 0)
                .unwrap()
                .cache
                .is_none()
        );
        assert!(
            crate::objects::open_store("memory://", 1 << 20)
                .unwrap()
                .cache
                .is_none()
        );
    }
}
