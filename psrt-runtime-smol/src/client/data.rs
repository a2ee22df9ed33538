//! The data-socket task: drives a [`DataSession`] over one stream and hands
//! every pushed message to the bounded channel the application reads.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{DataSession, Message, ReadOutcome};
use smol::channel::Sender;
use smol::future::FutureExt;

use super::ClientError;
use super::control::Channels;
use super::io::{Stream, sleep_until};

/// What woke the data task.
enum Event {
    Read(ReadOutcome),
    Wrote(std::io::Result<usize>),
    Timeout,
}

/// Runs the data socket until the server ends it or the application drops
/// its receiver.
///
/// Back-pressure: while the channel is full the task stops reading, so the
/// server's per-client queue fills and, past its bound, the server drops
/// this data socket (slow consumer) instead of buffering without limit.
pub(super) async fn run(
    stream: Stream,
    mut session: DataSession<Channels>,
    messages: Sender<Message>,
) {
    let outcome = drive(&stream, &mut session, &messages).await;
    if let Some(err) = session.end(outcome) {
        tracing::warn!(%err, "PSRT data connection failed");
    }
}

/// The event loop; returns when the stream ends or nobody reads messages.
async fn drive(
    stream: &Stream,
    session: &mut DataSession<Channels>,
    messages: &Sender<Message>,
) -> Result<(), ClientError> {
    let mut tx = TxBuf::new();
    loop {
        session.poll_transmit(&mut tx);
        while let Some(message) = session.poll_message() {
            if messages.send(message).await.is_err() {
                return Ok(());
            }
        }
        if session.is_closed() {
            return Ok(());
        }
        match next_event(stream, session, &tx).await {
            Event::Read(read) => session.handle_read(read, Instant::now())?,
            Event::Wrote(written) => tx.advance(written?),
            Event::Timeout => session.handle_timeout(Instant::now())?,
        }
    }
}

/// Waits for the first of: input, a finished write, the session's
/// deadline. Reading comes first: after a wait on a full channel the
/// server's beacons are already buffered and must count before the
/// silence deadline is checked.
async fn next_event(stream: &Stream, session: &mut DataSession<Channels>, tx: &TxBuf) -> Event {
    let timeout = session.poll_timeout();
    let read_buf = session.read_buf();
    let read = async { Event::Read(stream.read(read_buf).await) };
    let write = async {
        if tx.is_empty() {
            return std::future::pending().await;
        }
        Event::Wrote(stream.write(tx).await)
    };
    let timer = async {
        sleep_until(timeout).await;
        Event::Timeout
    };
    read.or(write).or(timer).await
}
