//! The data-socket task: drives a [`DataSession`] over one stream and hands
//! every pushed message to the bounded channel the application reads.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{DataSession, Message};
use tokio::sync::mpsc;

use super::ClientError;
use super::control::Channels;
use super::io::{self, BoxedIo};

/// Runs the data socket until the server ends it or the application drops
/// its receiver.
///
/// Back-pressure: while the channel is full the task stops reading, so the
/// server's per-client queue fills and, past its bound, the server drops
/// this data socket (slow consumer) instead of buffering without limit.
pub(super) async fn run(
    io: BoxedIo,
    mut session: DataSession<Channels>,
    messages: mpsc::Sender<Message>,
) {
    let outcome = drive(io, &mut session, &messages).await;
    if let Some(err) = session.end(outcome) {
        tracing::warn!(%err, "PSRT data connection failed");
    }
}

/// The event loop; returns when the stream ends or nobody reads messages.
async fn drive(
    io: BoxedIo,
    session: &mut DataSession<Channels>,
    messages: &mpsc::Sender<Message>,
) -> Result<(), ClientError> {
    let (mut reader, mut writer) = tokio::io::split(io);
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
        let timeout = session.poll_timeout();
        // Biased towards reading: after a wait on a full channel the
        // server's beacons are already buffered and must count before the
        // silence deadline is checked.
        tokio::select! {
            biased;
            read = io::read(&mut reader, session.read_buf()) => {
                session.handle_read(read, Instant::now())?;
            }
            written = io::write(&mut writer, &tx), if !tx.is_empty() => tx.advance(written?),
            () = io::sleep_until(timeout), if timeout.is_some() => {
                session.handle_timeout(Instant::now())?;
            }
        }
    }
}
