//! The server: binds every listener of a [`ServerSpec`], then serves until
//! told to stop.
//!
//! One [`Broker`] is shared by all tasks behind a `std::sync::Mutex`; it is
//! locked only around calls into the core, never across an `.await`.
//! Each socket has its own task that owns the socket's
//! [`psrt_proto::conn::Connection`]: decoding, TLS and writes run in
//! parallel on every thread that drives the server's executor.
//!
//! smol has no ambient runtime: each [`Server`] owns an
//! [`Executor`] that [`Server::run`] drives on the calling thread, and
//! [`serve`] adds `workers - 1` more threads driving the same executor
//! (smol's documented multi-threaded pattern).

mod conn_task;
mod socket;
mod stats_task;
mod udp_task;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use psrt_checks::CheckPool;
use psrt_proto::broker::{Broker, EventLevel, PasswordCheck};
use psrt_proto::conn::{ConnConfig, Transport};
use psrt_proto::http::StatusInfo;
use psrt_proto::spec::{Reloader, ServerSpec};
use rand::SeedableRng;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::{Async, Executor, Timer};

/// State every task of one server shares.
pub(crate) struct Shared {
    broker: Mutex<Broker>,
    conn: Arc<ConnConfig>,
    timeout: Duration,
    started: Instant,
    host: String,
    version: String,
    /// Closed (never sent to) when the server starts shutting down.
    stopping: Receiver<()>,
    drain_timeout: Duration,
    /// Where tasks are spawned. Weak: the executor owns the tasks that own
    /// this struct, and a strong reference would keep them all alive.
    executor: Weak<Executor<'static>>,
    /// Idle-priority threads for bcrypt, so a flood of wrong passwords
    /// never competes with message routing for the CPU.
    checks: CheckPool,
}

impl Shared {
    /// Verifies a password on the idle-priority check pool; a check that
    /// could not run counts as failed.
    pub(crate) fn verify(
        &self,
        check: PasswordCheck,
    ) -> impl Future<Output = bool> + Send + 'static {
        let (done, result) = smol::channel::bounded(1);
        self.checks.submit(check, move |ok| {
            let _ = done.try_send(ok);
        });
        async move { result.recv().await.unwrap_or(false) }
    }

    /// Locks the broker. A panic in another task while it held the lock
    /// does not stop the server: the broker's own state is kept consistent
    /// by its methods, so the poison flag is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Broker> {
        self.broker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Completes once the server starts shutting down.
    pub(crate) async fn stopped(&self) {
        // Nothing is ever sent: `recv` only returns once the channel closes.
        let _ = self.stopping.recv().await;
    }

    /// Spawns a detached, [`guarded`] task on the server's executor.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(guarded(task)).detach();
        }
    }

    /// Logs and drops the broker's pending events. Call with the lock held.
    pub(crate) fn log_events(broker: &mut Broker) {
        while let Some(event) = broker.poll_event() {
            match event.level() {
                EventLevel::Info => tracing::info!("{event}"),
                EventLevel::Warn => tracing::warn!("{event}"),
            }
        }
    }

    pub(crate) fn status_info(&self) -> StatusInfo {
        let time_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        StatusInfo {
            time_us,
            uptime_s: self.started.elapsed().as_secs(),
            host: self.host.clone(),
            version: self.version.clone(),
        }
    }
}

/// `task`, except that a panic is logged and ends only this task instead
/// of unwinding through (and ending) the worker thread that polled it.
async fn guarded(task: impl Future<Output = ()>) {
    if AssertUnwindSafe(task).catch_unwind().await.is_err() {
        tracing::error!("a server task panicked; it was dropped");
    }
}

/// The addresses actually bound (port 0 resolved), for tests and logs.
#[derive(Debug, Clone, Default)]
pub struct BoundAddrs {
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// UDP sockets.
    pub udp: Vec<SocketAddr>,
    /// Unix-socket paths.
    pub unix: Vec<PathBuf>,
    /// Stats HTTP listener.
    pub stats: Option<SocketAddr>,
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    shared: Arc<Shared>,
    executor: Arc<Executor<'static>>,
    stop_tx: Sender<()>,
    tcp: Vec<Async<TcpListener>>,
    unix: Vec<(Async<UnixListener>, PathBuf)>,
    udp: Vec<Async<UdpSocket>>,
    stats: Option<Async<TcpListener>>,
    reload: Option<Reloader>,
    addrs: BoundAddrs,
}

/// Controls a running server from elsewhere (tests, signal handlers).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    stop_tx: Sender<()>,
    reload: Option<Reloader>,
}

impl ServerHandle {
    /// Starts the graceful shutdown.
    pub fn stop(&self) {
        self.stop_tx.close();
    }

    /// Reloads the access rules; on error the old rules stay and the
    /// message is returned (and logged).
    pub async fn reload(&self) -> Result<(), String> {
        let Some(reload) = self.reload.clone() else {
            return Ok(());
        };
        let loaded = smol::unblock(move || std::panic::catch_unwind(AssertUnwindSafe(|| reload())))
            .await
            .map_err(|_| String::from("reload task failed: it panicked"))?;
        match loaded {
            Ok(auth) => {
                self.shared.lock().reload(auth);
                tracing::info!("access rules reloaded");
                Ok(())
            }
            Err(message) => {
                tracing::error!(%message, "reload failed; keeping the rules in force");
                Err(message)
            }
        }
    }

    /// Runs `f` on the broker (stats, inspection).
    pub fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        f(&mut self.shared.lock())
    }
}

impl Server {
    /// Binds every listener of `spec`. Needs no ambient runtime (async
    /// only to match the other runtimes' API). Errors name the address
    /// that failed.
    pub async fn bind(spec: ServerSpec) -> io::Result<Server> {
        let mut addrs = BoundAddrs::default();
        let mut tcp = Vec::new();
        for addr in &spec.tcp {
            let listener =
                Async::<TcpListener>::bind(*addr).map_err(|e| named(e, &addr.to_string()))?;
            addrs.tcp.push(listener.get_ref().local_addr()?);
            tcp.push(listener);
        }
        let mut unix = Vec::new();
        for path in &spec.unix {
            unix.push((bind_unix(path)?, path.clone()));
            addrs.unix.push(path.clone());
        }
        let mut udp = Vec::new();
        for addr in &spec.udp {
            let socket =
                Async::<UdpSocket>::bind(*addr).map_err(|e| named(e, &format!("udp {addr}")))?;
            addrs.udp.push(socket.get_ref().local_addr()?);
            udp.push(socket);
        }
        let stats = match spec.stats {
            Some(addr) => {
                let listener = Async::<TcpListener>::bind(addr)
                    .map_err(|e| named(e, &format!("stats {addr}")))?;
                addrs.stats = Some(listener.get_ref().local_addr()?);
                Some(listener)
            }
            None => None,
        };
        let (stop_tx, stopping) = smol::channel::bounded(1);
        let mut broker = Broker::new(
            spec.limits,
            spec.auth,
            Box::new(rand::rngs::StdRng::from_os_rng()),
        );
        broker.set_latency_warn(spec.latency_warn);
        let executor = Arc::new(Executor::new());
        let shared = Arc::new(Shared {
            broker: Mutex::new(broker),
            conn: Arc::new(spec.conn),
            timeout: spec.limits.timeout,
            started: Instant::now(),
            host: spec.host,
            version: spec.version,
            stopping,
            drain_timeout: spec.drain_timeout,
            executor: Arc::downgrade(&executor),
            checks: CheckPool::new((spec.workers / 2).max(1), spec.limits.max_pending_checks)?,
        });
        Ok(Server {
            shared,
            executor,
            stop_tx,
            tcp,
            unix,
            udp,
            stats,
            reload: spec.reload,
            addrs,
        })
    }

    /// What was bound.
    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    /// A handle to stop or reload the server once it runs.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
            stop_tx: self.stop_tx.clone(),
            reload: self.reload.clone(),
        }
    }

    /// Serves until [`ServerHandle::stop`]; then stops accepting, lets
    /// queued messages drain to subscribers for at most the drain timeout,
    /// and removes the Unix-socket files.
    ///
    /// The server's tasks run on its own executor, which this future
    /// drives: await it from any executor or `smol::block_on`. Tasks still
    /// running when it returns are cancelled once the server is dropped.
    pub async fn run(self) {
        let executor = self.executor.clone();
        executor.run(self.serve_until_drained()).await;
    }

    /// Runs the server on `workers` threads (the calling one included,
    /// at least one) and returns once it has stopped and drained: what
    /// [`serve`] does after binding.
    pub fn run_on_threads(self, workers: usize) {
        // Closed when the server has drained: the extra workers then return.
        let (done_tx, done) = smol::channel::bounded::<()>(1);
        let mut threads = Vec::new();
        for _ in 1..workers.max(1) {
            let (executor, done) = (self.executor.clone(), done.clone());
            let thread = std::thread::Builder::new()
                .name("psrtd-worker".into())
                .spawn(move || smol::block_on(executor.run(done.recv())));
            match thread {
                Ok(thread) => threads.push(thread),
                Err(err) => tracing::warn!(%err, "cannot start a worker thread"),
            }
        }
        smol::block_on(self.run());
        done_tx.close();
        for thread in threads {
            let _ = thread.join();
        }
    }

    async fn serve_until_drained(self) {
        // Every connection task holds a clone of `live`; `recv` fails once
        // the last one is dropped, i.e. when every connection is closed.
        let (live, all_closed) = smol::channel::bounded::<()>(1);
        let shared = &self.shared;
        let mut listeners = Vec::new();
        for listener in self.tcp {
            let task = accept_tcp(shared.clone(), listener, live.clone());
            listeners.push(self.executor.spawn(guarded(task)));
        }
        let mut unix_paths = Vec::new();
        for (listener, path) in self.unix {
            unix_paths.push(path);
            let task = accept_unix(shared.clone(), listener, live.clone());
            listeners.push(self.executor.spawn(guarded(task)));
        }
        for socket in self.udp {
            let task = udp_task::serve(shared.clone(), socket);
            listeners.push(self.executor.spawn(guarded(task)));
        }
        if let Some(listener) = self.stats {
            let task = stats_task::accept(shared.clone(), listener);
            listeners.push(self.executor.spawn(guarded(task)));
        }
        drop(live);
        shared.stopped().await;
        tracing::info!("shutting down: draining queued messages");
        let drain = shared.drain_timeout + Duration::from_secs(1);
        let drained = async {
            for listener in listeners {
                listener.await;
            }
            let _ = all_closed.recv().await;
        };
        drained
            .or(async {
                Timer::after(drain).await;
            })
            .await;
        for path in unix_paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serves `spec` on `spec.workers` threads and returns on SIGTERM or
/// SIGINT after the graceful drain. SIGHUP reloads the access rules.
/// `on_bound` runs once every listener is bound (write the pid file
/// there).
pub fn serve(spec: ServerSpec, on_bound: impl FnOnce(&BoundAddrs)) -> io::Result<()> {
    let workers = spec.workers;
    let server = smol::block_on(Server::bind(spec))?;
    on_bound(server.addrs());
    let signals = async_signal::Signals::new([
        async_signal::Signal::Hup,
        async_signal::Signal::Term,
        async_signal::Signal::Int,
    ]);
    match signals {
        Ok(signals) => server
            .shared
            .spawn(handle_signals(server.handle(), signals)),
        Err(err) => tracing::error!(%err, "cannot install signal handlers"),
    }
    server.run_on_threads(workers);
    Ok(())
}

async fn handle_signals(handle: ServerHandle, mut signals: async_signal::Signals) {
    use async_signal::Signal;
    use smol::stream::StreamExt;
    while let Some(signal) = signals.next().await {
        match signal {
            Ok(Signal::Hup) => {
                tracing::info!("SIGHUP: reloading passwords, ACL and keys");
                let _ = handle.reload().await;
            }
            Ok(_) => break,
            Err(err) => {
                // Retrying a broken signal pipe would spin: keep serving.
                tracing::error!(%err, "reading signals failed; signals now ignored");
                return;
            }
        }
    }
    handle.stop();
}

async fn accept_tcp(shared: Arc<Shared>, listener: Async<TcpListener>, live: Sender<()>) {
    loop {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                shared.stopped().await;
                None
            })
            .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => {
                let _ = stream.get_ref().set_nodelay(true);
                let task = conn_task::serve(
                    shared.clone(),
                    stream,
                    Transport::Tcp,
                    peer.to_string(),
                    live.clone(),
                );
                shared.spawn(task);
            }
            Some(Err(err)) => accept_error(err).await,
        }
    }
}

async fn accept_unix(shared: Arc<Shared>, listener: Async<UnixListener>, live: Sender<()>) {
    loop {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                shared.stopped().await;
                None
            })
            .await;
        match accepted {
            None => return,
            Some(Ok((stream, _))) => {
                let task = conn_task::serve(
                    shared.clone(),
                    stream,
                    Transport::Unix,
                    "unix".into(),
                    live.clone(),
                );
                shared.spawn(task);
            }
            Some(Err(err)) => accept_error(err).await,
        }
    }
}

/// Out of descriptors or a transient error: log and back off briefly
/// instead of spinning.
async fn accept_error(err: io::Error) {
    tracing::warn!(%err, "accept failed");
    Timer::after(Duration::from_millis(50)).await;
}

fn bind_unix(path: &PathBuf) -> io::Result<Async<UnixListener>> {
    use std::os::unix::fs::PermissionsExt;
    // A stale socket file from a crashed run would make bind fail.
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        std::fs::remove_file(path).map_err(|e| named(e, &path.display().to_string()))?;
    }
    let listener =
        Async::<UnixListener>::bind(path).map_err(|e| named(e, &path.display().to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o770))
        .map_err(|e| named(e, &path.display().to_string()))?;
    Ok(listener)
}

fn named(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
