//! The control-socket task: drives a [`ControlSession`] over one stream,
//! takes requests from the [`Client`](super::Client) handles and answers
//! each with the outcome.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{ControlClient, ControlSession, Request, SessionOutput};
use psrt_proto::wire::Token;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;

use super::ClientError;
use super::io::{ReadOutcome, Stream, sleep_until};

/// Where the answer to one request goes (a one-slot channel).
pub(super) type ReplyTx = Sender<Result<(), ClientError>>;

/// A request from a [`Client`](super::Client) handle, with its reply.
pub(super) type Command = (Request, ReplyTx);

/// Where the login's token (or the reason it failed) goes, once.
pub(super) type LoginTx = Sender<Result<Token, ClientError>>;

/// What woke the control task.
enum Event {
    Read(ReadOutcome),
    Wrote(std::io::Result<usize>),
    Command(Option<Command>),
    Timeout,
}

/// Everything the control task owns besides the socket.
pub(super) struct ControlTask {
    session: ControlSession<ReplyTx>,
    commands: Receiver<Command>,
    login: Option<LoginTx>,
    /// Set once with why the session ended, for later callers.
    ended: Arc<OnceLock<String>>,
}

impl ControlTask {
    /// A task for `control`; `max_in_flight` bounds unanswered requests.
    pub(super) fn new(
        control: ControlClient,
        commands: Receiver<Command>,
        login: LoginTx,
        max_in_flight: usize,
        ended: Arc<OnceLock<String>>,
    ) -> Self {
        Self {
            session: ControlSession::new(control, max_in_flight),
            commands,
            login: Some(login),
            ended,
        }
    }

    /// Runs until the session ends, then fails every unanswered request
    /// with the reason.
    pub(super) async fn run(mut self, stream: Stream) {
        let reason = match self.drive(&stream).await {
            Ok(()) => String::from("the session ended"),
            Err(err) => {
                let reason = err.to_string();
                match self.login.take() {
                    Some(login) => {
                        let _ = login.try_send(Err(err));
                    }
                    None => tracing::warn!(%reason, "PSRT control connection failed"),
                }
                reason
            }
        };
        let _ = self.ended.set(reason.clone());
        // Closing first: a handle racing with the end fails at once
        // instead of queuing a request nobody will read.
        self.commands.close();
        for reply in self.session.drain_waiters() {
            let _ = reply.try_send(Err(ClientError::Disconnected(reason.clone())));
        }
        while let Ok((_, reply)) = self.commands.try_recv() {
            let _ = reply.try_send(Err(ClientError::Disconnected(reason.clone())));
        }
        if let Some(login) = self.login.take() {
            let _ = login.try_send(Err(ClientError::Disconnected(reason)));
        }
    }

    /// The event loop: socket reads and writes, commands, timers.
    async fn drive(&mut self, stream: &Stream) -> Result<(), ClientError> {
        let mut tx = TxBuf::new();
        let mut read_open = true;
        loop {
            self.session.control().poll_transmit(&mut tx);
            if self.session.is_finished() && tx.is_empty() {
                stream.shutdown();
                return Ok(());
            }
            let event = self.next_event(stream, &tx, read_open).await;
            match event {
                Event::Read(ReadOutcome::Data) => {
                    self.session.control().handle_input(Instant::now())?;
                }
                Event::Read(ReadOutcome::Eof) => {
                    read_open = false;
                    self.session.control().handle_eof()?;
                }
                Event::Wrote(written) => tx.advance(written?),
                Event::Command(Some((request, reply))) => self.on_request(request, reply),
                Event::Command(None) => self.session.handle_handles_dropped(Instant::now()),
                Event::Timeout => self.session.control().handle_timeout(Instant::now())?,
            }
            self.deliver();
        }
    }

    /// Waits for the first of: input, a finished write, a request (while
    /// the session takes them), the state machine's deadline. Earlier
    /// sources win ties.
    async fn next_event(&mut self, stream: &Stream, tx: &TxBuf, read_open: bool) -> Event {
        let timeout = self.session.control().poll_timeout();
        let can_take = self.session.wants_requests(tx.len());
        let commands = &self.commands;
        let read_buf = self.session.control().read_buf();
        let read = async {
            if !read_open {
                return std::future::pending().await;
            }
            Event::Read(stream.read(read_buf).await)
        };
        let write = async {
            if tx.is_empty() {
                return std::future::pending().await;
            }
            Event::Wrote(stream.write(tx).await)
        };
        let command = async {
            if !can_take {
                return std::future::pending().await;
            }
            Event::Command(commands.recv().await.ok())
        };
        let timer = async {
            sleep_until(timeout).await;
            Event::Timeout
        };
        read.or(write).or(command).or(timer).await
    }

    /// Issues a request; a refusal is answered at once.
    fn on_request(&mut self, request: Request, reply: ReplyTx) {
        if let Some((reply, err)) = self.session.handle_request(request, reply, Instant::now()) {
            let _ = reply.try_send(Err(err));
        }
    }

    /// Routes the session's outputs to the login and request waiters.
    fn deliver(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                SessionOutput::LoggedIn(token) => {
                    if let Some(login) = self.login.take() {
                        let _ = login.try_send(Ok(token));
                    }
                }
                SessionOutput::Answered { reply, result } => {
                    let _ = reply.try_send(result);
                }
            }
        }
    }
}
