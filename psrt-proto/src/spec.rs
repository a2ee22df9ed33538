//! Everything a runtime driver needs to start a server, built once by the
//! daemon from its config files, identical for every runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Limits;
use crate::broker::AuthConfig;
use crate::cluster::ClusterSpec;
use crate::conn::ConnConfig;

/// Re-reads the password, ACL and key files (on SIGHUP). An error keeps the
/// rules in force and is logged with its message.
pub type Reloader = Arc<dyn Fn() -> Result<AuthConfig, String> + Send + Sync>;

/// A server to run: listeners, limits, access rules and how to reload them.
#[derive(Clone)]
pub struct ServerSpec {
    /// Protocol and resource limits.
    pub limits: Limits,
    /// Log a warning when a message waits longer than this before sending.
    pub latency_warn: Option<Duration>,
    /// Worker threads.
    pub workers: usize,
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// Unix-socket listeners (created with mode 0770, removed on exit).
    pub unix: Vec<PathBuf>,
    /// UDP sockets for datagram publishing.
    pub udp: Vec<SocketAddr>,
    /// HTTP stats listener.
    pub stats: Option<SocketAddr>,
    /// TLS and plain-connection policy.
    pub conn: ConnConfig,
    /// Access rules at start.
    pub auth: AuthConfig,
    /// How to reload the access rules; `None` makes SIGHUP a no-op.
    pub reload: Option<Reloader>,
    /// On SIGTERM/SIGINT, how long queued messages may take to reach
    /// subscribers before the process exits anyway.
    pub drain_timeout: Duration,
    /// Host name shown by `/status`.
    pub host: String,
    /// Version shown by `/status`.
    pub version: String,
    /// How the server was built, shown by `/status`, the stats page and
    /// `/metrics` (`psrtd` sets e.g. `runtime monoio, io_uring; allocator
    /// jemalloc`); empty when the embedding program does not say.
    pub build: String,
    /// Cluster peers to replicate to; none for a standalone node.
    pub cluster: ClusterSpec,
}

impl std::fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSpec")
            .field("tcp", &self.tcp)
            .field("unix", &self.unix)
            .field("udp", &self.udp)
            .field("stats", &self.stats)
            .field("workers", &self.workers)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ServerSpec {
    /// A server on the given TCP address with anonymous full access and
    /// default limits; tests and the built-in default start from this.
    pub fn open(tcp: SocketAddr) -> Self {
        Self {
            limits: Limits::default(),
            latency_warn: None,
            workers: 2,
            tcp: vec![tcp],
            unix: Vec::new(),
            udp: Vec::new(),
            stats: None,
            conn: ConnConfig {
                tls: None,
                allow_no_tls: true,
                tls_client_cn_login: false,
            },
            auth: AuthConfig::open(),
            reload: None,
            drain_timeout: Duration::from_secs(5),
            host: String::from("localhost"),
            version: String::from(env!("CARGO_PKG_VERSION")),
            build: String::new(),
            cluster: ClusterSpec::default(),
        }
    }
}
