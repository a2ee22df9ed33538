//! The stats HTTP endpoint: one short task per request.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use psrt_proto::TxBuf;
use psrt_proto::stats_conn::StatsConnection;

use crate::runtime::{Runtime, Stream, until};
use crate::shared::Shared;

/// One accepted stats socket, to answer.
pub struct StatsJob<R: Runtime> {
    shared: Arc<Shared<R>>,
    stream: R::Stream,
}

impl<R: Runtime> StatsJob<R> {
    pub(crate) fn new(shared: Arc<Shared<R>>, stream: R::Stream) -> Self {
        Self { shared, stream }
    }

    /// Answers one request, or drops the socket if the request does not
    /// arrive before the timeout.
    pub(crate) async fn run(self: Box<Self>) {
        let StatsJob { shared, mut stream } = *self;
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
