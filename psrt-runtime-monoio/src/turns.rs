//! Which worker thread accepts the next connection of a listener.
//!
//! monoio tasks never move between threads, so the thread that accepts a
//! socket serves it for its life. Left to the kernel, every worker keeping
//! an accept in flight on its copy of the listener, nearly every
//! connection went to the same worker (in psrt-bench's fan-out, all 50
//! subscribers' sockets: that worker did 83 % of the server's work, the
//! other one only read the publisher's socket). So the copies of a
//! listener take turns: only the worker holding the turn has an accept in
//! flight, and each accepted connection passes the turn on.
//!
//! The turn goes round in a staggered rotation ([`worker_of`]): over an
//! even number of workers, the rotation starts one worker further on
//! every lap. Clients open their
//! control and data sockets in pairs, and a plain rotation over two
//! workers would put every data socket (where the deliveries go out) on
//! the same one; staggered, both the control and the data sockets of
//! successive clients alternate. It replaced a random draw, which put all
//! of a run's sockets on one worker in a quarter of the runs of 1 MiB
//! 2 → 2 (2,459 MB/s against 2,645–2,801 when they were spread).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

/// The turn of one listener, shared by its copies on every worker.
#[derive(Default)]
pub(crate) struct Turns {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The copy that may accept now.
    holder: Option<u64>,
    /// The copies (one per worker), each with the waker of its accept
    /// loop while it waits for the turn.
    members: Vec<(u64, Option<Waker>)>,
    /// Ids given out so far.
    next_id: u64,
    /// Connections accepted: the next one's place in the rotation.
    accepted: usize,
}

/// The [`Turns`] of the listeners this process serves, by the identity of
/// the socket ([`socket_id`]) that every worker's copy duplicates, so that
/// the copies of one listener find each other.
static REGISTRY: Mutex<Vec<(SocketId, Weak<Turns>)>> = Mutex::new(Vec::new());

/// A socket's device and inode numbers: the same for every duplicate of
/// its descriptor, different for every other socket.
pub(crate) type SocketId = (u64, u64);

/// The identity of the socket `fd` refers to (read from a duplicate of
/// it, closed right away).
pub(crate) fn socket_id(fd: impl AsFd) -> io::Result<SocketId> {
    let meta = File::from(fd.as_fd().try_clone_to_owned()?).metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// One copy of a listener in its [`Turns`]; leaves them when dropped.
pub(crate) struct Member {
    turns: Arc<Turns>,
    id: u64,
}

impl Member {
    /// Joins the turns of the listening socket `socket` (made for its
    /// first copy). The first copy to join holds the turn.
    pub(crate) fn join(socket: SocketId) -> Member {
        let turns = {
            let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
            registry.retain(|(_, turns)| turns.strong_count() > 0);
            let found = registry
                .iter()
                .find(|(key, _)| *key == socket)
                .and_then(|(_, turns)| turns.upgrade());
            found.unwrap_or_else(|| {
                let turns = Arc::new(Turns::default());
                registry.push((socket, Arc::downgrade(&turns)));
                turns
            })
        };
        let id = {
            let mut state = turns.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.members.push((id, None));
            state.holder.get_or_insert(id);
            id
        };
        Member { turns, id }
    }

    /// `Ready` while this copy holds the turn; else registers `cx` to be
    /// woken when it gets it.
    pub(crate) fn poll_turn(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.turns.lock();
        if state.holder == Some(self.id) {
            return Poll::Ready(());
        }
        if let Some((_, waker)) = state.members.iter_mut().find(|(id, _)| *id == self.id) {
            match waker {
                Some(known) if known.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// After this copy accepted a connection: the turn goes to the copy
    /// whose place in the rotation comes next (this one, possibly).
    pub(crate) fn pass(&self) {
        let waker = {
            let mut state = self.turns.lock();
            state.accepted += 1;
            state.hand_on()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for Member {
    /// A copy that leaves (its worker stops) hands its turn on.
    fn drop(&mut self) {
        let waker = {
            let mut state = self.turns.lock();
            state.members.retain(|(id, _)| *id != self.id);
            if state.holder != Some(self.id) {
                return;
            }
            state.hand_on()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Turns {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Gives the turn to the member whose place in the rotation comes
    /// next (none when none is left) and returns the waker of its accept
    /// loop, if it waits.
    fn hand_on(&mut self) -> Option<Waker> {
        self.holder = None;
        let index = worker_of(self.accepted, self.members.len());
        let (id, waker) = self.members.get_mut(index)?;
        self.holder = Some(*id);
        waker.take()
    }
}

/// The worker (of `workers`) that accepts connection number `n` (from
/// 0): a rotation that, over an even number of workers, starts one
/// worker further on every lap, so that over two the sockets go 0, 1, 1,
/// 0, 0, 1, 1, 0, ... (over an odd number, pairs already alternate).
fn worker_of(n: usize, workers: usize) -> usize {
    let workers = workers.max(1);
    let shift = if workers.is_multiple_of(2) {
        n / workers
    } else {
        0
    };
    (n % workers + shift) % workers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_data_sockets_of_successive_clients_are_each_spread() {
        for workers in 1..=6 {
            let pairs = workers * workers;
            let mut control = vec![0; workers];
            let mut data = vec![0; workers];
            for client in 0..pairs {
                control[worker_of(2 * client, workers)] += 1;
                data[worker_of(2 * client + 1, workers)] += 1;
            }
            let even = vec![pairs / workers; workers];
            assert_eq!(control, even, "{workers} workers");
            assert_eq!(data, even, "{workers} workers");
        }
    }

    #[test]
    fn the_turn_goes_round_every_copy_and_survives_the_holder_leaving() {
        let first = Member::join((0, 1));
        let second = Member::join((0, 1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(first.poll_turn(&mut cx).is_ready(), "the first copy starts");
        assert!(second.poll_turn(&mut cx).is_pending());
        let mut held = [0, 0];
        for _ in 0..200 {
            let holder = if first.poll_turn(&mut cx).is_ready() {
                &first
            } else {
                &second
            };
            held[usize::from(std::ptr::eq(holder, &second))] += 1;
            holder.pass();
        }
        assert_eq!(held, [100, 100], "both copies accept");
        let holder_is_first = first.poll_turn(&mut cx).is_ready();
        let (leaving, staying) = if holder_is_first {
            (first, second)
        } else {
            (second, first)
        };
        drop(leaving);
        assert!(
            staying.poll_turn(&mut cx).is_ready(),
            "the turn is handed on"
        );
    }

    #[test]
    fn duplicates_of_a_socket_share_its_identity_and_others_differ() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let copy = listener.try_clone().expect("dup");
        let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let id = socket_id(&listener).expect("fstat");
        assert_eq!(id, socket_id(&copy).expect("fstat"));
        assert_ne!(id, socket_id(&other).expect("fstat"));
    }

    #[test]
    fn other_listeners_have_their_own_turns() {
        let one = Member::join((0, 2));
        let other = Member::join((0, 3));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(one.poll_turn(&mut cx).is_ready());
        assert!(other.poll_turn(&mut cx).is_ready());
    }
}
