//! The driver's loop for one socket ([`SocketTask::turn`]), how it reaches
//! the shared broker ([`BrokerLock`]), and a waker for hand-written polls
//! ([`WakeFlag`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use super::{Action, Connection, DRAIN_RECHECK};
use crate::broker::Broker;
use crate::txbuf::TxBuf;

/// How a [`SocketTask`] reaches the broker that all of a server's sockets
/// share: a multi-threaded driver implements it with its lock (and logs the
/// broker's events once the lock is released); single-threaded code uses
/// the `RefCell` one.
pub trait BrokerLock {
    /// Runs `f` on the broker, holding the lock only while `f` runs.
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R;
}

impl BrokerLock for std::cell::RefCell<Broker> {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

impl BrokerLock for Mutex<Broker> {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The rest of a driver task's state for one socket: whether the peer's
/// side is still open and, once the server stops, until when the socket
/// may drain. [`SocketTask::turn`] is the whole of a driver's loop but the
/// waiting, so the runtimes decide alike when to read, when to wake and
/// when to close:
///
/// ```text
/// let mut wakeup = None;
/// loop {
///     match task.turn(wakeup, &conn, &lock, ..) { Close => break, Wait { .. } => .. }
///     wakeup = Some(wait for the first source that is ready);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SocketTask {
    read_open: bool,
    drain_timeout: Duration,
    drain_deadline: Option<Instant>,
}

/// What woke a driver's task, for [`SocketTask::turn`] to act on.
#[derive(Debug)]
pub enum Wakeup {
    /// A read appended this many bytes to [`Connection::read_buf`]; `0`
    /// is end of stream.
    Read(std::io::Result<usize>),
    /// A write took this many bytes from the head of the `TxBuf`.
    Wrote(std::io::Result<usize>),
    /// The answer to an [`Action::CheckPassword`].
    Checked(bool),
    /// The deadline of [`Turn::Wait`] passed.
    Timeout,
    /// The server began stopping.
    Stopping,
    /// The connection's waker fired: the broker has something for it, or
    /// the connection left input to decode.
    Woken,
}

/// What a driver task does after [`SocketTask::turn`].
#[derive(Debug)]
pub enum Turn {
    /// Close the socket and end the task: the connection is done (and
    /// closed), its drain is over, or the socket failed.
    Close,
    /// Wait for the first of: input (if `read`), the socket taking output
    /// (if the `TxBuf` is not empty), the connection's waker, `deadline`,
    /// the server's stop (unless [`SocketTask::is_draining`]).
    Wait {
        /// Slow work to start now.
        action: Option<Action>,
        /// Whether to read the socket.
        read: bool,
        /// When to wake with [`Wakeup::Timeout`] if nothing else happens
        /// first.
        deadline: Option<Instant>,
    },
}

impl SocketTask {
    /// A task for a freshly accepted socket; once the server stops, the
    /// socket may send what is queued for up to `drain_timeout`.
    pub fn new(drain_timeout: Duration) -> Self {
        Self {
            read_open: true,
            drain_timeout,
            drain_deadline: None,
        }
    }

    /// Whether the server's stop was seen: drivers stop waiting for it.
    pub fn is_draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// One turn: acts on `wakeup`, moves output into `tx`, hands out an
    /// [`Action`] when `take_action` (no check of this socket runs) and
    /// decides what to wait for. A draining socket closes once its session
    /// has nothing queued, or at its deadline.
    ///
    /// The broker is reached through `broker`, which a multi-threaded
    /// driver implements with its lock, at most once per turn and only
    /// when [`Connection::wants_broker`] (or a draining socket must check
    /// its backlog): TLS, framing and decoding run before the lock is
    /// taken, encryption after it is released. A publish therefore costs
    /// one acquisition on the publisher's socket, shared by every request
    /// decoded from the same read (up to 128), whether the socket uses TLS
    /// or not; each subscriber's data socket then takes one acquisition
    /// when the broker wakes it (once per queue that stops being empty, not
    /// per message) to move everything queued, up to its output bound. A
    /// keep-alive NOP and a data socket's beacon take none.
    pub fn turn<L: BrokerLock + ?Sized>(
        &mut self,
        wakeup: Option<Wakeup>,
        conn: &mut Connection,
        broker: &L,
        tx: &mut TxBuf,
        now: Instant,
        take_action: bool,
    ) -> Turn {
        let alive = match wakeup {
            Some(wakeup) => self.apply(wakeup, conn, tx, now),
            None => true,
        };
        // A draining socket may be finished: only the broker knows whether
        // its session still has messages queued.
        let drain = self
            .drain_deadline
            .filter(|&at| alive && (now >= at || (tx.is_empty() && !conn.has_output())));
        let mut drained = false;
        if conn.wants_broker(tx) || drain.is_some() {
            broker.with_broker(|broker| {
                conn.handle_broker(broker, now, tx);
                let Some(at) = drain else {
                    return;
                };
                let idle = tx.is_empty() && !conn.has_output() && conn.backlog(broker) == 0;
                if now >= at || idle {
                    conn.handle_eof(now);
                    conn.handle_broker(broker, now, tx);
                    drained = true;
                }
            });
        }
        if !alive || drained {
            return Turn::Close;
        }
        conn.poll_transmit(now, tx);
        let action = if take_action {
            conn.poll_action()
        } else {
            None
        };
        if conn.is_done(tx) {
            return Turn::Close;
        }
        let recheck = self.drain_deadline.map(|d| d.min(now + DRAIN_RECHECK));
        let deadline = match (conn.poll_timeout(), recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Turn::Wait {
            action,
            read: self.read_open && !self.is_draining() && conn.wants_input(tx),
            deadline,
        }
    }

    /// Acts on what woke the task, without the broker; false when the
    /// socket failed.
    fn apply(
        &mut self,
        wakeup: Wakeup,
        conn: &mut Connection,
        tx: &mut TxBuf,
        now: Instant,
    ) -> bool {
        match wakeup {
            Wakeup::Read(Ok(0) | Err(_)) => {
                self.read_open = false;
                conn.handle_eof(now);
            }
            Wakeup::Read(Ok(_)) => conn.handle_input(now),
            Wakeup::Wrote(Ok(n)) => tx.advance(n),
            Wakeup::Wrote(Err(_)) => {
                conn.handle_eof(now);
                return false;
            }
            Wakeup::Checked(ok) => conn.password_checked(ok),
            Wakeup::Timeout => conn.handle_timeout(now),
            Wakeup::Stopping => {
                self.drain_deadline.get_or_insert(now + self.drain_timeout);
            }
            Wakeup::Woken => conn.handle_wake(now),
        }
        true
    }
}

/// The [`Waker`] a driver gives [`Connection::new`] when its task waits in
/// one hand-written poll over all of a socket's sources: the broker's wake
/// sets a flag and wakes the task, and the task's poll [`WakeFlag::take`]s
/// the flag to learn that it must call [`Connection::handle_wake`] (the
/// task's own waker would wake the poll without saying why). It takes no
/// allocation per wake-up, unlike a channel.
#[derive(Debug, Default)]
pub struct WakeFlag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl WakeFlag {
    /// Whether the broker woke the connection since the last call; wakes
    /// `cx`'s task at the next one.
    pub fn take(&self, cx: &Context<'_>) -> bool {
        {
            let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *task {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = &*task {
            waker.wake_by_ref();
        }
    }
}

/// A broker "lock" for tests that counts its acquisitions, so a test can
/// assert how often a path takes the broker.
#[cfg(test)]
pub(crate) struct CountingLock {
    /// The broker the counted closures borrow.
    pub(crate) broker: std::cell::RefCell<Broker>,
    taken: std::cell::Cell<usize>,
}

#[cfg(test)]
impl BrokerLock for CountingLock {
    fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        self.taken.set(self.taken.get() + 1);
        f(&mut self.broker.borrow_mut())
    }
}

#[cfg(test)]
impl CountingLock {
    /// Counts the acquisitions of `broker`'s lock from now on.
    pub(crate) fn new(broker: Broker) -> Self {
        Self {
            broker: std::cell::RefCell::new(broker),
            taken: std::cell::Cell::new(0),
        }
    }

    /// Acquisitions since the last call.
    pub(crate) fn take_count(&self) -> usize {
        self.taken.replace(0)
    }
}
