//! The socket loop: one task per PSRT socket (control or data), the same
//! on every runtime. Each turn of [`SocketTask::turn`] acts on what woke
//! the task (input, a write done, a password check, the timer, the stop,
//! the broker's wake), moves output into the `TxBuf` and says what to wait
//! for; the loop then waits on exactly that.
//!
//! Shaped by the memory an idle socket costs: the task waits in one
//! hand-written poll over all its sources, so its future keeps no
//! per-source futures across the wait, and the runtime's [`Stream`] holds
//! no read buffer (or a small one) while the socket is quiet. The broker
//! is reached through [`Shared`]'s lock, which logs the broker's events
//! after the lock is released.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::conn::{
    Action, Connection, ReadInto, SocketTask, Transport, Turn, WakeFlag, Wakeup,
};

use crate::runtime::{Runtime, Stream, Timer};
use crate::shared::Shared;

/// A running password check.
type Check = Pin<Box<dyn Future<Output = bool> + Send>>;

/// One accepted protocol socket, to serve until it closes.
pub struct SocketJob<R: Runtime> {
    shared: Arc<Shared<R>>,
    stream: R::Stream,
    transport: Transport,
    peer: String,
}

impl<R: Runtime> SocketJob<R> {
    pub(crate) fn new(
        shared: Arc<Shared<R>>,
        stream: R::Stream,
        transport: Transport,
        peer: String,
    ) -> Self {
        Self {
            shared,
            stream,
            transport,
            peer,
        }
    }

    /// Serves the socket until it closes; the server's drain counts it as
    /// live meanwhile.
    ///
    /// Not an `async fn`: its future would keep the job beside the parts
    /// `serve` takes from it.
    pub(crate) fn run(self) -> impl Future<Output = ()> {
        serve(self.shared, self.stream, self.transport, self.peer)
    }
}

/// Serves one socket; see [`SocketJob::run`].
async fn serve<R: Runtime>(
    shared: Arc<Shared<R>>,
    mut stream: R::Stream,
    transport: Transport,
    peer: String,
) {
    let _live = shared.track();
    let wake = Arc::new(WakeFlag::default());
    let mut conn = Connection::new(
        shared.conn.clone(),
        transport,
        peer,
        Waker::from(wake.clone()),
        shared.timeout,
        Instant::now(),
    );
    shared
        .audit
        .connected(conn.peer(), listener_name(transport));
    let mut tx = TxBuf::new();
    let mut task = SocketTask::new(shared.drain_timeout);
    let mut check: Option<Check> = None;
    let mut stop = pin!(shared.stopped());
    let mut timer = R::Timer::default();
    let mut wakeup = None;

    loop {
        let now = Instant::now();
        let turn = task.turn(wakeup, &mut conn, &*shared, &mut tx, now, check.is_none());
        if let Some(kind) = conn.newly_greeted() {
            shared.metrics.opened(kind);
        }
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
        timer.set(deadline);
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
            if timer.poll_fired(cx).is_ready() {
                return Poll::Ready(Wakeup::Timeout);
            }
            if !tx.is_empty()
                && let Poll::Ready(wrote) = stream.poll_write(cx, &tx)
            {
                return Poll::Ready(Wakeup::Wrote(wrote));
            }
            if read {
                // `read_into` reserves nothing for an idle socket, makes
                // room for the whole of a frame once enough of it has come
                // (see `psrt_proto::conn::RESERVE_AHEAD`), and has the rest
                // of a large frame read straight into its own buffer.
                let read = match conn.read_into() {
                    ReadInto::Input(buf) => stream.poll_read(cx, buf),
                    ReadInto::Frame(frame) => stream.poll_read_frame(cx, frame),
                };
                return read.map(Wakeup::Read);
            }
            Poll::Pending
        })
        .await;
        if let Wakeup::Checked(_) = next {
            check = None;
        }
        wakeup = Some(next);
    }
    shared.metrics.closed(&conn);
    shared.audit.disconnected(&conn, Instant::now());
    stream.shutdown().await;
}

/// The listener a socket came from, for the connect log line.
fn listener_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Tcp => "tcp",
        Transport::Unix => "unix",
    }
}

/// The size of the task future serving one socket on runtime `R`: every
/// idle socket holds one, so each runtime crate tests that it stays small.
pub fn socket_task_size<R: Runtime>(shared: &Arc<Shared<R>>, stream: R::Stream) -> usize {
    let job = crate::job::Job::socket(shared.clone(), stream, Transport::Tcp, String::new());
    std::mem::size_of_val(&job.run())
}
