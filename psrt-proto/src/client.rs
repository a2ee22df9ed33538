//! The client side of PSRT as sans-IO state machines, so that every runtime
//! crate offers an async client without re-implementing the protocol.
//!
//! * [`ControlClient`]: greeting, login, then pipelined requests whose
//!   one-byte replies are matched to [`RequestId`]s in order, with
//!   keep-alive NOPs and reply deadlines.
//! * [`DataClient`]: greeting, the token hello, then the stream of pushed
//!   [`Message`]s, with beacons swallowed and a silence deadline.
//!
//! Around them, the runtime-independent parts of every runtime crate's
//! async client: [`ClientOptions`] and [`TlsOptions`], [`Target`] parsing
//! and the socket-free connect steps ([`ConnectPlan`]),
//! [`SessionError`] (re-exported by the runtimes as `ClientError`), the
//! request/reply bookkeeping of the control task ([`ControlSession`]), the
//! data task's readiness ([`DataSession`]), the handles' shared state
//! ([`ClientHandle`], [`SessionEnd`],
//! [`client_request_methods!`](crate::client_request_methods)) and UDP
//! datagram building ([`UdpPublisher`]). A runtime crate only adds
//! sockets, timers, channels and tasks, and names its reply channels
//! through [`Waiters`].
//!
//! Both speak plain TCP or TLS (a [`TlsSession`] made with
//! [`TlsSession::client`]): the three greeting bytes always go in plaintext
//! and the handshake starts right after them, as the protocol says.
//!
//! Neither reads the clock nor touches a socket: the driver reads raw socket
//! bytes into [`ControlClient::read_buf`], writes what `poll_transmit` queues
//! into a [`TxBuf`], reports end of stream with `handle_eof`, and passes
//! `now` to every call. After any call returns an error the client is dead:
//! drop it (flushing `poll_transmit` once more may send a TLS alert).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::tls::{TlsError, TlsSession};
use crate::topic::{TopicError, parse_topic};
use crate::txbuf::TxBuf;
use crate::wire::push::{self, Push};
use crate::wire::request::{self, DataHello, Greeting};
use crate::wire::{SocketKind, Token, WireError, op, status};

mod connect;
mod data_session;
mod driver;
mod error;
mod handle;
mod options;
mod session;
mod target;
#[cfg(test)]
mod tests;
mod udp_publisher;

pub use connect::ConnectPlan;
pub use data_session::DataSession;
pub use driver::{ReadOutcome, Waiters};
pub use error::{SessionError, status_result};
pub use handle::{ClientHandle, SessionEnd};
pub use options::{
    COMMAND_QUEUE, ClientOptions, MAX_IOV, MAX_PENDING_WRITE, PRIORITY, READ_CHUNK, TlsOptions,
};
pub use session::{ControlSession, Request};
pub use target::{DEFAULT_PORT, Target, node_list};
pub use udp_publisher::{ACK_BUF, UdpAuth, UdpPublisher, ack_status};

/// Requests a [`ControlClient`] keeps in flight at most unless told
/// otherwise with [`ControlClient::with_max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 65_536;

/// Largest login frame body (`login 00 password`) servers accept.
pub const MAX_LOGIN_SIZE: usize = 1024;

/// Largest frame body a `u32` length can declare.
const MAX_FRAME_BODY: usize = u32::MAX as usize;

/// Why a client state machine failed. Every variant is fatal for the
/// connection, except the request-refusal ones ([`ClientError::Topic`],
/// [`ClientError::NulInTopic`], [`ClientError::TooLarge`],
/// [`ClientError::TooManyInFlight`], [`ClientError::Closed`]) returned by
/// request methods, which leave the client usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server sent bytes that are not valid PSRT.
    #[error("protocol error: {0}")]
    Wire(#[from] WireError),
    /// The TLS session failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server closed the socket before answering the greeting (TLS off,
    /// or plain connections forbidden).
    #[error("server closed the connection before answering the greeting")]
    GreetingRefused,
    /// The server closed the control socket instead of sending a token.
    #[error("login refused by the server")]
    LoginRefused,
    /// The server answered the data-socket hello with ERR or closed it.
    #[error("data socket refused by the server")]
    DataRefused,
    /// The server did not answer (control) or stayed silent (data) for
    /// longer than the timeout.
    #[error("server did not answer in time")]
    Timeout,
    /// The request would exceed the bound on requests awaiting a reply.
    #[error("more than {max} requests in flight")]
    TooManyInFlight {
        /// The configured bound.
        max: usize,
    },
    /// A byte that is not a reply status, or a reply nobody asked for.
    #[error("unexpected status byte {0:#04x}")]
    UnexpectedStatus(u8),
    /// A topic the server would treat as a protocol error and disconnect.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    /// A topic or filter holds a NUL byte, which would change the framing.
    #[error("topic contains a NUL byte")]
    NulInTopic,
    /// A login name holds a NUL byte, which would change the framing.
    #[error("login name contains a NUL byte")]
    NulInLogin,
    /// A frame body is longer than the protocol allows.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A request after BYE or after the connection closed.
    #[error("the session is closed or closing")]
    Closed,
    /// The server closed the control socket with requests unanswered.
    #[error("server closed the connection with {pending} requests unanswered")]
    ConnectionLost {
        /// Requests that got no reply.
        pending: usize,
    },
}

/// Identifies one request of a [`ControlClient`]; ids grow by one per
/// request, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// What a [`ControlClient`] reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the login; the token opens a data socket.
    LoggedIn {
        /// Token for [`DataClient::new`].
        token: Token,
    },
    /// The server answered a request (replies come in request order).
    Reply {
        /// The request answered.
        id: RequestId,
        /// One of the [`status`] codes: `OK`, `OK_WAITING`,
        /// `NOT_REQUIRED`, `ERR_ACCESS` or `ERR`.
        status: u8,
    },
    /// The session ended: the server said OK to BYE or closed an idle
    /// connection. Always the last event.
    Closed,
}

/// One message pushed on a data socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Priority byte as published.
    pub prio: u8,
    /// The normalised topic, as the server sent it.
    pub topic: Bytes,
    /// The payload.
    pub payload: Bytes,
}

impl Message {
    /// The topic as text, if it is UTF-8 (servers only send UTF-8 topics).
    pub fn topic_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.topic).ok()
    }
}

/// Plain or TLS byte plumbing shared by both clients.
#[derive(Debug)]
struct Transport {
    /// Raw bytes read from the socket.
    rx: BytesMut,
    /// Decrypted input (TLS only).
    plain: BytesMut,
    /// Bytes for the socket that bypass TLS: the greeting, and every frame
    /// of a plain connection.
    out: TxBuf,
    /// The TLS session, if the greeting asked for TLS.
    tls: Option<TlsSession>,
}

impl Transport {
    /// Queues the greeting for `kind` (mode byte from whether TLS is on).
    fn new(kind: SocketKind, tls: Option<TlsSession>) -> Self {
        let mut greeting = BytesMut::with_capacity(3);
        let mode = Greeting {
            kind,
            tls: tls.is_some(),
        };
        request::encode_greeting(&mut greeting, mode);
        let mut out = TxBuf::new();
        out.push(greeting.freeze());
        Self {
            rx: BytesMut::new(),
            plain: BytesMut::new(),
            out,
            tls,
        }
    }

    /// Queues one protocol frame, encrypted when TLS is on.
    fn send(&mut self, frame: Bytes) -> Result<(), TlsError> {
        match &mut self.tls {
            Some(tls) => tls.write_plaintext(&frame),
            None => {
                self.out.push(frame);
                Ok(())
            }
        }
    }

    /// Moves everything ready for the socket into `tx`, greeting first.
    fn poll_transmit(&mut self, tx: &mut TxBuf) {
        for chunk in self.out.drain() {
            tx.push(chunk);
        }
        if let Some(tls) = self.tls.as_mut().filter(|tls| tls.wants_write()) {
            let mut cipher = Vec::new();
            tls.take_ciphertext(&mut cipher);
            tx.push(Bytes::from(cipher));
        }
    }

    /// Runs received ciphertext through TLS until no more plaintext comes
    /// out; a no-op on a plain connection.
    fn pump(&mut self) -> Result<(), TlsError> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        loop {
            let before = self.rx.len();
            tls.feed_ciphertext(&mut self.rx)?;
            let moved = tls.take_plaintext(&mut self.plain)?;
            if self.rx.is_empty() || (moved == 0 && self.rx.len() == before) {
                return Ok(());
            }
        }
    }

    /// The protocol bytes received and not yet decoded.
    fn input(&mut self) -> &mut BytesMut {
        match self.tls {
            Some(_) => &mut self.plain,
            None => &mut self.rx,
        }
    }

    /// Whether the TLS peer sent close_notify (the stream has ended).
    fn peer_closed(&self) -> bool {
        self.tls.as_ref().is_some_and(TlsSession::peer_closed)
    }
}

/// Where a control connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ControlState {
    /// Waiting for `EE AA 01 00`.
    AwaitGreeting,
    /// Waiting for the 32-byte token.
    AwaitToken,
    /// Logged in: status bytes answer requests.
    Ready,
    /// Ended (BYE answered or server closed).
    Closed,
}

/// Who waits for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// A request of the owner.
    Request(RequestId),
    /// The owner's BYE: an OK ends the session.
    Bye(RequestId),
    /// A keep-alive NOP of the client itself; its reply is swallowed.
    KeepAlive,
    /// A PUBLISH_REPL offer of the owner: `OK_WAITING` means the payload
    /// is owed next.
    ReplOffer(RequestId),
}

/// A request awaiting its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    waiter: Waiter,
    sent_at: Instant,
}

/// The control socket of a PSRT client: login, then requests and replies.
///
/// # Driving it
///
/// * Construct with [`ControlClient::new`]; the greeting and login frame are
///   queued at once.
/// * Requests ([`publish`](Self::publish), [`subscribe`](Self::subscribe),
///   [`unsubscribe`](Self::unsubscribe), [`nop`](Self::nop),
///   [`bye`](Self::bye)) may be issued at any time, even before the login
///   completes; they are pipelined and answered in order.
/// * Socket readable: read into [`read_buf`](Self::read_buf), then call
///   [`handle_input`](Self::handle_input); on end of stream call
///   [`handle_eof`](Self::handle_eof).
/// * After every `handle_*` call and every request: drain
///   [`poll_event`](Self::poll_event) and
///   [`poll_transmit`](Self::poll_transmit), then sleep until
///   [`poll_timeout`](Self::poll_timeout) and call
///   [`handle_timeout`](Self::handle_timeout) when it passes.
///
/// Memory: the event queue holds at most one event per pending request plus
/// two; pending requests are bounded by the in-flight limit. The bytes of
/// queued requests wait in the caller's [`TxBuf`].
#[derive(Debug)]
pub struct ControlClient {
    transport: Transport,
    state: ControlState,
    /// BYE was queued: no more requests or keep-alives.
    closing: bool,
    pending: VecDeque<Pending>,
    max_in_flight: usize,
    events: VecDeque<ClientEvent>,
    next_id: u64,
    timeout: Duration,
    /// When the login or a request was last queued.
    last_tx: Instant,
    /// When bytes last arrived (or the client started).
    last_rx: Instant,
    /// A PUBLISH_REPL offer is unanswered or was answered `OK_WAITING`:
    /// the next bytes the server reads must be the payload, so no
    /// keep-alive NOP may go out in between.
    repl_owed: bool,
}

impl ControlClient {
    /// Starts a session: queues the greeting (`EE AA MODE`) and the login
    /// frame. An empty login and password log in anonymously.
    ///
    /// `timeout` is the server's keep-alive timeout: a NOP goes out whenever
    /// nothing was sent for `timeout / 2`, and a reply (or the login
    /// answer) that makes no progress for `timeout` fails the session.
    ///
    /// Fails when the login holds a NUL byte or the frame exceeds
    /// [`MAX_LOGIN_SIZE`], or when TLS refuses the frame.
    pub fn new(
        login: &str,
        password: &[u8],
        tls: Option<TlsSession>,
        timeout: Duration,
        now: Instant,
    ) -> Result<Self, ClientError> {
        if login.as_bytes().contains(&0) {
            return Err(ClientError::NulInLogin);
        }
        let len = login.len() + 1 + password.len();
        check_size(len, MAX_LOGIN_SIZE)?;
        let mut frame = BytesMut::with_capacity(4 + len);
        request::encode_login(&mut frame, login, password);
        let mut transport = Transport::new(SocketKind::Control, tls);
        transport.send(frame.freeze())?;
        Ok(Self {
            transport,
            state: ControlState::AwaitGreeting,
            closing: false,
            pending: VecDeque::new(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            events: VecDeque::new(),
            next_id: 0,
            timeout,
            last_tx: now,
            last_rx: now,
            repl_owed: false,
        })
    }

    /// Sets the bound on requests awaiting a reply (at least 1).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// Requests sent and not answered yet (keep-alives included).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Whether the login has completed and the session has not ended.
    pub fn is_logged_in(&self) -> bool {
        self.state == ControlState::Ready
    }

    /// The buffer the driver reads raw socket bytes into.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.transport.rx
    }

    /// Processes the bytes read into [`read_buf`](Self::read_buf).
    pub fn handle_input(&mut self, now: Instant) -> Result<(), ClientError> {
        if !self.transport.rx.is_empty() {
            self.last_rx = now;
        }
        self.transport.pump()?;
        while self.step()? {}
        if self.transport.peer_closed() {
            self.handle_eof()?;
        }
        Ok(())
    }

    /// The server closed the stream. Before the token arrives this is a
    /// refused login; with replies outstanding it is a lost connection;
    /// otherwise the session ends with [`ClientEvent::Closed`].
    pub fn handle_eof(&mut self) -> Result<(), ClientError> {
        match self.state {
            ControlState::AwaitGreeting => Err(ClientError::GreetingRefused),
            ControlState::AwaitToken => Err(ClientError::LoginRefused),
            ControlState::Closed => Ok(()),
            ControlState::Ready => {
                self.state = ControlState::Closed;
                if !self.pending.is_empty() {
                    return Err(ClientError::ConnectionLost {
                        pending: self.pending.len(),
                    });
                }
                self.events.push_back(ClientEvent::Closed);
                Ok(())
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.reply_deadline(), self.keepalive_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sends a keep-alive NOP when one is due, and fails with
    /// [`ClientError::Timeout`] when the server has been silent for
    /// `timeout` while owing an answer.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.reply_deadline().is_some_and(|at| now >= at) {
            return Err(ClientError::Timeout);
        }
        if self.keepalive_at().is_some_and(|at| now >= at) {
            self.last_tx = now;
            // At the in-flight bound the pending replies keep the server busy;
            // skip this beat rather than exceed the bound.
            if self.pending.len() < self.max_in_flight {
                self.enqueue(op_frame(op::NOP), Waiter::KeepAlive, now)?;
            }
        }
        Ok(())
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Moves every byte ready for the socket into `tx`.
    pub fn poll_transmit(&mut self, tx: &mut TxBuf) {
        self.transport.poll_transmit(tx);
    }

    /// Publishes `payload` to `topic`. The topic must be publishable
    /// (non-empty, no wildcard, no NUL) so the server does not drop the
    /// connection; depth and ACL are left to the server's in-band replies.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        prio: u8,
        now: Instant,
    ) -> Result<RequestId, ClientError> {
        check_nul(topic)?;
        parse_topic(topic.as_bytes(), usize::MAX)?;
        let len = topic.len() + 1 + payload.len();
        check_size(len, MAX_FRAME_BODY)?;
        let mut frame = BytesMut::with_capacity(6 + len);
        request::encode_publish(&mut frame, prio, topic.as_bytes(), payload);
        self.request(frame.freeze(), now)
    }

    /// Subscribes to every filter of `filters` in one bulk SUBSCRIBE.
    pub fn subscribe(&mut self, filters: &[&str], now: Instant) -> Result<RequestId, ClientError> {
        let frame = topics_frame(op::SUBSCRIBE, filters)?;
        self.request(frame, now)
    }

    /// Unsubscribes from every filter of `filters` in one bulk UNSUBSCRIBE.
    pub fn unsubscribe(
        &mut self,
        filters: &[&str],
        now: Instant,
    ) -> Result<RequestId, ClientError> {
        let frame = topics_frame(op::UNSUBSCRIBE, filters)?;
        self.request(frame, now)
    }

    /// Sends a NOP the owner wants answered (a round-trip probe).
    pub fn nop(&mut self, now: Instant) -> Result<RequestId, ClientError> {
        self.request(op_frame(op::NOP), now)
    }

    /// Offers a message to a cluster peer (PUBLISH_REPL, the session's
    /// user must be a replicator there). The reply is `OK_WAITING` (send
    /// the payload with [`repl_payload`](Self::repl_payload) next, before
    /// any other request), `NOT_REQUIRED` (nobody there subscribes),
    /// `ERR_ACCESS` or `ERR`. No keep-alive NOP goes out while the payload
    /// may be owed, since the server would read it as the payload.
    pub fn publish_repl(&mut self, topic: &str, now: Instant) -> Result<RequestId, ClientError> {
        check_nul(topic)?;
        parse_topic(topic.as_bytes(), usize::MAX)?;
        check_size(topic.len(), MAX_FRAME_BODY)?;
        self.check_can_send()?;
        let mut frame = BytesMut::with_capacity(5 + topic.len());
        request::encode_op(
            &mut frame,
            &request::Op::PublishRepl {
                topic: Bytes::copy_from_slice(topic.as_bytes()),
            },
        );
        let id = self.next_request_id();
        self.enqueue(frame.freeze(), Waiter::ReplOffer(id), now)?;
        self.repl_owed = true;
        Ok(id)
    }

    /// Sends the payload of an offer answered `OK_WAITING`: `PRIO
    /// TIMESTAMP LEN payload`, answered `OK` once delivered there.
    /// `timestamp_ns` is the original publish time, ns since the Unix
    /// epoch.
    pub fn repl_payload(
        &mut self,
        prio: u8,
        timestamp_ns: u64,
        payload: &[u8],
        now: Instant,
    ) -> Result<RequestId, ClientError> {
        check_size(payload.len(), MAX_FRAME_BODY)?;
        self.check_can_send()?;
        let mut frame = BytesMut::with_capacity(13 + payload.len());
        request::encode_repl_payload(&mut frame, prio, timestamp_ns, payload);
        let id = self.next_request_id();
        self.enqueue(frame.freeze(), Waiter::Request(id), now)?;
        self.repl_owed = false;
        Ok(id)
    }

    /// Asks whether the server speaks the pipelined replication op (our
    /// extension): `OK` from our nodes to a replicator, `ERR_ACCESS` to
    /// others. A server that does not know the op (the original) closes
    /// the connection instead.
    pub fn repl_probe(&mut self, now: Instant) -> Result<RequestId, ClientError> {
        let mut frame = BytesMut::with_capacity(14);
        request::encode_repl_probe(&mut frame);
        self.request(frame.freeze(), now)
    }

    /// Replicates a message in one pipelined frame (our extension, for
    /// servers whose [`repl_probe`](Self::repl_probe) answered `OK`):
    /// answered `OK` once delivered there, `NOT_REQUIRED` when nobody
    /// there subscribes, `ERR_ACCESS` or `ERR`. Unlike
    /// [`publish_repl`](Self::publish_repl) any number may be in flight.
    /// `timestamp_ns` is the original publish time, ns since the Unix
    /// epoch.
    pub fn repl_pipelined(
        &mut self,
        topic: &str,
        prio: u8,
        timestamp_ns: u64,
        payload: &[u8],
        now: Instant,
    ) -> Result<RequestId, ClientError> {
        check_nul(topic)?;
        parse_topic(topic.as_bytes(), usize::MAX)?;
        let len = topic.len() + 1 + payload.len();
        check_size(len, MAX_FRAME_BODY)?;
        let mut frame = BytesMut::with_capacity(14 + len);
        request::encode_repl_pipelined(&mut frame, prio, timestamp_ns, topic.as_bytes(), payload);
        self.request(frame.freeze(), now)
    }

    /// Ends the session: after the server's OK comes [`ClientEvent::Closed`].
    /// No request is accepted afterwards.
    pub fn bye(&mut self, now: Instant) -> Result<RequestId, ClientError> {
        self.check_can_send()?;
        let id = self.next_request_id();
        self.enqueue(op_frame(op::BYE), Waiter::Bye(id), now)?;
        self.closing = true;
        Ok(id)
    }

    /// Queues an owner's request frame.
    fn request(&mut self, frame: Bytes, now: Instant) -> Result<RequestId, ClientError> {
        self.check_can_send()?;
        let id = self.next_request_id();
        self.enqueue(frame, Waiter::Request(id), now)?;
        Ok(id)
    }

    /// Refuses requests after BYE or close, or beyond the in-flight bound.
    fn check_can_send(&self) -> Result<(), ClientError> {
        if self.closing || self.state == ControlState::Closed {
            return Err(ClientError::Closed);
        }
        if self.pending.len() >= self.max_in_flight {
            return Err(ClientError::TooManyInFlight {
                max: self.max_in_flight,
            });
        }
        Ok(())
    }

    fn next_request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Sends a frame and records who waits for its reply.
    fn enqueue(&mut self, frame: Bytes, waiter: Waiter, now: Instant) -> Result<(), ClientError> {
        self.transport.send(frame)?;
        self.pending.push_back(Pending {
            waiter,
            sent_at: now,
        });
        self.last_tx = now;
        Ok(())
    }

    /// Decodes one thing from the input; false when more bytes are needed.
    fn step(&mut self) -> Result<bool, ClientError> {
        let input = self.transport.input();
        match self.state {
            ControlState::AwaitGreeting => {
                if push::decode_greeting_reply(input, SocketKind::Control)?.is_none() {
                    return Ok(false);
                }
                self.state = ControlState::AwaitToken;
            }
            ControlState::AwaitToken => {
                let Some(token) = push::decode_token(input) else {
                    return Ok(false);
                };
                self.state = ControlState::Ready;
                self.events.push_back(ClientEvent::LoggedIn { token });
            }
            ControlState::Ready => {
                let Some(code) = push::decode_status(input) else {
                    return Ok(false);
                };
                self.on_reply(code)?;
            }
            ControlState::Closed => {
                // Nothing is expected after the end; do not let it pile up.
                input.clear();
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Matches a status byte to the oldest pending request.
    fn on_reply(&mut self, code: u8) -> Result<(), ClientError> {
        if !is_reply_status(code) {
            return Err(ClientError::UnexpectedStatus(code));
        }
        let Some(pending) = self.pending.pop_front() else {
            return Err(ClientError::UnexpectedStatus(code));
        };
        match pending.waiter {
            Waiter::KeepAlive => {}
            Waiter::ReplOffer(id) => {
                self.repl_owed = code == status::OK_WAITING;
                self.events
                    .push_back(ClientEvent::Reply { id, status: code });
            }
            Waiter::Request(id) => self
                .events
                .push_back(ClientEvent::Reply { id, status: code }),
            Waiter::Bye(id) => {
                self.events
                    .push_back(ClientEvent::Reply { id, status: code });
                if code == status::OK {
                    self.state = ControlState::Closed;
                    self.events.push_back(ClientEvent::Closed);
                }
            }
        }
        Ok(())
    }

    /// When the server's silence becomes a timeout: while logging in, or
    /// while a reply is owed, `timeout` after the later of the oldest
    /// request and the last bytes received.
    fn reply_deadline(&self) -> Option<Instant> {
        let since = match self.state {
            ControlState::Closed => return None,
            ControlState::AwaitGreeting | ControlState::AwaitToken => self.last_rx,
            ControlState::Ready => self.pending.front()?.sent_at.max(self.last_rx),
        };
        since.checked_add(self.timeout)
    }

    /// When the next keep-alive NOP is due: only once logged in (the server
    /// reads no operation before it sends the token) and never after BYE.
    fn keepalive_at(&self) -> Option<Instant> {
        if self.state != ControlState::Ready || self.closing || self.repl_owed {
            return None;
        }
        self.last_tx.checked_add(self.timeout / 2)
    }
}

/// Where a data connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// Waiting for `EE AB 01 00`.
    AwaitGreeting,
    /// Hello sent; waiting for OK.
    AwaitStatus,
    /// Messages flow.
    Streaming,
    /// The server closed the stream; buffered messages may remain.
    Closed,
}

/// The data socket of a PSRT client: hello, then a stream of messages.
///
/// # Driving it
///
/// * Construct with [`DataClient::new`] (the greeting is queued); the hello
///   is queued once the server's greeting reply arrives.
/// * Socket readable: read into [`read_buf`](Self::read_buf), call
///   [`handle_input`](Self::handle_input) (end of stream:
///   [`handle_eof`](Self::handle_eof)), then drain
///   [`poll_message`](Self::poll_message) and
///   [`poll_transmit`](Self::poll_transmit).
/// * Sleep until [`poll_timeout`](Self::poll_timeout), then call
///   [`handle_timeout`](Self::handle_timeout).
///
/// Messages are decoded lazily by `poll_message`, straight out of the read
/// buffer without a copy, so the client holds no queue beyond the bytes the
/// driver read. A malformed frame makes `poll_message` return `None`; the
/// next `handle_input` or `handle_timeout` (due at once) reports it.
#[derive(Debug)]
pub struct DataClient {
    transport: Transport,
    state: DataState,
    token: Token,
    timeout: Duration,
    max_frame: usize,
    last_rx: Instant,
    /// A malformed frame met by `poll_message`, reported by the next call.
    broken: Option<WireError>,
}

impl DataClient {
    /// Starts a data socket for the session of `token`, queuing the greeting
    /// (`EE AB MODE`). `timeout` is both the silence limit and, in whole
    /// seconds clamped to 1..=255, the value sent in the hello (the server
    /// beacons every half of it). Pushed frames whose `topic 00 payload`
    /// exceeds `max_frame` are refused.
    pub fn new(
        token: Token,
        timeout: Duration,
        tls: Option<TlsSession>,
        max_frame: usize,
        now: Instant,
    ) -> Self {
        Self {
            transport: Transport::new(SocketKind::Data, tls),
            state: DataState::AwaitGreeting,
            token,
            timeout,
            max_frame,
            last_rx: now,
            broken: None,
        }
    }

    /// Whether the server accepted the hello and messages may flow.
    pub fn is_streaming(&self) -> bool {
        self.state == DataState::Streaming
    }

    /// Whether the server ended the stream.
    pub fn is_closed(&self) -> bool {
        self.state == DataState::Closed
    }

    /// The buffer the driver reads raw socket bytes into.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.transport.rx
    }

    /// Processes the bytes read into [`read_buf`](Self::read_buf).
    pub fn handle_input(&mut self, now: Instant) -> Result<(), ClientError> {
        self.check_broken()?;
        if !self.transport.rx.is_empty() {
            self.last_rx = now;
        }
        self.transport.pump()?;
        while self.step()? {}
        if self.transport.peer_closed() {
            self.handle_eof()?;
        }
        Ok(())
    }

    /// The server closed the stream: a refusal before the hello's OK, the
    /// normal end afterwards (the control session ended, or this client was
    /// too slow). Messages already buffered can still be polled.
    pub fn handle_eof(&mut self) -> Result<(), ClientError> {
        match self.state {
            DataState::AwaitGreeting => Err(ClientError::GreetingRefused),
            DataState::AwaitStatus => Err(ClientError::DataRefused),
            DataState::Streaming | DataState::Closed => {
                self.state = DataState::Closed;
                Ok(())
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.broken.is_some() {
            return Some(self.last_rx);
        }
        if self.state == DataState::Closed {
            return None;
        }
        self.last_rx.checked_add(self.timeout)
    }

    /// Fails with [`ClientError::Timeout`] when the server has been silent
    /// for longer than `timeout` (it beacons every half of it).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ClientError> {
        self.check_broken()?;
        let due = self.poll_timeout().is_some_and(|at| now >= at);
        if due {
            return Err(ClientError::Timeout);
        }
        Ok(())
    }

    /// The next pushed message; beacons are swallowed.
    pub fn poll_message(&mut self) -> Option<Message> {
        let flowing = matches!(self.state, DataState::Streaming | DataState::Closed);
        if !flowing || self.broken.is_some() {
            return None;
        }
        loop {
            match push::decode_push(self.transport.input(), self.max_frame) {
                Ok(Some(Push::Nop)) => {}
                Ok(Some(Push::Message {
                    prio,
                    topic,
                    payload,
                })) => {
                    return Some(Message {
                        prio,
                        topic,
                        payload,
                    });
                }
                Ok(None) => return None,
                Err(e) => {
                    self.broken = Some(e);
                    return None;
                }
            }
        }
    }

    /// Moves every byte ready for the socket into `tx`.
    pub fn poll_transmit(&mut self, tx: &mut TxBuf) {
        self.transport.poll_transmit(tx);
    }

    /// Reports a malformed frame met by `poll_message`.
    fn check_broken(&self) -> Result<(), ClientError> {
        match &self.broken {
            Some(e) => Err(e.clone().into()),
            None => Ok(()),
        }
    }

    /// Decodes one setup step; false when more bytes are needed or the
    /// setup is over (messages are left for `poll_message`).
    fn step(&mut self) -> Result<bool, ClientError> {
        let input = self.transport.input();
        match self.state {
            DataState::AwaitGreeting => {
                if push::decode_greeting_reply(input, SocketKind::Data)?.is_none() {
                    return Ok(false);
                }
                self.send_hello()?;
                self.state = DataState::AwaitStatus;
                Ok(true)
            }
            DataState::AwaitStatus => {
                let Some(code) = push::decode_status(input) else {
                    return Ok(false);
                };
                match code {
                    status::OK => self.state = DataState::Streaming,
                    status::ERR => return Err(ClientError::DataRefused),
                    other => return Err(ClientError::UnexpectedStatus(other)),
                }
                Ok(true)
            }
            DataState::Streaming | DataState::Closed => Ok(false),
        }
    }

    /// Queues the token and the timeout in whole seconds.
    fn send_hello(&mut self) -> Result<(), TlsError> {
        let hello = DataHello {
            token: self.token,
            timeout_secs: timeout_secs(self.timeout),
        };
        let mut frame = BytesMut::with_capacity(33);
        request::encode_data_hello(&mut frame, &hello);
        self.transport.send(frame.freeze())
    }
}

/// A timeout in whole seconds for the data hello, clamped to 1..=255.
fn timeout_secs(timeout: Duration) -> u8 {
    u8::try_from(timeout.as_secs().clamp(1, 255)).unwrap_or(u8::MAX)
}

/// Whether `code` is a status a server may answer a request with.
fn is_reply_status(code: u8) -> bool {
    matches!(
        code,
        status::OK | status::OK_WAITING | status::NOT_REQUIRED | status::ERR_ACCESS | status::ERR
    )
}

/// A one-byte operation frame.
fn op_frame(code: u8) -> Bytes {
    Bytes::copy_from_slice(&[code])
}

/// Encodes a bulk SUBSCRIBE/UNSUBSCRIBE, refusing NUL bytes in filters.
fn topics_frame(code: u8, filters: &[&str]) -> Result<Bytes, ClientError> {
    for filter in filters {
        check_nul(filter)?;
    }
    let len = filters.iter().map(|f| f.len()).sum::<usize>() + filters.len().saturating_sub(1);
    check_size(len, MAX_FRAME_BODY)?;
    let mut frame = BytesMut::with_capacity(5 + len);
    request::encode_topics(&mut frame, code, filters.iter().copied());
    Ok(frame.freeze())
}

fn check_nul(topic: &str) -> Result<(), ClientError> {
    if topic.as_bytes().contains(&0) {
        return Err(ClientError::NulInTopic);
    }
    Ok(())
}

fn check_size(len: usize, max: usize) -> Result<(), ClientError> {
    if len > max {
        return Err(ClientError::TooLarge { len, max });
    }
    Ok(())
}
