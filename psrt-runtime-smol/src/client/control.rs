//! The control-socket task: drives a [`ControlSession`] over one stream,
//! taking requests from the [`Client`](super::Client) handles; the session
//! answers each through its one-slot channel.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{ControlSession, ReadOutcome, Request, Waiters};
use psrt_proto::wire::Token;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;

use super::ClientError;
use super::io::{Stream, sleep_until};

/// The smol channels (one slot each) the sessions answer their callers
/// through.
pub(super) struct Channels;

impl Waiters for Channels {
    type Reply = Sender<Result<(), ClientError>>;
    type Login = Sender<Result<Token, ClientError>>;

    fn answer(reply: Self::Reply, result: Result<(), ClientError>) {
        let _ = reply.try_send(result);
    }

    fn login(login: Self::Login, result: Result<Token, ClientError>) {
        let _ = login.try_send(result);
    }
}

/// A request from a [`Client`](super::Client) handle, with its reply.
pub(super) type Command = (Request, <Channels as Waiters>::Reply);

/// What woke the control task.
enum Event {
    Read(ReadOutcome),
    Wrote(std::io::Result<usize>),
    Command(Option<Command>),
    Timeout,
}

/// Runs `session` over `stream`, taking requests from `commands`, until
/// the session ends; then fails every caller still waiting with the
/// reason, queued requests included.
pub(super) async fn run(
    stream: Stream,
    mut session: ControlSession<Channels>,
    commands: Receiver<Command>,
) {
    let outcome = drive(&stream, &mut session, &commands).await;
    if let Some(reason) = session.end(outcome) {
        tracing::warn!(%reason, "PSRT control connection failed");
    }
    // Closed now: a handle racing with the end fails at once instead of
    // queuing a request nobody will read.
    commands.close();
    while let Ok((_, reply)) = commands.try_recv() {
        Channels::answer(reply, Err(session.ended().error()));
    }
}

/// The event loop: socket reads and writes, commands, timers.
async fn drive(
    stream: &Stream,
    session: &mut ControlSession<Channels>,
    commands: &Receiver<Command>,
) -> Result<(), ClientError> {
    let mut tx = TxBuf::new();
    loop {
        session.poll_transmit(&mut tx);
        if session.is_finished() && tx.is_empty() {
            stream.shutdown();
            return Ok(());
        }
        match next_event(stream, session, commands, &tx).await {
            Event::Read(read) => session.handle_read(read, Instant::now())?,
            Event::Wrote(written) => tx.advance(written?),
            Event::Command(Some((request, reply))) => {
                session.handle_request(request, reply, Instant::now());
            }
            Event::Command(None) => session.handle_handles_dropped(Instant::now()),
            Event::Timeout => session.handle_timeout(Instant::now())?,
        }
    }
}

/// Waits for the first of: input (while the session reads), a finished
/// write, a request (while the session takes them), the session's
/// deadline. Earlier sources win ties.
async fn next_event(
    stream: &Stream,
    session: &mut ControlSession<Channels>,
    commands: &Receiver<Command>,
    tx: &TxBuf,
) -> Event {
    let timeout = session.poll_timeout();
    let can_take = session.wants_requests(tx.len());
    let can_read = session.wants_input();
    let read_buf = session.read_buf();
    let read = async {
        if !can_read {
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
