//! The data-socket task: drives a [`DataClient`] over one stream and hands
//! every pushed message to the bounded channel the application reads.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{DataClient, Message};

use super::ClientError;
use super::io::{self, ReadOutcome, Stream};

/// Where the data socket's readiness (the server's OK) goes, once.
pub(super) type ReadyTx = flume::Sender<Result<(), ClientError>>;

/// Runs the data socket until the server ends it or the application drops
/// its receiver. `ready` learns whether the server accepted the hello.
///
/// Back-pressure: while the channel is full the task stops reading, so the
/// server's per-client queue fills and, past its bound, the server drops
/// this data socket (slow consumer) instead of buffering without limit.
pub(super) async fn run<S: Stream>(
    stream: S,
    mut data: DataClient,
    messages: flume::Sender<Message>,
    ready: ReadyTx,
) {
    let mut ready = Some(ready);
    let result = drive(stream, &mut data, &messages, &mut ready).await;
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
async fn drive<S: Stream>(
    stream: S,
    data: &mut DataClient,
    messages: &flume::Sender<Message>,
    ready: &mut Option<ReadyTx>,
) -> Result<(), ClientError> {
    let (mut reader, mut writer) = io::split(stream);
    let mut tx = TxBuf::new();
    loop {
        data.poll_transmit(&mut tx);
        if data.is_streaming()
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(Ok(()));
        }
        // A read stays in flight while messages wait for room in the
        // channel: the server's beacons land in it meanwhile, so a long
        // wait on the application is not mistaken for a silent server.
        // It holds one chunk at most, which keeps the back-pressure.
        reader.start();
        while let Some(message) = data.poll_message() {
            if messages.send_async(message).await.is_err() {
                return Ok(());
            }
        }
        if data.is_closed() {
            return Ok(());
        }
        writer.start(&tx);
        let timeout = data.poll_timeout();
        // Biased towards reading: after a wait on a full channel the
        // server's beacons are already buffered and must count before the
        // silence deadline is checked.
        monoio::select! {
            biased;
            read = reader.read_into(data.read_buf()) => match read {
                ReadOutcome::Data => data.handle_input(Instant::now())?,
                ReadOutcome::Eof => data.handle_eof()?,
            },
            written = writer.finish(), if writer.is_busy() => {
                tx.advance(written?);
            }
            () = io::sleep_until(timeout), if timeout.is_some() => {
                data.handle_timeout(Instant::now())?;
            }
        }
    }
}
