//! Deterministic simulation of a cluster: several in-memory [`Node`]s
//! linked by the same [`Link`] and [`Cluster`](crate::cluster::Cluster)
//! code the daemon runs, over a virtual network with seeded delays,
//! partitions (a reset, or a black hole the timeouts must detect), node
//! crashes and restarts, all from one seed. Links from node 0 use
//! PUBLISH_REPL, the others probe for and use the pipelined op.
//!
//! Every node has a publisher and a subscriber (with a filter of its own)
//! that talk to it directly. Invariants, checked as messages arrive and at
//! the end:
//!
//! * a subscriber never receives a message twice, and receives each
//!   publisher's messages in publish order;
//! * it receives only what matches its filter;
//! * every outbox stays within its bounds after every step;
//! * at the end, after everything healed and went quiet: every message
//!   published while the link to a node was up, and which that link kept
//!   up until the end (no failure, no crash of either side) and did not
//!   drop for a full outbox, reached every subscriber there whose filter
//!   matched it and who was subscribed long enough before (a
//!   `NOT_REQUIRED` answer is remembered for a while) — exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Failure;
use crate::Limits;
use crate::acl::Acl;
use crate::broker::{AuthConfig, Broker};
use crate::client::{ClientEvent, ControlClient, DataClient};
use crate::cluster::{Cluster, LinkState, QueueLimits};
use crate::cluster::{Link, LinkMode};
use crate::conn::{ConnConfig, Transport};
use crate::node::{ConnId, Node};
use crate::topic::filter_matches;
use crate::txbuf::TxBuf;
use crate::wire::{Token, status};

/// Topics publishers pick from.
const TOPICS: [&str; 4] = ["plant/a", "plant/b", "line/x", "line/y"];
/// Filters subscribers pick from (one of them matches nothing published).
const FILTERS: [&str; 5] = ["#", "plant/#", "line/+", "plant/a", "none"];
/// The client keep-alive timeout.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one-way network delay.
const MAX_DELAY_MS: u64 = 15;
/// The outbox bounds: small, so overflow happens.
const QUEUE: QueueLimits = QueueLimits {
    messages: 24,
    bytes: 24 * 64,
    not_required_ttl: Duration::from_millis(300),
    not_required_topics: 8,
    lanes: 2,
};

/// What a successful cluster run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Messages published (accepted locally).
    pub published: u64,
    /// Messages subscribers received from another node.
    pub replicated: u64,
    /// Messages that had to arrive at the end, and did.
    pub guaranteed: u64,
    /// Partitions (resets and black holes).
    pub partitions: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Links that came up.
    pub links_up: u64,
    /// Messages outboxes dropped (full or link down).
    pub dropped: u64,
}

/// Runs a cluster of 2 to 4 nodes for `steps` random steps from `seed`,
/// then heals everything, lets it go quiet and checks delivery.
pub fn run(seed: u64, steps: usize, start: Instant) -> Result<ClusterStats, Failure> {
    let mut step = 0;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sim = ClusterSim::new(seed, start);
        while step < steps {
            sim.step()?;
            step += 1;
        }
        sim.finish()?;
        Ok(sim.stats)
    }));
    let message = match outcome {
        Ok(Ok(stats)) => return Ok(stats),
        Ok(Err(message)) => message,
        Err(panic) => super::panic_message(panic.as_ref()),
    };
    Err(Failure {
        seed,
        step,
        steps,
        message,
    })
}

/// Bytes on their way, with when they arrive.
type Wire = VecDeque<(Instant, Vec<u8>)>;

/// A connection (lane) of a link: the node side's id and both directions.
struct LinkConn {
    link: Link,
    conn: ConnId,
    to_server: Wire,
    to_client: Wire,
    /// Black-holed: every byte is lost from now on (the timeouts must
    /// find out).
    lost: bool,
    up: bool,
}

/// The link from one node to another: one connection per lane, all up or
/// none (they fail together, as in the driver).
struct SimLink {
    from: usize,
    to: usize,
    conns: Vec<LinkConn>,
    reconnect_at: Instant,
    failures: u32,
    /// Changes whenever the link goes down or a side crashes.
    generation: u64,
}

/// A local client of a node: control and data connections.
struct Local {
    control: ControlClient,
    control_conn: ConnId,
    data: Option<(DataClient, ConnId)>,
    /// Unique across restarts, to tell subscribers apart.
    id: u64,
    filter: &'static str,
    since: Instant,
}

/// A message as published, for the end check.
struct Sent {
    node: usize,
    topic: &'static str,
    seq: u64,
    at: Instant,
    /// Per peer: the link generation while it was up at publish time and
    /// the message was queued (not dropped) for it.
    queued_for: Vec<(usize, u64)>,
}

struct ClusterSim {
    rng: StdRng,
    now: Instant,
    nodes: Vec<Node>,
    links: Vec<SimLink>,
    publishers: Vec<Local>,
    subscribers: Vec<Local>,
    partitioned: Vec<Vec<bool>>,
    next_id: u64,
    next_seq: Vec<u64>,
    sent: Vec<Sent>,
    /// Per subscriber id and publisher node: the last sequence received.
    last_seen: HashMap<(u64, usize), u64>,
    /// Per subscriber id: every (node, seq) received.
    received: HashMap<u64, Vec<(usize, u64)>>,
    stats: ClusterStats,
}

impl ClusterSim {
    fn new(seed: u64, start: Instant) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xC1u64 << 56);
        let count = rng.random_range(2..=4);
        let mut sim = ClusterSim {
            rng,
            now: start,
            nodes: Vec::new(),
            links: Vec::new(),
            publishers: Vec::new(),
            subscribers: Vec::new(),
            partitioned: vec![vec![false; count]; count],
            next_id: 0,
            next_seq: vec![0; count],
            sent: Vec::new(),
            last_seen: HashMap::new(),
            received: HashMap::new(),
            stats: ClusterStats::default(),
        };
        for index in 0..count {
            let node = sim.fresh_node(index, count);
            sim.nodes.push(node);
        }
        for from in 0..count {
            for to in 0..count {
                if from != to {
                    sim.links.push(SimLink {
                        from,
                        to,
                        conns: Vec::new(),
                        reconnect_at: start,
                        failures: 0,
                        generation: 0,
                    });
                }
            }
        }
        for index in 0..count {
            let filter = FILTERS[sim.rng.random_range(0..FILTERS.len())];
            let (publisher, subscriber) = sim.clients(index, filter);
            sim.publishers.push(publisher);
            sim.subscribers.push(subscriber);
        }
        sim
    }

    fn fresh_node(&mut self, index: usize, count: usize) -> Node {
        let auth = AuthConfig {
            allow_anonymous: true,
            acl: Acl::allow_all(),
            passwords: None,
            keys: None,
        };
        let rng = Box::new(StdRng::seed_from_u64(self.rng.random()));
        let mut broker = Broker::new(Limits::default(), auth, rng);
        *broker.cluster_mut() = Cluster::new(QUEUE);
        let names: Vec<String> = (0..count)
            .filter(|&peer| peer != index)
            .map(peer_name)
            .collect();
        broker
            .cluster_mut()
            .set_peers(names.iter().map(String::as_str));
        let config = ConnConfig {
            tls: None,
            allow_no_tls: true,
            tls_client_cn_login: false,
        };
        Node::new(broker, config)
    }

    /// The publisher and the subscriber (to `filter`) of a fresh `node`,
    /// connected in an order that gives the publisher session slot
    /// `node % 2`: its messages take lane 0 on even nodes and lane 1 on odd
    /// ones, so every lane carries traffic.
    fn clients(&mut self, node: usize, filter: &'static str) -> (Local, Local) {
        if node.is_multiple_of(2) {
            let publisher = self.local(node, None);
            (publisher, self.local(node, Some(filter)))
        } else {
            let subscriber = self.local(node, Some(filter));
            (self.local(node, None), subscriber)
        }
    }

    /// A logged-in local client of `node`: a subscriber to `filter`, or a
    /// publisher without one.
    fn local(&mut self, node: usize, filter: Option<&'static str>) -> Local {
        let now = self.now;
        let conn = self.nodes[node].connect(Transport::Tcp, "192.0.2.1:1", now);
        let mut control = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
        if let Some(filter) = filter {
            control.subscribe(&[filter], now).expect("subscribe");
        }
        let token = pump_control(&mut self.nodes[node], conn, &mut control, now).expect("login");
        let data = filter.map(|_| {
            let token = token.expect("logged in");
            let conn = self.nodes[node].connect(Transport::Tcp, "192.0.2.1:2", now);
            let mut data = DataClient::new(token, TIMEOUT, None, 1 << 16, now);
            for _ in 0..3 {
                pump_data(&mut self.nodes[node], conn, &mut data, now).expect("data socket");
            }
            (data, conn)
        });
        self.next_id += 1;
        Local {
            control,
            control_conn: conn,
            data,
            id: self.next_id,
            filter: filter.unwrap_or(""),
            since: now,
        }
    }

    fn step(&mut self) -> Result<(), String> {
        self.now += Duration::from_millis(self.rng.random_range(0..8));
        match self.rng.random_range(0..100) {
            0..70 => self.publish()?,
            70..73 => self.partition(),
            73..80 => self.heal(),
            80..81 => self.crash(),
            _ => {}
        }
        self.service()?;
        self.check_bounds()
    }

    fn publish(&mut self) -> Result<(), String> {
        let node = self.rng.random_range(0..self.nodes.len());
        let topic = TOPICS[self.rng.random_range(0..TOPICS.len())];
        let seq = self.next_seq[node];
        self.next_seq[node] += 1;
        let before = self.outbox_losses(node);
        let payload = format!("{node}:{seq}");
        let publisher = &mut self.publishers[node];
        publisher
            .control
            .publish(topic, payload.as_bytes(), 0x7F, self.now)
            .map_err(|e| format!("publish: {e}"))?;
        pump_control(
            &mut self.nodes[node],
            publisher.control_conn,
            &mut publisher.control,
            self.now,
        )?;
        let after = self.outbox_losses(node);
        let mut queued_for = Vec::new();
        for ((peer, lost_before), (_, lost_after)) in before.iter().zip(&after) {
            let link = self.link(node, *peer);
            let up = !link.conns.is_empty() && link.conns.iter().all(|c| c.up && !c.lost);
            if up && lost_after == lost_before {
                queued_for.push((*peer, link.generation));
            }
        }
        self.sent.push(Sent {
            node,
            topic,
            seq,
            at: self.now,
            queued_for,
        });
        self.stats.published += 1;
        Ok(())
    }

    /// Per peer of `node`: the messages its outbox dropped or suppressed.
    fn outbox_losses(&self, node: usize) -> Vec<(usize, u64)> {
        let cluster = self.nodes[node].broker().cluster();
        (0..self.nodes.len())
            .filter(|&peer| peer != node)
            .map(|peer| {
                let stats = cluster.peer(&peer_name(peer)).expect("peer").stats();
                (peer, stats.dropped + stats.suppressed)
            })
            .collect()
    }

    fn link(&self, from: usize, to: usize) -> &SimLink {
        self.links
            .iter()
            .find(|l| l.from == from && l.to == to)
            .expect("link")
    }

    fn partition(&mut self) {
        let count = self.nodes.len();
        let a = self.rng.random_range(0..count);
        let b = (a + self.rng.random_range(1..count)) % count;
        self.partitioned[a][b] = true;
        self.partitioned[b][a] = true;
        self.stats.partitions += 1;
        let black_hole = self.rng.random_bool(0.5);
        for index in 0..self.links.len() {
            let link = &self.links[index];
            if !((link.from == a && link.to == b) || (link.from == b && link.to == a)) {
                continue;
            }
            if black_hole {
                for conn in &mut self.links[index].conns {
                    conn.lost = true;
                    conn.to_client.clear();
                    conn.to_server.clear();
                }
            } else {
                self.fail_link(index, "connection reset".into());
            }
        }
    }

    fn heal(&mut self) {
        for row in &mut self.partitioned {
            row.fill(false);
        }
    }

    fn crash(&mut self) {
        let count = self.nodes.len();
        let node = self.rng.random_range(0..count);
        self.stats.crashes += 1;
        for index in 0..self.links.len() {
            let link = &self.links[index];
            if link.from == node || link.to == node {
                self.fail_link(index, "node crashed".into());
            }
        }
        let fresh = self.fresh_node(node, count);
        self.nodes[node] = fresh;
        let filter = self.subscribers[node].filter;
        let (publisher, subscriber) = self.clients(node, filter);
        self.publishers[node] = publisher;
        self.subscribers[node] = subscriber;
    }

    /// Ends a link's connections: their reports go to the outbox, and a
    /// reconnect is scheduled with capped, jittered backoff.
    fn fail_link(&mut self, index: usize, error: String) {
        let link = &mut self.links[index];
        link.generation += 1;
        if link.conns.is_empty() {
            return;
        }
        let conns = std::mem::take(&mut link.conns);
        let (from, to) = (link.from, link.to);
        let cap = 1u64 << link.failures.min(6);
        link.failures += 1;
        let delay = 10 * cap / 2 + self.rng.random_range(0..=10 * cap / 2);
        link.reconnect_at = self.now + Duration::from_millis(delay);
        for mut conn in conns {
            let report = conn.link.abort(&error);
            self.nodes[to].disconnect(conn.conn);
            let cluster = self.nodes[from].broker_mut().cluster_mut();
            cluster.apply(&peer_name(to), report, self.now);
        }
        let cluster = self.nodes[from].broker_mut().cluster_mut();
        if let Some(outbox) = cluster.peer_mut(&peer_name(to)) {
            outbox.link_failed(error);
        }
    }

    /// Moves every link and local client forward to `now`.
    fn service(&mut self) -> Result<(), String> {
        let now = self.now;
        for node in &mut self.nodes {
            node.advance(now);
        }
        for index in 0..self.links.len() {
            if let Err(error) = self.service_link(index) {
                self.fail_link(index, error);
            }
        }
        for node in 0..self.nodes.len() {
            let publisher = &mut self.publishers[node];
            let conn = publisher.control_conn;
            if publisher.control.poll_timeout().is_some_and(|at| at <= now) {
                publisher
                    .control
                    .handle_timeout(now)
                    .map_err(|e| format!("publisher {node}: {e}"))?;
            }
            pump_control(&mut self.nodes[node], conn, &mut publisher.control, now)?;
            self.read_subscriber(node)?;
        }
        Ok(())
    }

    fn service_link(&mut self, index: usize) -> Result<(), String> {
        let now = self.now;
        let (from, to) = (self.links[index].from, self.links[index].to);
        if self.links[index].conns.is_empty() {
            if now < self.links[index].reconnect_at || self.partitioned[from][to] {
                return Ok(());
            }
            // Links from node 0 use PUBLISH_REPL, the others probe and
            // pipeline: both ops run side by side in every cluster.
            let mode = if from == 0 {
                LinkMode::Plain
            } else {
                LinkMode::Auto
            };
            for _ in 0..QUEUE.lanes {
                let conn = self.nodes[to].connect(Transport::Tcp, &peer_name(from), now);
                let client = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
                self.links[index].conns.push(LinkConn {
                    link: Link::new(client, mode),
                    conn,
                    to_server: VecDeque::new(),
                    to_client: VecDeque::new(),
                    lost: false,
                    up: false,
                });
            }
            self.set_state(from, to, LinkState::Connecting);
        }
        let was_up = self.links[index].conns.iter().all(|c| c.up);
        for lane in 0..self.links[index].conns.len() {
            let delay = Duration::from_millis(self.rng.random_range(0..=MAX_DELAY_MS));
            let conn = &mut self.links[index].conns[lane];
            let node = &mut self.nodes[to];
            while conn.to_server.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, bytes)) = conn.to_server.pop_front() {
                    node.send(conn.conn, &bytes, now);
                }
            }
            let answer = node.recv(conn.conn, now);
            if !answer.is_empty() && !conn.lost {
                conn.to_client.push_back((now + delay, answer));
            }
            let server_closed = node.is_closed(conn.conn);
            let mut input = false;
            while conn.to_client.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, bytes)) = conn.to_client.pop_front() {
                    conn.link.read_buf().extend_from_slice(&bytes);
                    input = true;
                }
            }
            if input {
                conn.link.handle_input(now).map_err(|e| e.to_string())?;
            }
            if server_closed && conn.to_client.is_empty() && !conn.lost {
                conn.link.handle_eof().map_err(|e| e.to_string())?;
            }
            if conn.link.poll_timeout().is_some_and(|at| at <= now) {
                conn.link.handle_timeout(now).map_err(|e| e.to_string())?;
            }
            conn.up |= conn.link.is_up();
        }
        let all_up = self.links[index].conns.iter().all(|c| c.up);
        if all_up && !was_up {
            self.links[index].failures = 0;
            self.stats.links_up += 1;
            self.set_state(from, to, LinkState::Up);
        }
        for lane in 0..self.links[index].conns.len() {
            let delay = Duration::from_millis(self.rng.random_range(0..=MAX_DELAY_MS));
            let conn = &mut self.links[index].conns[lane];
            if all_up && conn.link.wants_messages() {
                let cluster = self.nodes[from].broker_mut().cluster_mut();
                cluster.apply(&peer_name(to), conn.link.take_report(), now);
                if let Some(outbox) = cluster.peer_mut(&peer_name(to)) {
                    outbox.take(lane, conn.link.batch_mut(), 8, std::task::Waker::noop());
                }
            }
            conn.link.poll_send(now, 0).map_err(|e| e.to_string())?;
            let mut tx = TxBuf::new();
            conn.link.poll_transmit(&mut tx);
            if !tx.is_empty() && !conn.lost {
                conn.to_server.push_back((now + delay, tx.to_vec()));
            }
        }
        Ok(())
    }

    fn set_state(&mut self, from: usize, to: usize, state: LinkState) {
        let cluster = self.nodes[from].broker_mut().cluster_mut();
        if let Some(outbox) = cluster.peer_mut(&peer_name(to)) {
            outbox.set_state(state);
        }
    }

    fn read_subscriber(&mut self, node: usize) -> Result<(), String> {
        let now = self.now;
        let subscriber = &mut self.subscribers[node];
        if subscriber
            .control
            .poll_timeout()
            .is_some_and(|at| at <= now)
        {
            subscriber
                .control
                .handle_timeout(now)
                .map_err(|e| format!("subscriber {node}: {e}"))?;
        }
        pump_control(
            &mut self.nodes[node],
            subscriber.control_conn,
            &mut subscriber.control,
            now,
        )?;
        let Some((data, conn)) = subscriber.data.as_mut() else {
            return Ok(());
        };
        if data.poll_timeout().is_some_and(|at| at <= now) {
            data.handle_timeout(now)
                .map_err(|e| format!("subscriber {node} data: {e}"))?;
        }
        pump_data(&mut self.nodes[node], *conn, data, now)?;
        let (id, filter) = (subscriber.id, subscriber.filter);
        while let Some(message) = data.poll_message() {
            let topic = message.topic_str().unwrap_or_default().to_owned();
            if !filter_matches(filter, &topic) {
                return Err(format!("subscriber {id} ({filter}) got {topic}"));
            }
            let text = String::from_utf8_lossy(&message.payload).into_owned();
            let (publisher, seq) = text
                .split_once(':')
                .and_then(|(n, s)| Some((n.parse::<usize>().ok()?, s.parse::<u64>().ok()?)))
                .ok_or_else(|| format!("bad payload {text:?}"))?;
            if let Some(last) = self.last_seen.insert((id, publisher), seq)
                && seq <= last
            {
                return Err(format!(
                    "subscriber {id} on node {node}: {publisher}:{seq} after {publisher}:{last} (duplicate or out of order)"
                ));
            }
            if publisher != node {
                self.stats.replicated += 1;
            }
            self.received.entry(id).or_default().push((publisher, seq));
        }
        Ok(())
    }

    /// Every link up and idle, nothing on the wire, every outbox empty.
    fn settled(&self) -> bool {
        let links = self.links.iter().all(|l| {
            !l.conns.is_empty()
                && l.conns.iter().all(|c| {
                    c.up && !c.lost
                        && c.to_client.is_empty()
                        && c.to_server.is_empty()
                        && c.link.wants_messages()
                })
        });
        links
            && self.nodes.iter().all(|n| {
                n.broker()
                    .cluster()
                    .stats()
                    .iter()
                    .all(|p| p.queue_len == 0)
            })
    }

    fn check_bounds(&self) -> Result<(), String> {
        for (index, node) in self.nodes.iter().enumerate() {
            for peer in node.broker().cluster().stats() {
                if peer.queue_len > QUEUE.messages || peer.queue_bytes > QUEUE.bytes {
                    return Err(format!("node {index} outbox {peer:?} beyond its bounds"));
                }
            }
        }
        Ok(())
    }

    /// Heals, lets the network and the outboxes go quiet, and checks that
    /// what had to arrive did.
    fn finish(&mut self) -> Result<(), String> {
        self.heal();
        let mut settled = false;
        for _ in 0..4000 {
            self.now += Duration::from_millis(5);
            self.service()?;
            self.check_bounds()?;
            if self.settled() {
                settled = true;
                break;
            }
        }
        if !settled {
            return Err("the cluster did not settle after healing".into());
        }
        let generations: BTreeMap<(usize, usize), u64> = self
            .links
            .iter()
            .map(|l| ((l.from, l.to), l.generation))
            .collect();
        for sent in &self.sent {
            for &(peer, generation) in &sent.queued_for {
                if generations[&(sent.node, peer)] != generation {
                    continue;
                }
                let subscriber = &self.subscribers[peer];
                let settled = sent.at >= subscriber.since + QUEUE.not_required_ttl;
                if !settled || !filter_matches(subscriber.filter, sent.topic) {
                    continue;
                }
                let got = self.received.get(&subscriber.id).map_or(0, |r| {
                    r.iter().filter(|m| **m == (sent.node, sent.seq)).count()
                });
                if got != 1 {
                    return Err(format!(
                        "{}:{} on {} reached subscriber {} ({}) on node {peer} {got} times",
                        sent.node, sent.seq, sent.topic, subscriber.id, subscriber.filter
                    ));
                }
                self.stats.guaranteed += 1;
            }
        }
        self.stats.dropped = self
            .nodes
            .iter()
            .flat_map(|n| n.broker().cluster().stats())
            .map(|p| p.dropped)
            .sum();
        Ok(())
    }
}

fn peer_name(node: usize) -> String {
    format!("n{node}")
}

/// Exchanges bytes between a local control client and its node until
/// neither has more; every reply must be OK. Returns the session token if
/// the login completed meanwhile.
fn pump_control(
    node: &mut Node,
    conn: ConnId,
    client: &mut ControlClient,
    now: Instant,
) -> Result<Option<Token>, String> {
    let mut token = None;
    for _ in 0..64 {
        let mut tx = TxBuf::new();
        client.poll_transmit(&mut tx);
        node.send(conn, &tx.to_vec(), now);
        let answer = node.recv(conn, now);
        if tx.is_empty() && answer.is_empty() {
            return Ok(token);
        }
        client.read_buf().extend_from_slice(&answer);
        client
            .handle_input(now)
            .map_err(|e| format!("local client: {e}"))?;
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::LoggedIn { token: t } => token = Some(t),
                ClientEvent::Reply {
                    status: status::OK, ..
                } => {}
                other => return Err(format!("local client: {other:?}")),
            }
        }
    }
    Err("a local control connection never went quiet".into())
}

/// The same for a data client.
fn pump_data(
    node: &mut Node,
    conn: ConnId,
    data: &mut DataClient,
    now: Instant,
) -> Result<(), String> {
    let mut tx = TxBuf::new();
    data.poll_transmit(&mut tx);
    node.send(conn, &tx.to_vec(), now);
    data.read_buf().extend_from_slice(&node.recv(conn, now));
    data.handle_input(now)
        .map_err(|e| format!("local data: {e}"))
}
