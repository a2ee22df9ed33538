//! The control-socket task: drives a [`ControlSession`] over one stream,
//! taking requests from the [`Client`](super::Client) handles; the session
//! answers each through its one-shot channel.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{ControlSession, Request, Waiters};
use psrt_proto::wire::Token;
use tokio::sync::{mpsc, oneshot};

use super::ClientError;
use super::io::{self, BoxedIo};

/// The tokio channels the sessions answer their callers through.
pub(super) struct Channels;

impl Waiters for Channels {
    type Reply = oneshot::Sender<Result<(), ClientError>>;
    type Login = oneshot::Sender<Result<Token, ClientError>>;

    fn answer(reply: Self::Reply, result: Result<(), ClientError>) {
        let _ = reply.send(result);
    }

    fn login(login: Self::Login, result: Result<Token, ClientError>) {
        let _ = login.send(result);
    }
}

/// A request from a [`Client`](super::Client) handle, with its reply.
pub(super) type Command = (Request, <Channels as Waiters>::Reply);

/// Runs `session` over `io`, taking requests from `commands`, until the
/// session ends; then fails every caller still waiting with the reason.
pub(super) async fn run(
    io: BoxedIo,
    mut session: ControlSession<Channels>,
    mut commands: mpsc::Receiver<Command>,
) {
    let outcome = drive(io, &mut session, &mut commands).await;
    if let Some(reason) = session.end(outcome) {
        tracing::warn!(%reason, "PSRT control connection failed");
    }
}

/// The event loop: socket reads and writes, commands, timers.
async fn drive(
    io: BoxedIo,
    session: &mut ControlSession<Channels>,
    commands: &mut mpsc::Receiver<Command>,
) -> Result<(), ClientError> {
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut tx = TxBuf::new();
    loop {
        session.poll_transmit(&mut tx);
        if session.is_finished() && tx.is_empty() {
            io::shutdown(&mut writer).await;
            return Ok(());
        }
        let timeout = session.poll_timeout();
        let can_read = session.wants_input();
        let can_take = session.wants_requests(tx.len());
        tokio::select! {
            biased;
            read = io::read(&mut reader, session.read_buf()), if can_read => {
                session.handle_read(read, Instant::now())?;
            }
            written = io::write(&mut writer, &tx), if !tx.is_empty() => tx.advance(written?),
            command = commands.recv(), if can_take => match command {
                Some((request, reply)) => session.handle_request(request, reply, Instant::now()),
                None => session.handle_handles_dropped(Instant::now()),
            },
            () = io::sleep_until(timeout), if timeout.is_some() => {
                session.handle_timeout(Instant::now())?;
            }
        }
    }
}
