//! Every bound the broker enforces, in one place, with upstream's defaults.

use std::time::Duration;

/// Protocol and resource limits. Built from the server config
/// ([`crate::config::ServerConfig::limits`]); [`Limits::default`] gives
/// upstream's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most `/` separators a normalised topic or filter may hold.
    pub max_topic_depth: usize,
    /// Largest SUBSCRIBE/UNSUBSCRIBE frame body (`LEN`), and largest
    /// PUBLISH_REPL topic.
    pub max_topic_length: usize,
    /// Largest PUBLISH frame body (`topic 00 payload`).
    pub max_pub_size: usize,
    /// Pending messages per data socket before the client is dropped.
    pub data_queue: usize,
    /// Pending bytes per data socket before the client is dropped.
    pub data_queue_bytes: usize,
    /// Keep-alive: a whole operation must arrive within this time, and a
    /// control socket idle this long is closed.
    pub timeout: Duration,
    /// Largest UDP datagram accepted.
    pub udp_frame_size: usize,
    /// Largest login frame body (`login 00 password`).
    pub max_login_size: usize,
    /// Most distinct filters one client may hold.
    pub max_subscriptions_per_client: usize,
    /// Most live sessions (control sockets past login).
    pub max_sessions: usize,
    /// Verified (login, password) pairs remembered so repeated logins and
    /// plain UDP datagrams do not re-run bcrypt.
    pub credential_cache: usize,
    /// Password checks waiting for the driver at once; more are refused.
    pub max_pending_checks: usize,
    /// Topics tracked by the "top topics" counter.
    pub top_topics: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_topic_depth: 32,
            max_topic_length: 1_000_000,
            max_pub_size: 1_100_000,
            data_queue: 1024,
            data_queue_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(5),
            udp_frame_size: 4096,
            max_login_size: 1024,
            max_subscriptions_per_client: 100_000,
            max_sessions: 100_000,
            credential_cache: 4096,
            max_pending_checks: 1024,
            top_topics: 64,
        }
    }
}
