//! Giving glibc's free heap back to the OS after a burst (builds on
//! glibc's malloc only).
//!
//! glibc keeps the memory that clients and subscriptions freed in its
//! arenas: only the top of each heap is ever unmapped, and the free chunks
//! of departed clients sit between blocks that are still in use, so the
//! process stays at its peak RSS although nothing leaks. `malloc_trim(0)`
//! discards the whole free pages inside those heaps as well.
//!
//! [`HeapTrim`] watches the free memory held resident: the process's
//! anonymous RSS (`RssAnon`) less what the program has allocated
//! (`mallinfo2`). It trims when that grew by [`TRIM_AFTER_GROWTH`] since
//! the last trim (or since the lowest level seen after it), so a burst
//! that came and went between two ticks is caught, and a steady daemon,
//! whose free memory stays level, never pays for a trim. The housekeeping
//! thread asks at most once a [`super::TICK`]. Trimming walks every arena
//! under its lock: it runs on that plain thread, never on an async worker
//! and never under the broker lock (figures in docs/reliability.md).

use std::time::Instant;

use super::glibc;

/// glibc's fixed mmap threshold: blocks this large or larger (large frame
/// buffers, a big subscription index's tables) get a mapping of their own
/// and go back to the OS when freed. Frame buffers are pooled
/// ([`psrt_proto::framepool`]), so large messages do not map and unmap one
/// per frame.
pub const MMAP_THRESHOLD: i32 = 1024 * 1024;
/// glibc's fixed trim threshold: the free top of a heap beyond this goes
/// back to the OS as soon as it forms (`malloc_trim` does not shrink the
/// heaps of threads other than the main one).
pub const TRIM_THRESHOLD: i32 = 1024 * 1024;

/// Growth of the free memory held resident, since the last trim, that is
/// worth a trim.
pub const TRIM_AFTER_GROWTH: usize = 4 * 1024 * 1024;

/// Decides when to trim, tick after tick.
#[derive(Debug)]
pub struct HeapTrim {
    /// Free memory held resident just after the last trim, or the lowest
    /// level seen since (when freed memory was reused).
    settled: usize,
}

impl HeapTrim {
    /// Fixes glibc's thresholds ([`MMAP_THRESHOLD`], [`TRIM_THRESHOLD`])
    /// and starts from the free memory held resident now.
    pub fn new() -> Self {
        if !glibc::set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD) {
            tracing::warn!("glibc refused psrtd's malloc thresholds");
        }
        HeapTrim {
            settled: held_free().unwrap_or(0),
        }
    }

    /// One housekeeping tick: trims when the free memory held resident grew
    /// by [`TRIM_AFTER_GROWTH`] since the last trim.
    pub fn tick(&mut self) {
        let Some(held) = held_free() else {
            return;
        };
        if !self.observe(held) {
            return;
        }
        let started = Instant::now();
        let released = glibc::trim();
        let took = started.elapsed();
        let after = held_free().unwrap_or(held);
        self.settled = after;
        tracing::debug!(
            held_before = held,
            held_after = after,
            released,
            took_us = took.as_micros(),
            "returned the free heap to the OS (malloc_trim)"
        );
    }

    /// Records `held` bytes of free memory held resident; true when they
    /// grew enough since the last trim to trim now.
    fn observe(&mut self, held: usize) -> bool {
        self.settled = self.settled.min(held);
        held - self.settled >= TRIM_AFTER_GROWTH
    }
}

impl Default for HeapTrim {
    fn default() -> Self {
        Self::new()
    }
}

/// Free memory held resident: anonymous RSS less the bytes allocated from
/// glibc (what remains is glibc's free chunks, plus thread stacks and the
/// like, which stay level). `None` without procfs.
fn held_free() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(rss_anon(&status)?.saturating_sub(glibc::allocated()))
}

/// `RssAnon` of a `/proc/PID/status` text, in bytes.
fn rss_anon(status: &str) -> Option<usize> {
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn trims_when_the_free_memory_held_grew() {
        let mut heap = HeapTrim { settled: 10 * MIB };
        assert!(!heap.observe(10 * MIB), "level");
        assert!(!heap.observe(13 * MIB), "grew by less than the threshold");
        assert!(heap.observe(40 * MIB), "a burst left");
        heap.settled = 11 * MIB;
        assert!(!heap.observe(11 * MIB), "level after the trim");
        assert!(!heap.observe(2 * MIB), "freed memory reused");
        assert!(heap.observe(6 * MIB), "grew by 4 MiB from the lowest level");
    }

    #[test]
    fn rss_anon_is_read_in_bytes() {
        let status = "Name:\tpsrtd\nVmRSS:\t   9000 kB\nRssAnon:\t    2048 kB\nRssFile:\t1 kB\n";
        assert_eq!(rss_anon(status), Some(2 * MIB));
        assert_eq!(rss_anon("VmRSS:\t9000 kB\n"), None);
        assert!(rss_anon(&std::fs::read_to_string("/proc/self/status").unwrap()).is_some());
    }

    /// The daemon's pattern: many small blocks, most freed, a few kept
    /// alive between them. glibc keeps the freed pages until a trim gives
    /// them back; the trim of this ~100 MiB heap stays short.
    #[test]
    fn a_fragmented_free_heap_goes_back_to_the_os() {
        const BLOCKS: usize = 400_000;
        const KEPT_EVERY: usize = 64;
        let blocks: Vec<Box<[u8; 240]>> = (0..BLOCKS).map(|i| Box::new([i as u8; 240])).collect();
        let allocated_full = glibc::allocated();
        let kept: Vec<_> = blocks
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % KEPT_EVERY == 0)
            .map(|(_, block)| block)
            .collect();
        let freed = allocated_full.saturating_sub(glibc::allocated());
        let counted = Instant::now();
        let held = held_free().expect("procfs");
        let count_took = counted.elapsed();
        let started = Instant::now();
        glibc::trim();
        let trim_took = started.elapsed();
        let after = held_free().expect("procfs");
        println!(
            "freed {freed}; free memory held {held} before the trim, {after} after; \
             RssAnon and mallinfo2 {count_took:?}, malloc_trim {trim_took:?}"
        );
        assert!(freed > 80 * MIB, "freed only {freed} bytes");
        assert!(
            held.saturating_sub(after) > freed / 2,
            "the trim gave back {} of {freed} freed bytes",
            held.saturating_sub(after)
        );
        assert!(
            trim_took < Duration::from_secs(1),
            "trim took {trim_took:?}"
        );
        black_box(kept);
    }
}
