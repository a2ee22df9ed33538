//! The data task's side of an async client, shared by every runtime: a
//! [`DataClient`] plus the caller waiting to learn whether the server
//! accepted the data socket.

use std::time::Instant;

use bytes::BytesMut;

use super::{DataClient, Message, ReadOutcome, SessionError, Waiters};
use crate::txbuf::TxBuf;

/// A [`DataClient`] and its readiness waiter.
///
/// Driver loop: write what [`poll_transmit`](Self::poll_transmit) queues
/// (which also tells the waiter once the server accepted the socket);
/// hand every [`poll_message`](Self::poll_message) to the application,
/// waiting while its channel is full; stop once
/// [`is_closed`](Self::is_closed); pass reads to
/// [`handle_read`](Self::handle_read) and call
/// [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout). When the loop ends, pass its
/// outcome to [`end`](Self::end).
#[derive(Debug)]
pub struct DataSession<W: Waiters> {
    data: DataClient,
    /// Learns whether the server accepted the hello, once.
    ready: Option<W::Reply>,
}

impl<W: Waiters> DataSession<W> {
    /// A session for `data` whose acceptance `ready` learns.
    pub fn new(data: DataClient, ready: W::Reply) -> Self {
        Self {
            data,
            ready: Some(ready),
        }
    }

    /// The buffer socket reads append to.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.data.read_buf()
    }

    /// Whether the stream ended cleanly; the driver stops.
    pub fn is_closed(&self) -> bool {
        self.data.is_closed()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.data.poll_timeout()
    }

    /// Queues what the state machine has to send, and tells the waiter
    /// once the server accepted the socket.
    pub fn poll_transmit(&mut self, tx: &mut TxBuf) {
        self.data.poll_transmit(tx);
        if self.data.is_streaming()
            && let Some(ready) = self.ready.take()
        {
            W::answer(ready, Ok(()));
        }
    }

    /// The next pushed message.
    pub fn poll_message(&mut self) -> Option<Message> {
        self.data.poll_message()
    }

    /// Takes what a read brought: bytes in [`read_buf`](Self::read_buf),
    /// or the end of the stream.
    pub fn handle_read(&mut self, read: ReadOutcome, now: Instant) -> Result<(), SessionError> {
        match read {
            ReadOutcome::Data => self.data.handle_input(now)?,
            ReadOutcome::Eof => self.data.handle_eof()?,
        }
        Ok(())
    }

    /// The deadline of [`poll_timeout`](Self::poll_timeout) passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        Ok(self.data.handle_timeout(now)?)
    }

    /// Ends the session with the outcome of the driver's loop: a failure
    /// goes to the waiter if it still waits, else it is returned for the
    /// driver to log.
    pub fn end(&mut self, outcome: Result<(), SessionError>) -> Option<SessionError> {
        let err = outcome.err()?;
        match self.ready.take() {
            Some(ready) => {
                W::answer(ready, Err(err));
                None
            }
            None => Some(err),
        }
    }
}
