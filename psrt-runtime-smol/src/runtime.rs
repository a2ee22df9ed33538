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

/// async-io's timer, moved lazily.
///
/// async-io wakes its reactor thread (a syscall and a context switch) at
/// every timer registration, and a busy socket moves its deadline at every
/// turn. So the registered deadline only ever moves earlier: when one
/// registered before the wanted deadline fires, the timer is registered
/// again for the wanted one. A socket moving its keep-alive deadline later
/// at each request then registers it about once per timeout period.
pub struct SmolTimer {
    timer: smol::Timer,
    /// The deadline registered with the reactor and not yet seen firing.
    armed: Option<Instant>,
    /// The deadline asked for.
    wanted: Option<Instant>,
}

impl Default for SmolTimer {
    fn default() -> Self {
        Self {
            timer: smol::Timer::never(),
            armed: None,
            wanted: None,
        }
    }
}

impl Timer for SmolTimer {
    fn set(&mut self, deadline: Option<Instant>) {
        self.wanted = deadline;
        if let Some(at) = deadline
            && self.armed.is_none_or(|armed| at < armed)
        {
            self.timer.set_at(at);
            self.armed = Some(at);
        }
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(wanted) = self.wanted else {
            return Poll::Pending;
        };
        loop {
            if self.armed.is_none() {
                self.timer.set_at(wanted);
                self.armed = Some(wanted);
            }
            ready!(Pin::new(&mut self.timer).poll(cx));
            // The registered deadline has passed; so has the wanted one
            // if it is not later.
            if self.armed.take().is_some_and(|fired| wanted <= fired) {
                return Poll::Ready(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Polls `timer` until it fires or `limit` passes; whether it fired.
    fn fires_within(timer: &mut SmolTimer, limit: Duration) -> bool {
        smol::block_on(async {
            let fired = std::future::poll_fn(|cx| timer.poll_fired(cx));
            let gave_up = async {
                smol::Timer::after(limit).await;
            };
            smol::future::or(
                async {
                    fired.await;
                    true
                },
                async {
                    gave_up.await;
                    false
                },
            )
            .await
        })
    }

    #[test]
    fn a_deadline_moved_later_fires_at_the_later_time_not_before() {
        let start = Instant::now();
        let mut timer = SmolTimer::default();
        timer.set(Some(start + Duration::from_millis(30)));
        timer.set(Some(start + Duration::from_millis(120)));
        assert!(!fires_within(&mut timer, Duration::from_millis(80)));
        assert!(fires_within(&mut timer, Duration::from_secs(2)));
        assert!(start.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn a_deadline_moved_earlier_fires_at_the_earlier_time() {
        let start = Instant::now();
        let mut timer = SmolTimer::default();
        timer.set(Some(start + Duration::from_secs(60)));
        timer.set(Some(start + Duration::from_millis(20)));
        assert!(fires_within(&mut timer, Duration::from_secs(2)));
        assert!(start.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn a_stopped_timer_never_fires_and_can_be_set_again_after_firing() {
        let mut timer = SmolTimer::default();
        timer.set(Some(Instant::now() + Duration::from_millis(10)));
        timer.set(None);
        assert!(!fires_within(&mut timer, Duration::from_millis(60)));
        timer.set(Some(Instant::now() + Duration::from_millis(10)));
        assert!(fires_within(&mut timer, Duration::from_secs(2)));
        // Fired and seen: a new deadline registers again.
        timer.set(Some(Instant::now() + Duration::from_millis(10)));
        assert!(fires_within(&mut timer, Duration::from_secs(2)));
    }
}
