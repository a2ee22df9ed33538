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

use std::sync::Arc;
use std::task::Waker;
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
    /// grown geometrically (see [`reserve_input`]).
    pub fn read_buf_with(&mut self, additional: usize) -> &mut BytesMut {
        reserve_input(&mut self.input, additional);
        &mut self.input
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
            State::Data {
                beacon, last_sent, ..
            } => {
                let beacon_at = *last_sent + *beacon;
                if self.tx_seen > 0 {
                    Some(beacon_at.min(self.tx_progress + self.timeout))
                } else {
                    Some(beacon_at)
                }
            }
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

fn protocol(err: WireError) -> CloseReason {
    CloseReason::Protocol(err.to_string())
}
