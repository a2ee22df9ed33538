//! Frames a server sends: encoders for the server, decoders for clients.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{
    PROTOCOL_VERSION, SocketKind, TOKEN_LEN, Token, WireError, put_len, request::take_sized, status,
};

/// The server's greeting reply: magic bytes then the protocol version.
pub fn greeting_reply(kind: SocketKind) -> [u8; 4] {
    let [m0, m1] = kind.magic();
    let [v0, v1] = PROTOCOL_VERSION.to_le_bytes();
    [m0, m1, v0, v1]
}

/// Decodes the server's greeting reply, checking magic and version.
pub fn decode_greeting_reply(
    buf: &mut BytesMut,
    kind: SocketKind,
) -> Result<Option<()>, WireError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    if head[..2] != kind.magic() {
        return Err(WireError::BadGreeting);
    }
    let version = u16::from_le_bytes([head[2], head[3]]);
    if version != PROTOCOL_VERSION {
        return Err(WireError::BadVersion(version));
    }
    buf.advance(4);
    Ok(Some(()))
}

/// Decodes the 32-byte token that answers a successful login.
pub fn decode_token(buf: &mut BytesMut) -> Option<Token> {
    let bytes = buf.get(..TOKEN_LEN)?;
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(bytes);
    buf.advance(TOKEN_LEN);
    Some(token)
}

/// Decodes one status byte.
pub fn decode_status(buf: &mut BytesMut) -> Option<u8> {
    buf.has_remaining().then(|| buf.get_u8())
}

/// Builds the head of a pushed message, `01 PRIO LEN topic 00`, to be
/// followed on the wire by `payload_len` payload bytes. Built once per
/// publish and shared by every subscriber.
pub fn message_head(prio: u8, topic: &str, payload_len: usize) -> BytesMut {
    let mut head = BytesMut::with_capacity(6 + topic.len() + 1);
    put_message_head(&mut head, prio, topic, payload_len);
    head
}

/// Bytes of the head of a pushed message on `topic`.
pub fn message_head_len(topic: &str) -> usize {
    7 + topic.len()
}

/// Appends the head of a pushed message ([`message_head_len`] bytes) to
/// `out`.
pub fn put_message_head(out: &mut impl BufMut, prio: u8, topic: &str, payload_len: usize) {
    out.put_u8(status::OK);
    out.put_u8(prio);
    put_len(out, topic.len() + 1 + payload_len);
    out.put_slice(topic.as_bytes());
    out.put_u8(0);
}

/// What arrives on a data socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A beacon: the server is alive, nothing to deliver.
    Nop,
    /// A message.
    Message {
        /// Priority byte as published.
        prio: u8,
        /// Normalised topic.
        topic: Bytes,
        /// Payload.
        payload: Bytes,
    },
}

/// Decodes one pushed frame whose `topic 00 payload` is at most `max` bytes.
pub fn decode_push(buf: &mut BytesMut, max: usize) -> Result<Option<Push>, WireError> {
    let Some(&code) = buf.first() else {
        return Ok(None);
    };
    match code {
        status::NOP => {
            buf.advance(1);
            Ok(Some(Push::Nop))
        }
        status::OK => {
            let Some(&prio) = buf.get(1) else {
                return Ok(None);
            };
            let Some(mut body) = take_sized(buf, 2, max)? else {
                return Ok(None);
            };
            let pos = body
                .iter()
                .position(|&b| b == 0)
                .ok_or(WireError::MissingSeparator)?;
            let topic = body.split_to(pos);
            body.advance(1);
            Ok(Some(Push::Message {
                prio,
                topic,
                payload: body,
            }))
        }
        other => Err(WireError::Unexpected(other)),
    }
}
