//! The stats HTTP endpoint: one short task per request.

use std::sync::Arc;
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::conn::Action;
use psrt_proto::stats_conn::StatsConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Shared;

/// Accepts stats connections until the server stops.
pub(crate) async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    let mut stopping = shared.stopping.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve(shared.clone(), stream));
            }
            Err(err) => super::accept_error(err).await,
        }
    }
}

async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
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
/// on the blocking pool).
async fn read_and_answer(shared: &Shared, stream: &mut TcpStream, conn: &mut StatsConnection) {
    while !conn.is_closed() {
        conn.read_buf().reserve(4096);
        match stream.read_buf(conn.read_buf()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let info = shared.status_info();
        conn.handle_input(&mut shared.lock(), &info);
        if let Some(Action::CheckPassword(check)) = conn.poll_action() {
            let ok = shared.verify(check).await;
            let info = shared.status_info();
            conn.password_checked(ok, &mut shared.lock(), &info);
        }
    }
}
