//! The control-socket task: drives a [`ControlSession`] over one stream,
//! taking requests from the [`Client`](super::Client) handles; the session
//! answers each through its one-slot channel.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{ControlSession, Request, Waiters};
use psrt_proto::wire::Token;

use super::ClientError;
use super::io::{self, Stream};

/// The flume channels (one slot each, thread-safe so the handles are
/// `Send`) the sessions answer their callers through.
pub(super) struct Channels;

impl Waiters for Channels {
    type Reply = flume::Sender<Result<(), ClientError>>;
    type Login = flume::Sender<Result<Token, ClientError>>;

    fn answer(reply: Self::Reply, result: Result<(), ClientError>) {
        let _ = reply.send(result);
    }

    fn login(login: Self::Login, result: Result<Token, ClientError>) {
        let _ = login.send(result);
    }
}

/// A request from a [`Client`](super::Client) handle, with its reply.
pub(super) type Command = (Request, <Channels as Waiters>::Reply);

/// Runs `session` over `stream`, taking requests from `commands`, until
/// the session ends; then fails every caller still waiting with the
/// reason.
pub(super) async fn run<S: Stream>(
    stream: S,
    mut session: ControlSession<Channels>,
    commands: flume::Receiver<Command>,
) {
    let outcome = drive(stream, &mut session, &commands).await;
    if let Some(reason) = session.end(outcome) {
        tracing::warn!(%reason, "PSRT control connection failed");
    }
}

/// The event loop: socket reads and writes, commands, timers.
async fn drive<S: Stream>(
    stream: S,
    session: &mut ControlSession<Channels>,
    commands: &flume::Receiver<Command>,
) -> Result<(), ClientError> {
    let (mut reader, mut writer) = io::split(stream);
    let mut tx = TxBuf::new();
    loop {
        session.poll_transmit(&mut tx);
        if session.is_finished() && tx.is_empty() {
            writer.shutdown().await;
            return Ok(());
        }
        writer.start(&tx);
        let timeout = session.poll_timeout();
        let can_read = session.wants_input();
        let can_take = session.wants_requests(tx.len());
        monoio::select! {
            biased;
            read = reader.read_into(session.read_buf()), if can_read => {
                session.handle_read(read, Instant::now())?;
            }
            written = writer.finish(), if writer.is_busy() => tx.advance(written?),
            command = commands.recv_async(), if can_take => match command {
                Ok((request, reply)) => session.handle_request(request, reply, Instant::now()),
                Err(_) => session.handle_handles_dropped(Instant::now()),
            },
            () = io::sleep_until(timeout), if timeout.is_some() => {
                session.handle_timeout(Instant::now())?;
            }
        }
    }
}
