//! The stats HTTP endpoint: one short task per request.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use psrt_proto::TxBuf;
use psrt_proto::stats_conn::StatsConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Shared;

/// Answers one stats request, or drops the socket if the request does not
/// arrive before the timeout.
pub(super) async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut conn = StatsConnection::new(shared.timeout, Instant::now());
    let deadline = conn.poll_timeout().map(tokio::time::Instant::from_std);
    let served = tokio::time::timeout_at(
        deadline.unwrap_or_else(tokio::time::Instant::now),
        read_and_answer(&shared, &mut stream, &mut conn),
    )
    .await;
    if served.is_err() {
        return;
    }
    let mut tx = TxBuf::new();
    conn.poll_transmit(&mut tx);
    for chunk in tx.drain() {
        if stream.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}

/// Reads until the request is answered (the password check, if any, runs
/// on the check pool).
async fn read_and_answer(shared: &Shared, stream: &mut TcpStream, conn: &mut StatsConnection) {
    while !conn.is_closed() {
        conn.read_buf().reserve(4096);
        match stream.read_buf(conn.read_buf()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(check) = shared.stats_input(conn, Instant::now(), SystemTime::now()) {
            let ok = shared.verify(check).await;
            shared.stats_checked(conn, ok, Instant::now(), SystemTime::now());
        }
    }
}
