//! The server: binds every listener of a [`ServerSpec`], then serves until
//! told to stop.
//!
//! One [`Broker`] is shared by all tasks behind a `std::sync::Mutex`; it is
//! locked only around calls into the core, never across an `.await`.
//! Each socket has its own task that owns the socket's
//! [`psrt_proto::conn::Connection`]: decoding, TLS and writes run in
//! parallel on the worker threads.

mod conn_task;
mod stats_task;
mod udp_task;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use psrt_checks::CheckPool;
use psrt_proto::broker::{Broker, EventLevel, PasswordCheck};
use psrt_proto::conn::{ConnConfig, Transport};
use psrt_proto::http::StatusInfo;
use psrt_proto::spec::{Reloader, ServerSpec};
use rand::SeedableRng;
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// State every task of one server shares.
pub(crate) struct Shared {
    broker: Mutex<Broker>,
    conn: Arc<ConnConfig>,
    timeout: Duration,
    started: Instant,
    host: String,
    version: String,
    /// Flips to true when the server starts shutting down.
    stopping: watch::Receiver<bool>,
    drain_timeout: Duration,
    /// Idle-priority threads for bcrypt, so a flood of wrong passwords
    /// never competes with message routing for the CPU.
    checks: CheckPool,
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
    stop_tx: watch::Sender<bool>,
    tcp: Vec<TcpListener>,
    unix: Vec<(UnixListener, PathBuf)>,
    udp: Vec<UdpSocket>,
    stats: Option<TcpListener>,
    reload: Option<Reloader>,
    addrs: BoundAddrs,
}

/// Controls a running server from elsewhere (tests, signal handlers).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    reload: Option<Reloader>,
}

impl ServerHandle {
    /// Starts the graceful shutdown.
    pub fn stop(&self) {
        self.stop_tx.send_replace(true);
    }

    /// Reloads the access rules; on error the old rules stay and the
    /// message is returned (and logged).
    pub async fn reload(&self) -> Result<(), String> {
        let Some(reload) = self.reload.clone() else {
            return Ok(());
        };
        let loaded = tokio::task::spawn_blocking(move || reload())
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
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
    /// Binds every listener of `spec`. Must be called inside a tokio
    /// runtime. Errors name the address that failed.
    pub async fn bind(spec: ServerSpec) -> io::Result<Server> {
        let mut addrs = BoundAddrs::default();
        let mut tcp = Vec::new();
        for addr in &spec.tcp {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| named(e, &addr.to_string()))?;
            addrs.tcp.push(listener.local_addr()?);
            tcp.push(listener);
        }
        let mut unix = Vec::new();
        for path in &spec.unix {
            unix.push((bind_unix(path)?, path.clone()));
            addrs.unix.push(path.clone());
        }
        let mut udp = Vec::new();
        for addr in &spec.udp {
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|e| named(e, &format!("udp {addr}")))?;
            addrs.udp.push(socket.local_addr()?);
            udp.push(socket);
        }
        let stats = match spec.stats {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| named(e, &format!("stats {addr}")))?;
                addrs.stats = Some(listener.local_addr()?);
                Some(listener)
            }
            None => None,
        };
        let (stop_tx, stopping) = watch::channel(false);
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
            stopping,
            drain_timeout: spec.drain_timeout,
            checks: CheckPool::new((spec.workers / 2).max(1), spec.limits.max_pending_checks)?,
        });
        Ok(Server {
            shared,
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
    pub async fn run(self) {
        let mut tasks = JoinSet::new();
        // Every connection task holds a clone of `alive`; `recv` returns
        // `None` once all of them have ended.
        let (alive, mut all_ended) = mpsc::channel::<()>(1);
        for listener in self.tcp {
            tasks.spawn(accept_tcp(self.shared.clone(), listener, alive.clone()));
        }
        let mut unix_paths = Vec::new();
        for (listener, path) in self.unix {
            unix_paths.push(path);
            tasks.spawn(accept_unix(self.shared.clone(), listener, alive.clone()));
        }
        for socket in self.udp {
            tasks.spawn(udp_task::serve(self.shared.clone(), socket));
        }
        if let Some(listener) = self.stats {
            tasks.spawn(stats_task::accept(self.shared.clone(), listener));
        }
        let mut stopping = self.shared.stopping.clone();
        let _ = stopping.wait_for(|stop| *stop).await;
        tracing::info!("shutting down: draining queued messages");
        let drain = self.shared.drain_timeout + Duration::from_secs(1);
        drop(alive);
        let _ = tokio::time::timeout(drain, async {
            while tasks.join_next().await.is_some() {}
            // Connection tasks are detached: wait until they have drained.
            let _ = all_ended.recv().await;
        })
        .await;
        tasks.abort_all();
        for path in unix_paths {
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

async fn accept_tcp(shared: Arc<Shared>, listener: TcpListener, alive: mpsc::Sender<()>) {
    let mut stopping = shared.stopping.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                spawn_conn(&shared, stream, Transport::Tcp, peer.to_string(), &alive);
            }
            Err(err) => accept_error(err).await,
        }
    }
}

async fn accept_unix(shared: Arc<Shared>, listener: UnixListener, alive: mpsc::Sender<()>) {
    let mut stopping = shared.stopping.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                spawn_conn(&shared, stream, Transport::Unix, "unix".into(), &alive);
            }
            Err(err) => accept_error(err).await,
        }
    }
}

/// Serves one accepted socket on its own task, which holds a clone of
/// `alive` so [`Server::run`] can wait for it to drain on shutdown.
fn spawn_conn<S>(
    shared: &Arc<Shared>,
    stream: S,
    transport: Transport,
    peer: String,
    alive: &mpsc::Sender<()>,
) where
    S: conn_task::Socket,
{
    let alive = alive.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        conn_task::serve(shared, stream, transport, peer).await;
        drop(alive);
    });
}

/// Out of descriptors or a transient error: log and back off briefly
/// instead of spinning.
async fn accept_error(err: io::Error) {
    tracing::warn!(%err, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn bind_unix(path: &PathBuf) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    // A stale socket file from a crashed run would make bind fail.
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        std::fs::remove_file(path).map_err(|e| named(e, &path.display().to_string()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| named(e, &path.display().to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o770))
        .map_err(|e| named(e, &path.display().to_string()))?;
    Ok(listener)
}

fn named(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
