//! UDP publish: datagram decoding, AES-GCM open/seal and the ack datagram.
//!
//! A datagram is `EE AA 01 00 ENC login 00 BODY` (see PROTOCOL.md, "UDP
//! publish"). Decoding happens in three steps, none of which needs the
//! broker:
//!
//! 1. [`decode_datagram`] splits the envelope: login plus either a plain
//!    password and body, or a nonce and a sealed body. It borrows from the
//!    datagram and never allocates.
//! 2. For a sealed datagram the user's key is looked up and [`open`]
//!    decrypts the body; a failure there (no key, wrong key, tampering) is
//!    an authentication failure. [`open_datagram`] does steps 1 and 2.
//! 3. [`parse_publish`] reads `OP PRIO topic 00 payload` from the plaintext
//!    body. The raw topic is validated later with
//!    [`crate::topic::parse_topic`].
//!
//! What stays for the broker is what depends on its state: the password
//! check, the ACL and routing ([`crate::broker::UdpTask`] runs the whole
//! path with the broker borrowed for that part only).
//!
//! Whether an error deserves an ack datagram is answered by
//! [`UdpError::ack_wanted`]: only a body whose OP byte could be read and
//! asked for an ack gets one.
//!
//! The encoders at the end are for our own clients. Randomness stays out of
//! the core: the caller passes the nonce in.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::{Aes128Gcm, Aes256Gcm};

use crate::auth::Keys;

/// First two bytes of every datagram, both directions (the control header).
const HEADER: [u8; 2] = [0xEE, 0xAA];
/// Protocol version 1 as a little-endian `u16`.
const VERSION: [u8; 2] = [0x01, 0x00];
/// ENC byte of a plain (login + password) datagram.
const ENC_PLAIN: u8 = 0x00;
/// ENC byte of an AES-128-GCM datagram.
const ENC_AES128: u8 = 0x02;
/// ENC byte of an AES-256-GCM datagram.
const ENC_AES256: u8 = 0x03;
/// OP byte: publish and send an ack datagram.
const OP_PUBLISH: u8 = 0x01;
/// OP byte: publish without an ack.
const OP_PUBLISH_NO_ACK: u8 = 0x21;
/// Length of an AES-GCM nonce on the wire.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM authentication tag that ends a sealed body.
pub const TAG_LEN: usize = 16;
/// Length of an ack datagram: header, version, status code.
pub const ACK_LEN: usize = 5;

/// Why a datagram (or a body, or an ack) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The datagram is larger than `udp_frame_size`.
    #[error("datagram of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size of the datagram.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Shorter than the fixed header (`EE AA 01 00 ENC`).
    #[error("datagram too short for its header")]
    Truncated,
    /// The first two bytes are not `EE AA`.
    #[error("datagram does not start with EE AA")]
    BadHeader,
    /// The protocol version is not 1.
    #[error("unsupported protocol version {0}")]
    BadVersion(u16),
    /// The ENC byte names no known scheme.
    #[error("unknown encryption byte {0:#04x}")]
    UnknownEncryption(u8),
    /// No `00` ends the login.
    #[error("login is not terminated by 00")]
    NoLoginEnd,
    /// The login is not UTF-8.
    #[error("login is not valid UTF-8")]
    LoginNotUtf8,
    /// A plain datagram has no `00` after its password.
    #[error("password is not terminated by 00")]
    NoPasswordEnd,
    /// A sealed body is shorter than nonce plus tag.
    #[error("encrypted body too short for nonce and tag")]
    SealedTooShort,
    /// Decryption failed: wrong key or tampered datagram.
    #[error("authentication failed")]
    Auth,
    /// Sealing failed (the plaintext exceeds what AES-GCM can seal).
    #[error("plaintext too long to encrypt")]
    Seal,
    /// The body is empty: there is no OP byte.
    #[error("body has no operation byte")]
    NoOp,
    /// The OP byte is neither `01` nor `21`.
    #[error("unknown UDP operation {0:#04x}")]
    UnknownOp(u8),
    /// The body ends right after the OP byte.
    #[error("body has no priority byte")]
    NoPriority {
        /// Whether the OP asked for an ack.
        ack: bool,
    },
    /// No `00` ends the topic.
    #[error("topic is not terminated by 00")]
    NoTopicEnd {
        /// Whether the OP asked for an ack.
        ack: bool,
    },
    /// A field given to an encoder holds a `00` byte, which would end it early.
    #[error("{0} contains a 00 byte")]
    NulInField(&'static str),
    /// An ack datagram is not `EE AA 01 00 CODE`.
    #[error("malformed ack datagram")]
    BadAck,
}

impl UdpError {
    /// Whether the sender should get an ERR ack for this error: true only
    /// when the body's OP byte was read and asked for one. A datagram too
    /// broken to read its OP gets no answer, and the broker decides about
    /// authentication failures itself (the OP is sealed then).
    pub fn ack_wanted(&self) -> bool {
        match self {
            UdpError::NoPriority { ack } | UdpError::NoTopicEnd { ack } => *ack,
            _ => false,
        }
    }
}

/// The AES-GCM variant of a sealed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// ENC `02`: AES-128-GCM keyed with the first 16 bytes of the user's key.
    Aes128Gcm,
    /// ENC `03`: AES-256-GCM keyed with the whole 32-byte key.
    Aes256Gcm,
}

impl Cipher {
    /// The ENC byte that announces this cipher on the wire.
    pub fn enc_byte(self) -> u8 {
        match self {
            Cipher::Aes128Gcm => ENC_AES128,
            Cipher::Aes256Gcm => ENC_AES256,
        }
    }

    /// The cipher an ENC byte announces; `None` for plain or unknown bytes.
    pub fn from_enc_byte(enc: u8) -> Option<Self> {
        match enc {
            ENC_AES128 => Some(Cipher::Aes128Gcm),
            ENC_AES256 => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }
}

/// A datagram's envelope, borrowed from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The login (empty for anonymous, whose key is `_`).
    pub login: &'a str,
    /// Credentials and body.
    pub auth: DatagramAuth<'a>,
}

/// How a datagram authenticates, with its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramAuth<'a> {
    /// ENC `00`: a password in clear and the plaintext body
    /// (`OP PRIO topic 00 payload`, read with [`parse_publish`]).
    Plain {
        /// The password bytes (checked by the broker, off the event loop).
        password: &'a [u8],
        /// The plaintext body.
        body: &'a [u8],
    },
    /// ENC `02`/`03`: the body is sealed with the user's key; [`open`] it.
    Sealed {
        /// Which AES-GCM variant.
        cipher: Cipher,
        /// The 12-byte nonce that precedes the ciphertext.
        nonce: &'a [u8; NONCE_LEN],
        /// Ciphertext followed by the 16-byte tag.
        sealed: &'a [u8],
    },
}

/// A datagram whose envelope was read and whose body, if sealed, was
/// decrypted: what is left to check is policy (password, ACL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened<'a> {
    /// ENC `00`: the password still has to be checked.
    Plain {
        /// The login (empty for anonymous).
        login: &'a str,
        /// The password bytes.
        password: &'a [u8],
        /// The plaintext body, not yet parsed.
        body: &'a [u8],
    },
    /// ENC `02`/`03`: the user's key opened the body, which authenticates
    /// the sender.
    Sealed {
        /// The login (empty for anonymous, whose key is `_`).
        login: &'a str,
        /// The decrypted body, not yet parsed.
        body: Vec<u8>,
    },
}

/// A publish request read from a plaintext body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPublish<'a> {
    /// OP `01`: the sender wants an ack datagram.
    pub ack: bool,
    /// Priority byte, passed through.
    pub prio: u8,
    /// The raw topic, not yet normalised or validated.
    pub topic: &'a [u8],
    /// The payload (may be empty, any bytes).
    pub payload: &'a [u8],
}

/// Splits a datagram into login and credentials + body, checking header,
/// version, size and login. Does not allocate and never panics.
pub fn decode_datagram(d: &[u8], max_size: usize) -> Result<Datagram<'_>, UdpError> {
    if d.len() > max_size {
        return Err(UdpError::TooLarge {
            len: d.len(),
            max: max_size,
        });
    }
    let (header, rest) = d.split_first_chunk::<4>().ok_or(UdpError::Truncated)?;
    check_header(header)?;
    let (&enc, rest) = rest.split_first().ok_or(UdpError::Truncated)?;
    let (login, rest) = split_at_nul(rest).ok_or(UdpError::NoLoginEnd)?;
    let login = std::str::from_utf8(login).map_err(|_| UdpError::LoginNotUtf8)?;
    let auth = match (enc, Cipher::from_enc_byte(enc)) {
        (ENC_PLAIN, _) => decode_plain(rest)?,
        (_, Some(cipher)) => decode_sealed(cipher, rest)?,
        (other, None) => return Err(UdpError::UnknownEncryption(other)),
    };
    Ok(Datagram { login, auth })
}

/// Decrypts a sealed body (ciphertext + tag) with the user's 32-byte key.
/// Any failure, including a wrong key, is [`UdpError::Auth`].
pub fn open(
    cipher: Cipher,
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    sealed: &[u8],
) -> Result<Vec<u8>, UdpError> {
    let split = sealed.len().checked_sub(TAG_LEN).ok_or(UdpError::Auth)?;
    let (ciphertext, tag) = sealed.split_at(split);
    let mut plain = ciphertext.to_vec();
    match cipher {
        Cipher::Aes128Gcm => open_in(&Aes128Gcm::new(&key128(key).into()), nonce, &mut plain, tag),
        Cipher::Aes256Gcm => open_in(&Aes256Gcm::new(key.into()), nonce, &mut plain, tag),
    }?;
    Ok(plain)
}

/// Steps 1 and 2: decodes the envelope and opens a sealed body with its
/// login's key from `keys`. A sealed datagram whose login has no key (or
/// when there is no key file) is [`UdpError::Auth`], like a wrong key. Pure
/// computation: no broker, no allocation for a plain datagram.
pub fn open_datagram<'a>(
    d: &'a [u8],
    max_size: usize,
    keys: Option<&Keys>,
) -> Result<Opened<'a>, UdpError> {
    let frame = decode_datagram(d, max_size)?;
    let login = frame.login;
    match frame.auth {
        DatagramAuth::Plain { password, body } => Ok(Opened::Plain {
            login,
            password,
            body,
        }),
        DatagramAuth::Sealed {
            cipher,
            nonce,
            sealed,
        } => {
            let key = keys.and_then(|k| k.key(login)).ok_or(UdpError::Auth)?;
            let body = open(cipher, key, nonce, sealed)?;
            Ok(Opened::Sealed { login, body })
        }
    }
}

/// Encrypts `plain` with the user's 32-byte key and the caller's nonce,
/// returning ciphertext followed by the tag (the inverse of [`open`]).
pub fn seal(
    cipher: Cipher,
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    plain: &[u8],
) -> Result<Vec<u8>, UdpError> {
    let mut out = Vec::with_capacity(plain.len() + TAG_LEN);
    out.extend_from_slice(plain);
    seal_tail(cipher, key, nonce, &mut out, 0)?;
    Ok(out)
}

/// Reads `OP PRIO topic 00 payload`. The topic is returned raw; the broker
/// validates it with [`crate::topic::parse_topic`].
pub fn parse_publish(body: &[u8]) -> Result<UdpPublish<'_>, UdpError> {
    let (&op, rest) = body.split_first().ok_or(UdpError::NoOp)?;
    let ack = match op {
        OP_PUBLISH => true,
        OP_PUBLISH_NO_ACK => false,
        other => return Err(UdpError::UnknownOp(other)),
    };
    let (&prio, rest) = rest.split_first().ok_or(UdpError::NoPriority { ack })?;
    let (topic, payload) = split_at_nul(rest).ok_or(UdpError::NoTopicEnd { ack })?;
    Ok(UdpPublish {
        ack,
        prio,
        topic,
        payload,
    })
}

/// Appends a plain (ENC `00`) publish datagram to `out`. Fails, leaving
/// `out` unchanged, when login, password or topic holds a `00` byte.
pub fn encode_plain(
    out: &mut Vec<u8>,
    login: &str,
    password: &[u8],
    ack: bool,
    prio: u8,
    topic: &str,
    payload: &[u8],
) -> Result<(), UdpError> {
    check_no_nul("login", login.as_bytes())?;
    check_no_nul("password", password)?;
    check_no_nul("topic", topic.as_bytes())?;
    push_envelope(out, ENC_PLAIN, login);
    out.extend_from_slice(password);
    out.push(0);
    push_body(out, ack, prio, topic, payload);
    Ok(())
}

/// Appends a sealed (ENC `02`/`03`) publish datagram to `out`, encrypting
/// the body in place with `key` and the caller's fresh `nonce` (never reuse
/// one with the same key). Fails, leaving `out` unchanged, when login or
/// topic holds a `00` byte.
#[allow(clippy::too_many_arguments)]
pub fn encode_sealed(
    out: &mut Vec<u8>,
    login: &str,
    key: &[u8; 32],
    cipher: Cipher,
    nonce: [u8; NONCE_LEN],
    ack: bool,
    prio: u8,
    topic: &str,
    payload: &[u8],
) -> Result<(), UdpError> {
    check_no_nul("login", login.as_bytes())?;
    check_no_nul("topic", topic.as_bytes())?;
    let start = out.len();
    push_envelope(out, cipher.enc_byte(), login);
    out.extend_from_slice(&nonce);
    let body_start = out.len();
    push_body(out, ack, prio, topic, payload);
    seal_tail(cipher, key, &nonce, out, body_start).inspect_err(|_| out.truncate(start))
}

/// The ack datagram `EE AA 01 00 CODE` answering a publish.
pub fn encode_ack(code: u8) -> [u8; ACK_LEN] {
    [HEADER[0], HEADER[1], VERSION[0], VERSION[1], code]
}

/// Reads an ack datagram and returns its status code.
pub fn decode_ack(d: &[u8]) -> Result<u8, UdpError> {
    match d {
        [0xEE, 0xAA, 0x01, 0x00, code] => Ok(*code),
        _ => Err(UdpError::BadAck),
    }
}

/// Checks the `EE AA 01 00` prefix.
fn check_header(header: &[u8; 4]) -> Result<(), UdpError> {
    let [h0, h1, v0, v1] = *header;
    if [h0, h1] != HEADER {
        return Err(UdpError::BadHeader);
    }
    if [v0, v1] != VERSION {
        return Err(UdpError::BadVersion(u16::from_le_bytes([v0, v1])));
    }
    Ok(())
}

/// `password 00 body`.
fn decode_plain(rest: &[u8]) -> Result<DatagramAuth<'_>, UdpError> {
    let (password, body) = split_at_nul(rest).ok_or(UdpError::NoPasswordEnd)?;
    Ok(DatagramAuth::Plain { password, body })
}

/// `NONCE(12) ciphertext TAG(16)`.
fn decode_sealed(cipher: Cipher, rest: &[u8]) -> Result<DatagramAuth<'_>, UdpError> {
    let (nonce, sealed) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(UdpError::SealedTooShort)?;
    if sealed.len() < TAG_LEN {
        return Err(UdpError::SealedTooShort);
    }
    Ok(DatagramAuth::Sealed {
        cipher,
        nonce,
        sealed,
    })
}

/// Splits at the first `00`, dropping it; `None` when there is none.
fn split_at_nul(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let pos = bytes.iter().position(|&b| b == 0)?;
    let (head, tail) = bytes.split_at(pos);
    Some((head, tail.get(1..).unwrap_or_default()))
}

/// Refuses a field that would be cut short by a `00` byte.
fn check_no_nul(field: &'static str, bytes: &[u8]) -> Result<(), UdpError> {
    if bytes.contains(&0) {
        return Err(UdpError::NulInField(field));
    }
    Ok(())
}

/// `EE AA 01 00 ENC login 00`.
fn push_envelope(out: &mut Vec<u8>, enc: u8, login: &str) {
    out.extend_from_slice(&encode_ack(enc));
    out.extend_from_slice(login.as_bytes());
    out.push(0);
}

/// `OP PRIO topic 00 payload`.
fn push_body(out: &mut Vec<u8>, ack: bool, prio: u8, topic: &str, payload: &[u8]) {
    out.push(if ack { OP_PUBLISH } else { OP_PUBLISH_NO_ACK });
    out.push(prio);
    out.extend_from_slice(topic.as_bytes());
    out.push(0);
    out.extend_from_slice(payload);
}

/// The AES-128 key: the first 16 bytes of the user's key.
fn key128(key: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|i| key[i])
}

/// Encrypts `out[from..]` in place and appends the tag.
fn seal_tail(
    cipher: Cipher,
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    out: &mut Vec<u8>,
    from: usize,
) -> Result<(), UdpError> {
    let plain = out.get_mut(from..).ok_or(UdpError::Seal)?;
    let tag = match cipher {
        Cipher::Aes128Gcm => seal_in(&Aes128Gcm::new(&key128(key).into()), nonce, plain),
        Cipher::Aes256Gcm => seal_in(&Aes256Gcm::new(key.into()), nonce, plain),
    }?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Encrypts `buf` in place with an AES-GCM instance, returning the tag.
fn seal_in<C: AeadInOut<NonceSize = U12>>(
    aead: &C,
    nonce: &[u8; NONCE_LEN],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], UdpError> {
    let nonce = Nonce::<C>::from(*nonce);
    let tag = aead
        .encrypt_inout_detached(&nonce, &[], buf.into())
        .map_err(|_| UdpError::Seal)?;
    tag.as_slice().try_into().map_err(|_| UdpError::Seal)
}

/// Decrypts `buf` in place, checking `tag`.
fn open_in<C: AeadInOut<NonceSize = U12>>(
    aead: &C,
    nonce: &[u8; NONCE_LEN],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), UdpError> {
    let nonce = Nonce::<C>::from(*nonce);
    let tag = aes_gcm::aead::Tag::<C>::try_from(tag).map_err(|_| UdpError::Auth)?;
    aead.decrypt_inout_detached(&nonce, &[], buf.into(), &tag)
        .map_err(|_| UdpError::Auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [
        0x26, 0xfd, 0x38, 0x04, 0x57, 0x07, 0x79, 0x2a, 0x9b, 0xc5, 0x0f, 0x37, 0x61, 0xa5, 0x89,
        0x87, 0xc4, 0xa9, 0x36, 0x2c, 0xf6, 0x03, 0x89, 0xf3, 0x41, 0xc2, 0x8e, 0x37, 0xb1, 0x12,
        0x5d, 0x93,
    ];
    const NONCE: [u8; 12] = [
        0x5c, 0x08, 0x8b, 0xee, 0x9d, 0xea, 0x47, 0xa5, 0xee, 0x31, 0xc2, 0xeb,
    ];
    const MAX: usize = 4096;

    fn plain_datagram() -> Vec<u8> {
        let mut out = Vec::new();
        encode_plain(&mut out, "user1", b"secret", true, 0x7f, "a/b", b"hello").unwrap();
        out
    }

    fn sealed_datagram(cipher: Cipher) -> Vec<u8> {
        let mut out = Vec::new();
        encode_sealed(
            &mut out, "user1", &KEY, cipher, NONCE, false, 0x7f, "x/y", b"data",
        )
        .unwrap();
        out
    }

    /// Decodes a sealed datagram, opens it with `key` and parses the body.
    fn open_sealed(d: &[u8], key: &[u8; 32]) -> Result<(String, Vec<u8>), UdpError> {
        let dg = decode_datagram(d, MAX)?;
        let DatagramAuth::Sealed {
            cipher,
            nonce,
            sealed,
        } = dg.auth
        else {
            panic!("expected a sealed datagram");
        };
        let plain = open(cipher, key, nonce, sealed)?;
        let publish = parse_publish(&plain)?;
        assert!(!publish.ack);
        assert_eq!(publish.prio, 0x7f);
        Ok((dg.login.to_owned(), plain.clone()))
    }

    fn keys(text: &str) -> Keys {
        Keys::parse(text, std::path::Path::new("keys")).unwrap()
    }

    #[test]
    fn open_datagram_opens_with_the_logins_key() {
        let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
        let table = keys(&format!("user1: {hex}\n"));
        for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
            let d = sealed_datagram(cipher);
            assert_eq!(
                open_datagram(&d, MAX, Some(&table)),
                Ok(Opened::Sealed {
                    login: "user1",
                    body: b"\x21\x7fx/y\0data".to_vec()
                })
            );
            let other = keys(&format!("user2: {hex}\n"));
            assert_eq!(
                open_datagram(&d, MAX, Some(&other)),
                Err(UdpError::Auth),
                "no key for the login"
            );
            assert_eq!(open_datagram(&d, MAX, None), Err(UdpError::Auth));
            assert_eq!(
                open_datagram(&d, d.len() - 1, Some(&table)),
                Err(UdpError::TooLarge {
                    len: d.len(),
                    max: d.len() - 1
                })
            );
        }
        let d = plain_datagram();
        assert_eq!(
            open_datagram(&d, MAX, None),
            Ok(Opened::Plain {
                login: "user1",
                password: b"secret",
                body: b"\x01\x7fa/b\0hello"
            })
        );
    }

    #[test]
    fn plain_round_trip_matches_the_wire_layout() {
        let d = plain_datagram();
        assert_eq!(&d[..6], &[0xEE, 0xAA, 0x01, 0x00, 0x00, b'u']);
        assert_eq!(&d[5..], b"user1\0secret\0\x01\x7fa/b\0hello");
        let dg = decode_datagram(&d, MAX).unwrap();
        assert_eq!(dg.login, "user1");
        let DatagramAuth::Plain { password, body } = dg.auth else {
            panic!("expected plain");
        };
        assert_eq!(password, b"secret");
        let p = parse_publish(body).unwrap();
        assert_eq!(
            p,
            UdpPublish {
                ack: true,
                prio: 0x7f,
                topic: b"a/b",
                payload: b"hello"
            }
        );
    }

    #[test]
    fn aes128_and_aes256_round_trip() {
        for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
            let d = sealed_datagram(cipher);
            assert_eq!(d[4], cipher.enc_byte());
            assert_eq!(&d[11..23], &NONCE, "nonce follows `login 00`");
            let (login, plain) = open_sealed(&d, &KEY).unwrap();
            assert_eq!(login, "user1");
            assert_eq!(plain, b"\x21\x7fx/y\0data");
        }
    }

    #[test]
    fn aes128_uses_only_the_first_16_key_bytes() {
        let mut other = KEY;
        other[16..].fill(0);
        let d = sealed_datagram(Cipher::Aes128Gcm);
        assert!(open_sealed(&d, &other).is_ok());
        let d = sealed_datagram(Cipher::Aes256Gcm);
        assert_eq!(open_sealed(&d, &other), Err(UdpError::Auth));
    }

    #[test]
    fn seal_then_open_is_identity_and_ciphers_differ() {
        let a = seal(Cipher::Aes128Gcm, &KEY, &NONCE, b"payload").unwrap();
        let b = seal(Cipher::Aes256Gcm, &KEY, &NONCE, b"payload").unwrap();
        assert_eq!(a.len(), 7 + TAG_LEN);
        assert_ne!(a, b);
        assert_eq!(
            open(Cipher::Aes128Gcm, &KEY, &NONCE, &a).unwrap(),
            b"payload"
        );
        assert_eq!(
            open(Cipher::Aes256Gcm, &KEY, &NONCE, &b).unwrap(),
            b"payload"
        );
        assert_eq!(
            open(Cipher::Aes256Gcm, &KEY, &NONCE, &a),
            Err(UdpError::Auth)
        );
    }

    #[test]
    fn tampering_anywhere_in_the_sealed_part_fails() {
        for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
            let d = sealed_datagram(cipher);
            for i in 11..d.len() {
                let mut bad = d.clone();
                bad[i] ^= 0x01;
                assert_eq!(open_sealed(&bad, &KEY), Err(UdpError::Auth), "byte {i}");
            }
        }
    }

    #[test]
    fn wrong_key_fails() {
        let mut wrong = KEY;
        wrong[0] ^= 0x80;
        for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
            let d = sealed_datagram(cipher);
            assert_eq!(open_sealed(&d, &wrong), Err(UdpError::Auth));
        }
    }

    #[test]
    fn open_rejects_a_body_shorter_than_the_tag() {
        assert_eq!(
            open(Cipher::Aes256Gcm, &KEY, &NONCE, &[0; 15]),
            Err(UdpError::Auth)
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for d in [
            plain_datagram(),
            sealed_datagram(Cipher::Aes128Gcm),
            sealed_datagram(Cipher::Aes256Gcm),
        ] {
            for len in 0..d.len() {
                let cut = &d[..len];
                let result = decode_datagram(cut, MAX).and_then(|dg| match dg.auth {
                    DatagramAuth::Plain { body, .. } => parse_publish(body).map(|_| ()),
                    DatagramAuth::Sealed {
                        cipher,
                        nonce,
                        sealed,
                    } => open(cipher, &KEY, nonce, sealed).map(|_| ()),
                });
                // A plain datagram cut inside its payload is still a valid
                // (shorter) publish; everything before the payload must fail.
                let in_plain_payload = d[4] == 0 && len >= d.len() - b"hello".len();
                assert_eq!(result.is_err(), !in_plain_payload, "len {len}");
            }
        }
    }

    #[test]
    fn header_errors_are_typed() {
        assert_eq!(
            decode_datagram(&[0xEE, 0xAA, 1], MAX),
            Err(UdpError::Truncated)
        );
        assert_eq!(
            decode_datagram(&[0xEE, 0xAA, 1, 0], MAX),
            Err(UdpError::Truncated)
        );
        assert_eq!(
            decode_datagram(&[0xEE, 0xAB, 1, 0, 0], MAX),
            Err(UdpError::BadHeader)
        );
        assert_eq!(
            decode_datagram(&[0xEE, 0xAA, 2, 0, 0], MAX),
            Err(UdpError::BadVersion(2))
        );
        assert_eq!(
            decode_datagram(&[0xEE, 0xAA, 1, 0, 0x01, 0], MAX),
            Err(UdpError::UnknownEncryption(1))
        );
        assert_eq!(
            decode_datagram(&[0xEE, 0xAA, 1, 0, 0, b'u'], MAX),
            Err(UdpError::NoLoginEnd)
        );
        assert_eq!(
            decode_datagram(&[0xEE, 0xAA, 1, 0, 0, 0xFF, 0], MAX),
            Err(UdpError::LoginNotUtf8)
        );
        assert_eq!(
            decode_datagram(&[0xEE, 0xAA, 1, 0, 0, 0, b'p'], MAX),
            Err(UdpError::NoPasswordEnd)
        );
        let mut short = vec![0xEE, 0xAA, 1, 0, 3, 0];
        short.extend_from_slice(&[0; NONCE_LEN + TAG_LEN - 1]);
        assert_eq!(decode_datagram(&short, MAX), Err(UdpError::SealedTooShort));
    }

    #[test]
    fn oversized_datagram_is_refused() {
        let d = plain_datagram();
        assert_eq!(
            decode_datagram(&d, d.len() - 1),
            Err(UdpError::TooLarge {
                len: d.len(),
                max: d.len() - 1
            })
        );
        assert!(decode_datagram(&d, d.len()).is_ok());
    }

    #[test]
    fn anonymous_plain_datagram() {
        let mut out = Vec::new();
        encode_plain(&mut out, "", b"", false, 0x7f, "t", b"").unwrap();
        let dg = decode_datagram(&out, MAX).unwrap();
        assert_eq!(dg.login, "");
        let DatagramAuth::Plain { password, body } = dg.auth else {
            panic!("expected plain");
        };
        assert!(password.is_empty());
        let p = parse_publish(body).unwrap();
        assert_eq!((p.topic, p.payload, p.ack), (&b"t"[..], &b""[..], false));
    }

    #[test]
    fn parse_publish_errors_and_ack_flags() {
        assert_eq!(parse_publish(b""), Err(UdpError::NoOp));
        assert_eq!(parse_publish(b"\x02\x7ft\0"), Err(UdpError::UnknownOp(2)));
        assert_eq!(
            parse_publish(b"\x01"),
            Err(UdpError::NoPriority { ack: true })
        );
        assert_eq!(
            parse_publish(b"\x21\x7ftopic"),
            Err(UdpError::NoTopicEnd { ack: false })
        );
        assert!(UdpError::NoTopicEnd { ack: true }.ack_wanted());
        assert!(!UdpError::NoTopicEnd { ack: false }.ack_wanted());
        assert!(!UdpError::UnknownOp(2).ack_wanted());
        assert!(!UdpError::Auth.ack_wanted());
        let p = parse_publish(b"\x01\x00t\0a\0b").unwrap();
        assert_eq!((p.prio, p.topic, p.payload), (0, &b"t"[..], &b"a\0b"[..]));
    }

    #[test]
    fn encoders_refuse_nul_bytes_and_leave_out_unchanged() {
        let mut out = vec![9];
        assert_eq!(
            encode_plain(&mut out, "a\0", b"", true, 0, "t", b""),
            Err(UdpError::NulInField("login"))
        );
        assert_eq!(
            encode_plain(&mut out, "a", b"p\0", true, 0, "t", b""),
            Err(UdpError::NulInField("password"))
        );
        assert_eq!(
            encode_sealed(
                &mut out,
                "a",
                &KEY,
                Cipher::Aes256Gcm,
                NONCE,
                true,
                0,
                "t\0",
                b""
            ),
            Err(UdpError::NulInField("topic"))
        );
        assert_eq!(out, [9]);
    }

    #[test]
    fn encoders_append_after_existing_bytes() {
        let mut out = vec![1, 2, 3];
        encode_sealed(
            &mut out,
            "u",
            &KEY,
            Cipher::Aes128Gcm,
            NONCE,
            true,
            1,
            "t",
            b"p",
        )
        .unwrap();
        assert_eq!(&out[..3], &[1, 2, 3]);
        let dg = decode_datagram(&out[3..], MAX).unwrap();
        let DatagramAuth::Sealed { sealed, nonce, .. } = dg.auth else {
            panic!("expected sealed");
        };
        let plain = open(Cipher::Aes128Gcm, &KEY, nonce, sealed).unwrap();
        assert_eq!(plain, b"\x01\x01t\0p");
    }

    #[test]
    fn ack_round_trip() {
        for code in [0x01, 0xFE, 0xFF] {
            let a = encode_ack(code);
            assert_eq!(a, [0xEE, 0xAA, 0x01, 0x00, code]);
            assert_eq!(decode_ack(&a), Ok(code));
        }
        assert_eq!(decode_ack(&[0xEE, 0xAA, 1, 0]), Err(UdpError::BadAck));
        assert_eq!(decode_ack(&[0xEE, 0xAA, 1, 0, 1, 1]), Err(UdpError::BadAck));
        assert_eq!(decode_ack(&[0xEE, 0xAB, 1, 0, 1]), Err(UdpError::BadAck));
    }

    #[test]
    fn cipher_enc_bytes() {
        assert_eq!(Cipher::from_enc_byte(2), Some(Cipher::Aes128Gcm));
        assert_eq!(Cipher::from_enc_byte(3), Some(Cipher::Aes256Gcm));
        assert_eq!(Cipher::from_enc_byte(0), None);
        assert_eq!(Cipher::Aes256Gcm.enc_byte(), 3);
    }

    fn no_nul() -> impl Strategy<Value = String> {
        "[^\u{0}]{0,40}"
    }

    proptest! {
        #[test]
        fn decoders_never_panic(d in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_publish(&d);
            let _ = decode_ack(&d);
            if let Ok(dg) = decode_datagram(&d, MAX) {
                match dg.auth {
                    DatagramAuth::Plain { body, .. } => { let _ = parse_publish(body); }
                    DatagramAuth::Sealed { cipher, nonce, sealed } => {
                        prop_assert_eq!(open(cipher, &KEY, nonce, sealed), Err(UdpError::Auth));
                    }
                }
            }
        }

        #[test]
        fn decoders_never_panic_behind_a_valid_header(
            enc in 0u8..4,
            tail in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut d = vec![0xEE, 0xAA, 1, 0, enc];
            d.extend_from_slice(&tail);
            if let Ok(DatagramAuth::Plain { body, .. }) = decode_datagram(&d, MAX).map(|dg| dg.auth) {
                let _ = parse_publish(body);
            }
        }

        #[test]
        fn plain_round_trips(
            login in no_nul(),
            password in no_nul(),
            ack in any::<bool>(),
            prio in any::<u8>(),
            topic in no_nul(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut out = Vec::new();
            encode_plain(&mut out, &login, password.as_bytes(), ack, prio, &topic, &payload).unwrap();
            let dg = decode_datagram(&out, usize::MAX).unwrap();
            prop_assert_eq!(dg.login, login.as_str());
            let DatagramAuth::Plain { password: pw, body } = dg.auth else {
                return Err(TestCaseError::fail("expected plain"));
            };
            prop_assert_eq!(pw, password.as_bytes());
            let p = parse_publish(body).unwrap();
            prop_assert_eq!(p, UdpPublish { ack, prio, topic: topic.as_bytes(), payload: &payload });
        }

        #[test]
        fn sealed_round_trips(
            login in no_nul(),
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aes256 in any::<bool>(),
            ack in any::<bool>(),
            prio in any::<u8>(),
            topic in no_nul(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let cipher = if aes256 { Cipher::Aes256Gcm } else { Cipher::Aes128Gcm };
            let mut out = Vec::new();
            encode_sealed(&mut out, &login, &key, cipher, nonce, ack, prio, &topic, &payload).unwrap();
            let dg = decode_datagram(&out, usize::MAX).unwrap();
            prop_assert_eq!(dg.login, login.as_str());
            let DatagramAuth::Sealed { cipher: c, nonce: n, sealed } = dg.auth else {
                return Err(TestCaseError::fail("expected sealed"));
            };
            prop_assert_eq!(c, cipher);
            prop_assert_eq!(n, &nonce);
            let plain = open(c, &key, n, sealed).unwrap();
            let p = parse_publish(&plain).unwrap();
            prop_assert_eq!(p, UdpPublish { ack, prio, topic: topic.as_bytes(), payload: &payload });
        }
    }
}
