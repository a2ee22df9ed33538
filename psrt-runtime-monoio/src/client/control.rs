//! The control-socket task: drives a [`ControlSession`] over one stream,
//! takes requests from the [`Client`](super::Client) handles and answers
//! each with the outcome.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{ControlClient, ControlSession, Request, SessionOutput};
use psrt_proto::wire::Token;

use super::ClientError;
use super::io::{self, ReadOutcome, Stream};

/// Where the answer to one request goes.
pub(super) type ReplyTx = flume::Sender<Result<(), ClientError>>;

/// Where the login outcome goes, once.
pub(super) type LoginTx = flume::Sender<Result<Token, ClientError>>;

/// A request from a [`Client`](super::Client) handle, with its reply.
pub(super) type Command = (Request, ReplyTx);

/// Everything the control task owns besides the socket.
pub(super) struct ControlTask {
    session: ControlSession<ReplyTx>,
    commands: flume::Receiver<Command>,
    /// Receives the token (or the reason the login failed) once.
    login: Option<LoginTx>,
    /// Set once with why the session ended, for later callers.
    ended: Arc<OnceLock<String>>,
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
            session: ControlSession::new(control, max_in_flight),
            commands,
            login: Some(login),
            ended,
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
        for reply in self.session.drain_waiters() {
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
            self.session.control().poll_transmit(&mut tx);
            if self.session.is_finished() && tx.is_empty() {
                writer.shutdown().await;
                return Ok(());
            }
            writer.start(&tx);
            let timeout = self.session.control().poll_timeout();
            let can_take = self.session.wants_requests(tx.len());
            monoio::select! {
                biased;
                read = reader.read_into(self.session.control().read_buf()), if read_open => {
                    match read {
                        ReadOutcome::Data => self.session.control().handle_input(Instant::now())?,
                        ReadOutcome::Eof => {
                            read_open = false;
                            self.session.control().handle_eof()?;
                        }
                    }
                }
                written = writer.finish(), if writer.is_busy() => {
                    tx.advance(written?);
                }
                command = self.commands.recv_async(), if can_take => match command {
                    Ok((request, reply)) => self.on_request(request, reply),
                    Err(_) => self.session.handle_handles_dropped(Instant::now()),
                },
                () = io::sleep_until(timeout), if timeout.is_some() => {
                    self.session.control().handle_timeout(Instant::now())?;
                }
            }
            self.deliver();
        }
    }

    /// Issues a request; a refusal is answered at once.
    fn on_request(&mut self, request: Request, reply: ReplyTx) {
        if let Some((reply, err)) = self.session.handle_request(request, reply, Instant::now()) {
            let _ = reply.send(Err(err));
        }
    }

    /// Routes the session's outputs to the login and request waiters.
    fn deliver(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                SessionOutput::LoggedIn(token) => {
                    if let Some(login) = self.login.take() {
                        let _ = login.send(Ok(token));
                    }
                }
                SessionOutput::Answered { reply, result } => {
                    let _ = reply.send(result);
                }
            }
        }
    }
}
