//! Socket plumbing shared by the client tasks: opening a TCP or Unix
//! stream, and reads and writes that survive the tasks' `select!`.
//!
//! monoio's I/O takes owned buffers, and with io_uring a read or write
//! future dropped mid-flight may already have moved bytes the task then
//! never sees. So each socket half lives in a [`Slot`]: an operation, once
//! started, is kept across the loop's `select!` until it completes; the
//! select only waits on it by reference (the server's connection task does
//! the same).

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Split, Splitable};
use monoio::net::{TcpStream, UnixStream};
use psrt_proto::TxBuf;
use psrt_proto::client::{MAX_IOV, READ_CHUNK, ReadOutcome, Target};

/// Writes go out as owned buffers (io_uring cannot borrow): a chunk this
/// large is handed over as is (shared, no copy); smaller ones are copied
/// together into one buffer of at most this size, so many small requests
/// still cost one syscall.
const MAX_COPY: usize = 64 * 1024;

/// A socket the client tasks can split into owned halves.
pub(super) trait Stream: Split + AsyncReadRent + AsyncWriteRent + 'static {}

impl<T: Split + AsyncReadRent + AsyncWriteRent + 'static> Stream for T {}

/// An opened control or data socket.
pub(super) enum Opened {
    /// A TCP connection (Nagle off: requests are small and pipelined).
    Tcp(TcpStream),
    /// A Unix-socket connection.
    Unix(UnixStream),
}

/// Opens a stream to the target: a TCP connection tries every resolved
/// address in turn.
pub(super) async fn open(target: &Target) -> io::Result<Opened> {
    match target {
        Target::Tcp { host, port } => open_tcp(host, *port).await,
        Target::Unix(path) => Ok(Opened::Unix(UnixStream::connect(path).await?)),
    }
}

async fn open_tcp(host: &str, port: u16) -> io::Result<Opened> {
    let mut last = None;
    for candidate in resolve(host, port).await? {
        match TcpStream::connect_addr(candidate).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(Opened::Tcp(stream));
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address resolved")))
}

/// The addresses of `host`. An IP address is taken as is; a name goes to
/// the system resolver, which blocks, on a short-lived thread so the
/// event loop keeps running meanwhile (monoio's own `connect` would block
/// it, and would try the first address only).
async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = flume::bounded(1);
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("psrt-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect),
            );
        })?;
    rx.recv_async()
        .await
        .map_err(|_| io::Error::other("the resolver thread failed"))?
}

/// An operation on a socket half, returning the half and its result.
type Op<H> = Pin<Box<dyn Future<Output = (H, io::Result<usize>)>>>;

/// A socket half that is either idle or owned by one operation.
enum Slot<H> {
    Idle(H),
    /// An operation in flight.
    Busy(Op<H>),
    /// An operation that completed when it was started; its result waits
    /// for [`Slot::finish`].
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
    /// reaches the kernel now rather than when the task next waits on it:
    /// a read started before the task waits on something else is filled
    /// meanwhile. The completion is recorded by the driver and seen by the
    /// next [`Slot::finish`].
    fn start<F>(&mut self, op: impl FnOnce(H) -> F)
    where
        F: Future<Output = (H, io::Result<usize>)> + 'static,
    {
        *self = match std::mem::replace(self, Slot::Empty) {
            Slot::Idle(half) => Slot::submit(Box::pin(op(half))),
            other => other,
        };
    }

    fn submit(mut op: Op<H>) -> Slot<H> {
        let mut cx = Context::from_waker(Waker::noop());
        match op.as_mut().poll(&mut cx) {
            Poll::Ready((half, result)) => Slot::Done(half, result),
            Poll::Pending => Slot::Busy(op),
        }
    }

    /// Waits for the operation started (forever if none). Dropping this
    /// future leaves the operation running in the slot.
    async fn finish(&mut self) -> io::Result<usize> {
        match std::mem::replace(self, Slot::Empty) {
            Slot::Done(half, result) => {
                *self = Slot::Idle(half);
                return result;
            }
            other => *self = other,
        }
        let Slot::Busy(op) = self else {
            return std::future::pending().await;
        };
        let (half, result) = op.as_mut().await;
        *self = Slot::Idle(half);
        result
    }
}

/// The read half of a socket with its own buffer.
pub(super) struct Reader<S: Stream> {
    slot: Slot<(OwnedReadHalf<S>, Vec<u8>)>,
}

impl<S: Stream> Reader<S> {
    /// Starts a read unless one is in flight, so the kernel fills the
    /// half's buffer while the task waits on something else.
    pub(super) fn start(&mut self) {
        self.slot.start(read_some);
    }

    /// Reads what the socket has into `into`: starts a read unless one is
    /// in flight, then waits for it. Cancel-safe: a read interrupted by
    /// the caller's `select!` stays in flight and delivers next time.
    pub(super) async fn read_into(&mut self, into: &mut BytesMut) -> ReadOutcome {
        self.start();
        let result = self.slot.finish().await;
        match (result, &self.slot) {
            (Ok(n), Slot::Idle((_, buf))) if n > 0 => {
                into.extend_from_slice(buf);
                ReadOutcome::Data
            }
            _ => ReadOutcome::Eof,
        }
    }
}

/// The write half of a socket.
pub(super) struct Writer<S: Stream> {
    slot: Slot<OwnedWriteHalf<S>>,
}

impl<S: Stream> Writer<S> {
    /// Starts writing the front of `tx` unless a write is in flight or
    /// `tx` is empty. `tx` must stay unchanged at its front until
    /// [`Writer::finish`] reports how much went out.
    pub(super) fn start(&mut self, tx: &TxBuf) {
        if tx.is_empty() || self.slot.is_busy() {
            return;
        }
        let batch = next_batch(tx);
        self.slot.start(|half| write_some(half, batch));
    }

    /// Whether a write is in flight.
    pub(super) fn is_busy(&self) -> bool {
        self.slot.is_busy()
    }

    /// Waits for the write in flight and returns the bytes written.
    /// Cancel-safe like [`Reader::read_into`].
    pub(super) async fn finish(&mut self) -> io::Result<usize> {
        self.slot.finish().await
    }

    /// Half-closes the stream if no write is in flight; errors are moot at
    /// this point.
    pub(super) async fn shutdown(self) {
        if let Slot::Idle(mut half) = self.slot {
            let _ = half.shutdown().await;
        }
    }
}

/// Splits a stream into its halves.
pub(super) fn split<S: Stream>(stream: S) -> (Reader<S>, Writer<S>) {
    let (reader, writer) = stream.into_split();
    (
        Reader {
            slot: Slot::Idle((reader, Vec::with_capacity(READ_CHUNK))),
        },
        Writer {
            slot: Slot::Idle(writer),
        },
    )
}

async fn read_some<S: AsyncReadRent>(
    (mut half, mut buf): (OwnedReadHalf<S>, Vec<u8>),
) -> ((OwnedReadHalf<S>, Vec<u8>), io::Result<usize>) {
    buf.clear();
    let (result, buf) = half.read(buf).await;
    ((half, buf), result)
}

async fn write_some<S: AsyncWriteRent>(
    mut half: OwnedWriteHalf<S>,
    batch: Bytes,
) -> (OwnedWriteHalf<S>, io::Result<usize>) {
    let (result, _) = half.write(batch).await;
    let result = match result {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        other => other,
    };
    (half, result)
}

/// The next buffer to write: a large first chunk as is, else the first
/// chunks copied together up to [`MAX_COPY`] bytes.
fn next_batch(tx: &TxBuf) -> Bytes {
    if let Some(front) = tx.front()
        && front.len() >= MAX_COPY
    {
        return front.clone();
    }
    let mut slices = [IoSlice::new(&[]); MAX_IOV];
    let count = tx.io_slices(&mut slices);
    let mut batch = BytesMut::with_capacity(tx.len().min(MAX_COPY));
    for slice in slices.iter().take(count) {
        if !batch.is_empty() && batch.len() + slice.len() > MAX_COPY {
            break;
        }
        batch.extend_from_slice(slice);
    }
    batch.freeze()
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
