//! Publishing over UDP: one datagram per message, plain or AES-GCM sealed,
//! with or without an acknowledgement. Datagrams are built by
//! [`UdpPublisher`]; this file only moves them.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use psrt_proto::client::{ACK_BUF, UdpAuth, UdpPublisher, ack_status};
use smol::future::FutureExt;
use smol::{Async, Timer};

use super::ClientError;

/// Publishes datagrams to one PSRT server's UDP port.
///
/// UDP is fire-and-forget: [`UdpClient::publish`] returns once the datagram
/// left, with no news of whether it arrived. [`UdpClient::publish_acked`]
/// asks for the server's status byte; acks carry no request id, so it takes
/// `&mut self` to keep one acked publish in flight at a time. Nonces of
/// sealed datagrams come from the thread-local CSPRNG.
#[derive(Debug)]
pub struct UdpClient {
    socket: Async<UdpSocket>,
    publisher: UdpPublisher,
}

impl UdpClient {
    /// Binds an ephemeral local port of `server`'s address family and
    /// connects it to `server`. An empty `login` is anonymous (key `_`).
    pub async fn new(server: SocketAddr, login: &str, auth: UdpAuth) -> Result<Self, ClientError> {
        let publisher = UdpPublisher::new(server, login, auth);
        let socket = connected_socket(&publisher)?;
        Ok(Self { socket, publisher })
    }

    /// Sends one publish datagram without asking for an ack.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        let datagram = self.publisher.datagram(topic, payload, &mut rand::rng())?;
        self.socket.send(&datagram).await?;
        Ok(())
    }

    /// Sends one publish datagram asking for an ack and returns the status
    /// byte the server answered (`OK`, `ERR` or `ERR_ACCESS` of
    /// [`psrt_proto::wire::status`]). Fails with [`ClientError::Timeout`]
    /// when no ack arrives within `timeout` (lost datagram, or a datagram
    /// the server could not read at all).
    ///
    /// After a timeout the socket is replaced by a fresh one (a new local
    /// port), so a late ack can never be taken for the next publish's.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<u8, ClientError> {
        let datagram = self
            .publisher
            .acked_datagram(topic, payload, &mut rand::rng())?;
        self.socket.send(&datagram).await?;
        let mut ack = [0; ACK_BUF];
        let expired = async {
            Timer::after(timeout).await;
            None
        };
        let received = async { Some(self.socket.recv(&mut ack).await) };
        let Some(received) = received.or(expired).await else {
            self.socket = connected_socket(&self.publisher)?;
            return Err(ClientError::Timeout(timeout));
        };
        Ok(ack_status(&ack, received?)?)
    }
}

/// A socket on an ephemeral port of the server's family, connected to it.
fn connected_socket(publisher: &UdpPublisher) -> std::io::Result<Async<UdpSocket>> {
    let socket = Async::<UdpSocket>::bind(publisher.bind_addr())?;
    socket.get_ref().connect(publisher.server())?;
    Ok(socket)
}
