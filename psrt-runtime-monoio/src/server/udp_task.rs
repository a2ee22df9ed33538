//! UDP publishing: one task per socket (on worker 0); password checks go to
//! the blocking pool so a flood of datagrams with wrong passwords never
//! stalls routing.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use monoio::net::udp::UdpSocket;
use psrt_proto::broker::{UdpCheck, UdpOutcome};

use super::Shared;

/// Receives datagrams until the server stops. A datagram arriving just as
/// the server stops may be lost with the cancelled receive; UDP senders
/// expect that.
pub(crate) async fn serve(shared: Arc<Shared>, socket: UdpSocket) {
    let socket = Rc::new(socket);
    // One byte more than the limit, so an oversized datagram is seen as
    // such instead of being silently truncated by the OS.
    let capacity = shared.lock().limits().udp_frame_size + 1;
    let mut buf = Vec::with_capacity(capacity);
    loop {
        buf.clear();
        let (received, filled) = monoio::select! {
            received = socket.recv_from(buf) => received,
            _ = shared.stopped() => return,
        };
        buf = filled;
        let Ok((len, peer)) = received else {
            continue;
        };
        let outcome = {
            let mut broker = shared.lock();
            broker.handle_datagram(buf.get(..len).unwrap_or(&buf), Instant::now())
        };
        match outcome {
            UdpOutcome::Reply(ack) => reply(&socket, ack, peer).await,
            UdpOutcome::Silent => {}
            UdpOutcome::Verify(pending) => {
                monoio::spawn(verify(shared.clone(), socket.clone(), pending, peer));
            }
        }
    }
}

/// Finishes a datagram whose password had to be checked.
async fn verify(shared: Arc<Shared>, socket: Rc<UdpSocket>, pending: UdpCheck, peer: SocketAddr) {
    let check = pending.check.clone();
    let ok = shared.verify(check).await;
    let outcome = shared.lock().finish_datagram(pending, ok, Instant::now());
    if let UdpOutcome::Reply(ack) = outcome {
        reply(&socket, ack, peer).await;
    }
}

async fn reply(socket: &UdpSocket, ack: [u8; 5], peer: SocketAddr) {
    let _ = socket.send_to(Box::new(ack), peer).await;
}
