//! A minimal blocking PSRT client over std sockets, plain or TLS.
//!
//! The benchmark drives servers with blocking sockets on dedicated threads
//! rather than the async client: pipelined publishes go out in one
//! `write` per batch, replies are counted straight from a scratch buffer,
//! and pushed frames are counted by [`PushStream`] without buffering whole
//! payloads, so the measuring side costs as little CPU as possible on a
//! machine it shares with the server. Frames are built with
//! [`psrt_proto::wire`]. With TLS ([`Endpoint::tls`]) both the control
//! and the data socket send their greeting in clear, asking for TLS, and
//! everything after it travels inside TLS (PROTOCOL.md, "Greeting and
//! login").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use psrt_proto::wire::push::{decode_greeting_reply, decode_status, decode_token};
use psrt_proto::wire::request::{
    DataHello, Greeting, encode_data_hello, encode_greeting, encode_login, encode_topics,
};
use psrt_proto::wire::{DEFAULT_PRIORITY, SocketKind, Token, WireError, op, status};

use crate::BenchError;
use crate::tls::Endpoint;
use crate::transport::Transport;

/// How long connecting, logging in or waiting for a reply may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Data-socket timeout sent in the hello: beacons come every half of it.
const DATA_TIMEOUT_SECS: u8 = 120;
/// Payloads above this are written straight from the caller's buffer
/// instead of being copied into the batch.
const COPY_LIMIT: usize = 64 * 1024;
/// Bytes of each pushed frame's body (`topic 00 payload`) kept for the
/// frame callback.
pub const PREFIX: usize = 32;
/// Read buffer of a data socket.
const SCRATCH: usize = 256 * 1024;

/// A logged-in control socket (anonymous login).
#[derive(Debug)]
pub struct Control {
    stream: Transport,
    endpoint: Endpoint,
    token: Token,
    out: BytesMut,
    scratch: Box<[u8]>,
}

impl Control {
    /// Connects to `endpoint` and logs in anonymously.
    pub fn connect(endpoint: &Endpoint) -> Result<Self, BenchError> {
        let mut stream = open(endpoint, SocketKind::Control)?;
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        encode_login(&mut out, "", b"");
        stream.write_all(&out)?;
        let token = read_frame(&mut stream, &mut buf, |b| Ok(decode_token(b)))?;
        out.clear();
        Ok(Self {
            stream,
            endpoint: endpoint.clone(),
            token,
            out,
            scratch: vec![0; 4096].into_boxed_slice(),
        })
    }

    /// Opens this session's data socket.
    pub fn open_data(&self) -> Result<PushStream, BenchError> {
        let mut stream = open(&self.endpoint, SocketKind::Data)?;
        let mut out = BytesMut::new();
        encode_data_hello(
            &mut out,
            &DataHello {
                token: self.token,
                timeout_secs: DATA_TIMEOUT_SECS,
            },
        );
        stream.write_all(&out)?;
        let mut buf = BytesMut::new();
        let code = read_frame(&mut stream, &mut buf, |b| Ok(decode_status(b)))?;
        if code != status::OK {
            return Err(BenchError::Refused(code));
        }
        Ok(PushStream::new(stream, &buf))
    }

    /// Subscribes to each filter with its own SUBSCRIBE request, all
    /// pipelined, and waits for every reply.
    pub fn subscribe(&mut self, filters: &[String]) -> Result<(), BenchError> {
        for filter in filters {
            encode_topics(&mut self.out, op::SUBSCRIBE, [filter.as_str()]);
        }
        self.flush()?;
        self.read_replies(filters.len())?;
        Ok(())
    }

    /// Queues a PUBLISH; it goes out with the next [`Control::flush`]
    /// (large payloads are written at once, after what is queued).
    pub fn queue_publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), BenchError> {
        let len = u32::try_from(topic.len() + 1 + payload.len())
            .map_err(|_| BenchError::Protocol("payload too large".into()))?;
        self.out.put_u8(op::PUBLISH);
        self.out.put_u8(DEFAULT_PRIORITY);
        self.out.put_u32_le(len);
        self.out.put_slice(topic.as_bytes());
        self.out.put_u8(0);
        if payload.len() > COPY_LIMIT {
            self.flush()?;
            self.stream.write_all(payload)?;
        } else {
            self.out.put_slice(payload);
        }
        Ok(())
    }

    /// Writes the first `n` frames of a pre-encoded batch, after what is
    /// queued, in one write.
    pub fn send_batch(&mut self, batch: &PublishBatch, n: usize) -> Result<(), BenchError> {
        self.flush()?;
        self.stream.write_all(batch.first(n))?;
        Ok(())
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), BenchError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads replies until at least `at_least` arrived (at least one is
    /// always awaited); every reply must be OK. Returns how many arrived.
    pub fn read_replies(&mut self, at_least: usize) -> Result<usize, BenchError> {
        let mut count = 0;
        while count < at_least.max(1) {
            let n = self.stream.read(&mut self.scratch)?;
            if n == 0 {
                return Err(BenchError::Closed);
            }
            let replies = self.scratch.get(..n).unwrap_or_default();
            if let Some(&code) = replies.iter().find(|&&code| code != status::OK) {
                return Err(BenchError::Refused(code));
            }
            count += n;
        }
        Ok(count)
    }
}

/// PUBLISH frames of one topic and payload, encoded once and written in
/// runs: a publisher sending the same message over and over costs one
/// `write` per run and no encoding.
#[derive(Debug, Clone)]
pub struct PublishBatch {
    bytes: Vec<u8>,
    frame_len: usize,
}

impl PublishBatch {
    /// `count` (at least one) PUBLISH frames of `payload` to `topic`, at
    /// the default priority.
    pub fn new(topic: &str, payload: &[u8], count: usize) -> Result<Self, BenchError> {
        let len = u32::try_from(topic.len() + 1 + payload.len())
            .map_err(|_| BenchError::Protocol("payload too large".into()))?;
        let mut frame = Vec::with_capacity(6 + len as usize);
        frame.push(op::PUBLISH);
        frame.push(DEFAULT_PRIORITY);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(topic.as_bytes());
        frame.push(0);
        frame.extend_from_slice(payload);
        Ok(Self {
            bytes: frame.repeat(count.max(1)),
            frame_len: frame.len(),
        })
    }

    /// How many frames the batch holds.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.frame_len
    }

    /// Always false: a batch holds at least one frame.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes of the first `n` frames (all of them if `n` is larger).
    pub fn first(&self, n: usize) -> &[u8] {
        let end = n.saturating_mul(self.frame_len).min(self.bytes.len());
        self.bytes.get(..end).unwrap_or_default()
    }
}

/// The receiving end of a data socket: counts pushed frames as they
/// stream in, without buffering their payloads.
#[derive(Debug)]
pub struct PushStream {
    stream: Transport,
    scratch: Box<[u8]>,
    parser: PushParser,
    /// Bytes read before the parser took over (after the hello reply).
    pending: Vec<u8>,
}

impl PushStream {
    fn new(stream: Transport, leftover: &[u8]) -> Self {
        Self {
            stream,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            parser: PushParser::default(),
            pending: leftover.to_vec(),
        }
    }

    /// Sets how long [`PushStream::read_some`] may block.
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<(), BenchError> {
        self.stream.set_read_timeout(timeout)?;
        Ok(())
    }

    /// Reads what is available (blocking up to the read timeout) and calls
    /// `on_frame(prefix, body_len)` for each complete message, `prefix`
    /// being the first [`PREFIX`] bytes of `topic 00 payload`. Returns
    /// `Ok(false)` on a read timeout.
    pub fn read_some(
        &mut self,
        on_frame: &mut impl FnMut(&[u8], usize),
    ) -> Result<bool, BenchError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.parser.feed(&pending, on_frame)?;
        }
        match self.stream.read(&mut self.scratch) {
            Ok(0) => Err(BenchError::Closed),
            Ok(n) => {
                let data = self.scratch.get(..n).unwrap_or_default();
                self.parser.feed(data, on_frame)?;
                Ok(true)
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Incremental parser of the data-socket stream: `00` beacons and
/// `01 PRIO LEN body` messages.
#[derive(Debug, Default)]
struct PushParser {
    head: [u8; 6],
    head_len: usize,
    body_len: usize,
    body_left: usize,
    prefix: [u8; PREFIX],
    prefix_len: usize,
}

impl PushParser {
    fn feed(
        &mut self,
        mut data: &[u8],
        on_frame: &mut impl FnMut(&[u8], usize),
    ) -> Result<(), BenchError> {
        while !data.is_empty() {
            data = if self.body_left > 0 {
                self.feed_body(data, on_frame)
            } else if self.head_len == 0 {
                match feed_whole(data, on_frame)? {
                    [] => return Ok(()),
                    rest => self.feed_head(rest, on_frame)?,
                }
            } else {
                self.feed_head(data, on_frame)?
            };
        }
        Ok(())
    }

    fn feed_head<'a>(
        &mut self,
        data: &'a [u8],
        on_frame: &mut impl FnMut(&[u8], usize),
    ) -> Result<&'a [u8], BenchError> {
        let Some((&first, rest)) = data.split_first() else {
            return Ok(data);
        };
        if self.head_len == 0 {
            match first {
                status::NOP => return Ok(rest),
                status::OK => {}
                other => {
                    return Err(BenchError::Protocol(format!(
                        "pushed frame starts with {other:#04x}"
                    )));
                }
            }
        }
        let take = (self.head.len() - self.head_len).min(data.len());
        let (chunk, rest) = data.split_at(take);
        self.head[self.head_len..self.head_len + take].copy_from_slice(chunk);
        self.head_len += take;
        if self.head_len == self.head.len() {
            let [_, _, l0, l1, l2, l3] = self.head;
            self.body_len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
            self.body_left = self.body_len;
            self.head_len = 0;
            self.prefix_len = 0;
            if self.body_len == 0 {
                on_frame(&[], 0);
            }
        }
        Ok(rest)
    }

    fn feed_body<'a>(
        &mut self,
        data: &'a [u8],
        on_frame: &mut impl FnMut(&[u8], usize),
    ) -> &'a [u8] {
        let take = self.body_left.min(data.len());
        let (chunk, rest) = data.split_at(take);
        let keep = (PREFIX - self.prefix_len).min(chunk.len());
        self.prefix[self.prefix_len..self.prefix_len + keep].copy_from_slice(&chunk[..keep]);
        self.prefix_len += keep;
        self.body_left -= take;
        if self.body_left == 0 {
            on_frame(&self.prefix[..self.prefix_len], self.body_len);
        }
        rest
    }
}

/// Takes every complete frame at the start of `data` in place, without
/// copying anything, and returns the rest (empty, or the start of a frame
/// that has not fully arrived): a subscriber reading big chunks counts
/// most frames here.
fn feed_whole<'a>(
    mut data: &'a [u8],
    on_frame: &mut impl FnMut(&[u8], usize),
) -> Result<&'a [u8], BenchError> {
    loop {
        match data {
            [status::NOP, rest @ ..] => data = rest,
            [status::OK, _, l0, l1, l2, l3, rest @ ..] => {
                let len = u32::from_le_bytes([*l0, *l1, *l2, *l3]) as usize;
                let (Some(body), Some(after)) = (rest.get(..len), rest.get(len..)) else {
                    return Ok(data);
                };
                on_frame(body.get(..PREFIX).unwrap_or(body), len);
                data = after;
            }
            [status::OK, ..] | [] => return Ok(data),
            [other, ..] => {
                return Err(BenchError::Protocol(format!(
                    "pushed frame starts with {other:#04x}"
                )));
            }
        }
    }
}

/// Opens a socket and exchanges the greeting: the greeting goes out in
/// clear; with TLS the handshake follows and the reply comes inside TLS.
fn open(endpoint: &Endpoint, kind: SocketKind) -> Result<Transport, BenchError> {
    let mut socket = TcpStream::connect_timeout(&endpoint.addr, IO_TIMEOUT)?;
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut out = BytesMut::new();
    let tls = endpoint.tls.is_some();
    encode_greeting(&mut out, Greeting { kind, tls });
    socket.write_all(&out)?;
    let mut stream = match &endpoint.tls {
        Some(settings) => Transport::tls(socket, settings)?,
        None => Transport::Plain(socket),
    };
    let mut buf = BytesMut::new();
    read_frame(&mut stream, &mut buf, |b| decode_greeting_reply(b, kind))?;
    if !buf.is_empty() {
        return Err(BenchError::Protocol(
            "bytes after the greeting reply".into(),
        ));
    }
    Ok(stream)
}

/// Reads into `buf` until `decode` yields a value.
fn read_frame<T>(
    stream: &mut Transport,
    buf: &mut BytesMut,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, WireError>,
) -> Result<T, BenchError> {
    let mut chunk = [0u8; 256];
    loop {
        if let Some(value) = decode(buf)? {
            return Ok(value);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(BenchError::Closed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parser: &mut PushParser, data: &[u8]) -> Vec<(Vec<u8>, usize)> {
        let mut seen = Vec::new();
        parser
            .feed(data, &mut |prefix, len| seen.push((prefix.to_vec(), len)))
            .expect("valid stream");
        seen
    }

    #[test]
    fn parser_counts_frames_split_anywhere() {
        let mut stream = vec![0u8];
        for payload in [&b"abc"[..], &[7u8; 100][..]] {
            stream.extend_from_slice(&[1, 0x7F]);
            stream.extend_from_slice(&(2 + payload.len() as u32).to_le_bytes());
            stream.extend_from_slice(b"t\0");
            stream.extend_from_slice(payload);
            stream.push(0);
        }
        for split in 0..stream.len() {
            let mut parser = PushParser::default();
            let (a, b) = stream.split_at(split);
            let mut seen = frames(&mut parser, a);
            seen.extend(frames(&mut parser, b));
            assert_eq!(seen.len(), 2, "split at {split}");
            assert_eq!(seen[0], (b"t\0abc".to_vec(), 5));
            assert_eq!(seen[1].1, 102);
            assert_eq!(seen[1].0.len(), PREFIX);
        }
    }

    #[test]
    fn parser_counts_many_frames_fed_in_any_chunks() {
        let payload = [b'x'; 32];
        let mut stream = Vec::new();
        for k in 0..50u8 {
            if k % 7 == 0 {
                stream.push(0);
            }
            stream.extend_from_slice(&[1, 0x7F]);
            stream.extend_from_slice(&(2 + payload.len() as u32).to_le_bytes());
            stream.extend_from_slice(&[b'a' + k % 26, 0]);
            stream.extend_from_slice(&payload);
        }
        for chunk in [1, 5, 6, 7, 39, 40, 41, 100, 4096] {
            let mut parser = PushParser::default();
            let mut seen = Vec::new();
            for piece in stream.chunks(chunk) {
                seen.extend(frames(&mut parser, piece));
            }
            assert_eq!(seen.len(), 50, "chunks of {chunk}");
            for (k, (prefix, len)) in seen.iter().enumerate() {
                assert_eq!(*len, 34, "chunks of {chunk}");
                assert_eq!(prefix.len(), PREFIX);
                assert_eq!(prefix[0], b'a' + (k % 26) as u8, "chunks of {chunk}");
            }
        }
    }

    #[test]
    fn whole_frames_leave_a_partial_one() {
        let mut stream = vec![1, 0x7F, 3, 0, 0, 0, b't', 0, b'p', 0, 1, 0x7F, 9];
        let mut seen = Vec::new();
        let rest = feed_whole(&stream, &mut |prefix, len| {
            seen.push((prefix.to_vec(), len))
        })
        .expect("valid stream");
        assert_eq!(seen, vec![(b"t\0p".to_vec(), 3)]);
        assert_eq!(rest, &[1, 0x7F, 9]);
        stream.truncate(3);
        let rest = feed_whole(&stream, &mut |_, _| panic!("no complete frame"));
        assert_eq!(rest.expect("valid stream").len(), 3);
        assert!(feed_whole(&[0, 0xFF], &mut |_, _| {}).is_err());
    }

    #[test]
    fn batch_holds_publish_frames() {
        let batch = PublishBatch::new("a/b", b"xyz", 4).expect("small frame");
        assert_eq!(batch.len(), 4);
        let frame = [
            op::PUBLISH,
            DEFAULT_PRIORITY,
            7,
            0,
            0,
            0,
            b'a',
            b'/',
            b'b',
            0,
            b'x',
            b'y',
            b'z',
        ];
        assert_eq!(batch.first(1), &frame);
        assert_eq!(batch.first(2), [frame, frame].concat());
        assert_eq!(batch.first(9).len(), 4 * frame.len());
        assert_eq!(batch.first(0), &[] as &[u8]);
    }

    #[test]
    fn parser_refuses_unknown_frame() {
        let mut parser = PushParser::default();
        assert!(parser.feed(&[0xFF], &mut |_, _| {}).is_err());
    }
}
