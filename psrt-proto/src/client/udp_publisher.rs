//! Building UDP publish datagrams and reading their acks, for every
//! runtime's `UdpClient`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use rand_core::RngCore;

use super::PRIORITY;
use crate::udp::{self, ACK_LEN, Cipher, NONCE_LEN, UdpError};

/// Buffer size for receiving an ack: one byte more than an ack, so a
/// longer datagram is seen as malformed instead of truncated to fit.
pub const ACK_BUF: usize = ACK_LEN + 1;

/// How a UDP client proves who it is.
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

/// Builds the publish datagrams of one login to one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPublisher {
    server: SocketAddr,
    login: String,
    auth: UdpAuth,
}

impl UdpPublisher {
    /// A publisher to `server` for `login` (empty: anonymous, key `_`).
    pub fn new(server: SocketAddr, login: &str, auth: UdpAuth) -> Self {
        Self {
            server,
            login: login.to_owned(),
            auth,
        }
    }

    /// The server's UDP address, which the client's socket connects to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The unspecified local address of the server's family, port 0: what
    /// the client's socket binds before connecting.
    pub fn bind_addr(&self) -> SocketAddr {
        match self.server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        }
    }

    /// One publish datagram the server does not acknowledge. Sealed
    /// datagrams take a fresh nonce from `rng` (use a CSPRNG).
    pub fn datagram(
        &self,
        topic: &str,
        payload: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<Vec<u8>, UdpError> {
        self.encode(false, topic, payload, rng)
    }

    /// One publish datagram asking the server for a status datagram (see
    /// [`ack_status`]).
    pub fn acked_datagram(
        &self,
        topic: &str,
        payload: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<Vec<u8>, UdpError> {
        self.encode(true, topic, payload, rng)
    }

    /// One publish datagram; `ack` asks the server for a status datagram.
    fn encode(
        &self,
        ack: bool,
        topic: &str,
        payload: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<Vec<u8>, UdpError> {
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
                let mut nonce = [0; NONCE_LEN];
                rng.fill_bytes(&mut nonce);
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

/// The status byte of an ack held in the first `len` bytes of `buf`.
///
/// Acks carry no request id: a client keeps one acked publish in flight
/// and, after a timeout, moves to a fresh socket so a late ack is never
/// taken for the next publish's.
pub fn ack_status(buf: &[u8], len: usize) -> Result<u8, UdpError> {
    udp::decode_ack(buf.get(..len).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::udp::{DatagramAuth, decode_datagram, encode_ack, open, parse_publish};

    /// A server address for publishers whose datagrams are only decoded.
    const SERVER: SocketAddr =
        SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2873));

    #[test]
    fn plain_datagrams_decode_back() {
        let publisher = UdpPublisher::new(SERVER, "bob", UdpAuth::Plain("pw".into()));
        let mut rng = StdRng::seed_from_u64(1);
        let datagram = publisher.acked_datagram("a/b", b"42", &mut rng).unwrap();
        let decoded = decode_datagram(&datagram, 65_535).unwrap();
        assert_eq!(decoded.login, "bob");
        let DatagramAuth::Plain { password, body } = decoded.auth else {
            panic!("not plain: {:?}", decoded.auth);
        };
        assert_eq!(password, b"pw");
        let publish = parse_publish(body).unwrap();
        assert!(publish.ack);
        assert_eq!(publish.prio, PRIORITY);
        assert_eq!(publish.payload, b"42");
    }

    #[test]
    fn sealed_datagrams_open_with_the_key_and_use_fresh_nonces() {
        let key = [7; 32];
        let auth = UdpAuth::Key {
            key,
            cipher: Cipher::Aes256Gcm,
        };
        let publisher = UdpPublisher::new(SERVER, "k", auth);
        let mut rng = StdRng::seed_from_u64(2);
        let first = publisher.datagram("t", b"x", &mut rng).unwrap();
        let second = publisher.datagram("t", b"x", &mut rng).unwrap();
        assert_ne!(first, second);
        let decoded = decode_datagram(&first, 65_535).unwrap();
        let DatagramAuth::Sealed {
            cipher,
            nonce,
            sealed,
        } = decoded.auth
        else {
            panic!("not sealed: {:?}", decoded.auth);
        };
        let body = open(cipher, &key, nonce, sealed).unwrap();
        assert_eq!(parse_publish(&body).unwrap().payload, b"x");
    }

    #[test]
    fn a_nul_in_the_topic_is_refused() {
        let publisher = UdpPublisher::new(SERVER, "", UdpAuth::Plain(String::new()));
        let mut rng = StdRng::seed_from_u64(3);
        assert!(publisher.datagram("a\0b", b"", &mut rng).is_err());
    }

    #[test]
    fn acks_are_read_only_whole() {
        let mut buf = [0; ACK_BUF];
        buf[..ACK_LEN].copy_from_slice(&encode_ack(0x01));
        assert_eq!(ack_status(&buf, ACK_LEN), Ok(0x01));
        assert!(ack_status(&buf, ACK_BUF).is_err());
        assert!(ack_status(&buf, 3).is_err());
        assert!(ack_status(&buf, 99).is_err());
    }

    #[test]
    fn local_addresses_follow_the_server_family() {
        let auth = || UdpAuth::Plain(String::new());
        let v4 = UdpPublisher::new("127.0.0.1:1".parse().unwrap(), "", auth());
        assert!(v4.bind_addr().is_ipv4());
        let v6 = UdpPublisher::new("[::1]:1".parse().unwrap(), "", auth());
        assert!(v6.bind_addr().is_ipv6());
        assert_eq!(v6.server(), "[::1]:1".parse().unwrap());
    }

    #[test]
    fn debug_hides_secrets() {
        let auth = UdpAuth::Key {
            key: [9; 32],
            cipher: Cipher::Aes128Gcm,
        };
        assert!(!format!("{auth:?}").contains('9'));
        assert_eq!(format!("{:?}", UdpAuth::Plain("pw".into())), "Plain(..)");
    }
}
