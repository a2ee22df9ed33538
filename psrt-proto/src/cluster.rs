//! Replication between nodes (clustering), sans-IO.
//!
//! Each node keeps one client link to every peer it lists, logged in as a
//! user with `replicator: true` there. A message published on the node
//! (TCP, TLS, Unix socket or UDP) is offered to every peer whose link is up
//! with PUBLISH_REPL; the peer answers `OK_WAITING` (send the payload, with
//! the original publish timestamp) or `NOT_REQUIRED` (nobody there
//! subscribes). Between our own nodes a pipelined op (our extension,
//! `docs/replication.md`) carries topic, timestamp and payload in one
//! frame, so many messages are in flight per connection; a link probes
//! for it after login and falls back to PUBLISH_REPL when the peer does
//! not know it. A replicated message is delivered locally only and never
//! offered onwards, so a full mesh has no loops and no duplicates.
//!
//! * [`Cluster`] lives in the [`Broker`](crate::broker::Broker): one
//!   bounded [`Outbox`] per peer that every local publish is offered to
//!   under the broker lock, with the peer's counters. A full outbox drops
//!   and counts; local delivery never waits for a peer.
//!   The outbox has one queue per lane (connection to the peer); a
//!   publisher's messages all go to the same lane.
//! * [`Link`] is the client side of one peer connection (a lane): it
//!   takes batches of messages from its lane of the outbox and sends
//!   them as pipelined frames, up to [`WINDOW`] unanswered, or, with
//!   PUBLISH_REPL, offers them one at a time (after `OK_WAITING` the next
//!   bytes must be the payload) and sends the payloads asked for. It
//!   remembers `NOT_REQUIRED` topics for a while and measures the round
//!   trip, and reports what happened as a [`LinkReport`] for the driver to
//!   apply to the outbox. Lanes multiply what one round trip per message
//!   allows PUBLISH_REPL.
//!
//! Guarantees: at most once per peer, and per publisher in publish order
//! while the link stays up (a publisher's messages take one lane, one
//! connection answered in order, taken in queue order). Nothing is persisted: messages published while a link is down
//! are dropped for that peer and not replayed when it comes back, and a
//! message in flight when a link fails is lost rather than sent twice.

mod link;
mod outbox;
#[cfg(test)]
mod tests;

pub use link::{Link, LinkError, LinkMode, LinkReport, WINDOW};
pub use outbox::{Cluster, LinkState, Outbox, PeerStats, QueueLimits, ReplMessage, ReplicationOp};

use std::sync::Arc;

use crate::config::PeerConfig;

/// The publisher key of every UDP publish: datagrams carry no session, so
/// they all take one lane (a sender's datagrams stay in order there).
pub const UDP_PUBLISHER: u64 = u64::MAX;

/// One peer as a driver starts its link: its configuration and the PEM CA
/// bundle `tls_ca` named, read by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's entry of the cluster file.
    pub config: PeerConfig,
    /// Contents of `tls_ca`, when set.
    pub ca_pem: Option<Vec<u8>>,
}

/// Re-reads the cluster file (on SIGHUP); an error keeps the peers in
/// force.
pub type PeersReloader = Arc<dyn Fn() -> Result<Vec<PeerSpec>, String> + Send + Sync>;

/// The cluster part of a [`ServerSpec`](crate::spec::ServerSpec): the
/// peers at start, the outbox bounds, and how to reload the peer list.
#[derive(Clone, Default)]
pub struct ClusterSpec {
    /// Peers to link to at start; empty for a standalone node.
    pub peers: Vec<PeerSpec>,
    /// Bounds of each peer's outbox.
    pub limits: QueueLimits,
    /// Re-reads the peer list; `None` keeps it fixed.
    pub reload: Option<PeersReloader>,
}

impl std::fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("peers", &self.peers)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
