//! Socket plumbing shared by the client tasks: opening a TCP or Unix
//! stream and the reactor-driven reads and vectored writes on it.
//!
//! Both directions work through `&Stream`, so one task reads and writes
//! the same socket concurrently without splitting it. Every operation is
//! cancel-safe: the non-blocking syscall runs inside `read_with` /
//! `write_with` only once the reactor reports readiness, so dropping a
//! pending operation loses no bytes.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use psrt_proto::client::{MAX_IOV, READ_CHUNK, ReadOutcome, Target};
use psrt_proto::{BytesMut, TxBuf};
use smol::{Async, Timer};

/// A connected TCP or Unix stream.
#[derive(Debug)]
pub(super) enum Stream {
    /// TCP, Nagle off.
    Tcp(Async<TcpStream>),
    /// A Unix socket.
    Unix(Async<UnixStream>),
}

impl Stream {
    /// Connects to `target`; a host name is resolved on smol's blocking
    /// pool and its addresses are tried in turn.
    pub(super) async fn open(target: &Target) -> io::Result<Stream> {
        match target {
            Target::Tcp { host, port } => Ok(Stream::Tcp(connect_tcp(host, *port).await?)),
            Target::Unix(path) => Ok(Stream::Unix(Async::<UnixStream>::connect(path).await?)),
        }
    }

    /// Reads what the socket has, appending it to `buf`.
    pub(super) async fn read(&self, buf: &mut BytesMut) -> ReadOutcome {
        let result = match self {
            Stream::Tcp(s) => s.read_with(|inner| read_append(inner, buf)).await,
            Stream::Unix(s) => s.read_with(|inner| read_append(inner, buf)).await,
        };
        ReadOutcome::of(&result)
    }

    /// Writes as much of `tx` as the socket takes in one `writev`, without
    /// consuming it (the caller `advance`s by the returned count).
    pub(super) async fn write(&self, tx: &TxBuf) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let count = tx.io_slices(&mut slices);
        let slices = slices.get(..count).unwrap_or_default();
        let n = match self {
            Stream::Tcp(s) => s.write_with(|mut inner| inner.write_vectored(slices)).await,
            Stream::Unix(s) => s.write_with(|mut inner| inner.write_vectored(slices)).await,
        }?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(n)
    }

    /// Half-closes the stream; errors are moot at this point.
    pub(super) fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.get_ref().shutdown(Shutdown::Write),
            Stream::Unix(s) => s.get_ref().shutdown(Shutdown::Write),
        };
    }
}

/// Connects to the first address of `host:port` that accepts.
async fn connect_tcp(host: &str, port: u16) -> io::Result<Async<TcpStream>> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in smol::net::resolve((host, port)).await? {
        match Async::<TcpStream>::connect(addr).await {
            Ok(stream) => {
                stream.get_ref().set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// One non-blocking read of up to [`READ_CHUNK`] bytes onto the end of
/// `buf`; the buffer keeps only the bytes read.
fn read_append<S>(stream: &S, buf: &mut BytesMut) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let mut reader = stream;
    let result = reader.read(&mut buf[start..]);
    buf.truncate(start + result.as_ref().map_or(0, |n| *n));
    result
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            Timer::at(at).await;
        }
        None => std::future::pending().await,
    }
}
