//! The broker: sessions, tokens, subscriptions, access checks, fan-out into
//! per-client data queues, credential cache and statistics.
//!
//! One `Broker` serves every connection of a server. Connections
//! ([`crate::conn::Connection`]) call it while they process input; a
//! multi-threaded driver keeps it behind one lock. Every method is short and
//! non-blocking: password checks come out as [`PasswordCheck`] values that
//! the driver verifies elsewhere and feeds back.
//!
//! # Data path
//!
//! A publish looks up the subscribers once, makes the pushed frame once
//! (the publisher's frame itself when its topic needs no normalising, see
//! [`Message`]), and appends one reference-counted [`Message`] to each
//! subscriber's bounded queue: no per-subscriber copy of the payload. A
//! subscriber whose queue is full (in messages or bytes) loses its data
//! socket (upstream's slow-consumer policy); nobody else is delayed. The
//! data connection takes messages out of its queue when its socket can be
//! written, and the broker wakes it (through the [`Waker`] it registered)
//! when its queue stops being empty.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand_core::RngCore;

use crate::Limits;
use crate::acl::{Acl, UserRights};
use crate::auth::{Keys, Passwords};
use crate::cluster::Cluster;
use crate::stats::{ClientInfo, Counters, StatsSnapshot, Tallies};
use crate::subs::{FilterId, SubIndex};
use crate::topic::{self, TopicError};
use crate::topk::{SortBy, TopTopics};
use crate::txbuf::TxBuf;
use crate::wire::{Token, push, request, status};

mod audit;
mod creds;
#[cfg(test)]
mod tests;
mod udp_publish;
mod udp_task;

pub use audit::{AccessOp, UdpReject, UdpVerdict};
pub use udp_publish::{OpenedDatagram, UdpCheck, UdpKeys, UdpOutcome};
pub use udp_task::UdpTask;

use creds::CredentialCache;

/// Payloads up to this size are copied next to their frame head, so a
/// queued small message does not keep a large read buffer alive.
const INLINE_PAYLOAD: usize = 256;
/// Frames (head and payload) up to this size are kept inside the message
/// itself ([`Frame::Embedded`]): one allocation per small message instead
/// of two, which glibc's malloc feels most when messages are published on
/// one worker and taken on another. Small, because every message carries
/// the room: at 120 bytes the larger message cost jemalloc builds more
/// than the allocation saved (docs/benchmarks.md, sixth session).
const EMBEDDED_FRAME: usize = 64;
/// Most broker events kept for the driver's log; older ones are dropped.
const MAX_EVENTS: usize = 1024;

/// Who may log in and what they may do; replaced as a whole on reload.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether the empty login (ACL entry `_`) may log in.
    pub allow_anonymous: bool,
    /// Rights per login.
    pub acl: Acl,
    /// bcrypt hashes per login; `None` means only anonymous and Unix-socket
    /// clients can log in.
    pub passwords: Option<Passwords>,
    /// AES keys per login for encrypted UDP.
    pub keys: Option<Keys>,
}

impl AuthConfig {
    /// Anonymous access with full rights and no password file: the
    /// built-in default configuration.
    pub fn open() -> Self {
        Self {
            allow_anonymous: true,
            acl: Acl::allow_all(),
            passwords: None,
            keys: None,
        }
    }

    /// Rights a live TCP session of `login` keeps under these rules: none
    /// when they would no longer let it log in (anonymous access off, the
    /// user gone from the password file or the ACL).
    fn live_rights(&self, login: &str) -> Option<Arc<UserRights>> {
        let may_log_in = if login.is_empty() {
            self.allow_anonymous
        } else {
            self.passwords
                .as_ref()
                .is_some_and(|p| p.hash(login).is_some())
        };
        if !may_log_in {
            return None;
        }
        self.acl.rights(login)
    }
}

/// Identifies a live session; stale ids (of ended sessions) are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId {
    slot: u32,
    generation: u32,
}

/// How a client reached us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Unix-socket clients skip the password check and get full rights.
    pub unix: bool,
    /// Peer address for logs and the client list.
    pub peer: String,
}

/// A password the driver must verify with
/// [`crate::auth::verify_password`], off its event loop.
#[derive(Debug, Clone)]
pub struct PasswordCheck {
    /// The login whose password is checked.
    pub login: String,
    /// Its bcrypt hash.
    pub hash: String,
    /// The password offered.
    pub password: Bytes,
}

impl PasswordCheck {
    /// Runs the (slow) check. Call it off the event loop.
    pub fn verify(&self) -> bool {
        crate::auth::verify_password(&self.password, &self.hash)
    }
}

/// What a login attempt leads to.
#[derive(Debug)]
pub enum LoginDecision {
    /// The session exists; send the token.
    Granted(SessionId, Token),
    /// Refused: close without a reply.
    Denied(DenyReason),
    /// The password must be verified first: answer with
    /// [`Broker::finish_login`].
    Verify(PasswordCheck),
}

/// Why a login was refused (for the log; the peer only sees a close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// Anonymous login while `allow_anonymous` is off.
    AnonymousOff,
    /// No password file entry for the login.
    UnknownUser,
    /// The password does not verify.
    WrongPassword,
    /// No ACL entry for the login.
    NoAclEntry,
    /// The login is not valid UTF-8.
    BadLogin,
    /// Too many password checks are already waiting.
    Busy,
    /// `max_sessions` sessions are live.
    TooManySessions,
    /// The login is the client certificate's common name, and the
    /// certificate has no usable one.
    NoCertName,
}

impl DenyReason {
    /// Every reason, in the order of [`Self::index`].
    pub const ALL: [DenyReason; 8] = [
        DenyReason::AnonymousOff,
        DenyReason::UnknownUser,
        DenyReason::WrongPassword,
        DenyReason::NoAclEntry,
        DenyReason::BadLogin,
        DenyReason::Busy,
        DenyReason::TooManySessions,
        DenyReason::NoCertName,
    ];

    /// Position in [`Self::ALL`], for counters kept per reason.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A metric label: `anonymous_off`, `unknown_user`, `wrong_password`,
    /// `no_acl_entry`, `bad_login`, `busy`, `too_many_sessions`,
    /// `no_cert_name`.
    pub fn label(self) -> &'static str {
        match self {
            DenyReason::AnonymousOff => "anonymous_off",
            DenyReason::UnknownUser => "unknown_user",
            DenyReason::WrongPassword => "wrong_password",
            DenyReason::NoAclEntry => "no_acl_entry",
            DenyReason::BadLogin => "bad_login",
            DenyReason::Busy => "busy",
            DenyReason::TooManySessions => "too_many_sessions",
            DenyReason::NoCertName => "no_cert_name",
        }
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DenyReason::AnonymousOff => "anonymous access is off",
            DenyReason::UnknownUser => "unknown user (not in the password file)",
            DenyReason::WrongPassword => "wrong password",
            DenyReason::NoAclEntry => "the user has no ACL entry",
            DenyReason::BadLogin => "the login is not valid UTF-8",
            DenyReason::Busy => "too many password checks are waiting",
            DenyReason::TooManySessions => "max_sessions sessions are live",
            DenyReason::NoCertName => {
                "the client certificate has no usable common name (tls_client_cn_login \
                 needs exactly one non-empty CN)"
            }
        })
    }
}

/// A control operation that cannot be answered in-band: the connection
/// must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The published topic is empty, not UTF-8 or holds a wildcard.
    #[error("bad topic: {0}")]
    Topic(TopicError),
    /// The session id is stale.
    #[error("session is gone")]
    NoSession,
}

/// What the data connection of a session finds when it asks for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataState {
    /// Still bound; this many messages were moved to the socket buffer.
    Active(usize),
    /// The session ended or the socket was dropped as a slow consumer:
    /// close it.
    Gone,
}

/// Something worth a log line (and a metric), drained by the driver with
/// [`Broker::poll_event`]. Its `Display` is the log line: what happened,
/// who (login and peer) and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// A login was refused.
    LoginDenied {
        /// Login offered (lossy UTF-8).
        login: String,
        /// Peer address.
        peer: String,
        /// Why.
        reason: DenyReason,
    },
    /// The ACL refused an operation of a logged-in client.
    AccessDenied {
        /// The client's login.
        login: String,
        /// Its peer address.
        peer: String,
        /// What it tried.
        op: AccessOp,
        /// The topic or filter refused (lossy UTF-8; empty for a
        /// replication offer by a non-replicator).
        topic: String,
    },
    /// A UDP datagram was dropped or refused.
    UdpRejected {
        /// The sender's login, when the datagram could be read that far.
        login: Option<String>,
        /// The sender's address.
        peer: String,
        /// Why.
        reason: UdpReject,
    },
    /// A subscriber's queue overflowed; its data socket was dropped.
    SlowConsumer {
        /// The subscriber's login.
        login: String,
        /// Its peer address.
        peer: String,
    },
    /// A message waited longer than `latency_warn` before it was sent.
    LatencyWarning {
        /// The subscriber's login.
        login: String,
        /// Delay between publish and send.
        latency: Duration,
    },
}

/// How loud a [`BrokerEvent`] should be in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLevel {
    /// Routine.
    Info,
    /// Needs an operator's attention: denials, slow consumers, latency.
    Warn,
}

impl BrokerEvent {
    /// The log level drivers use for this event: every one is a denial or
    /// a problem.
    pub fn level(&self) -> EventLevel {
        EventLevel::Warn
    }

    /// A short name of the event's kind, stable for rate limiting and
    /// tests: `login_denied`, `access_denied`, `udp_rejected`,
    /// `slow_consumer`, `latency`.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerEvent::LoginDenied { .. } => "login_denied",
            BrokerEvent::AccessDenied { .. } => "access_denied",
            BrokerEvent::UdpRejected { .. } => "udp_rejected",
            BrokerEvent::SlowConsumer { .. } => "slow_consumer",
            BrokerEvent::LatencyWarning { .. } => "latency",
        }
    }

    /// The peer the event is about, when known.
    pub fn peer(&self) -> Option<&str> {
        match self {
            BrokerEvent::LoginDenied { peer, .. }
            | BrokerEvent::AccessDenied { peer, .. }
            | BrokerEvent::UdpRejected { peer, .. }
            | BrokerEvent::SlowConsumer { peer, .. } => Some(peer),
            BrokerEvent::LatencyWarning { .. } => None,
        }
    }
}

impl std::fmt::Display for BrokerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerEvent::LoginDenied {
                login,
                peer,
                reason,
            } => write!(
                f,
                "login refused: login={login:?} peer={peer} reason: {reason}"
            ),
            BrokerEvent::AccessDenied {
                login,
                peer,
                op,
                topic,
            } => write!(
                f,
                "{op} denied: login={login:?} peer={peer} topic={topic:?} reason: {}",
                op.reason()
            ),
            BrokerEvent::UdpRejected {
                login,
                peer,
                reason,
            } => {
                let login = login.as_deref().unwrap_or("-");
                write!(
                    f,
                    "UDP frame rejected: login={login:?} peer={peer} reason: {reason}"
                )
            }
            BrokerEvent::SlowConsumer { login, peer } => write!(
                f,
                "slow consumer: data socket dropped, queue full: login={login:?} peer={peer}"
            ),
            BrokerEvent::LatencyWarning { login, latency } => write!(
                f,
                "delivery latency above latency_warn: login={login:?} latency={:.6}s",
                latency.as_secs_f64()
            ),
        }
    }
}

/// A published message as queued for subscribers, shared by all of them.
#[derive(Debug)]
pub struct Message {
    frame: Frame,
    payload_len: usize,
    published: Instant,
}

/// The bytes of a pushed message, `01 PRIO LEN topic 00 payload`.
#[derive(Debug)]
enum Frame {
    /// A small frame built here, held in the message itself (no buffer of
    /// its own); copied with its neighbours when taken, like `Inline`.
    Embedded {
        /// Bytes of `bytes` in use.
        len: usize,
        bytes: [u8; EMBEDDED_FRAME],
    },
    /// A small payload copied after the head built here, so a queued small
    /// message does not keep a large read buffer alive; copied together
    /// with its neighbours when taken ([`Broker::take_messages`]).
    Inline(Bytes),
    /// The publisher's PUBLISH frame itself, which is byte for byte the
    /// push when its topic needs no normalising: one buffer to write,
    /// shared with the publisher's read buffer.
    Received(Bytes),
    /// The head built here, then the payload shared with the publisher's
    /// read buffer (the topic was normalised, or the message was
    /// replicated).
    Split { head: Bytes, payload: Bytes },
}

impl Message {
    /// A message whose head is built here: `payload` is copied in when
    /// small, shared otherwise.
    fn new(prio: u8, topic: &str, payload: &Bytes, published: Instant) -> Self {
        let payload_len = payload.len();
        let inline = payload_len <= INLINE_PAYLOAD;
        let head_len = push::message_head_len(topic);
        if inline && head_len + payload_len <= EMBEDDED_FRAME {
            let mut bytes = [0; EMBEDDED_FRAME];
            let mut out = &mut bytes[..];
            push::put_message_head(&mut out, prio, topic, payload_len);
            out.put_slice(payload);
            let len = EMBEDDED_FRAME - out.len();
            return Self {
                frame: Frame::Embedded { len, bytes },
                payload_len,
                published,
            };
        }
        // Sized for an inlined payload too, so building it never reallocates.
        let mut head = BytesMut::with_capacity(head_len + if inline { payload_len } else { 0 });
        push::put_message_head(&mut head, prio, topic, payload_len);
        let frame = if inline {
            head.extend_from_slice(payload);
            Frame::Inline(head.freeze())
        } else {
            Frame::Split {
                head: head.freeze(),
                payload: payload.clone(),
            }
        };
        Self {
            frame,
            payload_len,
            published,
        }
    }

    /// A message from a PUBLISH frame whose topic normalises to `topic`:
    /// the frame itself when the payload is not inlined and the topic came
    /// normalised, else as [`Message::new`].
    fn received(publish: &request::Publish, topic: &str, published: Instant) -> Self {
        let payload = publish.payload();
        if payload.len() <= INLINE_PAYLOAD || publish.topic() != topic.as_bytes() {
            return Self::new(publish.prio(), topic, payload, published);
        }
        Self {
            frame: Frame::Received(publish.frame().clone()),
            payload_len: payload.len(),
            published,
        }
    }

    /// Bytes this message takes on the wire.
    pub fn wire_len(&self) -> usize {
        match &self.frame {
            Frame::Embedded { len, .. } => *len,
            Frame::Inline(frame) | Frame::Received(frame) => frame.len(),
            Frame::Split { head, payload } => head.len() + payload.len(),
        }
    }
}

/// Appends a small message's frame to `run`, the chunk that
/// [`Broker::take_messages`] copies small messages into, sized at first
/// use for `room` bytes so that it is allocated once per take.
fn append_small(run: &mut BytesMut, frame: &[u8], room: usize) {
    if run.capacity() == 0 {
        run.reserve(room);
    }
    run.extend_from_slice(frame);
}

/// The pending messages of one data socket, bounded in count and bytes.
#[derive(Debug)]
struct DataQueue {
    messages: VecDeque<Arc<Message>>,
    bytes: usize,
    waker: Waker,
}

#[derive(Debug)]
enum DataSlot {
    Unbound,
    Bound(DataQueue),
    /// Dropped as a slow consumer; the data connection must close.
    Dropped,
}

#[derive(Debug)]
struct Session {
    generation: u32,
    login: String,
    origin: Origin,
    /// Logged in by its client certificate: the ACL alone decides its
    /// rights (it has no password to lose on reload).
    certified: bool,
    rights: Arc<UserRights>,
    token: Token,
    /// The filters held, as ids into the broker's index (which keeps their
    /// text once for every session).
    filters: HashSet<FilterId>,
    data: DataSlot,
    /// What the last PUBLISH's topic came to (boxed: most sessions never
    /// publish, and every idle client holds a session).
    last_publish: Option<Box<PublishMemo>>,
}

/// The broker's answers for the last topic a session published to: a
/// publisher sending to the same topic again skips parsing it, the ACL
/// check and, while no subscription changed, the index walk. Valid only
/// for the same raw topic bytes, the same rights (a reload replaces them)
/// and the same depth limit.
#[derive(Debug, Default)]
struct PublishMemo {
    raw: Vec<u8>,
    topic: String,
    rights: Option<Arc<UserRights>>,
    max_depth: usize,
    /// The subscribers' slots, as of index change count `index`.
    targets: Vec<u32>,
    index: Option<u64>,
}

impl PublishMemo {
    /// Whether the parse and ACL answers hold for `raw`.
    fn holds(&self, raw: &[u8], rights: &Arc<UserRights>, max_depth: usize) -> bool {
        self.raw == raw
            && self.max_depth == max_depth
            && self.rights.as_ref().is_some_and(|r| Arc::ptr_eq(r, rights))
    }

    /// Remembers that `raw` parses to `topic`, which `rights` may publish
    /// to; the targets are looked up again.
    fn remember(&mut self, raw: &[u8], topic: &str, rights: Arc<UserRights>, max_depth: usize) {
        self.raw.clear();
        self.raw.extend_from_slice(raw);
        self.topic.clear();
        self.topic.push_str(topic);
        self.rights = Some(rights);
        self.max_depth = max_depth;
        self.index = None;
    }
}

/// The broker state machine. See the module docs.
pub struct Broker {
    limits: Limits,
    latency_warn: Option<Duration>,
    /// The rules; their `keys` are moved to `udp_keys`.
    auth: AuthConfig,
    /// The UDP key table, shared with drivers that open datagrams outside
    /// the broker lock; replaced (next generation) on every reload.
    udp_keys: Arc<UdpKeys>,
    full_rights: Arc<UserRights>,
    sessions: Vec<Option<Session>>,
    free_slots: Vec<u32>,
    next_generation: u32,
    live_sessions: usize,
    tokens: HashMap<Token, SessionId>,
    index: SubIndex,
    counters: Counters,
    tallies: Tallies,
    top: TopTopics,
    creds: CredentialCache,
    pending_checks: usize,
    events: VecDeque<BrokerEvent>,
    rng: Box<dyn RngCore + Send>,
    scratch: Vec<u32>,
    /// The outboxes to cluster peers, offered every local publish.
    cluster: Cluster,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("sessions", &self.live_sessions)
            .field("subscriptions", &self.index.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker with these limits and access rules. `rng` makes session
    /// tokens and the credential-cache salt: pass an OS-seeded CSPRNG in
    /// production and a seeded one in simulations.
    pub fn new(limits: Limits, mut auth: AuthConfig, mut rng: Box<dyn RngCore + Send>) -> Self {
        let mut salt = [0u8; 32];
        rng.fill_bytes(&mut salt);
        Self {
            udp_keys: Arc::new(UdpKeys::new(0, auth.keys.take(), limits.udp_frame_size)),
            creds: CredentialCache::new(limits.credential_cache, salt),
            top: TopTopics::new(limits.top_topics),
            limits,
            latency_warn: None,
            auth,
            full_rights: Arc::new(UserRights::full()),
            sessions: Vec::new(),
            free_slots: Vec::new(),
            next_generation: 0,
            live_sessions: 0,
            tokens: HashMap::new(),
            index: SubIndex::new(),
            counters: Counters::default(),
            tallies: Tallies::default(),
            pending_checks: 0,
            events: VecDeque::new(),
            rng,
            scratch: Vec::new(),
            cluster: Cluster::default(),
        }
    }

    /// Logs a [`BrokerEvent::LatencyWarning`] when a message waits longer
    /// than this before it is sent (`None` turns it off).
    pub fn set_latency_warn(&mut self, threshold: Option<Duration>) {
        self.latency_warn = threshold;
    }

    // ----- getters -----

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counters since start.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Audit counters and the latency histogram since start.
    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    /// The `n` busiest topics by `by`, busiest first.
    pub fn top_topics(&self, n: usize, by: SortBy) -> Vec<crate::stats::TopicStat> {
        self.top.top(n, by)
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.live_sessions
    }

    /// Distinct (client, filter) pairs.
    pub fn subscription_count(&self) -> usize {
        self.index.len()
    }

    /// Whether the session is live.
    pub fn is_live(&self, id: SessionId) -> bool {
        self.session(id).is_some()
    }

    /// The login of a live session (`""` for anonymous).
    pub fn login_of(&self, id: SessionId) -> Option<&str> {
        self.session(id).map(|session| session.login.as_str())
    }

    /// Messages waiting in a session's data queue.
    pub fn queued(&self, id: SessionId) -> usize {
        match self.session(id).map(|s| &s.data) {
            Some(DataSlot::Bound(queue)) => queue.messages.len(),
            _ => 0,
        }
    }

    /// A copy of everything the stats endpoints show, with at most
    /// `max_clients` clients and `max_topics` topics.
    pub fn snapshot(&self, max_clients: usize, max_topics: usize, by: SortBy) -> StatsSnapshot {
        let clients = self
            .sessions
            .iter()
            .flatten()
            .take(max_clients)
            .map(|s| ClientInfo {
                login: s.login.clone(),
                peer: s.origin.peer.clone(),
                subscriptions: s.filters.len(),
                data_socket: matches!(s.data, DataSlot::Bound(_)),
                queued: match &s.data {
                    DataSlot::Bound(q) => q.messages.len(),
                    _ => 0,
                },
            })
            .collect();
        StatsSnapshot {
            counters: self.counters,
            subscription_count: self.index.len(),
            client_count: self.live_sessions,
            data_queue_size: self.limits.data_queue,
            clients,
            top_topics: self.top.top(max_topics, by),
            queued_messages: self
                .sessions
                .iter()
                .flatten()
                .map(|s| match &s.data {
                    DataSlot::Bound(q) => q.messages.len(),
                    _ => 0,
                })
                .sum(),
            tallies: self.tallies,
            cluster: self.cluster.stats(),
        }
    }

    /// The cluster peers' outboxes and counters.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The cluster peers' outboxes, for the links and the peer list.
    pub fn cluster_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// The next event worth logging.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.events.pop_front()
    }

    // ----- login -----

    /// Starts a login with the frame's login and password.
    pub fn begin_login(&mut self, login: &[u8], password: &[u8], origin: Origin) -> LoginDecision {
        let decision = self.decide_login(login, password, origin.unix);
        match decision {
            Ok(Some(rights)) => self.open_session(lossy(login), origin, rights, false),
            Ok(None) => {
                if self.pending_checks >= self.limits.max_pending_checks {
                    return self.deny(login, &origin, DenyReason::Busy);
                }
                let Some(hash) = self.password_hash(login) else {
                    return self.deny(login, &origin, DenyReason::UnknownUser);
                };
                self.pending_checks += 1;
                LoginDecision::Verify(PasswordCheck {
                    login: lossy(login),
                    hash,
                    password: Bytes::copy_from_slice(password),
                })
            }
            Err(reason) => self.deny(login, &origin, reason),
        }
    }

    /// Completes a login after the driver verified `check`.
    pub fn finish_login(
        &mut self,
        check: PasswordCheck,
        ok: bool,
        origin: Origin,
    ) -> LoginDecision {
        self.pending_checks = self.pending_checks.saturating_sub(1);
        if !ok {
            return self.deny(check.login.as_bytes(), &origin, DenyReason::WrongPassword);
        }
        self.creds.insert(&check.login, &check.password);
        // The ACL may have been reloaded while the check ran: decide again.
        match self.decide_login(check.login.as_bytes(), &check.password, false) {
            Ok(Some(rights)) => self.open_session(check.login, origin, rights, false),
            Ok(None) => self.deny(check.login.as_bytes(), &origin, DenyReason::WrongPassword),
            Err(reason) => self.deny(check.login.as_bytes(), &origin, reason),
        }
    }

    /// Logs in a TLS client as the common name `name` of its verified
    /// certificate (`tls_client_cn_login`): no password is checked and the
    /// `offered` login is ignored but for the log of a refusal. Refused
    /// without a name ([`DenyReason::NoCertName`]) or without an ACL entry
    /// for it; anonymous access and the password file play no part.
    pub fn login_by_certificate(
        &mut self,
        name: Option<&str>,
        offered: &[u8],
        origin: Origin,
    ) -> LoginDecision {
        let Some(name) = name else {
            return self.deny(offered, &origin, DenyReason::NoCertName);
        };
        match self.auth.acl.rights(name) {
            Some(rights) => self.open_session(name.to_owned(), origin, rights, true),
            None => self.deny(name.as_bytes(), &origin, DenyReason::NoAclEntry),
        }
    }

    /// Gives back a password check the driver will not run (its connection
    /// went away first).
    pub fn abandon_check(&mut self) {
        self.pending_checks = self.pending_checks.saturating_sub(1);
    }

    /// `Ok(Some(rights))`: log in now; `Ok(None)`: the password needs a
    /// bcrypt check; `Err`: refused.
    fn decide_login(
        &mut self,
        login: &[u8],
        password: &[u8],
        unix: bool,
    ) -> Result<Option<Arc<UserRights>>, DenyReason> {
        if unix {
            return Ok(Some(self.full_rights.clone()));
        }
        let login = std::str::from_utf8(login).map_err(|_| DenyReason::BadLogin)?;
        if login.is_empty() {
            if !self.auth.allow_anonymous {
                return Err(DenyReason::AnonymousOff);
            }
            return self
                .auth
                .acl
                .rights("")
                .map(Some)
                .ok_or(DenyReason::NoAclEntry);
        }
        let rights = self.auth.acl.rights(login).ok_or(DenyReason::NoAclEntry)?;
        if self.password_hash(login.as_bytes()).is_none() {
            return Err(DenyReason::UnknownUser);
        }
        if self.creds.contains(login, password) {
            return Ok(Some(rights));
        }
        Ok(None)
    }

    fn password_hash(&self, login: &[u8]) -> Option<String> {
        let login = std::str::from_utf8(login).ok()?;
        let passwords = self.auth.passwords.as_ref()?;
        passwords.hash(login).map(str::to_owned)
    }

    fn deny(&mut self, login: &[u8], origin: &Origin, reason: DenyReason) -> LoginDecision {
        if let Some(count) = self.tallies.logins_denied.get_mut(reason.index()) {
            *count += 1;
        }
        self.push_event(BrokerEvent::LoginDenied {
            login: lossy(login),
            peer: origin.peer.clone(),
            reason,
        });
        LoginDecision::Denied(reason)
    }

    fn open_session(
        &mut self,
        login: String,
        origin: Origin,
        rights: Arc<UserRights>,
        certified: bool,
    ) -> LoginDecision {
        if self.live_sessions >= self.limits.max_sessions {
            return self.deny(login.as_bytes(), &origin, DenyReason::TooManySessions);
        }
        let token = self.fresh_token();
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let session = Session {
            generation,
            login,
            origin,
            certified,
            rights,
            token,
            filters: HashSet::new(),
            data: DataSlot::Unbound,
            last_publish: None,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.sessions[slot as usize] = Some(session);
                slot
            }
            None => {
                self.sessions.push(Some(session));
                // max_sessions keeps the slot count far below u32::MAX.
                u32::try_from(self.sessions.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let id = SessionId { slot, generation };
        self.tokens.insert(token, id);
        self.live_sessions += 1;
        self.tallies.logins_granted += 1;
        LoginDecision::Granted(id, token)
    }

    fn fresh_token(&mut self) -> Token {
        loop {
            let mut token = [0u8; 32];
            self.rng.fill_bytes(&mut token);
            if !self.tokens.contains_key(&token) {
                return token;
            }
        }
    }

    /// Ends a session: its subscriptions go, its data socket is told to
    /// close, its token stops working.
    pub fn end_session(&mut self, id: SessionId) {
        let Some(session) = self.take_session(id) else {
            return;
        };
        for &filter in &session.filters {
            self.index.remove(filter, id.slot);
        }
        self.tokens.remove(&session.token);
        if let DataSlot::Bound(queue) = session.data {
            queue.waker.wake();
        }
        self.free_slots.push(id.slot);
        self.live_sessions -= 1;
    }

    fn take_session(&mut self, id: SessionId) -> Option<Session> {
        let slot = self.sessions.get_mut(id.slot as usize)?;
        if slot.as_ref()?.generation != id.generation {
            return None;
        }
        slot.take()
    }

    fn session(&self, id: SessionId) -> Option<&Session> {
        let session = self.sessions.get(id.slot as usize)?.as_ref()?;
        (session.generation == id.generation).then_some(session)
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        let session = self.sessions.get_mut(id.slot as usize)?.as_mut()?;
        (session.generation == id.generation).then_some(session)
    }

    /// A session and the index, borrowed together.
    fn session_and_index(&mut self, id: SessionId) -> Option<(&mut Session, &mut SubIndex)> {
        let session = self.sessions.get_mut(id.slot as usize)?.as_mut()?;
        (session.generation == id.generation).then_some((session, &mut self.index))
    }

    // ----- control operations -----

    /// PUBLISH from a session: the reply status, or a protocol error.
    /// Subscribers get the frame itself when its topic needs no
    /// normalising and its payload is not small (see [`Message`]).
    pub fn publish(
        &mut self,
        id: SessionId,
        publish: &request::Publish,
        now: Instant,
    ) -> Result<u8, ProtocolError> {
        let (prio, raw_topic, payload) = (publish.prio(), publish.topic(), publish.payload());
        let max_depth = self.limits.max_topic_depth;
        let session = self.session_mut(id).ok_or(ProtocolError::NoSession)?;
        let mut memo = session.last_publish.take().unwrap_or_default();
        if !memo.holds(raw_topic, &session.rights, max_depth) {
            let rights = session.rights.clone();
            let topic = match topic::parse_topic(raw_topic, max_depth) {
                Ok(topic) => topic,
                Err(TopicError::TooDeep { .. }) => return Ok(status::ERR),
                Err(err) => return Err(ProtocolError::Topic(err)),
            };
            if !rights.may_publish(&topic) {
                self.access_denied(id, AccessOp::Publish, &topic);
                return Ok(status::ERR_ACCESS);
            }
            memo.remember(raw_topic, &topic, rights, max_depth);
        }
        let changes = self.index.changes();
        if memo.index != Some(changes) {
            self.index.lookup(&memo.topic, &mut memo.targets);
            memo.index = Some(changes);
        }
        self.cluster
            .offer(&memo.topic, prio, payload, u64::from(id.slot), now);
        self.count_publish(&memo.topic, payload.len());
        if !memo.targets.is_empty() {
            let message = Arc::new(Message::received(publish, &memo.topic, now));
            self.enqueue_all(&memo.targets, &message);
        }
        if let Some(session) = self.session_mut(id) {
            session.last_publish = Some(memo);
        }
        Ok(status::OK)
    }

    /// SUBSCRIBE to the `00`-separated filters of `body`, in order, stopping
    /// at the first failure.
    pub fn subscribe(&mut self, id: SessionId, body: &[u8]) -> u8 {
        let max_depth = self.limits.max_topic_depth;
        let max_filters = self.limits.max_subscriptions_per_client;
        let Some((session, index)) = self.session_and_index(id) else {
            return status::ERR;
        };
        let mut added = 0u64;
        let mut reply = status::OK;
        let mut denied = None;
        for raw in request::split_topics(body) {
            let Ok(filter) = topic::parse_filter(raw, max_depth) else {
                reply = status::ERR;
                break;
            };
            if !session.rights.may_subscribe(&filter) {
                reply = status::ERR_ACCESS;
                denied = Some(filter.into_owned());
                break;
            }
            let held = index
                .find(&filter)
                .is_some_and(|held| session.filters.contains(&held));
            if !held {
                if session.filters.len() >= max_filters {
                    reply = status::ERR;
                    break;
                }
                let (held, _) = index.insert(&filter, id.slot);
                session.filters.insert(held);
            }
            added += 1;
        }
        self.counters.c_sub_ops += added;
        if let Some(filter) = denied {
            self.access_denied(id, AccessOp::Subscribe, &filter);
        }
        reply
    }

    /// UNSUBSCRIBE from the `00`-separated filters of `body`.
    pub fn unsubscribe(&mut self, id: SessionId, body: &[u8]) -> u8 {
        let max_depth = self.limits.max_topic_depth;
        let Some((session, index)) = self.session_and_index(id) else {
            return status::ERR;
        };
        for raw in request::split_topics(body) {
            let Ok(filter) = topic::parse_filter(raw, max_depth) else {
                return status::ERR;
            };
            if let Some(held) = index.find(&filter)
                && session.filters.remove(&held)
            {
                index.remove(held, id.slot);
            }
        }
        status::OK
    }

    /// PUBLISH_REPL offer: `OK_WAITING` when a local subscriber wants the
    /// topic, `NOT_REQUIRED` otherwise, `ERR_ACCESS` for non-replicators.
    pub fn replication_offer(&mut self, id: SessionId, raw_topic: &[u8]) -> u8 {
        match self.may_replicate(id, raw_topic) {
            None => return status::ERR,
            Some(false) => return status::ERR_ACCESS,
            Some(true) => {}
        }
        match topic::parse_topic(raw_topic, self.limits.max_topic_depth) {
            Ok(topic) if self.index.has_match(&topic) => status::OK_WAITING,
            Ok(_) => status::NOT_REQUIRED,
            Err(_) => status::ERR,
        }
    }

    /// Whether the session may replicate to us: `OK` for a replicator,
    /// `ERR_ACCESS` (counted and logged as a denial) otherwise. Answers the
    /// pipelined op's capability probe, and guards the op itself.
    pub fn replication_probe(&mut self, id: SessionId) -> u8 {
        match self.may_replicate(id, b"") {
            None => status::ERR,
            Some(false) => status::ERR_ACCESS,
            Some(true) => status::OK,
        }
    }

    /// Whether session `id` may replicate to us: `Some(true)` for a
    /// replicator; `Some(false)` for any other session, whose denial (of
    /// `raw_topic`) is then counted and logged; `None` without a session.
    fn may_replicate(&mut self, id: SessionId, raw_topic: &[u8]) -> Option<bool> {
        if self.session(id)?.rights.is_replicator() {
            return Some(true);
        }
        self.access_denied(
            id,
            AccessOp::Replication,
            &String::from_utf8_lossy(raw_topic),
        );
        Some(false)
    }

    /// A pipelined replicated message (our extension): checked like a
    /// PUBLISH (a topic that is empty, not UTF-8 or holds a wildcard is a
    /// protocol error, a too-deep one `ERR`), then delivered to local
    /// subscribers only, never onwards: `OK`, or `NOT_REQUIRED` when
    /// nobody here subscribes (the payload is discarded). Non-replicators
    /// get `ERR_ACCESS`.
    pub fn replicate_pipelined(
        &mut self,
        id: SessionId,
        prio: u8,
        raw_topic: &[u8],
        payload: Bytes,
        now: Instant,
    ) -> Result<u8, ProtocolError> {
        if !self
            .may_replicate(id, raw_topic)
            .ok_or(ProtocolError::NoSession)?
        {
            return Ok(status::ERR_ACCESS);
        }
        let topic = match topic::parse_topic(raw_topic, self.limits.max_topic_depth) {
            Ok(topic) => topic,
            Err(TopicError::TooDeep { .. }) => return Ok(status::ERR),
            Err(err) => return Err(ProtocolError::Topic(err)),
        };
        if !self.index.has_match(&topic) {
            return Ok(status::NOT_REQUIRED);
        }
        self.route(&topic, prio, payload, now, true);
        Ok(status::OK)
    }

    /// Delivers a replicated payload to local subscribers (never onwards).
    pub fn replicate(&mut self, raw_topic: &[u8], prio: u8, payload: Bytes, now: Instant) -> u8 {
        match topic::parse_topic(raw_topic, self.limits.max_topic_depth) {
            Ok(topic) => {
                self.route(&topic, prio, payload, now, true);
                status::OK
            }
            Err(_) => status::ERR,
        }
    }

    /// Counts a message (if `count`) and appends it to every matching
    /// subscriber's queue.
    fn route(&mut self, topic: &str, prio: u8, payload: Bytes, now: Instant, count: bool) {
        let mut targets = std::mem::take(&mut self.scratch);
        self.index.lookup(topic, &mut targets);
        if count {
            self.count_publish(topic, payload.len());
        }
        if !targets.is_empty() {
            let message = Arc::new(Message::new(prio, topic, &payload, now));
            self.enqueue_all(&targets, &message);
        }
        self.scratch = targets;
    }

    /// Counts a published message of `payload_len` bytes to `topic`.
    fn count_publish(&mut self, topic: &str, payload_len: usize) {
        self.counters.c_pub_messages += 1;
        self.counters.c_pub_bytes += payload_len as u64;
        self.top.record(topic, payload_len as u64);
    }

    /// Appends `message` to the queue of each of `targets`.
    fn enqueue_all(&mut self, targets: &[u32], message: &Arc<Message>) {
        for &slot in targets {
            self.enqueue(slot, message);
        }
    }

    fn enqueue(&mut self, slot: u32, message: &Arc<Message>) {
        let limits = (self.limits.data_queue, self.limits.data_queue_bytes);
        let Some(Some(session)) = self.sessions.get_mut(slot as usize) else {
            return;
        };
        let DataSlot::Bound(queue) = &mut session.data else {
            return;
        };
        let len = message.wire_len();
        if queue.messages.len() >= limits.0 || queue.bytes + len > limits.1 {
            queue.waker.wake_by_ref();
            session.data = DataSlot::Dropped;
            self.tallies.slow_consumers += 1;
            let event = BrokerEvent::SlowConsumer {
                login: session.login.clone(),
                peer: session.origin.peer.clone(),
            };
            self.push_event(event);
            return;
        }
        if queue.messages.is_empty() {
            queue.waker.wake_by_ref();
        }
        queue.bytes += len;
        queue.messages.push_back(message.clone());
    }

    // ----- data sockets -----

    /// Binds a data socket by token. `None` (reply ERR and close) when the
    /// token is unknown or the session already has a data socket.
    pub fn bind_data(&mut self, token: &Token, waker: Waker) -> Option<SessionId> {
        let id = *self.tokens.get(token)?;
        let session = self.session_mut(id)?;
        if !matches!(session.data, DataSlot::Unbound) {
            return None;
        }
        session.data = DataSlot::Bound(DataQueue {
            messages: VecDeque::new(),
            bytes: 0,
            waker,
        });
        Some(id)
    }

    /// The data socket closed: drop its queue; the session may bind a new
    /// one.
    pub fn unbind_data(&mut self, id: SessionId) {
        if let Some(session) = self.session_mut(id) {
            session.data = DataSlot::Unbound;
        }
    }

    /// Moves queued messages of a session into `tx`, up to about
    /// `max_bytes` (always at least one message), counting them as sent.
    pub fn take_messages(
        &mut self,
        id: SessionId,
        now: Instant,
        tx: &mut TxBuf,
        max_bytes: usize,
    ) -> DataState {
        let warn = self.latency_warn;
        let histogram = &mut self.tallies.latency;
        let session = self
            .sessions
            .get_mut(id.slot as usize)
            .and_then(Option::as_mut)
            .filter(|s| s.generation == id.generation);
        let Some(session) = session else {
            return DataState::Gone;
        };
        let DataSlot::Bound(queue) = &mut session.data else {
            return DataState::Gone;
        };
        let mut taken = 0;
        let mut moved = 0;
        let (mut bytes, mut latency_us, mut worst) = (0u64, 0u64, Duration::ZERO);
        // Small messages (payload inlined) are copied into one chunk: one
        // buffer to write and free instead of one per message.
        let mut run = BytesMut::new();
        while let Some(message) = queue.messages.front() {
            let len = message.wire_len();
            if taken > 0 && moved + len > max_bytes {
                break;
            }
            let age = now.saturating_duration_since(message.published);
            worst = worst.max(age);
            let age_us = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
            histogram.record(age_us);
            latency_us = latency_us.saturating_add(age_us);
            bytes += message.payload_len as u64;
            let room = queue.bytes.min(max_bytes).max(len);
            match &message.frame {
                Frame::Embedded { len, bytes } => append_small(&mut run, &bytes[..*len], room),
                Frame::Inline(frame) => append_small(&mut run, frame, room),
                Frame::Received(frame) => {
                    if !run.is_empty() {
                        tx.push(run.split().freeze());
                    }
                    tx.push(frame.clone());
                }
                Frame::Split { head, payload } => {
                    if !run.is_empty() {
                        tx.push(run.split().freeze());
                    }
                    tx.push(head.clone());
                    tx.push(payload.clone());
                }
            }
            queue.bytes -= len;
            queue.messages.pop_front();
            moved += len;
            taken += 1;
        }
        tx.push(run.freeze());
        let login = warn.filter(|w| worst > *w).map(|_| session.login.clone());
        self.counters.c_sent_messages += taken as u64;
        self.counters.c_sent_bytes += bytes;
        self.counters.c_sent_latency = self.counters.c_sent_latency.saturating_add(latency_us);
        if let Some(login) = login {
            self.push_event(BrokerEvent::LatencyWarning {
                login,
                latency: worst,
            });
        }
        DataState::Active(taken)
    }

    // ----- reload -----

    /// Replaces the access rules. Live sessions are governed by the new
    /// rules from their next operation on; subscriptions the new rules no
    /// longer allow are removed at once; cached credentials are forgotten;
    /// the UDP keys apply from the next datagram on, even one already
    /// opened with the old keys (see [`Broker::apply_datagram`]).
    pub fn reload(&mut self, mut auth: AuthConfig) {
        let generation = self.udp_keys.generation() + 1;
        let max_size = self.limits.udp_frame_size;
        self.udp_keys = Arc::new(UdpKeys::new(generation, auth.keys.take(), max_size));
        self.auth = auth;
        self.creds.clear();
        let deny_all = Arc::new(UserRights::none());
        let auth = &self.auth;
        let index = &mut self.index;
        for (slot, entry) in self.sessions.iter_mut().enumerate() {
            let Some(session) = entry else { continue };
            if session.origin.unix {
                continue;
            }
            let rights = if session.certified {
                auth.acl.rights(&session.login)
            } else {
                auth.live_rights(&session.login)
            };
            session.rights = rights.unwrap_or_else(|| deny_all.clone());
            let rights = session.rights.clone();
            session.filters.retain(|&filter| {
                let keep = rights.may_subscribe(&index.filter(filter));
                if !keep {
                    index.remove(filter, slot as u32);
                }
                keep
            });
        }
    }

    // ----- credentials shared with HTTP and UDP -----

    /// Checks a login/password pair for the stats pages: `Ok(rights)` when
    /// known (cached), `Err(Some(check))` when bcrypt must run, `Err(None)`
    /// when refused.
    pub fn check_credentials(
        &mut self,
        login: &str,
        password: &[u8],
    ) -> Result<Arc<UserRights>, Option<PasswordCheck>> {
        let rights = self.auth.acl.rights(login).ok_or(None)?;
        let hash = self.password_hash(login.as_bytes()).ok_or(None)?;
        if self.creds.contains(login, password) {
            return Ok(rights);
        }
        Err(Some(PasswordCheck {
            login: login.to_owned(),
            hash,
            password: Bytes::copy_from_slice(password),
        }))
    }

    /// Remembers a password the driver verified for [`Self::check_credentials`].
    pub fn remember_credentials(&mut self, check: &PasswordCheck) {
        self.creds.insert(&check.login, &check.password);
    }

    /// Rights of the anonymous user, when anonymous access is on.
    pub fn anonymous_rights(&self) -> Option<Arc<UserRights>> {
        if !self.auth.allow_anonymous {
            return None;
        }
        self.auth.acl.rights("")
    }

    /// Counts and reports an ACL refusal of a session's operation.
    fn access_denied(&mut self, id: SessionId, op: AccessOp, topic: &str) {
        if let Some(count) = self.tallies.acl_denied.get_mut(op.index()) {
            *count += 1;
        }
        let Some(session) = self.session(id) else {
            return;
        };
        let event = BrokerEvent::AccessDenied {
            login: session.login.clone(),
            peer: session.origin.peer.clone(),
            op,
            topic: topic.to_owned(),
        };
        self.push_event(event);
    }

    fn push_event(&mut self, event: BrokerEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
