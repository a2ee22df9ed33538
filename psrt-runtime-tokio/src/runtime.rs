//! [`Tokio`]: psrt-driver's [`Runtime`] over tokio. Sockets are
//! registered with tokio's reactor through `AsyncFd` and driven by
//! `psrt_driver::ready`; tasks go to `tokio::spawn`, so the server must
//! run inside a tokio runtime (multi-threaded for parallel sockets).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use psrt_driver::Job;
use psrt_driver::ready::{Fd, Interest, Reactor, ReadyListener, ReadyStream, ReadyUdp};
use psrt_driver::runtime::{Runtime, SleepTimer, Sleeps};
use tokio::io::unix::AsyncFd;
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Sleep;

/// The ambient tokio runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Reactor for Tokio {
    type Io<T: Fd> = AsyncFd<T>;

    /// `AsyncFd::new` is deprecated because a type that only lends a raw
    /// descriptor could close it while registered; an [`Fd`] is `AsFd`, so
    /// it owns its descriptor for as long as it lives, which is what the
    /// `unsafe` replacement asks of its callers.
    #[allow(deprecated)]
    fn register<T: Fd>(io: T) -> io::Result<AsyncFd<T>> {
        AsyncFd::new(io)
    }

    fn get_ref<T: Fd>(io: &AsyncFd<T>) -> &T {
        io.get_ref()
    }

    fn poll_io<T: Fd, O>(
        io: &AsyncFd<T>,
        interest: Interest,
        cx: &mut Context<'_>,
        op: impl FnOnce(&T) -> io::Result<O>,
    ) -> Poll<io::Result<O>> {
        let mut guard = ready!(match interest {
            Interest::Read => io.poll_read_ready(cx),
            Interest::Write => io.poll_write_ready(cx),
        })?;
        // `try_io` clears the readiness when `op` would block.
        let done = guard.try_io(|io| op(io.get_ref()));
        Poll::Ready(done.unwrap_or_else(|_| Err(io::ErrorKind::WouldBlock.into())))
    }
}

impl Runtime for Tokio {
    type Stream = ReadyStream<Tokio>;
    type Listener = ReadyListener<Tokio>;
    type Udp = ReadyUdp<Tokio>;
    type Timer = SleepTimer<Tokio>;

    fn spawn(&self, job: Job<Self>) {
        tokio::spawn(job.run());
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        ReadyStream::new(stream.into_std()?)
    }

    async fn connect_unix(&self, path: &Path) -> io::Result<Self::Stream> {
        ReadyStream::new(UnixStream::connect(path).await?.into_std()?)
    }
}

impl Sleeps for Tokio {
    type Sleep = Sleep;

    fn sleep_until(deadline: Instant) -> Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn reset(sleep: Pin<&mut Sleep>, deadline: Instant) {
        sleep.reset(deadline.into());
    }
}
