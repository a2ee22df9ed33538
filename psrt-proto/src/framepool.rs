//! Reusable input buffers for large frames.
//!
//! A large PUBLISH is read into a buffer sized for the whole frame, and its
//! payload leaves that buffer as a shared [`Bytes`] (no copy) that lives
//! until every subscriber's socket has taken it. Allocating that buffer
//! afresh for every frame makes most allocators map new pages and unmap
//! them after delivery (glibc maps anything above its threshold), so the
//! daemon would spend its time faulting and zeroing pages.
//!
//! The pool keeps the emptied input buffers of large frames. A buffer is
//! handed out again once every payload cut from it has been dropped
//! ([`BytesMut::try_reclaim`] succeeds only for the last handle), so its
//! pages are reused, already mapped, whatever the allocator. The pool is
//! bounded ([`MAX_POOLED`] buffers) and emptied by
//! [`FramePool::release_idle`], which the daemon calls on a timer: a burst
//! of large messages leaves no memory behind once it is over.
//!
//! [`Bytes`]: bytes::Bytes

use std::sync::{Mutex, PoisonError};

use bytes::BytesMut;

/// Frames at least this large are read into pooled buffers; smaller ones
/// use the connection's ordinary input buffer.
pub const POOLED_FRAME: usize = 64 * 1024;
/// Most buffers kept for reuse: enough for the frames in flight of a few
/// pipelining publishers (and their payloads in subscriber queues).
pub const MAX_POOLED: usize = 64;

/// Input buffers of large frames, kept for reuse.
#[derive(Debug)]
pub struct FramePool {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Emptied buffers; their payloads may still be in flight.
    idle: Vec<BytesMut>,
    /// Whether a buffer was handed out or given back since the last
    /// [`FramePool::release_idle`].
    used: bool,
}

/// The pool every connection of the process shares.
#[cfg(not(test))]
static GLOBAL: FramePool = FramePool::new();

#[cfg(test)]
thread_local! {
    /// Unit tests run in parallel threads: each gets its own pool, so one
    /// test's buffers never show up in another's assertions.
    static GLOBAL: &'static FramePool = Box::leak(Box::new(FramePool::new()));
}

impl Default for FramePool {
    fn default() -> Self {
        Self::new()
    }
}

impl FramePool {
    /// An empty pool.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                idle: Vec::new(),
                used: false,
            }),
        }
    }

    /// The pool of the process.
    #[cfg(not(test))]
    pub fn global() -> &'static FramePool {
        &GLOBAL
    }

    /// The pool of this test thread.
    #[cfg(test)]
    pub fn global() -> &'static FramePool {
        GLOBAL.with(|pool| *pool)
    }

    /// An empty buffer with room for `size` bytes: a pooled one whose
    /// payloads have all been delivered when there is one, else a new one.
    pub fn take(&self, size: usize) -> Vec<u8> {
        self.take_reusable(size)
            .unwrap_or_else(|| Vec::with_capacity(size))
    }

    /// A pooled buffer with room for `size` bytes whose payloads have all
    /// been delivered, if there is one: it costs no new memory.
    ///
    /// Handed out as a `Vec` (the same memory, no copy) so that a driver
    /// can read into its spare capacity without `unsafe`.
    pub fn take_reusable(&self, size: usize) -> Option<Vec<u8>> {
        let buf = {
            let mut state = self.lock();
            state.used = true;
            let at = state
                .idle
                .iter_mut()
                .rposition(|buf| buf.try_reclaim(size))?;
            state.idle.swap_remove(at)
        };
        // `try_reclaim` also succeeds on a buffer still shared with a
        // payload when its own spare room suffices; such a buffer cannot
        // become a `Vec` (it would come back empty) and is let go.
        let buf = Vec::from(buf);
        (buf.capacity() >= size).then_some(buf)
    }

    /// Keeps `buf`, a buffer from [`FramePool::take`] (emptied; what is
    /// left of it after its frames were cut off, as `BytesMut`), for reuse
    /// when the pool has room.
    pub fn give(&self, mut buf: BytesMut) {
        buf.clear();
        let mut state = self.lock();
        state.used = true;
        if state.idle.len() < MAX_POOLED {
            state.idle.push(buf);
        }
    }

    /// Drops every pooled buffer when none was used since the previous
    /// call, so memory goes back to the allocator once large frames stop.
    /// Returns how many buffers were dropped.
    pub fn release_idle(&self) -> usize {
        let mut state = self.lock();
        if std::mem::take(&mut state.used) {
            return 0;
        }
        let dropped = state.idle.len();
        state.idle = Vec::new();
        dropped
    }

    /// Buffers kept.
    pub fn len(&self) -> usize {
        self.lock().idle.len()
    }

    /// Whether no buffer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_once_its_payloads_are_gone() {
        let pool = FramePool::new();
        let mut buf = pool.take(100_000);
        assert!(buf.capacity() >= 100_000);
        buf.extend_from_slice(&[7; 100_000]);
        let at = buf.as_ptr();
        let mut buf = BytesMut::from(bytes::Bytes::from(buf));
        assert_eq!(buf.as_ptr(), at, "no copy into the BytesMut");
        let payload = buf.split_to(90_000).freeze();
        pool.give(buf);
        assert_eq!(pool.len(), 1);
        assert!(pool.take_reusable(100_000).is_none(), "a payload in flight");
        let fresh = pool.take(100_000);
        assert_ne!(fresh.as_ptr(), at, "still shared with a payload in flight");
        assert_eq!(pool.len(), 1);
        drop(payload);
        let reused = pool.take(100_000);
        assert_eq!(reused.as_ptr(), at, "the same memory, reused");
        assert!(reused.is_empty() && reused.capacity() >= 100_000);
        assert!(pool.is_empty());
        drop(fresh);
    }

    #[test]
    fn the_pool_is_bounded() {
        let pool = FramePool::new();
        for _ in 0..MAX_POOLED + 5 {
            pool.give(BytesMut::with_capacity(POOLED_FRAME));
        }
        assert_eq!(pool.len(), MAX_POOLED);
    }

    #[test]
    fn idle_buffers_are_released_after_a_quiet_period() {
        let pool = FramePool::new();
        pool.give(BytesMut::with_capacity(POOLED_FRAME));
        assert_eq!(pool.release_idle(), 0, "used since the last tick");
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.release_idle(), 1, "quiet for a whole tick");
        assert!(pool.is_empty());
    }
}
