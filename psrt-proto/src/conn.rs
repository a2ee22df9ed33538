//! One server-side socket (control or data) as a state machine:
//! greeting → (TLS) → login or data hello → operations or pushed messages.
//!
//! The work of a [`Connection`] is split by whether it needs the
//! [`Broker`], which every socket of a server shares (see
//! [`Connection`] for the call order):
//!
//! * without the broker: TLS (decrypting what the peer sent, encrypting
//!   what goes back), framing and decoding requests, keep-alive and write
//!   timeouts, beacons;
//! * with the broker, in [`Connection::handle_broker`]: applying the
//!   decoded requests (login, publish, subscribe, unsubscribe,
//!   replication, data-socket bind), ending a session when the socket
//!   closes, and taking a data socket's queued messages (shared
//!   [`Bytes`], no copy).
//!
//! A multi-threaded driver therefore holds its broker lock only around
//! `handle_broker`, and only when [`Connection::wants_broker`] says there
//! is something to apply. [`SocketTask::turn`] runs one driver step in
//! that order; every runtime and the in-memory [`crate::node::Node`] go
//! through it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::broker::{Broker, PasswordCheck, SessionId};
use crate::framepool::{FramePool, POOLED_FRAME};
use crate::tls::TlsSession;
use crate::txbuf::TxBuf;
use crate::wire::request::{self, OpLimits};
use crate::wire::{SocketKind, status};

mod apply;
mod decode;
mod task;
#[cfg(test)]
mod tests;

use decode::Request;
#[cfg(test)]
pub(crate) use task::CountingLock;
pub use task::{BrokerLock, SocketTask, Turn, WakeFlag, Wakeup};

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
/// Most decoded requests waiting for [`Connection::handle_broker`]: bounds
/// how long one call holds the broker, and the queue's memory.
const MAX_REQUESTS: usize = 128;
/// Capacity of an emptied request queue above which its allocation is
/// given back, so an idle connection keeps no large queue.
const IDLE_REQUESTS: usize = 4;

/// While a server drains on shutdown, a session's sockets stay open until
/// its data queue is empty ([`Connection::backlog`]); nothing wakes a
/// control socket when that happens, so drivers re-check this often.
pub const DRAIN_RECHECK: Duration = Duration::from_millis(20);

/// How far ahead of its bytes a declared control frame is reserved: the
/// whole frame once at least 1/`RESERVE_AHEAD` of what is still missing
/// has arrived. A peer that declares a large frame and stalls makes us
/// hold at most this many times what it sent (and never more than the
/// input bound), while a real large publish gets its buffer early: a
/// 1 MiB frame after its first 64 KiB read (a reused pooled buffer even as
/// soon as its header is known), and only what came before is copied
/// into it; the rest is read in place (see [`Connection::read_into`]).
pub const RESERVE_AHEAD: usize = 16;

/// Large frames of one size read together: while a connection sends
/// large frames of the same size back to back, their buffer has room for
/// this many (within [`STREAK_BYTES`]), so one read brings several and
/// the subscribers get them in one write. One frame per read meant one
/// operation per 64 KiB message on each side, and on io_uring one
/// wake-up of the subscriber's reader per message.
const STREAK_FRAMES: usize = 4;
/// Most bytes of a buffer for several large frames: frames larger than
/// a quarter of this get fewer to a buffer, and from half of it on one.
const STREAK_BYTES: usize = 512 * 1024;

/// Room for the next frames of a streak of `size`-byte frames: as many
/// as fit [`STREAK_FRAMES`], [`STREAK_BYTES`] and `max_input`, and at
/// least one.
fn streak_room(size: usize, max_input: usize) -> usize {
    let frames = STREAK_BYTES.min(max_input) / size.max(1);
    frames.clamp(1, STREAK_FRAMES) * size
}

/// Makes room for `additional` more input bytes. When the buffer must grow
/// it at least doubles: once decoded frames have been split off, `BytesMut`
/// would otherwise grow a shared buffer by exactly what is asked, and a
/// 1 MiB frame arriving in 64 KiB reads would be copied sixteen times.
pub fn reserve_input(buf: &mut BytesMut, additional: usize) {
    if buf.capacity() - buf.len() < additional {
        buf.reserve(additional.max(buf.len()));
    }
}

/// Where a driver reads a socket's next bytes ([`Connection::read_into`]).
#[derive(Debug)]
pub enum ReadInto<'a> {
    /// Append to the connection's input, growing it with [`reserve_input`].
    Input(&'a mut BytesMut),
    /// Append to a large frame's buffer, which has room for the rest of the
    /// frame: read straight into its spare capacity. A completion runtime
    /// may move the buffer into its read and put it back when the read
    /// completes (the connection reads nothing else meanwhile).
    Frame(&'a mut Vec<u8>),
}

/// A large frame being read into a buffer of its own.
#[derive(Debug)]
struct LargeFrame {
    /// The frame's bytes so far; capacity for all of it.
    buf: Vec<u8>,
    /// The frame's whole size; 0 while its header has not come.
    size: usize,
}

/// Server-wide settings every connection shares.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// TLS server settings; `None` refuses clients asking for TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether plain (non-TLS) TCP clients are accepted. Unix-socket
    /// clients are always accepted in plain mode.
    pub allow_no_tls: bool,
    /// A TLS client's login is the common name of its verified
    /// certificate (see [`Broker::login_by_certificate`]), not the login it
    /// sends. Only meaningful when `tls` requires client certificates.
    pub tls_client_cn_login: bool,
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
    /// A plain TCP client on a server that requires TLS.
    TlsRequired,
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

impl CloseReason {
    /// Whether the server refused the peer (a denial worth a warning in
    /// the audit log) rather than the peer leaving or failing.
    pub fn is_refusal(&self) -> bool {
        matches!(self, CloseReason::TlsRequired)
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("the peer closed the connection"),
            CloseReason::Bye => f.write_str("the client said BYE"),
            CloseReason::Protocol(what) => write!(f, "protocol error: {what}"),
            CloseReason::Tls(what) => write!(f, "TLS failed: {what}"),
            CloseReason::TlsRequired => {
                f.write_str("plain connection refused: the server requires TLS")
            }
            CloseReason::LoginDenied => f.write_str("login refused"),
            CloseReason::DataRefused => f.write_str("data socket token unknown or already bound"),
            CloseReason::Timeout => f.write_str("no complete operation within the timeout"),
            CloseReason::SessionGone => {
                f.write_str("the session ended or its data socket was dropped")
            }
            CloseReason::WriteStalled => {
                f.write_str("the peer stopped reading: nothing written within the timeout")
            }
        }
    }
}

/// How a connection reached the server, once its greeting was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
    /// TCP with TLS.
    Tls,
    /// A Unix socket.
    Unix,
}

impl ListenerKind {
    /// Every kind, in the order of [`Self::index`].
    pub const ALL: [ListenerKind; 3] = [ListenerKind::Tcp, ListenerKind::Tls, ListenerKind::Unix];

    /// Position in [`Self::ALL`], for counters kept per kind.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A metric label: `tcp`, `tls`, `unix`.
    pub fn label(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Tls => "tls",
            ListenerKind::Unix => "unix",
        }
    }
}

enum State {
    Greeting,
    Login,
    CheckingPassword {
        check: PasswordCheck,
        handed_out: bool,
        /// The driver's answer, applied at the next `handle_broker`.
        answer: Option<bool>,
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
        /// Whether the session's queue may hold messages: set when the
        /// broker wakes the socket (it does when the queue stops being
        /// empty, drops it or ends the session) and while a take leaves
        /// messages behind.
        maybe_queued: bool,
    },
    /// Closed, and the login of the session it had joined (set when the
    /// session is given back): kept here, not beside the state, so an
    /// open connection carries nothing for it.
    Closed(CloseReason, Option<Box<str>>),
}

/// What a closed connection still holds in the broker, given back at the
/// next [`Connection::handle_broker`].
#[derive(Debug, Clone, Copy)]
enum Release {
    EndSession(SessionId),
    Unbind(SessionId),
    AbandonCheck,
}

/// The broker's limits a connection decodes with, learned at its first
/// [`Connection::handle_broker`] (they are fixed for a broker's life).
#[derive(Debug, Clone, Copy)]
struct FrameLimits {
    ops: OpLimits,
    max_login_size: usize,
    timeout: Duration,
}

/// TLS state of a socket that asked for it. Boxed in [`Connection`]:
/// rustls keeps over a kilobyte, which plain sockets (most of them) should
/// not carry.
struct Tls {
    session: TlsSession,
    /// Decrypted bytes, decoded from.
    plain: BytesMut,
    /// Plaintext replies and messages waiting to be encrypted.
    staged: TxBuf,
    /// Whether close_notify was queued after the last reply.
    closed: bool,
}

/// One server-side socket.
///
/// # Call order
///
/// For each accepted socket the driver creates a `Connection` and then, as
/// events happen ([`SocketTask::turn`] is this whole list but the waiting):
///
/// 1. reads raw socket bytes where [`Self::read_into`] says (or into
///    [`Self::read_buf`]) and calls [`Self::handle_input`]; on end of
///    stream or a socket error calls [`Self::handle_eof`]; when the
///    [`Waker`] given at creation fires calls [`Self::handle_wake`]; at
///    [`Self::poll_timeout`] calls [`Self::handle_timeout`]; with the answer
///    to an [`Action`] calls [`Self::password_checked`];
/// 2. if [`Self::wants_broker`], locks the broker and calls
///    [`Self::handle_broker`], which applies what step 1 decoded or
///    recorded and takes a data socket's queued messages;
/// 3. calls [`Self::poll_transmit`] and writes the [`TxBuf`] (vectored),
///    `advance`s it after each write and calls `poll_transmit` again;
/// 4. runs each [`Self::poll_action`] (a bcrypt check) off its event loop;
/// 5. once [`Self::is_done`], closes the socket and drops the connection.
///
/// Only step 2 borrows the [`Broker`]: TLS records are decrypted and
/// frames decoded in `handle_input`, and replies and messages are
/// encrypted in `poll_transmit`, both without it. `handle_input` stops
/// decoding after a frame whose successors' meaning depends on the
/// broker's answer (a login, a PUBLISH_REPL offer) and after
/// `MAX_REQUESTS` requests; `handle_broker` then wakes the connection's
/// waker so the driver comes back (step 1, `handle_wake`) for the rest.
/// A close recorded in step 1 (end of stream, timeout, stalled writes)
/// ends the session in the broker at the next `handle_broker`; the
/// connection is [`Self::is_closed`] at once.
pub struct Connection {
    config: Arc<ConnConfig>,
    transport: Transport,
    peer: String,
    waker: Waker,
    state: State,
    kind: SocketKind,
    tls: Option<Box<Tls>>,
    /// Raw bytes from the socket.
    input: BytesMut,
    /// Whether `input` came from the [`FramePool`], to go back there once
    /// empty.
    input_pooled: bool,
    /// A large frame being read straight into its own buffer (see
    /// [`Self::read_into`]); `input` is empty meanwhile.
    frame: Option<Box<LargeFrame>>,
    /// The last large frame filled its buffer: the next read goes into a
    /// pooled one (see [`Self::read_into`]).
    large_streak: bool,
    /// Size of the frame last read into a pooled buffer (0 if that read
    /// brought no large frame): a frame of this size gets room for the
    /// ones behind it ([`streak_room`]).
    last_large: usize,
    /// Replies not yet handed to `poll_transmit` (or, on a data socket, to
    /// the `TxBuf` ahead of messages).
    replies: BytesMut,
    /// Decoded requests waiting for the broker, in arrival order.
    requests: VecDeque<Request>,
    /// Wire bytes of the frames in `requests`: still input, for the bound.
    requests_bytes: usize,
    /// Decoding stopped with input left, at a frame the broker must answer
    /// first or at the request bound.
    stalled: bool,
    /// What the closed connection still holds in the broker.
    release: Option<Release>,
    /// `None` until the first `handle_broker`.
    limits: Option<FrameLimits>,
    deadline: Instant,
    /// Bytes in the driver's `TxBuf` at the last `poll_transmit`, and when
    /// it last shrank: a peer that stops reading is noticed by this.
    tx_seen: usize,
    tx_progress: Instant,
    /// The broker's keep-alive timeout.
    timeout: Duration,
    /// Closed, and the peer took none of the remaining output for the
    /// timeout: the driver may drop the socket unflushed.
    abandoned: bool,
    /// Most unprocessed input the driver should buffer.
    max_input: usize,
    /// Whether the greeting was accepted.
    greeted: bool,
    /// Whether [`Self::newly_greeted`] reported the greeting.
    greeting_reported: bool,
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
    /// something for this connection (messages queued, session ended) and
    /// when the connection left input to decode (see the call order).
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
            input_pooled: false,
            frame: None,
            large_streak: false,
            last_large: 0,
            replies: BytesMut::new(),
            requests: VecDeque::new(),
            requests_bytes: 0,
            stalled: false,
            release: None,
            limits: None,
            deadline: now + timeout,
            tx_seen: 0,
            tx_progress: now,
            timeout,
            abandoned: false,
            max_input: crate::Limits::default().max_pub_size + INPUT_SLACK,
            greeted: false,
            greeting_reported: false,
        }
    }

    // ----- getters -----

    /// Where the driver puts bytes read from the socket.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.settle_frame(false);
        &mut self.input
    }

    /// [`Self::read_buf`] with room for at least `additional` more bytes,
    /// grown geometrically (see [`reserve_input`]). Once enough of a
    /// control frame smaller than [`POOLED_FRAME`] has arrived (see
    /// [`RESERVE_AHEAD`]), the buffer is grown to hold all of it at once,
    /// so its first bytes are not copied again at every doubling.
    pub fn read_buf_with(&mut self, additional: usize) -> &mut BytesMut {
        self.settle_frame(false);
        let rest = self.declared_rest();
        let size = self.input.len() + rest;
        let ahead = rest <= self.input.len().saturating_mul(RESERVE_AHEAD);
        if rest > 0 && size < POOLED_FRAME && ahead {
            self.input.reserve(rest.max(additional));
        } else {
            reserve_input(&mut self.input, additional);
        }
        &mut self.input
    }

    /// Where the driver reads next: the input buffer, or the buffer of a
    /// large frame whose rest the driver reads straight into place (no
    /// copy through a buffer of its own).
    ///
    /// A control frame of [`POOLED_FRAME`] bytes or more gets a buffer
    /// from the [`FramePool`] that holds all of it, as a `Vec` so that the
    /// driver can read into its spare capacity without `unsafe`: a reused
    /// one as soon as the frame's header is known, a new one once enough of
    /// the frame came (see [`RESERVE_AHEAD`]). What came of the frame so
    /// far moves into it (a copy of the first read only). Once the frame is
    /// complete, [`Self::handle_input`] turns the buffer into input without
    /// a copy, and its payload leaves it as shared `Bytes`.
    ///
    /// After a large frame that filled its buffer, the next read goes into
    /// a reused pooled buffer before the next header is known (large
    /// publishes tend to come back to back): a large frame then lands in
    /// place whole, and anything else is taken as input from there. Such a
    /// buffer stays with the connection until its next read (for a quiet
    /// client, its next keep-alive).
    ///
    /// Frames of the size of the last one get room for a few more behind
    /// them ([`STREAK_FRAMES`]): a new buffer only for a frame that is
    /// arriving, a reused one also before the header is known. Only the
    /// part of a frame that a read brought beyond the last whole one is
    /// copied, into the next buffer.
    pub fn read_into(&mut self) -> ReadInto<'_> {
        if self.frame.is_none() {
            self.start_frame();
        }
        if self.frame.is_none()
            && self.input.is_empty()
            && std::mem::take(&mut self.large_streak)
            && let Some(buf) = self.reusable_streak_buffer()
        {
            self.lend_input(buf, 0);
        }
        if self.frame.is_none() {
            return ReadInto::Input(self.read_buf_with(0));
        }
        match self.frame.as_deref_mut() {
            Some(frame) => ReadInto::Frame(&mut frame.buf),
            None => ReadInto::Input(&mut self.input),
        }
    }

    /// Moves a large frame at the head of the input into a buffer of its
    /// own from the [`FramePool`], when one may be had now.
    fn start_frame(&mut self) {
        let rest = self.declared_rest();
        let size = self.input.len() + rest;
        if rest == 0 || size < POOLED_FRAME {
            return;
        }
        let pool = FramePool::global();
        let room = if size == self.last_large {
            streak_room(size, self.max_input)
        } else {
            size
        };
        let reused = pool
            .take_reusable(room)
            .or_else(|| pool.take_reusable(size));
        let buf = match reused {
            Some(buf) => buf,
            None if rest <= self.input.len().saturating_mul(RESERVE_AHEAD) => {
                Vec::with_capacity(room)
            }
            None => return,
        };
        self.lend_input(buf, size);
    }

    /// A reused pooled buffer for the next read of a streak of large
    /// frames, before the next header is known: with room for several
    /// frames of the last one's size if the pool has one, else for one.
    fn reusable_streak_buffer(&self) -> Option<Vec<u8>> {
        let pool = FramePool::global();
        pool.take_reusable(streak_room(self.last_large, self.max_input))
            .or_else(|| pool.take_reusable(POOLED_FRAME))
    }

    /// Reads into `buf` from now on, for a frame of `size` bytes (0: not
    /// known yet), with the input received so far moved in first.
    fn lend_input(&mut self, mut buf: Vec<u8>, size: usize) {
        buf.extend_from_slice(&self.input);
        let old = std::mem::take(&mut self.input);
        if std::mem::take(&mut self.input_pooled) {
            FramePool::global().give(old);
        }
        self.frame = Some(Box::new(LargeFrame { buf, size }));
    }

    /// Makes the large frame being read input again (without a copy): once
    /// it is complete, or always unless `whole_only`. A buffer taken
    /// before the frame's header was known keeps being read into only if
    /// the header declares a large frame.
    fn settle_frame(&mut self, whole_only: bool) {
        let Some(frame) = self.frame.as_deref_mut() else {
            return;
        };
        if whole_only {
            if frame.size == 0 {
                frame.size = request::declared_op_size(&frame.buf)
                    .filter(|&size| size >= POOLED_FRAME && size <= self.max_input)
                    .unwrap_or(0);
                let missing = frame.size.saturating_sub(frame.buf.len());
                frame.buf.reserve_exact(missing);
            }
            if frame.buf.len() < frame.size {
                return;
            }
        }
        let Some(frame) = self.frame.take() else {
            return;
        };
        // A large frame that filled its buffer: more may be waiting.
        self.large_streak = frame.size > 0 && frame.buf.len() == frame.buf.capacity();
        self.last_large = frame.size;
        let mut buf = BytesMut::from(Bytes::from(frame.buf));
        // The input stays empty while a frame is read into its own buffer;
        // should bytes have come through `read_buf` meanwhile, they follow.
        buf.extend_from_slice(&self.input);
        let old = std::mem::replace(&mut self.input, buf);
        if std::mem::replace(&mut self.input_pooled, true) {
            FramePool::global().give(old);
        }
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

    /// Input bytes received and not yet applied (raw, decrypted, and
    /// decoded requests waiting for the broker): drivers stop reading
    /// while this is above their bound, so a peer cannot make us buffer
    /// without limit while a login check runs.
    pub fn buffered(&self) -> usize {
        let plain = self.tls.as_ref().map_or(0, |tls| tls.plain.len());
        let frame = self.frame.as_ref().map_or(0, |frame| frame.buf.len());
        self.input.len() + frame + plain + self.requests_bytes
    }

    /// Whether the driver should read from the socket now, given what
    /// waits in its `TxBuf`. False once closed, while too many replies wait
    /// to be written, or while too much input waits to be processed.
    pub fn wants_input(&self, tx: &TxBuf) -> bool {
        !self.is_closed() && tx.len() < MAX_PENDING_WRITE && self.buffered() < self.max_input
    }

    /// Whether [`Self::handle_broker`] has work: decoded requests, a
    /// password check's answer, a closed session to end, a first login
    /// frame (the connection learns the broker's limits then), or a data
    /// socket whose queue may hold messages and whose output has room.
    pub fn wants_broker(&self, tx: &TxBuf) -> bool {
        if !self.requests.is_empty() || self.release.is_some() {
            return true;
        }
        match &self.state {
            State::CheckingPassword { answer, .. } => answer.is_some(),
            State::Login => self.limits.is_none() && !self.frames_are_empty(),
            State::Data { maybe_queued, .. } => {
                *maybe_queued && self.pending_output(tx) < TX_HIGH_WATER
            }
            _ => false,
        }
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
        matches!(self.state, State::Closed(..))
    }

    /// Why it closed, once closed.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(reason, _) => Some(reason),
            _ => None,
        }
    }

    /// How the peer connected, once its greeting was accepted (`None`
    /// before, and for a connection refused at the greeting).
    pub fn listener_kind(&self) -> Option<ListenerKind> {
        if !self.greeted {
            None
        } else if self.transport == Transport::Unix {
            Some(ListenerKind::Unix)
        } else if self.tls.is_some() {
            Some(ListenerKind::Tls)
        } else {
            Some(ListenerKind::Tcp)
        }
    }

    /// How the peer connected, the first time it is called after the
    /// greeting was accepted; `None` before and after that: a driver
    /// counts the connection as open once.
    pub fn newly_greeted(&mut self) -> Option<ListenerKind> {
        if self.greeting_reported {
            return None;
        }
        let kind = self.listener_kind()?;
        self.greeting_reported = true;
        Some(kind)
    }

    /// The peer address given at creation.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Once closed, the login of the session this socket had logged in
    /// as or was bound to (`""` for anonymous), for the disconnect log
    /// line; learned when the next [`Self::handle_broker`] gives the
    /// session back. `None` before, and for a socket that never joined a
    /// session.
    pub fn login(&self) -> Option<&str> {
        match &self.state {
            State::Closed(_, login) => login.as_deref(),
            _ => None,
        }
    }

    /// The session this socket belongs to, once logged in or bound.
    pub fn session(&self) -> Option<SessionId> {
        match self.state {
            State::Control { session, .. } | State::Data { session, .. } => Some(session),
            _ => None,
        }
    }

    // ----- handle_* -----

    /// Processes everything in [`Self::read_buf`] that needs no broker:
    /// decrypts TLS records and decodes complete frames into requests for
    /// [`Self::handle_broker`].
    pub fn handle_input(&mut self, now: Instant) {
        self.settle_frame(true);
        if let Err(reason) = self.decrypt() {
            self.close(reason);
            return;
        }
        self.decode(now);
        self.release_idle_buffers();
    }

    /// The peer closed its end or the socket failed. Complete frames
    /// already received are still applied, then the session ends (at the
    /// next [`Self::handle_broker`]).
    pub fn handle_eof(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        self.settle_frame(false);
        self.decode(now);
        self.close(CloseReason::PeerClosed);
    }

    /// The waker given at creation fired: the broker may have queued
    /// messages or ended the session, or the connection left input to
    /// decode.
    pub fn handle_wake(&mut self, now: Instant) {
        if let State::Data { maybe_queued, .. } = &mut self.state {
            *maybe_queued = true;
        } else if !self.input.is_empty() || !self.frames_are_empty() {
            self.handle_input(now);
        }
    }

    /// The result of an [`Action::CheckPassword`], applied at the next
    /// [`Self::handle_broker`].
    pub fn password_checked(&mut self, ok: bool) {
        if let State::CheckingPassword { answer, .. } = &mut self.state {
            *answer = Some(ok);
        }
    }

    /// Time passed: closes a connection whose deadline is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            self.abandoned |= self.tx_seen > 0 && now >= self.tx_progress + self.timeout;
            return;
        }
        if let State::Data { .. } = self.state {
            if self.tx_seen > 0 && now >= self.tx_progress + self.timeout {
                self.close(CloseReason::WriteStalled);
            }
            return;
        }
        if now >= self.deadline && !matches!(self.state, State::CheckingPassword { .. }) {
            self.close(CloseReason::Timeout);
        }
    }

    /// The part that needs the broker (call it with the broker locked):
    /// applies the decoded requests in order (each reply follows the
    /// previous one), a password check's answer, and the end of a closed
    /// session; on a data socket, moves queued messages into `tx` (into
    /// plaintext staging first when TLS is on, encrypted later by
    /// [`Self::poll_transmit`]) after any reply still waiting.
    pub fn handle_broker(&mut self, broker: &mut Broker, now: Instant, tx: &mut TxBuf) {
        self.apply_requests(broker, now);
        if let Some(release) = self.release.take() {
            if let (Release::EndSession(id) | Release::Unbind(id), State::Closed(_, login)) =
                (release, &mut self.state)
            {
                *login = broker.login_of(id).map(Into::into);
            }
            match release {
                Release::EndSession(id) => broker.end_session(id),
                Release::Unbind(id) => broker.unbind_data(id),
                Release::AbandonCheck => broker.abandon_check(),
            }
        }
        if let State::Data { .. } = self.state {
            // Replies first: a data socket's greeting reply and OK must
            // precede its messages (found by the simulation).
            self.flush_replies(tx);
            self.take_messages(broker, now, tx);
        }
        if self.stalled && self.can_decode() {
            self.stalled = false;
            self.waker.wake_by_ref();
        }
    }

    // ----- poll_* -----

    /// The next slow job for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        let State::CheckingPassword {
            check, handed_out, ..
        } = &mut self.state
        else {
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
            State::Closed(..) if self.tx_seen > 0 => Some(self.tx_progress + self.timeout),
            State::Closed(..) | State::CheckingPassword { .. } => None,
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

    /// Moves bytes ready for the socket into `tx`, encrypting them when TLS
    /// is on. Needs no broker: messages were taken by
    /// [`Self::handle_broker`].
    pub fn poll_transmit(&mut self, now: Instant, tx: &mut TxBuf) {
        if tx.len() < self.tx_seen || tx.is_empty() {
            self.tx_progress = now;
        }
        self.flush_replies(tx);
        self.beacon(now, tx);
        if let Some(tls) = &mut self.tls {
            for chunk in tls.staged.drain() {
                // A TLS write error leaves the session unusable; the next
                // read will report it.
                let _ = tls.session.write_plaintext(&chunk);
            }
            if matches!(self.state, State::Closed(..)) && !tls.closed {
                tls.session.close();
                tls.closed = true;
            }
            let mut cipher = Vec::new();
            tls.session.take_ciphertext(&mut cipher);
            tx.push(Bytes::from(cipher));
        }
        self.tx_seen = tx.len();
    }

    // ----- internals -----

    /// Output the connection holds that `poll_transmit` has not yet moved
    /// into the `TxBuf`.
    fn has_output(&self) -> bool {
        !self.replies.is_empty()
            || self
                .tls
                .as_ref()
                .is_some_and(|tls| !tls.staged.is_empty() || tls.session.wants_write())
    }

    /// Bytes waiting to be written: in `tx`, staged for TLS, and replies.
    fn pending_output(&self, tx: &TxBuf) -> usize {
        let staged = self.tls.as_ref().map_or(0, |tls| tls.staged.len());
        tx.len() + staged + self.replies.len()
    }

    /// A data socket's keep-alive: a NOP when nothing was sent for half
    /// the client's timeout and nothing waits, here or in the broker.
    fn beacon(&mut self, now: Instant, tx: &mut TxBuf) {
        let pending = self.pending_output(tx);
        let State::Data {
            beacon,
            ref mut last_sent,
            maybe_queued: false,
            ..
        } = self.state
        else {
            return;
        };
        if pending == 0 && now >= *last_sent + beacon {
            *last_sent = now;
            self.replies.extend_from_slice(&[status::NOP]);
            self.flush_replies(tx);
        }
    }

    /// Moves pending replies towards the socket: into `tx`, or into the
    /// TLS staging buffer.
    fn flush_replies(&mut self, tx: &mut TxBuf) {
        if self.replies.is_empty() {
            return;
        }
        let replies = self.replies.split().freeze();
        match &mut self.tls {
            Some(tls) => tls.staged.push(replies),
            None => tx.push(replies),
        }
    }

    /// Drops buffers that hold nothing, so an idle connection costs no
    /// buffer memory; the allocation lives on only in the `Bytes` of
    /// frames still queued, and the next read gets a fresh one.
    fn release_idle_buffers(&mut self) {
        if self.input.is_empty() && (self.input.capacity() > 0 || self.input_pooled) {
            let input = std::mem::take(&mut self.input);
            if std::mem::take(&mut self.input_pooled) {
                FramePool::global().give(input);
            }
        }
        if let Some(tls) = &mut self.tls
            && tls.plain.is_empty()
            && tls.plain.capacity() > 0
        {
            tls.plain = BytesMut::new();
        }
        if self.requests.is_empty() && self.requests.capacity() > IDLE_REQUESTS {
            self.requests = VecDeque::new();
        }
    }

    /// Ends the connection, or, when decoded requests still wait, queues
    /// the end after them. What it holds in the broker is given back at
    /// the next `handle_broker`.
    fn close(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        if self.requests.is_empty() {
            self.close_now(reason);
        } else {
            self.requests.push_back(Request::Close(reason));
        }
    }

    /// Ends the connection now, dropping requests not yet applied.
    fn close_now(&mut self, reason: CloseReason) {
        self.requests.clear();
        self.release = match std::mem::replace(&mut self.state, State::Closed(reason, None)) {
            State::Control { session, .. } => Some(Release::EndSession(session)),
            State::Data { session, .. } => Some(Release::Unbind(session)),
            State::CheckingPassword { .. } => Some(Release::AbandonCheck),
            State::Closed(reason, login) => {
                // Already closed: keep the first reason.
                self.state = State::Closed(reason, login);
                self.release
            }
            _ => None,
        };
    }
}
