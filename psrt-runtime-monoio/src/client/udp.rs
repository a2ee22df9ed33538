//! Publishing over UDP: one datagram per message, plain or AES-GCM sealed,
//! with or without an acknowledgement.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use monoio::net::udp::UdpSocket;
use psrt_proto::udp::{self, ACK_LEN, Cipher, NONCE_LEN};

use super::{ClientError, PRIORITY};

/// How a [`UdpClient`] proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum UdpAuth {
    /// ENC `00`: the password travels in clear text in every datagram.
    Plain(String),
    /// ENC `02`/`03`: the body is sealed with the user's key from the
    /// server's key file (AES-128 uses its first 16 bytes).
    Key {
        /// The 32-byte key.
        key: [u8; 32],
        /// AES-128-GCM or AES-256-GCM.
        cipher: Cipher,
    },
}

impl std::fmt::Debug for UdpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UdpAuth::Plain(_) => f.write_str("Plain(..)"),
            UdpAuth::Key { cipher, .. } => write!(f, "Key {{ cipher: {cipher:?}, .. }}"),
        }
    }
}

/// Publishes datagrams to one PSRT server's UDP port.
///
/// UDP is fire-and-forget: [`UdpClient::publish`] returns once the datagram
/// left, with no news of whether it arrived. [`UdpClient::publish_acked`]
/// asks for the server's status byte; acks carry no request id, so it takes
/// `&mut self` to keep one acked publish in flight at a time. Nonces of
/// sealed datagrams come from the thread-local CSPRNG.
///
/// The socket belongs to the monoio runtime of the thread that made it:
/// use the client on that thread.
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
    server: SocketAddr,
    login: String,
    auth: UdpAuth,
}

impl UdpClient {
    /// Binds an ephemeral local port of `server`'s address family and
    /// connects it to `server`. An empty `login` is anonymous (key `_`).
    pub async fn new(server: SocketAddr, login: &str, auth: UdpAuth) -> Result<Self, ClientError> {
        Ok(Self {
            socket: connected_socket(server).await?,
            server,
            login: login.to_owned(),
            auth,
        })
    }

    /// Sends one publish datagram without asking for an ack.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        let datagram = self.encode(false, topic, payload)?;
        let (sent, _) = self.socket.send(datagram).await;
        sent?;
        Ok(())
    }

    /// Sends one publish datagram asking for an ack and returns the status
    /// byte the server answered (`OK`, `ERR` or `ERR_ACCESS` of
    /// [`psrt_proto::wire::status`]). Fails with [`ClientError::Timeout`]
    /// when no ack arrives within `timeout` (lost datagram, or a datagram
    /// the server could not read at all).
    ///
    /// After a timeout the socket is replaced by a fresh one (a new local
    /// port), so a late ack can never be taken for the next publish's: the
    /// monoio socket has no non-blocking receive to discard it with.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<u8, ClientError> {
        let datagram = self.encode(true, topic, payload)?;
        let (sent, _) = self.socket.send(datagram).await;
        sent?;
        let ack = Vec::with_capacity(ACK_LEN + 1);
        let Ok((received, ack)) = monoio::time::timeout(timeout, self.socket.recv(ack)).await
        else {
            self.socket = connected_socket(self.server).await?;
            return Err(ClientError::Timeout(timeout));
        };
        received?;
        Ok(udp::decode_ack(&ack)?)
    }

    /// Builds the datagram for the configured authentication.
    fn encode(&self, ack: bool, topic: &str, payload: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::with_capacity(64 + self.login.len() + topic.len() + payload.len());
        match &self.auth {
            UdpAuth::Plain(password) => udp::encode_plain(
                &mut out,
                &self.login,
                password.as_bytes(),
                ack,
                PRIORITY,
                topic,
                payload,
            )?,
            UdpAuth::Key { key, cipher } => {
                let nonce: [u8; NONCE_LEN] = rand::random();
                udp::encode_sealed(
                    &mut out,
                    &self.login,
                    key,
                    *cipher,
                    nonce,
                    ack,
                    PRIORITY,
                    topic,
                    payload,
                )?
            }
        }
        Ok(out)
    }
}

/// A socket on an ephemeral port of `server`'s family, connected to it.
async fn connected_socket(server: SocketAddr) -> Result<UdpSocket, ClientError> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server).await?;
    Ok(socket)
}
