//! The accept loop: takes connections from one listener until the server
//! stops and spawns a task for each, a protocol socket or a stats request;
//! then stops the listener listening at once ([`ListenerCloser`]).

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use psrt_proto::conn::Transport;

use crate::job::Job;
use crate::runtime::{Listener, Runtime};
use crate::shared::Shared;
use crate::stats::StatsJob;

/// Pause after a failed accept (out of descriptors, say), so the loop
/// backs off instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a listener's connections are.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Serves {
    /// PSRT sockets from a listener of this kind.
    Protocol(Transport),
    /// Stats HTTP requests.
    Stats,
}

/// A duplicate of a listener's descriptor that takes the listener out of
/// the listening state when the accept loop ends, whatever still holds the
/// descriptor.
///
/// Closing the runtime's listener is not enough to free the port at once:
/// io_uring closes descriptors asynchronously, and a ring torn down at
/// exit releases the files its operations held later, in a kernel worker.
/// Until then the old listener keeps the port (a restarted daemon fails
/// with `Address already in use`) and keeps accepting connections that it
/// then resets. `shutdown(2)` on a listening socket stops it listening
/// synchronously, on every runtime.
pub(crate) struct ListenerCloser(Socket);

impl ListenerCloser {
    /// A closer for `listener` (a std TCP or Unix listener, before the
    /// runtime adopts it).
    pub(crate) fn of(listener: &impl AsFd) -> io::Result<Self> {
        Ok(Self(Socket::from(listener.as_fd().try_clone_to_owned()?)))
    }

    /// Stops the listener listening; connections it queued are refused.
    /// Several closers of one listener (one per worker thread) may all
    /// call this: after the first the call does nothing.
    fn close(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// One listener, to accept on until the server stops.
pub struct AcceptJob<R: Runtime> {
    shared: Arc<Shared<R>>,
    listener: R::Listener,
    closer: ListenerCloser,
    serves: Serves,
}

impl<R: Runtime> AcceptJob<R> {
    pub(crate) fn new(
        shared: Arc<Shared<R>>,
        listener: R::Listener,
        closer: ListenerCloser,
        serves: Serves,
    ) -> Self {
        Self {
            shared,
            listener,
            closer,
            serves,
        }
    }

    /// Accepts until the server stops, then stops the listener listening.
    /// A failed accept is logged and followed by a short pause; one that
    /// fails because the server is stopping (another thread's closer shut
    /// the shared listener down) ends the loop quietly.
    pub(crate) async fn run(self: Box<Self>) {
        let _live = self.shared.track();
        self.accept_until_stopped().await;
        self.closer.close();
    }

    async fn accept_until_stopped(&self) {
        while let Some(accepted) = self.listener.accept(self.shared.stopped()).await {
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(_) if self.shared.is_stopping() => return,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    self.shared.runtime().sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            let job = match self.serves {
                Serves::Protocol(transport) => Job::socket(shared, stream, transport, peer),
                Serves::Stats => Job::Stats(Box::new(StatsJob::new(shared, stream))),
            };
            self.shared.spawn(job);
        }
    }
}
