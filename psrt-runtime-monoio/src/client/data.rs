//! The data-socket task: drives a [`DataSession`] over one stream and hands
//! every pushed message to the bounded channel the application reads.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{DataSession, Message};

use super::ClientError;
use super::control::Channels;
use super::io::{self, Stream};

/// Runs the data socket until the server ends it or the application drops
/// its receiver.
///
/// Back-pressure: while the channel is full the task stops reading, so the
/// server's per-client queue fills and, past its bound, the server drops
/// this data socket (slow consumer) instead of buffering without limit.
pub(super) async fn run<S: Stream>(
    stream: S,
    mut session: DataSession<Channels>,
    messages: flume::Sender<Message>,
) {
    let outcome = drive(stream, &mut session, &messages).await;
    if let Some(err) = session.end(outcome) {
        tracing::warn!(%err, "PSRT data connection failed");
    }
}

/// The event loop; returns when the stream ends or nobody reads messages.
async fn drive<S: Stream>(
    stream: S,
    session: &mut DataSession<Channels>,
    messages: &flume::Sender<Message>,
) -> Result<(), ClientError> {
    let (mut reader, mut writer) = io::split(stream);
    let mut tx = TxBuf::new();
    loop {
        session.poll_transmit(&mut tx);
        // A read stays in flight while messages wait for room in the
        // channel: the server's beacons land in it meanwhile, so a long
        // wait on the application is not mistaken for a silent server.
        // It holds one chunk at most, which keeps the back-pressure.
        reader.start();
        while let Some(message) = session.poll_message() {
            if messages.send_async(message).await.is_err() {
                return Ok(());
            }
        }
        if session.is_closed() {
            return Ok(());
        }
        writer.start(&tx);
        let timeout = session.poll_timeout();
        // Biased towards reading: after a wait on a full channel the
        // server's beacons are already buffered and must count before the
        // silence deadline is checked.
        monoio::select! {
            biased;
            read = reader.read_into(session.read_buf()) => {
                session.handle_read(read, Instant::now())?;
            }
            written = writer.finish(), if writer.is_busy() => tx.advance(written?),
            () = io::sleep_until(timeout), if timeout.is_some() => {
                session.handle_timeout(Instant::now())?;
            }
        }
    }
}
