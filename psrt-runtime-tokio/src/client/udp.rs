//! Publishing over UDP: one datagram per message, plain or AES-GCM sealed,
//! with or without an acknowledgement.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use psrt_proto::udp::{self, ACK_LEN, Cipher, NONCE_LEN};
use tokio::net::UdpSocket;

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
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
    login: String,
    auth: UdpAuth,
}

impl UdpClient {
    /// Binds an ephemeral local port of `server`'s address family and
    /// connects it to `server`. An empty `login` is anonymous (key `_`).
    pub async fn new(server: SocketAddr, login: &str, auth: UdpAuth) -> Result<Self, ClientError> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        Ok(Self {
            socket,
            login: login.to_owned(),
            auth,
        })
    }

    /// Sends one publish datagram without asking for an ack.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        let datagram = self.encode(false, topic, payload)?;
        self.socket.send(&datagram).await?;
        Ok(())
    }

    /// Sends one publish datagram asking for an ack and returns the status
    /// byte the server answered (`OK`, `ERR` or `ERR_ACCESS` of
    /// [`psrt_proto::wire::status`]). Fails with [`ClientError::Timeout`]
    /// when no ack arrives within `timeout` (lost datagram, or a datagram
    /// the server could not read at all). Stale acks of earlier timed-out
    /// publishes are discarded before sending.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<u8, ClientError> {
        let datagram = self.encode(true, topic, payload)?;
        self.discard_stale();
        self.socket.send(&datagram).await?;
        let mut ack = [0; ACK_LEN + 1];
        let n = tokio::time::timeout(timeout, self.socket.recv(&mut ack))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        let code = udp::decode_ack(ack.get(..n).unwrap_or(&[]))?;
        Ok(code)
    }

    /// Drops datagrams already waiting (late acks).
    fn discard_stale(&self) {
        let mut sink = [0; ACK_LEN + 1];
        while self.socket.try_recv(&mut sink).is_ok() {}
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
