//! A gathered write under io_uring: several queued chunks handed to the
//! kernel in one vectored operation, each as the shared `Bytes` itself.
//!
//! monoio's vectored writes take an owned [`IoVecBuf`], and the ones it
//! provides hold either `Vec<u8>`s (a copy of every chunk) or bare iovecs
//! (nothing would keep the bytes alive). [`Gather`] holds the chunks beside
//! the iovecs that point into them, so the kernel reads the bytes in place
//! and they live as long as the runtime holds the operation's buffer,
//! which monoio keeps until the kernel is done with it, even when the
//! operation's future is dropped first.
//!
//! Without it, a subscriber of 64 KiB messages got one send per message:
//! one wake-up of its reader and one round of TCP transmits per 64 KiB,
//! where the readiness runtimes gather several messages in one `sendmsg`.
#![allow(unsafe_code)]

use std::ffi::c_void;

use bytes::Bytes;
use monoio::buf::IoVecBuf;

/// Chunks to write in order with one vectored operation.
pub(crate) struct Gather {
    /// One per chunk, pointing into it.
    iovecs: Vec<libc::iovec>,
    /// What the iovecs point into; held, never read.
    _chunks: Vec<Bytes>,
}

impl Gather {
    /// Gathers `chunks`, to be written front first.
    pub(crate) fn new(chunks: Vec<Bytes>) -> Self {
        let iovecs = chunks
            .iter()
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_ptr().cast_mut().cast::<c_void>(),
                iov_len: chunk.len(),
            })
            .collect();
        Self {
            iovecs,
            _chunks: chunks,
        }
    }
}

// SAFETY: every iovec points at the bytes of the chunk of the same index
// with that chunk's length. A `Bytes` never moves or changes the bytes it
// refers to (heap or static memory, freed only when its last handle
// goes), and `Gather` holds a handle to each, so the iovecs stay valid
// for as long as the value lives. Neither vector is changed after `new`,
// so the pointer to the iovecs and their count stay the same while the
// runtime owns the value.
unsafe impl IoVecBuf for Gather {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iovecs.as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        self.iovecs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovecs_point_into_the_chunks_in_order() {
        let chunks = vec![
            Bytes::from_static(b"head"),
            Bytes::from(vec![7u8; 1000]),
            Bytes::from_static(b"tail"),
        ];
        let gather = Gather::new(chunks.clone());
        assert_eq!(gather.read_iovec_len(), 3);
        for (iovec, chunk) in gather.iovecs.iter().zip(&chunks) {
            assert_eq!(iovec.iov_base.cast_const().cast::<u8>(), chunk.as_ptr());
            assert_eq!(iovec.iov_len, chunk.len());
        }
    }
}
