//! UDP publishing: one task per socket. Each datagram is decoded and
//! AES-GCM-opened outside the broker lock, which is then taken once to
//! check and route it ([`UdpTask`]). A datagram whose password must be
//! checked goes to the idle-priority check pool, and the task finishes it
//! when the answer comes back, so a flood of datagrams with wrong
//! passwords never stalls routing and no task shares the socket.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures_lite::Stream as _;
use psrt_proto::broker::{UdpCheck, UdpOutcome, UdpTask};

use crate::runtime::{Received, Runtime, Udp};
use crate::shared::Shared;

/// A datagram's password check, answered.
type Checked = (UdpCheck, bool, SocketAddr);

/// One UDP socket, to receive on until the server stops.
pub struct UdpJob<R: Runtime> {
    shared: Arc<Shared<R>>,
    socket: R::Udp,
}

/// What woke the UDP task.
enum Event {
    Stopped,
    Checked(Checked),
    Received(Received),
}

impl<R: Runtime> UdpJob<R> {
    pub(crate) fn new(shared: Arc<Shared<R>>, socket: R::Udp) -> Self {
        Self { shared, socket }
    }

    /// Receives datagrams until the server stops. The receive in flight is
    /// kept while checks are answered (dropping it could lose a datagram
    /// with completion I/O); on stop the runtime ends it (see
    /// [`crate::runtime::Udp::recv_from`]), and a datagram arriving just
    /// then may be lost, which UDP senders expect.
    pub(crate) async fn run(self: Box<Self>) {
        let UdpJob { shared, socket } = *self;
        let _live = shared.track();
        let (answer, checked) = async_channel::unbounded::<Checked>();
        let mut checked = pin!(checked);
        // One byte more than the limit, so an oversized datagram is seen as
        // such instead of being silently truncated by the OS.
        let mut udp = UdpTask::new(shared.lock().udp_keys().clone());
        let capacity = udp.max_datagram() + 1;
        let mut buf = Vec::with_capacity(capacity);
        loop {
            let mut receive = pin!(socket.recv_from(buf, shared.stopped()));
            let (received, filled) = loop {
                let event = poll_fn(|cx| {
                    if let Poll::Ready(Some(done)) = checked.as_mut().poll_next(cx) {
                        return Poll::Ready(Event::Checked(done));
                    }
                    receive.as_mut().poll(cx).map(|received| match received {
                        Some(received) => Event::Received(received),
                        None => Event::Stopped,
                    })
                });
                match event.await {
                    Event::Stopped => return,
                    Event::Received(received) => break received,
                    Event::Checked((pending, ok, peer)) => {
                        let outcome = udp.finish(&*shared, pending, ok, &peer, Instant::now());
                        reply(&socket, outcome, peer).await;
                    }
                }
            };
            buf = filled;
            let Ok((len, peer)) = received else {
                continue;
            };
            let datagram = buf.get(..len).unwrap_or_default();
            match udp.receive(&*shared, datagram, &peer, Instant::now()) {
                UdpOutcome::Verify(pending) => {
                    let answer = answer.clone();
                    shared.submit(pending.check.clone(), move |ok| {
                        let _ = answer.try_send((pending, ok, peer));
                    });
                }
                outcome => reply(&socket, outcome, peer).await,
            }
        }
    }
}

/// Sends the acknowledgement of `outcome`, if it has one.
async fn reply(socket: &impl Udp, outcome: UdpOutcome, peer: SocketAddr) {
    if let UdpOutcome::Reply(ack) = outcome {
        let _ = socket.send_to(ack.to_vec(), peer).await;
    }
}
