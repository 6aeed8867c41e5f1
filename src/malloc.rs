//! How the long-running processes (server, agent) use glibc's allocator, so that memory freed
//! after a burst of work (50 pods starting, a large list) goes back to the system instead of
//! staying in the allocator's free lists.
//!
//! glibc gives every thread that contends for the heap an arena of its own (up to 8 per core) and
//! returns an arena's free pages only from its top; a device's resident memory after a burst then
//! stays near its peak. Two arenas serve our few threads well, and a trim every ten seconds
//! (`main`'s daemon runtime) returns every whole free page (`malloc_trim` releases pages inside the
//! heaps too).
//! Other C libraries (musl) return memory by themselves: there these are no-ops.

/// Caps the number of malloc arenas; call before the runtime's threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns free heap memory to the system.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn freed_memory_goes_back_to_the_system() {
        super::limit_arenas();
        // Many small blocks, most freed: the freed ones sit below live ones, so glibc cannot
        // shrink the heap's top by itself; the trim must return their pages.
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 1000]).collect();
        let keep: Vec<Vec<u8>> = blocks.drain(39_000..).collect();
        drop(blocks);
        let before = rss_kb();
        super::release_free_memory();
        let after = rss_kb();
        assert!(keep.iter().all(|b| b.len() == 1000));
        #[cfg(target_env = "gnu")]
        assert!(after + 10_000 < before, "RSS {before} kB before the trim, {after} kB after");
        let _ = (before, after);
    }

    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}
