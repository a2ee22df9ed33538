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

/// Builds the publish datagrams of one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPublisher {
    login: String,
    auth: UdpAuth,
}

impl UdpPublisher {
    /// A publisher for `login` (empty: anonymous, key `_`).
    pub fn new(login: &str, auth: UdpAuth) -> Self {
        Self {
            login: login.to_owned(),
            auth,
        }
    }

    /// One publish datagram; `ack` asks the server for a status datagram.
    /// Sealed datagrams take a fresh nonce from `rng` (use a CSPRNG).
    pub fn encode(
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
/// and discards datagrams already waiting before sending it.
pub fn ack_status(buf: &[u8], len: usize) -> Result<u8, UdpError> {
    udp::decode_ack(buf.get(..len).unwrap_or(&[]))
}

/// The unspecified local address of `server`'s family, port 0: what a UDP
/// client binds before connecting to `server`.
pub fn local_bind_addr(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::udp::{DatagramAuth, decode_datagram, encode_ack, open, parse_publish};

    #[test]
    fn plain_datagrams_decode_back() {
        let publisher = UdpPublisher::new("bob", UdpAuth::Plain("pw".into()));
        let mut rng = StdRng::seed_from_u64(1);
        let datagram = publisher.encode(true, "a/b", b"42", &mut rng).unwrap();
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
        let publisher = UdpPublisher::new("k", auth);
        let mut rng = StdRng::seed_from_u64(2);
        let first = publisher.encode(false, "t", b"x", &mut rng).unwrap();
        let second = publisher.encode(false, "t", b"x", &mut rng).unwrap();
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
        let publisher = UdpPublisher::new("", UdpAuth::Plain(String::new()));
        let mut rng = StdRng::seed_from_u64(3);
        assert!(publisher.encode(false, "a\0b", b"", &mut rng).is_err());
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
        assert!(local_bind_addr("127.0.0.1:1".parse().unwrap()).is_ipv4());
        assert!(local_bind_addr("[::1]:1".parse().unwrap()).is_ipv6());
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
