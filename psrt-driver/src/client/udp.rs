//! Publishing over UDP: one datagram per message, plain or AES-GCM sealed,
//! with or without an acknowledgement. Datagrams are built by
//! [`UdpPublisher`]; this file only moves them.

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use psrt_proto::client::{ACK_BUF, UdpAuth, UdpPublisher, ack_status};

use super::ClientError;
use crate::runtime::{Runtime, Udp};

/// Publishes datagrams to one PSRT server's UDP port, over runtime `R`.
///
/// UDP is fire-and-forget: [`UdpClient::publish`] returns once the datagram
/// left, with no news of whether it arrived. [`UdpClient::publish_acked`]
/// asks for the server's status byte; acks carry no request id, so it takes
/// `&mut self` to keep one acked publish in flight at a time. Nonces of
/// sealed datagrams come from the thread-local CSPRNG.
///
/// On monoio the socket belongs to the runtime of the thread that made
/// it: use the client on that thread.
pub struct UdpClient<R: Runtime> {
    runtime: R,
    socket: R::Udp,
    publisher: UdpPublisher,
}

impl<R: Runtime> fmt::Debug for UdpClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpClient")
            .field("publisher", &self.publisher)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> UdpClient<R> {
    /// Binds an ephemeral local port of `server`'s address family and
    /// connects it to `server`. An empty `login` is anonymous (key `_`).
    pub async fn new(server: SocketAddr, login: &str, auth: UdpAuth) -> Result<Self, ClientError> {
        Self::new_on(R::default(), server, login, auth)
    }
}

impl<R: Runtime> UdpClient<R> {
    /// [`UdpClient::new`] with the ack timeouts on `runtime`'s timers.
    pub fn new_on(
        runtime: R,
        server: SocketAddr,
        login: &str,
        auth: UdpAuth,
    ) -> Result<Self, ClientError> {
        let publisher = UdpPublisher::new(server, login, auth);
        let socket = connected_socket(&publisher)?;
        Ok(Self {
            runtime,
            socket,
            publisher,
        })
    }

    /// Sends one publish datagram without asking for an ack.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        let datagram = self.publisher.datagram(topic, payload, &mut rand::rng())?;
        self.send(datagram).await
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
        self.send(datagram).await?;
        let receive = self
            .socket
            .recv_from(Vec::with_capacity(ACK_BUF), self.runtime.sleep(timeout));
        let Some((received, ack)) = receive.await else {
            self.socket = connected_socket(&self.publisher)?;
            return Err(ClientError::Timeout(timeout));
        };
        let (len, _) = received?;
        Ok(ack_status(&ack, len)?)
    }

    /// Sends one datagram to the server.
    async fn send(&self, datagram: Vec<u8>) -> Result<(), ClientError> {
        Ok(self
            .socket
            .send_to(datagram, self.publisher.server())
            .await?)
    }
}

/// A socket on an ephemeral port of the server's family, connected to it
/// (so only the server's datagrams arrive).
fn connected_socket<U: Udp>(publisher: &UdpPublisher) -> std::io::Result<U> {
    let socket = UdpSocket::bind(publisher.bind_addr())?;
    socket.connect(publisher.server())?;
    socket.set_nonblocking(true)?;
    U::from_std(socket)
}
