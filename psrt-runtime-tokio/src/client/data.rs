//! The data-socket task: drives a [`DataClient`] over one stream and hands
//! every pushed message to the bounded channel the application reads.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{DataClient, Message};
use tokio::sync::{mpsc, oneshot};

use super::ClientError;
use super::io::{self, BoxedIo, ReadOutcome};

/// Runs the data socket until the server ends it or the application drops
/// its receiver. `ready` learns whether the server accepted the hello.
///
/// Back-pressure: while the channel is full the task stops reading, so the
/// server's per-client queue fills and, past its bound, the server drops
/// this data socket (slow consumer) instead of buffering without limit.
pub(super) async fn run(
    io: BoxedIo,
    mut data: DataClient,
    messages: mpsc::Sender<Message>,
    ready: oneshot::Sender<Result<(), ClientError>>,
) {
    let mut ready = Some(ready);
    let result = drive(io, &mut data, &messages, &mut ready).await;
    if let Err(err) = result {
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Err(err));
            }
            None => tracing::warn!(%err, "PSRT data connection failed"),
        }
    }
}

/// The event loop; returns when the stream ends or nobody reads messages.
async fn drive(
    io: BoxedIo,
    data: &mut DataClient,
    messages: &mpsc::Sender<Message>,
    ready: &mut Option<oneshot::Sender<Result<(), ClientError>>>,
) -> Result<(), ClientError> {
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut tx = TxBuf::new();
    loop {
        data.poll_transmit(&mut tx);
        if data.is_streaming()
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(Ok(()));
        }
        while let Some(message) = data.poll_message() {
            if messages.send(message).await.is_err() {
                return Ok(());
            }
        }
        if data.is_closed() {
            return Ok(());
        }
        let timeout = data.poll_timeout();
        // Biased towards reading: after a wait on a full channel the
        // server's beacons are already buffered and must count before the
        // silence deadline is checked.
        tokio::select! {
            biased;
            read = io::read(&mut reader, data.read_buf()) => match read {
                ReadOutcome::Data => data.handle_input(Instant::now())?,
                ReadOutcome::Eof => data.handle_eof()?,
            },
            written = io::write(&mut writer, &tx), if !tx.is_empty() => {
                tx.advance(written?);
            }
            () = io::sleep_until(timeout), if timeout.is_some() => {
                data.handle_timeout(Instant::now())?;
            }
        }
    }
}
