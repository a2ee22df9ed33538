//! The data-socket task: drives a [`DataClient`] over one stream and hands
//! every pushed message to the bounded channel the application reads.

use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::client::{DataClient, Message};
use smol::channel::Sender;
use smol::future::FutureExt;

use super::ClientError;
use super::io::{ReadOutcome, Stream, sleep_until};

/// What woke the data task.
enum Event {
    Read(ReadOutcome),
    Wrote(std::io::Result<usize>),
    Timeout,
}

/// Runs the data socket until the server ends it or the application drops
/// its receiver. `ready` learns whether the server accepted the hello.
///
/// Back-pressure: while the channel is full the task stops reading, so the
/// server's per-client queue fills and, past its bound, the server drops
/// this data socket (slow consumer) instead of buffering without limit.
pub(super) async fn run(
    stream: Stream,
    mut data: DataClient,
    messages: Sender<Message>,
    ready: Sender<Result<(), ClientError>>,
) {
    let mut ready = Some(ready);
    let result = drive(&stream, &mut data, &messages, &mut ready).await;
    if let Err(err) = result {
        match ready.take() {
            Some(ready) => {
                let _ = ready.try_send(Err(err));
            }
            None => tracing::warn!(%err, "PSRT data connection failed"),
        }
    }
}

/// The event loop; returns when the stream ends or nobody reads messages.
async fn drive(
    stream: &Stream,
    data: &mut DataClient,
    messages: &Sender<Message>,
    ready: &mut Option<Sender<Result<(), ClientError>>>,
) -> Result<(), ClientError> {
    let mut tx = TxBuf::new();
    loop {
        data.poll_transmit(&mut tx);
        if data.is_streaming()
            && let Some(ready) = ready.take()
        {
            let _ = ready.try_send(Ok(()));
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
        let pending_write = !tx.is_empty();
        // Reading comes first: after a wait on a full channel the server's
        // beacons are already buffered and must count before the silence
        // deadline is checked.
        let read = async { Event::Read(stream.read(data.read_buf()).await) };
        let write = async {
            if !pending_write {
                return std::future::pending().await;
            }
            Event::Wrote(stream.write(&tx).await)
        };
        let timer = async {
            sleep_until(timeout).await;
            Event::Timeout
        };
        let event = read.or(write).or(timer).await;
        match event {
            Event::Read(ReadOutcome::Data) => data.handle_input(Instant::now())?,
            Event::Read(ReadOutcome::Eof) => data.handle_eof()?,
            Event::Wrote(written) => tx.advance(written?),
            Event::Timeout => data.handle_timeout(Instant::now())?,
        }
    }
}
