//! The server: binds every listener of a [`ServerSpec`], then serves on
//! `spec.workers` threads, each running its own monoio runtime, until told
//! to stop.
//!
//! monoio is thread-per-core: its tasks are `!Send` and never move between
//! threads. The listeners are bound once (std sockets through socket2, so
//! no `SO_REUSEPORT`: a taken port fails to bind) and every worker thread
//! accepts on its own duplicate of each TCP and Unix listener; the kernel
//! hands each new connection to one of them, and the socket stays on that
//! thread for its life. This needs no cross-thread channel for sockets.
//! The UDP sockets and the stats listener are served by worker 0.
//!
//! One [`Broker`] is shared by all threads behind a `std::sync::Mutex`; it
//! is locked only around calls into the core, never across an `.await`.
//! Wakes from other threads (the broker queueing a message for a socket,
//! a password check finishing, the stop signal) go through std `Waker`s,
//! which monoio's `sync` feature makes work across threads.

mod accept;
mod conn_task;
mod stats_task;
mod udp_task;

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use monoio::blocking::DefaultThreadPool;
use monoio::{FusionDriver, FusionRuntime, RuntimeBuilder};
use psrt_checks::CheckPool;
use psrt_proto::broker::{Broker, EventLevel, PasswordCheck};
use psrt_proto::conn::ConnConfig;
use psrt_proto::http::StatusInfo;
use psrt_proto::spec::{Reloader, ServerSpec};
use rand::SeedableRng;
use socket2::{Domain, SockAddr, Socket, Type};

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;
/// How often the drain checks whether every connection has finished.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// State every task of one server shares, across all worker threads.
pub(crate) struct Shared {
    broker: Mutex<Broker>,
    conn: Arc<ConnConfig>,
    timeout: Duration,
    started: Instant,
    host: String,
    version: String,
    /// Closed (never sent on) when the server starts shutting down: every
    /// task waiting on `stopping.recv()` wakes, on whatever thread.
    stop: async_channel::Sender<()>,
    stopping: async_channel::Receiver<()>,
    drain_timeout: Duration,
    /// Connection tasks still running, on all threads; the drain waits for
    /// zero.
    live: AtomicUsize,
    /// Idle-priority threads for bcrypt, so a flood of wrong passwords
    /// never competes with message routing for the CPU.
    checks: CheckPool,
}

impl Shared {
    /// Verifies a password on the idle-priority check pool; a check that
    /// could not run counts as failed.
    pub(crate) fn verify(&self, check: PasswordCheck) -> impl Future<Output = bool> + 'static {
        let (done, result) = async_channel::bounded(1);
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

    /// Logs and drops the broker's pending events. Call with the lock held.
    pub(crate) fn log_events(broker: &mut Broker) {
        while let Some(event) = broker.poll_event() {
            match event.level() {
                EventLevel::Info => tracing::info!("{event}"),
                EventLevel::Warn => tracing::warn!("{event}"),
            }
        }
    }

    /// What `/status` and `/metrics` show besides the broker's counters.
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

    /// Resolves once the shutdown has begun.
    pub(crate) async fn stopped(&self) {
        // The channel is never sent on: recv returns only when closed.
        let _ = self.stopping.recv().await;
    }

    /// Counts a connection task as live until the guard drops.
    pub(crate) fn track(self: &Arc<Self>) -> LiveGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.clone())
    }
}

/// Marks one connection task as running; see [`Shared::track`].
pub(crate) struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
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

/// The bound std sockets, converted to monoio ones on each worker thread.
struct Listeners {
    tcp: Vec<TcpListener>,
    unix: Vec<UnixListener>,
    udp: Vec<UdpSocket>,
    stats: Option<TcpListener>,
}

impl Listeners {
    /// Duplicates of the TCP and Unix listeners for another worker.
    fn accept_only(&self) -> io::Result<Listeners> {
        Ok(Listeners {
            tcp: self
                .tcp
                .iter()
                .map(TcpListener::try_clone)
                .collect::<io::Result<_>>()?,
            unix: self
                .unix
                .iter()
                .map(UnixListener::try_clone)
                .collect::<io::Result<_>>()?,
            udp: Vec::new(),
            stats: None,
        })
    }
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    shared: Arc<Shared>,
    listeners: Listeners,
    workers: usize,
    reload: Option<Reloader>,
    addrs: BoundAddrs,
}

/// Controls a running server from elsewhere (tests, signal handlers).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    reload: Option<Reloader>,
}

impl ServerHandle {
    /// Starts the graceful shutdown.
    pub fn stop(&self) {
        self.shared.stop.close();
    }

    /// Reloads the access rules without blocking the calling task: the
    /// files are read on a separate thread. On error the old rules stay
    /// and the message is returned (and logged). Works under any executor.
    pub async fn reload(&self) -> Result<(), String> {
        let (done_tx, done_rx) = async_channel::bounded(1);
        let handle = self.clone();
        std::thread::Builder::new()
            .name("psrtd-reload".into())
            .spawn(move || {
                let _ = done_tx.try_send(handle.reload_blocking());
            })
            .map_err(|e| format!("reload thread failed: {e}"))?;
        done_rx
            .recv()
            .await
            .map_err(|_| String::from("reload thread panicked"))?
    }

    /// Reloads the access rules on the calling thread (signal handler,
    /// tests); blocks while the files are read. Same result as
    /// [`ServerHandle::reload`].
    pub fn reload_blocking(&self) -> Result<(), String> {
        let Some(reload) = &self.reload else {
            return Ok(());
        };
        match reload() {
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
    /// Binds every listener of `spec`. Needs no runtime: the sockets are
    /// plain std sockets until each worker thread adopts them. Errors name
    /// the address that failed.
    pub fn bind(spec: ServerSpec) -> io::Result<Server> {
        let mut addrs = BoundAddrs::default();
        let mut listeners = Listeners {
            tcp: Vec::new(),
            unix: Vec::new(),
            udp: Vec::new(),
            stats: None,
        };
        for addr in &spec.tcp {
            let listener = bind_tcp(*addr).map_err(|e| named(e, &addr.to_string()))?;
            addrs.tcp.push(listener.local_addr()?);
            listeners.tcp.push(listener);
        }
        for path in &spec.unix {
            listeners.unix.push(bind_unix(path)?);
            addrs.unix.push(path.clone());
        }
        for addr in &spec.udp {
            let socket = bind_udp(*addr).map_err(|e| named(e, &format!("udp {addr}")))?;
            addrs.udp.push(socket.local_addr()?);
            listeners.udp.push(socket);
        }
        if let Some(addr) = spec.stats {
            let listener = bind_tcp(addr).map_err(|e| named(e, &format!("stats {addr}")))?;
            addrs.stats = Some(listener.local_addr()?);
            listeners.stats = Some(listener);
        }
        let (stop, stopping) = async_channel::bounded(1);
        let mut broker = Broker::new(
            spec.limits,
            spec.auth,
            Box::new(rand::rngs::StdRng::from_os_rng()),
        );
        broker.set_latency_warn(spec.latency_warn);
        let shared = Arc::new(Shared {
            broker: Mutex::new(broker),
            conn: Arc::new(spec.conn),
            timeout: spec.limits.timeout,
            started: Instant::now(),
            host: spec.host,
            version: spec.version,
            stop,
            stopping,
            drain_timeout: spec.drain_timeout,
            live: AtomicUsize::new(0),
            checks: CheckPool::new((spec.workers / 2).max(1), spec.limits.max_pending_checks)?,
        });
        Ok(Server {
            shared,
            listeners,
            workers: spec.workers.max(1),
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
            reload: self.reload.clone(),
        }
    }

    /// Serves on `workers` threads (the calling one and `workers - 1` new
    /// ones, each with its own runtime) until [`ServerHandle::stop`]; then
    /// stops accepting, lets queued messages drain to subscribers for at
    /// most the drain timeout, and removes the Unix-socket files.
    ///
    /// Blocks the calling thread until then (thread-per-core: the server
    /// owns its runtimes), so call it from a plain thread, not from inside
    /// an async runtime. Fails if a worker thread or its runtime cannot be
    /// created; the server is then stopped. Password checks run on a
    /// pool of `max(workers, 2)` threads shared by all workers.
    pub fn run(self) -> io::Result<()> {
        let pool = DefaultThreadPool::new(self.workers.max(2));
        let mut threads = Vec::with_capacity(self.workers);
        let mut result = Ok(());
        for index in 1..self.workers {
            let spawned = self.listeners.accept_only().and_then(|listeners| {
                spawn_worker(index, self.shared.clone(), listeners, pool.clone())
            });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    self.shared.stop.close();
                    result = Err(err);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = run_worker(0, self.shared.clone(), self.listeners, pool);
        }
        for thread in threads {
            let joined = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("worker thread panicked")));
            result = result.and(joined);
        }
        for path in &self.addrs.unix {
            let _ = std::fs::remove_file(path);
        }
        result
    }
}

/// Binds `spec`, runs `on_bound` once every listener is bound (write the
/// pid file there), serves on `spec.workers` monoio threads and returns on
/// SIGTERM or SIGINT after the graceful drain. SIGHUP reloads the access
/// rules.
pub fn serve(spec: ServerSpec, on_bound: impl FnOnce(&BoundAddrs)) -> io::Result<()> {
    // Caught from before the bind, so a SIGTERM during start-up still
    // means a graceful stop.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let server = Server::bind(spec)?;
    on_bound(server.addrs());
    let handle = server.handle();
    let signals_handle = signals.handle();
    let signal_thread = std::thread::Builder::new()
        .name("psrtd-signals".into())
        .spawn(move || handle_signals(&mut signals, &handle))?;
    let served = server.run();
    signals_handle.close();
    let _ = signal_thread.join();
    served
}

fn handle_signals(signals: &mut signal_hook::iterator::Signals, handle: &ServerHandle) {
    for signal in signals.forever() {
        if signal == signal_hook::consts::SIGHUP {
            tracing::info!("SIGHUP: reloading passwords, ACL and keys");
            let _ = handle.reload_blocking();
        } else {
            handle.stop();
            return;
        }
    }
}

fn spawn_worker(
    index: usize,
    shared: Arc<Shared>,
    listeners: Listeners,
    pool: DefaultThreadPool,
) -> io::Result<std::thread::JoinHandle<io::Result<()>>> {
    std::thread::Builder::new()
        .name(format!("psrtd-worker-{index}"))
        .spawn(move || run_worker(index, shared, listeners, pool))
}

/// One worker thread: builds its runtime (io_uring when the kernel allows,
/// else epoll; `MONOIO_FORCE_LEGACY_DRIVER=1` forces epoll), serves its
/// listeners, and returns after the drain.
fn run_worker(
    index: usize,
    shared: Arc<Shared>,
    listeners: Listeners,
    pool: DefaultThreadPool,
) -> io::Result<()> {
    let built = RuntimeBuilder::<FusionDriver>::new()
        .enable_timer()
        .attach_thread_pool(Box::new(pool))
        .build();
    let mut runtime = match built {
        Ok(runtime) => runtime,
        Err(err) => {
            shared.stop.close();
            return Err(err);
        }
    };
    let driver = match runtime {
        FusionRuntime::Uring(_) => "io_uring",
        FusionRuntime::Legacy(_) => "legacy (epoll)",
    };
    tracing::info!(worker = index, driver, "monoio worker started");
    let served = runtime.block_on(worker(index, shared.clone(), listeners));
    if served.is_err() {
        shared.stop.close();
    }
    served
}

/// Serves one thread's listeners until the stop, then waits for every
/// connection (on all threads) to finish or the drain timeout to pass.
/// Tasks still running when this returns are dropped with the runtime.
async fn worker(index: usize, shared: Arc<Shared>, listeners: Listeners) -> io::Result<()> {
    accept::spawn_all(&shared, listeners)?;
    shared.stopped().await;
    if index == 0 {
        tracing::info!("shutting down: draining queued messages");
    }
    let deadline = Instant::now() + shared.drain_timeout + Duration::from_secs(1);
    while shared.live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL).await;
    }
    Ok(())
}

/// A TCP listener without `SO_REUSEPORT` (a taken port fails to bind).
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A Unix listener with mode 0770; a stale socket file from a crashed run
/// is replaced.
fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let name = |e| named(e, &path.display().to_string());
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path).map_err(name)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(name)?;
    socket.set_nonblocking(true).map_err(name)?;
    socket
        .bind(&SockAddr::unix(path).map_err(name)?)
        .map_err(name)?;
    socket.listen(BACKLOG).map_err(name)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o770)).map_err(name)?;
    Ok(socket.into())
}

fn named(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
