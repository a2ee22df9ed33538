//! [`Smol`]: psrt-driver's [`Runtime`] over smol. Sockets are registered
//! with async-io's reactor and driven by `psrt_driver::ready`; tasks go to
//! the server's own executor, which every worker thread drives, or (a
//! client's) to smol's global executor.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use psrt_driver::Job;
use psrt_driver::ready::{Fd, Interest, Reactor, ReadyListener, ReadyStream, ReadyUdp};
use psrt_driver::runtime::{Runtime, Timer};
use smol::future::Future;
use smol::{Async, Executor};

/// Spawns on one executor: a server's own, or (the default, a client's)
/// smol's global executor.
#[derive(Debug, Clone, Default)]
pub struct Smol {
    /// Weak: the executor owns the tasks that hold this runtime, and a
    /// strong reference would keep them all alive. `None`: `smol::spawn`.
    executor: Option<Weak<Executor<'static>>>,
}

impl Smol {
    /// Spawns on `executor`.
    pub fn new(executor: &Arc<Executor<'static>>) -> Self {
        Self {
            executor: Some(Arc::downgrade(executor)),
        }
    }
}

impl Reactor for Smol {
    type Io<T: Fd> = Async<T>;

    fn register<T: Fd>(io: T) -> io::Result<Async<T>> {
        Async::new(io)
    }

    fn get_ref<T: Fd>(io: &Async<T>) -> &T {
        io.get_ref()
    }

    fn poll_io<T: Fd, O>(
        io: &Async<T>,
        interest: Interest,
        cx: &mut Context<'_>,
        op: impl FnOnce(&T) -> io::Result<O>,
    ) -> Poll<io::Result<O>> {
        // async-io reports each readiness event once: an `op` that would
        // block leaves nothing to forget.
        ready!(match interest {
            Interest::Read => io.poll_readable(cx),
            Interest::Write => io.poll_writable(cx),
        })?;
        Poll::Ready(op(io.get_ref()))
    }
}

impl Runtime for Smol {
    type Stream = ReadyStream<Smol>;
    type Listener = ReadyListener<Smol>;
    type Udp = ReadyUdp<Smol>;
    type Timer = SmolTimer;

    fn spawn(&self, job: Job<Self>) {
        match &self.executor {
            Some(executor) => {
                if let Some(executor) = executor.upgrade() {
                    executor.spawn(job.run()).detach();
                }
            }
            None => smol::spawn(job.run()).detach(),
        }
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let stream = Async::<TcpStream>::connect(addr).await?.into_inner()?;
        stream.set_nodelay(true)?;
        ReadyStream::new(stream)
    }

    async fn connect_unix(&self, path: &Path) -> io::Result<Self::Stream> {
        ReadyStream::new(Async::<UnixStream>::connect(path).await?.into_inner()?)
    }
}

/// async-io's timer, which can be moved to a new deadline.
pub struct SmolTimer(smol::Timer);

impl Default for SmolTimer {
    fn default() -> Self {
        Self(smol::Timer::never())
    }
}

impl Timer for SmolTimer {
    fn set(&mut self, deadline: Option<Instant>) {
        match deadline {
            Some(at) => self.0.set_at(at),
            None => self.0 = smol::Timer::never(),
        }
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}
