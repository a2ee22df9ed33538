//! A whole server in memory: one [`Broker`] and its [`Connection`]s, driven
//! synchronously with a clock the caller controls. Tests and simulators use
//! it to run every protocol scenario without sockets or a runtime. Every
//! socket is driven through [`SocketTask::turn`], as the runtimes drive
//! theirs: the broker is lent to a turn only for what needs it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crate::broker::{Broker, UdpOutcome, UdpTask};
use crate::conn::{
    Action, BrokerLock, CloseReason, ConnConfig, Connection, SocketTask, Transport, Turn, Wakeup,
};
use crate::txbuf::TxBuf;

/// Identifies a connection of a [`Node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(usize);

/// Records that the broker (or the connection itself) woke a connection.
#[derive(Debug, Default)]
struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl WakeFlag {
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// The node's broker lent to one [`SocketTask::turn`]: one thread owns
/// it, so "locking" is a borrow.
struct Lent<'a>(RefCell<&'a mut Broker>);

impl BrokerLock for Lent<'_> {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

struct Slot {
    conn: Connection,
    task: SocketTask,
    tx: TxBuf,
    woken: Arc<WakeFlag>,
    /// Whether a wake was delivered since the last `recv`.
    woke: bool,
    /// When the last turn asked to be woken with [`Wakeup::Timeout`].
    deadline: Option<Instant>,
    /// Password checks handed out and not yet answered (manual mode).
    checks: Vec<Action>,
}

/// A broker plus connections, all in memory.
///
/// Your simulator or test harness owns the clock and the "network": it
/// hands a [`Node`] the bytes each client sends and the time, and reads
/// back what the server would write. Nothing runs in the background, so a
/// run is reproducible from its inputs (the broker's RNG only makes
/// session tokens; seed it). A subscriber and a publisher, with the
/// crate's own frame encoders:
///
/// ```
/// use std::time::{Duration, Instant};
///
/// use bytes::BytesMut;
/// use psrt_proto::Limits;
/// use psrt_proto::broker::{AuthConfig, Broker};
/// use psrt_proto::conn::{ConnConfig, Transport};
/// use psrt_proto::node::{ConnId, Node};
/// use psrt_proto::wire::push::{self, Push};
/// use psrt_proto::wire::request::{self, DataHello, Greeting};
/// use psrt_proto::wire::{DEFAULT_PRIORITY, SocketKind, Token, op, status};
/// use rand::SeedableRng;
///
/// // Anonymous clients with full rights, plain TCP, a seeded RNG.
/// let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
/// let broker = Broker::new(Limits::default(), AuthConfig::open(), rng);
/// let config = ConnConfig { tls: None, allow_no_tls: true, tls_client_cn_login: false };
/// let mut node = Node::new(broker, config);
/// // Any base instant: the core only compares the times it is given.
/// let t0 = Instant::now();
///
/// /// Sends `frames` on `conn` and returns everything the server answers.
/// fn exchange(node: &mut Node, conn: ConnId, frames: &BytesMut, now: Instant) -> BytesMut {
///     node.send(conn, frames, now);
///     BytesMut::from(&node.recv(conn, now)[..])
/// }
///
/// /// Opens a control socket and logs in anonymously; returns the token.
/// fn log_in(node: &mut Node, peer: &str, now: Instant) -> (ConnId, Token) {
///     let control = node.connect(Transport::Tcp, peer, now);
///     let mut out = BytesMut::new();
///     request::encode_greeting(&mut out, Greeting { kind: SocketKind::Control, tls: false });
///     request::encode_login(&mut out, "", b"");
///     let mut answer = exchange(node, control, &out, now);
///     push::decode_greeting_reply(&mut answer, SocketKind::Control).unwrap().unwrap();
///     (control, push::decode_token(&mut answer).unwrap())
/// }
///
/// // The subscriber: control socket, data socket, SUBSCRIBE.
/// let (sub_control, token) = log_in(&mut node, "192.0.2.1:40000", t0);
/// let data = node.connect(Transport::Tcp, "192.0.2.1:40001", t0);
/// let mut out = BytesMut::new();
/// request::encode_greeting(&mut out, Greeting { kind: SocketKind::Data, tls: false });
/// request::encode_data_hello(&mut out, &DataHello { token, timeout_secs: 5 });
/// let mut answer = exchange(&mut node, data, &out, t0);
/// push::decode_greeting_reply(&mut answer, SocketKind::Data).unwrap().unwrap();
/// assert_eq!(push::decode_status(&mut answer), Some(status::OK));
/// let mut out = BytesMut::new();
/// request::encode_topics(&mut out, op::SUBSCRIBE, ["plant/#"]);
/// assert_eq!(&exchange(&mut node, sub_control, &out, t0)[..], [status::OK]);
///
/// // The publisher, 10 ms later.
/// let now = t0 + Duration::from_millis(10);
/// let (publisher, _) = log_in(&mut node, "192.0.2.2:40000", now);
/// let mut out = BytesMut::new();
/// request::encode_publish(&mut out, DEFAULT_PRIORITY, b"plant/a/temp", b"23.5");
/// assert_eq!(&exchange(&mut node, publisher, &out, now)[..], [status::OK]);
///
/// // The broker woke the subscriber's data socket; read the message.
/// assert!(node.was_woken(data));
/// let mut pushed = BytesMut::from(&node.recv(data, now)[..]);
/// let message = push::decode_push(&mut pushed, 1024).unwrap().unwrap();
/// assert_eq!(
///     message,
///     Push::Message {
///         prio: DEFAULT_PRIORITY,
///         topic: "plant/a/temp".into(),
///         payload: "23.5".into(),
///     }
/// );
///
/// // Time passes with no traffic: timeouts fire only when the harness
/// // says so, here well past the 5 s keep-alive.
/// node.advance(now + Duration::from_secs(60));
/// assert!(node.is_closed(publisher));
/// ```
pub struct Node {
    broker: Broker,
    config: Arc<ConnConfig>,
    slots: Vec<Option<Slot>>,
    /// The node's one UDP socket.
    udp: UdpTask,
    manual_checks: bool,
    /// The latest time a call passed in, for calls that take none.
    clock: Option<Instant>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("broker", &self.broker)
            .field("connections", &self.slots.iter().flatten().count())
            .finish()
    }
}

impl Node {
    /// A node around `broker`. Password checks run inline as soon as they
    /// are asked for, unless [`Node::set_manual_checks`] says otherwise.
    pub fn new(broker: Broker, config: ConnConfig) -> Self {
        Self {
            udp: UdpTask::new(broker.udp_keys().clone()),
            broker,
            config: Arc::new(config),
            slots: Vec::new(),
            manual_checks: false,
            clock: None,
        }
    }

    /// With `true`, password checks wait for [`Node::run_checks`], so a
    /// test can observe a login in progress.
    pub fn set_manual_checks(&mut self, manual: bool) {
        self.manual_checks = manual;
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The broker, mutably (reloads, settings).
    pub fn broker_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }

    /// A new client socket from `peer`.
    pub fn connect(&mut self, transport: Transport, peer: &str, now: Instant) -> ConnId {
        let woken = Arc::new(WakeFlag::default());
        let waker = Waker::from(woken.clone());
        let timeout = self.broker.limits().timeout;
        let conn = Connection::new(
            self.config.clone(),
            transport,
            peer.to_owned(),
            waker,
            timeout,
            now,
        );
        let slot = Slot {
            conn,
            // The node never stops, so never drains.
            task: SocketTask::new(Duration::ZERO),
            tx: TxBuf::new(),
            woken,
            woke: false,
            deadline: None,
            checks: Vec::new(),
        };
        let id = match self.slots.iter().position(Option::is_none) {
            Some(index) => {
                self.slots[index] = Some(slot);
                ConnId(index)
            }
            None => {
                self.slots.push(Some(slot));
                ConnId(self.slots.len() - 1)
            }
        };
        self.turn(id, None, now);
        id
    }

    /// Bytes arrive from the client.
    pub fn send(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        if bytes.is_empty() {
            return;
        }
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        slot.conn.read_buf().extend_from_slice(bytes);
        self.turn(id, Some(Wakeup::Read(Ok(bytes.len()))), now);
    }

    /// Everything the server has for the client now (the client reads it
    /// all).
    pub fn recv(&mut self, id: ConnId, now: Instant) -> Vec<u8> {
        self.recv_at_most(id, usize::MAX, now)
    }

    /// At most `max` bytes of what the server has for the client: a slow
    /// reader.
    pub fn recv_at_most(&mut self, id: ConnId, max: usize, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        let mut wakeup = None;
        loop {
            self.turn(id, wakeup, now);
            let Some(slot) = self.slot_mut(id) else {
                break;
            };
            if slot.tx.is_empty() || out.len() >= max {
                break;
            }
            let bytes = slot.tx.to_vec();
            let take = bytes.len().min(max - out.len());
            out.extend_from_slice(&bytes[..take]);
            wakeup = Some(Wakeup::Wrote(Ok(take)));
        }
        if let Some(slot) = self.slot_mut(id) {
            slot.woke = false;
        }
        out
    }

    /// Whether the broker woke this connection since its last `recv` (or
    /// the connection woke itself to decode input it had left).
    pub fn was_woken(&self, id: ConnId) -> bool {
        self.slot(id)
            .is_some_and(|s| s.woke || s.woken.0.load(Ordering::Relaxed))
    }

    /// The client closed its end (or vanished).
    pub fn disconnect(&mut self, id: ConnId) {
        if let Some(now) = self.clock {
            self.turn(id, Some(Wakeup::Read(Ok(0))), now);
        }
        if let Some(slot) = self.slots.get_mut(id.0) {
            *slot = None;
        }
    }

    /// Whether the server has closed this connection.
    pub fn is_closed(&self, id: ConnId) -> bool {
        self.slot(id).is_none_or(|s| s.conn.is_closed())
    }

    /// Why the server closed it.
    pub fn close_reason(&self, id: ConnId) -> Option<CloseReason> {
        self.slot(id).and_then(|s| s.conn.close_reason().cloned())
    }

    /// Lets time pass: fires every connection timeout due at `now`.
    pub fn advance(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            let id = ConnId(index);
            let due = self
                .slot(id)
                .and_then(|s| s.deadline)
                .is_some_and(|at| at <= now);
            if due {
                self.turn(id, Some(Wakeup::Timeout), now);
            }
        }
    }

    /// Runs every password check waiting (manual mode), returning how many.
    pub fn run_checks(&mut self, now: Instant) -> usize {
        let mut ran = 0;
        for index in 0..self.slots.len() {
            let id = ConnId(index);
            let checks = self
                .slot_mut(id)
                .map(|s| std::mem::take(&mut s.checks))
                .unwrap_or_default();
            for Action::CheckPassword(check) in checks {
                let ok = check.verify();
                self.turn(id, Some(Wakeup::Checked(ok)), now);
                ran += 1;
            }
        }
        ran
    }

    /// A UDP datagram arrives; returns the acknowledgement to send, if
    /// any. It goes through [`UdpTask`] as in the runtimes (opened, then
    /// the broker lent once); password checks run inline.
    pub fn datagram(&mut self, bytes: &[u8], now: Instant) -> Option<[u8; 5]> {
        let lent = Lent(RefCell::new(&mut self.broker));
        let outcome = match self.udp.receive(&lent, bytes, &"udp", now) {
            UdpOutcome::Verify(pending) => {
                let ok = pending.check.verify();
                self.udp.finish(&lent, pending, ok, &"udp", now)
            }
            outcome => outcome,
        };
        match outcome {
            UdpOutcome::Reply(ack) => Some(ack),
            _ => None,
        }
    }

    /// One [`SocketTask::turn`] of a connection after `wakeup`. A wake
    /// the connection got since its last turn is delivered first, as a
    /// driver would have done already, and one it gives itself during the
    /// turn (input left to decode) right after.
    fn turn(&mut self, id: ConnId, wakeup: Option<Wakeup>, now: Instant) {
        self.clock = self.clock.max(Some(now));
        self.deliver_wakes(id, now);
        self.turn_once(id, wakeup, now);
        self.deliver_wakes(id, now);
    }

    fn deliver_wakes(&mut self, id: ConnId, now: Instant) {
        while let Some(slot) = self.slot_mut(id)
            && slot.woken.take()
        {
            slot.woke = true;
            self.turn_once(id, Some(Wakeup::Woken), now);
        }
    }

    /// One turn; a password check it hands out runs inline (and is
    /// answered with another turn) unless checks are manual.
    fn turn_once(&mut self, id: ConnId, wakeup: Option<Wakeup>, now: Instant) {
        let mut wakeup = wakeup;
        loop {
            let Some(slot) = self.slots.get_mut(id.0).and_then(Option::as_mut) else {
                return;
            };
            let lent = Lent(RefCell::new(&mut self.broker));
            let turn = slot
                .task
                .turn(wakeup, &mut slot.conn, &lent, &mut slot.tx, now, true);
            let Turn::Wait {
                action, deadline, ..
            } = turn
            else {
                slot.deadline = None;
                return;
            };
            slot.deadline = deadline;
            let Some(action) = action else {
                return;
            };
            if self.manual_checks {
                slot.checks.push(action);
                return;
            }
            let Action::CheckPassword(check) = action;
            wakeup = Some(Wakeup::Checked(check.verify()));
        }
    }

    fn slot(&self, id: ConnId) -> Option<&Slot> {
        self.slots.get(id.0)?.as_ref()
    }

    fn slot_mut(&mut self, id: ConnId) -> Option<&mut Slot> {
        self.slots.get_mut(id.0)?.as_mut()
    }
}
