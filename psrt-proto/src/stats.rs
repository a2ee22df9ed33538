//! Counters and gauges of the broker, exactly what `/status`, `/metrics` and
//! the live pages show.

use serde::Serialize;

/// Monotonic counters, named as in upstream's `/status` JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// SUBSCRIBE operations accepted (one per topic in a bulk request).
    pub c_sub_ops: u64,
    /// Messages accepted for publishing (TCP, UDP and replication).
    pub c_pub_messages: u64,
    /// Payload bytes of those messages.
    pub c_pub_bytes: u64,
    /// Messages handed to data sockets for sending.
    pub c_sent_messages: u64,
    /// Payload bytes of those messages.
    pub c_sent_bytes: u64,
    /// Sum over sent messages of the delay between publish and send, in µs.
    pub c_sent_latency: u64,
}

/// One live client, for the stats page's client list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    /// Login name; empty for anonymous.
    pub login: String,
    /// Peer address as the driver reported it (`ip:port` or a socket path).
    pub peer: String,
    /// Number of filters the client holds.
    pub subscriptions: usize,
    /// Whether a data socket is bound.
    pub data_socket: bool,
    /// Messages waiting in its data queue.
    pub queued: usize,
}

/// One entry of the "top topics" view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicStat {
    /// The normalised topic.
    pub topic: String,
    /// Messages published to it (an over-estimate by at most `error`).
    pub messages: u64,
    /// Payload bytes published to it.
    pub bytes: u64,
    /// Most the counts may over-estimate (space-saving sketch error).
    pub error: u64,
}

/// A point-in-time copy of everything the stats endpoints render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Counters since start.
    pub counters: Counters,
    /// Distinct (client, filter) pairs held.
    pub subscription_count: usize,
    /// Live control sessions.
    pub client_count: usize,
    /// Configured per-client data queue (messages).
    pub data_queue_size: usize,
    /// Live clients, at most a bounded number.
    pub clients: Vec<ClientInfo>,
    /// Most active topics, busiest first.
    pub top_topics: Vec<TopicStat>,
    /// Every cluster peer's link (empty on a standalone node).
    #[serde(skip)]
    pub cluster: Vec<crate::cluster::PeerStats>,
}
