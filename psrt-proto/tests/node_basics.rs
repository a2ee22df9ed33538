//! The basic flow through a whole in-memory node: login, data socket,
//! subscribe, publish, delivery.

use std::time::{Duration, Instant};

use psrt_proto::Limits;
use psrt_proto::broker::{AuthConfig, Broker};
use psrt_proto::conn::{ConnConfig, Transport};
use psrt_proto::node::{ConnId, Node};
use rand::SeedableRng;

/// The tests' time origin; the core itself never reads the clock.
#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn node() -> Node {
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(7));
    let broker = Broker::new(Limits::default(), AuthConfig::open(), rng);
    Node::new(
        broker,
        ConnConfig {
            tls: None,
            allow_no_tls: true,
            tls_client_cn_login: false,
        },
    )
}

fn login(node: &mut Node, now: Instant) -> (ConnId, [u8; 32]) {
    let c = node.connect(Transport::Tcp, "127.0.0.1:1000", now);
    node.send(c, &[0xEE, 0xAA, 0x00], now);
    node.send(c, &[1, 0, 0, 0, 0], now);
    let out = node.recv(c, now);
    assert_eq!(&out[..4], &[0xEE, 0xAA, 0x01, 0x00]);
    assert_eq!(out.len(), 36, "greeting reply + 32-byte token");
    (c, out[4..].try_into().unwrap())
}

fn data_socket(node: &mut Node, token: [u8; 32], now: Instant) -> ConnId {
    let d = node.connect(Transport::Tcp, "127.0.0.1:1001", now);
    let mut hello = vec![0xEE, 0xAB, 0x00];
    hello.extend_from_slice(&token);
    hello.push(5);
    node.send(d, &hello, now);
    assert_eq!(node.recv(d, now), vec![0xEE, 0xAB, 0x01, 0x00, 0x01]);
    d
}

#[test]
fn publish_reaches_subscriber_once_with_normalised_topic() {
    let now = t0();
    let mut node = node();
    let (sub, token) = login(&mut node, now);
    let data = data_socket(&mut node, token, now);
    // Two overlapping filters: one delivery.
    node.send(
        sub,
        &[0x02, 7, 0, 0, 0, b'a', b'/', b'+', 0, b'a', b'/', b'#'],
        now,
    );
    assert_eq!(node.recv(sub, now), vec![0x01]);

    let (publisher, _) = login(&mut node, now);
    let mut frame = vec![0x01, 0x7F, 10, 0, 0, 0];
    frame.extend_from_slice(b"//a/b\0xyzw");
    node.send(publisher, &frame, now);
    assert_eq!(node.recv(publisher, now), vec![0x01]);
    assert!(node.was_woken(data));
    let pushed = node.recv(data, now);
    let mut expected = vec![0x01, 0x7F, 8, 0, 0, 0];
    expected.extend_from_slice(b"a/b\0xyzw");
    assert_eq!(pushed, expected);
    assert_eq!(node.broker().counters().c_sent_messages, 1);
}

#[test]
fn beacon_sent_after_half_the_client_timeout() {
    let now = t0();
    let mut node = node();
    let (_c, token) = login(&mut node, now);
    let data = data_socket(&mut node, token, now);
    assert!(node.recv(data, now + Duration::from_secs(2)).is_empty());
    assert_eq!(
        node.recv(data, now + Duration::from_millis(2600)),
        vec![0x00]
    );
}
