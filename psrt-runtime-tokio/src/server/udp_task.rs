//! UDP publishing: one task per socket; password checks go to the blocking
//! pool so a flood of datagrams with wrong passwords never stalls routing.

use std::sync::Arc;
use std::time::Instant;

use psrt_proto::broker::UdpOutcome;
use tokio::net::UdpSocket;

use super::Shared;

/// Receives datagrams until the server stops.
pub(crate) async fn serve(shared: Arc<Shared>, socket: UdpSocket) {
    let socket = Arc::new(socket);
    let mut stopping = shared.stopping.clone();
    // One byte more than the limit, so an oversized datagram is seen as
    // such instead of being silently truncated by the OS.
    let mut buf = vec![0u8; shared.lock().limits().udp_frame_size + 1];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let Ok((len, peer)) = received else {
            continue;
        };
        let outcome = {
            let mut broker = shared.lock();
            broker.handle_datagram(&buf[..len], Instant::now())
        };
        match outcome {
            UdpOutcome::Reply(ack) => {
                let _ = socket.send_to(&ack, peer).await;
            }
            UdpOutcome::Silent => {}
            UdpOutcome::Verify(pending) => {
                let (shared, socket) = (shared.clone(), socket.clone());
                tokio::spawn(async move {
                    let check = pending.check.clone();
                    let ok = shared.verify(check).await;
                    let outcome = shared.lock().finish_datagram(pending, ok, Instant::now());
                    if let UdpOutcome::Reply(ack) = outcome {
                        let _ = socket.send_to(&ack, peer).await;
                    }
                });
            }
        }
    }
}
