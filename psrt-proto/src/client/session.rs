//! The request bookkeeping of an async client's control task, shared by
//! every runtime: requests from the handles go into the [`ControlClient`],
//! and each reply goes back to the handle that asked, in order.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::{ClientEvent, ControlClient, MAX_PENDING_WRITE, PRIORITY, RequestId};
use super::{SessionError, status_result};
use crate::wire::Token;

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

/// What a [`ControlSession`] tells its driver.
#[derive(Debug)]
pub enum SessionOutput<R> {
    /// The login succeeded; the token opens the data socket.
    LoggedIn(Token),
    /// A request was answered: send `result` through `reply`.
    Answered {
        /// The reply handle given with the request.
        reply: R,
        /// The outcome of the request.
        result: Result<(), SessionError>,
    },
}

/// A [`ControlClient`] plus the reply handles (`R`: a one-shot sender of
/// whichever runtime) of the requests awaiting answers.
///
/// Driver loop: write what `control().poll_transmit` queues; stop once
/// [`is_finished`](Self::is_finished); take a request from the handles
/// only while [`wants_requests`](Self::wants_requests) and pass it to
/// [`handle_request`](Self::handle_request) (or call
/// [`handle_handles_dropped`](Self::handle_handles_dropped) when the
/// request channel closed); feed socket input and timeouts to
/// [`control`](Self::control); after every step drain
/// [`poll_output`](Self::poll_output). When the task ends, fail every
/// handle left in [`drain_waiters`](Self::drain_waiters).
#[derive(Debug)]
pub struct ControlSession<R> {
    control: ControlClient,
    /// Requests awaiting replies, oldest first (replies come in order).
    waiters: VecDeque<(RequestId, R)>,
    max_in_flight: usize,
    /// The handles are gone or BYE was sent: take no more requests.
    closing: bool,
    /// The server ended the session.
    closed: bool,
}

impl<R> ControlSession<R> {
    /// Bookkeeping for `control`; `max_in_flight` (at least 1) bounds the
    /// requests awaiting replies.
    pub fn new(control: ControlClient, max_in_flight: usize) -> Self {
        Self {
            control,
            waiters: VecDeque::new(),
            max_in_flight: max_in_flight.max(1),
            closing: false,
            closed: false,
        }
    }

    /// The state machine, for socket input, timeouts and transmits.
    pub fn control(&mut self) -> &mut ControlClient {
        &mut self.control
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

    /// Issues `request`. A refusal by the state machine (invalid topic,
    /// session closing) comes back at once, with its reply handle.
    #[must_use = "a refused request must be answered through its handle"]
    pub fn handle_request(
        &mut self,
        request: Request,
        reply: R,
        now: Instant,
    ) -> Option<(R, SessionError)> {
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
            Ok(id) => {
                self.waiters.push_back((id, reply));
                None
            }
            Err(err) => Some((reply, err.into())),
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

    /// The next login or answer for the driver to deliver.
    pub fn poll_output(&mut self) -> Option<SessionOutput<R>> {
        while let Some(event) = self.control.poll_event() {
            match event {
                ClientEvent::LoggedIn { token } => return Some(SessionOutput::LoggedIn(token)),
                ClientEvent::Reply { id, status } => {
                    if let Some(reply) = self.take_waiter(id) {
                        let result = status_result(status);
                        return Some(SessionOutput::Answered { reply, result });
                    }
                }
                ClientEvent::Closed => self.closed = true,
            }
        }
        None
    }

    /// The reply handles of every unanswered request, to fail them when
    /// the session ends.
    pub fn drain_waiters(&mut self) -> impl Iterator<Item = R> + '_ {
        self.waiters.drain(..).map(|(_, reply)| reply)
    }

    /// The waiter of `id`; keep-alive NOPs and a BYE sent for dropped
    /// handles have none.
    fn take_waiter(&mut self, id: RequestId) -> Option<R> {
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
