//! The server: binds every listener of a [`ServerSpec`], then serves until
//! told to stop.
//!
//! The runtime-independent part (the broker behind its lock, the listener
//! plan, `/status` data, reload bookkeeping) is
//! [`psrt_proto::server_support`]; this module adds smol's sockets, tasks
//! and stop signal. The broker is locked only around calls into the core,
//! never across an `.await`. Each socket has its own task that owns the
//! socket's [`psrt_proto::conn::Connection`]: decoding, TLS and writes run
//! in parallel on every thread that drives the server's executor.
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
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::ops::Deref;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use psrt_checks::CheckPool;
use psrt_proto::broker::{Broker, PasswordCheck};
use psrt_proto::conn::{BrokerLock, Transport};
use psrt_proto::server_support::{Bind, Listeners, ServerCore, bind_all};
use psrt_proto::spec::ServerSpec;
use rand::SeedableRng;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::{Async, Executor, Timer};

pub use psrt_proto::server_support::BoundAddrs;

/// Pause after a failed accept (out of descriptors, say), so the loop
/// backs off instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// State every task of one server shares: the runtime-independent
/// [`ServerCore`], which it dereferences to, plus smol's stop signal and
/// executor and the password checkers.
pub(crate) struct Shared {
    core: ServerCore,
    /// Closed (never sent to) when the server starts shutting down.
    stopping: Receiver<()>,
    /// Where tasks are spawned. Weak: the executor owns the tasks that own
    /// this struct, and a strong reference would keep them all alive.
    executor: Weak<Executor<'static>>,
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
}

/// `task`, except that a panic is logged and ends only this task instead
/// of unwinding through (and ending) the worker thread that polled it.
async fn guarded(task: impl Future<Output = ()>) {
    if AssertUnwindSafe(task).catch_unwind().await.is_err() {
        tracing::error!("a server task panicked; it was dropped");
    }
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    shared: Arc<Shared>,
    executor: Arc<Executor<'static>>,
    stop_tx: Sender<()>,
    listeners: Listeners<Async<TcpListener>, Async<UnixListener>, Async<UdpSocket>>,
    addrs: BoundAddrs,
}

/// Controls a running server from elsewhere (tests, signal handlers).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    stop_tx: Sender<()>,
}

impl ServerHandle {
    /// Starts the graceful shutdown.
    pub fn stop(&self) {
        self.stop_tx.close();
    }

    /// Reloads the access rules on smol's blocking pool; on error the old
    /// rules stay and the message is returned (and logged).
    pub async fn reload(&self) -> Result<(), String> {
        let shared = self.shared.clone();
        let reload = move || psrt_checks::driver::reload(&shared.core);
        smol::unblock(move || std::panic::catch_unwind(AssertUnwindSafe(reload)))
            .await
            .map_err(|_| String::from("reload task failed: it panicked"))?
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
        let (listeners, addrs) = bind_all(&spec, &mut SmolBind)?;
        let (stop_tx, stopping) = smol::channel::bounded(1);
        let executor = Arc::new(Executor::new());
        let rng = Box::new(rand::rngs::StdRng::from_os_rng());
        let shared = Arc::new(Shared {
            core: ServerCore::new(&spec, rng, Instant::now()),
            stopping,
            executor: Arc::downgrade(&executor),
            checks: CheckPool::for_server(&spec)?,
        });
        Ok(Server {
            shared,
            executor,
            stop_tx,
            listeners,
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
        let Server {
            shared,
            executor,
            listeners,
            addrs,
            ..
        } = self;
        // Every connection task holds a clone of `live`; `recv` fails once
        // the last one is dropped, i.e. when every connection is closed.
        let (live, all_closed) = smol::channel::bounded::<()>(1);
        let mut tasks = Vec::new();
        for listener in listeners.tcp {
            let accept = accept_conns(shared.clone(), listener, Transport::Tcp, live.clone());
            tasks.push(executor.spawn(guarded(accept)));
        }
        for listener in listeners.unix {
            let accept = accept_conns(shared.clone(), listener, Transport::Unix, live.clone());
            tasks.push(executor.spawn(guarded(accept)));
        }
        for socket in listeners.udp {
            tasks.push(executor.spawn(guarded(udp_task::serve(shared.clone(), socket))));
        }
        if let Some(listener) = listeners.stats {
            let accept = accept_loop(shared.clone(), listener, |shared, stream, _| {
                shared.spawn(stats_task::serve(shared.clone(), stream));
            });
            tasks.push(executor.spawn(guarded(accept)));
        }
        drop(live);
        shared.stopped().await;
        tracing::info!("shutting down: draining queued messages");
        let drained = async {
            for task in tasks {
                task.await;
            }
            let _ = all_closed.recv().await;
        };
        drained
            .or(async {
                Timer::after(shared.drain_limit()).await;
            })
            .await;
        for path in &addrs.unix {
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

/// Opens smol sockets for [`bind_all`]; needs no runtime.
struct SmolBind;

impl Bind for SmolBind {
    type Tcp = Async<TcpListener>;
    type Unix = Async<UnixListener>;
    type Udp = Async<UdpSocket>;

    fn tcp(&mut self, addr: SocketAddr) -> io::Result<(Async<TcpListener>, SocketAddr)> {
        let listener = Async::<TcpListener>::bind(addr)?;
        let local = listener.get_ref().local_addr()?;
        Ok((listener, local))
    }

    fn unix(&mut self, path: &Path) -> io::Result<Async<UnixListener>> {
        Async::new(psrt_checks::driver::bind_unix(path)?)
    }

    fn udp(&mut self, addr: SocketAddr) -> io::Result<(Async<UdpSocket>, SocketAddr)> {
        let socket = Async::<UdpSocket>::bind(addr)?;
        let local = socket.get_ref().local_addr()?;
        Ok((socket, local))
    }
}

/// A listener the accept loops take sockets from.
trait Accept: Send + Sync + 'static {
    /// The accepted kind of socket.
    type Socket: socket::Socket;

    /// Accepts one socket; returns it with the peer's name for logs.
    fn next_conn(&self) -> impl Future<Output = io::Result<(Async<Self::Socket>, String)>> + Send;
}

impl Accept for Async<TcpListener> {
    type Socket = TcpStream;

    async fn next_conn(&self) -> io::Result<(Async<TcpStream>, String)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.get_ref().set_nodelay(true);
        Ok((stream, peer.to_string()))
    }
}

impl Accept for Async<UnixListener> {
    type Socket = UnixStream;

    async fn next_conn(&self) -> io::Result<(Async<UnixStream>, String)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, String::from("unix")))
    }
}

/// Accepts on `listener` until the server stops and hands each socket to
/// `on_accept`. A failed accept is logged and followed by a short pause.
async fn accept_loop<L: Accept>(
    shared: Arc<Shared>,
    listener: L,
    on_accept: impl Fn(&Arc<Shared>, Async<L::Socket>, String),
) {
    loop {
        let accepted = async { Some(listener.next_conn().await) }
            .or(async {
                shared.stopped().await;
                None
            })
            .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => on_accept(&shared, stream, peer),
            Some(Err(err)) => {
                tracing::warn!(%err, "accept failed");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Accepts protocol connections until the server stops; each is served on
/// its own task, which holds a clone of `live` so the drain can wait for
/// it on shutdown.
async fn accept_conns<L: Accept>(
    shared: Arc<Shared>,
    listener: L,
    transport: Transport,
    live: Sender<()>,
) {
    accept_loop(shared, listener, |shared, stream, peer| {
        let serve = conn_task::serve(shared.clone(), stream, transport, peer, live.clone());
        shared.spawn(serve);
    })
    .await;
}
