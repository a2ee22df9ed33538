//! Check functions shared by the cargo-fuzz targets (`fuzz/`) and the corpus
//! replay test at the end of this file.
//!
//! Each `check_*` function takes the fuzzer's raw bytes, drives one part of
//! the core with them and asserts invariants, not just "no panic". A failed
//! assertion is a found bug: these functions panic on purpose, and only
//! they do (the code under test must not). Every committed corpus file under
//! `fuzz/corpus/TARGET/` is replayed through the same function by
//! `cargo test`, so a crash the fuzzer found stays a regression test.
//!
//! Compiled for tests and with the `fuzzing` feature only.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::SeedableRng;

use crate::Limits;
use crate::auth::{Keys, Passwords};
use crate::broker::{AuthConfig, Broker};
use crate::client::{ClientEvent, ControlClient, DataClient};
use crate::config::{FileError, ServerConfig, parse_acl};
use crate::conn::{CloseReason, ConnConfig, Transport};
use crate::http;
use crate::node::{ConnId, Node};
use crate::stats::Counters;
use crate::topic;
use crate::txbuf::TxBuf;
use crate::udp::{self, Cipher};
use crate::wire::push::{self, Push};
use crate::wire::request::{self, DataHello, Greeting};
use crate::wire::{SocketKind, TOKEN_LEN, Token, op, status};

mod node_ops;

pub use node_ops::check_node_ops;

/// A bcrypt hash (cost 4, so a check takes about a millisecond) of
/// [`PASSWORD`], the password of every named test user.
const PASSWORD_HASH: &str = "$2b$04$JqY7qpC4eu7LjFmPlSa2UeM6ixrmIcnDM/0kEE52ciqe1C5tLzm8q";
/// The password of every named test user.
const PASSWORD: &str = "secret";
/// Largest `topic 00 payload` the fuzzed nodes accept: small, so declared
/// lengths past it are refused early and inputs stay cheap.
const MAX_PUB: usize = 4096;
/// Data-socket timeout byte sent in the hellos of these checks (seconds).
const DATA_TIMEOUT: u8 = 10;
/// Every status byte a control socket may answer an operation with.
const REPLY_CODES: [u8; 5] = [
    status::OK,
    status::OK_WAITING,
    status::NOT_REQUIRED,
    status::ERR_ACCESS,
    status::ERR,
];

// ----- control_input -----

/// Target `control_input`: a logged-in control socket (anonymous, full
/// rights, subscribed to `#` with a data socket) is fed arbitrary bytes.
///
/// The first byte `n` (mod 8) and the `n` bytes after it give the sizes the
/// rest is cut into. Invariants: the outcome (replies, pushed bytes, close
/// reason, counters) is the same whether the input comes whole or cut
/// (except that a session ending drops the messages still queued, and the
/// whole input gives the data socket no chance to read them first); every
/// reply is a status code; the pushed stream decodes; no more messages are
/// sent than published; the socket is open or closed for a protocol reason
/// or BYE; nothing is left in the broker afterwards.
pub fn check_control_input(data: &[u8]) {
    let Some((sizes, input)) = split_plan(data) else {
        return;
    };
    let whole = ControlRun::run(input, &[]);
    let cut = ControlRun::run(input, sizes);
    if whole.reason.is_none() {
        assert_eq!(whole, cut, "the outcome depends on how the input was cut");
        return;
    }
    assert_eq!(whole.replies, cut.replies, "replies depend on the cut");
    assert_eq!(whole.reason, cut.reason, "close depends on the cut");
    let (w, c) = (whole.counters, cut.counters);
    assert_eq!(
        (w.c_pub_messages, w.c_pub_bytes),
        (c.c_pub_messages, c.c_pub_bytes)
    );
    assert_eq!(w.c_sub_ops, c.c_sub_ops);
    assert!(
        cut.pushed.starts_with(&whole.pushed),
        "pushed streams differ"
    );
}

/// What a control socket made of its input.
#[derive(Debug, PartialEq, Eq)]
struct ControlRun {
    replies: Vec<u8>,
    pushed: Vec<u8>,
    reason: Option<CloseReason>,
    counters: Counters,
}

impl ControlRun {
    fn run(input: &[u8], sizes: &[u8]) -> Self {
        let mut server = TestServer::open(Limits {
            data_queue: 1 << 20,
            ..small_limits()
        });
        let (control, token) = server.anonymous_login();
        let data = server.bind_data(&token);
        assert_eq!(
            server.request(control, &topics_frame(op::SUBSCRIBE, "#")),
            [status::OK]
        );
        let mut replies = Vec::new();
        let mut pushed = Vec::new();
        for chunk in cut(input, sizes) {
            server.node.send(control, chunk, server.now);
            replies.extend(server.node.recv(control, server.now));
            pushed.extend(server.node.recv(data, server.now));
            let counters = server.node.broker().counters();
            assert!(counters.c_sent_messages <= counters.c_pub_messages);
        }
        assert!(
            replies.iter().all(|b| REPLY_CODES.contains(b)),
            "bad reply in {replies:?}"
        );
        check_pushed_stream(&pushed);
        let reason = server.node.close_reason(control);
        assert_eq!(server.node.is_closed(control), reason.is_some());
        if let Some(reason) = &reason {
            assert!(
                matches!(reason, CloseReason::Protocol(_) | CloseReason::Bye),
                "unexpected close: {reason:?}"
            );
        }
        let counters = server.node.broker().counters();
        server.node.disconnect(data);
        server.node.disconnect(control);
        server.assert_empty();
        ControlRun {
            replies,
            pushed,
            reason,
            counters,
        }
    }
}

// ----- data_input -----

/// Target `data_input`: a data socket fed arbitrary bytes.
///
/// Even first byte: the rest is the socket's whole input from the start;
/// the server must answer a greeting with the right reply and refuse an
/// unknown token. Odd first byte: a valid hello (the byte after it is the
/// timeout), then the rest in pieces of up to 16 bytes, each followed by a
/// publish to the session's `#` subscription and a clock step: the stray
/// bytes must change nothing, and exactly the published messages (plus
/// beacons) must come out.
pub fn check_data_input(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check_raw_data_socket(rest);
    } else {
        check_bound_data_socket(rest);
    }
}

fn check_raw_data_socket(input: &[u8]) {
    let mut server = TestServer::open(small_limits());
    let (control, token) = server.anonymous_login();
    let data = server.node.connect(Transport::Tcp, "fuzz", server.now);
    let out = server.request(data, input);
    let closed = server.node.is_closed(data);
    assert_eq!(closed, server.node.close_reason(data).is_some());
    let data_greeting = [0xEE, 0xAB, 0x00];
    if input.starts_with(&data_greeting) {
        let reply = push::greeting_reply(SocketKind::Data);
        assert!(
            out.starts_with(&reply),
            "data greeting answered with {out:?}"
        );
        let hello_sent = input.len() > data_greeting.len() + TOKEN_LEN;
        assert_eq!(out.len() > reply.len(), hello_sent);
        let sent_token = input.get(data_greeting.len()..data_greeting.len() + TOKEN_LEN);
        if hello_sent && sent_token != Some(&token[..]) {
            assert_eq!(out.get(reply.len()..), Some(&[status::ERR][..]));
            assert_eq!(
                server.node.close_reason(data),
                Some(CloseReason::DataRefused)
            );
        }
    }
    server.node.disconnect(data);
    server.node.disconnect(control);
    server.assert_empty();
}

fn check_bound_data_socket(input: &[u8]) {
    let Some((&timeout, rest)) = input.split_first() else {
        return;
    };
    let mut server = TestServer::open(small_limits());
    let (control, token) = server.anonymous_login();
    let data = server.node.connect(Transport::Tcp, "fuzz", server.now);
    let hello = data_hello(&token, timeout);
    let mut expected = push::greeting_reply(SocketKind::Data).to_vec();
    expected.push(status::OK);
    assert_eq!(server.request(data, &hello), expected);
    assert_eq!(
        server.request(control, &topics_frame(op::SUBSCRIBE, "#")),
        [status::OK]
    );
    let mut pushed = BytesMut::new();
    for (index, chunk) in rest.chunks(16).enumerate() {
        server.node.send(data, chunk, server.now);
        let topic = format!("t/{index}");
        let mut frame = BytesMut::new();
        request::encode_publish(&mut frame, 0x7F, topic.as_bytes(), chunk);
        assert_eq!(server.request(control, &frame), [status::OK]);
        pushed.extend(server.node.recv(data, server.now));
        let message = next_message(&mut pushed);
        assert_eq!(message, (topic.into_bytes(), chunk.to_vec()));
        assert!(pushed.is_empty(), "more was pushed than published");
        let step = u64::from(chunk.first().copied().unwrap_or(0)) * 10;
        server.now += Duration::from_millis(step);
        server.node.advance(server.now);
        assert!(
            !server.node.is_closed(data),
            "{:?}",
            server.node.close_reason(data)
        );
    }
    server.node.disconnect(control);
    server.node.recv(data, server.now);
    assert_eq!(
        server.node.close_reason(data),
        Some(CloseReason::SessionGone)
    );
    server.node.disconnect(data);
    server.assert_empty();
}

/// Takes the next message out of a pushed stream, skipping beacons.
fn next_message(pushed: &mut BytesMut) -> (Vec<u8>, Vec<u8>) {
    loop {
        match push::decode_push(pushed, MAX_PUB) {
            Ok(Some(Push::Nop)) => {}
            Ok(Some(Push::Message { topic, payload, .. })) => {
                return (topic.to_vec(), payload.to_vec());
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

// ----- login_frame -----

/// Target `login_frame`: a fresh socket fed arbitrary bytes from its very
/// first byte (greeting included), on a server with anonymous access and a
/// password user. The login decoder also runs on the bytes alone.
///
/// Invariants: the outcome is the same whole or cut where the first byte
/// says; the server answers only a valid greeting, with the right reply,
/// and a control login only with a 32-byte token that opens a session.
pub fn check_login_frame(data: &[u8]) {
    check_login_decoder(data);
    let at = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (head, tail) = data.split_at(at);
    let whole = login_run(&[data]);
    let cut = login_run(&[head, tail]);
    assert_eq!(whole, cut, "the outcome depends on how the input was cut");
}

fn check_login_decoder(data: &[u8]) {
    let max = Limits::default().max_login_size;
    let mut buf = BytesMut::from(data);
    match request::decode_login(&mut buf, max) {
        Ok(Some(login)) => {
            assert!(!login.login.contains(&0));
            assert!(login.login.len() + 1 + login.password.len() <= max);
            assert_eq!(
                buf.len() + 4 + login.login.len() + 1 + login.password.len(),
                data.len()
            );
        }
        Ok(None) => assert_eq!(buf.len(), data.len(), "an incomplete frame was consumed"),
        Err(_) => {}
    }
}

/// What a fresh socket made of its input: bytes out, close reason, live
/// sessions.
type LoginOutcome = (Vec<u8>, Option<CloseReason>, usize);

fn login_run(pieces: &[&[u8]]) -> LoginOutcome {
    let auth = AuthConfig {
        passwords: Some(test_passwords()),
        ..AuthConfig::open()
    };
    let mut server = TestServer::with_auth(small_limits(), auth);
    let socket = server.node.connect(Transport::Tcp, "fuzz", server.now);
    let mut out = Vec::new();
    for piece in pieces {
        out.extend(server.request(socket, piece));
    }
    let reason = server.node.close_reason(socket);
    assert_eq!(server.node.is_closed(socket), reason.is_some());
    let sessions = server.node.broker().session_count();
    check_login_output(&out, sessions, reason.as_ref());
    server.node.disconnect(socket);
    server.assert_empty();
    (out, reason, sessions)
}

fn check_login_output(out: &[u8], sessions: usize, reason: Option<&CloseReason>) {
    let control = push::greeting_reply(SocketKind::Control);
    let data = push::greeting_reply(SocketKind::Data);
    if out.starts_with(&control) && out.len() > control.len() {
        // Reply, token, then operation replies: the session lives exactly
        // as long as the socket.
        assert!(
            out.len() >= control.len() + TOKEN_LEN,
            "truncated token in {out:?}"
        );
        assert_eq!(sessions, usize::from(reason.is_none()));
        let replies = out.get(control.len() + TOKEN_LEN..).unwrap_or_default();
        assert!(
            replies.iter().all(|b| REPLY_CODES.contains(b)),
            "bad replies {replies:?}"
        );
        return;
    }
    assert_eq!(sessions, 0);
    if out.starts_with(&data) && out.len() > data.len() {
        // The only data token there is belongs to no session here.
        assert_eq!(out, [&data[..], &[status::ERR]].concat());
        assert_eq!(reason, Some(&CloseReason::DataRefused));
        return;
    }
    assert!(
        out.is_empty() || out == control || out == data,
        "bad output {out:?}"
    );
}

// ----- udp_datagram -----

/// Target `udp_datagram`. First byte mod 3: `0` sends the rest as a raw
/// datagram; `1`/`2` seal the rest as the plaintext body with a test key
/// (AES-128/AES-256, anonymous or `alice` by the first byte's next bit),
/// so the decrypted path sees arbitrary bodies.
///
/// Invariants: an ack is `EE AA 01 00 CODE`, CODE in {OK, ERR_ACCESS, ERR};
/// a sealed body gets exactly the ack and code the body and ACL call for;
/// every accepted publish reaches the `#` subscriber once, unchanged but
/// for topic normalisation, and nothing else does.
pub fn check_udp_datagram(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut server = UdpServer::new();
    match mode % 3 {
        0 => {
            let ack = server.send(rest);
            if udp::decode_datagram(rest, server.frame_size()).is_err() {
                assert_eq!(ack, None);
            }
        }
        1 => server.sealed(Cipher::Aes128Gcm, mode & 4 != 0, rest),
        _ => server.sealed(Cipher::Aes256Gcm, mode & 4 != 0, rest),
    }
    server.finish();
}

/// A node with a `#` subscriber, keys and ACL for UDP publishes.
struct UdpServer {
    server: TestServer,
    control: ConnId,
    data: ConnId,
    /// Messages the subscriber received so far.
    received: usize,
}

/// 64 hex digits: the anonymous user's key.
const ANON_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// 64 hex digits: alice's key.
const ALICE_KEY_HEX: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
/// Nonce of every sealed test datagram.
const NONCE: [u8; udp::NONCE_LEN] = [7; udp::NONCE_LEN];

impl UdpServer {
    fn new() -> Self {
        let path = Path::new("fuzz");
        let keys = format!("_: \"{ANON_KEY_HEX}\"\nalice: \"{ALICE_KEY_HEX}\"\n");
        let acl = "_: {sub: ['#'], pub: ['#']}\nalice: {sub: ['#'], pub: ['a/#']}\n";
        let auth = AuthConfig {
            allow_anonymous: true,
            acl: parse_acl(acl, path, small_limits().max_topic_depth).expect("test ACL"),
            passwords: Some(test_passwords()),
            keys: Some(Keys::parse(&keys, path).expect("test keys")),
        };
        let mut server = TestServer::with_auth(small_limits(), auth);
        let (control, token) = server.anonymous_login();
        let data = server.bind_data(&token);
        assert_eq!(
            server.request(control, &topics_frame(op::SUBSCRIBE, "#")),
            [status::OK]
        );
        Self {
            server,
            control,
            data,
            received: 0,
        }
    }

    fn frame_size(&self) -> usize {
        self.server.node.broker().limits().udp_frame_size
    }

    /// Sends a datagram; checks the ack's shape and what was delivered.
    fn send(&mut self, datagram: &[u8]) -> Option<u8> {
        let before = self.server.node.broker().counters().c_pub_messages;
        let ack = self.server.node.datagram(datagram, self.server.now);
        let code = ack.map(|ack| {
            let code = udp::decode_ack(&ack).expect("ack is EE AA 01 00 CODE");
            assert!([status::OK, status::ERR_ACCESS, status::ERR].contains(&code));
            code
        });
        let published = self.server.node.broker().counters().c_pub_messages - before;
        assert!(published <= 1);
        if code.is_some() {
            assert_eq!(published == 1, code == Some(status::OK));
        }
        let pushed = self.server.node.recv(self.data, self.server.now);
        let messages = decode_messages(&pushed);
        assert_eq!(messages.len() as u64, published, "delivered != published");
        if let (Some(message), Ok(frame)) =
            (messages.first(), udp::decode_datagram(datagram, usize::MAX))
        {
            check_delivered_udp(message, &frame.auth);
        }
        self.received += messages.len();
        code
    }

    /// Seals `body` for `alice` (or anonymously) and checks the exact
    /// outcome.
    fn sealed(&mut self, cipher: Cipher, alice: bool, body: &[u8]) {
        let (login, key_hex) = if alice {
            ("alice", ALICE_KEY_HEX)
        } else {
            ("", ANON_KEY_HEX)
        };
        let key = key_of(key_hex);
        let sealed = udp::seal(cipher, &key, &NONCE, body).expect("seal");
        assert_eq!(
            udp::open(cipher, &key, &NONCE, &sealed).as_deref(),
            Ok(body)
        );
        let mut datagram = vec![0xEE, 0xAA, 0x01, 0x00, cipher.enc_byte()];
        datagram.extend_from_slice(login.as_bytes());
        datagram.push(0);
        datagram.extend_from_slice(&NONCE);
        datagram.extend_from_slice(&sealed);
        let expected = if datagram.len() > self.frame_size() {
            None
        } else {
            expected_udp_code(body, alice)
        };
        assert_eq!(self.send(&datagram), expected, "sealed body {body:?}");
    }

    fn finish(mut self) {
        let counters = self.server.node.broker().counters();
        assert_eq!(counters.c_sent_messages, self.received as u64);
        self.server.node.disconnect(self.data);
        self.server.node.disconnect(self.control);
        self.server.assert_empty();
    }
}

/// The ack a correctly sealed body gets: none unless its OP asks for one;
/// ERR for a broken body or topic; ERR_ACCESS outside the ACL.
fn expected_udp_code(body: &[u8], alice: bool) -> Option<u8> {
    let publish = match udp::parse_publish(body) {
        Ok(publish) => publish,
        Err(err) => return err.ack_wanted().then_some(status::ERR),
    };
    if !publish.ack {
        return None;
    }
    let depth = small_limits().max_topic_depth;
    let code = match topic::parse_topic(publish.topic, depth) {
        Err(_) => status::ERR,
        Ok(topic) if alice && !topic.starts_with("a/") => status::ERR_ACCESS,
        Ok(_) => status::OK,
    };
    Some(code)
}

/// A delivered UDP message carries the publish's payload and normalised
/// topic (checked for plain datagrams, whose body is readable here).
fn check_delivered_udp(message: &(Vec<u8>, Vec<u8>), auth: &udp::DatagramAuth<'_>) {
    let udp::DatagramAuth::Plain { body, .. } = auth else {
        return;
    };
    let publish = udp::parse_publish(body).expect("an accepted body parses");
    let topic = topic::parse_topic(publish.topic, usize::MAX).expect("accepted topic");
    assert_eq!(message.0, topic.as_bytes());
    assert_eq!(message.1, publish.payload);
}

fn key_of(hex_digits: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut key).expect("test key is hex");
    key
}

// ----- config_files -----

/// Target `config_files`: the server config, ACL, password and key file
/// parsers on arbitrary UTF-8. They must not panic, and every error must
/// name the file and say something.
pub fn check_config_files(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/psrtd/fuzz.yml");
    match ServerConfig::parse(text, path) {
        Ok(parsed) => use_config(&parsed.config),
        Err(err) => check_file_error(&err, path),
    }
    match parse_acl(text, path, Limits::default().max_topic_depth) {
        Ok(acl) => {
            if let Some(rights) = acl.rights("") {
                let _ = rights.may_subscribe("#");
                let _ = rights.may_publish("a/b");
            }
        }
        Err(err) => check_file_error(&err, path),
    }
    if let Err(err) = Passwords::parse(text, path) {
        check_file_error(&err, path);
    }
    if let Err(err) = Keys::parse(text, path) {
        check_file_error(&err, path);
    }
}

fn use_config(config: &ServerConfig) {
    let _ = (config.limits(), config.binds(), config.udp_binds());
    let _ = (config.stats_bind(), config.tls_enabled());
}

fn check_file_error(err: &FileError, path: &Path) {
    assert!(
        !err.message.trim().is_empty(),
        "empty error message: {err:?}"
    );
    assert_eq!(err.path, path);
    assert!(err.to_string().starts_with(&path.display().to_string()));
}

// ----- http_request -----

/// Target `http_request`: the stats endpoint's request parser. A complete
/// head must fit the buffer and the size limit, parse the same from
/// exactly its own bytes, and carry a path without a query string; an
/// incomplete one is only reported below the limit.
pub fn check_http_request(data: &[u8]) {
    match http::parse_request(data) {
        Ok(Some((request, len))) => {
            assert!(len <= data.len() && len <= http::MAX_HEAD);
            let again = http::parse_request(data.get(..len).unwrap_or_default());
            assert_eq!(again, Ok(Some((request.clone(), len))));
            assert!(
                !request.path.contains('?'),
                "query left in {:?}",
                request.path
            );
            let _ = http::route(&request.path);
        }
        Ok(None) => assert!(data.len() < http::MAX_HEAD),
        Err(_) => {}
    }
}

// ----- client_input -----

/// Target `client_input`: the client state machines fed arbitrary server
/// bytes. Even first byte: a [`ControlClient`] with three requests queued;
/// odd: a [`DataClient`]. The first byte also sets the read size.
///
/// Invariants: events come in a legal order (a login once, first; replies
/// for issued requests in order; `Closed` last); pushed messages respect
/// the frame limit; the client only ever writes its greeting, login or
/// hello and its requests.
pub fn check_client_input(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(mode >> 1).max(1);
    if mode % 2 == 0 {
        check_control_client(rest, chunk);
    } else {
        check_data_client(rest, chunk);
    }
}

fn check_control_client(input: &[u8], chunk: usize) {
    let now = base_instant();
    let timeout = Duration::from_secs(5);
    let mut client = ControlClient::new("", b"", None, timeout, now).expect("valid login");
    let issued = [
        client.publish("a/b", b"x", 0x7F, now),
        client.subscribe(&["#"], now),
        client.nop(now),
    ]
    .iter()
    .filter(|r| r.is_ok())
    .count() as u64;
    let mut events = EventOrder::new(issued);
    for piece in input.chunks(chunk) {
        client.read_buf().extend_from_slice(piece);
        let result = client.handle_input(now);
        while let Some(event) = client.poll_event() {
            events.check(&event);
        }
        if result.is_err() {
            break;
        }
    }
    let _ = client.handle_timeout(now + timeout * 2);
    let _ = client.handle_eof();
    while let Some(event) = client.poll_event() {
        events.check(&event);
    }
    let mut tx = TxBuf::new();
    client.poll_transmit(&mut tx);
    let greeting = [0xEE, 0xAA, 0x00];
    assert!(tx.to_vec().starts_with(&greeting));
}

/// Checks that a control client's events come in a legal order.
struct EventOrder {
    issued: u64,
    next_reply: u64,
    logged_in: bool,
    closed: bool,
}

impl EventOrder {
    fn new(issued: u64) -> Self {
        Self {
            issued,
            next_reply: 0,
            logged_in: false,
            closed: false,
        }
    }

    fn check(&mut self, event: &ClientEvent) {
        assert!(!self.closed, "{event:?} after Closed");
        match event {
            ClientEvent::LoggedIn { .. } => {
                assert!(!self.logged_in, "second login");
                self.logged_in = true;
            }
            ClientEvent::Reply { id, status } => {
                assert!(self.logged_in, "reply before login");
                assert_eq!(id.0, self.next_reply, "replies out of order");
                assert!(id.0 < self.issued, "reply to a request never made");
                assert!(REPLY_CODES.contains(status));
                self.next_reply += 1;
            }
            ClientEvent::Closed => self.closed = true,
        }
    }
}

fn check_data_client(input: &[u8], chunk: usize) {
    let now = base_instant();
    let max_frame = 1024;
    let token: Token = [7; TOKEN_LEN];
    let mut client = DataClient::new(token, Duration::from_secs(5), None, max_frame, now);
    for piece in input.chunks(chunk) {
        client.read_buf().extend_from_slice(piece);
        let result = client.handle_input(now);
        while let Some(message) = client.poll_message() {
            assert!(message.topic.len() + 1 + message.payload.len() <= max_frame);
            assert!(!message.topic.contains(&0));
        }
        if result.is_err() {
            break;
        }
    }
    let _ = client.handle_timeout(now + Duration::from_secs(10));
    let _ = client.handle_eof();
    let mut tx = TxBuf::new();
    client.poll_transmit(&mut tx);
    let written = tx.to_vec();
    let greeting = [0xEE, 0xAB, 0x00];
    let hello = [&greeting[..], &data_hello_body(&token, 5)].concat();
    assert!(
        written == greeting || written == hello,
        "client wrote {written:?}"
    );
}

// ----- shared helpers -----

/// The base instant of a check. Only this harness reads the clock, once
/// per run; everything after is relative to it, so outcomes never depend
/// on the value.
#[allow(clippy::disallowed_methods)]
fn base_instant() -> Instant {
    Instant::now()
}

/// Limits small enough that fuzzed inputs reach them.
fn small_limits() -> Limits {
    Limits {
        max_topic_depth: 4,
        max_topic_length: MAX_PUB,
        max_pub_size: MAX_PUB,
        ..Limits::default()
    }
}

fn test_passwords() -> Passwords {
    let text = format!("alice:{PASSWORD_HASH}\nbob:{PASSWORD_HASH}\nrogue:{PASSWORD_HASH}\n");
    Passwords::parse(&text, Path::new("fuzz")).expect("test password file")
}

/// A [`Node`] with plain TCP allowed, a seeded RNG and a clock the check
/// moves.
struct TestServer {
    node: Node,
    now: Instant,
}

impl TestServer {
    fn open(limits: Limits) -> Self {
        Self::with_auth(limits, AuthConfig::open())
    }

    fn with_auth(limits: Limits, auth: AuthConfig) -> Self {
        let rng = Box::new(rand::rngs::StdRng::seed_from_u64(7));
        let config = ConnConfig {
            tls: None,
            allow_no_tls: true,
            tls_client_cn_login: false,
        };
        Self {
            node: Node::new(Broker::new(limits, auth, rng), config),
            now: base_instant(),
        }
    }

    fn request(&mut self, socket: ConnId, bytes: &[u8]) -> Vec<u8> {
        self.node.send(socket, bytes, self.now);
        self.node.recv(socket, self.now)
    }

    /// A control socket logged in anonymously, and its token.
    fn anonymous_login(&mut self) -> (ConnId, Token) {
        let socket = self.node.connect(Transport::Tcp, "fuzz", self.now);
        let out = self.request(socket, &login_frames("", b""));
        let token = out
            .get(4..)
            .and_then(|t| Token::try_from(t).ok())
            .unwrap_or_else(|| panic!("anonymous login answered {out:?}"));
        (socket, token)
    }

    /// A data socket bound to `token`'s session.
    fn bind_data(&mut self, token: &Token) -> ConnId {
        let socket = self.node.connect(Transport::Tcp, "fuzz", self.now);
        let out = self.request(socket, &data_hello(token, DATA_TIMEOUT));
        let expected = [&push::greeting_reply(SocketKind::Data)[..], &[status::OK]].concat();
        assert_eq!(out, expected, "data socket refused");
        socket
    }

    /// Nothing is left in the broker once every socket is gone.
    fn assert_empty(&self) {
        assert_eq!(self.node.broker().session_count(), 0);
        assert_eq!(self.node.broker().subscription_count(), 0);
    }
}

/// Plain control greeting plus a login frame.
fn login_frames(login: &str, password: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    request::encode_greeting(&mut out, greeting(SocketKind::Control));
    request::encode_login(&mut out, login, password);
    out
}

/// Plain data greeting plus the hello.
fn data_hello(token: &Token, timeout_secs: u8) -> BytesMut {
    let mut out = BytesMut::new();
    request::encode_greeting(&mut out, greeting(SocketKind::Data));
    out.extend_from_slice(&data_hello_body(token, timeout_secs));
    out
}

fn data_hello_body(token: &Token, timeout_secs: u8) -> BytesMut {
    let mut out = BytesMut::new();
    let hello = DataHello {
        token: *token,
        timeout_secs,
    };
    request::encode_data_hello(&mut out, &hello);
    out
}

fn greeting(kind: SocketKind) -> Greeting {
    Greeting { kind, tls: false }
}

/// A SUBSCRIBE or UNSUBSCRIBE frame for one filter.
fn topics_frame(code: u8, filter: &str) -> BytesMut {
    let mut out = BytesMut::new();
    request::encode_topics(&mut out, code, [filter]);
    out
}

/// Reads the cut plan of [`check_control_input`]: `(sizes, rest)`.
fn split_plan(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&count, rest) = data.split_first()?;
    let count = usize::from(count % 8).min(rest.len());
    Some(rest.split_at(count))
}

/// Cuts `input` into pieces of the given sizes, cycling through them (a
/// size of 0 counts as 1); no sizes means one piece.
fn cut<'a>(input: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![input];
    }
    let mut pieces = Vec::new();
    let mut rest = input;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(usize::from(size).max(1).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// Asserts a pushed stream is whole, well-formed frames with normalised,
/// publishable topics.
fn check_pushed_stream(pushed: &[u8]) {
    for (topic, _) in decode_messages(pushed) {
        let text = std::str::from_utf8(&topic).expect("pushed topic is UTF-8");
        assert_eq!(topic::normalize(text), text, "topic not normalised");
        assert!(
            topic::parse_topic(&topic, usize::MAX).is_ok(),
            "bad pushed topic {text:?}"
        );
    }
}

/// Decodes a whole pushed stream into `(topic, payload)` pairs, skipping
/// beacons; panics on a malformed or truncated stream.
fn decode_messages(pushed: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut buf = BytesMut::from(pushed);
    let mut messages = Vec::new();
    loop {
        match push::decode_push(&mut buf, usize::MAX) {
            Ok(Some(Push::Message { topic, payload, .. })) => {
                messages.push((topic.to_vec(), payload.to_vec()));
            }
            Ok(Some(Push::Nop)) => {}
            Ok(None) => break,
            Err(err) => panic!("malformed pushed stream: {err}"),
        }
    }
    assert!(buf.is_empty(), "truncated pushed frame");
    messages
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn corpus_dir(target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target)
    }

    /// Feeds every committed corpus file of `target` to its check.
    fn replay(target: &str, check: fn(&[u8])) {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            eprintln!("replaying {}", file.display());
            check(&data);
        }
    }

    #[test]
    fn control_input_corpus() {
        replay("control_input", check_control_input);
    }

    #[test]
    fn data_input_corpus() {
        replay("data_input", check_data_input);
    }

    #[test]
    fn login_frame_corpus() {
        replay("login_frame", check_login_frame);
    }

    #[test]
    fn udp_datagram_corpus() {
        replay("udp_datagram", check_udp_datagram);
    }

    #[test]
    fn config_files_corpus() {
        replay("config_files", check_config_files);
    }

    #[test]
    fn http_request_corpus() {
        replay("http_request", check_http_request);
    }

    #[test]
    fn client_input_corpus() {
        replay("client_input", check_client_input);
    }

    #[test]
    fn node_ops_corpus() {
        replay("node_ops", check_node_ops);
    }

    #[test]
    fn cut_cycles_through_sizes() {
        assert_eq!(cut(b"abcdef", &[1, 2]), [&b"a"[..], b"bc", b"d", b"ef"]);
        assert_eq!(cut(b"abc", &[0]), [&b"a"[..], b"b", b"c"]);
        assert_eq!(cut(b"abc", &[]), [&b"abc"[..]]);
    }
}
