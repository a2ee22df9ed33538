//! The per-peer outboxes the broker fills on every local publish, and each
//! peer's counters.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::LinkReport;

/// Bytes a queued message is charged beyond its topic and payload (the
/// offer's and payload's frame heads).
const FRAME_OVERHEAD: usize = 18;

/// Bounds of each peer's outbox and of its memory of `NOT_REQUIRED` topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Messages waiting for one peer, at most.
    pub messages: usize,
    /// Bytes (topics, payloads, frame heads) waiting for one peer, at most.
    pub bytes: usize,
    /// How long a topic the peer answered `NOT_REQUIRED` is not offered
    /// again: a subscriber that appears there meanwhile misses at most this
    /// much of it.
    pub not_required_ttl: Duration,
    /// `NOT_REQUIRED` topics remembered per peer, at most (the memory is
    /// cleared when full).
    pub not_required_topics: usize,
    /// Connections (lanes) to each peer, at least 1. PUBLISH_REPL allows
    /// one offer in flight per connection, so one lane carries at most one
    /// message per round trip to the original server; lanes carry them
    /// side by side (between our nodes, the pipelined op keeps a window
    /// per lane, and lanes spread the work over the peer's cores). A
    /// publisher's messages all take the same lane, which keeps them in
    /// order.
    pub lanes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            messages: 16_384,
            bytes: 64 * 1024 * 1024,
            not_required_ttl: Duration::from_secs(1),
            not_required_topics: 65_536,
            lanes: 4,
        }
    }
}

/// A message on its way to a peer: what PUBLISH_REPL and its payload carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplMessage {
    /// The normalised topic, shared by every peer's copy.
    pub topic: Arc<str>,
    /// Priority byte as published.
    pub prio: u8,
    /// The payload, shared with the local subscribers' copies.
    pub payload: Bytes,
    /// When it was published here (the timestamp sent is derived from it).
    pub published: Instant,
}

impl ReplMessage {
    /// Bytes it is charged in an outbox.
    pub fn cost(&self) -> usize {
        self.topic.len() + self.payload.len() + FRAME_OVERHEAD
    }
}

/// Where a peer's link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// Connecting, or waiting for the greeting and login.
    #[default]
    Connecting,
    /// Logged in: messages flow.
    Up,
    /// Failed; a reconnect is scheduled.
    Down,
}

impl LinkState {
    /// Lower-case name for `/status`, `/metrics` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

/// How a link replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationOp {
    /// Our pipelined op (0x12): many messages in flight, one reply each.
    Pipelined,
    /// The protocol's PUBLISH_REPL, one offer and one payload at a time
    /// (a peer that does not speak the pipelined op).
    PublishRepl,
}

impl ReplicationOp {
    /// Lower-case name for `/status` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationOp::Pipelined => "pipelined",
            ReplicationOp::PublishRepl => "publish_repl",
        }
    }
}

/// One peer's state and counters, as `/status` and `/metrics` show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's `path` from the cluster file.
    pub peer: String,
    /// Where its link is.
    pub state: LinkState,
    /// How its link replicates, while it is up.
    pub op: Option<ReplicationOp>,
    /// Messages waiting in its outbox.
    pub queue_len: usize,
    /// Bytes waiting in its outbox.
    pub queue_bytes: usize,
    /// Payloads delivered to it (answered OK).
    pub sent: u64,
    /// Payload bytes delivered to it.
    pub sent_bytes: u64,
    /// Offers it answered `NOT_REQUIRED`.
    pub not_required: u64,
    /// Messages not offered because it answered `NOT_REQUIRED` for their
    /// topic a moment before (their payloads stayed off the link).
    pub suppressed: u64,
    /// Messages dropped for it: outbox full, link down, refused or lost
    /// in flight.
    pub dropped: u64,
    /// Connection attempts after the first.
    pub reconnects: u64,
    /// The last failure of its link, if any since start.
    pub last_error: Option<String>,
    /// Smoothed round-trip time of an offer, in µs.
    pub rtt_us: Option<u64>,
}

/// The messages waiting for one connection to a peer, and the waker of the
/// task that takes them.
#[derive(Debug, Default)]
struct Lane {
    queue: VecDeque<ReplMessage>,
    waker: Option<Waker>,
}

/// The messages waiting for one peer, one queue per lane, bounded together
/// in count and bytes, and the peer's counters.
#[derive(Debug)]
pub struct Outbox {
    stats: PeerStats,
    lanes: Vec<Lane>,
    /// Messages waiting, over every lane.
    len: usize,
    bytes: usize,
    /// Topics answered `NOT_REQUIRED`, with when to forget them.
    not_required: HashMap<Arc<str>, Instant>,
}

impl Outbox {
    fn new(peer: &str, lanes: usize) -> Self {
        Self {
            stats: PeerStats {
                peer: peer.to_owned(),
                ..PeerStats::default()
            },
            lanes: (0..lanes.max(1)).map(|_| Lane::default()).collect(),
            len: 0,
            bytes: 0,
            not_required: HashMap::new(),
        }
    }

    /// The peer's counters, with the outbox's current fill.
    pub fn stats(&self) -> PeerStats {
        PeerStats {
            queue_len: self.len,
            queue_bytes: self.bytes,
            ..self.stats.clone()
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its lanes: the connections to open to the peer.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Moves the link to `state`. Leaving `Up` drops what waits (it would
    /// be stale by the time a new link is up, and is not replayed) and the
    /// `NOT_REQUIRED` memory (the peer's subscriptions may differ after a
    /// restart). Returns whether the state changed.
    pub fn set_state(&mut self, state: LinkState) -> bool {
        if self.stats.state == state {
            return false;
        }
        if self.stats.state == LinkState::Up {
            self.stats.op = None;
            self.stats.dropped += self.len as u64;
            self.lanes.iter_mut().for_each(|lane| lane.queue.clear());
            self.len = 0;
            self.bytes = 0;
            self.not_required.clear();
        }
        self.stats.state = state;
        true
    }

    /// Moves the link up, replicating with `op`. Returns whether the state
    /// changed.
    pub fn link_up(&mut self, op: ReplicationOp) -> bool {
        let changed = self.set_state(LinkState::Up);
        self.stats.op = Some(op);
        changed
    }

    /// Records a failure of the link and counts a reconnect to come.
    pub fn link_failed(&mut self, error: String) {
        self.set_state(LinkState::Down);
        self.stats.reconnects += 1;
        self.stats.last_error = Some(error);
    }

    /// Applies what a link reports: counters, round trip, and the topics
    /// the peer does not want for a while (from `now`).
    pub fn apply(&mut self, report: LinkReport, now: Instant, limits: &QueueLimits) {
        let stats = &mut self.stats;
        stats.sent += report.sent;
        stats.sent_bytes += report.sent_bytes;
        stats.not_required += report.not_required.len() as u64;
        stats.suppressed += report.suppressed;
        stats.dropped += report.dropped;
        if report.rtt_us.is_some() {
            stats.rtt_us = report.rtt_us;
        }
        if let Some(error) = report.error {
            stats.last_error = Some(error);
        }
        let until = now.checked_add(limits.not_required_ttl).unwrap_or(now);
        for topic in report.not_required {
            self.purge(&topic);
            if self.not_required.len() >= limits.not_required_topics {
                self.not_required.clear();
            }
            self.not_required.insert(topic, until);
        }
    }

    /// Drops the waiting messages of `topic`, which the peer just answered
    /// `NOT_REQUIRED` for, as suppressed: a burst queued before the answer
    /// came neither fills the outbox nor costs a round trip per batch.
    fn purge(&mut self, topic: &str) {
        for lane in &mut self.lanes {
            let before = lane.queue.len();
            lane.queue.retain(|message| {
                let keep = *message.topic != *topic;
                if !keep {
                    self.bytes -= message.cost();
                }
                keep
            });
            let purged = before - lane.queue.len();
            self.len -= purged;
            self.stats.suppressed += purged as u64;
        }
    }

    /// Moves up to `max` messages waiting in `lane` into `batch`, oldest
    /// first. When none waits there, `waker` is woken by its next message.
    /// A lane the outbox does not have gives nothing.
    pub fn take(
        &mut self,
        lane: usize,
        batch: &mut VecDeque<ReplMessage>,
        max: usize,
        waker: &Waker,
    ) {
        let Some(lane) = self.lanes.get_mut(lane) else {
            return;
        };
        let count = lane.queue.len().min(max);
        for message in lane.queue.drain(..count) {
            self.bytes -= message.cost();
            batch.push_back(message);
        }
        self.len -= count;
        if lane.queue.is_empty() {
            match &lane.waker {
                Some(current) if current.will_wake(waker) => {}
                _ => lane.waker = Some(waker.clone()),
            }
        }
    }

    /// Queues `message` for the peer on `publisher`'s lane, or drops and
    /// counts it; a topic the peer answered `NOT_REQUIRED` recently is
    /// skipped.
    fn offer(&mut self, message: &ReplMessage, publisher: u64, now: Instant, limits: &QueueLimits) {
        if self.stats.state != LinkState::Up {
            self.stats.dropped += 1;
            return;
        }
        if let Some(until) = self.not_required.get(&message.topic) {
            if now < *until {
                self.stats.suppressed += 1;
                return;
            }
            self.not_required.remove(&message.topic);
        }
        let cost = message.cost();
        if self.len >= limits.messages || self.bytes + cost > limits.bytes {
            self.stats.dropped += 1;
            return;
        }
        let index = usize::try_from(publisher % self.lanes.len() as u64).unwrap_or(0);
        let Some(lane) = self.lanes.get_mut(index) else {
            return;
        };
        lane.queue.push_back(message.clone());
        self.len += 1;
        self.bytes += cost;
        if let Some(waker) = lane.waker.take() {
            waker.wake();
        }
    }

    /// Wakes the links (their peer was removed, so they must look and
    /// stop).
    fn wake(&mut self) {
        for lane in &mut self.lanes {
            if let Some(waker) = lane.waker.take() {
                waker.wake();
            }
        }
    }
}

/// Every peer's outbox, in the broker.
#[derive(Debug, Default)]
pub struct Cluster {
    limits: QueueLimits,
    peers: Vec<Outbox>,
}

impl Cluster {
    /// No peers yet, with these bounds for the outboxes.
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            limits,
            peers: Vec::new(),
        }
    }

    /// The outboxes' bounds.
    pub fn limits(&self) -> &QueueLimits {
        &self.limits
    }

    /// Whether no peer is configured (publishes then skip replication).
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Sets the peer list: outboxes of peers still listed are kept as they
    /// are (queue and counters), new peers get an empty one, removed peers'
    /// are dropped (their links are woken to notice).
    pub fn set_peers<'a>(&mut self, peers: impl IntoIterator<Item = &'a str>) {
        let mut old = std::mem::take(&mut self.peers);
        for name in peers {
            if self.peers.iter().any(|o| o.stats.peer == name) {
                continue;
            }
            let outbox = match old.iter().position(|o| o.stats.peer == name) {
                Some(at) => old.swap_remove(at),
                None => Outbox::new(name, self.limits.lanes),
            };
            self.peers.push(outbox);
        }
        old.iter_mut().for_each(Outbox::wake);
    }

    /// The outbox of `peer`, if listed.
    pub fn peer_mut(&mut self, peer: &str) -> Option<&mut Outbox> {
        self.peers.iter_mut().find(|o| o.stats.peer == peer)
    }

    /// The outbox of `peer`, if listed.
    pub fn peer(&self, peer: &str) -> Option<&Outbox> {
        self.peers.iter().find(|o| o.stats.peer == peer)
    }

    /// Every peer's state and counters, in configuration order.
    pub fn stats(&self) -> Vec<PeerStats> {
        self.peers.iter().map(Outbox::stats).collect()
    }

    /// Offers a locally published message to every peer. `publisher`
    /// identifies its publisher (a session, a UDP sender): messages with
    /// the same one take the same lane and stay in order.
    pub fn offer(&mut self, topic: &str, prio: u8, payload: &Bytes, publisher: u64, now: Instant) {
        if self.peers.is_empty() {
            return;
        }
        let message = ReplMessage {
            topic: Arc::from(topic),
            prio,
            payload: payload.clone(),
            published: now,
        };
        let limits = self.limits;
        for outbox in &mut self.peers {
            outbox.offer(&message, publisher, now, &limits);
        }
    }

    /// Applies a link's report to `peer`'s outbox (ignored when the peer
    /// was removed meanwhile).
    pub fn apply(&mut self, peer: &str, report: LinkReport, now: Instant) {
        let limits = self.limits;
        if let Some(outbox) = self.peer_mut(peer) {
            outbox.apply(report, now, &limits);
        }
    }
}
