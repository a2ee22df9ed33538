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
//! The runtime-independent part (the broker behind its lock, the listener
//! plan, `/status` data, reload bookkeeping) is
//! [`psrt_proto::server_support`], shared by all threads; the broker is
//! locked only around calls into the core, never across an `.await`.
//! Wakes from other threads (the broker queueing a message for a socket,
//! a password check finishing, the stop signal) go through std `Waker`s,
//! which monoio's `sync` feature makes work across threads.

mod accept;
mod conn_task;
mod stats_task;
mod udp_task;

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::ops::Deref;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use monoio::blocking::DefaultThreadPool;
use monoio::{FusionDriver, FusionRuntime, RuntimeBuilder};
use psrt_checks::CheckPool;
use psrt_proto::broker::{Broker, PasswordCheck};
use psrt_proto::conn::BrokerLock;
use psrt_proto::server_support::{Bind, ServerCore, bind_all};
use psrt_proto::spec::ServerSpec;
use rand::SeedableRng;
use socket2::{Domain, Socket, Type};

pub use psrt_proto::server_support::BoundAddrs;

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;
/// How often the drain checks whether every connection has finished.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// State every task of one server shares, across all worker threads: the
/// runtime-independent [`ServerCore`], which it dereferences to, plus the
/// stop signal, the count of live connections and the password checkers.
pub(crate) struct Shared {
    core: ServerCore,
    /// Closed (never sent on) when the server starts shutting down: every
    /// task waiting on `stopping.recv()` wakes, on whatever thread.
    stop: async_channel::Sender<()>,
    stopping: async_channel::Receiver<()>,
    /// Connection tasks still running, on all threads; the drain waits for
    /// zero.
    live: AtomicUsize,
    /// Idle-priority threads for bcrypt, so a flood of wrong passwords
    /// never competes with message routing for the CPU.
    checks: CheckPool,
}

impl BrokerLock for Shared {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        psrt_checks::driver::with_broker_logged(&self.core, f)
    }
}

impl Deref for Shared {
    type Target = ServerCore;

    fn deref(&self) -> &ServerCore {
        &self.core
    }
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

/// The bound std sockets, converted to monoio ones on each worker thread.
type Listeners = psrt_proto::server_support::Listeners<TcpListener, UnixListener, UdpSocket>;

/// Duplicates of the TCP and Unix listeners, for another worker.
fn accept_only(listeners: &Listeners) -> io::Result<Listeners> {
    Ok(Listeners {
        tcp: listeners
            .tcp
            .iter()
            .map(TcpListener::try_clone)
            .collect::<io::Result<_>>()?,
        unix: listeners
            .unix
            .iter()
            .map(UnixListener::try_clone)
            .collect::<io::Result<_>>()?,
        udp: Vec::new(),
        stats: None,
    })
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    shared: Arc<Shared>,
    listeners: Listeners,
    workers: usize,
    addrs: BoundAddrs,
}

/// Controls a running server from elsewhere (tests, signal handlers).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
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
        psrt_checks::driver::reload(&self.shared.core)
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
        let (listeners, addrs) = bind_all(&spec, &mut StdBind)?;
        let (stop, stopping) = async_channel::bounded(1);
        let rng = Box::new(rand::rngs::StdRng::from_os_rng());
        let shared = Arc::new(Shared {
            core: ServerCore::new(&spec, rng, Instant::now()),
            stop,
            stopping,
            live: AtomicUsize::new(0),
            checks: CheckPool::for_server(&spec)?,
        });
        Ok(Server {
            shared,
            listeners,
            workers: spec.workers.max(1),
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
            let spawned = accept_only(&self.listeners).and_then(|listeners| {
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
    let deadline = Instant::now() + shared.drain_limit();
    while shared.live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL).await;
    }
    Ok(())
}

/// Opens the std sockets every worker adopts, for [`bind_all`]. They are
/// bound through socket2 or std, not monoio, whose own bind sets
/// `SO_REUSEPORT`: a taken port would then bind without an error.
struct StdBind;

impl Bind for StdBind {
    type Tcp = TcpListener;
    type Unix = UnixListener;
    type Udp = UdpSocket;

    fn tcp(&mut self, addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener = TcpListener::from(socket);
        let local = listener.local_addr()?;
        Ok((listener, local))
    }

    fn unix(&mut self, path: &Path) -> io::Result<UnixListener> {
        psrt_checks::driver::bind_unix(path)
    }

    fn udp(&mut self, addr: SocketAddr) -> io::Result<(UdpSocket, SocketAddr)> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        Ok((socket, local))
    }
}
