//! The two halves of a stream socket under monoio's completion I/O, which
//! [`crate::runtime::MonoioStream`] polls for the driver's socket loop and
//! the client's tasks.
//!
//! monoio's I/O takes owned buffers, and with io_uring a read or write
//! future dropped mid-flight may already have moved bytes the task then
//! never sees. So each half lives in a [`Slot`]: an operation, once
//! started, is kept across the task's waits until it completes; waiting
//! only borrows it.
//!
//! A socket waiting for input has a read in flight, and the kernel owns
//! that read's buffer until bytes come: every idle socket would pin a
//! full-size buffer. So a read after a quiet spell gets a small buffer,
//! and a full-size one only while the previous read brought more than
//! that. The rest of a large frame is read into the frame's own buffer,
//! lent to the read while it is in flight, so it lands in place with the
//! kernel's copy only.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Split, Splitable};
use psrt_proto::TxBuf;
use psrt_proto::client::{MAX_IOV, READ_CHUNK};
use psrt_proto::conn::reserve_input;

use crate::gather::Gather;

/// The buffer of a read after a quiet spell (the last read brought less):
/// what an idle socket holds, twice per client (control and data socket).
/// A NOP, a reply or a small publish fits; a read that fills it is
/// followed by full-size reads. 64 rather than 512 bytes took idle
/// clients from 7.4 to 6.5 KiB each (psrt-bench `idle`), with fan-in,
/// fan-out and 64 KiB payloads unchanged within the run's noise.
const QUIET_READ: usize = 64;
/// Writes go out as owned buffers (io_uring cannot borrow): a chunk this
/// large (a message's whole frame as the publisher sent it, a payload
/// after a head built by the broker, or what is left of either after a
/// partial write) is handed over as is, the shared `Bytes` itself, never
/// copied; copying it would cost about as much as the operation it
/// would save.
const HAND_OVER: usize = 16 * 1024;
/// Smaller chunks in a row are copied together into one buffer, so many
/// small messages still cost one operation; at most this many bytes are
/// copied for one write, which bounds the copying wasted when the socket
/// takes only part of it.
const MAX_COPY: usize = 64 * 1024;
/// One write gathers up to this many buffers (large chunks and copied
/// runs of small ones) into one vectored operation
/// ([`crate::gather`]): a subscriber that has fallen behind by several
/// large messages gets them in one send, as from the readiness runtimes'
/// `sendmsg`.
const MAX_GATHER: usize = MAX_IOV;

/// A socket that splits into owned halves.
pub(crate) trait Stream: Split + AsyncReadRent + AsyncWriteRent + 'static {}

impl<T: Split + AsyncReadRent + AsyncWriteRent + 'static> Stream for T {}

/// Splits a stream into its halves.
pub(crate) fn split<S: Stream>(stream: S) -> (Reader<S>, Writer<S>) {
    let (reader, writer) = stream.into_split();
    (
        Reader {
            slot: Slot::Idle((reader, ReadBuf::Own(Vec::new()))),
        },
        Writer {
            slot: Slot::Idle(writer),
        },
    )
}

/// The read half of a socket with the buffer of its reads.
pub(crate) struct Reader<S: Stream> {
    slot: Slot<(OwnedReadHalf<S>, ReadBuf)>,
}

/// The buffer a read fills.
enum ReadBuf {
    /// The half's own buffer, refilled from its start by each read.
    Own(Vec<u8>),
    /// A large frame's buffer, lent by the caller and appended to.
    Frame(Vec<u8>),
}

impl<S: Stream> Reader<S> {
    /// Starts appending what the socket has to `into` unless a read is in
    /// flight; `Ok(0)` is end of stream. A read still in flight when the
    /// caller stops polling delivers at the next call.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        into: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        self.slot.start(read_own);
        let result = ready!(self.slot.poll_finish(cx));
        if let (Ok(n), Slot::Idle((_, buf))) = (&result, &mut self.slot) {
            let read = match buf {
                ReadBuf::Own(own) => own.get(..*n).unwrap_or_default(),
                ReadBuf::Frame(frame) => frame.as_slice(),
            };
            reserve_input(into, read.len());
            into.extend_from_slice(read);
        }
        self.keep_own();
        Poll::Ready(result)
    }

    /// Appends what the socket has to `frame`, a large frame's buffer with
    /// room for the rest of it: the buffer itself is lent to the read
    /// started here and given back when it completes (the caller holds an
    /// empty one meanwhile), so the kernel writes the bytes in place. A
    /// read of the socket's own buffer still in flight is appended instead.
    pub(crate) fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        if !self.slot.is_busy() {
            if frame.len() == frame.capacity() {
                // A read into no room would look like the end of stream.
                frame.reserve(READ_CHUNK);
            }
            let lent = std::mem::take(frame);
            self.slot.start(|(half, _)| read_frame(half, lent));
        }
        let result = ready!(self.slot.poll_finish(cx));
        if let Slot::Idle((_, buf)) = &mut self.slot {
            match buf {
                ReadBuf::Frame(lent) if frame.is_empty() => *frame = std::mem::take(lent),
                ReadBuf::Frame(lent) => frame.extend_from_slice(lent),
                ReadBuf::Own(own) => {
                    let n = *result.as_ref().unwrap_or(&0);
                    frame.extend_from_slice(own.get(..n).unwrap_or_default());
                }
            }
        }
        self.keep_own();
        Poll::Ready(result)
    }

    /// After a read completes: the next one uses the half's own buffer (a
    /// small one after a frame).
    fn keep_own(&mut self) {
        if let Slot::Idle((_, buf @ ReadBuf::Frame(_))) = &mut self.slot {
            *buf = ReadBuf::Own(Vec::new());
        }
    }
}

/// The write half of a socket.
pub(crate) struct Writer<S: Stream> {
    slot: Slot<OwnedWriteHalf<S>>,
}

impl<S: Stream> Writer<S> {
    /// Starts writing the front of `tx` unless a write is in flight or
    /// `tx` is empty. `tx` must stay unchanged at its front until the
    /// write's completion reports how much went out.
    fn start(&mut self, tx: &TxBuf) {
        if tx.is_empty() || self.slot.is_busy() {
            return;
        }
        let mut batch = next_batch(tx);
        if batch.len() == 1 {
            let only = batch.swap_remove(0);
            self.slot.start(|half| write_one(half, only));
        } else {
            let gather = Gather::new(batch);
            self.slot.start(|half| write_gathered(half, gather));
        }
    }

    /// The bytes the write in flight wrote, once it completes (never
    /// without one).
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.slot.poll_finish(cx)
    }

    /// Starts writing the front of `tx` unless a write is in flight, and
    /// returns what the write in flight wrote once it completes.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        tx: &TxBuf,
    ) -> Poll<io::Result<usize>> {
        self.start(tx);
        self.poll_finish(cx)
    }

    /// Half-closes the stream if no write is in flight; errors are moot at
    /// this point.
    pub(crate) async fn shutdown(self) {
        if let Slot::Idle(mut half) = self.slot {
            let _ = half.shutdown().await;
        }
    }
}

/// An operation on a socket half, returning the half and its result.
type Op<H> = Pin<Box<dyn Future<Output = (H, io::Result<usize>)>>>;

/// A socket half that is either idle or owned by one operation.
enum Slot<H> {
    Idle(H),
    /// An operation in flight.
    Busy(Op<H>),
    /// An operation that completed when it was started; its result waits
    /// for [`Slot::poll_finish`].
    Done(H, io::Result<usize>),
    /// Only while the slot swaps states.
    Empty,
}

impl<H: 'static> Slot<H> {
    /// Whether an operation is in flight or waits to be finished.
    fn is_busy(&self) -> bool {
        matches!(self, Slot::Busy(_) | Slot::Done(..))
    }

    /// Starts `op` on the half if it is idle.
    ///
    /// The operation is polled once right away (with a no-op waker), so it
    /// reaches the kernel now rather than when the task next waits on it.
    /// The completion is recorded by the driver and seen by the next
    /// [`Slot::poll_finish`].
    fn start<F>(&mut self, op: impl FnOnce(H) -> F)
    where
        F: Future<Output = (H, io::Result<usize>)> + 'static,
    {
        *self = match std::mem::replace(self, Slot::Empty) {
            Slot::Idle(half) => {
                let mut op: Op<H> = Box::pin(op(half));
                match op.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    Poll::Ready((half, result)) => Slot::Done(half, result),
                    Poll::Pending => Slot::Busy(op),
                }
            }
            other => other,
        };
    }

    /// The result of the operation started, once it completes (never
    /// without one). The half is idle again after a `Ready`.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let (half, result) = match std::mem::replace(self, Slot::Empty) {
            Slot::Done(half, result) => (half, result),
            Slot::Busy(mut op) => match op.as_mut().poll(cx) {
                Poll::Ready(done) => done,
                Poll::Pending => {
                    *self = Slot::Busy(op);
                    return Poll::Pending;
                }
            },
            other => {
                *self = other;
                return Poll::Pending;
            }
        };
        *self = Slot::Idle(half);
        Poll::Ready(result)
    }
}

/// One read into the half's own buffer: [`QUIET_READ`] bytes after a
/// read that brought less (or a frame's), else [`READ_CHUNK`].
async fn read_own<S: AsyncReadRent>(
    (mut half, buf): (OwnedReadHalf<S>, ReadBuf),
) -> ((OwnedReadHalf<S>, ReadBuf), io::Result<usize>) {
    let buf = match buf {
        ReadBuf::Own(buf) => buf,
        ReadBuf::Frame(_) => Vec::new(),
    };
    let size = if buf.len() < QUIET_READ {
        QUIET_READ
    } else {
        READ_CHUNK
    };
    let buf = if buf.capacity() == size {
        let mut buf = buf;
        buf.clear();
        buf
    } else {
        Vec::with_capacity(size)
    };
    let (result, buf) = half.read(buf).await;
    ((half, ReadBuf::Own(buf)), result)
}

/// One read appended to a frame's buffer, into its spare capacity.
async fn read_frame<S: AsyncReadRent>(
    mut half: OwnedReadHalf<S>,
    frame: Vec<u8>,
) -> ((OwnedReadHalf<S>, ReadBuf), io::Result<usize>) {
    let filled = frame.len();
    let (result, spare) = half.read(frame.slice_mut(filled..)).await;
    ((half, ReadBuf::Frame(spare.into_inner())), result)
}

/// One write of one buffer.
async fn write_one<S: AsyncWriteRent>(
    mut half: OwnedWriteHalf<S>,
    buf: Bytes,
) -> (OwnedWriteHalf<S>, io::Result<usize>) {
    let (result, _) = half.write(buf).await;
    (half, wrote(result))
}

/// One vectored write of several buffers.
async fn write_gathered<S: AsyncWriteRent>(
    mut half: OwnedWriteHalf<S>,
    gather: Gather,
) -> (OwnedWriteHalf<S>, io::Result<usize>) {
    let (result, _) = half.writev(gather).await;
    (half, wrote(result))
}

/// A write's result, with nothing written as an error: the peer cannot
/// take more.
fn wrote(result: io::Result<usize>) -> io::Result<usize> {
    match result {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        other => other,
    }
}

/// The buffers of the next write, front first (never none when `tx` has
/// bytes): each chunk of [`HAND_OVER`] bytes or more as is, and each run
/// of smaller chunks between them copied into one buffer, at most
/// [`MAX_GATHER`] buffers and [`MAX_COPY`] copied bytes in all.
fn next_batch(tx: &TxBuf) -> Vec<Bytes> {
    let mut batch = Vec::new();
    let mut run = BytesMut::new();
    let mut copied = 0;
    for chunk in tx.chunks() {
        let buffers = batch.len() + usize::from(!run.is_empty());
        if chunk.len() >= HAND_OVER {
            if buffers == MAX_GATHER {
                break;
            }
            if !run.is_empty() {
                batch.push(std::mem::take(&mut run).freeze());
            }
            batch.push(chunk.clone());
            continue;
        }
        if copied + chunk.len() > MAX_COPY || (run.is_empty() && buffers == MAX_GATHER) {
            break;
        }
        if run.is_empty() {
            run.reserve((MAX_COPY - copied).min(tx.len()));
        }
        run.extend_from_slice(chunk);
        copied += chunk.len();
    }
    if !run.is_empty() {
        batch.push(run.freeze());
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batch's bytes, which must be the front of `tx`.
    fn written(tx: &TxBuf, batch: &[Bytes]) -> usize {
        let bytes: Vec<u8> = batch.iter().flat_map(|buf| buf.to_vec()).collect();
        assert_eq!(
            bytes[..],
            tx.to_vec()[..bytes.len()],
            "the front of tx, in order"
        );
        bytes.len()
    }

    #[test]
    fn large_chunks_go_out_as_they_are_and_small_ones_together() {
        let payload = Bytes::from(vec![7u8; HAND_OVER]);
        let mut tx = TxBuf::new();
        tx.push(Bytes::from_static(b"head1"));
        tx.push(Bytes::from_static(b"head2"));
        tx.push(payload.clone());
        tx.push(Bytes::from_static(b"head3"));
        let batch = next_batch(&tx);
        assert_eq!(batch.len(), 3);
        assert_eq!(&batch[0][..], b"head1head2", "small chunks copied together");
        assert_eq!(batch[1].as_ptr(), payload.as_ptr(), "the payload itself");
        assert_eq!(&batch[2][..], b"head3");
        assert_eq!(written(&tx, &batch), tx.len());
        tx.advance(HAND_OVER);
        let rest = next_batch(&tx);
        assert_eq!(rest.len(), 1, "a short tail joins the next chunks");
        assert_eq!(written(&tx, &rest), 10 + 5);
    }

    #[test]
    fn queued_frames_go_out_in_one_gathered_write_without_a_copy() {
        let frames: Vec<Bytes> = (0..4u8)
            .map(|i| Bytes::from(vec![i; 7 + 64 * 1024 + 1]))
            .collect();
        let mut tx = TxBuf::new();
        for frame in &frames {
            tx.push(frame.clone());
        }
        let batch = next_batch(&tx);
        assert_eq!(batch.len(), frames.len(), "one write for all of them");
        for (buf, frame) in batch.iter().zip(&frames) {
            assert_eq!(buf.as_ptr(), frame.as_ptr(), "not copied");
        }
        assert_eq!(written(&tx, &batch), tx.len());
    }

    #[test]
    fn a_partly_written_frame_goes_on_from_where_it_stopped() {
        let frame = Bytes::from(vec![3u8; 4 * HAND_OVER]);
        let mut tx = TxBuf::new();
        tx.push(frame.clone());
        tx.advance(HAND_OVER);
        let batch = next_batch(&tx);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].as_ptr(), frame[HAND_OVER..].as_ptr(), "not copied");
        assert_eq!(written(&tx, &batch), 3 * HAND_OVER);
    }

    #[test]
    fn one_write_gathers_a_bounded_number_of_buffers() {
        let mut tx = TxBuf::new();
        for i in 0..MAX_GATHER + 5 {
            tx.push(Bytes::from(vec![i as u8; HAND_OVER]));
            tx.push(Bytes::from_static(b"small"));
        }
        let batch = next_batch(&tx);
        assert_eq!(batch.len(), MAX_GATHER);
        let n = written(&tx, &batch);
        tx.advance(n);
        assert!(
            !next_batch(&tx).is_empty(),
            "the rest goes in the next write"
        );
    }

    #[test]
    fn one_write_copies_a_bounded_number_of_bytes() {
        let mut tx = TxBuf::new();
        for _ in 0..3 * MAX_COPY / 1024 {
            tx.push(Bytes::from(vec![1u8; 1024]));
        }
        let mut writes = 0;
        while !tx.is_empty() {
            let batch = next_batch(&tx);
            let n = written(&tx, &batch);
            assert!(n <= MAX_COPY, "{n} bytes copied for one write");
            tx.advance(n);
            writes += 1;
        }
        assert_eq!(writes, 3);
    }
}
