//! The stats HTTP endpoint: one short task per request.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use psrt_proto::TxBuf;
use psrt_proto::conn::Action;
use psrt_proto::stats_conn::StatsConnection;
use smol::future::FutureExt;
use smol::{Async, Timer};

use super::Shared;
use super::socket::{Socket, read_append, write_tx};

/// Accepts stats connections until the server stops.
pub(crate) async fn accept(shared: Arc<Shared>, listener: Async<TcpListener>) {
    loop {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                shared.stopped().await;
                None
            })
            .await;
        match accepted {
            None => return,
            Some(Ok((stream, _))) => shared.spawn(serve(shared.clone(), stream)),
            Some(Err(err)) => super::accept_error(err).await,
        }
    }
}

async fn serve(shared: Arc<Shared>, stream: Async<TcpStream>) {
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
/// on the blocking pool).
async fn read_and_answer(shared: &Shared, stream: &Async<TcpStream>, conn: &mut StatsConnection) {
    while !conn.is_closed() {
        let input = conn.read_buf();
        match stream.read_with(|s| read_append(s, input)).await {
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
