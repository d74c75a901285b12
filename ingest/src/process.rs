//! Process-wide settings the ingest path's speed depends on.

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas,
/// and the kernel then zeroes a whole 2 MiB page on the first touch of any byte of it; buffers
/// that grow and are freed by the thousand each second (request bodies, Arrow builders, WAL
/// records) paid up to a third of ingest CPU in `clear_page_erms` (docs/BENCHMARKS.md,
/// "Round 2: what moved and why"). Call it first thing in `main`; the kernel checks the flag
/// at each fault, so it covers mappings made earlier too.
pub fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
