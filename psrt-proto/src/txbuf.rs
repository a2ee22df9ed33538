//! Outgoing bytes of one socket as a queue of shared chunks, written by the
//! driver with vectored I/O.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Bytes waiting to be written to one socket.
///
/// Pushed messages enter as the shared [`Bytes`] of the published message
/// (no copy per subscriber): the publisher's frame itself, or a head and
/// the payload (see [`crate::broker::Message`]); small ones copied
/// together. The driver gathers them into one `write_vectored` call with
/// [`TxBuf::io_slices`] and reports how much the socket took with
/// [`TxBuf::advance`].
#[derive(Debug, Default)]
pub struct TxBuf {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl TxBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a chunk; empty chunks are skipped.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Total bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of chunks waiting.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Fills `dst` with slices of the first chunks, returning how many were
    /// filled.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    /// The chunks waiting, front first, for drivers that hand shared
    /// buffers to the kernel (io_uring) instead of lending slices.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        self.chunks.iter()
    }

    /// Drops the first `n` bytes, which the socket has taken.
    pub fn advance(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Removes and returns every chunk, for drivers that hand buffers over
    /// (io_uring) instead of borrowing them.
    pub fn drain(&mut self) -> impl Iterator<Item = Bytes> + '_ {
        self.len = 0;
        self.chunks.drain(..)
    }

    /// Copies everything into one vector (tests and simulators).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_splits_chunks_and_tracks_length() {
        let mut tx = TxBuf::new();
        tx.push(Bytes::from_static(b"abc"));
        tx.push(Bytes::new());
        tx.push(Bytes::from_static(b"defg"));
        assert_eq!(tx.len(), 7);
        assert_eq!(tx.chunk_count(), 2);
        tx.advance(4);
        assert_eq!(tx.to_vec(), b"efg");
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(tx.io_slices(&mut slices), 1);
        assert_eq!(&*slices[0], b"efg");
        tx.advance(100);
        assert!(tx.is_empty());
        assert_eq!(tx.chunk_count(), 0);
    }
}
