//! The audit log: the broker's events (denials, slow consumers, latency)
//! and the connections' own (connect, disconnect, a plain client refused
//! by a TLS-only server, a failed TLS handshake), logged after the broker
//! lock is released and rate-limited per peer, so a flood cannot fill the
//! disk; and reloading the access rules. The parts of a driver that do log
//! I/O or read files.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use psrt_proto::broker::{Broker, BrokerEvent, EventLevel};
use psrt_proto::conn::{CloseReason, Connection};
use tracing::Level;

use crate::core::ServerCore;

/// How long a peer's events of one kind are counted together.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Events of one kind from one peer logged in full per [`WINDOW`]; the
/// rest are counted and summed up in one line when the window ends.
pub const BURST: u32 = 5;
/// Peers tracked at once; beyond that, new peers share one entry per
/// kind (`peer *`), so spoofed UDP sources cannot grow the table.
pub const MAX_PEERS: usize = 4096;

/// Runs `f` on the broker under `core`'s lock, takes the events it raised
/// out with it, and logs them once the lock is released, so log I/O
/// (syslog) never holds up the other sockets.
pub fn with_broker_logged<R>(core: &ServerCore, f: impl FnOnce(&mut Broker) -> R) -> R {
    let (result, events) = {
        let mut broker = core.lock();
        let result = f(&mut broker);
        let events: Vec<BrokerEvent> = std::iter::from_fn(|| broker.poll_event()).collect();
        (result, events)
    };
    if !events.is_empty() {
        core.audit.log_events(&events, Instant::now());
    }
    result
}

/// A line for the log, at a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// How loud.
    pub level: Level,
    /// The text.
    pub text: String,
}

/// The rate-limited audit log of one server: what [`RateLimiter`] lets
/// through goes to `tracing`.
#[derive(Debug, Default)]
pub struct AuditLog {
    limiter: Mutex<RateLimiter>,
}

impl AuditLog {
    /// Logs the broker's events, as of `now`.
    pub fn log_events(&self, events: &[BrokerEvent], now: Instant) {
        let mut lines = Vec::new();
        {
            let mut limiter = self.limiter();
            for event in events {
                let level = match event.level() {
                    EventLevel::Info => Level::INFO,
                    EventLevel::Warn => Level::WARN,
                };
                let peer = event.peer().unwrap_or("-");
                limiter.admit(
                    now,
                    event.kind(),
                    peer,
                    level,
                    event.to_string(),
                    &mut lines,
                );
            }
        }
        emit(&lines);
    }

    /// A socket was accepted (debug).
    pub fn connected(&self, peer: &str, listener: &str) {
        tracing::debug!("connected: peer={peer} listener={listener}");
    }

    /// A socket closed: debug, naming the login of the session it had
    /// joined (as the audit lines do: `login="alice"`), but a refusal
    /// (plain client on a TLS-only server) or a failed TLS handshake
    /// warns, rate-limited per peer.
    pub fn disconnected(&self, conn: &Connection, now: Instant) {
        let peer = conn.peer();
        let login = conn
            .login()
            .map(|login| format!(" login={login:?}"))
            .unwrap_or_default();
        let Some(reason) = conn.close_reason() else {
            tracing::debug!("disconnected: peer={peer}{login}");
            return;
        };
        let (kind, what) = match reason {
            CloseReason::Tls(_) => ("tls_failed", "TLS handshake failed"),
            refused if refused.is_refusal() => ("refused", "connection refused"),
            _ => {
                tracing::debug!("disconnected: peer={peer}{login} reason: {reason}");
                return;
            }
        };
        let text = format!("{what}: peer={peer} reason: {reason}");
        let mut lines = Vec::new();
        self.limiter()
            .admit(now, kind, peer, Level::WARN, text, &mut lines);
        emit(&lines);
    }

    /// Logs the summaries of windows that have ended, as of `now`.
    pub fn flush(&self, now: Instant) {
        let mut lines = Vec::new();
        self.limiter().sweep(now, &mut lines);
        emit(&lines);
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, RateLimiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn emit(lines: &[Line]) {
    for line in lines {
        let text = &line.text;
        match line.level {
            Level::ERROR | Level::WARN => tracing::warn!("{text}"),
            Level::INFO => tracing::info!("{text}"),
            _ => tracing::debug!("{text}"),
        }
    }
}

/// Counts events per kind and peer host: the first [`BURST`] of a
/// [`WINDOW`] pass, the rest are summed up in one line (the last one seen,
/// with the count) once the window is over. Pure: the time comes in.
#[derive(Debug, Default)]
pub struct RateLimiter {
    entries: HashMap<(&'static str, String), Entry>,
    next_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    started: Instant,
    logged: u32,
    suppressed: u64,
    level: Level,
    last: String,
}

impl Entry {
    /// The summary of a window that held suppressed events.
    fn summary(&self, host: &str) -> Option<Line> {
        (self.suppressed > 0).then(|| Line {
            level: self.level,
            text: format!(
                "{} [repeated {} more times from {host} within {} s; not logged]",
                self.last,
                self.suppressed,
                WINDOW.as_secs()
            ),
        })
    }
}

impl RateLimiter {
    /// Decides about one event of `kind` from `peer` at `now`: appends to
    /// `out` what to log (the event itself, the summary of the peer's
    /// previous window, summaries of other peers' ended windows).
    pub fn admit(
        &mut self,
        now: Instant,
        kind: &'static str,
        peer: &str,
        level: Level,
        text: String,
        out: &mut Vec<Line>,
    ) {
        if self.next_sweep.is_none_or(|at| now >= at) {
            self.sweep(now, out);
        }
        let mut host = host_of(peer).to_owned();
        if self.entries.len() >= MAX_PEERS && !self.entries.contains_key(&(kind, host.clone())) {
            host = "*".to_owned();
        }
        let entry = self.entries.entry((kind, host)).or_insert(Entry {
            started: now,
            logged: 0,
            suppressed: 0,
            level,
            last: String::new(),
        });
        if now.saturating_duration_since(entry.started) >= WINDOW {
            let host = host_of(peer);
            out.extend(entry.summary(host));
            *entry = Entry {
                started: now,
                logged: 0,
                suppressed: 0,
                level,
                last: String::new(),
            };
        }
        if entry.logged < BURST {
            entry.logged += 1;
            out.push(Line { level, text });
        } else {
            entry.suppressed += 1;
            entry.level = level;
            entry.last = text;
        }
    }

    /// Appends the summaries of ended windows to `out` and forgets them.
    pub fn sweep(&mut self, now: Instant, out: &mut Vec<Line>) {
        self.entries.retain(|(_, host), entry| {
            let over = now.saturating_duration_since(entry.started) >= WINDOW;
            if over {
                out.extend(entry.summary(host));
            }
            !over
        });
        self.next_sweep = Some(now + WINDOW);
    }

    /// Peers (per kind) tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

/// The host part of `ip:port` or `[v6]:port`; a Unix socket peer (no
/// port) as it is.
fn host_of(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => peer,
    }
}

/// Re-reads the access rules with the server's
/// [`ServerCore::reloader`], puts them in force and logs the outcome; `Ok`
/// at once when there is nothing to re-read. Blocks while the files are
/// read: call it off the event loop. On error the old rules stay and the
/// message is returned.
pub fn reload(core: &ServerCore) -> Result<(), String> {
    let Some(reload) = core.reloader() else {
        return Ok(());
    };
    let reloaded = core.reload(reload());
    match &reloaded {
        Ok(()) => tracing::info!("access rules reloaded"),
        Err(message) => tracing::error!(%message, "reload failed; keeping the rules in force"),
    }
    reloaded
}

#[cfg(test)]
mod tests;
