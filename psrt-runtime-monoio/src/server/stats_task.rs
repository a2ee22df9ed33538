//! The stats HTTP endpoint: one short task per request.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use psrt_proto::TxBuf;
use psrt_proto::stats_conn::StatsConnection;

use super::Shared;

/// Bytes read at a time; a request head is small.
const READ_CHUNK: usize = 4096;

/// Answers one stats request, or drops the socket if the request does not
/// arrive before the timeout.
pub(crate) async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut conn = StatsConnection::new(shared.timeout, Instant::now());
    let deadline = conn.poll_timeout().unwrap_or_else(Instant::now);
    let served = monoio::time::timeout_at(
        monoio::time::Instant::from_std(deadline),
        read_and_answer(&shared, &mut stream, &mut conn),
    )
    .await;
    if served.is_err() {
        return;
    }
    let mut tx = TxBuf::new();
    conn.poll_transmit(&mut tx);
    for chunk in tx.drain() {
        if stream.write_all(chunk).await.0.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}

/// Reads until the request is answered (the password check, if any, runs
/// on the check pool).
async fn read_and_answer(shared: &Shared, stream: &mut TcpStream, conn: &mut StatsConnection) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    while !conn.is_closed() {
        buf.clear();
        let (read, filled) = stream.read(buf).await;
        buf = filled;
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => conn.read_buf().extend_from_slice(&buf),
        }
        if let Some(check) = shared.stats_input(conn, Instant::now(), SystemTime::now()) {
            let ok = shared.verify(check).await;
            shared.stats_checked(conn, ok, Instant::now(), SystemTime::now());
        }
    }
}
