//! Frames a client sends: decoders for the server, encoders for clients.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{SocketKind, TOKEN_LEN, Token, WireError, check_len, op, put_len, read_len};

/// A client greeting: which socket, and whether TLS follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// Control or data socket.
    pub kind: SocketKind,
    /// Mode byte `01`: a TLS handshake starts right after the greeting.
    pub tls: bool,
}

/// Decodes `EE AA MODE` or `EE AB MODE`.
pub fn decode_greeting(buf: &mut BytesMut) -> Result<Option<Greeting>, WireError> {
    // Refuse a wrong first byte at once rather than waiting for three.
    if buf.first().is_some_and(|&b| b != 0xEE) {
        return Err(WireError::BadGreeting);
    }
    let Some(&[_, second, mode]) = buf.get(..3) else {
        return Ok(None);
    };
    let kind = match second {
        0xAA => SocketKind::Control,
        0xAB => SocketKind::Data,
        _ => return Err(WireError::BadGreeting),
    };
    let tls = match mode {
        0 => false,
        1 => true,
        other => return Err(WireError::BadMode(other)),
    };
    buf.advance(3);
    Ok(Some(Greeting { kind, tls }))
}

/// Encodes a client greeting.
pub fn encode_greeting(out: &mut BytesMut, greeting: Greeting) {
    out.put_slice(&greeting.kind.magic());
    out.put_u8(u8::from(greeting.tls));
}

/// A login frame: `LEN login 00 password`. Both empty means anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Login name bytes (UTF-8 is checked by the broker).
    pub login: Bytes,
    /// Password bytes.
    pub password: Bytes,
}

/// Decodes a login frame whose body is at most `max` bytes.
pub fn decode_login(buf: &mut BytesMut, max: usize) -> Result<Option<Login>, WireError> {
    let Some(body) = take_sized(buf, 0, max)? else {
        return Ok(None);
    };
    let (login, password) = split_at_nul(body)?;
    Ok(Some(Login { login, password }))
}

/// Encodes a login frame.
pub fn encode_login(out: &mut BytesMut, login: &str, password: &[u8]) {
    put_len(out, login.len() + 1 + password.len());
    out.put_slice(login.as_bytes());
    out.put_u8(0);
    out.put_slice(password);
}

/// The data-socket hello: the control session's token and the client's
/// keep-alive timeout in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHello {
    /// Token from the control login.
    pub token: Token,
    /// Client timeout; the server beacons every `timeout / 2` seconds.
    pub timeout_secs: u8,
}

/// Decodes the 33-byte data-socket hello.
pub fn decode_data_hello(buf: &mut BytesMut) -> Result<Option<DataHello>, WireError> {
    let Some(bytes) = buf.get(..TOKEN_LEN + 1) else {
        return Ok(None);
    };
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&bytes[..TOKEN_LEN]);
    let timeout_secs = bytes[TOKEN_LEN];
    buf.advance(TOKEN_LEN + 1);
    Ok(Some(DataHello {
        token,
        timeout_secs,
    }))
}

/// Encodes the data-socket hello.
pub fn encode_data_hello(out: &mut BytesMut, hello: &DataHello) {
    out.put_slice(&hello.token);
    out.put_u8(hello.timeout_secs);
}

/// One control-socket operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Keep-alive.
    Nop,
    /// `PRIO LEN topic 00 payload`.
    Publish(Publish),
    /// `LEN topic[00 topic...]`: raw filter list, `00`-separated.
    Subscribe(Bytes),
    /// `LEN topic[00 topic...]`.
    Unsubscribe(Bytes),
    /// `LEN topic`: a cluster peer offers a message.
    PublishRepl {
        /// Raw topic.
        topic: Bytes,
    },
    /// `PRIO TIMESTAMP(u64 ns) LEN topic 00 payload`: a cluster peer of
    /// ours replicates a message in one self-delimited frame (our
    /// extension, see `docs/replication.md`).
    ReplPipelined {
        /// Priority byte, passed through.
        prio: u8,
        /// Publish time at the origin, ns since the Unix epoch.
        timestamp_ns: u64,
        /// Raw topic (validated by the broker).
        topic: Bytes,
        /// Payload, sharing the read buffer's memory.
        payload: Bytes,
    },
    /// The same op byte with `LEN` 0: does this server speak
    /// [`Op::ReplPipelined`]? Answered like an offer would be (`OK` to a
    /// replicator, `ERR_ACCESS` otherwise); a server that does not know
    /// the op closes the connection.
    ReplProbe,
    /// End the session.
    Bye,
}

/// Bytes before the topic of a PUBLISH frame: op, prio, `LEN`.
const PUBLISH_HEAD: usize = 6;

/// A PUBLISH as one buffer: the whole frame `01 PRIO LEN topic 00
/// payload`, with its parts as views of it.
///
/// Decoded, the frame is a slice of the read buffer (no copy). Since a
/// data socket pushes `01 PRIO LEN topic 00 payload` too, with `LEN`
/// covering the same bytes, the frame of a PUBLISH whose topic needs no
/// normalising is byte for byte the push its subscribers get, and the
/// broker can queue the frame itself (see [`Self::frame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    frame: Bytes,
    /// The payload: `frame` from past the topic's `00` on.
    payload: Bytes,
    topic_len: usize,
}

impl Publish {
    /// Encodes a PUBLISH of `payload` to `topic`, which must not contain
    /// `00` (a decoder would end the topic there).
    pub fn new(prio: u8, topic: &[u8], payload: &[u8]) -> Self {
        let mut frame = BytesMut::new();
        encode_publish(&mut frame, prio, topic, payload);
        Self::from_frame(frame.freeze(), topic.len())
    }

    /// `frame` is a whole PUBLISH frame whose topic is `topic_len` bytes.
    fn from_frame(frame: Bytes, topic_len: usize) -> Self {
        let payload = frame.slice((PUBLISH_HEAD + topic_len + 1).min(frame.len())..);
        Self {
            frame,
            payload,
            topic_len,
        }
    }

    /// The priority byte, passed through.
    pub fn prio(&self) -> u8 {
        self.frame.get(1).copied().unwrap_or_default()
    }

    /// The raw topic (validated by the broker).
    pub fn topic(&self) -> &[u8] {
        self.frame
            .get(PUBLISH_HEAD..PUBLISH_HEAD + self.topic_len)
            .unwrap_or_default()
    }

    /// The payload, sharing the frame's memory.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The whole frame as received: `01 PRIO LEN topic 00 payload`.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

/// Limits the control-op decoder enforces on declared lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpLimits {
    /// Largest `topic 00 payload` of a PUBLISH.
    pub max_pub_size: usize,
    /// Largest SUBSCRIBE/UNSUBSCRIBE/PUBLISH_REPL body.
    pub max_topic_length: usize,
}

/// Decodes one control operation.
pub fn decode_op(buf: &mut BytesMut, limits: OpLimits) -> Result<Option<Op>, WireError> {
    let Some(&code) = buf.first() else {
        return Ok(None);
    };
    match code {
        op::NOP => {
            buf.advance(1);
            Ok(Some(Op::Nop))
        }
        op::BYE => {
            buf.advance(1);
            Ok(Some(Op::Bye))
        }
        op::PUBLISH => {
            let Some(len) = read_len(buf, 2) else {
                return Ok(None);
            };
            check_len(len, limits.max_pub_size)?;
            // No reserve for the body (see `take_sized`).
            let Some(body) = buf.get(PUBLISH_HEAD..PUBLISH_HEAD + len) else {
                return Ok(None);
            };
            let topic_len = body
                .iter()
                .position(|&b| b == 0)
                .ok_or(WireError::MissingSeparator)?;
            let frame = buf.split_to(PUBLISH_HEAD + len).freeze();
            Ok(Some(Op::Publish(Publish::from_frame(frame, topic_len))))
        }
        op::REPL_PIPELINED => {
            let Some(head) = buf.get(1..REPL_PIPELINED_PREFIX) else {
                return Ok(None);
            };
            let prio = head[0];
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&head[1..9]);
            let Some(body) = take_sized(buf, REPL_PIPELINED_PREFIX, limits.max_pub_size)? else {
                return Ok(None);
            };
            if body.is_empty() {
                return Ok(Some(Op::ReplProbe));
            }
            let (topic, payload) = split_at_nul(body)?;
            Ok(Some(Op::ReplPipelined {
                prio,
                timestamp_ns: u64::from_le_bytes(ts),
                topic,
                payload,
            }))
        }
        op::SUBSCRIBE | op::UNSUBSCRIBE | op::PUBLISH_REPL => {
            let Some(body) = take_sized(buf, 1, limits.max_topic_length)? else {
                return Ok(None);
            };
            Ok(Some(match code {
                op::SUBSCRIBE => Op::Subscribe(body),
                op::UNSUBSCRIBE => Op::Unsubscribe(body),
                _ => Op::PublishRepl { topic: body },
            }))
        }
        other => Err(WireError::UnknownOp(other)),
    }
}

/// The whole size (header and body) of the control operation at the head
/// of `buf`, once its header has arrived; `None` before that and for
/// operations without a body. Lets a driver size its read buffer for the
/// rest of a large frame at once instead of growing it step by step.
pub fn declared_op_size(buf: &[u8]) -> Option<usize> {
    let prefix = match *buf.first()? {
        op::PUBLISH => 2,
        op::SUBSCRIBE | op::UNSUBSCRIBE | op::PUBLISH_REPL => 1,
        op::REPL_PIPELINED => REPL_PIPELINED_PREFIX,
        _ => return None,
    };
    read_len(buf, prefix)?.checked_add(prefix + 4)
}

/// Encodes one control operation.
pub fn encode_op(out: &mut BytesMut, operation: &Op) {
    match operation {
        Op::Nop => out.put_u8(op::NOP),
        Op::Bye => out.put_u8(op::BYE),
        Op::Publish(publish) => out.put_slice(publish.frame()),
        Op::Subscribe(body) => encode_topics_raw(out, op::SUBSCRIBE, body),
        Op::Unsubscribe(body) => encode_topics_raw(out, op::UNSUBSCRIBE, body),
        Op::PublishRepl { topic } => encode_topics_raw(out, op::PUBLISH_REPL, topic),
        Op::ReplPipelined {
            prio,
            timestamp_ns,
            topic,
            payload,
        } => encode_repl_pipelined(out, *prio, *timestamp_ns, topic, payload),
        Op::ReplProbe => encode_repl_probe(out),
    }
}

/// Bytes before the `LEN` of a [`Op::ReplPipelined`]: op, prio, timestamp.
const REPL_PIPELINED_PREFIX: usize = 10;

/// Encodes an [`Op::ReplPipelined`] without building an [`Op`]. The topic
/// must not be empty (an empty body is the probe).
pub fn encode_repl_pipelined(
    out: &mut BytesMut,
    prio: u8,
    timestamp_ns: u64,
    topic: &[u8],
    payload: &[u8],
) {
    out.reserve(REPL_PIPELINED_PREFIX + 4 + topic.len() + 1 + payload.len());
    out.put_u8(op::REPL_PIPELINED);
    out.put_u8(prio);
    out.put_u64_le(timestamp_ns);
    put_len(out, topic.len() + 1 + payload.len());
    out.put_slice(topic);
    out.put_u8(0);
    out.put_slice(payload);
}

/// Encodes an [`Op::ReplProbe`].
pub fn encode_repl_probe(out: &mut BytesMut) {
    out.put_u8(op::REPL_PIPELINED);
    out.put_u8(0);
    out.put_u64_le(0);
    put_len(out, 0);
}

/// Encodes a PUBLISH without building an [`Op`].
pub fn encode_publish(out: &mut BytesMut, prio: u8, topic: &[u8], payload: &[u8]) {
    out.reserve(6 + topic.len() + 1 + payload.len());
    out.put_u8(op::PUBLISH);
    out.put_u8(prio);
    put_len(out, topic.len() + 1 + payload.len());
    out.put_slice(topic);
    out.put_u8(0);
    out.put_slice(payload);
}

/// Encodes a SUBSCRIBE (`op::SUBSCRIBE`) or UNSUBSCRIBE (`op::UNSUBSCRIBE`)
/// of several filters, `00`-separated.
pub fn encode_topics<'a>(out: &mut BytesMut, code: u8, topics: impl IntoIterator<Item = &'a str>) {
    let mut body = BytesMut::new();
    for topic in topics {
        if !body.is_empty() {
            body.put_u8(0);
        }
        body.put_slice(topic.as_bytes());
    }
    encode_topics_raw(out, code, &body);
}

fn encode_topics_raw(out: &mut BytesMut, code: u8, body: &[u8]) {
    out.put_u8(code);
    put_len(out, body.len());
    out.put_slice(body);
}

/// Iterates the non-empty `00`-separated pieces of a SUBSCRIBE/UNSUBSCRIBE
/// body.
pub fn split_topics(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == 0).filter(|piece| !piece.is_empty())
}

/// The payload a replicating peer sends after `OK_WAITING`:
/// `PRIO TIMESTAMP(u64 ns) LEN payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplPayload {
    /// Priority byte.
    pub prio: u8,
    /// Publish time at the origin, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// The message payload.
    pub payload: Bytes,
}

/// Decodes a replication payload of at most `max` bytes.
pub fn decode_repl_payload(
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<ReplPayload>, WireError> {
    let Some(head) = buf.get(..9) else {
        return Ok(None);
    };
    let prio = head[0];
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&head[1..9]);
    let Some(payload) = take_sized(buf, 9, max)? else {
        return Ok(None);
    };
    Ok(Some(ReplPayload {
        prio,
        timestamp_ns: u64::from_le_bytes(ts),
        payload,
    }))
}

/// Encodes a replication payload.
pub fn encode_repl_payload(out: &mut BytesMut, prio: u8, timestamp_ns: u64, payload: &[u8]) {
    out.put_u8(prio);
    out.put_u64_le(timestamp_ns);
    put_len(out, payload.len());
    out.put_slice(payload);
}

/// Splits off `prefix` bytes, a `u32` length and that many body bytes, and
/// returns the body; the length is checked against `max` first.
pub(super) fn take_sized(
    buf: &mut BytesMut,
    prefix: usize,
    max: usize,
) -> Result<Option<Bytes>, WireError> {
    let Some(len) = read_len(buf, prefix) else {
        return Ok(None);
    };
    check_len(len, max)?;
    let head = prefix + 4;
    // No reserve for the body: a peer that declares a large frame and then
    // stalls must not make us allocate it up front.
    if buf.len() < head + len {
        return Ok(None);
    }
    buf.advance(head);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Splits `a 00 b` into `a` and `b` without copying.
fn split_at_nul(mut body: Bytes) -> Result<(Bytes, Bytes), WireError> {
    let pos = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(WireError::MissingSeparator)?;
    let head = body.split_to(pos);
    body.advance(1);
    Ok((head, body))
}
