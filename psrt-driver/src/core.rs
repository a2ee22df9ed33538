//! [`ServerCore`]: the state every task of one server shares, whatever
//! the runtime: the broker behind its lock, the connection policy, the
//! timeouts, what `/status` shows, and how to reload the access rules;
//! built once from a [`ServerSpec`].
//!
//! Nothing here reads the clock: times come in as arguments, so the tests
//! pick them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use psrt_proto::broker::{AuthConfig, Broker, PasswordCheck};
use psrt_proto::cluster::Cluster;
use psrt_proto::conn::{Action, ConnConfig};
use psrt_proto::http::StatusInfo;
use psrt_proto::spec::{Reloader, ServerSpec};
use psrt_proto::stats::{History, RATE_TOPICS};
use psrt_proto::stats_conn::StatsConnection;
use psrt_proto::topk::SortBy;
use rand::RngCore;

use crate::cluster::ClusterControl;
use crate::events::AuditLog;
use crate::metrics::{ConnMetrics, process_info};

/// How much longer than the connections' own drain deadline a stopping
/// server waits for them, so each connection ends by its own deadline
/// rather than being cut off by the server's.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

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
    /// The rate-limited audit log.
    pub audit: AuditLog,
    /// Connection counters for `/metrics`.
    pub metrics: ConnMetrics,
    history: Mutex<History>,
    /// The cluster peer list and its reload.
    pub cluster: ClusterControl,
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
        *broker.cluster_mut() = Cluster::new(spec.cluster.limits);
        Self {
            conn: Arc::new(spec.conn.clone()),
            timeout: spec.limits.timeout,
            drain_timeout: spec.drain_timeout,
            audit: AuditLog::default(),
            metrics: ConnMetrics::default(),
            history: Mutex::new(History::default()),
            cluster: ClusterControl::new(&spec.cluster),
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
    /// at monotonic time `now` and wall-clock time `wall` (the process's
    /// memory and open files are read from `/proc/self`).
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
            connections: self.metrics.counts(),
            process: process_info(),
            history: self
                .history
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }

    /// Adds a point to the server-side history (the counters and busiest
    /// topics at wall-clock time `wall`); the driver calls it about once a
    /// second.
    pub fn record_history(&self, wall: SystemTime) {
        let time_us = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let (counters, top) = {
            let broker = self.lock();
            (
                broker.counters(),
                broker.top_topics(RATE_TOPICS, SortBy::Messages),
            )
        };
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(time_us, counters, &top);
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
