//! The client state machines against hand-written server byte sequences
//! (the exact bytes of PROTOCOL.md), plain and inside TLS.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
};

use super::*;
use crate::tls::{client_config, server_config_from_pem};

const TIMEOUT: Duration = Duration::from_secs(4);
const TOKEN: Token = [0x5A; 32];
const CONTROL_REPLY: [u8; 4] = [0xEE, 0xAA, 0x01, 0x00];
const DATA_REPLY: [u8; 4] = [0xEE, 0xAB, 0x01, 0x00];

/// An arbitrary base instant; the clients never read the clock themselves.
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn transmit_control(client: &mut ControlClient) -> Vec<u8> {
    let mut tx = TxBuf::new();
    client.poll_transmit(&mut tx);
    tx.to_vec()
}

fn transmit_data(client: &mut DataClient) -> Vec<u8> {
    let mut tx = TxBuf::new();
    client.poll_transmit(&mut tx);
    tx.to_vec()
}

fn feed_control(client: &mut ControlClient, bytes: &[u8], now: Instant) -> Result<(), ClientError> {
    client.read_buf().extend_from_slice(bytes);
    client.handle_input(now)
}

fn feed_data(client: &mut DataClient, bytes: &[u8], now: Instant) -> Result<(), ClientError> {
    client.read_buf().extend_from_slice(bytes);
    client.handle_input(now)
}

fn events(client: &mut ControlClient) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn messages(client: &mut DataClient) -> Vec<Message> {
    std::iter::from_fn(|| client.poll_message()).collect()
}

fn reply(id: u64, status: u8) -> ClientEvent {
    ClientEvent::Reply {
        id: RequestId(id),
        status,
    }
}

/// A plain control client that has logged in at `now`, outputs drained.
fn logged_in(now: Instant) -> ControlClient {
    let mut client = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
    transmit_control(&mut client);
    let mut server = CONTROL_REPLY.to_vec();
    server.extend_from_slice(&TOKEN);
    feed_control(&mut client, &server, now).expect("login");
    assert_eq!(
        events(&mut client),
        [ClientEvent::LoggedIn { token: TOKEN }]
    );
    client
}

/// `01 PRIO LEN topic 00 payload`, written out by hand.
fn pushed(prio: u8, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(topic.len() + 1 + payload.len()).expect("small");
    let mut frame = vec![0x01, prio];
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(topic);
    frame.push(0);
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn anonymous_login_bytes() {
    let mut client = ControlClient::new("", b"", None, TIMEOUT, start()).expect("client");
    assert_eq!(
        transmit_control(&mut client),
        [0xEE, 0xAA, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
    );
}

#[test]
fn pipelined_requests_before_login_are_answered_in_order_one_byte_at_a_time() {
    let now = start();
    let mut client = ControlClient::new("user", b"pass", None, TIMEOUT, now).expect("client");
    let publish = client.publish("a/b", b"xy", 0x7F, now).expect("publish");
    let subscribe = client.subscribe(&["a/#", "c"], now).expect("subscribe");
    let unsubscribe = client.unsubscribe(&["c"], now).expect("unsubscribe");
    let nop = client.nop(now).expect("nop");
    assert_eq!(
        [publish, subscribe, unsubscribe, nop],
        [RequestId(0), RequestId(1), RequestId(2), RequestId(3)]
    );
    let mut expected = vec![0xEE, 0xAA, 0x00, 0x09, 0x00, 0x00, 0x00];
    expected.extend_from_slice(b"user\0pass");
    expected.extend_from_slice(&[0x01, 0x7F, 0x06, 0x00, 0x00, 0x00]);
    expected.extend_from_slice(b"a/b\0xy");
    expected.extend_from_slice(&[0x02, 0x05, 0x00, 0x00, 0x00]);
    expected.extend_from_slice(b"a/#\0c");
    expected.extend_from_slice(&[0x03, 0x01, 0x00, 0x00, 0x00, b'c', 0x00]);
    assert_eq!(transmit_control(&mut client), expected);
    assert_eq!(client.in_flight(), 4);

    let mut server = CONTROL_REPLY.to_vec();
    server.extend_from_slice(&TOKEN);
    server.extend_from_slice(&[0x01, 0xFE, 0xFF, 0x01]);
    for byte in &server {
        feed_control(&mut client, &[*byte], now).expect("input");
    }
    assert_eq!(
        events(&mut client),
        [
            ClientEvent::LoggedIn { token: TOKEN },
            reply(0, status::OK),
            reply(1, status::ERR_ACCESS),
            reply(2, status::ERR),
            reply(3, status::OK),
        ]
    );
    assert!(client.is_logged_in());
    assert_eq!(client.in_flight(), 0);
}

#[test]
fn closing_during_login_is_a_refusal() {
    let now = start();
    let mut client = ControlClient::new("u", b"bad", None, TIMEOUT, now).expect("client");
    feed_control(&mut client, &CONTROL_REPLY, now).expect("greeting");
    assert!(matches!(
        client.handle_eof(),
        Err(ClientError::LoginRefused)
    ));

    let mut client = ControlClient::new("u", b"p", None, TIMEOUT, now).expect("client");
    assert!(matches!(
        client.handle_eof(),
        Err(ClientError::GreetingRefused)
    ));
}

#[test]
fn wrong_greeting_reply_is_a_wire_error() {
    let now = start();
    let mut client = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
    let result = feed_control(&mut client, &[0xEE, 0xAA, 0x02, 0x00], now);
    assert!(matches!(
        result,
        Err(ClientError::Wire(WireError::BadVersion(2)))
    ));
    let mut client = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
    let result = feed_control(&mut client, &DATA_REPLY, now);
    assert!(matches!(
        result,
        Err(ClientError::Wire(WireError::BadGreeting))
    ));
}

#[test]
fn idle_session_sends_nop_and_swallows_its_reply() {
    let t0 = start();
    let mut client = logged_in(t0);
    assert_eq!(client.poll_timeout(), Some(t0 + TIMEOUT / 2));
    client
        .handle_timeout(t0 + TIMEOUT / 2 - ms(1))
        .expect("early");
    assert!(transmit_control(&mut client).is_empty());

    let t1 = t0 + TIMEOUT / 2;
    client.handle_timeout(t1).expect("keep-alive");
    assert_eq!(transmit_control(&mut client), [0x00]);
    assert_eq!(client.in_flight(), 1);
    // The next beat comes before the NOP's reply deadline.
    assert_eq!(client.poll_timeout(), Some(t1 + TIMEOUT / 2));
    feed_control(&mut client, &[0x01], t1 + ms(1)).expect("reply");
    assert!(events(&mut client).is_empty());
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.poll_timeout(), Some(t1 + TIMEOUT / 2));
}

#[test]
fn requests_postpone_the_keep_alive() {
    let t0 = start();
    let mut client = logged_in(t0);
    let t1 = t0 + ms(1500);
    client.publish("t", b"", 0x7F, t1).expect("publish");
    feed_control(&mut client, &[0x01], t1).expect("reply");
    assert_eq!(client.poll_timeout(), Some(t1 + TIMEOUT / 2));
}

#[test]
fn overdue_reply_times_out() {
    let t0 = start();
    let mut client = logged_in(t0);
    let t1 = t0 + ms(100);
    client.subscribe(&["x"], t1).expect("subscribe");
    client.handle_timeout(t1 + TIMEOUT / 2).expect("keep-alive");
    client
        .handle_timeout(t1 + TIMEOUT - ms(1))
        .expect("not yet");
    assert!(matches!(
        client.handle_timeout(t1 + TIMEOUT),
        Err(ClientError::Timeout)
    ));
}

#[test]
fn progress_moves_the_reply_deadline() {
    let t0 = start();
    let mut client = logged_in(t0);
    client.nop(t0).expect("nop");
    client.nop(t0).expect("nop");
    let t1 = t0 + ms(3000);
    feed_control(&mut client, &[0x01], t1).expect("first reply");
    client
        .handle_timeout(t0 + TIMEOUT)
        .expect("progress was made");
    assert!(matches!(
        client.handle_timeout(t1 + TIMEOUT),
        Err(ClientError::Timeout)
    ));
}

#[test]
fn silent_login_times_out() {
    let t0 = start();
    let mut client = ControlClient::new("", b"", None, TIMEOUT, t0).expect("client");
    assert_eq!(client.poll_timeout(), Some(t0 + TIMEOUT));
    assert!(matches!(
        client.handle_timeout(t0 + TIMEOUT),
        Err(ClientError::Timeout)
    ));
}

#[test]
fn bye_ends_the_session() {
    let now = start();
    let mut client = logged_in(now);
    let id = client.bye(now).expect("bye");
    assert_eq!(transmit_control(&mut client), [0xFF]);
    assert!(matches!(client.nop(now), Err(ClientError::Closed)));
    feed_control(&mut client, &[0x01], now).expect("reply");
    assert_eq!(
        events(&mut client),
        [
            ClientEvent::Reply {
                id,
                status: status::OK
            },
            ClientEvent::Closed
        ]
    );
    assert_eq!(client.poll_timeout(), None);
    client.handle_eof().expect("close after bye");
    assert!(events(&mut client).is_empty());
}

#[test]
fn server_close_ends_or_loses_the_session() {
    let now = start();
    let mut client = logged_in(now);
    client.handle_eof().expect("idle close");
    assert_eq!(events(&mut client), [ClientEvent::Closed]);
    assert!(matches!(client.nop(now), Err(ClientError::Closed)));

    let mut client = logged_in(now);
    client.nop(now).expect("nop");
    assert!(matches!(
        client.handle_eof(),
        Err(ClientError::ConnectionLost { pending: 1 })
    ));
}

#[test]
fn in_flight_requests_are_bounded() {
    let now = start();
    let mut client = logged_in(now).with_max_in_flight(2);
    client.nop(now).expect("first");
    client.nop(now).expect("second");
    assert!(matches!(
        client.nop(now),
        Err(ClientError::TooManyInFlight { max: 2 })
    ));
    feed_control(&mut client, &[0x01], now).expect("reply");
    assert_eq!(client.nop(now).expect("room again"), RequestId(2));
}

#[test]
fn keep_alive_skips_a_beat_at_the_in_flight_bound() {
    let t0 = start();
    let mut client = logged_in(t0).with_max_in_flight(1);
    client.nop(t0).expect("nop");
    transmit_control(&mut client);
    let t1 = t0 + TIMEOUT / 2;
    client.handle_timeout(t1).expect("skipped beat");
    assert!(transmit_control(&mut client).is_empty());
    assert!(client.poll_timeout().is_some_and(|at| at > t1));
}

#[test]
fn unexpected_status_bytes_are_fatal() {
    let now = start();
    let mut client = logged_in(now);
    client.nop(now).expect("nop");
    assert!(matches!(
        feed_control(&mut client, &[0x05], now),
        Err(ClientError::UnexpectedStatus(0x05))
    ));
    let mut client = logged_in(now);
    assert!(matches!(
        feed_control(&mut client, &[0x01], now),
        Err(ClientError::UnexpectedStatus(0x01))
    ));
}

#[test]
fn invalid_requests_are_refused_locally() {
    let now = start();
    let mut client = logged_in(now);
    assert!(matches!(
        client.publish("a/+", b"", 0x7F, now),
        Err(ClientError::Topic(TopicError::Wildcard))
    ));
    assert!(matches!(
        client.publish("//", b"", 0x7F, now),
        Err(ClientError::Topic(TopicError::Empty))
    ));
    assert!(matches!(
        client.publish("a\0b", b"", 0x7F, now),
        Err(ClientError::NulInTopic)
    ));
    assert!(matches!(
        client.subscribe(&["ok", "a\0b"], now),
        Err(ClientError::NulInTopic)
    ));
    assert!(transmit_control(&mut client).is_empty());
    assert_eq!(client.nop(now).expect("still usable"), RequestId(0));

    assert!(matches!(
        ControlClient::new("a\0b", b"", None, TIMEOUT, now),
        Err(ClientError::NulInLogin)
    ));
    assert!(matches!(
        ControlClient::new("u", &[b'p'; 1023], None, TIMEOUT, now),
        Err(ClientError::TooLarge {
            len: 1025,
            max: 1024
        })
    ));
    ControlClient::new("u", &[b'p'; 1022], None, TIMEOUT, now).expect("at the limit");
}

#[test]
fn data_socket_hello_then_messages_one_byte_at_a_time() {
    let now = start();
    let mut client = DataClient::new(TOKEN, Duration::from_secs(5), None, 1024, now);
    assert_eq!(transmit_data(&mut client), [0xEE, 0xAB, 0x00]);
    feed_data(&mut client, &DATA_REPLY[..3], now).expect("partial reply");
    assert!(transmit_data(&mut client).is_empty());
    feed_data(&mut client, &DATA_REPLY[3..], now).expect("reply");
    let mut hello = TOKEN.to_vec();
    hello.push(5);
    assert_eq!(transmit_data(&mut client), hello);
    assert!(!client.is_streaming());

    let mut server = vec![0x01, 0x00];
    server.extend(pushed(0x7F, b"a/b", b"hi\0there"));
    server.push(0x00);
    server.extend(pushed(0x10, b"c", b""));
    let mut got = Vec::new();
    for byte in &server {
        feed_data(&mut client, &[*byte], now).expect("input");
        got.extend(messages(&mut client));
    }
    assert!(client.is_streaming());
    assert_eq!(
        got,
        [
            Message {
                prio: 0x7F,
                topic: Bytes::from_static(b"a/b"),
                payload: Bytes::from_static(b"hi\0there"),
            },
            Message {
                prio: 0x10,
                topic: Bytes::from_static(b"c"),
                payload: Bytes::new(),
            },
        ]
    );
    assert_eq!(got[0].topic_str(), Some("a/b"));
}

#[test]
fn data_socket_refusals() {
    let now = start();
    let mut client = DataClient::new(TOKEN, TIMEOUT, None, 1024, now);
    feed_data(&mut client, &DATA_REPLY, now).expect("reply");
    assert!(matches!(
        feed_data(&mut client, &[0xFF], now),
        Err(ClientError::DataRefused)
    ));

    let mut client = DataClient::new(TOKEN, TIMEOUT, None, 1024, now);
    feed_data(&mut client, &DATA_REPLY, now).expect("reply");
    assert!(matches!(client.handle_eof(), Err(ClientError::DataRefused)));

    let mut client = DataClient::new(TOKEN, TIMEOUT, None, 1024, now);
    feed_data(&mut client, &DATA_REPLY, now).expect("reply");
    assert!(matches!(
        feed_data(&mut client, &[0x02], now),
        Err(ClientError::UnexpectedStatus(0x02))
    ));

    let mut client = DataClient::new(TOKEN, TIMEOUT, None, 1024, now);
    assert!(matches!(
        client.handle_eof(),
        Err(ClientError::GreetingRefused)
    ));
}

#[test]
fn hello_timeout_is_whole_seconds_clamped() {
    assert_eq!(timeout_secs(ms(500)), 1);
    assert_eq!(timeout_secs(ms(5900)), 5);
    assert_eq!(timeout_secs(Duration::from_secs(255)), 255);
    assert_eq!(timeout_secs(Duration::from_secs(100_000)), 255);
}

/// A streaming plain data client, outputs drained.
fn streaming(now: Instant, max_frame: usize) -> DataClient {
    let mut client = DataClient::new(TOKEN, TIMEOUT, None, max_frame, now);
    let mut server = DATA_REPLY.to_vec();
    server.push(0x01);
    feed_data(&mut client, &server, now).expect("hello accepted");
    transmit_data(&mut client);
    client
}

#[test]
fn silent_data_socket_times_out_and_beacons_keep_it_alive() {
    let t0 = start();
    let mut client = streaming(t0, 1024);
    assert_eq!(client.poll_timeout(), Some(t0 + TIMEOUT));
    let t1 = t0 + TIMEOUT / 2;
    feed_data(&mut client, &[0x00], t1).expect("beacon");
    assert!(messages(&mut client).is_empty());
    client
        .handle_timeout(t0 + TIMEOUT)
        .expect("beacon reset it");
    assert!(matches!(
        client.handle_timeout(t1 + TIMEOUT),
        Err(ClientError::Timeout)
    ));
}

#[test]
fn oversized_pushed_frame_is_reported() {
    let t0 = start();
    let mut client = streaming(t0, 8);
    let mut server = pushed(0x7F, b"ok", b"");
    server.extend(pushed(0x7F, b"topic", b"long"));
    let t1 = t0 + ms(10);
    feed_data(&mut client, &server, t1).expect("framing is checked lazily");
    assert_eq!(messages(&mut client).len(), 1);
    assert_eq!(client.poll_timeout(), Some(t1));
    assert!(matches!(
        client.handle_timeout(t1),
        Err(ClientError::Wire(WireError::TooLarge { len: 10, max: 8 }))
    ));
    assert!(matches!(
        feed_data(&mut client, &[], t1),
        Err(ClientError::Wire(WireError::TooLarge { .. }))
    ));
}

#[test]
fn data_stream_end_keeps_buffered_messages() {
    let now = start();
    let mut client = streaming(now, 1024);
    feed_data(&mut client, &pushed(1, b"t", b"p"), now).expect("message");
    client.handle_eof().expect("normal end");
    assert!(client.is_closed());
    assert_eq!(messages(&mut client).len(), 1);
    assert_eq!(client.poll_timeout(), None);
}

/// A TLS server side for the handshake tests: the plaintext greeting is
/// checked, then everything goes through a [`TlsSession::server`].
struct TlsPeer {
    tls: TlsSession,
    cipher_in: BytesMut,
    plain_in: BytesMut,
}

impl TlsPeer {
    fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            tls: TlsSession::server(config).expect("server session"),
            cipher_in: BytesMut::new(),
            plain_in: BytesMut::new(),
        }
    }

    /// Takes bytes from the client, returns bytes for it.
    fn exchange(&mut self, from_client: &[u8]) -> Vec<u8> {
        self.cipher_in.extend_from_slice(from_client);
        self.tls
            .feed_ciphertext(&mut self.cipher_in)
            .expect("server TLS");
        self.tls
            .take_plaintext(&mut self.plain_in)
            .expect("server plaintext");
        let mut out = Vec::new();
        self.tls.take_ciphertext(&mut out);
        out
    }

    fn write(&mut self, plain: &[u8]) {
        self.tls.write_plaintext(plain).expect("server write");
    }
}

/// A server configuration and a client TLS session that trusts it.
fn tls_pair() -> (Arc<rustls::ServerConfig>, TlsSession) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    let server = server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .expect("server config");
    let client = client_config(Some(ca.pem().as_bytes())).expect("client config");
    (
        server,
        TlsSession::client(client, "localhost").expect("client"),
    )
}

/// Splits off the plaintext greeting a TLS client sends first.
fn split_greeting(mut bytes: Vec<u8>, magic: [u8; 2]) -> Vec<u8> {
    assert_eq!(bytes.get(..3), Some(&[magic[0], magic[1], 0x01][..]));
    bytes.split_off(3)
}

#[test]
fn control_client_over_tls() {
    let now = start();
    let (server_config, client_tls) = tls_pair();
    let mut server = TlsPeer::new(server_config);
    let mut client =
        ControlClient::new("user", b"pw", Some(client_tls), TIMEOUT, now).expect("client");
    let id = client.publish("x/y", b"42", 0x7F, now).expect("publish");
    let mut to_server = split_greeting(transmit_control(&mut client), [0xEE, 0xAA]);
    let mut expected = vec![0x07, 0x00, 0x00, 0x00];
    expected.extend_from_slice(b"user\0pw");
    expected.extend_from_slice(&[0x01, 0x7F, 0x06, 0x00, 0x00, 0x00]);
    expected.extend_from_slice(b"x/y\x0042");
    let mut answered = false;
    for _ in 0..20 {
        if !answered && server.plain_in[..] == expected[..] {
            server.write(&CONTROL_REPLY);
            server.write(&TOKEN);
            server.write(&[status::OK]);
            answered = true;
        }
        let to_client = server.exchange(&to_server);
        feed_control(&mut client, &to_client, now).expect("client input");
        to_server = transmit_control(&mut client);
    }
    assert!(answered, "server saw {:?}", server.plain_in);
    assert_eq!(
        events(&mut client),
        [
            ClientEvent::LoggedIn { token: TOKEN },
            ClientEvent::Reply {
                id,
                status: status::OK
            }
        ]
    );
}

#[test]
fn data_client_over_tls() {
    let now = start();
    let (server_config, client_tls) = tls_pair();
    let mut server = TlsPeer::new(server_config);
    let mut client = DataClient::new(TOKEN, TIMEOUT, Some(client_tls), 1024, now);
    let mut to_server = split_greeting(transmit_data(&mut client), [0xEE, 0xAB]);
    server.write(&DATA_REPLY);
    let mut hello = TOKEN.to_vec();
    hello.push(4);
    let mut answered = false;
    for _ in 0..20 {
        if !answered && server.plain_in[..] == hello[..] {
            server.write(&[status::OK]);
            server.write(&pushed(0x7F, b"t", b"payload"));
            answered = true;
        }
        let to_client = server.exchange(&to_server);
        feed_data(&mut client, &to_client, now).expect("client input");
        to_server = transmit_data(&mut client);
    }
    assert!(answered, "server saw {:?}", server.plain_in);
    assert_eq!(
        messages(&mut client),
        [Message {
            prio: 0x7F,
            topic: Bytes::from_static(b"t"),
            payload: Bytes::from_static(b"payload"),
        }]
    );
}

/// Splits `bytes` at the given (sorted, deduplicated) cut points.
fn chunks(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.retain(|&c| c < bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts {
        out.push(&bytes[at..cut]);
        at = cut;
    }
    out.push(&bytes[at..]);
    out
}

const REPLY_CODES: [u8; 5] = [
    status::OK,
    status::OK_WAITING,
    status::NOT_REQUIRED,
    status::ERR_ACCESS,
    status::ERR,
];

proptest! {
    #[test]
    fn replies_match_requests_however_input_is_split(
        codes in prop::collection::vec(prop::sample::select(REPLY_CODES.to_vec()), 0..50),
        cuts in prop::collection::vec(0usize..100, 0..20),
    ) {
        let now = start();
        let mut client = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
        for _ in &codes {
            client.nop(now).expect("nop");
        }
        let mut server = CONTROL_REPLY.to_vec();
        server.extend_from_slice(&TOKEN);
        server.extend_from_slice(&codes);
        for chunk in chunks(&server, cuts) {
            feed_control(&mut client, chunk, now).expect("input");
        }
        let mut expected = vec![ClientEvent::LoggedIn { token: TOKEN }];
        expected.extend(codes.iter().zip(0..).map(|(&code, id)| reply(id, code)));
        prop_assert_eq!(events(&mut client), expected);
    }

    #[test]
    fn messages_survive_any_split(
        frames in prop::collection::vec(
            (any::<u8>(), "[a-z/]{1,12}", prop::collection::vec(any::<u8>(), 0..40)),
            0..20,
        ),
        cuts in prop::collection::vec(0usize..1000, 0..30),
    ) {
        let now = start();
        let mut client = DataClient::new(TOKEN, TIMEOUT, None, 1024, now);
        let mut server = DATA_REPLY.to_vec();
        server.push(status::OK);
        for (prio, topic, payload) in &frames {
            server.push(0x00);
            server.extend(pushed(*prio, topic.as_bytes(), payload));
        }
        let mut got = Vec::new();
        for chunk in chunks(&server, cuts) {
            feed_data(&mut client, chunk, now).expect("input");
            got.extend(messages(&mut client));
        }
        let expected: Vec<Message> = frames
            .into_iter()
            .map(|(prio, topic, payload)| Message {
                prio,
                topic: Bytes::from(topic),
                payload: Bytes::from(payload),
            })
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_server_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(0usize..300, 0..10),
    ) {
        let now = start();
        let mut control = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
        let mut data = DataClient::new(TOKEN, TIMEOUT, None, 64, now);
        for chunk in chunks(&bytes, cuts) {
            let _ = feed_control(&mut control, chunk, now);
            let _ = feed_data(&mut data, chunk, now);
            let _ = messages(&mut data);
        }
        let _ = events(&mut control);
        prop_assert!(data.read_buf().len() <= bytes.len());
    }
}

/// Where the test [`Waiters`] record answers: `(handle, outcome)`.
type Log = Rc<RefCell<Vec<(u32, Result<(), String>)>>>;

/// Where the test [`Waiters`] record the login's outcome.
type LoginLog = Rc<RefCell<Vec<Result<Token, String>>>>;

/// Waiters that record every answer, for assertions.
struct Recorded;

impl Waiters for Recorded {
    type Reply = (u32, Log);
    type Login = LoginLog;

    fn answer((handle, log): Self::Reply, result: Result<(), SessionError>) {
        log.borrow_mut()
            .push((handle, result.map_err(|e| e.to_string())));
    }

    fn login(login: Self::Login, result: Result<Token, SessionError>) {
        login.borrow_mut().push(result.map_err(|e| e.to_string()));
    }
}

/// A session over `control`, with its logs and the end reason it records.
struct Harness {
    session: ControlSession<Recorded>,
    answers: Log,
    login: LoginLog,
    ended: SessionEnd,
}

impl Harness {
    fn new(control: ControlClient, max_in_flight: usize) -> Self {
        let login = LoginLog::default();
        let ended = SessionEnd::new();
        Self {
            session: ControlSession::new(control, login.clone(), max_in_flight, ended.clone()),
            answers: Log::default(),
            login,
            ended,
        }
    }

    /// A session logged in through its own input.
    fn logged_in(now: Instant, max_in_flight: usize) -> Self {
        let mut client = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
        transmit_control(&mut client);
        let mut harness = Self::new(client, max_in_flight);
        let mut server = CONTROL_REPLY.to_vec();
        server.extend_from_slice(&TOKEN);
        harness.feed(&server, now).expect("login");
        harness
    }

    /// Issues `request` with reply handle `handle`.
    fn request(&mut self, request: Request, handle: u32, now: Instant) {
        let reply = (handle, self.answers.clone());
        self.session.handle_request(request, reply, now);
    }

    /// Feeds server bytes through the session.
    fn feed(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        self.session.read_buf().extend_from_slice(bytes);
        self.session.handle_read(ReadOutcome::Data, now)
    }

    /// The answers given since the last call.
    fn answers(&self) -> Vec<(u32, Result<(), String>)> {
        self.answers.borrow_mut().drain(..).collect()
    }
}

fn publish_request(topic: &str) -> Request {
    Request::publish(topic, Bytes::from_static(b"p"))
}

#[test]
fn requests_own_the_handles_arguments() {
    assert_eq!(
        publish_request("a"),
        Request::Publish {
            topic: "a".into(),
            payload: Bytes::from_static(b"p"),
        }
    );
    assert_eq!(
        Request::subscribe(&["a/#", "b"]),
        Request::Subscribe(vec!["a/#".into(), "b".into()])
    );
    assert_eq!(
        Request::unsubscribe(&["c"]),
        Request::Unsubscribe(vec!["c".into()])
    );
}

#[test]
fn session_reports_the_login() {
    let now = start();
    let mut harness = Harness::logged_in(now, 8);
    assert_eq!(*harness.login.borrow(), [Ok(TOKEN)]);
    assert_eq!(harness.session.end(Ok(())), None);
    assert_eq!(
        harness.login.borrow().len(),
        1,
        "the login is answered once"
    );
}

#[test]
fn session_answers_each_handle_in_order_and_swallows_keep_alives() {
    let now = start();
    let mut harness = Harness::logged_in(now, 8);
    harness.request(publish_request("a"), 1, now);
    harness.session.control().nop(now).expect("keep-alive");
    harness.request(Request::subscribe(&["x/#"]), 2, now);
    harness
        .feed(&[status::OK, status::OK], now)
        .expect("replies");
    assert_eq!(harness.answers(), [(1, Ok(()))]);
    harness.feed(&[status::ERR_ACCESS], now).expect("reply");
    assert_eq!(harness.answers(), [(2, Err("access denied".into()))]);
}

#[test]
fn session_answers_refused_requests_at_once() {
    let now = start();
    let mut harness = Harness::logged_in(now, 8);
    harness.request(publish_request("a\0b"), 7, now);
    assert_eq!(
        harness.answers(),
        [(7, Err(ClientError::NulInTopic.to_string()))]
    );
    assert!(harness.session.wants_requests(0));
    assert_eq!(harness.session.end(Ok(())), None);
    assert!(harness.answers().is_empty(), "no waiter was left");
}

#[test]
fn session_takes_requests_only_within_its_bounds() {
    let now = start();
    let mut harness = Harness::logged_in(now, 1);
    assert!(harness.session.wants_requests(0));
    assert!(!harness.session.wants_requests(MAX_PENDING_WRITE));
    harness.request(publish_request("a"), 1, now);
    assert!(!harness.session.wants_requests(0));
    harness.session.end(Ok(()));
    assert_eq!(
        harness.answers(),
        [(1, Err("connection lost: the session ended".into()))]
    );
    assert!(harness.session.wants_requests(0));
}

#[test]
fn session_bye_finishes_after_the_server_ok() {
    let now = start();
    let mut harness = Harness::logged_in(now, 8);
    harness.request(Request::Bye, 3, now);
    assert!(!harness.session.wants_requests(0));
    assert!(!harness.session.is_finished());
    harness.feed(&[status::OK], now).expect("reply");
    assert_eq!(harness.answers(), [(3, Ok(()))]);
    assert!(harness.session.is_finished());
}

#[test]
fn session_says_bye_itself_when_the_handles_are_gone() {
    let now = start();
    let mut harness = Harness::logged_in(now, 8);
    harness.session.handle_handles_dropped(now);
    assert_eq!(transmit_control(harness.session.control()), [op::BYE]);
    assert!(!harness.session.wants_requests(0));
    harness.feed(&[status::OK], now).expect("reply");
    assert!(harness.answers().is_empty());
    assert!(harness.session.is_finished());

    harness.session.handle_handles_dropped(now);
    assert!(
        harness.session.is_finished(),
        "a closed session cannot say BYE"
    );
}

#[test]
fn session_stops_reading_after_the_end_of_stream() {
    let now = start();
    let mut harness = Harness::logged_in(now, 8);
    harness.request(publish_request("a"), 1, now);
    assert!(harness.session.wants_input());
    let lost = harness.session.handle_read(ReadOutcome::Eof, now);
    assert!(
        lost.is_err(),
        "a close with a request unanswered loses the session"
    );
    assert!(!harness.session.wants_input());
}

#[test]
fn session_end_tells_the_login_waiter_the_failure_itself() {
    let now = start();
    let client = ControlClient::new("", b"", None, TIMEOUT, now).expect("client");
    let mut harness = Harness::new(client, 8);
    let failure = harness.session.handle_read(ReadOutcome::Eof, now);
    let reason = failure.as_ref().map_err(ToString::to_string).err();
    assert_eq!(
        harness.session.end(failure),
        None,
        "the login waiter was told"
    );
    assert_eq!(harness.login.borrow().len(), 1);
    assert_eq!(harness.login.borrow()[0].as_ref().err(), reason.as_ref());
    assert_eq!(
        harness.ended.error().to_string(),
        format!("connection lost: {}", reason.unwrap_or_default())
    );
}

#[test]
fn session_end_after_login_fails_waiters_and_returns_the_reason() {
    let now = start();
    let mut harness = Harness::logged_in(now, 8);
    harness.request(publish_request("a"), 1, now);
    harness.request(publish_request("b"), 2, now);
    let failure = Err(SessionError::Timeout(TIMEOUT));
    let untold = harness.session.end(failure).expect("nobody was told");
    assert!(untold.contains("no answer"), "{untold}");
    let lost = Err(format!("connection lost: {untold}"));
    assert_eq!(harness.answers(), [(1, lost.clone()), (2, lost)]);
    assert_eq!(*harness.login.borrow(), [Ok(TOKEN)], "told only once");
    assert!(matches!(harness.ended.error(), SessionError::Disconnected(r) if r == untold));
}

/// A data session whose readiness goes to handle 0 of a fresh log.
fn data_session(now: Instant) -> (DataSession<Recorded>, Log) {
    let log = Log::default();
    let data = DataClient::new(TOKEN, TIMEOUT, None, 64, now);
    (DataSession::new(data, (0, log.clone())), log)
}

#[test]
fn data_session_tells_its_waiter_once_streaming() {
    let now = start();
    let (mut session, log) = data_session(now);
    let mut tx = TxBuf::new();
    session.poll_transmit(&mut tx);
    assert!(log.borrow().is_empty(), "not accepted yet");
    session.read_buf().extend_from_slice(&DATA_REPLY);
    session.read_buf().extend_from_slice(&[status::OK]);
    session
        .handle_read(ReadOutcome::Data, now)
        .expect("accepted");
    session.poll_transmit(&mut tx);
    session.poll_transmit(&mut tx);
    assert_eq!(*log.borrow(), [(0, Ok(()))]);
    let failure = Err(SessionError::Timeout(TIMEOUT));
    assert!(session.end(failure).is_some(), "the waiter is gone: log it");
}

#[test]
fn data_session_end_tells_a_waiting_caller() {
    let now = start();
    let (mut session, log) = data_session(now);
    let refused = session.handle_read(ReadOutcome::Eof, now);
    assert!(refused.is_err());
    assert!(session.end(refused).is_none());
    assert_eq!(log.borrow().len(), 1);
    assert!(log.borrow()[0].1.is_err());
    assert!(session.end(Ok(())).is_none());
}
