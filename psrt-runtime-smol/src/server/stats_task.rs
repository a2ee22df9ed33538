//! The stats HTTP endpoint: one short task per request.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use psrt_proto::TxBuf;
use psrt_proto::stats_conn::StatsConnection;
use smol::future::FutureExt;
use smol::{Async, Timer};

use super::Shared;
use super::socket::{Socket, read_append, write_tx};

/// Answers one stats request, or drops the socket if the request does not
/// arrive before the timeout.
pub(super) async fn serve(shared: Arc<Shared>, stream: Async<TcpStream>) {
    let mut conn = StatsConnection::new(shared.timeout, Instant::now());
    let deadline = conn.poll_timeout().unwrap_or_else(Instant::now);
    let answered = async {
        read_and_answer(&shared, &stream, &mut conn).await;
        true
    }
    .or(async {
        Timer::at(deadline).await;
        false
    })
    .await;
    if !answered {
        return;
    }
    let mut tx = TxBuf::new();
    conn.poll_transmit(&mut tx);
    while !tx.is_empty() {
        match stream.write_with(|s| write_tx(s, &tx)).await {
            Ok(n) => tx.advance(n),
            Err(_) => return,
        }
    }
    stream.get_ref().shutdown_write();
}

/// Reads until the request is answered (the password check, if any, runs
/// on the check pool).
async fn read_and_answer(shared: &Shared, stream: &Async<TcpStream>, conn: &mut StatsConnection) {
    while !conn.is_closed() {
        let input = conn.read_buf();
        match stream.read_with(|s| read_append(s, input)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(check) = shared.stats_input(conn, Instant::now(), SystemTime::now()) {
            let ok = shared.verify(check).await;
            shared.stats_checked(conn, ok, Instant::now(), SystemTime::now());
        }
    }
}
