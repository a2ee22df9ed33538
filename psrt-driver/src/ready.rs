//! [`Stream`], [`Listener`] and [`Udp`] for readiness runtimes (tokio,
//! smol), written once over a [`Reactor`]: the runtime only registers a
//! socket and says when it may be ready; the non-blocking syscalls are
//! made here, on socket2 and std sockets.
//!
//! A read waits for readiness without holding a buffer and lands in the
//! thread's scratch buffer; only the bytes received are appended to the
//! caller's, so an idle socket holds no read buffer. The rest of a large
//! frame is read straight into the frame's own buffer instead (its spare
//! capacity, through rustix, which fills a `Vec` without `unsafe` here),
//! so large payloads are not copied in user space. A write gathers up to
//! [`MAX_IOV`] chunks of the `TxBuf` into one `writev`, with the slice array
//! on the stack of one poll.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::task::{Context, Poll, ready};

use psrt_proto::client::{MAX_IOV, READ_CHUNK};
use psrt_proto::conn::reserve_input;
use psrt_proto::{BytesMut, TxBuf};
use rustix::buffer::spare_capacity;
use socket2::Socket;

use crate::runtime::{Listener, Received, Stream, Udp, until};

/// Attempts of one socket operation per poll when readiness turns out
/// stale (the reactor reported an event the socket no longer has).
const MAX_TRIES: usize = 3;

thread_local! {
    /// One read buffer per thread instead of one per connection.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A socket type a [`Reactor`] can register.
pub trait Fd: AsFd + AsRawFd + Send + Sync + 'static {}

impl<T: AsFd + AsRawFd + Send + Sync + 'static> Fd for T {}

/// Which readiness an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (or a connection to accept).
    Read,
    /// Writable.
    Write,
}

/// A readiness-based reactor: registers sockets and reports when they
/// may be ready.
pub trait Reactor: Send + Sync + 'static {
    /// A socket registered with the reactor.
    type Io<T: Fd>: Send + Sync + 'static;

    /// Registers a non-blocking socket.
    fn register<T: Fd>(io: T) -> io::Result<Self::Io<T>>;

    /// The registered socket.
    fn get_ref<T: Fd>(io: &Self::Io<T>) -> &T;

    /// Waits until `io` may be ready for `interest` (registering `cx`),
    /// then runs `op` once. An `op` that would block returns
    /// `Ready(Err(WouldBlock))` and the readiness is forgotten, so the next
    /// poll waits for a new event.
    fn poll_io<T: Fd, O>(
        io: &Self::Io<T>,
        interest: Interest,
        cx: &mut Context<'_>,
        op: impl FnOnce(&T) -> io::Result<O>,
    ) -> Poll<io::Result<O>>;
}

/// Runs `op` once `io` is ready, retrying (a few times per poll) while the
/// readiness turns out stale.
fn poll_retry<E: Reactor, T: Fd, O>(
    io: &E::Io<T>,
    interest: Interest,
    cx: &mut Context<'_>,
    mut op: impl FnMut(&T) -> io::Result<O>,
) -> Poll<io::Result<O>> {
    for _ in 0..MAX_TRIES {
        match ready!(E::poll_io(io, interest, cx, &mut op)) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
    }
    // Readiness kept being reported without the socket being ready: try
    // again at the task's next poll instead of spinning here.
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Tries `op` directly while `hint` says the socket may be ready (it was
/// at the last attempt), else through the reactor; keeps `hint` current.
fn poll_hinted<E: Reactor, O>(
    io: &E::Io<Socket>,
    hint: &mut bool,
    interest: Interest,
    cx: &mut Context<'_>,
    mut op: impl FnMut(&Socket) -> io::Result<O>,
) -> Poll<io::Result<O>> {
    if *hint {
        match op(E::get_ref(io)) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => *hint = false,
            done => return Poll::Ready(done),
        }
    }
    let done = ready!(poll_retry::<E, _, _>(io, interest, cx, op));
    *hint = true;
    Poll::Ready(done)
}

/// A connected TCP or Unix stream on a readiness reactor.
pub struct ReadyStream<E: Reactor> {
    io: E::Io<Socket>,
    /// Whether a read may find bytes without waiting: true until a read
    /// would block, then again once the reactor reports readiness.
    readable: bool,
    /// The same for writes.
    writable: bool,
}

impl<E: Reactor> ReadyStream<E> {
    /// Registers a connected, non-blocking stream socket.
    pub fn new(socket: impl Into<OwnedFd>) -> io::Result<Self> {
        Ok(Self {
            io: E::register(Socket::from(socket.into()))?,
            readable: true,
            writable: true,
        })
    }
}

impl<E: Reactor> Stream for ReadyStream<E> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        poll_hinted::<E, _>(&self.io, &mut self.readable, Interest::Read, cx, |s| {
            read_append(s, buf)
        })
    }

    fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        if frame.len() == frame.capacity() {
            // A frame buffer always has room; a read into none would look
            // like the end of the stream.
            frame.reserve(READ_CHUNK);
        }
        poll_hinted::<E, _>(&self.io, &mut self.readable, Interest::Read, cx, |s| {
            rustix::io::read(s, spare_capacity(frame)).map_err(io::Error::from)
        })
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, tx: &TxBuf) -> Poll<io::Result<usize>> {
        poll_hinted::<E, _>(&self.io, &mut self.writable, Interest::Write, cx, |s| {
            write_tx(s, tx)
        })
    }

    async fn shutdown(self) {
        let _ = E::get_ref(&self.io).shutdown(Shutdown::Write);
    }
}

/// Reads once from `socket` into the thread's scratch buffer and appends
/// what came to `input`; `Ok(0)` is end of stream.
fn read_append(mut socket: &Socket, input: &mut BytesMut) -> io::Result<usize> {
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.resize(READ_CHUNK, 0);
        let n = socket.read(scratch)?;
        let read = scratch.get(..n).ok_or(io::ErrorKind::InvalidData)?;
        reserve_input(input, n);
        input.extend_from_slice(read);
        Ok(n)
    })
}

/// Writes as much of `tx` as the socket takes in one `writev`.
fn write_tx(mut socket: &Socket, tx: &TxBuf) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_IOV];
    let count = tx.io_slices(&mut slices);
    match socket.write_vectored(slices.get(..count).unwrap_or_default())? {
        0 => Err(io::ErrorKind::WriteZero.into()),
        n => Ok(n),
    }
}

/// A TCP or Unix listener on a readiness reactor.
pub struct ReadyListener<E: Reactor> {
    io: E::Io<Socket>,
}

impl<E: Reactor> ReadyListener<E> {
    fn new(listener: impl Into<OwnedFd>) -> io::Result<Self> {
        Ok(Self {
            io: E::register(Socket::from(listener.into()))?,
        })
    }

    /// Accepts one stream: non-blocking, Nagle off for TCP.
    async fn accept_one(&self) -> io::Result<(ReadyStream<E>, String)> {
        let (socket, addr) =
            poll_fn(|cx| poll_retry::<E, _, _>(&self.io, Interest::Read, cx, Socket::accept))
                .await?;
        socket.set_nonblocking(true)?;
        let peer = match addr.as_socket() {
            Some(peer) => {
                socket.set_tcp_nodelay(true)?;
                peer.to_string()
            }
            None => String::from("unix"),
        };
        Ok((ReadyStream::new(socket)?, peer))
    }
}

impl<E: Reactor> Listener for ReadyListener<E> {
    type Stream = ReadyStream<E>;

    fn from_tcp(listener: TcpListener) -> io::Result<Self> {
        Self::new(listener)
    }

    fn from_unix(listener: UnixListener) -> io::Result<Self> {
        Self::new(listener)
    }

    async fn accept(
        &self,
        stop: impl Future<Output = ()>,
    ) -> Option<io::Result<(ReadyStream<E>, String)>> {
        until(stop, self.accept_one()).await
    }
}

/// A UDP socket on a readiness reactor.
pub struct ReadyUdp<E: Reactor> {
    io: E::Io<UdpSocket>,
}

impl<E: Reactor> Udp for ReadyUdp<E> {
    fn from_std(socket: UdpSocket) -> io::Result<Self> {
        Ok(Self {
            io: E::register(socket)?,
        })
    }

    async fn recv_from(
        &self,
        mut buf: Vec<u8>,
        stop: impl Future<Output = ()>,
    ) -> Option<Received> {
        buf.resize(buf.capacity(), 0);
        let receive = poll_fn(|cx| {
            poll_retry::<E, _, _>(&self.io, Interest::Read, cx, |s| s.recv_from(&mut buf))
        });
        let received = until(stop, receive).await?;
        Some((received, buf))
    }

    async fn send_to(&self, data: Vec<u8>, peer: SocketAddr) -> io::Result<()> {
        poll_fn(|cx| {
            poll_retry::<E, _, _>(&self.io, Interest::Write, cx, |s| s.send_to(&data, peer))
        })
        .await
        .map(drop)
    }
}
