//! Memory housekeeping: once large messages stop, the input buffers pooled
//! for them ([`psrt_proto::framepool`]) go back to the allocator.
//!
//! A thread wakes every [`TICK`] and empties the pool when it went unused
//! for a whole tick, so a burst of large frames leaves nothing behind
//! within two ticks, while a steady flow keeps its buffers. (With
//! jemalloc, the allocator's background thread then returns the pages to
//! the OS; glibc returns large blocks when they are freed.)

use std::time::Duration;

use psrt_proto::framepool::FramePool;

/// How often the pool is checked.
pub const TICK: Duration = Duration::from_secs(5);

/// Starts the housekeeping thread (detached: it only drops buffers, so
/// the process may end at any time). Call after forking to the background.
pub fn start_housekeeping() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("psrtd-memory".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TICK);
                let dropped = FramePool::global().release_idle();
                if dropped > 0 {
                    tracing::debug!(dropped, "released idle frame buffers");
                }
            }
        })
        .map(drop)
}
