//! The runtime-independent half of a server driver: what the tokio, smol
//! and monoio drivers would otherwise each write again.
//!
//! * [`ServerCore`]: the state every task of one server shares (the broker
//!   behind its lock, the connection policy, the timeouts, what `/status`
//!   shows), built once from a [`ServerSpec`].
//! * [`bind_all`]: the listener plan of a spec, bound through the driver's
//!   [`Bind`] in a fixed order, with errors that name the address and the
//!   addresses actually bound collected in a [`BoundAddrs`].
//!
//! Nothing here reads the clock or starts a task: times come in as
//! arguments, and the sockets are opened by the driver's [`Bind`].

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::RngCore;

use crate::broker::{AuthConfig, Broker, PasswordCheck};
use crate::conn::{Action, ConnConfig};
use crate::http::StatusInfo;
use crate::spec::{Reloader, ServerSpec};
use crate::stats_conn::StatsConnection;

/// How much longer than the connections' own drain deadline a stopping
/// server waits for them, so each connection ends by its own deadline
/// rather than being cut off by the server's.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

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

/// How a driver opens one socket of each kind; [`bind_all`] calls it for
/// every listener of a [`ServerSpec`].
pub trait Bind {
    /// A TCP listener (protocol and stats listeners).
    type Tcp;
    /// A Unix-socket listener.
    type Unix;
    /// A UDP socket.
    type Udp;

    /// Binds a TCP listener; returns it with the address it got.
    fn tcp(&mut self, addr: SocketAddr) -> io::Result<(Self::Tcp, SocketAddr)>;
    /// Binds a Unix-socket listener at `path`.
    fn unix(&mut self, path: &Path) -> io::Result<Self::Unix>;
    /// Binds a UDP socket; returns it with the address it got.
    fn udp(&mut self, addr: SocketAddr) -> io::Result<(Self::Udp, SocketAddr)>;
}

/// Every socket of a spec, bound and not yet served; each list is in the
/// spec's order, as are the matching lists of [`BoundAddrs`].
#[derive(Debug)]
pub struct Listeners<T, U, D> {
    /// TCP listeners.
    pub tcp: Vec<T>,
    /// Unix-socket listeners (their paths are in [`BoundAddrs::unix`]).
    pub unix: Vec<U>,
    /// UDP sockets.
    pub udp: Vec<D>,
    /// Stats HTTP listener.
    pub stats: Option<T>,
}

/// The [`Listeners`] that a [`Bind`] opens.
pub type BoundListeners<B> = Listeners<<B as Bind>::Tcp, <B as Bind>::Unix, <B as Bind>::Udp>;

/// Binds every listener of `spec` with `binder`: TCP, Unix, UDP, then
/// stats. The first failure is returned with the address (`udp ...`,
/// `stats ...`) or path in its message, so the operator sees which one.
pub fn bind_all<B: Bind>(
    spec: &ServerSpec,
    binder: &mut B,
) -> io::Result<(BoundListeners<B>, BoundAddrs)> {
    let mut addrs = BoundAddrs::default();
    let mut listeners = Listeners {
        tcp: Vec::with_capacity(spec.tcp.len()),
        unix: Vec::with_capacity(spec.unix.len()),
        udp: Vec::with_capacity(spec.udp.len()),
        stats: None,
    };
    for &addr in &spec.tcp {
        let (listener, local) = binder.tcp(addr).map_err(|e| named(e, &addr.to_string()))?;
        addrs.tcp.push(local);
        listeners.tcp.push(listener);
    }
    for path in &spec.unix {
        let listener = binder
            .unix(path)
            .map_err(|e| named(e, &path.display().to_string()))?;
        addrs.unix.push(path.clone());
        listeners.unix.push(listener);
    }
    for &addr in &spec.udp {
        let (socket, local) = binder
            .udp(addr)
            .map_err(|e| named(e, &format!("udp {addr}")))?;
        addrs.udp.push(local);
        listeners.udp.push(socket);
    }
    if let Some(addr) = spec.stats {
        let (listener, local) = binder
            .tcp(addr)
            .map_err(|e| named(e, &format!("stats {addr}")))?;
        addrs.stats = Some(local);
        listeners.stats = Some(listener);
    }
    Ok((listeners, addrs))
}

/// `err` with `what` in front of its message, same kind.
fn named(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// The state every task of one server shares, whatever the runtime.
///
/// The broker sits behind a `std::sync::Mutex`, locked only around calls
/// into the core and never across an `.await`; the other fields are
/// settings fixed at start.
pub struct ServerCore {
    /// TLS and plain-connection policy every connection starts from.
    pub conn: Arc<ConnConfig>,
    /// Idle timeout of a connection (and of a stats request).
    pub timeout: Duration,
    /// On shutdown, how long a connection may keep sending queued
    /// messages before it is closed anyway.
    pub drain_timeout: Duration,
    broker: Mutex<Broker>,
    reload: Option<Reloader>,
    started: Instant,
    host: String,
    version: String,
    build: String,
}

impl ServerCore {
    /// The shared state of a server for `spec`, started at `now`; `rng`
    /// makes the broker's session tokens.
    pub fn new(spec: &ServerSpec, rng: Box<dyn RngCore + Send>, now: Instant) -> Self {
        let mut broker = Broker::new(spec.limits, spec.auth.clone(), rng);
        broker.set_latency_warn(spec.latency_warn);
        Self {
            conn: Arc::new(spec.conn.clone()),
            timeout: spec.limits.timeout,
            drain_timeout: spec.drain_timeout,
            broker: Mutex::new(broker),
            reload: spec.reload.clone(),
            started: now,
            host: spec.host.clone(),
            version: spec.version.clone(),
            build: spec.build.clone(),
        }
    }

    /// Locks the broker. A panic in another task while it held the lock
    /// does not stop the server: the broker's own state is kept consistent
    /// by its methods, so the poison flag is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Broker> {
        self.broker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long a stopping server waits for its connections to drain
    /// before it drops the ones still open.
    pub fn drain_limit(&self) -> Duration {
        self.drain_timeout + DRAIN_GRACE
    }

    /// What `/status` and `/metrics` show besides the broker's counters,
    /// at monotonic time `now` and wall-clock time `wall`.
    pub fn status_info(&self, now: Instant, wall: SystemTime) -> StatusInfo {
        let time_us = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        StatusInfo {
            time_us,
            uptime_s: now.saturating_duration_since(self.started).as_secs(),
            host: self.host.clone(),
            version: self.version.clone(),
            build: self.build.clone(),
        }
    }

    /// How to re-read the access rules (on SIGHUP); `None` when the spec
    /// has no files to re-read. Running it blocks while the files are
    /// read, so a driver runs it off the event loop and hands the result
    /// to [`Self::reload`].
    pub fn reloader(&self) -> Option<&Reloader> {
        self.reload.as_ref()
    }

    /// Puts freshly loaded access rules in force; an error (the files
    /// could not be read or were invalid) keeps the old rules and is
    /// returned unchanged.
    pub fn reload(&self, loaded: Result<AuthConfig, String>) -> Result<(), String> {
        self.lock().reload(loaded?);
        Ok(())
    }

    /// Feeds what a stats socket has read to its connection. Returns the
    /// password check to run off the event loop, if the request needs one;
    /// its result goes to [`Self::stats_checked`].
    pub fn stats_input(
        &self,
        conn: &mut StatsConnection,
        now: Instant,
        wall: SystemTime,
    ) -> Option<PasswordCheck> {
        let info = self.status_info(now, wall);
        conn.handle_input(&mut self.lock(), &info);
        conn.poll_action().map(|Action::CheckPassword(check)| check)
    }

    /// Answers a stats request once its password check has run.
    pub fn stats_checked(
        &self,
        conn: &mut StatsConnection,
        ok: bool,
        now: Instant,
        wall: SystemTime,
    ) {
        let info = self.status_info(now, wall);
        conn.password_checked(ok, &mut self.lock(), &info);
    }
}

#[cfg(test)]
mod tests;
