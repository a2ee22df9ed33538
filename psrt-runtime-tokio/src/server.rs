//! The server: binds every listener of a [`ServerSpec`], then serves until
//! told to stop.
//!
//! The runtime-independent part (the broker behind its lock, the listener
//! plan, `/status` data, reload bookkeeping) is
//! [`psrt_proto::server_support`]; this module adds tokio's sockets, tasks
//! and stop signal. The broker is locked only around calls into the core,
//! never across an `.await`. Each socket has its own task that owns the
//! socket's [`psrt_proto::conn::Connection`]: decoding, TLS and writes run
//! in parallel on the worker threads.

mod conn_task;
mod stats_task;
mod udp_task;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use psrt_checks::CheckPool;
use psrt_proto::broker::{Broker, PasswordCheck};
use psrt_proto::conn::Transport;
use psrt_proto::server_support::{Bind, Listeners, ServerCore, bind_all};
use psrt_proto::spec::ServerSpec;
use rand::SeedableRng;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub use psrt_proto::server_support::BoundAddrs;

/// Pending connections the kernel queues per TCP listener.
const BACKLOG: u32 = 1024;
/// Pause after a failed accept (out of descriptors, say), so the loop
/// backs off instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// State every task of one server shares: the runtime-independent
/// [`ServerCore`], which it dereferences to, plus tokio's stop signal and
/// the password checkers.
pub(crate) struct Shared {
    core: ServerCore,
    /// Flips to true when the server starts shutting down.
    stopping: watch::Receiver<bool>,
    /// Idle-priority threads for bcrypt, so a flood of wrong passwords
    /// never competes with message routing for the CPU.
    checks: CheckPool,
}

impl Deref for Shared {
    type Target = ServerCore;

    fn deref(&self) -> &ServerCore {
        &self.core
    }
}

impl Shared {
    /// Verifies a password on the check pool; a check that could not run
    /// counts as failed.
    pub(crate) async fn verify(&self, check: PasswordCheck) -> bool {
        let (done, result) = oneshot::channel();
        self.checks.submit(check, move |ok| {
            let _ = done.send(ok);
        });
        result.await.unwrap_or(false)
    }

    /// Logs and drops the broker's pending events. Call with the lock held.
    pub(crate) fn log_events(broker: &mut Broker) {
        psrt_checks::driver::log_events(broker);
    }
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    listeners: Listeners<TcpListener, UnixListener, UdpSocket>,
    addrs: BoundAddrs,
}

/// Controls a running server from elsewhere (tests, signal handlers).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
}

impl ServerHandle {
    /// Starts the graceful shutdown.
    pub fn stop(&self) {
        self.stop_tx.send_replace(true);
    }

    /// Reloads the access rules on tokio's blocking pool; on error the
    /// old rules stay and the message is returned (and logged).
    pub async fn reload(&self) -> Result<(), String> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || psrt_checks::driver::reload(&shared.core))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?
    }

    /// Runs `f` on the broker (stats, inspection).
    pub fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        f(&mut self.shared.lock())
    }
}

impl Server {
    /// Binds every listener of `spec`. Must be called inside a tokio
    /// runtime. Errors name the address that failed.
    pub async fn bind(spec: ServerSpec) -> io::Result<Server> {
        let (listeners, addrs) = bind_all(&spec, &mut TokioBind)?;
        let (stop_tx, stopping) = watch::channel(false);
        let rng = Box::new(rand::rngs::StdRng::from_os_rng());
        let shared = Arc::new(Shared {
            core: ServerCore::new(&spec, rng, Instant::now()),
            stopping,
            checks: CheckPool::for_server(&spec)?,
        });
        Ok(Server {
            shared,
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
    pub async fn run(self) {
        let Server {
            shared,
            listeners,
            addrs,
            ..
        } = self;
        let mut tasks = JoinSet::new();
        // Every connection task holds a clone of `alive`; `recv` returns
        // `None` once all of them have ended.
        let (alive, mut all_ended) = mpsc::channel::<()>(1);
        for listener in listeners.tcp {
            let accept = accept_conns(shared.clone(), listener, Transport::Tcp, alive.clone());
            tasks.spawn(accept);
        }
        for listener in listeners.unix {
            let accept = accept_conns(shared.clone(), listener, Transport::Unix, alive.clone());
            tasks.spawn(accept);
        }
        for socket in listeners.udp {
            tasks.spawn(udp_task::serve(shared.clone(), socket));
        }
        if let Some(listener) = listeners.stats {
            tasks.spawn(accept_loop(
                shared.clone(),
                listener,
                |shared, stream, _| {
                    tokio::spawn(stats_task::serve(shared.clone(), stream));
                },
            ));
        }
        let mut stopping = shared.stopping.clone();
        let _ = stopping.wait_for(|stop| *stop).await;
        tracing::info!("shutting down: draining queued messages");
        drop(alive);
        let _ = tokio::time::timeout(shared.drain_limit(), async {
            while tasks.join_next().await.is_some() {}
            // Connection tasks are detached: wait until they have drained.
            let _ = all_ended.recv().await;
        })
        .await;
        tasks.abort_all();
        for path in &addrs.unix {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Builds a runtime with `spec.workers` threads, serves `spec` and returns
/// on SIGTERM or SIGINT after the graceful drain. SIGHUP reloads the
/// access rules. `on_bound` runs once every listener is bound (write the
/// pid file there).
pub fn serve(spec: ServerSpec, on_bound: impl FnOnce(&BoundAddrs)) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.workers.max(1))
        .thread_name("psrtd-worker")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::bind(spec).await?;
        on_bound(server.addrs());
        let handle = server.handle();
        tokio::spawn(signals(handle));
        server.run().await;
        Ok(())
    })
}

async fn signals(handle: ServerHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading passwords, ACL and keys");
                let _ = handle.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    handle.stop();
}

/// Opens tokio sockets for [`bind_all`]; needs the runtime's context.
struct TokioBind;

impl Bind for TokioBind {
    type Tcp = TcpListener;
    type Unix = UnixListener;
    type Udp = UdpSocket;

    fn tcp(&mut self, addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(BACKLOG)?;
        let local = listener.local_addr()?;
        Ok((listener, local))
    }

    fn unix(&mut self, path: &Path) -> io::Result<UnixListener> {
        UnixListener::from_std(psrt_checks::driver::bind_unix(path)?)
    }

    fn udp(&mut self, addr: SocketAddr) -> io::Result<(UdpSocket, SocketAddr)> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        Ok((socket, local))
    }
}

/// A listener the accept loops take sockets from.
trait Accept: Send + Sync + 'static {
    /// The accepted socket.
    type Stream;

    /// Accepts one socket; returns it with the peer's name for logs.
    fn next_conn(&self) -> impl Future<Output = io::Result<(Self::Stream, String)>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn next_conn(&self) -> io::Result<(TcpStream, String)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer.to_string()))
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;

    async fn next_conn(&self) -> io::Result<(UnixStream, String)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, String::from("unix")))
    }
}

/// Accepts on `listener` until the server stops and hands each socket to
/// `on_accept`. A failed accept is logged and followed by a short pause.
async fn accept_loop<L: Accept>(
    shared: Arc<Shared>,
    listener: L,
    on_accept: impl Fn(&Arc<Shared>, L::Stream, String),
) {
    let mut stopping = shared.stopping.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.next_conn() => accepted,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => on_accept(&shared, stream, peer),
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Accepts protocol connections until the server stops; each is served on
/// its own task, which holds a clone of `alive` so [`Server::run`] can
/// wait for it to drain on shutdown.
async fn accept_conns<L>(
    shared: Arc<Shared>,
    listener: L,
    transport: Transport,
    alive: mpsc::Sender<()>,
) where
    L: Accept,
    L::Stream: conn_task::Socket,
{
    accept_loop(shared, listener, |shared, stream, peer| {
        let (shared, alive) = (shared.clone(), alive.clone());
        tokio::spawn(async move {
            conn_task::serve(shared, stream, transport, peer).await;
            drop(alive);
        });
    })
    .await;
}
