//! [`Monoio`]: psrt-driver's [`Runtime`] over monoio. Streams are
//! [`crate::io_slot`]'s halves (completion I/O with owned buffers, kept in
//! flight across a task's waits); accepts are cancelled and awaited on
//! stop, since dropping an io_uring accept could lose its connection.
//! Timers go through the worker thread's [`crate::timer_wheel`].
//! Tasks go to `monoio::spawn`: they stay on the thread that accepted
//! their socket.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Instant;

use monoio::io::{CancelHandle, Canceller};
use monoio::net::udp::UdpSocket;
use monoio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use monoio::time::Sleep;
use psrt_driver::Job;
use psrt_driver::runtime::{Listener, Received, Runtime, Sleeps, Stream, Udp};
use psrt_proto::{BytesMut, TxBuf};

use crate::io_slot::{Reader, Writer, split};
use crate::timer_wheel::WheelTimer;
use crate::turns::{Member, socket_id};

/// The monoio runtime of the current thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Monoio;

impl Runtime for Monoio {
    type Stream = MonoioStream;
    type Listener = MonoioListener;
    type Udp = MonoioUdp;
    type Timer = WheelTimer;

    fn spawn(&self, job: Job<Self>) {
        monoio::spawn(job.run());
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<MonoioStream> {
        let stream = TcpStream::connect_addr(addr).await?;
        stream.set_nodelay(true)?;
        Ok(MonoioStream::from(stream))
    }

    async fn connect_unix(&self, path: &Path) -> io::Result<MonoioStream> {
        Ok(MonoioStream::from(UnixStream::connect(path).await?))
    }
}

/// A TCP or Unix stream, split into its [`crate::io_slot`] halves.
pub struct MonoioStream(Halves);

enum Halves {
    Tcp(Reader<TcpStream>, Writer<TcpStream>),
    Unix(Reader<UnixStream>, Writer<UnixStream>),
}

impl From<TcpStream> for MonoioStream {
    fn from(stream: TcpStream) -> Self {
        let (reader, writer) = split(stream);
        MonoioStream(Halves::Tcp(reader, writer))
    }
}

impl From<UnixStream> for MonoioStream {
    fn from(stream: UnixStream) -> Self {
        let (reader, writer) = split(stream);
        MonoioStream(Halves::Unix(reader, writer))
    }
}

impl Stream for MonoioStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Halves::Tcp(reader, _) => reader.poll_read(cx, buf),
            Halves::Unix(reader, _) => reader.poll_read(cx, buf),
        }
    }

    fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Halves::Tcp(reader, _) => reader.poll_read_frame(cx, frame),
            Halves::Unix(reader, _) => reader.poll_read_frame(cx, frame),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, tx: &TxBuf) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Halves::Tcp(_, writer) => writer.poll_write(cx, tx),
            Halves::Unix(_, writer) => writer.poll_write(cx, tx),
        }
    }

    async fn shutdown(self) {
        match self.0 {
            Halves::Tcp(_, writer) => writer.shutdown().await,
            Halves::Unix(_, writer) => writer.shutdown().await,
        }
    }
}

/// A TCP or Unix listener: one worker's copy, taking turns with the
/// other workers' copies ([`crate::turns`]) so connections spread over
/// the workers.
pub struct MonoioListener {
    socket: ListenerSocket,
    turn: Member,
}

enum ListenerSocket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl MonoioListener {
    async fn accept_or_cancel(&self, cancel: CancelHandle) -> io::Result<(MonoioStream, String)> {
        match &self.socket {
            ListenerSocket::Tcp(listener) => {
                let (stream, peer) = listener.cancelable_accept(cancel).await?;
                stream.set_nodelay(true)?;
                Ok((MonoioStream::from(stream), peer.to_string()))
            }
            ListenerSocket::Unix(listener) => {
                let (stream, _) = listener.cancelable_accept(cancel).await?;
                Ok((MonoioStream::from(stream), String::from("unix")))
            }
        }
    }
}

impl Listener for MonoioListener {
    type Stream = MonoioStream;

    fn from_tcp(listener: std::net::TcpListener) -> io::Result<Self> {
        let turn = Member::join(socket_id(&listener)?);
        Ok(MonoioListener {
            socket: ListenerSocket::Tcp(TcpListener::from_std(listener)?),
            turn,
        })
    }

    fn from_unix(listener: std::os::unix::net::UnixListener) -> io::Result<Self> {
        let turn = Member::join(socket_id(&listener)?);
        Ok(MonoioListener {
            socket: ListenerSocket::Unix(UnixListener::from_std(listener)?),
            turn,
        })
    }

    /// Waits for this copy's turn, then accepts; a connection accepted
    /// passes the turn on. On stop the pending accept is cancelled and
    /// awaited, so a socket the kernel handed over meanwhile is closed
    /// rather than leaked.
    async fn accept(
        &self,
        stop: impl Future<Output = ()>,
    ) -> Option<io::Result<(MonoioStream, String)>> {
        let mut stop = pin!(stop);
        let turn = poll_fn(|cx| self.turn.poll_turn(cx));
        monoio::select! {
            () = turn => {}
            () = &mut stop => return None,
        }
        let accepted = until_cancelled(stop, |cancel| self.accept_or_cancel(cancel)).await;
        if let Some(Ok(_)) = accepted {
            self.turn.pass();
        }
        accepted
    }
}

/// A monoio UDP socket.
pub struct MonoioUdp(UdpSocket);

impl Udp for MonoioUdp {
    fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        UdpSocket::from_std(socket).map(MonoioUdp)
    }

    /// On stop the pending receive is cancelled and awaited: until its
    /// operation completes, the ring holds the socket open and its port
    /// bound, past the socket's close and even past the process's exit.
    async fn recv_from(&self, buf: Vec<u8>, stop: impl Future<Output = ()>) -> Option<Received> {
        until_cancelled(stop, |cancel| self.0.cancelable_recv_from(buf, cancel)).await
    }

    async fn send_to(&self, data: Vec<u8>, peer: SocketAddr) -> io::Result<()> {
        self.0.send_to(data, peer).await.0.map(drop)
    }
}

/// Runs the cancellable operation `op` until `stop` completes; then cancels
/// it and awaits its end before returning `None`. Dropping an io_uring
/// operation in flight instead could lose its result (an accepted
/// connection) and leaves its socket held by the ring.
async fn until_cancelled<T, F: Future<Output = T>>(
    stop: impl Future<Output = ()>,
    op: impl FnOnce(CancelHandle) -> F,
) -> Option<T> {
    let canceller = Canceller::new();
    let mut op = pin!(op(canceller.handle()));
    monoio::select! {
        done = &mut op => Some(done),
        () = stop => {
            canceller.cancel();
            let _ = op.await;
            None
        }
    }
}

/// monoio's timer entry is 640 bytes of cache-padded state: a server's
/// sockets share one per thread through [`crate::timer_wheel`]; a timer of
/// its own (`psrt_driver::runtime::SleepTimer`) boxes it out of the task's
/// future.
impl Sleeps for Monoio {
    type Sleep = Sleep;

    fn sleep_until(deadline: Instant) -> Sleep {
        monoio::time::sleep_until(monoio::time::Instant::from_std(deadline))
    }

    fn reset(sleep: Pin<&mut Sleep>, deadline: Instant) {
        sleep.reset(monoio::time::Instant::from_std(deadline));
    }
}
