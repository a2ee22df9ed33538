//! Starts one thread's share of the server: an accept loop per TCP and
//! Unix listener (every worker has its own duplicate of each), and, on
//! worker 0, the UDP sockets and the stats endpoint.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{CancelHandle, Canceller};
use monoio::net::udp::UdpSocket;
use monoio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use psrt_proto::conn::Transport;

use super::{Listeners, Shared, conn_task, stats_task, udp_task};

/// Adopts `listeners` into this thread's runtime and spawns their tasks.
/// Fails if a socket cannot be registered with the runtime's driver.
pub(super) fn spawn_all(shared: &Arc<Shared>, listeners: Listeners) -> io::Result<()> {
    for listener in listeners.tcp {
        let listener = TcpListener::from_std(listener)?;
        monoio::spawn(accept_loop(
            shared.clone(),
            listener,
            |shared, stream, peer| {
                monoio::spawn(conn_task::serve(shared, stream, Transport::Tcp, peer));
            },
        ));
    }
    for listener in listeners.unix {
        let listener = UnixListener::from_std(listener)?;
        monoio::spawn(accept_loop(
            shared.clone(),
            listener,
            |shared, stream, peer| {
                monoio::spawn(conn_task::serve(shared, stream, Transport::Unix, peer));
            },
        ));
    }
    for socket in listeners.udp {
        let socket = UdpSocket::from_std(socket)?;
        monoio::spawn(udp_task::serve(shared.clone(), socket));
    }
    if let Some(listener) = listeners.stats {
        let listener = TcpListener::from_std(listener)?;
        monoio::spawn(accept_loop(
            shared.clone(),
            listener,
            |shared, stream, _| {
                monoio::spawn(stats_task::serve(shared, stream));
            },
        ));
    }
    Ok(())
}

/// A listener whose accept can be cancelled without losing a connection.
trait Accept {
    /// The accepted socket.
    type Stream;

    /// Accepts one socket; returns it with the peer name for logs.
    async fn next_conn(&self, cancel: CancelHandle) -> io::Result<(Self::Stream, String)>;
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn next_conn(&self, cancel: CancelHandle) -> io::Result<(TcpStream, String)> {
        let (stream, peer) = self.cancelable_accept(cancel).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer.to_string()))
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;

    async fn next_conn(&self, cancel: CancelHandle) -> io::Result<(UnixStream, String)> {
        let (stream, _) = self.cancelable_accept(cancel).await?;
        Ok((stream, String::from("unix")))
    }
}

/// Accepts until the server stops. On stop the pending accept is
/// cancelled and awaited, so a socket the kernel handed over meanwhile is
/// closed rather than leaked (with io_uring, dropping the accept could
/// lose its result).
async fn accept_loop<L: Accept>(
    shared: Arc<Shared>,
    listener: L,
    on_accept: impl Fn(Arc<Shared>, L::Stream, String),
) {
    loop {
        let canceller = Canceller::new();
        let mut accept = std::pin::pin!(listener.next_conn(canceller.handle()));
        let accepted = monoio::select! {
            accepted = &mut accept => accepted,
            _ = shared.stopped() => {
                canceller.cancel();
                let _ = accept.await;
                return;
            }
        };
        match accepted {
            Ok((stream, peer)) => on_accept(shared.clone(), stream, peer),
            Err(err) => accept_error(err).await,
        }
    }
}

/// Out of descriptors or a transient error: log and back off briefly
/// instead of spinning.
async fn accept_error(err: io::Error) {
    tracing::warn!(%err, "accept failed");
    monoio::time::sleep(Duration::from_millis(50)).await;
}
