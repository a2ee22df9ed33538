//! UDP publishing: one task per socket; password checks go to the blocking
//! pool so a flood of datagrams with wrong passwords never stalls routing.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Instant;

use psrt_proto::broker::UdpOutcome;
use smol::Async;
use smol::future::FutureExt;

use super::Shared;

/// Receives datagrams until the server stops.
pub(crate) async fn serve(shared: Arc<Shared>, socket: Async<UdpSocket>) {
    let socket = Arc::new(socket);
    // One byte more than the limit, so an oversized datagram is seen as
    // such instead of being silently truncated by the OS.
    let mut buf = vec![0u8; shared.lock().limits().udp_frame_size + 1];
    loop {
        let received = async { Some(socket.recv_from(&mut buf).await) }
            .or(async {
                shared.stopped().await;
                None
            })
            .await;
        let Some(received) = received else {
            return;
        };
        let Ok((len, peer)) = received else {
            continue;
        };
        let Some(datagram) = buf.get(..len) else {
            continue;
        };
        let outcome = shared.lock().handle_datagram(datagram, Instant::now());
        match outcome {
            UdpOutcome::Reply(ack) => {
                let _ = socket.send_to(&ack, peer).await;
            }
            UdpOutcome::Silent => {}
            UdpOutcome::Verify(pending) => {
                let (task_shared, socket) = (shared.clone(), socket.clone());
                shared.spawn(async move {
                    let ok = task_shared.verify(pending.check.clone()).await;
                    let outcome = task_shared
                        .lock()
                        .finish_datagram(pending, ok, Instant::now());
                    if let UdpOutcome::Reply(ack) = outcome {
                        let _ = socket.send_to(&ack, peer).await;
                    }
                });
            }
        }
    }
}
