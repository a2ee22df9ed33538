//! [`Shared`]: what every task of one server holds, on every thread: the
//! [`ServerCore`] (which it dereferences to), the runtime to spawn on, the
//! stop signal, the count of live tasks the drain waits for, and the
//! password checkers.

use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use psrt_proto::broker::{Broker, PasswordCheck};
use psrt_proto::conn::BrokerLock;

use crate::checks::CheckPool;
use crate::core::ServerCore;
use crate::events::with_broker_logged;
use crate::job::Job;
use crate::runtime::Runtime;

/// How often a stopping server checks whether its tasks have drained.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// The state every task of one server shares, across all threads.
///
/// The stop signal is an `async-channel` that is never sent on and is
/// closed to stop: every task waiting on it wakes, on any runtime and any
/// thread.
pub struct Shared<R: Runtime> {
    core: ServerCore,
    runtime: R,
    stop: async_channel::Sender<()>,
    stopping: async_channel::Receiver<()>,
    /// Connection tasks and listener loops still running, on all threads.
    live: AtomicUsize,
    /// Idle-priority threads for bcrypt, so a flood of wrong passwords
    /// never competes with message routing for the CPU.
    checks: CheckPool,
}

impl<R: Runtime> Deref for Shared<R> {
    type Target = ServerCore;

    fn deref(&self) -> &ServerCore {
        &self.core
    }
}

/// The broker is locked only while `f` runs; the events it raised are
/// logged once the lock is released.
impl<R: Runtime> BrokerLock for Shared<R> {
    fn with_broker<T>(&self, f: impl FnOnce(&mut Broker) -> T) -> T {
        with_broker_logged(&self.core, f)
    }
}

impl<R: Runtime> Shared<R> {
    /// The shared state of a server around `core`, spawning on `runtime`.
    pub(crate) fn new(core: ServerCore, runtime: R, checks: CheckPool) -> Self {
        let (stop, stopping) = async_channel::bounded(1);
        Self {
            core,
            runtime,
            stop,
            stopping,
            live: AtomicUsize::new(0),
            checks,
        }
    }

    /// The runtime the server's tasks run on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// Starts the graceful shutdown.
    pub fn stop(&self) {
        self.stop.close();
    }

    /// Whether the shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_closed()
    }

    /// Completes once the shutdown has begun.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + '_ {
        // Nothing is ever sent: `recv` only returns once the channel closes.
        let recv = self.stopping.recv();
        async move {
            let _ = recv.await;
        }
    }

    /// Spawns `job` on the server's runtime.
    pub fn spawn(&self, job: Job<R>) {
        self.runtime.spawn(job);
    }

    /// Verifies a password on the idle-priority check pool; a check that
    /// could not run counts as failed.
    pub fn verify(&self, check: PasswordCheck) -> impl Future<Output = bool> + Send + 'static {
        let (done, result) = async_channel::bounded(1);
        self.checks.submit(check, move |ok| {
            let _ = done.try_send(ok);
        });
        async move { result.recv().await.unwrap_or(false) }
    }

    /// Runs `check` on the pool and calls `done` with the result there.
    pub(crate) fn submit(&self, check: PasswordCheck, done: impl FnOnce(bool) + Send + 'static) {
        self.checks.submit(check, done);
    }

    /// Counts a task as live until the guard drops; the drain waits for
    /// the count to reach zero.
    pub(crate) fn track(&self) -> LiveGuard<'_> {
        self.live.fetch_add(1, Ordering::AcqRel);
        LiveGuard(&self.live)
    }

    /// Tasks counted by [`Self::track`] still running.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits (once stopped) until every live task has ended, or
    /// [`ServerCore::drain_limit`] has passed.
    pub async fn drain(&self) {
        let deadline = Instant::now() + self.drain_limit();
        while self.live() > 0 && Instant::now() < deadline {
            self.runtime.sleep(DRAIN_POLL).await;
        }
    }
}

/// Marks one task as running; see [`Shared::track`].
pub(crate) struct LiveGuard<'a>(&'a AtomicUsize);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
