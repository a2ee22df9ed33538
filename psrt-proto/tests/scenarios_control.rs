//! Control-socket operations (PROTOCOL.md "Operations", "Topics"): every
//! reply code and every protocol error, subscription semantics, delivery
//! rules, pipelining and arbitrary splitting of the input.

mod support;

use std::cell::RefCell;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use psrt_proto::broker::{AuthConfig, Broker};
use psrt_proto::conn::{CloseReason, ConnConfig, Connection, SocketTask, Transport, Turn, Wakeup};
use psrt_proto::{Limits, TxBuf};
use rand::SeedableRng;
use support::*;

#[test]
fn nop_is_answered_ok() {
    let mut server = Server::open();
    let (c, _) = server.anon();
    assert_eq!(server.request(c, &[0x00]), [OK]);
    assert_eq!(server.request(c, &[0x00, 0x00, 0x00]), [OK, OK, OK]);
}

#[test]
fn publish_is_delivered_with_its_priority_and_exact_payload() {
    let mut server = Server::open();
    let (_, d) = server.subscriber(&["t/#"]);
    let (p, _) = server.anon();
    let payload = [0x00, 0xFF, 0x01, 0x00, b'x'];
    assert_eq!(
        server.request(p, &publish_prio(0x05, b"t/bin", &payload)),
        [OK]
    );
    assert_eq!(server.request(p, &publish(b"t/empty", b"")), [OK]);
    let expected = [pushed_prio(0x05, "t/bin", &payload), pushed("t/empty", b"")].concat();
    assert_eq!(server.recv(d), expected);
}

#[test]
fn subscribers_receive_the_normalised_topic() {
    let mut server = Server::open();
    let (_, d) = server.subscriber(&["//a///b"]);
    let (p, _) = server.anon();
    assert_eq!(server.request(p, &publish(b"/a//b", b"v")), [OK]);
    assert_eq!(server.recv(d), pushed("a/b", b"v"));
}

#[test]
fn publish_denied_by_the_acl_is_err_access_and_the_connection_stays() {
    let auth = auth("_: {pub: ['ok/#'], sub: ['#']}\n", &[], true);
    let mut server = Server::new(Limits::default(), auth);
    let (_, d) = server.subscriber(&["#"]);
    let (p, _) = server.anon();
    assert_eq!(server.request(p, &publish(b"secret/x", b"v")), [ERR_ACCESS]);
    assert!(!server.closed(p));
    assert_eq!(server.request(p, &publish(b"ok/x", b"v")), [OK]);
    assert_eq!(
        server.recv(d),
        pushed("ok/x", b"v"),
        "the denied message went nowhere"
    );
}

#[test]
fn too_deep_topic_is_err_and_the_connection_stays() {
    let mut server = Server::open();
    let (_, d) = server.subscriber(&["#"]);
    let (p, _) = server.anon();
    let deepest = vec!["l"; 33].join("/");
    let too_deep = vec!["l"; 34].join("/");
    assert_eq!(server.request(p, &publish(too_deep.as_bytes(), b"")), [ERR]);
    assert!(!server.closed(p));
    assert_eq!(server.request(p, &publish(deepest.as_bytes(), b"")), [OK]);
    assert_eq!(server.recv(d), pushed(&deepest, b""));
    assert_eq!(server.request(p, &subscribe(&[&too_deep])), [ERR]);
}

/// Sends `frame` after a NOP and asserts the connection closes after the
/// NOP's reply, without any reply to `frame`.
fn assert_closes_without_reply(frame: &[u8]) {
    let mut server = Server::open();
    let (c, _) = server.anon();
    let out = server.request(c, &[&[0x00][..], frame, &[0x00]].concat());
    assert_eq!(
        out,
        [OK],
        "frame {frame:02X?}: only the NOP before it is answered"
    );
    assert!(
        server.closed(c),
        "frame {frame:02X?} must close the connection"
    );
    server.assert_protocol_close(c);
    server.assert_baseline();
}

#[test]
fn publish_protocol_errors_close_without_a_reply() {
    // No 00 separator.
    let mut no_separator = vec![0x01, PRIO];
    no_separator.extend_from_slice(&le(3));
    no_separator.extend_from_slice(b"abc");
    assert_closes_without_reply(&no_separator);
    // Empty topic, before and after normalisation.
    assert_closes_without_reply(&publish(b"", b"v"));
    assert_closes_without_reply(&publish(b"//", b"v"));
    // Invalid UTF-8.
    assert_closes_without_reply(&publish(b"a/\xC3\x28", b"v"));
    // Wildcards.
    assert_closes_without_reply(&publish(b"a/+", b"v"));
    assert_closes_without_reply(&publish(b"a/#", b"v"));
    assert_closes_without_reply(&publish(b"a+b", b"v"));
}

#[test]
fn unknown_op_bytes_close_without_a_reply() {
    for code in [0x04, 0x10, 0x13, 0x20, 0x7F, 0xFE] {
        assert_closes_without_reply(&[code]);
    }
}

#[test]
fn oversized_publish_closes_as_soon_as_the_length_arrives() {
    let limits = Limits {
        max_pub_size: 64,
        ..Limits::default()
    };
    let mut server = Server::new(limits, AuthConfig::open());
    let (c, _) = server.anon();
    let mut head = vec![0x01, PRIO];
    head.extend_from_slice(&le(65));
    server.send(c, &head);
    assert!(server.closed(c), "closed before any body byte");
    server.assert_protocol_close(c);
    assert!(server.recv(c).is_empty());

    let (c, _) = server.anon();
    let frame = publish(b"t", &[7; 62]);
    assert_eq!(frame.len(), 6 + 64);
    assert_eq!(
        server.request(c, &frame),
        [OK],
        "exactly max_pub_size is fine"
    );
}

#[test]
fn oversized_subscribe_and_unsubscribe_close_as_soon_as_the_length_arrives() {
    for op in [0x02, 0x03, 0x11] {
        let limits = Limits {
            max_topic_length: 16,
            ..Limits::default()
        };
        let mut server = Server::new(limits, AuthConfig::open());
        let (c, _) = server.anon();
        let mut head = vec![op];
        head.extend_from_slice(&le(17));
        server.send(c, &head);
        assert!(server.closed(c), "op {op:#04x}");
        server.assert_protocol_close(c);
        let (c, _) = server.anon();
        let reply = if op == 0x11 { NOT_REQUIRED } else { OK };
        assert_eq!(server.request(c, &sized(op, &[b'a'; 16])), [reply]);
        assert!(
            !server.closed(c),
            "op {op:#04x} with exactly max_topic_length"
        );
    }
}

#[test]
fn subscribe_bulk_skips_empty_pieces() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let d = server.data(token);
    assert_eq!(server.request(c, &sized(0x02, b"\0a\0\0b\0")), [OK]);
    assert_eq!(server.node.broker().subscription_count(), 2);
    assert_eq!(server.node.broker().counters().c_sub_ops, 2);
    assert_eq!(
        server.request(c, &sized(0x02, b"")),
        [OK],
        "nothing to do is fine"
    );
    assert_eq!(server.request(c, &publish(b"a", b"1")), [OK]);
    assert_eq!(server.request(c, &publish(b"b", b"2")), [OK]);
    assert_eq!(
        server.recv(d),
        [pushed("a", b"1"), pushed("b", b"2")].concat()
    );
    assert_eq!(server.request(c, &sized(0x03, b"\0\0a\0b")), [OK]);
    assert_eq!(server.node.broker().subscription_count(), 0);
}

#[test]
fn subscribe_stops_at_the_first_failure_and_keeps_earlier_filters() {
    let auth = auth("_: {sub: ['a/#', 'c'], pub: ['#']}\n", &[], true);
    let mut server = Server::new(Limits::default(), auth);
    let (c, token) = server.anon();
    let d = server.data(token);
    assert_eq!(
        server.request(c, &subscribe(&["a/x", "b", "c"])),
        [ERR_ACCESS]
    );
    assert_eq!(server.request(c, &subscribe(&["a/y", "a/#/b", "c"])), [ERR]);
    for topic in ["a/x", "a/y", "b", "c"] {
        assert_eq!(server.request(c, &publish(topic.as_bytes(), b"")), [OK]);
    }
    assert_eq!(
        server.recv(d),
        [pushed("a/x", b""), pushed("a/y", b"")].concat()
    );
    assert_eq!(server.node.broker().subscription_count(), 2);
    assert_eq!(server.node.broker().counters().c_sub_ops, 2);
}

#[test]
fn acl_sub_mask_with_plus_refuses_hash_below_it() {
    let auth = auth("_: {sub: ['a/+'], pub: ['#']}\n", &[], true);
    let mut server = Server::new(Limits::default(), auth);
    let (c, _) = server.anon();
    assert_eq!(server.request(c, &subscribe(&["a/#"])), [ERR_ACCESS]);
    assert_eq!(server.request(c, &subscribe(&["#"])), [ERR_ACCESS]);
    assert_eq!(server.request(c, &subscribe(&["a/+/c"])), [ERR_ACCESS]);
    assert_eq!(server.request(c, &subscribe(&["a/+"])), [OK]);
    assert_eq!(server.request(c, &subscribe(&["a/b"])), [OK]);
}

#[test]
fn subscriptions_are_a_set() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let d = server.data(token);
    assert_eq!(server.request(c, &subscribe(&["s"])), [OK]);
    assert_eq!(server.request(c, &subscribe(&["s", "/s"])), [OK]);
    assert_eq!(server.node.broker().subscription_count(), 1);
    assert_eq!(server.request(c, &unsubscribe(&["s"])), [OK]);
    assert_eq!(server.node.broker().subscription_count(), 0);
    assert_eq!(server.request(c, &publish(b"s", b"")), [OK]);
    assert!(
        server.recv(d).is_empty(),
        "unsubscribed after one UNSUBSCRIBE"
    );
    assert_eq!(server.request(c, &unsubscribe(&["never/had", "#"])), [OK]);
}

#[test]
fn unsubscribe_of_an_invalid_filter_is_err() {
    let mut server = Server::open();
    let (c, _) = server.anon();
    assert_eq!(server.request(c, &unsubscribe(&["a/#/b"])), [ERR]);
    assert!(!server.closed(c));
}

/// Which of `topics` a subscriber of `filters` receives.
fn deliveries(filters: &[&str], topics: &[&str]) -> Vec<u8> {
    let mut server = Server::open();
    let (_, d) = server.subscriber(filters);
    let (p, _) = server.anon();
    for topic in topics {
        assert_eq!(server.request(p, &publish(topic.as_bytes(), b"")), [OK]);
    }
    server.recv(d)
}

#[test]
fn plus_matches_an_empty_level() {
    let got = deliveries(&["b/+"], &["b/", "b/x", "b", "b/x/y"]);
    assert_eq!(got, [pushed("b/", b""), pushed("b/x", b"")].concat());
}

#[test]
fn hash_needs_at_least_one_level_below() {
    let got = deliveries(&["a/#"], &["a", "a/", "a/b", "a/b/c", "ab"]);
    assert_eq!(
        got,
        [pushed("a/", b""), pushed("a/b", b""), pushed("a/b/c", b"")].concat()
    );
}

#[test]
fn hash_alone_matches_every_topic() {
    let topics = ["a", "a/b/c", "x/", "z"];
    let got = deliveries(&["#"], &topics);
    let expected: Vec<u8> = topics.iter().flat_map(|t| pushed(t, b"")).collect();
    assert_eq!(got, expected);
}

#[test]
fn one_delivery_per_message_even_with_several_matching_filters() {
    let got = deliveries(&["a/+", "a/#", "#", "+/b", "a/b"], &["a/b"]);
    assert_eq!(got, pushed("a/b", b""));
}

#[test]
fn publisher_receives_its_own_messages() {
    let mut server = Server::open();
    let (c, d) = server.subscriber(&["me"]);
    assert_eq!(server.request(c, &publish(b"me", b"echo")), [OK]);
    assert_eq!(server.recv(d), pushed("me", b"echo"));
}

#[test]
fn a_subscriber_without_data_socket_gets_nothing_queued() {
    let mut server = Server::open();
    let (c, _) = server.anon();
    assert_eq!(server.request(c, &subscribe(&["t"])), [OK]);
    assert_eq!(server.request(c, &publish(b"t", b"v")), [OK]);
    assert_eq!(server.node.broker().counters().c_pub_messages, 1);
    assert_eq!(server.node.broker().counters().c_sent_messages, 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let auth = auth("_: {sub: ['#'], pub: ['a', 'a/#']}\n", &[], true);
    let mut server = Server::new(Limits::default(), auth);
    let (c, token) = server.anon();
    let d = server.data(token);
    let too_deep = vec!["a"; 40].join("/");
    let script = [
        vec![0x00],
        subscribe(&["a"]),
        publish(b"denied", b""),
        publish(too_deep.as_bytes(), b""),
        publish(b"a", b"1"),
        unsubscribe(&["a"]),
        publish(b"a", b"2"),
        vec![0x00],
    ]
    .concat();
    assert_eq!(
        server.request(c, &script),
        [OK, OK, ERR_ACCESS, ERR, OK, OK, OK, OK]
    );
    assert_eq!(server.recv(d), pushed("a", b"1"));
}

/// Runs `chunks` of control bytes on a logged-in client with a data socket;
/// returns what the control and the data socket received and whether the
/// control socket closed.
fn run_split(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>, bool) {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let d = server.data(token);
    let mut control = Vec::new();
    for chunk in chunks {
        server.send(c, chunk);
        control.extend(server.recv(c));
    }
    (control, server.recv(d), server.closed(c))
}

#[test]
fn input_split_at_every_byte_boundary_gives_the_same_output() {
    let script = [
        subscribe(&["t/#", "u"]),
        publish(b"t/a", b"x"),
        vec![0x00],
        publish(b"t/b", &[9; 300]),
        unsubscribe(&["t/#"]),
        publish(b"t/c", b"gone"),
        publish(b"u", b""),
    ]
    .concat();
    let whole = run_split(&[&script]);
    assert_eq!(whole.0, [OK; 7]);
    let data = [
        pushed("t/a", b"x"),
        pushed("t/b", &[9; 300]),
        pushed("u", b""),
    ]
    .concat();
    assert_eq!(whole.1, data);
    assert!(!whole.2);
    for at in 0..=script.len() {
        assert_eq!(
            run_split(&[&script[..at], &script[at..]]),
            whole,
            "split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = script.chunks(1).collect();
    assert_eq!(run_split(&bytes), whole, "one byte at a time");
}

#[test]
fn greeting_and_login_split_at_every_byte_boundary() {
    let script = [&CONTROL_GREETING[..], &login_frame(b"", b""), &[0x00]].concat();
    for at in 0..=script.len() {
        let mut server = Server::open();
        let c = server.connect();
        server.send(c, &script[..at]);
        let mut out = server.recv(c);
        server.send(c, &script[at..]);
        out.extend(server.recv(c));
        assert_eq!(out.len(), 4 + 32 + 1, "split at {at}");
        assert_eq!(out[..4], CONTROL_REPLY);
        assert_eq!(out[36], OK);
    }
}

#[test]
fn bye_is_answered_ok_then_the_connection_closes() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let d = server.data(token);
    assert_eq!(server.request(c, &subscribe(&["#"])), [OK]);
    // Bytes after BYE are not processed.
    assert_eq!(server.request(c, &[0xFF, 0x00, 0x00]), [OK]);
    assert!(server.closed(c));
    assert_eq!(server.reason(c), Some(CloseReason::Bye));
    assert!(server.node.was_woken(d));
    assert!(server.recv(d).is_empty());
    assert!(server.closed(d), "the data socket follows its session");
    server.assert_baseline();
}

#[test]
fn everything_is_released_when_all_clients_leave() {
    let mut server = Server::open();
    let mut sockets = Vec::new();
    for i in 0..10 {
        let (c, token) = server.anon();
        let d = server.data(token);
        let filters = [format!("t/{i}"), "t/#".to_owned(), "+/+".to_owned()];
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        assert_eq!(server.request(c, &subscribe(&filters)), [OK]);
        sockets.push((c, d, token));
    }
    assert_eq!(server.node.broker().session_count(), 10);
    assert_eq!(server.node.broker().subscription_count(), 30);
    for (i, (c, d, _)) in sockets.iter().enumerate() {
        match i % 3 {
            0 => assert_eq!(server.request(*c, &[0xFF]), [OK]),
            1 => server.node.disconnect(*c),
            _ => {
                server.node.disconnect(*d);
                server.node.disconnect(*c);
            }
        }
    }
    server.assert_baseline();
    let (_, out) = server.try_data(sockets[0].2, 5);
    assert_eq!(
        out,
        [&DATA_REPLY[..], &[ERR]].concat(),
        "old tokens are dead"
    );
}

/// A socket driven by hand as a runtime drives it: one [`SocketTask`]
/// and the `TxBuf` the socket writes from.
struct Socket {
    conn: Connection,
    task: SocketTask,
}

impl Socket {
    fn new(broker: &RefCell<Broker>, config: &Arc<ConnConfig>, now: Instant) -> Self {
        let timeout = broker.borrow().limits().timeout;
        let conn = Connection::new(
            config.clone(),
            Transport::Tcp,
            "p".into(),
            Waker::noop().clone(),
            timeout,
            now,
        );
        Self {
            conn,
            task: SocketTask::new(Duration::from_secs(5)),
        }
    }

    /// One turn after `wakeup`, writing into `tx`.
    fn turn(&mut self, wakeup: Wakeup, broker: &RefCell<Broker>, now: Instant, tx: &mut TxBuf) {
        let turn = self
            .task
            .turn(Some(wakeup), &mut self.conn, broker, tx, now, true);
        assert!(matches!(turn, Turn::Wait { .. }), "still open");
    }

    /// Hands `bytes` over as one read; returns the answer.
    fn feed(&mut self, broker: &RefCell<Broker>, now: Instant, bytes: &[u8]) -> TxBuf {
        self.conn.read_buf().extend_from_slice(bytes);
        let mut tx = TxBuf::new();
        self.turn(Wakeup::Read(Ok(bytes.len())), broker, now, &mut tx);
        tx
    }

    /// What the broker woke a data socket for.
    fn woken(&mut self, broker: &RefCell<Broker>, now: Instant) -> TxBuf {
        let mut tx = TxBuf::new();
        self.turn(Wakeup::Woken, broker, now, &mut tx);
        tx
    }
}

/// A control connection driven by hand against `broker`; returns it with
/// its token.
fn logged_in(
    broker: &RefCell<Broker>,
    config: &Arc<ConnConfig>,
    now: Instant,
) -> (Socket, [u8; 32]) {
    let mut socket = Socket::new(broker, config, now);
    let hello = [&CONTROL_GREETING[..], &login_frame(b"", b"")].concat();
    let tx = socket.feed(broker, now, &hello);
    (socket, token_of(&tx.to_vec()))
}

#[test]
fn a_large_payload_is_pushed_to_every_subscriber_from_one_shared_allocation() {
    let now = start();
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
    let broker = RefCell::new(Broker::new(Limits::default(), AuthConfig::open(), rng));
    let config = Arc::new(ConnConfig {
        tls: None,
        allow_no_tls: true,
        tls_client_cn_login: false,
    });
    let mut data_conns = Vec::new();
    let mut controls = Vec::new();
    for _ in 0..3 {
        let (mut control, token) = logged_in(&broker, &config, now);
        control.feed(&broker, now, &subscribe(&["big", "small"]));
        let mut data = Socket::new(&broker, &config, now);
        let mut hello = DATA_GREETING.to_vec();
        hello.extend_from_slice(&token);
        hello.push(5);
        let tx = data.feed(&broker, now, &hello);
        assert_eq!(tx.to_vec(), [&DATA_REPLY[..], &[OK]].concat());
        data_conns.push(data);
        controls.push(control);
    }
    let (mut publisher, _) = logged_in(&broker, &config, now);
    let payload = [0xAB; 300];
    let frame = publish(b"big", &payload);
    let input = publisher.conn.read_buf();
    input.extend_from_slice(&frame);
    // Where the frame sits in the publisher's read buffer.
    let frame_at = input.as_ptr() as usize;
    let mut tx = TxBuf::new();
    let read = Wakeup::Read(Ok(frame.len()));
    publisher.turn(read, &broker, now, &mut tx);
    assert_eq!(tx.to_vec(), [OK]);

    let mut pointers = Vec::new();
    for data in &mut data_conns {
        let tx = data.woken(&broker, now);
        assert_eq!(tx.to_vec(), pushed("big", &payload));
        assert_eq!(tx.chunk_count(), 1, "the publisher's frame, shared");
        let mut slices = [std::io::IoSlice::new(&[]); 1];
        assert_eq!(tx.io_slices(&mut slices), 1);
        assert_eq!(slices[0].len(), frame.len());
        pointers.push(slices[0].as_ptr() as usize);
    }
    assert!(
        pointers.iter().all(|&p| p == frame_at),
        "one allocation, no copy: {pointers:x?} vs {frame_at:x}"
    );

    // A small payload is copied next to its head: one chunk per message.
    publisher.feed(&broker, now, &publish(b"small", b"tiny"));
    for data in &mut data_conns {
        let tx = data.woken(&broker, now);
        assert_eq!(tx.chunk_count(), 1);
        assert_eq!(tx.to_vec(), pushed("small", b"tiny"));
    }
}

#[test]
fn repeated_publishes_to_one_topic_follow_subscription_changes() {
    let mut server = Server::open();
    let (p, _) = server.anon();
    assert_eq!(server.request(p, &publish(b"r/t", b"0")), [OK]);
    let (s1, d1) = server.subscriber(&["r/t"]);
    assert_eq!(server.request(p, &publish(b"r/t", b"1")), [OK]);
    let (_, d2) = server.subscriber(&["r/+"]);
    assert_eq!(server.request(p, &publish(b"r/t", b"2")), [OK]);
    assert_eq!(server.request(s1, &unsubscribe(&["r/t"])), [OK]);
    assert_eq!(server.request(p, &publish(b"r/t", b"3")), [OK]);
    assert_eq!(server.request(p, &publish(b"/r//t", b"4")), [OK]);
    assert_eq!(
        server.recv(d1),
        [pushed("r/t", b"1"), pushed("r/t", b"2")].concat()
    );
    assert_eq!(
        server.recv(d2),
        [
            pushed("r/t", b"2"),
            pushed("r/t", b"3"),
            pushed("r/t", b"4")
        ]
        .concat()
    );
}
