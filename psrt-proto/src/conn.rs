//! One server-side socket (control or data) as a state machine:
//! greeting → (TLS) → login or data hello → operations or pushed messages.
//!
//! # Driver contract
//!
//! For each accepted socket the driver creates a [`Connection`] and then,
//! in any order as events happen:
//!
//! * reads raw socket bytes into [`Connection::read_buf`] and calls
//!   [`Connection::handle_input`];
//! * calls [`Connection::poll_action`] after every `handle_*` call and runs
//!   each [`Action`] (a bcrypt check, off its event loop), answering with
//!   [`Connection::password_checked`];
//! * calls [`Connection::poll_transmit`] after every `handle_*` call, after
//!   every write, and whenever the [`Waker`] given at creation fires, then
//!   writes the [`TxBuf`] (vectored) and `advance`s it;
//! * sleeps until [`Connection::poll_timeout`] and then calls
//!   [`Connection::handle_timeout`];
//! * on end of stream or a socket error calls [`Connection::handle_eof`];
//! * once [`Connection::is_closed`] is true and the `TxBuf` is flushed (or
//!   cannot be), closes the socket and drops the connection.
//!
//! The `Broker` is borrowed for each call, so a multi-threaded driver locks
//! it around these calls only; socket I/O happens outside the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::broker::{Broker, DataState, LoginDecision, Origin, PasswordCheck, SessionId};
use crate::tls::TlsSession;
use crate::txbuf::TxBuf;
use crate::wire::push;
use crate::wire::request::{self, Op, OpLimits};
use crate::wire::{SocketKind, WireError, status};

/// The socket's bytes the connection keeps buffered for writing before it
/// stops taking messages from the broker queue.
const TX_HIGH_WATER: usize = 256 * 1024;
/// Bytes waiting in the driver's `TxBuf` above which the driver stops
/// reading: a client that pipelines requests without reading the replies
/// gets back-pressure instead of costing memory.
const MAX_PENDING_WRITE: usize = 1024 * 1024;
/// Input beyond the largest frame that may sit unprocessed (for example
/// while a password check runs) before the driver stops reading.
const INPUT_SLACK: usize = 64 * 1024;

/// While a server drains on shutdown, a session's sockets stay open until
/// its data queue is empty ([`Connection::backlog`]); nothing wakes a
/// control socket when that happens, so drivers re-check this often.
pub const DRAIN_RECHECK: Duration = Duration::from_millis(20);

/// How far ahead of its bytes a declared control frame is reserved: the
/// whole frame once at least 1/`RESERVE_AHEAD` of what is still missing
/// has arrived. A peer that declares a large frame and stalls makes us
/// hold at most this many times what it sent (and never more than the
/// input bound), while a real large publish is copied into place once.
pub const RESERVE_AHEAD: usize = 8;

/// Makes room for `additional` more input bytes. When the buffer must grow
/// it at least doubles: once decoded frames have been split off, `BytesMut`
/// would otherwise grow a shared buffer by exactly what is asked, and a
/// 1 MiB frame arriving in 64 KiB reads would be copied sixteen times.
pub fn reserve_input(buf: &mut BytesMut, additional: usize) {
    if buf.capacity() - buf.len() < additional {
        buf.reserve(additional.max(buf.len()));
    }
}

/// Server-wide settings every connection shares.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// TLS server settings; `None` refuses clients asking for TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether plain (non-TLS) TCP clients are accepted. Unix-socket
    /// clients are always accepted in plain mode.
    pub allow_no_tls: bool,
}

/// The kind of listener a socket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP: passwords checked, ACL applies.
    Tcp,
    /// Unix socket: no password check, full rights.
    Unix,
}

/// Slow work the driver must do off its event loop.
#[derive(Debug)]
pub enum Action {
    /// Verify a password ([`PasswordCheck::verify`]) and answer with
    /// [`Connection::password_checked`].
    CheckPassword(PasswordCheck),
}

/// Why a connection closed (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its end.
    PeerClosed,
    /// The client said BYE.
    Bye,
    /// A malformed or forbidden frame.
    Protocol(String),
    /// TLS failed or was refused.
    Tls(String),
    /// Login refused.
    LoginDenied,
    /// Data-socket token unknown or already bound.
    DataRefused,
    /// No complete operation within the timeout.
    Timeout,
    /// The control session ended, or this data socket was dropped as a
    /// slow consumer.
    SessionGone,
    /// The peer stopped reading: nothing could be written for the timeout.
    WriteStalled,
}

enum State {
    Greeting,
    Login,
    CheckingPassword {
        check: PasswordCheck,
        handed_out: bool,
    },
    Control {
        session: SessionId,
        /// Topic of an accepted PUBLISH_REPL whose payload comes next.
        replicating: Option<Bytes>,
    },
    DataHello,
    Data {
        session: SessionId,
        beacon: Duration,
        last_sent: Instant,
    },
    Closed(CloseReason),
}

/// One server-side socket. See the module docs for the call order.
pub struct Connection {
    config: Arc<ConnConfig>,
    transport: Transport,
    peer: String,
    waker: Waker,
    state: State,
    kind: SocketKind,
    /// Boxed: rustls keeps over a kilobyte of state, which plain sockets
    /// (most of them) should not carry.
    tls: Option<Box<TlsSession>>,
    /// Raw bytes from the socket.
    input: BytesMut,
    /// Decrypted bytes when TLS is on.
    plain: BytesMut,
    /// Replies not yet handed to `poll_transmit`.
    replies: BytesMut,
    /// Plaintext messages waiting to enter TLS.
    staged: TxBuf,
    deadline: Instant,
    /// Bytes in the driver's `TxBuf` at the last `poll_transmit`, and when
    /// it last shrank: a peer that stops reading is noticed by this.
    tx_seen: usize,
    tx_progress: Instant,
    /// The broker's keep-alive timeout.
    timeout: Duration,
    /// Whether close_notify was queued after the last reply.
    tls_closed: bool,
    /// Closed, and the peer took none of the remaining output for the
    /// timeout: the driver may drop the socket unflushed.
    abandoned: bool,
    /// Most unprocessed input the driver should buffer.
    max_input: usize,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("kind", &self.kind)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A freshly accepted socket. `waker` is woken when the broker has
    /// something for this connection (messages queued, session ended).
    pub fn new(
        config: Arc<ConnConfig>,
        transport: Transport,
        peer: String,
        waker: Waker,
        timeout: Duration,
        now: Instant,
    ) -> Self {
        Self {
            config,
            transport,
            peer,
            waker,
            state: State::Greeting,
            kind: SocketKind::Control,
            tls: None,
            input: BytesMut::new(),
            plain: BytesMut::new(),
            replies: BytesMut::new(),
            staged: TxBuf::new(),
            deadline: now + timeout,
            tx_seen: 0,
            tx_progress: now,
            timeout,
            tls_closed: false,
            abandoned: false,
            max_input: crate::Limits::default().max_pub_size + INPUT_SLACK,
        }
    }

    // ----- getters -----

    /// Where the driver puts bytes read from the socket.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// [`Self::read_buf`] with room for at least `additional` more bytes,
    /// grown geometrically (see [`reserve_input`]). Once enough of a large
    /// control frame has arrived (see [`RESERVE_AHEAD`]), the buffer is
    /// grown to hold all of it at once, so its first bytes are not copied
    /// again at every doubling.
    pub fn read_buf_with(&mut self, additional: usize) -> &mut BytesMut {
        let rest = self.declared_rest();
        if rest > 0 && rest <= self.input.len().saturating_mul(RESERVE_AHEAD) {
            self.input.reserve(rest.max(additional));
        } else {
            reserve_input(&mut self.input, additional);
        }
        &mut self.input
    }

    /// Bytes still to come of the plain-text control frame at the head of
    /// the input, when its header declares a size within the input bound;
    /// 0 otherwise.
    fn declared_rest(&self) -> usize {
        if self.tls.is_some() || !matches!(self.state, State::Control { .. }) {
            return 0;
        }
        request::declared_op_size(&self.input)
            .filter(|&size| size <= self.max_input)
            .map_or(0, |size| size.saturating_sub(self.input.len()))
    }

    /// Input bytes received and not yet processed (raw and decrypted):
    /// drivers stop reading while this is above their bound, so a peer
    /// cannot make us buffer without limit while a login check runs.
    pub fn buffered(&self) -> usize {
        self.input.len() + self.plain.len()
    }

    /// Whether the driver should read from the socket now, given what
    /// waits in its `TxBuf`. False once closed, while too many replies wait
    /// to be written, or while too much input waits to be processed.
    pub fn wants_input(&self, tx: &TxBuf) -> bool {
        !self.is_closed() && tx.len() < MAX_PENDING_WRITE && self.buffered() < self.max_input
    }

    /// Whether the driver can close the socket and drop the connection:
    /// closed and flushed, or closed and the peer took nothing for the
    /// timeout (a client that stopped reading).
    pub fn is_done(&self, tx: &TxBuf) -> bool {
        self.is_closed() && (tx.is_empty() || self.abandoned)
    }

    /// Messages still queued in the broker for this socket's session. A
    /// draining server keeps the session's sockets open until this is zero.
    pub fn backlog(&self, broker: &Broker) -> usize {
        self.session().map_or(0, |id| broker.queued(id))
    }

    /// Whether the connection is finished: flush the `TxBuf`, then close.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Why it closed, once closed.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The peer address given at creation.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The session this socket belongs to, once logged in or bound.
    pub fn session(&self) -> Option<SessionId> {
        match self.state {
            State::Control { session, .. } | State::Data { session, .. } => Some(session),
            _ => None,
        }
    }

    // ----- handle_* -----

    /// Processes everything in [`Self::read_buf`].
    pub fn handle_input(&mut self, broker: &mut Broker, now: Instant) {
        if let Err(reason) = self.decrypt() {
            self.close(broker, reason);
            return;
        }
        while let Some(progress) = self.step(broker, now) {
            if !progress {
                break;
            }
        }
        self.release_idle_buffers();
    }

    /// The peer closed its end or the socket failed.
    pub fn handle_eof(&mut self, broker: &mut Broker) {
        self.close(broker, CloseReason::PeerClosed);
    }

    /// The result of an [`Action::CheckPassword`].
    pub fn password_checked(&mut self, ok: bool, broker: &mut Broker, now: Instant) {
        let State::CheckingPassword { .. } = self.state else {
            return;
        };
        let State::CheckingPassword { check, .. } =
            std::mem::replace(&mut self.state, State::Login)
        else {
            return;
        };
        let decision = broker.finish_login(check, ok, self.origin());
        self.deadline = now + broker.limits().timeout;
        self.apply_login(decision, broker);
        self.handle_input(broker, now);
    }

    /// Time passed: closes a connection whose deadline is over.
    pub fn handle_timeout(&mut self, broker: &mut Broker, now: Instant) {
        if self.is_closed() {
            self.abandoned |= self.tx_seen > 0 && now >= self.tx_progress + self.timeout;
            return;
        }
        if let State::Data { .. } = self.state {
            if self.tx_seen > 0 && now >= self.tx_progress + self.timeout {
                self.close(broker, CloseReason::WriteStalled);
            }
            return;
        }
        if now >= self.deadline && !matches!(self.state, State::CheckingPassword { .. }) {
            self.close(broker, CloseReason::Timeout);
        }
    }

    // ----- poll_* -----

    /// The next slow job for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        let State::CheckingPassword { check, handed_out } = &mut self.state else {
            return None;
        };
        if std::mem::replace(handed_out, true) {
            return None;
        }
        // Hand out a copy; the connection keeps the original for the answer.
        Some(Action::CheckPassword(check.clone()))
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Closed(_) if self.tx_seen > 0 => Some(self.tx_progress + self.timeout),
            State::Closed(_) | State::CheckingPassword { .. } => None,
            // A beacon goes out only when nothing else waits: while output
            // is pending, only the stall deadline counts (an overdue beacon
            // time would fire at once, again and again).
            State::Data { .. } if self.tx_seen > 0 => Some(self.tx_progress + self.timeout),
            State::Data {
                beacon, last_sent, ..
            } => Some(*last_sent + *beacon),
            _ => Some(self.deadline),
        }
    }

    /// Moves bytes ready for the socket into `tx`.
    pub fn poll_transmit(&mut self, broker: &mut Broker, now: Instant, tx: &mut TxBuf) {
        if tx.len() < self.tx_seen || tx.is_empty() {
            self.tx_progress = now;
        }
        // Replies first: a data socket's greeting reply and OK must precede
        // messages queued before this call (found by the simulation).
        self.flush_replies(tx);
        if let State::Data { .. } = self.state {
            self.take_messages(broker, now, tx);
            // A beacon NOP the queue check just added.
            self.flush_replies(tx);
        }
        if let Some(tls) = &mut self.tls {
            for chunk in self.staged.drain() {
                // A TLS write error leaves the session unusable; the next
                // read will report it.
                let _ = tls.write_plaintext(&chunk);
            }
            if matches!(self.state, State::Closed(_)) && !self.tls_closed {
                tls.close();
                self.tls_closed = true;
            }
            let mut cipher = Vec::new();
            tls.take_ciphertext(&mut cipher);
            tx.push(Bytes::from(cipher));
        }
        self.tx_seen = tx.len();
    }

    // ----- internals -----

    /// Moves pending replies to the socket (through TLS when on).
    fn flush_replies(&mut self, tx: &mut TxBuf) {
        if self.replies.is_empty() {
            return;
        }
        let replies = self.replies.split().freeze();
        match &mut self.tls {
            Some(_) => self.staged.push(replies),
            None => tx.push(replies),
        }
    }

    fn origin(&self) -> Origin {
        Origin {
            unix: self.transport == Transport::Unix,
            peer: self.peer.clone(),
        }
    }

    /// Drops input buffers that hold nothing, so an idle connection costs
    /// no buffer memory; the allocation lives on only in the `Bytes` of
    /// frames still queued, and the next read gets a fresh one.
    fn release_idle_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = BytesMut::new();
        }
        if self.plain.is_empty() && self.plain.capacity() > 0 {
            self.plain = BytesMut::new();
        }
    }

    /// Moves ciphertext through TLS into `plain`.
    fn decrypt(&mut self) -> Result<(), CloseReason> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        // rustls stops taking ciphertext while ~16 KiB of plaintext waits,
        // so feed and drain in turns until the input is used up.
        loop {
            tls.feed_ciphertext(&mut self.input)
                .map_err(|e| CloseReason::Tls(e.to_string()))?;
            let taken = tls
                .take_plaintext(&mut self.plain)
                .map_err(|e| CloseReason::Tls(e.to_string()))?;
            if tls.peer_closed() {
                return Err(CloseReason::PeerClosed);
            }
            if self.input.is_empty() || taken == 0 {
                return Ok(());
            }
        }
    }

    /// The buffer protocol frames are decoded from.
    fn frames(&mut self) -> &mut BytesMut {
        if self.tls.is_some() {
            &mut self.plain
        } else {
            &mut self.input
        }
    }

    /// Decodes and applies one frame. `Some(true)`: made progress, go on;
    /// `Some(false)` or `None`: wait for more input.
    fn step(&mut self, broker: &mut Broker, now: Instant) -> Option<bool> {
        let limits = *broker.limits();
        self.max_input = limits.max_pub_size.max(limits.max_topic_length) + INPUT_SLACK;
        let result = match self.state {
            State::Greeting => self.on_greeting(),
            State::Login => {
                let max = limits.max_login_size;
                match request::decode_login(self.frames(), max) {
                    Ok(Some(login)) => {
                        // A complete login is a complete operation: the
                        // first request gets a full timeout.
                        self.deadline = now + limits.timeout;
                        let decision =
                            broker.begin_login(&login.login, &login.password, self.origin());
                        self.apply_login(decision, broker);
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(err) => Err(protocol(err)),
                }
            }
            State::CheckingPassword { .. } | State::Closed(_) => Ok(false),
            State::Control {
                session,
                ref replicating,
            } => {
                let replicating = replicating.clone();
                self.on_control(broker, session, replicating, now)
            }
            State::DataHello => self.on_data_hello(broker, now),
            // Data sockets carry nothing from the client after the hello.
            State::Data { .. } => {
                let frames = self.frames();
                frames.clear();
                Ok(false)
            }
        };
        match result {
            Ok(progress) => Some(progress && !self.is_closed()),
            Err(reason) => {
                self.close(broker, reason);
                None
            }
        }
    }

    fn on_greeting(&mut self) -> Result<bool, CloseReason> {
        let Some(greeting) = request::decode_greeting(&mut self.input).map_err(protocol)? else {
            return Ok(false);
        };
        if greeting.tls {
            let Some(config) = self.config.tls.clone() else {
                return Err(CloseReason::Tls("TLS requested but not configured".into()));
            };
            let tls = TlsSession::server(config).map_err(|e| CloseReason::Tls(e.to_string()))?;
            self.tls = Some(Box::new(tls));
            self.decrypt()?;
        } else if !self.config.allow_no_tls && self.transport == Transport::Tcp {
            return Err(CloseReason::Tls("plain connections are not allowed".into()));
        }
        self.kind = greeting.kind;
        self.replies
            .extend_from_slice(&push::greeting_reply(greeting.kind));
        self.state = match greeting.kind {
            SocketKind::Control => State::Login,
            SocketKind::Data => State::DataHello,
        };
        Ok(true)
    }

    fn apply_login(&mut self, decision: LoginDecision, broker: &mut Broker) {
        match decision {
            LoginDecision::Granted(session, token) => {
                self.replies.extend_from_slice(&token);
                self.state = State::Control {
                    session,
                    replicating: None,
                };
            }
            LoginDecision::Verify(check) => {
                self.state = State::CheckingPassword {
                    check,
                    handed_out: false,
                }
            }
            LoginDecision::Denied(_) => self.close(broker, CloseReason::LoginDenied),
        }
    }

    fn on_control(
        &mut self,
        broker: &mut Broker,
        session: SessionId,
        replicating: Option<Bytes>,
        now: Instant,
    ) -> Result<bool, CloseReason> {
        let limits = *broker.limits();
        if let Some(topic) = replicating {
            let max = limits.max_pub_size;
            let Some(repl) = request::decode_repl_payload(self.frames(), max).map_err(protocol)?
            else {
                return Ok(false);
            };
            let reply = broker.replicate(&topic, repl.prio, repl.payload, now);
            self.finish_op(reply, now, broker);
            self.state = State::Control {
                session,
                replicating: None,
            };
            return Ok(true);
        }
        let op_limits = OpLimits {
            max_pub_size: limits.max_pub_size,
            max_topic_length: limits.max_topic_length,
        };
        let Some(op) = request::decode_op(self.frames(), op_limits).map_err(protocol)? else {
            return Ok(false);
        };
        let reply = match op {
            Op::Nop => status::OK,
            Op::Publish {
                prio,
                topic,
                payload,
            } => broker
                .publish(session, prio, &topic, payload, now)
                .map_err(|e| CloseReason::Protocol(e.to_string()))?,
            Op::Subscribe(body) => broker.subscribe(session, &body),
            Op::Unsubscribe(body) => broker.unsubscribe(session, &body),
            Op::PublishRepl { topic } => {
                let reply = broker.replication_offer(session, &topic);
                if reply == status::OK_WAITING {
                    self.state = State::Control {
                        session,
                        replicating: Some(topic),
                    };
                }
                reply
            }
            Op::Bye => {
                self.replies.extend_from_slice(&[status::OK]);
                self.close(broker, CloseReason::Bye);
                return Ok(false);
            }
        };
        self.finish_op(reply, now, broker);
        Ok(true)
    }

    fn finish_op(&mut self, reply: u8, now: Instant, broker: &Broker) {
        self.replies.extend_from_slice(&[reply]);
        self.deadline = now + broker.limits().timeout;
    }

    fn on_data_hello(&mut self, broker: &mut Broker, now: Instant) -> Result<bool, CloseReason> {
        let Some(hello) = request::decode_data_hello(self.frames()).map_err(protocol)? else {
            return Ok(false);
        };
        let Some(session) = broker.bind_data(&hello.token, self.waker.clone()) else {
            self.replies.extend_from_slice(&[status::ERR]);
            return Err(CloseReason::DataRefused);
        };
        self.replies.extend_from_slice(&[status::OK]);
        let beacon = match hello.timeout_secs {
            0 => broker.limits().timeout / 2,
            secs => Duration::from_secs(u64::from(secs)) / 2,
        };
        self.state = State::Data {
            session,
            beacon,
            last_sent: now,
        };
        Ok(true)
    }

    fn take_messages(&mut self, broker: &mut Broker, now: Instant, tx: &mut TxBuf) {
        let State::Data {
            session,
            beacon,
            ref mut last_sent,
        } = self.state
        else {
            return;
        };
        let pending = tx.len() + self.staged.len() + self.replies.len();
        if pending >= TX_HIGH_WATER {
            return;
        }
        let target = if self.tls.is_some() {
            &mut self.staged
        } else {
            &mut *tx
        };
        match broker.take_messages(session, now, target, TX_HIGH_WATER - pending) {
            DataState::Active(0) => {
                if now >= *last_sent + beacon && pending == 0 {
                    self.replies.extend_from_slice(&[status::NOP]);
                    *last_sent = now;
                }
            }
            DataState::Active(_) => *last_sent = now,
            DataState::Gone => {
                self.state = State::Closed(CloseReason::SessionGone);
                broker.unbind_data(session);
            }
        }
    }

    /// Ends the connection and releases what it holds in the broker.
    fn close(&mut self, broker: &mut Broker, reason: CloseReason) {
        match std::mem::replace(&mut self.state, State::Closed(reason)) {
            State::Control { session, .. } => broker.end_session(session),
            State::Data { session, .. } => broker.unbind_data(session),
            State::CheckingPassword { .. } => broker.abandon_check(),
            _ => {}
        }
    }
}

/// How a [`SocketTask`] reaches the broker that all of a server's sockets
/// share: a multi-threaded driver implements it with its lock (and logs the
/// broker's events once the lock is released); single-threaded code uses
/// the `RefCell` one.
pub trait BrokerLock {
    /// Runs `f` on the broker, holding the lock only while `f` runs.
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R;
}

impl BrokerLock for std::cell::RefCell<Broker> {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

impl BrokerLock for Mutex<Broker> {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The rest of a driver task's state for one socket: whether the peer's
/// side is still open and, once the server stops, until when the socket
/// may drain. [`SocketTask::turn`] is the whole of a driver's loop but the
/// waiting, so the runtimes decide alike when to read, when to wake and
/// when to close:
///
/// ```text
/// let mut wakeup = None;
/// loop {
///     match task.turn(wakeup, &conn, &lock, ..) { Close => break, Wait { .. } => .. }
///     wakeup = Some(wait for the first source that is ready);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SocketTask {
    read_open: bool,
    drain_timeout: Duration,
    drain_deadline: Option<Instant>,
}

/// What woke a driver's task, for [`SocketTask::turn`] to act on.
#[derive(Debug)]
pub enum Wakeup {
    /// A read appended this many bytes to [`Connection::read_buf`]; `0`
    /// is end of stream.
    Read(std::io::Result<usize>),
    /// A write took this many bytes from the head of the `TxBuf`.
    Wrote(std::io::Result<usize>),
    /// The answer to an [`Action::CheckPassword`].
    Checked(bool),
    /// The deadline of [`Turn::Wait`] passed.
    Timeout,
    /// The server began stopping.
    Stopping,
    /// The connection's waker fired: the broker has something for it.
    Woken,
}

/// What a driver task does after [`SocketTask::turn`].
#[derive(Debug)]
pub enum Turn {
    /// Close the socket and end the task: the connection is done (and
    /// closed), its drain is over, or the socket failed.
    Close,
    /// Wait for the first of: input (if `read`), the socket taking output
    /// (if the `TxBuf` is not empty), the connection's waker, `deadline`,
    /// the server's stop (unless [`SocketTask::is_draining`]).
    Wait {
        /// Slow work to start now.
        action: Option<Action>,
        /// Whether to read the socket.
        read: bool,
        /// When to wake with [`Wakeup::Timeout`] if nothing else happens
        /// first.
        deadline: Option<Instant>,
    },
}

impl SocketTask {
    /// A task for a freshly accepted socket; once the server stops, the
    /// socket may send what is queued for up to `drain_timeout`.
    pub fn new(drain_timeout: Duration) -> Self {
        Self {
            read_open: true,
            drain_timeout,
            drain_deadline: None,
        }
    }

    /// Whether the server's stop was seen: drivers stop waiting for it.
    pub fn is_draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// One turn: acts on `wakeup`, moves output into `tx`, hands out an
    /// [`Action`] when `take_action` (no check of this socket runs) and
    /// decides what to wait for. A draining socket closes once its session
    /// has nothing queued, or at its deadline. The broker is reached
    /// through `broker`, which a multi-threaded driver implements with its
    /// lock.
    pub fn turn<L: BrokerLock + ?Sized>(
        &mut self,
        wakeup: Option<Wakeup>,
        conn: &mut Connection,
        broker: &L,
        tx: &mut TxBuf,
        now: Instant,
        take_action: bool,
    ) -> Turn {
        broker.with_broker(|broker| self.turn_locked(wakeup, conn, broker, tx, now, take_action))
    }

    fn turn_locked(
        &mut self,
        wakeup: Option<Wakeup>,
        conn: &mut Connection,
        broker: &mut Broker,
        tx: &mut TxBuf,
        now: Instant,
        take_action: bool,
    ) -> Turn {
        if let Some(wakeup) = wakeup
            && !self.apply(wakeup, conn, broker, tx, now)
        {
            return Turn::Close;
        }
        conn.poll_transmit(broker, now, tx);
        let action = if take_action {
            conn.poll_action()
        } else {
            None
        };
        if conn.is_done(tx) {
            return Turn::Close;
        }
        if let Some(drain) = self.drain_deadline
            && (now >= drain || (tx.is_empty() && conn.backlog(broker) == 0))
        {
            conn.handle_eof(broker);
            return Turn::Close;
        }
        let recheck = self.drain_deadline.map(|d| d.min(now + DRAIN_RECHECK));
        let deadline = match (conn.poll_timeout(), recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Turn::Wait {
            action,
            read: self.read_open && !self.is_draining() && conn.wants_input(tx),
            deadline,
        }
    }

    /// Acts on what woke the task; false when the socket failed.
    fn apply(
        &mut self,
        wakeup: Wakeup,
        conn: &mut Connection,
        broker: &mut Broker,
        tx: &mut TxBuf,
        now: Instant,
    ) -> bool {
        match wakeup {
            Wakeup::Read(Ok(0) | Err(_)) => {
                self.read_open = false;
                conn.handle_eof(broker);
            }
            Wakeup::Read(Ok(_)) => conn.handle_input(broker, now),
            Wakeup::Wrote(Ok(n)) => tx.advance(n),
            Wakeup::Wrote(Err(_)) => {
                conn.handle_eof(broker);
                return false;
            }
            Wakeup::Checked(ok) => conn.password_checked(ok, broker, now),
            Wakeup::Timeout => conn.handle_timeout(broker, now),
            Wakeup::Stopping => {
                self.drain_deadline.get_or_insert(now + self.drain_timeout);
            }
            Wakeup::Woken => {}
        }
        true
    }
}

/// The [`Waker`] a driver gives [`Connection::new`] when its task waits in
/// one hand-written poll over all of a socket's sources: the broker's wake
/// sets a flag and wakes the task, and the task's poll [`WakeFlag::take`]s
/// the flag to learn that it must call [`Connection::poll_transmit`] (the
/// task's own waker would wake the poll without saying why). It takes no
/// allocation per wake-up, unlike a channel.
#[derive(Debug, Default)]
pub struct WakeFlag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl WakeFlag {
    /// Whether the broker woke the connection since the last call; wakes
    /// `cx`'s task at the next one.
    pub fn take(&self, cx: &Context<'_>) -> bool {
        {
            let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *task {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = &*task {
            waker.wake_by_ref();
        }
    }
}

fn protocol(err: WireError) -> CloseReason {
    CloseReason::Protocol(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::AuthConfig;
    use rand::SeedableRng;
    use std::cell::RefCell;

    const GREETING: [u8; 3] = [0xEE, 0xAA, 0x00];

    /// A base instant; the core itself never reads the clock.
    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    fn setup(now: Instant) -> (Broker, Connection) {
        let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
        let broker = Broker::new(crate::Limits::default(), AuthConfig::open(), rng);
        let config = Arc::new(ConnConfig {
            tls: None,
            allow_no_tls: true,
        });
        let timeout = broker.limits().timeout;
        let conn = Connection::new(
            config,
            Transport::Tcp,
            "p".into(),
            Waker::noop().clone(),
            timeout,
            now,
        );
        (broker, conn)
    }

    fn wait(turn: Turn) -> (bool, Option<Instant>) {
        match turn {
            Turn::Wait { read, deadline, .. } => (read, deadline),
            Turn::Close => panic!("closed too early"),
        }
    }

    /// A socket that sent its greeting, with the answer waiting in `tx`.
    fn greeted(now: Instant) -> (RefCell<Broker>, Connection, SocketTask, TxBuf) {
        let (broker, mut conn) = setup(now);
        let broker = RefCell::new(broker);
        conn.read_buf().extend_from_slice(&GREETING);
        let mut task = SocketTask::new(Duration::from_secs(5));
        let mut tx = TxBuf::new();
        let read = Some(Wakeup::Read(Ok(GREETING.len())));
        wait(task.turn(read, &mut conn, &broker, &mut tx, now, true));
        assert!(!tx.is_empty(), "the greeting answer waits");
        (broker, conn, task, tx)
    }

    /// A plain TCP control session, logged in anonymously.
    fn logged_in(now: Instant) -> (Broker, Connection) {
        let (mut broker, mut conn) = setup(now);
        let mut hello = BytesMut::from(&GREETING[..]);
        request::encode_login(&mut hello, "", b"");
        conn.read_buf().extend_from_slice(&hello);
        conn.handle_input(&mut broker, now);
        assert!(matches!(conn.state, State::Control { .. }), "logged in");
        (broker, conn)
    }

    #[test]
    fn a_large_publish_is_reserved_whole_once_enough_of_it_arrived() {
        let now = start();
        let (mut broker, mut conn) = logged_in(now);
        let body = 1_000_000usize;
        let mut head = BytesMut::from(&[crate::wire::op::PUBLISH, 0x7F][..]);
        head.extend_from_slice(&u32::try_from(body).expect("small").to_le_bytes());
        head.extend_from_slice(b"t\0");
        conn.read_buf().extend_from_slice(&head);
        conn.handle_input(&mut broker, now);
        let bare = conn.read_buf_with(64 * 1024).capacity();
        assert!(
            bare < 256 * 1024,
            "a bare header reserves a read chunk only: {bare}"
        );
        conn.read_buf().extend_from_slice(&vec![0u8; 150_000]);
        conn.handle_input(&mut broker, now);
        let whole = conn.read_buf_with(64 * 1024).capacity();
        assert!(whole >= 6 + body, "room for the whole frame: {whole}");
        assert!(whole < 2 * (6 + body), "not doubled past it: {whole}");
    }

    #[test]
    fn a_fresh_socket_reads_until_its_timeout() {
        let now = start();
        let (broker, mut conn) = setup(now);
        let timeout = broker.limits().timeout;
        let broker = RefCell::new(broker);
        let mut tx = TxBuf::new();
        let mut task = SocketTask::new(Duration::from_secs(5));
        let (read, deadline) = wait(task.turn(None, &mut conn, &broker, &mut tx, now, true));
        assert!(read);
        assert_eq!(deadline, Some(now + timeout));
    }

    #[test]
    fn a_draining_socket_stops_reading_and_closes_once_flushed() {
        let now = start();
        let (broker, mut conn, mut task, mut tx) = greeted(now);
        let turn = task.turn(
            Some(Wakeup::Stopping),
            &mut conn,
            &broker,
            &mut tx,
            now,
            true,
        );
        assert!(task.is_draining());
        let (read, deadline) = wait(turn);
        assert!(!read, "draining sockets take no more input");
        assert_eq!(deadline, Some(now + DRAIN_RECHECK));
        let wrote = Some(Wakeup::Wrote(Ok(tx.len())));
        let turn = task.turn(wrote, &mut conn, &broker, &mut tx, now, true);
        assert!(matches!(turn, Turn::Close));
        assert!(conn.is_closed(), "closed for the broker too");
    }

    #[test]
    fn a_drain_ends_at_its_deadline_even_with_output_waiting() {
        let now = start();
        let (broker, mut conn, mut task, mut tx) = greeted(now);
        let stop = Some(Wakeup::Stopping);
        wait(task.turn(stop, &mut conn, &broker, &mut tx, now, true));
        let later = now + Duration::from_secs(1);
        let stop = Some(Wakeup::Stopping);
        let (_, deadline) = wait(task.turn(stop, &mut conn, &broker, &mut tx, later, true));
        assert_eq!(deadline, Some(later + DRAIN_RECHECK), "re-checks the queue");
        let over = now + Duration::from_secs(5);
        let turn = task.turn(None, &mut conn, &broker, &mut tx, over, true);
        assert!(
            matches!(turn, Turn::Close),
            "the first stop's deadline holds"
        );
    }

    #[test]
    fn a_failed_write_closes_at_once_and_end_of_stream_after_the_flush() {
        let now = start();
        let broken = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let cases = [
            (Wakeup::Wrote(Err(broken())), true),
            (Wakeup::Read(Err(broken())), false),
            (Wakeup::Read(Ok(0)), false),
        ];
        for (wakeup, at_once) in cases {
            let what = format!("{wakeup:?}");
            let (broker, mut conn, mut task, mut tx) = greeted(now);
            let turn = task.turn(Some(wakeup), &mut conn, &broker, &mut tx, now, true);
            assert!(conn.is_closed(), "{what}");
            if !at_once {
                assert!(!wait(turn).0, "{what}: no more reads, the answer goes out");
                let wrote = Some(Wakeup::Wrote(Ok(tx.len())));
                let turn = task.turn(wrote, &mut conn, &broker, &mut tx, now, true);
                assert!(matches!(turn, Turn::Close), "{what}");
                continue;
            }
            assert!(matches!(turn, Turn::Close), "{what}");
        }
    }

    #[test]
    fn an_overdue_beacon_does_not_fire_while_output_waits() {
        let now = start();
        let (mut broker, mut control) = setup(now);
        control
            .read_buf()
            .extend_from_slice(&[0xEE, 0xAA, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]);
        control.handle_input(&mut broker, now);
        let mut tx = TxBuf::new();
        control.poll_transmit(&mut broker, now, &mut tx);
        let reply = tx.to_vec();
        let token = reply.get(4..36).expect("greeting answer and token");
        let (_, mut data) = setup(now);
        let mut hello = vec![0xEE, 0xAB, 0x00];
        hello.extend_from_slice(token);
        hello.push(1);
        data.read_buf().extend_from_slice(&hello);
        data.handle_input(&mut broker, now);
        let mut unread = TxBuf::new();
        data.poll_transmit(&mut broker, now, &mut unread);
        assert!(!unread.is_empty(), "the data reply waits, unread");
        let later = now + Duration::from_secs(2);
        data.poll_transmit(&mut broker, later, &mut unread);
        let deadline = data.poll_timeout().expect("a stall deadline");
        assert!(deadline > later, "deadline {deadline:?} is already over");
        assert_eq!(deadline, now + broker.limits().timeout);
    }

    /// Counts the wake-ups of the task that registered it.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_wake_flag_tells_the_registered_task_once() {
        let flag = Arc::new(WakeFlag::default());
        let count = Arc::new(Count::default());
        let task = Waker::from(count.clone());
        let cx = Context::from_waker(&task);
        assert!(!flag.take(&cx), "nothing woke it yet");
        Waker::from(flag.clone()).wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(flag.take(&cx));
        assert!(!flag.take(&cx), "one wake is told once");
    }
}
