//! The stats tasks: one short task per HTTP request, and one sampler per
//! server that records the history the status page starts from and
//! flushes the audit log's rate-limit summaries.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use psrt_proto::TxBuf;
use psrt_proto::stats_conn::StatsConnection;

use crate::runtime::{Runtime, Stream, until};
use crate::shared::Shared;

/// How often the sampler records a history point.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// A stats task: one accepted socket to answer, or the server's sampler.
pub struct StatsJob<R: Runtime> {
    shared: Arc<Shared<R>>,
    stream: Option<R::Stream>,
}

impl<R: Runtime> StatsJob<R> {
    pub(crate) fn new(shared: Arc<Shared<R>>, stream: R::Stream) -> Self {
        Self {
            shared,
            stream: Some(stream),
        }
    }

    /// The sampler of a server: every [`SAMPLE_EVERY`] until the server
    /// stops, records a history point and logs the audit summaries of
    /// ended rate-limit windows. It is not counted as live: the drain does
    /// not wait for it.
    pub fn sampler(shared: Arc<Shared<R>>) -> Self {
        Self {
            shared,
            stream: None,
        }
    }

    /// Answers one request, or drops the socket if the request does not
    /// arrive before the timeout; or, for the sampler, samples until the
    /// server stops.
    pub(crate) async fn run(self: Box<Self>) {
        let StatsJob { shared, stream } = *self;
        let Some(mut stream) = stream else {
            sample(&shared).await;
            return;
        };
        let mut conn = StatsConnection::new(shared.timeout, Instant::now());
        let timeout = shared.runtime().sleep_until(conn.poll_timeout());
        let answered = until(timeout, read_and_answer(&shared, &mut stream, &mut conn)).await;
        if answered.is_none() {
            return;
        }
        let mut tx = TxBuf::new();
        conn.poll_transmit(&mut tx);
        while !tx.is_empty() {
            match poll_fn(|cx| stream.poll_write(cx, &tx)).await {
                Ok(n) => tx.advance(n),
                Err(_) => return,
            }
        }
        stream.shutdown().await;
    }
}

/// Records the history and flushes the audit log until the server stops.
async fn sample<R: Runtime>(shared: &Shared<R>) {
    let work = async {
        loop {
            shared.record_history(SystemTime::now());
            shared.audit.flush(Instant::now());
            shared.runtime().sleep(SAMPLE_EVERY).await;
        }
    };
    until(shared.stopped(), work).await;
}

/// Reads until the request is answered (the password check, if any, runs
/// on the check pool).
async fn read_and_answer<R: Runtime>(
    shared: &Shared<R>,
    stream: &mut R::Stream,
    conn: &mut StatsConnection,
) {
    while !conn.is_closed() {
        match poll_fn(|cx| stream.poll_read(cx, conn.read_buf())).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(check) = shared.stats_input(conn, Instant::now(), SystemTime::now()) {
            let ok = shared.verify(check).await;
            shared.stats_checked(conn, ok, Instant::now(), SystemTime::now());
        }
    }
}

#[cfg(test)]
mod tests;
