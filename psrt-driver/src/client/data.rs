//! The data-socket task: drives a [`DataSession`] over one stream and hands
//! every pushed message to the bounded channel the application reads.
//!
//! Back-pressure: while the channel is full the task reads at most one
//! more chunk, so the server's per-client queue fills and, past its
//! bound, the server drops this data socket (slow consumer) instead of
//! the client buffering without limit. That one read ([`ReadAhead`])
//! stays in flight while the task waits: the server's beacons land in it
//! meanwhile, and count once the wait is over, so a long wait on the
//! application is not mistaken for a silent server (with completion I/O a
//! read started only after the wait would still be in flight when the
//! overdue deadline is checked).

use std::future::poll_fn;
use std::pin::pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use async_channel::Sender;
use psrt_proto::client::{DataSession, Message, ReadOutcome};
use psrt_proto::{BytesMut, TxBuf};

use super::ClientError;
use super::waiters::Channels;
use crate::runtime::{Runtime, Stream, Timer};

/// The data socket of one session, with the application's channel.
pub(super) struct DataTask<R: Runtime> {
    stream: R::Stream,
    session: DataSession<Channels>,
    messages: Sender<Message>,
}

/// What woke the data task.
enum Event {
    Read(ReadOutcome),
    /// The read ahead completed.
    ReadAhead,
    Wrote(std::io::Result<usize>),
    Timeout,
}

impl<R: Runtime> DataTask<R> {
    /// The task driving `session` over `stream`, sending to `messages`.
    pub(super) fn new(
        stream: R::Stream,
        session: DataSession<Channels>,
        messages: Sender<Message>,
    ) -> Self {
        Self {
            stream,
            session,
            messages,
        }
    }

    /// Runs the data socket until the server ends it or the application
    /// drops its receiver.
    pub(super) async fn run(mut self) {
        let outcome = self.drive().await;
        if let Some(err) = self.session.end(outcome) {
            tracing::warn!(%err, "PSRT data connection failed");
        }
    }

    /// The event loop; returns when the stream ends or nobody reads
    /// messages.
    async fn drive(&mut self) -> Result<(), ClientError> {
        let mut tx = TxBuf::new();
        let mut timer = R::Timer::default();
        let mut ahead = ReadAhead::default();
        loop {
            self.session.poll_transmit(&mut tx);
            while let Some(message) = self.session.poll_message() {
                if !self.deliver(message, &mut ahead).await {
                    return Ok(());
                }
            }
            if let Some(read) = ahead.finish(self.session.read_buf()) {
                self.session.handle_read(read, Instant::now())?;
                continue;
            }
            if self.session.is_closed() {
                return Ok(());
            }
            timer.set(self.session.poll_timeout());
            let Self {
                stream, session, ..
            } = self;
            // Reading first: after a wait on a full channel the server's
            // beacons are already buffered and must count before the
            // silence deadline is checked.
            let event = poll_fn(|cx| {
                if ahead.started {
                    if ahead.poll(stream, cx).is_ready() {
                        return Poll::Ready(Event::ReadAhead);
                    }
                } else if let Poll::Ready(read) = stream.poll_read(cx, session.read_buf()) {
                    return Poll::Ready(Event::Read(ReadOutcome::of(&read)));
                }
                if !tx.is_empty()
                    && let Poll::Ready(written) = stream.poll_write(cx, &tx)
                {
                    return Poll::Ready(Event::Wrote(written));
                }
                timer.poll_fired(cx).map(|()| Event::Timeout)
            })
            .await;
            match event {
                Event::Read(read) => session.handle_read(read, Instant::now())?,
                Event::ReadAhead => {}
                Event::Wrote(written) => tx.advance(written?),
                Event::Timeout => session.handle_timeout(Instant::now())?,
            }
        }
    }

    /// Sends `message` to the application, waiting while the channel is
    /// full and reading `ahead` meanwhile (unless it already read); false
    /// when nobody reads messages any more.
    async fn deliver(&mut self, message: Message, ahead: &mut ReadAhead) -> bool {
        let Self {
            stream, messages, ..
        } = self;
        let mut send = pin!(messages.send(message));
        poll_fn(|cx| {
            if let Poll::Ready(sent) = send.as_mut().poll(cx) {
                return Poll::Ready(sent.is_ok());
            }
            if ahead.done.is_none() {
                ahead.started = true;
                let _ = ahead.poll(stream, cx);
            }
            Poll::Pending
        })
        .await
    }
}

/// The read the task keeps in flight while it waits on a full channel.
/// Its bytes are kept aside until the wait is over and only then handed
/// to the session, which then counts them as the latest sign of life
/// (and decodes the messages in them).
#[derive(Default)]
struct ReadAhead {
    /// What the read brought; empty (no memory held) between reads.
    buf: BytesMut,
    /// A read into `buf` was polled: poll it again, with `buf`, until it
    /// completes.
    started: bool,
    /// The read completed with this.
    done: Option<ReadOutcome>,
}

impl ReadAhead {
    /// Polls the read into [`ReadAhead::buf`]; `Ready` once it is done.
    fn poll<S: Stream>(&mut self, stream: &mut S, cx: &mut Context<'_>) -> Poll<()> {
        if self.done.is_none() {
            let read = ready!(stream.poll_read(cx, &mut self.buf));
            self.done = Some(ReadOutcome::of(&read));
        }
        Poll::Ready(())
    }

    /// Once the read is done: moves its bytes to `input` and returns its
    /// outcome.
    fn finish(&mut self, input: &mut BytesMut) -> Option<ReadOutcome> {
        let read = self.done.take()?;
        self.started = false;
        input.extend_from_slice(&std::mem::take(&mut self.buf));
        Some(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::task::Waker;

    use super::*;

    /// A stream whose reads bring the queued chunks, one per read, then
    /// stay pending.
    struct Chunks(Vec<&'static [u8]>);

    impl Stream for Chunks {
        fn poll_read(
            &mut self,
            _: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            match self.0.pop() {
                Some(chunk) => {
                    buf.extend_from_slice(chunk);
                    Poll::Ready(Ok(chunk.len()))
                }
                None => Poll::Pending,
            }
        }

        fn poll_write(&mut self, _: &mut Context<'_>, tx: &TxBuf) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(tx.len()))
        }

        async fn shutdown(self) {}
    }

    #[test]
    fn the_read_ahead_reads_once_and_hands_its_bytes_over_when_finished() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut stream = Chunks(vec![b"second", b"first"]);
        let mut ahead = ReadAhead::default();
        let mut input = BytesMut::from(&b"queued "[..]);
        assert_eq!(ahead.finish(&mut input), None, "nothing read yet");

        assert!(ahead.poll(&mut stream, &mut cx).is_ready());
        assert!(ahead.poll(&mut stream, &mut cx).is_ready(), "one read only");
        assert_eq!(stream.0.len(), 1);
        assert_eq!(&input[..], b"queued ", "kept aside until finished");

        assert_eq!(ahead.finish(&mut input), Some(ReadOutcome::Data));
        assert_eq!(&input[..], b"queued first");
        assert_eq!(ahead.buf.capacity(), 0, "no buffer held between reads");
        assert!(!ahead.started);

        assert!(ahead.poll(&mut stream, &mut cx).is_ready());
        assert!(ahead.poll(&mut stream, &mut cx).is_ready());
        assert_eq!(ahead.finish(&mut input), Some(ReadOutcome::Data));
        assert_eq!(&input[..], b"queued firstsecond");
        assert!(
            ahead.poll(&mut stream, &mut cx).is_pending(),
            "no more input"
        );
    }
}
