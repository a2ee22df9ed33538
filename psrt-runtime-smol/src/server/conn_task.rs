//! One task per PSRT socket (control or data): read → `handle_input`,
//! `poll_transmit` → vectored write, timers, password checks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::conn::{Action, Connection, DRAIN_RECHECK, Transport};
use smol::channel::Sender;
use smol::future::{FutureExt, pending};
use smol::stream::StreamExt;
use smol::{Async, Timer};

use super::Shared;
use super::socket::{Socket, read_append, write_tx};

/// Wakes the task when the broker queues something for this socket: a
/// one-slot channel keeps at most one pending wake-up.
struct ChannelWaker(Sender<()>);

impl Wake for ChannelWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.try_send(());
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.0.try_send(());
    }
}

/// What woke the task.
enum Event {
    Stopping,
    Checked(bool),
    Timeout,
    Woken,
    Wrote(io::Result<usize>),
    Read(io::Result<usize>),
}

/// Serves one accepted socket until it closes. `_live` is dropped when
/// the task ends, which is how the server knows every socket has drained.
pub(crate) async fn serve<S: Socket>(
    shared: Arc<Shared>,
    stream: Async<S>,
    transport: Transport,
    peer: String,
    _live: Sender<()>,
) {
    let (wake_tx, woken) = smol::channel::bounded(1);
    let mut woken = pin!(woken);
    let mut conn = Connection::new(
        shared.conn.clone(),
        transport,
        peer,
        Waker::from(Arc::new(ChannelWaker(wake_tx))),
        shared.timeout,
        Instant::now(),
    );
    let mut tx = TxBuf::new();
    let mut check: Option<Pin<Box<dyn Future<Output = bool> + Send>>> = None;
    let mut read_open = true;
    let mut stop = pin!(shared.stopped());
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
        let recheck = drain_deadline.map(|d| d.min(Instant::now() + DRAIN_RECHECK));
        let deadline = earliest(conn.poll_timeout(), recheck);
        let can_read = read_open && drain_deadline.is_none() && conn.wants_input(&tx);
        let event = {
            let stopping = when(drain_deadline.is_none(), stop.as_mut());
            let wrote = when(!tx.is_empty(), stream.write_with(|s| write_tx(s, &tx)));
            let input = conn.read_buf();
            let read = when(can_read, stream.read_with(|s| read_append(s, input)));
            async { Event::Checked(join_check(&mut check).await) }
                .or(async {
                    stopping.await;
                    Event::Stopping
                })
                .or(async {
                    sleep_until(deadline).await;
                    Event::Timeout
                })
                .or(async {
                    woken.next().await;
                    Event::Woken
                })
                .or(async { Event::Wrote(wrote.await) })
                .or(async { Event::Read(read.await) })
                .await
        };
        match event {
            Event::Read(Ok(0) | Err(_)) => {
                read_open = false;
                conn.handle_eof(&mut shared.lock());
            }
            Event::Read(Ok(_)) => conn.handle_input(&mut shared.lock(), Instant::now()),
            Event::Wrote(Ok(n)) => tx.advance(n),
            Event::Wrote(Err(_)) => {
                conn.handle_eof(&mut shared.lock());
                break;
            }
            Event::Woken => {}
            Event::Checked(ok) => {
                check = None;
                conn.password_checked(ok, &mut shared.lock(), Instant::now());
            }
            Event::Timeout => conn.handle_timeout(&mut shared.lock(), Instant::now()),
            Event::Stopping => drain_deadline = Some(Instant::now() + shared.drain_timeout),
        }
    }
    if !conn.is_closed() {
        conn.handle_eof(&mut shared.lock());
    }
    stream.get_ref().shutdown_write();
}

/// `fut` if `enabled`, else a future that never completes (a disabled
/// branch of the event race).
async fn when<F: Future>(enabled: bool, fut: F) -> F::Output {
    if enabled { fut.await } else { pending().await }
}

/// The result of the running password check, if any.
async fn join_check(check: &mut Option<Pin<Box<dyn Future<Output = bool> + Send>>>) -> bool {
    match check {
        Some(result) => result.as_mut().await,
        None => pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            Timer::at(at).await;
        }
        None => pending().await,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
