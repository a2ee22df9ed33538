//! The request bookkeeping of an async client's control task, shared by
//! every runtime: requests from the handles go into the [`ControlClient`],
//! each reply goes back to the handle that asked, in order, and when the
//! session ends every caller still waiting learns why.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{ClientEvent, ControlClient, MAX_PENDING_WRITE, PRIORITY, RequestId};
use super::{ReadOutcome, SessionEnd, SessionError, Waiters, status_result};
use crate::txbuf::TxBuf;

/// A request from a client handle, before the state machine numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// PUBLISH `payload` to `topic`.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Bytes,
    },
    /// One bulk SUBSCRIBE.
    Subscribe(Vec<String>),
    /// One bulk UNSUBSCRIBE.
    Unsubscribe(Vec<String>),
    /// BYE: the session ends after the server's OK.
    Bye,
}

impl Request {
    /// A publish, from the borrowed arguments of a handle's method.
    pub fn publish(topic: &str, payload: impl Into<Bytes>) -> Self {
        Request::Publish {
            topic: topic.to_owned(),
            payload: payload.into(),
        }
    }

    /// A bulk subscribe, from the borrowed arguments of a handle's method.
    pub fn subscribe(filters: &[&str]) -> Self {
        Request::Subscribe(owned(filters))
    }

    /// A bulk unsubscribe, from the borrowed arguments of a handle's method.
    pub fn unsubscribe(filters: &[&str]) -> Self {
        Request::Unsubscribe(owned(filters))
    }
}

/// A [`ControlClient`] plus the callers waiting on it: the login waiter
/// and the reply handles of the requests awaiting answers, answered
/// through `W`.
///
/// Driver loop: write what [`poll_transmit`](Self::poll_transmit) queues;
/// stop once [`is_finished`](Self::is_finished) and the queue is written;
/// read only while [`wants_input`](Self::wants_input) and pass what the
/// read brought to [`handle_read`](Self::handle_read); take a request from
/// the handles only while [`wants_requests`](Self::wants_requests) and pass
/// it to [`handle_request`](Self::handle_request) (or call
/// [`handle_handles_dropped`](Self::handle_handles_dropped) when the
/// request channel closed); call [`handle_timeout`](Self::handle_timeout)
/// at [`poll_timeout`](Self::poll_timeout). When the loop ends, pass its
/// outcome to [`end`](Self::end).
#[derive(Debug)]
pub struct ControlSession<W: Waiters> {
    control: ControlClient,
    /// Receives the token (or why the login failed), once.
    login: Option<W::Login>,
    /// Requests awaiting replies, oldest first (replies come in order).
    waiters: VecDeque<(RequestId, W::Reply)>,
    max_in_flight: usize,
    /// Where the handles read why the session ended.
    ended: SessionEnd,
    /// The handles are gone or BYE was sent: take no more requests.
    closing: bool,
    /// The server ended the session.
    closed: bool,
    /// The socket's read side ended.
    eof: bool,
}

impl<W: Waiters> ControlSession<W> {
    /// Bookkeeping for `control`: `login` learns the login's outcome,
    /// `max_in_flight` (at least 1) bounds the requests awaiting replies
    /// and `ended` receives the reason the session ended.
    pub fn new(
        control: ControlClient,
        login: W::Login,
        max_in_flight: usize,
        ended: SessionEnd,
    ) -> Self {
        Self {
            control,
            login: Some(login),
            waiters: VecDeque::new(),
            max_in_flight: max_in_flight.max(1),
            ended,
            closing: false,
            closed: false,
            eof: false,
        }
    }

    /// The state machine, for what the session does not wrap (keep-alive
    /// NOPs in tests, inspection).
    pub fn control(&mut self) -> &mut ControlClient {
        &mut self.control
    }

    /// The buffer socket reads append to.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.control.read_buf()
    }

    /// Where the handles read why the session ended (set by
    /// [`end`](Self::end)).
    pub fn ended(&self) -> &SessionEnd {
        &self.ended
    }

    /// Whether to keep reading: not after the read side ended.
    pub fn wants_input(&self) -> bool {
        !self.eof
    }

    /// Whether to take another request, given `pending_write` bytes not
    /// yet written: not after BYE, and not past the in-flight or
    /// [`MAX_PENDING_WRITE`] bounds (that back-pressures the callers).
    pub fn wants_requests(&self, pending_write: usize) -> bool {
        !self.closing
            && self.waiters.len() < self.max_in_flight
            && pending_write < MAX_PENDING_WRITE
    }

    /// Whether the server ended the session; the driver flushes what is
    /// queued, half-closes the socket and stops.
    pub fn is_finished(&self) -> bool {
        self.closed
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.control.poll_timeout()
    }

    /// Queues what the state machine has to send.
    pub fn poll_transmit(&mut self, tx: &mut TxBuf) {
        self.control.poll_transmit(tx);
    }

    /// Takes what a read brought: bytes in [`read_buf`](Self::read_buf),
    /// or the end of the stream. Answers the waiters it settles.
    pub fn handle_read(&mut self, read: ReadOutcome, now: Instant) -> Result<(), SessionError> {
        match read {
            ReadOutcome::Data => self.control.handle_input(now)?,
            ReadOutcome::Eof => {
                self.eof = true;
                self.control.handle_eof()?;
            }
        }
        self.deliver();
        Ok(())
    }

    /// The deadline of [`poll_timeout`](Self::poll_timeout) passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        self.control.handle_timeout(now)?;
        self.deliver();
        Ok(())
    }

    /// Issues `request`; a refusal by the state machine (invalid topic,
    /// session closing) is answered through `reply` at once.
    pub fn handle_request(&mut self, request: Request, reply: W::Reply, now: Instant) {
        let issued = match request {
            Request::Publish { topic, payload } => {
                self.control.publish(&topic, &payload, PRIORITY, now)
            }
            Request::Subscribe(filters) => self.control.subscribe(&as_strs(&filters), now),
            Request::Unsubscribe(filters) => self.control.unsubscribe(&as_strs(&filters), now),
            Request::Bye => {
                self.closing = true;
                self.control.bye(now)
            }
        };
        match issued {
            Ok(id) => self.waiters.push_back((id, reply)),
            Err(err) => W::answer(reply, Err(err.into())),
        }
    }

    /// Every handle is gone: say BYE so the server ends the session (and
    /// its data socket) cleanly; when BYE cannot go out, finish at once.
    pub fn handle_handles_dropped(&mut self, now: Instant) {
        self.closing = true;
        if self.control.bye(now).is_err() {
            self.closed = true;
        }
    }

    /// Ends the session with the outcome of the driver's loop: records the
    /// reason for the handles and fails every caller still waiting with
    /// it. Returns the reason of a failure no waiter was told (the login
    /// had succeeded), for the driver to log.
    pub fn end(&mut self, outcome: Result<(), SessionError>) -> Option<String> {
        let (reason, untold) = match outcome {
            Ok(()) => (String::from("the session ended"), None),
            Err(err) => {
                let reason = err.to_string();
                match self.login.take() {
                    Some(login) => {
                        W::login(login, Err(err));
                        (reason, None)
                    }
                    None => (reason.clone(), Some(reason)),
                }
            }
        };
        self.ended.set(reason);
        for (_, reply) in self.waiters.drain(..) {
            W::answer(reply, Err(self.ended.error()));
        }
        if let Some(login) = self.login.take() {
            W::login(login, Err(self.ended.error()));
        }
        untold
    }

    /// Hands every login and answer the state machine produced to its
    /// waiter.
    fn deliver(&mut self) {
        while let Some(event) = self.control.poll_event() {
            match event {
                ClientEvent::LoggedIn { token } => {
                    if let Some(login) = self.login.take() {
                        W::login(login, Ok(token));
                    }
                }
                ClientEvent::Reply { id, status } => {
                    if let Some(reply) = self.take_waiter(id) {
                        W::answer(reply, status_result(status));
                    }
                }
                ClientEvent::Closed => self.closed = true,
            }
        }
    }

    /// The waiter of `id`; keep-alive NOPs and a BYE sent for dropped
    /// handles have none.
    fn take_waiter(&mut self, id: RequestId) -> Option<W::Reply> {
        if self.waiters.front().is_some_and(|(first, _)| *first == id) {
            return self.waiters.pop_front().map(|(_, reply)| reply);
        }
        None
    }
}

/// Borrows owned filters as the `&[&str]` the state machine takes.
fn as_strs(filters: &[String]) -> Vec<&str> {
    filters.iter().map(String::as_str).collect()
}

/// Owns borrowed filters for a [`Request`].
fn owned(filters: &[&str]) -> Vec<String> {
    filters.iter().map(|f| (*f).to_owned()).collect()
}
