//! The few synchronous socket calls the tasks make once the reactor says a
//! socket is ready, for TCP and Unix streams alike.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;

use psrt_proto::conn::reserve_input;
use psrt_proto::{BytesMut, TxBuf};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks gathered into one `writev`.
const MAX_IOV: usize = 64;

thread_local! {
    /// One read buffer per thread instead of one per connection: a read
    /// lands here and only the bytes received are appended to the
    /// connection's buffer, so an idle connection holds no read buffer.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A connected stream socket the server serves.
pub(crate) trait Socket: Send + Sync + 'static {
    /// One non-blocking `read`.
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// One non-blocking `writev`.
    fn write_some(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Sends end-of-stream to the peer; errors (peer already gone) do not
    /// matter since the socket is closed right after.
    fn shutdown_write(&self);
}

impl Socket for TcpStream {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn write_some(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Socket for UnixStream {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn write_some(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// Reads once from `socket` and appends what came to `input`; `Ok(0)` is
/// end of stream.
pub(crate) fn read_append<S: Socket>(socket: &S, input: &mut BytesMut) -> io::Result<usize> {
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.resize(READ_CHUNK, 0);
        let n = socket.read_some(scratch)?;
        let read = scratch.get(..n).ok_or(io::ErrorKind::InvalidData)?;
        reserve_input(input, read.len());
        input.extend_from_slice(read);
        Ok(n)
    })
}

/// Writes as much of `tx` as the socket takes in one `writev`, without
/// consuming it (the caller `advance`s by the returned count).
pub(crate) fn write_tx<S: Socket>(socket: &S, tx: &TxBuf) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_IOV];
    let count = tx.io_slices(&mut slices);
    let n = socket.write_some(slices.get(..count).unwrap_or_default())?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}
