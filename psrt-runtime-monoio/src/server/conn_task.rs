//! One task per PSRT socket (control or data): read → `handle_input`,
//! `poll_transmit` → write, timers, password checks.
//!
//! The socket's halves are [`crate::io_slot`]'s: completion I/O (io_uring
//! where the kernel has it), reads in flight kept across the task's waits
//! with a small buffer while the socket is quiet. The task waits in one
//! hand-written poll over all its sources, so its future keeps no
//! per-source futures across the wait.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use monoio::time::Sleep;
use psrt_proto::TxBuf;
use psrt_proto::conn::{Action, Connection, SocketTask, Transport, Turn, WakeFlag, Wakeup};

use super::Shared;
use crate::io_slot::{self, Stream};

/// A running password check.
type Check = Pin<Box<dyn Future<Output = bool>>>;

/// Serves one accepted socket until it closes.
pub(crate) async fn serve<S: Stream>(
    shared: Arc<Shared>,
    stream: S,
    transport: Transport,
    peer: String,
) {
    let _live = shared.track();
    let (mut reader, mut writer) = io_slot::split(stream);
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
    // Boxed: monoio's timer entry is 640 bytes of cache-padded state.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
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
        let deadline = deadline.map(monoio::time::Instant::from_std);
        match (&mut timer, deadline) {
            (Some(sleep), Some(at)) => sleep.as_mut().reset(at),
            (slot, at) => *slot = at.map(|at| Box::pin(monoio::time::sleep_until(at))),
        }
        writer.start(&tx);
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
            if let Some(sleep) = &mut timer
                && sleep.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Wakeup::Timeout);
            }
            if writer.is_busy()
                && let Poll::Ready(wrote) = writer.poll_finish(cx)
            {
                return Poll::Ready(Wakeup::Wrote(wrote));
            }
            if read {
                return reader.poll_read(cx, conn.read_buf()).map(Wakeup::Read);
            }
            Poll::Pending
        })
        .await;
        if let Wakeup::Checked(_) = next {
            check = None;
        }
        wakeup = Some(next);
    }
    // A write still in flight (drain deadline) is dropped with the socket.
    writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use psrt_proto::spec::ServerSpec;

    /// Every idle socket holds one `serve` future: it must stay small.
    #[monoio::test(timer_enabled = true)]
    async fn serve_future_stays_small() {
        let addr = "127.0.0.1:0".parse().expect("address");
        let server = super::super::Server::bind(ServerSpec::open(addr)).expect("bind");
        let client = monoio::net::TcpStream::connect_addr(server.addrs().tcp[0])
            .await
            .expect("connect");
        let future = serve(server.shared.clone(), client, Transport::Tcp, String::new());
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1024, "serve future is {size} bytes");
    }
}
