//! The control-socket task: drives a [`ControlSession`] over one stream,
//! taking requests from the [`Client`](super::Client) handles; the session
//! answers each through its one-shot channel.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Instant;

use async_channel::Receiver;
use futures_lite::Stream as _;
use psrt_proto::TxBuf;
use psrt_proto::client::{ControlSession, ReadOutcome, Request, Waiters};

use super::ClientError;
use super::waiters::Channels;
use crate::runtime::{Runtime, Stream, Timer};

/// A request from a [`Client`](super::Client) handle, with its reply.
pub(super) type Command = (Request, <Channels as Waiters>::Reply);

/// The control socket of one session, with its requests.
pub(super) struct ControlTask<R: Runtime> {
    stream: R::Stream,
    session: ControlSession<Channels>,
    commands: Receiver<Command>,
}

/// What woke the control task.
enum Event {
    Read(ReadOutcome),
    Wrote(std::io::Result<usize>),
    Command(Option<Command>),
    Timeout,
}

impl<R: Runtime> ControlTask<R> {
    /// The task driving `session` over `stream`, taking `commands`.
    pub(super) fn new(
        stream: R::Stream,
        session: ControlSession<Channels>,
        commands: Receiver<Command>,
    ) -> Self {
        Self {
            stream,
            session,
            commands,
        }
    }

    /// Runs the session until it ends; then fails every caller still
    /// waiting with the reason, queued requests included.
    pub(super) async fn run(self) {
        let Self {
            mut stream,
            mut session,
            commands,
        } = self;
        let mut commands = pin!(commands);
        let outcome = drive::<R>(&mut stream, &mut session, commands.as_mut()).await;
        if outcome.is_ok() {
            stream.shutdown().await;
        }
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
}

/// The event loop: socket reads and writes, commands, timers. Returns
/// `Ok` once the session finished and everything queued was written.
async fn drive<R: Runtime>(
    stream: &mut R::Stream,
    session: &mut ControlSession<Channels>,
    mut commands: Pin<&mut Receiver<Command>>,
) -> Result<(), ClientError> {
    let mut tx = TxBuf::new();
    let mut timer = R::Timer::default();
    loop {
        session.poll_transmit(&mut tx);
        if session.is_finished() && tx.is_empty() {
            return Ok(());
        }
        timer.set(session.poll_timeout());
        let can_read = session.wants_input();
        let can_take = session.wants_requests(tx.len());
        // Earlier sources win ties: input first, so replies free room for
        // requests before more are taken.
        let event = poll_fn(|cx| {
            if can_read && let Poll::Ready(read) = stream.poll_read(cx, session.read_buf()) {
                return Poll::Ready(Event::Read(ReadOutcome::of(&read)));
            }
            if !tx.is_empty()
                && let Poll::Ready(written) = stream.poll_write(cx, &tx)
            {
                return Poll::Ready(Event::Wrote(written));
            }
            if can_take && let Poll::Ready(command) = commands.as_mut().poll_next(cx) {
                return Poll::Ready(Event::Command(command));
            }
            timer.poll_fired(cx).map(|()| Event::Timeout)
        })
        .await;
        match event {
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
