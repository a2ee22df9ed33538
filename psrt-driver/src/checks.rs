//! Password checks for the runtime drivers, on a few dedicated threads
//! that run at the lowest CPU priority the OS offers (`SCHED_IDLE` on
//! Linux).
//!
//! bcrypt is slow on purpose. On a small machine a flood of wrong-password
//! logins or datagrams would otherwise compete with message routing for the
//! cores and raise every subscriber's latency; at idle priority the checks
//! only get CPU time that routing does not want. Checks waiting here are
//! bounded by the broker (`Limits::max_pending_checks`) and by this pool's
//! queue: a check that does not fit is answered "failed" at once.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use psrt_proto::broker::PasswordCheck;
use psrt_proto::spec::ServerSpec;
use thread_priority::{
    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};

/// What to do with a check's result (`true`: the password verified).
type Done = Box<dyn FnOnce(bool) + Send>;
type Job = (PasswordCheck, Done);

/// A fixed set of idle-priority threads verifying passwords.
#[derive(Clone)]
pub struct CheckPool {
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for CheckPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckPool").finish_non_exhaustive()
    }
}

impl CheckPool {
    /// Starts `threads` checker threads (at least one) with room for
    /// `queue` waiting checks. The threads end when every clone of the
    /// pool is dropped.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, waiting) = sync_channel::<Job>(queue.max(1));
        let waiting = Arc::new(Mutex::new(waiting));
        for index in 0..threads.max(1) {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("psrt-check-{index}"))
                .spawn(move || run(&waiting))?;
        }
        Ok(Self { jobs })
    }

    /// The pool of a server for `spec`: half as many threads as it has
    /// workers (at least one), so checks never take every core, and room
    /// for as many waiting checks as the broker lets be pending.
    pub fn for_server(spec: &ServerSpec) -> std::io::Result<Self> {
        Self::new((spec.workers / 2).max(1), spec.limits.max_pending_checks)
    }

    /// Verifies `check` and calls `done` with the result on a checker
    /// thread; when the queue is full, calls `done(false)` right away.
    pub fn submit(&self, check: PasswordCheck, done: impl FnOnce(bool) + Send + 'static) {
        match self.jobs.try_send((check, Box::new(done))) {
            Ok(()) => {}
            Err(TrySendError::Full((_, done)) | TrySendError::Disconnected((_, done))) => {
                done(false)
            }
        }
    }
}

fn run(waiting: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // Hold the lock only to take one job, not while verifying it.
        let job = match waiting.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok((check, done)) = job else {
            return;
        };
        done(check.verify());
    }
}

/// Asks for `SCHED_IDLE`; where that is refused the thread keeps its
/// priority, which is only slower under a flood, never wrong.
fn lower_priority() {
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(err) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
    {
        tracing::debug!(?err, "password checks keep the normal CPU priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    fn check(password: &str, hash: &str) -> PasswordCheck {
        PasswordCheck {
            login: "alice".into(),
            hash: hash.into(),
            password: password.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn verifies_right_and_wrong_passwords() {
        let hash = bcrypt::hash("secret", 4).expect("hash");
        let pool = CheckPool::new(2, 8).expect("pool");
        let (tx, rx) = channel();
        for (id, password) in ["secret", "wrong"].into_iter().enumerate() {
            let tx = tx.clone();
            pool.submit(check(password, &hash), move |ok| {
                let _ = tx.send((id, ok));
            });
        }
        let mut results: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("answered"))
            .collect();
        results.sort();
        assert_eq!(results, vec![(0, true), (1, false)]);
    }

    #[test]
    fn a_full_queue_fails_the_check_at_once() {
        let hash = bcrypt::hash("secret", 10).expect("hash");
        let pool = CheckPool::new(1, 1).expect("pool");
        let (tx, rx) = channel();
        for id in 0..4 {
            let tx = tx.clone();
            pool.submit(check("secret", &hash), move |ok| {
                let _ = tx.send((id, ok));
            });
        }
        let results: Vec<_> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(20)).expect("answered"))
            .collect();
        assert!(
            results.iter().any(|&(_, ok)| !ok),
            "some check was refused: {results:?}"
        );
        assert!(
            results.iter().any(|&(_, ok)| ok),
            "queued checks still ran: {results:?}"
        );
    }
}
