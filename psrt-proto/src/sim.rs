//! Deterministic simulation (feature `sim`): one [`Node`] and many
//! simulated clients over a virtual network and a virtual clock, all driven
//! by one seeded RNG, so a run replays exactly from its seed.
//!
//! The network keeps in-flight chunks per connection and direction with
//! random delays: FIFO within a connection, reordered between connections.
//! Chunks are cut at random points on delivery; clients crash mid-frame,
//! vanish without closing (half-open: the server must time them out), close
//! their data sockets, read slowly; the clock jumps past the timeout; the
//! ACL and `allow_anonymous` are reloaded mid-stream.
//!
//! An oracle interprets every frame when its last byte reaches the server
//! and predicts the server's reply, sessions, subscriptions and timeouts.
//! After every step it checks: every delivered message was published and
//! accepted, by a publisher the ACL allowed, to a topic the receiver was
//! allowed to and did subscribe to when it was published, on a data socket
//! bound then (so nothing after unsubscribe or to a dropped socket); no
//! client gets a message twice; each publisher's messages arrive in order;
//! every reply is the predicted one; sessions and subscriptions match the
//! model; every data queue stays within `data_queue`. At the end every
//! client leaves and, once the timeouts pass, the broker is back to no
//! session and no subscription.
//!
//! A failure names its seed and step; `scripts/sim.sh --seed N` replays it.

pub mod cluster;
mod model;

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::broker::Broker;
use crate::conn::{CloseReason, ConnConfig, Transport};
use crate::node::Node;
use crate::topic::filter_matches;
use crate::topk::SortBy;
use crate::wire::push::{self, Push};
use crate::wire::request::{self, DataHello, Greeting};
use crate::wire::{SocketKind, TOKEN_LEN, Token, op, status};

use model::{
    Client, Conn, DATA_TIMEOUT, Expect, FILTERS, Frame, Kind, PASSWORD, PRIO, Packet, Phase,
    Published, Rules, Session, TAG_LEN, TOPICS, USERS, VARIANTS, limits, payload,
};

/// Simulated clients at once.
const CLIENTS: usize = 6;
/// Most network delay of a chunk.
const MAX_DELAY_MS: u64 = 40;

/// What a successful run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Steps run.
    pub steps: usize,
    /// Logins granted.
    pub logins: u64,
    /// Messages the server accepted.
    pub published: u64,
    /// Messages clients received (all checked).
    pub delivered: u64,
    /// Access reloads.
    pub reloads: u64,
    /// Connections the server closed on a timeout.
    pub timeouts: u64,
    /// Data sockets the server dropped (slow consumer or stalled writes).
    pub drops: u64,
    /// Clients that crashed mid-frame or vanished without closing.
    pub crashes: u64,
}

/// A broken invariant, with what is needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "simulation seed {seed} failed at step {step} of {steps}: {message}\n\
     replay exactly with: scripts/sim.sh --seed {seed} --steps {steps}"
)]
#[non_exhaustive]
pub struct Failure {
    /// The seed of the run.
    pub seed: u64,
    /// The step whose checks failed (the end phase counts as `steps`).
    pub step: usize,
    /// Steps the run was asked for.
    pub steps: usize,
    /// What went wrong.
    pub message: String,
}

/// Runs `steps` random steps from `seed` with the virtual clock starting at
/// `start` (only offsets from it matter, so any instant replays the same
/// run), then the end phase. A panic inside the node is reported as a
/// failure of the step it happened in.
pub fn run(seed: u64, steps: usize, start: Instant) -> Result<Stats, Failure> {
    let mut step = 0;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, start)?;
        while step < steps {
            sim.step()?;
            sim.check()?;
            step += 1;
        }
        sim.finish()?;
        sim.stats.steps = steps;
        Ok(sim.stats)
    }));
    let message = match outcome {
        Ok(Ok(stats)) => return Ok(stats),
        Ok(Err(message)) => message,
        Err(panic) => panic_message(panic.as_ref()),
    };
    Err(Failure {
        seed,
        step,
        steps,
        message,
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()));
    format!("panic: {}", text.unwrap_or_default())
}

/// Returns `Err(message)` from the enclosing function when `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// The simulated world.
struct Sim {
    rng: StdRng,
    node: Node,
    now: Instant,
    rules: Rules,
    variant: usize,
    conns: BTreeMap<u64, Conn>,
    next_key: u64,
    clients: Vec<Client>,
    next_publisher: u64,
    messages: Vec<Published>,
    stats: Stats,
}

impl Sim {
    fn new(seed: u64, start: Instant) -> Result<Self, String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let rules = Rules::new()?;
        let variant = rng.random_range(0..VARIANTS.len());
        let broker_rng = StdRng::seed_from_u64(rng.random());
        let broker = Broker::new(limits(), rules.auth(variant), Box::new(broker_rng));
        let config = ConnConfig {
            tls: None,
            allow_no_tls: true,
            tls_client_cn_login: false,
        };
        let mut sim = Self {
            rng,
            node: Node::new(broker, config),
            now: start,
            rules,
            variant,
            conns: BTreeMap::new(),
            next_key: 0,
            clients: Vec::new(),
            next_publisher: 0,
            messages: Vec::new(),
            stats: Stats::default(),
        };
        for _ in 0..CLIENTS {
            let client = sim.fresh_client();
            sim.clients.push(client);
        }
        Ok(sim)
    }

    /// One random step: a little time passes, maybe a client acts, and
    /// the network moves a few chunks each way.
    fn step(&mut self) -> Result<(), String> {
        let dt = Duration::from_millis(self.rng.random_range(0..8));
        self.advance(dt)?;
        match self.rng.random_range(0..100) {
            0..50 => self.client_action()?,
            50..53 => self.tick()?,
            53..54 => self.reload(),
            _ => {}
        }
        for _ in 0..self.rng.random_range(0..4) {
            self.deliver_up()?;
        }
        for _ in 0..self.rng.random_range(0..3) {
            self.pump()?;
        }
        for _ in 0..self.rng.random_range(0..4) {
            self.deliver_down()?;
        }
        Ok(())
    }

    // ----- clients -----

    fn fresh_client(&mut self) -> Client {
        self.next_publisher += 1;
        Client {
            publisher: self.next_publisher,
            slow: self.rng.random_bool(0.2),
            ..Client::default()
        }
    }

    fn client_action(&mut self) -> Result<(), String> {
        let c = self.rng.random_range(0..self.clients.len());
        let client = &self.clients[c];
        let Some(control) = client.control else {
            self.login(c);
            return Ok(());
        };
        if client.leaving || client.token.is_none() {
            return Ok(());
        }
        let idle = client
            .last_sent
            .is_none_or(|t| self.now >= t + limits().timeout / 2);
        let has_data = client.data.is_some();
        match self.rng.random_range(0..100) {
            _ if idle && self.rng.random_bool(0.7) => self.send_op(c, control, Frame::Nop),
            0..35 if has_data || self.rng.random_bool(0.5) => self.publish(c, control),
            0..35 => self.open_data(c, control),
            35..52 => {
                let f = self.rng.random_range(0..FILTERS.len());
                self.send_op(c, control, Frame::Subscribe(f));
            }
            52..60 => {
                let f = self.rng.random_range(0..FILTERS.len());
                self.send_op(c, control, Frame::Unsubscribe(f));
            }
            60..66 => self.send_op(c, control, Frame::Nop),
            66..80 if !has_data => self.open_data(c, control),
            80..83 => self.close_data(c),
            83..85 => {
                self.send_op(c, control, Frame::Bye);
                self.clients[c].leaving = true;
            }
            85..86 => self.crash(c, control),
            86..87 => self.vanish(c),
            87..90 => self.clients[c].slow = !self.clients[c].slow,
            _ => {}
        }
        Ok(())
    }

    fn login(&mut self, c: usize) {
        let login = USERS[self.rng.random_range(0..USERS.len())];
        let password_ok = self.rng.random_bool(0.95);
        let password = if password_ok { PASSWORD } else { "wrong" };
        let key = self.open_conn(c, Kind::Control);
        self.clients[c].control = Some(key);
        self.send_greeting(key, SocketKind::Control);
        let mut frame = BytesMut::new();
        request::encode_login(&mut frame, login, password.as_bytes());
        self.queue(key, &frame, Frame::Login { login, password_ok });
    }

    fn open_data(&mut self, c: usize, control: u64) {
        let Some(token) = self.clients[c].token else {
            return;
        };
        let key = self.open_conn(c, Kind::Data);
        self.clients[c].data = Some(key);
        self.send_greeting(key, SocketKind::Data);
        let mut frame = BytesMut::new();
        let hello = DataHello {
            token,
            timeout_secs: DATA_TIMEOUT,
        };
        request::encode_data_hello(&mut frame, &hello);
        self.queue(key, &frame, Frame::DataHello { control });
    }

    fn publish(&mut self, c: usize, control: u64) {
        let (raw, topic) = TOPICS[self.rng.random_range(0..TOPICS.len())];
        let len = TAG_LEN + self.rng.random_range(0..400);
        let client = &mut self.clients[c];
        client.seq += 1;
        let msg = self.messages.len();
        self.messages.push(Published {
            topic,
            len,
            publisher: client.publisher,
            seq: client.seq,
            accepted: false,
            variant: self.variant,
            eligible: BTreeMap::new(),
        });
        let mut frame = BytesMut::new();
        request::encode_publish(&mut frame, PRIO, raw.as_bytes(), &payload(msg, len));
        self.clients[c].last_sent = Some(self.now);
        self.queue(control, &frame, Frame::Publish { msg });
    }

    fn send_op(&mut self, c: usize, control: u64, frame: Frame) {
        let mut bytes = BytesMut::new();
        match &frame {
            Frame::Subscribe(f) => {
                request::encode_topics(&mut bytes, op::SUBSCRIBE, [FILTERS[*f].0])
            }
            Frame::Unsubscribe(f) => {
                request::encode_topics(&mut bytes, op::UNSUBSCRIBE, [FILTERS[*f].0]);
            }
            Frame::Bye => bytes.extend_from_slice(&[op::BYE]),
            _ => bytes.extend_from_slice(&[op::NOP]),
        }
        self.clients[c].last_sent = Some(self.now);
        self.queue(control, &bytes, frame);
    }

    /// Half a publish frame, then the client is gone (both sockets close).
    fn crash(&mut self, c: usize, control: u64) {
        let mut frame = BytesMut::new();
        request::encode_publish(&mut frame, PRIO, b"a", &payload(0, 64));
        let cut = self.rng.random_range(1..frame.len());
        self.push_up(control, Packet::Bytes(frame[..cut].to_vec()));
        self.push_up(control, Packet::Fin);
        if let Some(data) = self.clients[c].data {
            self.push_up(data, Packet::Fin);
        }
        self.stats.crashes += 1;
        self.detach(c, 0);
    }

    /// The client vanishes without closing: its sockets are half-open.
    fn vanish(&mut self, c: usize) {
        self.stats.crashes += 1;
        let budget = self.rng.random_range(0..8192);
        self.detach(c, budget);
    }

    fn close_data(&mut self, c: usize) {
        let Some(data) = self.clients[c].data.take() else {
            return;
        };
        self.push_up(data, Packet::Fin);
        if let Some(conn) = self.conns.get_mut(&data) {
            conn.client = None;
        }
    }

    /// Leaves client `c`'s sockets as orphans and puts a new client there.
    fn detach(&mut self, c: usize, void_budget: usize) {
        let old = std::mem::take(&mut self.clients[c]);
        for key in [old.control, old.data].into_iter().flatten() {
            if let Some(conn) = self.conns.get_mut(&key) {
                conn.client = None;
                conn.void_budget = void_budget;
            }
        }
        self.clients[c] = self.fresh_client();
    }

    // ----- network -----

    fn open_conn(&mut self, c: usize, kind: Kind) -> u64 {
        let id = self
            .node
            .connect(Transport::Tcp, &format!("client-{c}"), self.now);
        let key = self.next_key;
        self.next_key += 1;
        self.conns.insert(key, Conn::new(id, kind, c, self.now));
        key
    }

    fn send_greeting(&mut self, key: u64, kind: SocketKind) {
        let mut frame = BytesMut::new();
        request::encode_greeting(&mut frame, Greeting { kind, tls: false });
        self.queue(key, &frame, Frame::Greeting);
    }

    /// Queues a frame on the client-to-server direction.
    fn queue(&mut self, key: u64, bytes: &[u8], frame: Frame) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.queued += bytes.len() as u64;
        conn.frames.push_back((conn.queued, frame));
        self.push_up(key, Packet::Bytes(bytes.to_vec()));
    }

    fn delay(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(0..=MAX_DELAY_MS))
    }

    fn push_up(&mut self, key: u64, packet: Packet) {
        let delay = self.delay();
        let now = self.now;
        if let Some(conn) = self.conns.get_mut(&key) {
            let at = conn.up.back().map_or(now, |(t, _)| *t).max(now + delay);
            conn.up.push_back((at, packet));
        }
    }

    fn push_down(&mut self, key: u64, packet: Packet) {
        let delay = self.delay();
        let now = self.now;
        if let Some(conn) = self.conns.get_mut(&key) {
            let at = conn.down.back().map_or(now, |(t, _)| *t).max(now + delay);
            conn.down.push_back((at, packet));
        }
    }

    /// A random connection with a chunk due in the given direction.
    fn pick_due(&mut self, up: bool) -> Option<u64> {
        let now = self.now;
        let due: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                let queue = if up { &c.up } else { &c.down };
                queue.front().is_some_and(|(t, _)| *t <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        if due.is_empty() {
            return None;
        }
        Some(due[self.rng.random_range(0..due.len())])
    }

    /// Delivers (a random prefix of) the next due chunk to the server.
    fn deliver_up(&mut self) -> Result<(), String> {
        let Some(key) = self.pick_due(true) else {
            return Ok(());
        };
        let split = self.rng.random_bool(0.3);
        let cut_seed = self.rng.random::<u32>() as usize;
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        let Some((at, packet)) = conn.up.pop_front() else {
            return Ok(());
        };
        let bytes = match packet {
            Packet::Fin => return self.server_sees_fin(key),
            Packet::Bytes(bytes) => bytes,
        };
        let head = if split && bytes.len() > 1 {
            let cut = 1 + cut_seed % (bytes.len() - 1);
            conn.up
                .push_front((at, Packet::Bytes(bytes[cut..].to_vec())));
            bytes[..cut].to_vec()
        } else {
            bytes
        };
        let id = conn.id;
        conn.delivered += head.len() as u64;
        self.node.send(id, &head, self.now);
        self.complete_frames(key)
    }

    /// The client's FIN reaches the server.
    fn server_sees_fin(&mut self, key: u64) -> Result<(), String> {
        let Some(conn) = self.conns.remove(&key) else {
            return Ok(());
        };
        self.node.disconnect(conn.id);
        self.end_phase(conn.phase, key);
        self.forget(key);
        Ok(())
    }

    /// Reads what the server has for a random connection: a client's read
    /// (slow clients read little), or the void's for orphans.
    fn pump(&mut self) -> Result<(), String> {
        let keys: Vec<u64> = self.conns.keys().copied().collect();
        let Some(&key) = keys.get(self.rng.random_range(0..keys.len().max(1))) else {
            return Ok(());
        };
        self.pump_one(key, false)
    }

    fn pump_one(&mut self, key: u64, everything: bool) -> Result<(), String> {
        let Some(conn) = self.conns.get(&key) else {
            return Ok(());
        };
        let (id, client, budget) = (conn.id, conn.client, conn.void_budget);
        let Some(c) = client else {
            let bytes = self.node.recv_at_most(id, budget.max(1), self.now);
            if let Some(conn) = self.conns.get_mut(&key) {
                conn.void_budget = budget.saturating_sub(bytes.len());
            }
            if self.node.is_closed(id) && self.conns.get(&key).is_some_and(|c| c.up.is_empty()) {
                self.note_server_close(key)?;
                self.node.disconnect(id);
                self.conns.remove(&key);
                self.forget(key);
            }
            return Ok(());
        };
        let max = match (everything, self.clients[c].slow) {
            (true, _) => usize::MAX,
            (false, true) => self.rng.random_range(1..64),
            (false, false) => self.rng.random_range(1..8192),
        };
        let bytes = self.node.recv_at_most(id, max, self.now);
        if !bytes.is_empty() {
            self.push_down(key, Packet::Bytes(bytes));
        } else if self.node.is_closed(id) && !conn_eof_sent(&self.conns, key) {
            if let Some(conn) = self.conns.get_mut(&key) {
                conn.eof_sent = true;
            }
            self.push_down(key, Packet::Fin);
        }
        Ok(())
    }

    /// Delivers the next due chunk to its client, which checks it.
    fn deliver_down(&mut self) -> Result<(), String> {
        let Some(key) = self.pick_due(false) else {
            return Ok(());
        };
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        let Some((_, packet)) = conn.down.pop_front() else {
            return Ok(());
        };
        if conn.client.is_none() {
            return Ok(());
        }
        match packet {
            Packet::Bytes(bytes) => {
                conn.rx.extend_from_slice(&bytes);
                self.client_reads(key)
            }
            Packet::Fin => self.client_sees_eof(key),
        }
    }

    /// The client reads the end of stream: everything predicted must have
    /// arrived; it closes its end.
    fn client_sees_eof(&mut self, key: u64) -> Result<(), String> {
        let Some(conn) = self.conns.get(&key) else {
            return Ok(());
        };
        ensure!(
            conn.expect.is_empty() && conn.rx.is_empty(),
            "{:?} socket closed ({:?}) with replies outstanding: {:?}, {} bytes unparsed",
            conn.kind,
            self.node.close_reason(conn.id),
            conn.expect,
            conn.rx.len()
        );
        self.note_server_close(key)?;
        if let Some(conn) = self.conns.remove(&key) {
            self.node.disconnect(conn.id);
            self.end_phase(conn.phase, key);
        }
        self.forget(key);
        Ok(())
    }

    /// Clears every reference to a connection that is gone.
    fn forget(&mut self, key: u64) {
        for client in &mut self.clients {
            if client.control == Some(key) {
                client.control = None;
                client.token = None;
                client.leaving = false;
            }
            if client.data == Some(key) {
                client.data = None;
            }
        }
    }

    // ----- time and reloads -----

    fn tick(&mut self) -> Result<(), String> {
        let jump = if self.rng.random_bool(0.1) {
            limits().timeout + Duration::from_millis(self.rng.random_range(0..2000))
        } else {
            Duration::from_millis(self.rng.random_range(0..400))
        };
        self.advance(jump)
    }

    fn advance(&mut self, by: Duration) -> Result<(), String> {
        self.now += by;
        self.node.advance(self.now);
        let now = self.now;
        let due: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                !matches!(c.phase, Phase::Closed) && c.deadline.is_some_and(|d| d <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            let reason = self.node.close_reason(conn.id);
            ensure!(
                reason == Some(CloseReason::Timeout),
                "{:?} socket idle past its deadline closed with {reason:?}",
                conn.kind
            );
            let phase = std::mem::replace(&mut conn.phase, Phase::Closed);
            self.end_phase(phase, key);
            self.stats.timeouts += 1;
        }
        Ok(())
    }

    fn reload(&mut self) {
        // The open variant half of the time, so messages flow.
        self.variant = match self.rng.random_bool(0.5) {
            true => 0,
            false => self.rng.random_range(1..VARIANTS.len()),
        };
        self.stats.reloads += 1;
        let auth = self.rules.auth(self.variant);
        self.node.broker_mut().reload(auth);
        let variant = self.variant;
        for conn in self.conns.values_mut() {
            if let Some(session) = conn.session_mut() {
                let rights = self.rules.rights(variant, session.login);
                session.filters.retain(|f| rights.may_subscribe(f));
            }
        }
    }

    // ----- the oracle: the server side -----

    /// Applies every frame whose last byte reached the server.
    fn complete_frames(&mut self, key: u64) -> Result<(), String> {
        loop {
            let Some(conn) = self.conns.get_mut(&key) else {
                return Ok(());
            };
            match conn.frames.front() {
                Some((end, _)) if *end <= conn.delivered => {}
                _ => return self.check_open_matches(key),
            }
            let Some((_, frame)) = conn.frames.pop_front() else {
                return Ok(());
            };
            if matches!(conn.phase, Phase::Closed) {
                continue;
            }
            self.apply(key, frame)?;
        }
    }

    fn apply(&mut self, key: u64, frame: Frame) -> Result<(), String> {
        let timeout = limits().timeout;
        let now = self.now;
        match frame {
            Frame::Greeting => {
                let kind = match self.conns.get(&key).map(|c| c.kind) {
                    Some(Kind::Data) => SocketKind::Data,
                    _ => SocketKind::Control,
                };
                self.expect(key, Expect::Bytes(push::greeting_reply(kind).to_vec()));
            }
            Frame::Login { login, password_ok } => self.apply_login(key, login, password_ok)?,
            Frame::DataHello { control } => self.apply_hello(key, control)?,
            Frame::Publish { msg } => {
                let reply = self.apply_publish(key, msg);
                self.reply(key, reply, now + timeout);
            }
            Frame::Subscribe(f) => {
                let reply = self.apply_subscribe(key, f);
                self.reply(key, reply, now + timeout);
            }
            Frame::Unsubscribe(f) => {
                let reply = match (self.session_mut(key), FILTERS[f].1) {
                    (Some(session), Some(filter)) => {
                        session.filters.remove(filter);
                        status::OK
                    }
                    _ => status::ERR,
                };
                self.reply(key, reply, now + timeout);
            }
            Frame::Nop => self.reply(key, status::OK, now + timeout),
            Frame::Bye => {
                self.reply(key, status::OK, now + timeout);
                if let Some(conn) = self.conns.get_mut(&key) {
                    let phase = std::mem::replace(&mut conn.phase, Phase::Closed);
                    self.end_phase(phase, key);
                }
            }
        }
        Ok(())
    }

    fn apply_login(
        &mut self,
        key: u64,
        login: &'static str,
        password_ok: bool,
    ) -> Result<(), String> {
        let room = self.live_sessions() < limits().max_sessions;
        let granted = VARIANTS[self.variant].may_log_in(login, password_ok) && room;
        let deadline = self.now + limits().timeout;
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        conn.deadline = Some(deadline);
        if !granted {
            conn.phase = Phase::Closed;
            conn.deadline = None;
            return Ok(());
        }
        conn.phase = Phase::Session(Session {
            login,
            filters: Default::default(),
            data: None,
        });
        conn.expect.push_back(Expect::Token);
        self.stats.logins += 1;
        Ok(())
    }

    fn apply_hello(&mut self, key: u64, control: u64) -> Result<(), String> {
        let bound = self.session(control).map(|s| s.data);
        let free = match bound {
            Some(None) => true,
            Some(Some(data)) => self
                .conns
                .get(&data)
                .is_none_or(|d| self.node.is_closed(d.id)),
            None => false,
        };
        if let Some(session) = self.session_mut(control).filter(|_| free) {
            session.data = Some(key);
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        conn.deadline = None;
        if free {
            conn.phase = Phase::Bound { control };
            conn.expect.push_back(Expect::Bytes(vec![status::OK]));
        } else {
            conn.phase = Phase::Closed;
            conn.expect.push_back(Expect::Bytes(vec![status::ERR]));
        }
        Ok(())
    }

    fn apply_publish(&mut self, key: u64, msg: usize) -> u8 {
        let Some(login) = self.session(key).map(|s| s.login) else {
            return status::ERR;
        };
        let Some(topic) = self.messages.get(msg).map(|m| m.topic) else {
            return status::ERR;
        };
        if crate::topic::depth(topic) > limits().max_topic_depth {
            return status::ERR;
        }
        if !VARIANTS[self.variant].may_publish(login, topic) {
            return status::ERR_ACCESS;
        }
        let mut eligible = BTreeMap::new();
        for conn in self.conns.values() {
            let Some(session) = conn.session() else {
                continue;
            };
            let Some(data) = session
                .data
                .and_then(|d| self.conns.get(&d).map(|c| (d, c)))
            else {
                continue;
            };
            let open =
                matches!(data.1.phase, Phase::Bound { .. }) && !self.node.is_closed(data.1.id);
            if open && session.filters.iter().any(|f| filter_matches(f, topic)) {
                eligible.insert(data.0, session.login);
            }
        }
        let variant = self.variant;
        if let Some(message) = self.messages.get_mut(msg) {
            message.accepted = true;
            message.variant = variant;
            message.eligible = eligible;
        }
        self.stats.published += 1;
        status::OK
    }

    fn apply_subscribe(&mut self, key: u64, f: usize) -> u8 {
        let variant = self.variant;
        let Some(login) = self.session(key).map(|s| s.login) else {
            return status::ERR;
        };
        let rights = self.rules.rights(variant, login);
        let Some(session) = self.session_mut(key) else {
            return status::ERR;
        };
        match FILTERS[f].1 {
            None => status::ERR,
            Some(filter) if !rights.may_subscribe(filter) => status::ERR_ACCESS,
            Some(filter)
                if !session.filters.contains(filter)
                    && session.filters.len() >= limits().max_subscriptions_per_client =>
            {
                status::ERR
            }
            Some(filter) => {
                session.filters.insert(filter);
                status::OK
            }
        }
    }

    fn session(&self, key: u64) -> Option<&Session> {
        self.conns.get(&key).and_then(Conn::session)
    }

    fn session_mut(&mut self, key: u64) -> Option<&mut Session> {
        self.conns.get_mut(&key).and_then(Conn::session_mut)
    }

    fn expect(&mut self, key: u64, expect: Expect) {
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.expect.push_back(expect);
        }
    }

    /// An operation completed: its reply byte is due and the idle timer
    /// restarts.
    fn reply(&mut self, key: u64, reply: u8, deadline: Instant) {
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.expect.push_back(Expect::Bytes(vec![reply]));
            conn.deadline = Some(deadline);
        }
    }

    /// A connection's server side ended (FIN, BYE, timeout, refusal).
    fn end_phase(&mut self, phase: Phase, key: u64) {
        match phase {
            Phase::Bound { control } => {
                if let Some(session) = self.session_mut(control).filter(|s| s.data == Some(key)) {
                    session.data = None;
                }
            }
            Phase::Session(_) | Phase::Opening | Phase::Closed => {}
        }
    }

    /// After a frame: the server's open/closed state of the connection
    /// must be the predicted one.
    fn check_open_matches(&self, key: u64) -> Result<(), String> {
        let Some(conn) = self.conns.get(&key) else {
            return Ok(());
        };
        let closed = self.node.is_closed(conn.id);
        let predicted = matches!(conn.phase, Phase::Closed);
        ensure!(
            closed == predicted,
            "{:?} socket: server closed={closed} ({:?}), model closed={predicted}",
            conn.kind,
            self.node.close_reason(conn.id)
        );
        Ok(())
    }

    /// The server closed a connection on its own; notes why.
    fn note_server_close(&mut self, key: u64) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        if matches!(conn.phase, Phase::Closed) {
            return Ok(());
        }
        let reason = self.node.close_reason(conn.id);
        ensure!(
            matches!(conn.phase, Phase::Bound { .. })
                && matches!(
                    reason,
                    Some(CloseReason::SessionGone | CloseReason::WriteStalled)
                ),
            "{:?} socket closed unexpectedly: {reason:?}",
            conn.kind
        );
        let phase = std::mem::replace(&mut conn.phase, Phase::Closed);
        self.stats.drops += 1;
        self.end_phase(phase, key);
        Ok(())
    }

    fn live_sessions(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.session().is_some())
            .count()
    }

    // ----- the oracle: the client side -----

    /// Parses what a client received: exact replies first, then pushed
    /// messages, each checked against the model.
    fn client_reads(&mut self, key: u64) -> Result<(), String> {
        loop {
            let Some(conn) = self.conns.get_mut(&key) else {
                return Ok(());
            };
            let Some(front) = conn.expect.front() else {
                break;
            };
            let need = match front {
                Expect::Bytes(bytes) => bytes.len(),
                Expect::Token => TOKEN_LEN,
            };
            if conn.rx.len() < need {
                return Ok(());
            }
            let got = conn.rx.split_to(need);
            match conn.expect.pop_front() {
                Some(Expect::Bytes(want)) => ensure!(
                    got[..] == want[..],
                    "{:?} socket read {got:02X?}, expected {want:02X?}",
                    conn.kind
                ),
                _ => {
                    let token = Token::try_from(&got[..]).map_err(|e| e.to_string())?;
                    if let Some(c) = conn.client {
                        self.clients[c].token = Some(token);
                    }
                }
            }
        }
        self.read_pushes(key)
    }

    fn read_pushes(&mut self, key: u64) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        if conn.kind == Kind::Control || !matches!(conn.phase, Phase::Bound { .. } | Phase::Closed)
        {
            ensure!(
                conn.rx.is_empty(),
                "{:?} socket read unexpected {:02X?}",
                conn.kind,
                &conn.rx[..]
            );
            return Ok(());
        }
        loop {
            let pushed = push::decode_push(&mut conn.rx, usize::MAX).map_err(|e| e.to_string())?;
            match pushed {
                None => return Ok(()),
                Some(Push::Nop) => {}
                Some(Push::Message {
                    prio,
                    topic,
                    payload: body,
                }) => {
                    ensure!(prio == PRIO, "priority {prio} changed");
                    check_delivery(&self.messages, key, conn, &topic, &body)?;
                    self.stats.delivered += 1;
                }
            }
        }
    }

    // ----- invariants after every step -----

    fn check(&mut self) -> Result<(), String> {
        let keys: Vec<u64> = self.conns.keys().copied().collect();
        for key in keys {
            let Some(conn) = self.conns.get(&key) else {
                continue;
            };
            if self.node.is_closed(conn.id) && !matches!(conn.phase, Phase::Closed) {
                self.note_server_close(key)?;
            }
            self.check_open_matches(key)?;
        }
        let broker = self.node.broker();
        let sessions = self.live_sessions();
        ensure!(
            broker.session_count() == sessions,
            "broker holds {} sessions, model {sessions}",
            broker.session_count()
        );
        let filters: usize = self
            .conns
            .values()
            .filter_map(Conn::session)
            .map(|s| s.filters.len())
            .sum();
        ensure!(
            broker.subscription_count() == filters,
            "broker holds {} subscriptions, model {filters}",
            broker.subscription_count()
        );
        let snapshot = broker.snapshot(usize::MAX, 0, SortBy::Messages);
        let bound = limits().data_queue;
        ensure!(
            snapshot.clients.iter().all(|c| c.queued <= bound),
            "a data queue is over its bound of {bound}"
        );
        let counters = broker.counters();
        ensure!(
            counters.c_pub_messages == self.stats.published,
            "broker counted {} publishes, model {}",
            counters.c_pub_messages,
            self.stats.published
        );
        ensure!(
            counters.c_sent_messages >= self.stats.delivered,
            "clients received more than the broker sent"
        );
        Ok(())
    }

    /// Every client leaves (closing, saying BYE, or vanishing); the network
    /// drains; time passes the timeouts; the broker must be empty.
    fn finish(&mut self) -> Result<(), String> {
        for c in 0..self.clients.len() {
            match (self.clients[c].control, self.rng.random_range(0..3)) {
                (Some(control), 0) if !self.clients[c].leaving => {
                    self.send_op(c, control, Frame::Bye);
                    self.clients[c].leaving = true;
                }
                (_, 1) => self.vanish(c),
                _ => self.leave(c),
            }
        }
        for _ in 0..4 {
            self.drain()?;
            self.advance(limits().timeout + Duration::from_secs(1))?;
            self.check()?;
        }
        for c in 0..self.clients.len() {
            self.leave(c);
        }
        self.drain()?;
        self.advance(limits().timeout + Duration::from_secs(1))?;
        self.drain()?;
        self.check()?;
        let broker = self.node.broker();
        ensure!(
            broker.session_count() == 0 && broker.subscription_count() == 0,
            "after every client left: {} sessions, {} subscriptions remain",
            broker.session_count(),
            broker.subscription_count()
        );
        Ok(())
    }

    /// Client `c` closes both sockets.
    fn leave(&mut self, c: usize) {
        let keys = [self.clients[c].control, self.clients[c].data];
        for key in keys.into_iter().flatten() {
            self.push_up(key, Packet::Fin);
        }
        self.detach(c, 0);
    }

    /// Delivers everything in flight, reading every socket fully.
    fn drain(&mut self) -> Result<(), String> {
        for _ in 0..64 {
            let latest = self
                .conns
                .values()
                .flat_map(|c| c.up.iter().chain(c.down.iter()).map(|(t, _)| *t))
                .max();
            if let Some(latest) = latest.filter(|t| *t > self.now) {
                self.advance(latest - self.now)?;
            }
            while self.pick_due(true).is_some() {
                self.deliver_up()?;
            }
            let keys: Vec<u64> = self.conns.keys().copied().collect();
            for key in keys {
                self.pump_one(key, true)?;
            }
            while self.pick_due(false).is_some() {
                self.deliver_down()?;
            }
            self.check()?;
            if self
                .conns
                .values()
                .all(|c| c.up.is_empty() && c.down.is_empty())
            {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn conn_eof_sent(conns: &BTreeMap<u64, Conn>, key: u64) -> bool {
    conns.get(&key).is_none_or(|c| c.eof_sent)
}

/// Checks one message a data socket received against the model.
fn check_delivery(
    messages: &[Published],
    key: u64,
    conn: &mut Conn,
    topic: &[u8],
    body: &[u8],
) -> Result<(), String> {
    let tag = body
        .get(..TAG_LEN)
        .and_then(|t| <[u8; TAG_LEN]>::try_from(t).ok());
    let id = tag.map(u64::from_le_bytes).ok_or("payload without a tag")?;
    let id = usize::try_from(id).map_err(|e| e.to_string())?;
    let msg = messages
        .get(id)
        .ok_or(format!("message {id} was never published"))?;
    ensure!(msg.accepted, "message {id} was refused yet delivered");
    ensure!(
        topic == msg.topic.as_bytes(),
        "message {id} arrived on topic {topic:?}"
    );
    ensure!(
        body == payload(id, msg.len).as_slice(),
        "message {id} payload altered"
    );
    let login = msg.eligible.get(&key).ok_or(format!(
        "message {id} ({}) reached a socket not subscribed and bound at publish time",
        msg.topic
    ))?;
    ensure!(
        VARIANTS[msg.variant].sub_mask_matches(login, msg.topic),
        "message {id} ({}) reached {login:?} outside its sub masks",
        msg.topic
    );
    ensure!(conn.seen.insert(id), "message {id} delivered twice");
    let last = conn.last_seq.insert(msg.publisher, msg.seq);
    ensure!(
        last.is_none_or(|l| l < msg.seq),
        "publisher {} order broken: seq {} after {last:?}",
        msg.publisher,
        msg.seq
    );
    Ok(())
}
