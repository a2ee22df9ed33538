//! The accept loop: takes connections from one listener until the server
//! stops and spawns a task for each, a protocol socket or a stats request.

use std::sync::Arc;
use std::time::Duration;

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

/// One listener, to accept on until the server stops.
pub struct AcceptJob<R: Runtime> {
    shared: Arc<Shared<R>>,
    listener: R::Listener,
    serves: Serves,
}

impl<R: Runtime> AcceptJob<R> {
    pub(crate) fn new(shared: Arc<Shared<R>>, listener: R::Listener, serves: Serves) -> Self {
        Self {
            shared,
            listener,
            serves,
        }
    }

    /// Accepts until the server stops. A failed accept is logged and
    /// followed by a short pause.
    pub(crate) async fn run(self: Box<Self>) {
        let _live = self.shared.track();
        while let Some(accepted) = self.listener.accept(self.shared.stopped()).await {
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
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
