//! Memory housekeeping: memory that a burst of clients, subscriptions or
//! large messages took goes back to the OS once the burst is over, with no
//! traffic needed to trigger it.
//!
//! A thread wakes every [`TICK`] and:
//!
//! * empties the pool of input buffers kept for large frames
//!   ([`psrt_proto::framepool`]) when it went unused for a whole tick, so a
//!   burst of large frames leaves nothing behind within two ticks, while a
//!   steady flow keeps its buffers;
//! * in builds on glibc's malloc (Linux, no `jemalloc` feature), asks glibc
//!   to return the free memory of its arenas to the OS (`malloc_trim`) when
//!   the free memory it holds resident grew by
//!   [`heap_trim::TRIM_AFTER_GROWTH`] or more since the last trim
//!   ([`heap_trim`]). glibc on its own only gives back
//!   the top of each heap: the memory of thousands of departed clients,
//!   freed between long-lived blocks, would stay resident.
//!
//! * in builds on jemalloc (the default feature), asks jemalloc to purge
//!   the freed pages whose decay time (10 s) has passed ([`jemalloc`]):
//!   its own background thread wakes for that only when it judges enough
//!   pages pending, so the memory of departed clients came back in steps
//!   up to 24 s late.
//!
//! Everything runs on this one plain thread: never on an async worker and
//! never under the broker lock, so a trim, which walks every arena, does
//! not stall serving.

use std::time::Duration;

use psrt_proto::framepool::FramePool;

#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
mod glibc;
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
pub mod heap_trim;
#[cfg(feature = "jemalloc")]
mod jemalloc;

/// How often the pool and the heap are checked.
pub const TICK: Duration = Duration::from_secs(5);

/// Starts the housekeeping thread (detached: it only drops buffers and
/// returns free pages, so the process may end at any time). Call after
/// forking to the background.
pub fn start_housekeeping() -> std::io::Result<()> {
    // Before any runtime thread allocates: glibc's thresholds are fixed here.
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    let mut heap = heap_trim::HeapTrim::new();
    std::thread::Builder::new()
        .name("psrtd-memory".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                let dropped = FramePool::global().release_idle();
                if dropped > 0 {
                    tracing::debug!(dropped, "released idle frame buffers");
                }
                #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
                heap.tick();
                #[cfg(feature = "jemalloc")]
                if let Err(error) = jemalloc::decay() {
                    tracing::debug!(error, "jemalloc refused the decay call");
                }
            }
        })
        .map(drop)
}
