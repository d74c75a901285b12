//! A limit on the memory of the whole process (`--memory-limit`), enforced at admission.
//!
//! The write-buffer limit bounds the rows waiting for Parquet; it does not bound what the
//! process needs around them: requests being decoded, flushes being sorted and encoded,
//! compaction, the allocator's own slack. This limit looks at what the kernel charges the
//! process, its resident set, sampled a few times a second by [`crate::Storage::run_memory_sampler`]:
//! at or above the *soft limit* ([`SOFT_LIMIT_PERCENT`] of the limit) exports are refused before
//! their body is read (HTTP 429 / gRPC `UNAVAILABLE`, retryable) and the largest write buffer
//! is flushed. Compaction, which can wait, starts a merge only under half of the limit. The
//! margin between the soft limit and the limit is for what is already running when the soft
//! limit is crossed: the requests admitted, one flush, one merge.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Share of `--memory-limit` at which exports are refused.
pub const SOFT_LIMIT_PERCENT: usize = 80;

/// Share of `--memory-limit` under which a compaction merge may start. A merge holds a row
/// group and a batch of each of its inputs and an output row group for as long as it runs
/// (measured: 350–450 MiB for 32 inputs of a 1 GiB soak), and it can wait: it starts only
/// with that much room left.
pub const COMPACTION_START_PERCENT: usize = 50;

/// The process-wide memory limit and the last resident size seen.
#[derive(Debug, Default)]
pub struct MemoryLimit {
    /// Bytes; 0 = no limit.
    limit: usize,
    resident: AtomicUsize,
    over: AtomicBool,
}

impl MemoryLimit {
    /// A limit of `limit` bytes; 0 means none.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// The limit in bytes; 0 when there is none.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Resident bytes at or above which exports are refused; `usize::MAX` without a limit.
    pub fn soft_limit(&self) -> usize {
        if self.limit == 0 {
            return usize::MAX;
        }
        percent_of(self.limit, SOFT_LIMIT_PERCENT)
    }

    /// Whether a compaction merge may start: no limit, or the last sample under
    /// [`COMPACTION_START_PERCENT`] of it.
    pub fn room_for_compaction(&self) -> bool {
        self.limit == 0 || self.resident() < percent_of(self.limit, COMPACTION_START_PERCENT)
    }

    /// Records a sample of the resident set; returns whether it is at or over the soft limit.
    pub fn observe(&self, resident: usize) -> bool {
        self.resident.store(resident, Ordering::Relaxed);
        let over = resident >= self.soft_limit();
        self.over.store(over, Ordering::Release);
        over
    }

    /// Whether the last sample was at or over the soft limit. One atomic load.
    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// The last resident size observed, in bytes (0 before the first sample).
    pub fn resident(&self) -> usize {
        self.resident.load(Ordering::Relaxed)
    }
}

/// `percent` % of `bytes`, without overflow.
fn percent_of(bytes: usize, percent: usize) -> usize {
    bytes / 100 * percent + bytes % 100 * percent / 100
}

/// The resident set of this process in bytes, from `/proc/self/statm`; `None` where there is
/// no such file (not Linux) or it cannot be read.
pub fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_is_never_over() {
        let m = MemoryLimit::new(0);
        assert!(!m.observe(usize::MAX - 1));
        assert!(!m.is_over());
        assert_eq!(m.soft_limit(), usize::MAX);
    }

    #[test]
    fn over_from_the_soft_limit_on() {
        let m = MemoryLimit::new(1000);
        assert_eq!(m.soft_limit(), 800);
        assert!(!m.observe(799));
        assert!(m.observe(800));
        assert!(m.is_over());
        assert_eq!(m.resident(), 800);
        assert!(!m.observe(10));
        assert!(!m.is_over());
    }

    #[test]
    fn compaction_needs_half_the_limit_free() {
        let m = MemoryLimit::new(1000);
        assert!(m.room_for_compaction(), "nothing sampled yet");
        m.observe(499);
        assert!(m.room_for_compaction());
        m.observe(500);
        assert!(!m.room_for_compaction());
        assert!(!m.is_over(), "ingest is still admitted");
        let none = MemoryLimit::new(0);
        none.observe(usize::MAX - 1);
        assert!(none.room_for_compaction());
    }

    #[test]
    fn soft_limit_does_not_overflow() {
        let m = MemoryLimit::new(usize::MAX);
        assert!(m.soft_limit() < usize::MAX);
        assert!(m.soft_limit() > usize::MAX / 100 * 79);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_its_own_resident_set() {
        let rss = resident_bytes().expect("statm");
        // A test binary with its runtime is resident for at least a megabyte.
        assert!(rss > 1 << 20, "{rss}");
    }
}
