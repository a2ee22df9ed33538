//! One task per PSRT socket (control or data): read → `handle_input`,
//! `poll_transmit` → write, timers, password checks.
//!
//! monoio's I/O takes owned buffers, and with io_uring a read or write
//! future dropped mid-flight may already have moved bytes the task then
//! never sees. So the socket's read half and write half each live in a
//! [`Slot`]: an operation, once started, is kept across the loop's
//! `select!` until it completes; the select only waits on it by
//! reference.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Split, Splitable};
use psrt_proto::TxBuf;
use psrt_proto::conn::{Action, Connection, DRAIN_RECHECK, Transport};

use super::Shared;

/// Bytes the socket reads at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks looked at when gathering one write.
const MAX_IOV: usize = 64;
/// Writes go out as owned buffers (io_uring cannot borrow): a chunk this
/// large is handed over as is (shared, no copy); smaller ones are copied
/// together into one buffer of at most this size, so many small messages
/// still cost one syscall.
const MAX_COPY: usize = 64 * 1024;

/// Wakes the task when the broker queues something for this socket. The
/// channel holds one token, so wakes coalesce.
struct ChannelWaker(async_channel::Sender<()>);

impl Wake for ChannelWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.try_send(());
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.0.try_send(());
    }
}

/// An operation on a socket half, returning the half and its result.
type Op<H> = Pin<Box<dyn Future<Output = (H, io::Result<usize>)>>>;

/// A socket half that is either idle or owned by one operation in flight.
enum Slot<H> {
    Idle(H),
    Busy(Op<H>),
    /// Only while [`Slot::start`] swaps states.
    Empty,
}

impl<H: 'static> Slot<H> {
    fn is_busy(&self) -> bool {
        matches!(self, Slot::Busy(_))
    }

    fn idle(&self) -> Option<&H> {
        match self {
            Slot::Idle(half) => Some(half),
            _ => None,
        }
    }

    /// Starts `op` on the half if it is idle.
    fn start<F>(&mut self, op: impl FnOnce(H) -> F)
    where
        F: Future<Output = (H, io::Result<usize>)> + 'static,
    {
        match std::mem::replace(self, Slot::Empty) {
            Slot::Idle(half) => *self = Slot::Busy(Box::pin(op(half))),
            other => *self = other,
        }
    }

    /// Waits for the operation in flight (forever if none). Dropping this
    /// future leaves the operation running in the slot.
    async fn finish(&mut self) -> io::Result<usize> {
        let Slot::Busy(op) = self else {
            return std::future::pending().await;
        };
        let (half, result) = op.as_mut().await;
        *self = Slot::Idle(half);
        result
    }
}

/// Serves one accepted socket until it closes.
pub(crate) async fn serve<S>(shared: Arc<Shared>, stream: S, transport: Transport, peer: String)
where
    S: Split + AsyncReadRent + AsyncWriteRent + 'static,
{
    let _live = shared.track();
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    let waker = Waker::from(Arc::new(ChannelWaker(wake_tx)));
    let mut conn = Connection::new(
        shared.conn.clone(),
        transport,
        peer,
        waker,
        shared.timeout,
        Instant::now(),
    );
    let (reader, writer) = stream.into_split();
    let mut reader = Slot::Idle((reader, Vec::with_capacity(READ_CHUNK)));
    let mut writer = Slot::Idle(writer);
    let mut tx = TxBuf::new();
    let mut check: Option<Pin<Box<dyn Future<Output = bool>>>> = None;
    let mut read_open = true;
    let mut drain_deadline: Option<Instant> = None;

    loop {
        {
            let mut broker = shared.lock();
            conn.poll_transmit(&mut broker, Instant::now(), &mut tx);
            if check.is_none()
                && let Some(Action::CheckPassword(job)) = conn.poll_action()
            {
                check = Some(Box::pin(shared.verify(job)));
            }
            Shared::log_events(&mut broker);
        }
        if conn.is_done(&tx) {
            break;
        }
        if drain_deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if drain_deadline.is_some() && tx.is_empty() && conn.backlog(&shared.lock()) == 0 {
            break;
        }
        let recheck = drain_deadline.map(|_| Instant::now() + DRAIN_RECHECK);
        let timeout = earliest(conn.poll_timeout(), recheck);
        let can_read = read_open && drain_deadline.is_none() && conn.wants_input(&tx);
        if can_read {
            reader.start(read_some);
        }
        if !tx.is_empty() {
            let batch = next_batch(&tx);
            writer.start(|half| write_some(half, batch));
        }
        monoio::select! {
            read = reader.finish(), if reader.is_busy() => {
                let mut broker = shared.lock();
                match (read, reader.idle()) {
                    (Ok(n), Some((_, buf))) if n > 0 => {
                        conn.read_buf_with(buf.len()).extend_from_slice(buf);
                        conn.handle_input(&mut broker, Instant::now());
                    }
                    _ => {
                        read_open = false;
                        conn.handle_eof(&mut broker);
                    }
                }
            }
            written = writer.finish(), if writer.is_busy() => match written {
                Ok(n) => tx.advance(n),
                Err(_) => {
                    conn.handle_eof(&mut shared.lock());
                    break;
                }
            },
            _ = wake_rx.recv() => {}
            ok = join_check(&mut check), if check.is_some() => {
                check = None;
                conn.password_checked(ok, &mut shared.lock(), Instant::now());
            }
            _ = sleep_until(timeout), if timeout.is_some() => {
                conn.handle_timeout(&mut shared.lock(), Instant::now());
            }
            _ = shared.stopped(), if drain_deadline.is_none() => {
                drain_deadline = Some(Instant::now() + shared.drain_timeout);
            }
        }
    }
    if !conn.is_closed() {
        conn.handle_eof(&mut shared.lock());
    }
    // A write still in flight (drain deadline) is dropped with the socket.
    if let Slot::Idle(mut half) = writer {
        let _ = half.shutdown().await;
    }
}

/// Reads what the socket has into the half's own buffer; the caller copies
/// it into the connection's read buffer, which must stay with the
/// connection (it holds unprocessed input a password check may resume).
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

/// The result of a password check; a check that panicked counts as failed.
async fn join_check(check: &mut Option<Pin<Box<dyn Future<Output = bool>>>>) -> bool {
    match check {
        Some(result) => result.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
