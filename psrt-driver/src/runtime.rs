//! The [`Runtime`] trait: what a driver needs from an async runtime and
//! nothing else. Everything generic in this crate (the socket loop, the
//! accept loops, UDP, stats, drain) is written against it once; each
//! runtime crate implements it in one small file, the way quinn keeps its
//! per-runtime code behind its own `Runtime` trait.
//!
//! The trait covers what genuinely differs between runtimes:
//!
//! * a connected stream socket ([`Stream`]): reads appended to a
//!   `BytesMut`, or straight into a large frame's own buffer, vectored
//!   writes of a [`TxBuf`], half-close. Readiness
//!   runtimes (tokio, smol) share [`crate::ready`]'s implementation;
//!   completion I/O (monoio's io_uring) keeps its own owned buffers;
//! * listeners ([`Listener`]) and UDP sockets ([`Udp`]), adopted from the
//!   std sockets [`crate::bind`] opens;
//! * a resettable [`Timer`];
//! * spawning ([`Runtime::spawn`]) and connecting ([`Runtime::connect`]).
//!
//! Send-ness stays out of the generic code: the driver hands the runtime a
//! [`Job`], a closed set of tasks, and the runtime spawns `job.run()` with
//! its own spawner, so whether the task must be `Send` is checked on the
//! runtime crate's concrete types (tokio and smol need it, monoio's
//! thread-per-core tasks do not).

use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use psrt_proto::client::Target;
use psrt_proto::{BytesMut, TxBuf};

use crate::job::Job;

/// An async runtime a PSRT driver runs on.
///
/// A value of it is the spawner (smol's is the server's executor; tokio's
/// and monoio's are the ambient runtime), shared by every task of a server
/// and cloned freely.
pub trait Runtime: Clone + Send + Sync + Sized + 'static {
    /// A connected TCP or Unix stream socket.
    type Stream: Stream;
    /// A listening TCP or Unix socket that accepts [`Self::Stream`]s.
    type Listener: Listener<Stream = Self::Stream>;
    /// A bound UDP socket.
    type Udp: Udp;
    /// A timer reset to each new deadline.
    type Timer: Timer;

    /// Runs `job` as a task of its own, detached: it ends by itself (the
    /// server's stop reaches every job), or with the runtime.
    fn spawn(&self, job: Job<Self>);

    /// Connects a TCP stream to `addr` with Nagle's algorithm off.
    fn connect_tcp(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>>;

    /// Connects a Unix stream to `path`.
    fn connect_unix(&self, path: &Path) -> impl Future<Output = io::Result<Self::Stream>>;

    /// Connects to a client's `target`: a TCP host's addresses are tried in
    /// turn (a name is resolved off the event loop), a Unix path directly.
    fn connect(&self, target: &Target) -> impl Future<Output = io::Result<Self::Stream>> {
        async move {
            let (host, port) = match target {
                Target::Unix(path) => return self.connect_unix(path).await,
                Target::Tcp { host, port } => (host, *port),
            };
            let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
            for addr in resolve(host, port).await? {
                match self.connect_tcp(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(err) => last = err,
                }
            }
            Err(last)
        }
    }

    /// Completes at `deadline`, or never without one.
    fn sleep_until(&self, deadline: Option<Instant>) -> impl Future<Output = ()> {
        let mut timer = Self::Timer::default();
        timer.set(deadline);
        poll_fn(move |cx| timer.poll_fired(cx))
    }

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        self.sleep_until(Some(Instant::now() + duration))
    }
}

/// A connected stream socket (TCP or Unix), driven by polling so that one
/// task can wait on it and on other sources in one hand-written poll.
///
/// Reads keep the memory an idle socket costs down: a readiness runtime
/// holds no read buffer while the socket is quiet, a completion runtime
/// only a small one.
pub trait Stream: Sized + 'static {
    /// Appends what the socket has to `buf`, growing it with
    /// [`psrt_proto::conn::reserve_input`]; `Ok(0)` is end of stream.
    /// Pass the same buffer until this returns `Ready` (a completion
    /// runtime keeps its read in flight across polls).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;

    /// Appends what the socket has to `frame`, a large frame's buffer with
    /// room for the rest of it ([`psrt_proto::conn::ReadInto::Frame`]),
    /// reading straight into its spare capacity; `Ok(0)` is end of stream.
    /// Pass the same buffer until this returns `Ready` (a completion
    /// runtime moves it into its read meanwhile).
    ///
    /// The default reads through [`Self::poll_read`] into a buffer of its
    /// own and copies: enough for a runtime that keeps nothing in flight
    /// between polls, and for test streams.
    fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        let mut buf = BytesMut::new();
        let read = std::task::ready!(self.poll_read(cx, &mut buf));
        frame.extend_from_slice(&buf);
        Poll::Ready(read)
    }

    /// Writes the head of `tx` (vectored where the runtime can) and returns
    /// how many bytes went out, without consuming them: the caller
    /// `advance`s `tx`. `tx` must not change at its front until this
    /// returns `Ready`. Never called with an empty `tx`.
    fn poll_write(&mut self, cx: &mut Context<'_>, tx: &TxBuf) -> Poll<io::Result<usize>>;

    /// Half-closes the stream (errors are moot) and drops it. A write
    /// still in flight is dropped with the socket.
    fn shutdown(self) -> impl Future<Output = ()>;
}

/// A listening TCP or Unix socket.
pub trait Listener: Sized + 'static {
    /// The accepted kind of socket.
    type Stream: Stream;

    /// Adopts a bound, non-blocking std TCP listener.
    fn from_tcp(listener: TcpListener) -> io::Result<Self>;

    /// Adopts a bound, non-blocking std Unix listener.
    fn from_unix(listener: UnixListener) -> io::Result<Self>;

    /// Accepts one connection (TCP with Nagle off) and names its peer for
    /// logs, or returns `None` once `stop` completes. An accept that the
    /// runtime cannot drop without losing its result (io_uring) is
    /// cancelled and awaited before `None`.
    fn accept(
        &self,
        stop: impl Future<Output = ()>,
    ) -> impl Future<Output = Option<io::Result<(Self::Stream, String)>>>;
}

/// A received datagram: its length and sender (or the error), and the
/// buffer that holds it.
pub type Received = (io::Result<(usize, SocketAddr)>, Vec<u8>);

/// A bound UDP socket. Buffers are owned, as completion I/O needs.
pub trait Udp: Sized + 'static {
    /// Adopts a bound, non-blocking std UDP socket.
    fn from_std(socket: UdpSocket) -> io::Result<Self>;

    /// Receives one datagram into `buf` (its capacity is the room; its
    /// length is not kept) and returns the buffer with it, or returns
    /// `None` once `stop` completes. A receive that holds the socket in
    /// the kernel (an io_uring operation) is cancelled and awaited before
    /// `None`: otherwise the socket, and its port, would outlive its
    /// closing until the ring is torn down, after the process exits.
    fn recv_from(
        &self,
        buf: Vec<u8>,
        stop: impl Future<Output = ()>,
    ) -> impl Future<Output = Option<Received>>;

    /// Sends `data` to `peer`.
    fn send_to(&self, data: Vec<u8>, peer: SocketAddr) -> impl Future<Output = io::Result<()>>;
}

/// A timer that fires at the deadline it was last set to. The default
/// timer never fires.
pub trait Timer: Default + 'static {
    /// Moves the deadline; `None` stops the timer.
    fn set(&mut self, deadline: Option<Instant>);

    /// `Ready` once the deadline has passed. What later polls return is up
    /// to the runtime: set the timer again before waiting on it again.
    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Runs `work` until `stop` completes: `None` if `stop` came first.
pub async fn until<T>(stop: impl Future<Output = ()>, work: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(work.await) }, async {
        stop.await;
        None
    })
    .await
}

/// The addresses of `host`. An IP address is taken as is; a name goes to
/// the system resolver, which blocks, on a short-lived thread so the event
/// loop keeps running meanwhile.
async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = async_channel::bounded(1);
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("psrt-resolve".into())
        .spawn(move || {
            let addrs = (name.as_str(), port).to_socket_addrs();
            let _ = tx.try_send(addrs.map(Iterator::collect));
        })?;
    rx.recv()
        .await
        .map_err(|_| io::Error::other("the resolver thread failed"))?
}

/// A runtime's sleep future that can be moved to a new deadline (tokio's
/// and monoio's `Sleep`): [`SleepTimer`] makes it a [`Timer`].
pub trait Sleeps: 'static {
    /// The sleep future.
    type Sleep: Future<Output = ()> + 'static;

    /// A sleep until `deadline`.
    fn sleep_until(deadline: Instant) -> Self::Sleep;

    /// Moves `sleep` to `deadline`.
    fn reset(sleep: Pin<&mut Self::Sleep>, deadline: Instant);
}

/// A [`Timer`] over a [`Sleeps`] runtime's sleep, boxed (it is not
/// `Unpin`, and may be large) and kept while set.
pub struct SleepTimer<S: Sleeps>(Option<Pin<Box<S::Sleep>>>);

impl<S: Sleeps> Default for SleepTimer<S> {
    fn default() -> Self {
        Self(None)
    }
}

impl<S: Sleeps> Timer for SleepTimer<S> {
    fn set(&mut self, deadline: Option<Instant>) {
        match (&mut self.0, deadline) {
            (Some(sleep), Some(at)) => S::reset(sleep.as_mut(), at),
            (slot, at) => *slot = at.map(|at| Box::pin(S::sleep_until(at))),
        }
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}
