//! One task per PSRT socket (control or data): read → `handle_input`,
//! `poll_transmit` → vectored write, timers, password checks.
//!
//! Shaped by the memory an idle socket costs: the task waits in one
//! hand-written poll over all its sources, so its future keeps no
//! per-source futures across the wait; a read waits for readiness and
//! lands in the thread's scratch buffer ([`read_append`]), so an idle
//! socket holds no read buffer; the `writev` slice array lives on the
//! stack of one poll.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::conn::{Action, Connection, SocketTask, Transport, Turn, WakeFlag, Wakeup};
use smol::channel::Sender;
use smol::{Async, Timer};

use super::Shared;
use super::socket::{Socket, read_append, write_tx};

/// Attempts of one socket operation per poll when readiness turns out
/// stale (the reactor reported an event the socket no longer has).
const MAX_TRIES: usize = 3;

/// A running password check.
type Check = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Serves one accepted socket until it closes. `_live` is dropped when
/// the task ends, which is how the server knows every socket has drained.
pub(crate) async fn serve<S: Socket>(
    shared: Arc<Shared>,
    stream: Async<S>,
    transport: Transport,
    peer: String,
    _live: Sender<()>,
) {
    let wake = Arc::new(WakeFlag::default());
    let mut conn = Connection::new(
        shared.conn.clone(),
        transport,
        peer,
        Waker::from(wake.clone()),
        shared.timeout,
        Instant::now(),
    );
    let mut tx = TxBuf::new();
    let mut task = SocketTask::new(shared.drain_timeout);
    let mut check: Option<Check> = None;
    let mut stop = pin!(shared.stopped());
    let mut timer = Timer::never();
    // Whether a read may find bytes without waiting: true until a read
    // would block, then again once the reactor reports readiness.
    let mut readable = true;
    let mut wakeup = None;

    loop {
        let turn = task.turn(
            wakeup,
            &mut conn,
            &*shared,
            &mut tx,
            Instant::now(),
            check.is_none(),
        );
        let Turn::Wait {
            action,
            read,
            deadline,
        } = turn
        else {
            break;
        };
        if let Some(Action::CheckPassword(job)) = action {
            check = Some(Box::pin(shared.verify(job)));
        }
        match deadline {
            Some(at) => timer.set_at(at),
            None => timer = Timer::never(),
        }
        let next = poll_fn(|cx| {
            if let Some(pending) = &mut check
                && let Poll::Ready(ok) = pending.as_mut().poll(cx)
            {
                return Poll::Ready(Wakeup::Checked(ok));
            }
            if !task.is_draining() && stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wakeup::Stopping);
            }
            if wake.take(cx) {
                return Poll::Ready(Wakeup::Woken);
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Wakeup::Timeout);
            }
            if !tx.is_empty()
                && let Poll::Ready(wrote) = poll_write(&stream, &tx, cx)
            {
                return Poll::Ready(Wakeup::Wrote(wrote));
            }
            if read {
                return poll_read(&stream, &mut readable, &mut conn, cx).map(Wakeup::Read);
            }
            Poll::Pending
        })
        .await;
        if let Wakeup::Checked(_) = next {
            check = None;
        }
        wakeup = Some(next);
    }
    stream.get_ref().shutdown_write();
}

/// Writes the head of `tx` if the socket takes it, else waits until the
/// socket is writable.
fn poll_write<S: Socket>(
    stream: &Async<S>,
    tx: &TxBuf,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    for _ in 0..MAX_TRIES {
        match write_tx(stream.get_ref(), tx) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if stream.poll_writable(cx)?.is_pending() {
                    return Poll::Pending;
                }
            }
            done => return Poll::Ready(done),
        }
    }
    yield_now(cx)
}

/// Reads into the connection once the socket may have bytes: a socket
/// that would block waits for readiness without holding a buffer.
fn poll_read<S: Socket>(
    stream: &Async<S>,
    readable: &mut bool,
    conn: &mut Connection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    for _ in 0..MAX_TRIES {
        if !*readable {
            if stream.poll_readable(cx)?.is_pending() {
                return Poll::Pending;
            }
            *readable = true;
        }
        // `read_buf_with(0)` reserves nothing for an idle socket, but
        // makes room for the whole of a large frame once enough of it
        // has come (see `psrt_proto::conn::RESERVE_AHEAD`).
        match read_append(stream.get_ref(), conn.read_buf_with(0)) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => *readable = false,
            done => return Poll::Ready(done),
        }
    }
    yield_now(cx)
}

/// Readiness kept being reported without the socket being ready: try
/// again at the task's next poll instead of spinning here.
fn yield_now<T>(cx: &mut Context<'_>) -> Poll<T> {
    cx.waker().wake_by_ref();
    Poll::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use psrt_proto::spec::ServerSpec;

    /// Every idle socket holds one `serve` future: it must stay small.
    #[test]
    fn serve_future_stays_small() {
        smol::block_on(async {
            let addr = "127.0.0.1:0".parse().expect("address");
            let server = super::super::Server::bind(ServerSpec::open(addr))
                .await
                .expect("bind");
            let client = Async::<std::net::TcpStream>::connect(server.addrs().tcp[0])
                .await
                .expect("connect");
            let (live, _) = smol::channel::bounded(1);
            let future = serve(
                server.shared.clone(),
                client,
                Transport::Tcp,
                String::new(),
                live,
            );
            let size = std::mem::size_of_val(&future);
            assert!(size <= 1024, "serve future is {size} bytes");
        });
    }
}
