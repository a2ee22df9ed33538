//! The control-socket task: drives a [`ControlClient`] over one stream,
//! takes requests from the [`Client`](super::Client) handles and answers
//! each with its reply status.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use psrt_proto::TxBuf;
use psrt_proto::client::{ClientEvent, ControlClient, RequestId};
use psrt_proto::wire::Token;

use super::io::{self, ReadOutcome, Stream};
use super::{ClientError, PRIORITY};

/// Bytes of requests waiting to be written before we stop taking more: a
/// slow server back-pressures the callers through the command channel.
const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;

/// Where the answer to one request goes.
pub(super) type ReplyTx = flume::Sender<Result<u8, ClientError>>;

/// Where the login outcome goes, once.
pub(super) type LoginTx = flume::Sender<Result<Token, ClientError>>;

/// A request from a [`Client`](super::Client) handle.
#[derive(Debug)]
pub(super) enum Command {
    /// PUBLISH `payload` to `topic`.
    Publish {
        topic: String,
        payload: Bytes,
        reply: ReplyTx,
    },
    /// One bulk SUBSCRIBE.
    Subscribe {
        filters: Vec<String>,
        reply: ReplyTx,
    },
    /// One bulk UNSUBSCRIBE.
    Unsubscribe {
        filters: Vec<String>,
        reply: ReplyTx,
    },
    /// BYE: the session ends after the server's OK.
    Bye { reply: ReplyTx },
}

/// Everything the control task owns besides the socket.
pub(super) struct ControlTask {
    control: ControlClient,
    commands: flume::Receiver<Command>,
    /// Receives the token (or the reason the login failed) once.
    login: Option<LoginTx>,
    /// Requests awaiting replies, oldest first (replies come in order).
    waiters: VecDeque<(RequestId, ReplyTx)>,
    max_in_flight: usize,
    /// Set once with why the session ended, for later callers.
    ended: Arc<OnceLock<String>>,
    /// The command channel closed or BYE was sent: take no more commands.
    closing: bool,
    /// The server ended the session.
    closed: bool,
}

impl ControlTask {
    /// A task for `control`; `max_in_flight` bounds unanswered requests.
    pub(super) fn new(
        control: ControlClient,
        commands: flume::Receiver<Command>,
        login: LoginTx,
        max_in_flight: usize,
        ended: Arc<OnceLock<String>>,
    ) -> Self {
        Self {
            control,
            commands,
            login: Some(login),
            waiters: VecDeque::new(),
            max_in_flight: max_in_flight.max(1),
            ended,
            closing: false,
            closed: false,
        }
    }

    /// Runs until the session ends, then fails every unanswered request
    /// with the reason.
    pub(super) async fn run<S: Stream>(mut self, stream: S) {
        let reason = match self.drive(stream).await {
            Ok(()) => String::from("the session ended"),
            Err(err) => {
                let reason = err.to_string();
                match self.login.take() {
                    Some(login) => {
                        let _ = login.send(Err(err));
                    }
                    None => tracing::warn!(%reason, "PSRT control connection failed"),
                }
                reason
            }
        };
        let _ = self.ended.set(reason.clone());
        for (_, reply) in self.waiters.drain(..) {
            let _ = reply.send(Err(ClientError::Disconnected(reason.clone())));
        }
        if let Some(login) = self.login.take() {
            let _ = login.send(Err(ClientError::Disconnected(reason)));
        }
    }

    /// The event loop: socket reads and writes, commands, timers.
    async fn drive<S: Stream>(&mut self, stream: S) -> Result<(), ClientError> {
        let (mut reader, mut writer) = io::split(stream);
        let mut tx = TxBuf::new();
        let mut read_open = true;
        loop {
            self.control.poll_transmit(&mut tx);
            if self.closed && tx.is_empty() {
                writer.shutdown().await;
                return Ok(());
            }
            writer.start(&tx);
            let timeout = self.control.poll_timeout();
            let can_take = !self.closing
                && self.waiters.len() < self.max_in_flight
                && tx.len() < MAX_PENDING_WRITE;
            monoio::select! {
                biased;
                read = reader.read_into(self.control.read_buf()), if read_open => match read {
                    ReadOutcome::Data => self.control.handle_input(Instant::now())?,
                    ReadOutcome::Eof => {
                        read_open = false;
                        self.control.handle_eof()?;
                    }
                },
                written = writer.finish(), if writer.is_busy() => {
                    tx.advance(written?);
                }
                command = self.commands.recv_async(), if can_take => match command {
                    Ok(command) => self.on_command(command),
                    Err(_) => self.on_handles_dropped(),
                },
                () = io::sleep_until(timeout), if timeout.is_some() => {
                    self.control.handle_timeout(Instant::now())?;
                }
            }
            self.drain_events();
        }
    }

    /// Queues a request; a refusal by the state machine (invalid topic,
    /// session closing) is answered at once.
    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        let (issued, reply) = match command {
            Command::Publish {
                topic,
                payload,
                reply,
            } => (self.control.publish(&topic, &payload, PRIORITY, now), reply),
            Command::Subscribe { filters, reply } => {
                (self.control.subscribe(&as_strs(&filters), now), reply)
            }
            Command::Unsubscribe { filters, reply } => {
                (self.control.unsubscribe(&as_strs(&filters), now), reply)
            }
            Command::Bye { reply } => {
                self.closing = true;
                (self.control.bye(now), reply)
            }
        };
        match issued {
            Ok(id) => self.waiters.push_back((id, reply)),
            Err(err) => {
                let _ = reply.send(Err(err.into()));
            }
        }
    }

    /// Every handle is gone: say BYE so the server ends the session (and
    /// its data socket) cleanly.
    fn on_handles_dropped(&mut self) {
        self.closing = true;
        if let Err(err) = self.control.bye(Instant::now()) {
            tracing::debug!(%err, "BYE not sent");
            self.closed = true;
        }
    }

    /// Routes the state machine's events to the login and request waiters.
    fn drain_events(&mut self) {
        while let Some(event) = self.control.poll_event() {
            match event {
                ClientEvent::LoggedIn { token } => {
                    if let Some(login) = self.login.take() {
                        let _ = login.send(Ok(token));
                    }
                }
                ClientEvent::Reply { id, status } => self.on_reply(id, status),
                ClientEvent::Closed => self.closed = true,
            }
        }
    }

    /// Answers the waiter of `id`; a BYE sent for dropped handles has none.
    fn on_reply(&mut self, id: RequestId, status: u8) {
        if self.waiters.front().is_some_and(|(first, _)| *first == id)
            && let Some((_, reply)) = self.waiters.pop_front()
        {
            let _ = reply.send(Ok(status));
        }
    }
}

/// Borrows owned filters as the `&[&str]` the state machine takes.
fn as_strs(filters: &[String]) -> Vec<&str> {
    filters.iter().map(String::as_str).collect()
}
