//! The outbox bounds and the link against real in-memory nodes.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand::SeedableRng;

use super::*;
use crate::Limits;
use crate::broker::{AuthConfig, Broker};
use crate::client::{ClientEvent, ControlClient, DataClient};
use crate::config::parse_acl;
use crate::conn::{ConnConfig, Transport};
use crate::node::{ConnId, Node};
use crate::txbuf::TxBuf;

const ACL: &str =
    "_: {sub: ['#'], pub: ['#'], replicator: true}\nplain: {sub: ['#'], pub: ['#']}\n";

/// The base instant of the virtual clock; only offsets from it matter.
#[allow(clippy::disallowed_methods)]
fn base() -> Instant {
    Instant::now()
}

/// A wake counter.
#[derive(Default)]
struct Count(std::sync::atomic::AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn node(seed: u64) -> Node {
    let acl = parse_acl(ACL, Path::new("acl.yml"), 32).expect("acl");
    let auth = AuthConfig {
        allow_anonymous: true,
        acl,
        passwords: None,
        keys: None,
    };
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(seed));
    let config = ConnConfig {
        tls: None,
        allow_no_tls: true,
        tls_client_cn_login: false,
    };
    Node::new(Broker::new(Limits::default(), auth, rng), config)
}

fn msg(topic: &str, payload: &'static [u8], now: Instant) -> ReplMessage {
    ReplMessage {
        topic: Arc::from(topic),
        prio: 0x7F,
        payload: Bytes::from_static(payload),
        published: now,
    }
}

/// Moves the client's bytes to the node and the node's answer back until
/// neither has anything more.
fn pump(node: &mut Node, conn: ConnId, client: &mut ControlClient, now: Instant) {
    for _ in 0..100 {
        let mut tx = TxBuf::new();
        client.poll_transmit(&mut tx);
        node.send(conn, &tx.to_vec(), now);
        let answer = node.recv(conn, now);
        if tx.is_empty() && answer.is_empty() {
            return;
        }
        client.read_buf().extend_from_slice(&answer);
        client.handle_input(now).expect("client input");
    }
    panic!("no quiescence");
}

/// A subscriber on `node` to `filter`: its data socket's connection and
/// client.
fn subscriber(node: &mut Node, filter: &str, now: Instant) -> (ConnId, DataClient) {
    let conn = node.connect(Transport::Tcp, "192.0.2.9:1", now);
    let timeout = Duration::from_secs(5);
    let mut control = ControlClient::new("", b"", None, timeout, now).expect("client");
    control.subscribe(&[filter], now).expect("subscribe");
    pump(node, conn, &mut control, now);
    let token = match control.poll_event() {
        Some(ClientEvent::LoggedIn { token }) => token,
        other => panic!("login: {other:?}"),
    };
    let data_conn = node.connect(Transport::Tcp, "192.0.2.9:2", now);
    let mut data = DataClient::new(token, timeout, None, 1 << 20, now);
    for _ in 0..4 {
        let mut tx = TxBuf::new();
        data.poll_transmit(&mut tx);
        node.send(data_conn, &tx.to_vec(), now);
        data.read_buf()
            .extend_from_slice(&node.recv(data_conn, now));
        data.handle_input(now).expect("data");
    }
    assert!(data.is_streaming());
    (data_conn, data)
}

/// The payloads `data` has received, as strings.
fn received(node: &mut Node, conn: ConnId, data: &mut DataClient, now: Instant) -> Vec<String> {
    data.read_buf().extend_from_slice(&node.recv(conn, now));
    data.handle_input(now).expect("data");
    std::iter::from_fn(|| data.poll_message())
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

/// A link from outside to `node`, logged in anonymously, that probed
/// for the pipelined op (which our nodes speak).
fn link(node: &mut Node, now: Instant) -> (ConnId, Link) {
    let (conn, link) = link_in(LinkMode::Auto, node, now);
    assert!(link.is_pipelined());
    (conn, link)
}

/// A link in `mode` from outside to `node`, logged in anonymously.
fn link_in(mode: LinkMode, node: &mut Node, now: Instant) -> (ConnId, Link) {
    let conn = node.connect(Transport::Tcp, "192.0.2.1:1", now);
    let client = ControlClient::new("", b"", None, Duration::from_secs(5), now).expect("client");
    let mut link = Link::new(client, mode);
    pump_link(node, conn, &mut link, now);
    assert!(link.is_up());
    (conn, link)
}

fn pump_link(node: &mut Node, conn: ConnId, link: &mut Link, now: Instant) {
    for _ in 0..1000 {
        link.poll_send(now, 1_000_000).expect("send");
        let mut tx = TxBuf::new();
        link.poll_transmit(&mut tx);
        node.send(conn, &tx.to_vec(), now);
        let answer = node.recv(conn, now);
        if tx.is_empty() && answer.is_empty() {
            return;
        }
        link.read_buf().extend_from_slice(&answer);
        link.handle_input(now).expect("link input");
    }
    panic!("no quiescence");
}

#[test]
fn the_outbox_drops_and_counts_beyond_its_bounds() {
    let now = base();
    let limits = QueueLimits {
        messages: 3,
        bytes: 3 * (1 + 4 + 18),
        ..QueueLimits::default()
    };
    let mut cluster = Cluster::new(limits);
    cluster.set_peers(["b"]);
    cluster.offer("t", 0x7F, &Bytes::from_static(b"0000"), 0, now);
    assert_eq!(
        cluster.stats()[0].dropped,
        1,
        "dropped while the link is not up"
    );
    cluster.peer_mut("b").expect("b").set_state(LinkState::Up);
    for _ in 0..5 {
        cluster.offer("t", 0x7F, &Bytes::from_static(b"0000"), 0, now);
    }
    let stats = &cluster.stats()[0];
    assert_eq!((stats.queue_len, stats.dropped), (3, 3));
    assert_eq!(stats.queue_bytes, 3 * 23);
    // A larger message does not fit the bytes bound even with room in count.
    let outbox = cluster.peer_mut("b").expect("b");
    let mut batch = VecDeque::new();
    let waker = Waker::from(Arc::new(Count::default()));
    outbox.take(0, &mut batch, 1, &waker);
    cluster.offer("t", 0x7F, &Bytes::from_static(b"00000"), 0, now);
    assert_eq!(cluster.stats()[0].dropped, 4);
    cluster.offer("t", 0x7F, &Bytes::from_static(b"0000"), 0, now);
    assert_eq!(cluster.stats()[0].queue_len, 3);
}

#[test]
fn taking_everything_registers_the_waker_and_an_offer_wakes_it() {
    let now = base();
    let mut cluster = Cluster::new(QueueLimits::default());
    cluster.set_peers(["b"]);
    let count = Arc::new(Count::default());
    let waker = Waker::from(count.clone());
    let outbox = cluster.peer_mut("b").expect("b");
    outbox.set_state(LinkState::Up);
    let mut batch = VecDeque::new();
    outbox.take(0, &mut batch, 64, &waker);
    assert!(batch.is_empty());
    cluster.offer("t", 0x7F, &Bytes::from_static(b"x"), 0, now);
    cluster.offer("t", 0x7F, &Bytes::from_static(b"y"), 0, now);
    assert_eq!(
        count.0.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one wake"
    );
    cluster
        .peer_mut("b")
        .expect("b")
        .take(0, &mut batch, 64, &waker);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0].payload, "x");
}

#[test]
fn leaving_up_drops_the_queue_and_set_peers_keeps_unchanged_outboxes() {
    let now = base();
    let mut cluster = Cluster::new(QueueLimits::default());
    cluster.set_peers(["b", "c"]);
    cluster.peer_mut("b").expect("b").set_state(LinkState::Up);
    cluster.offer("t", 0x7F, &Bytes::from_static(b"x"), 0, now);
    cluster.set_peers(["c", "b", "d"]);
    let names: Vec<String> = cluster.stats().into_iter().map(|p| p.peer).collect();
    assert_eq!(names, ["c", "b", "d"]);
    assert_eq!(cluster.peer("b").expect("b").len(), 1, "kept as it was");
    cluster.peer_mut("b").expect("b").link_failed("gone".into());
    let b = cluster.peer("b").expect("b").stats();
    assert_eq!((b.queue_len, b.dropped, b.reconnects), (0, 1, 1));
    assert_eq!(b.last_error.as_deref(), Some("gone"));
    assert_eq!(b.state, LinkState::Down);
    cluster.set_peers(["d"]);
    assert!(cluster.peer("b").is_none());
}

#[test]
fn a_publisher_keeps_one_lane_and_publishers_spread_over_the_lanes() {
    let now = base();
    let limits = QueueLimits {
        lanes: 3,
        ..QueueLimits::default()
    };
    let mut cluster = Cluster::new(limits);
    cluster.set_peers(["b"]);
    let outbox = cluster.peer_mut("b").expect("b");
    assert_eq!(outbox.lanes(), 3);
    outbox.set_state(LinkState::Up);
    for seq in 0..4u8 {
        for publisher in 0..6u8 {
            let payload = Bytes::from(vec![publisher, seq]);
            cluster.offer("t", 0x7F, &payload, u64::from(publisher), now);
        }
    }
    let waker = Waker::from(Arc::new(Count::default()));
    let outbox = cluster.peer_mut("b").expect("b");
    assert_eq!(outbox.len(), 24);
    for lane in 0..3u8 {
        let mut batch = VecDeque::new();
        outbox.take(usize::from(lane), &mut batch, 100, &waker);
        assert_eq!(batch.len(), 8, "lane {lane}");
        for publisher in [lane, lane + 3] {
            let seqs: Vec<u8> = batch
                .iter()
                .filter(|m| m.payload[0] == publisher)
                .map(|m| m.payload[1])
                .collect();
            assert_eq!(seqs, [0, 1, 2, 3], "publisher {publisher}");
        }
    }
    assert!(outbox.is_empty());
    assert_eq!(outbox.bytes(), 0);
    let mut batch = VecDeque::new();
    outbox.take(3, &mut batch, 100, &waker);
    assert!(batch.is_empty(), "no such lane");
    cluster.offer("t", 0x7F, &Bytes::from_static(b"u"), UDP_PUBLISHER, now);
    assert_eq!(cluster.stats()[0].queue_len, 1);
    let mut one = Cluster::new(QueueLimits {
        lanes: 0,
        ..QueueLimits::default()
    });
    one.set_peers(["b"]);
    assert_eq!(one.peer("b").expect("b").lanes(), 1, "at least one lane");
}

#[test]
fn not_required_topics_are_suppressed_until_the_ttl_passes() {
    let now = base();
    let mut cluster = Cluster::new(QueueLimits::default());
    cluster.set_peers(["b"]);
    cluster.peer_mut("b").expect("b").set_state(LinkState::Up);
    let report = LinkReport {
        not_required: vec![Arc::from("t")],
        ..LinkReport::default()
    };
    cluster.apply("b", report, now);
    cluster.offer("t", 0x7F, &Bytes::from_static(b"x"), 0, now);
    cluster.offer("u", 0x7F, &Bytes::from_static(b"x"), 0, now);
    let later = now + QueueLimits::default().not_required_ttl;
    cluster.offer("t", 0x7F, &Bytes::from_static(b"x"), 0, later);
    let b = &cluster.stats()[0];
    assert_eq!((b.not_required, b.suppressed, b.queue_len), (1, 1, 2));
}

#[test]
fn a_not_required_answer_purges_the_topic_from_every_lane() {
    let now = base();
    let mut cluster = Cluster::new(QueueLimits::default());
    cluster.set_peers(["b"]);
    cluster.peer_mut("b").expect("b").set_state(LinkState::Up);
    for publisher in 0..8 {
        cluster.offer("t", 0x7F, &Bytes::from_static(b"xy"), publisher, now);
        cluster.offer("u", 0x7F, &Bytes::from_static(b"x"), publisher, now);
    }
    let report = LinkReport {
        not_required: vec![Arc::from("t")],
        ..LinkReport::default()
    };
    cluster.apply("b", report, now);
    let b = &cluster.stats()[0];
    assert_eq!((b.suppressed, b.queue_len), (8, 8));
    assert_eq!(
        b.queue_bytes,
        8 * (1 + 1 + 18),
        "only u's messages are left"
    );
}

#[test]
fn a_link_replicates_to_a_subscriber_in_order_with_the_original_timestamp() {
    let t0 = base();
    let mut b = node(1);
    let (data_conn, mut data) = subscriber(&mut b, "t/#", t0);
    let (conn, mut link) = link(&mut b, t0);
    let now = t0 + Duration::from_millis(5);
    link.batch_mut().extend([
        msg("t/1", b"one", t0),
        msg("t/2", b"two", t0),
        msg("t/3", b"three", t0),
    ]);
    pump_link(&mut b, conn, &mut link, now);
    assert_eq!(
        received(&mut b, data_conn, &mut data, now),
        ["one", "two", "three"]
    );
    let report = link.take_report();
    assert_eq!((report.sent, report.sent_bytes), (3, 11));
    assert!(report.rtt_us.is_some());
    assert!(link.wants_messages());
    assert_eq!(b.broker().counters().c_pub_messages, 3);
}

#[test]
fn not_required_keeps_payloads_off_the_link_and_skips_the_batch() {
    let t0 = base();
    let mut b = node(2);
    let (data_conn, mut data) = subscriber(&mut b, "wanted", t0);
    let (conn, mut link) = link_in(LinkMode::Plain, &mut b, t0);
    assert!(!link.is_pipelined());
    link.batch_mut().extend([
        msg("unwanted", b"a", t0),
        msg("unwanted", b"b", t0),
        msg("wanted", b"c", t0),
        msg("unwanted", b"d", t0),
    ]);
    pump_link(&mut b, conn, &mut link, t0);
    assert_eq!(received(&mut b, data_conn, &mut data, t0), ["c"]);
    let report = link.take_report();
    assert_eq!(report.not_required.len(), 1);
    assert_eq!((report.suppressed, report.sent), (2, 1));
}

#[test]
fn a_non_replicator_fails_the_link() {
    let t0 = base();
    let mut b = node(3);
    let conn = b.connect(Transport::Tcp, "192.0.2.1:1", t0);
    let acl = parse_acl("_: {pub: ['#']}\n", Path::new("acl.yml"), 32).expect("acl");
    b.broker_mut().reload(AuthConfig {
        allow_anonymous: true,
        acl,
        passwords: None,
        keys: None,
    });
    let client = ControlClient::new("", b"", None, Duration::from_secs(5), t0).expect("client");
    let mut link = Link::new(client, LinkMode::Auto);
    link.batch_mut().push_back(msg("t", b"x", t0));
    let mut failed = None;
    for _ in 0..10 {
        if let Err(err) = link.poll_send(t0, 0) {
            failed = Some(err);
            break;
        }
        let mut tx = TxBuf::new();
        link.poll_transmit(&mut tx);
        b.send(conn, &tx.to_vec(), t0);
        link.read_buf().extend_from_slice(&b.recv(conn, t0));
        if let Err(err) = link.handle_input(t0) {
            failed = Some(err);
            break;
        }
    }
    let err = failed.expect("refused");
    assert!(matches!(err, LinkError::NotReplicator), "{err}");
    let report = link.abort(&err.to_string());
    assert_eq!(report.dropped, 1);
    assert!(report.error.is_some_and(|e| e.contains("replicator")));
}

#[test]
fn no_keepalive_goes_out_while_a_payload_is_owed() {
    let t0 = base();
    let mut b = node(4);
    let _sub = subscriber(&mut b, "t", t0);
    let (conn, mut link) = link_in(LinkMode::Plain, &mut b, t0);
    link.batch_mut().push_back(msg("t", b"x", t0));
    link.poll_send(t0, 0).expect("offer");
    let mut tx = TxBuf::new();
    link.poll_transmit(&mut tx);
    b.send(conn, &tx.to_vec(), t0);
    // The answer is late: past half the timeout nothing may be sent.
    let late = t0 + Duration::from_secs(3);
    assert!(link.poll_timeout().is_none_or(|at| at > late), "no NOP due");
    link.handle_timeout(late).expect("no reply deadline yet");
    let mut tx = TxBuf::new();
    link.poll_transmit(&mut tx);
    assert!(tx.is_empty(), "a NOP here would be read as the payload");
    link.read_buf().extend_from_slice(&b.recv(conn, late));
    link.handle_input(late).expect("OK_WAITING");
    pump_link(&mut b, conn, &mut link, late);
    assert_eq!(link.take_report().sent, 1);
}

/// A [`node`] with one cluster peer, `b`, whose link is up.
fn node_linked_to_b(seed: u64) -> Node {
    let mut a = node(seed);
    a.broker_mut().cluster_mut().set_peers(["b"]);
    a.broker_mut()
        .cluster_mut()
        .peer_mut("b")
        .expect("b")
        .set_state(LinkState::Up);
    a
}

#[test]
fn a_broker_offers_local_publishes_but_not_replicated_ones() {
    let t0 = base();
    let mut a = node_linked_to_b(5);
    let conn = a.connect(Transport::Tcp, "192.0.2.1:1", t0);
    let mut client = ControlClient::new("", b"", None, Duration::from_secs(5), t0).expect("c");
    client.publish("t", b"local", 0x7F, t0).expect("publish");
    pump(&mut a, conn, &mut client, t0);
    let (peer_conn, mut peer) = link(&mut a, t0);
    let _sub = subscriber(&mut a, "t", t0);
    peer.batch_mut().push_back(msg("t", b"from a peer", t0));
    pump_link(&mut a, peer_conn, &mut peer, t0);
    assert_eq!(peer.take_report().sent, 1);
    assert_eq!(
        a.broker().cluster().peer("b").expect("b").len(),
        1,
        "only the local one"
    );
}

#[test]
fn a_udp_publish_is_offered_to_the_peers_too() {
    let t0 = base();
    let mut a = node_linked_to_b(6);
    let mut datagram = Vec::new();
    crate::udp::encode_plain(&mut datagram, "", b"", true, 0x7F, "sensor/1", b"21.5")
        .expect("encodes");
    let ack = a.datagram(&datagram, t0).expect("acknowledged");
    assert_eq!(ack[4], crate::wire::status::OK, "{ack:?}");
    let outbox = a.broker_mut().cluster_mut().peer_mut("b").expect("b");
    let waker = Waker::from(Arc::new(Count::default()));
    let mut batch = VecDeque::new();
    for lane in 0..outbox.lanes() {
        outbox.take(lane, &mut batch, 64, &waker);
    }
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(
        (&*batch[0].topic, &batch[0].payload[..]),
        ("sensor/1", &b"21.5"[..])
    );
}

proptest! {
    /// Whatever is offered and taken, the outbox stays within its bounds
    /// and every message is either queued, taken, dropped or suppressed.
    #[test]
    fn outbox_accounting_holds(ops in proptest::collection::vec((0u8..4, 0usize..40), 1..200)) {
        let now = base();
        let limits = QueueLimits { messages: 8, bytes: 200, ..QueueLimits::default() };
        let mut cluster = Cluster::new(limits);
        cluster.set_peers(["p"]);
        cluster.peer_mut("p").expect("p").set_state(LinkState::Up);
        let waker = Waker::from(Arc::new(Count::default()));
        let (mut offered, mut taken) = (0u64, 0u64);
        for (op, size) in ops {
            match op {
                0 | 1 => {
                    cluster.offer("t", 0, &Bytes::from(vec![0u8; size]), size as u64, now);
                    offered += 1;
                }
                2 => {
                    let mut batch = VecDeque::new();
                    cluster.peer_mut("p").expect("p").take(size % 5, &mut batch, size, &waker);
                    taken += batch.len() as u64;
                }
                _ => {
                    let report = LinkReport { not_required: vec![Arc::from("t")], ..LinkReport::default() };
                    cluster.apply("p", report, now + Duration::from_secs(size as u64));
                }
            }
            let p = &cluster.stats()[0];
            prop_assert!(p.queue_len <= limits.messages && p.queue_bytes <= limits.bytes);
            prop_assert_eq!(offered, p.queue_len as u64 + taken + p.dropped + p.suppressed);
        }
    }
}

#[test]
fn pipelined_not_required_answers_are_reported_per_message() {
    let t0 = base();
    let mut b = node(20);
    let (data_conn, mut data) = subscriber(&mut b, "wanted", t0);
    let (conn, mut link) = link(&mut b, t0);
    link.batch_mut().extend([
        msg("unwanted", b"a", t0),
        msg("unwanted", b"b", t0),
        msg("wanted", b"c", t0),
        msg("unwanted", b"d", t0),
    ]);
    pump_link(&mut b, conn, &mut link, t0);
    assert_eq!(received(&mut b, data_conn, &mut data, t0), ["c"]);
    let report = link.take_report();
    // All four went out before the first answer: nothing left to skip.
    assert_eq!(report.not_required.len(), 3);
    assert_eq!(
        (report.suppressed, report.sent, report.sent_bytes),
        (0, 1, 1)
    );
    assert!(link.wants_messages());
}

#[test]
fn a_pipelined_link_keeps_a_window_of_unanswered_messages() {
    let t0 = base();
    let mut b = node(21);
    let (data_conn, mut data) = subscriber(&mut b, "t", t0);
    let (conn, mut link) = link(&mut b, t0);
    let payloads: Vec<String> = (0..WINDOW + 10).map(|i| i.to_string()).collect();
    for payload in &payloads {
        link.batch_mut().push_back(ReplMessage {
            payload: Bytes::from(payload.clone()),
            ..msg("t", b"", t0)
        });
    }
    link.poll_send(t0, 0).expect("send");
    assert_eq!(link.batch_mut().len(), 10, "one window went out at once");
    assert!(!link.wants_messages());
    let mut tx = TxBuf::new();
    link.poll_transmit(&mut tx);
    b.send(conn, &tx.to_vec(), t0);
    link.read_buf().extend_from_slice(&b.recv(conn, t0));
    link.handle_input(t0).expect("answers");
    assert_eq!(link.take_report().sent, WINDOW as u64);
    pump_link(&mut b, conn, &mut link, t0);
    assert_eq!(received(&mut b, data_conn, &mut data, t0), payloads);
    assert!(link.wants_messages());
}

/// Plays an original server that does not know op 0x12: it answers the
/// greeting and login, then closes the connection when the probe comes.
#[test]
fn a_peer_that_closes_on_the_probe_refuses_pipelining() {
    let t0 = base();
    let client = ControlClient::new("", b"", None, Duration::from_secs(5), t0).expect("client");
    let mut link = Link::new(client, LinkMode::Auto);
    link.batch_mut().push_back(msg("t", b"x", t0));
    let mut tx = TxBuf::new();
    link.poll_transmit(&mut tx);
    assert_eq!(tx.to_vec()[..3], [0xEE, 0xAA, 0x00], "greeting");
    link.read_buf()
        .extend_from_slice(&crate::wire::push::greeting_reply(
            crate::wire::SocketKind::Control,
        ));
    link.read_buf().extend_from_slice(&[7; 32]);
    link.handle_input(t0).expect("logged in");
    assert!(!link.is_up(), "not up before the probe is answered");
    link.poll_send(t0, 0).expect("probe");
    let mut tx = TxBuf::new();
    link.poll_transmit(&mut tx);
    assert_eq!(
        tx.to_vec()[0],
        crate::wire::op::REPL_PIPELINED,
        "only the probe"
    );
    assert_eq!(tx.len(), 14, "only the probe");
    let err = link.handle_eof().expect_err("closed");
    assert!(matches!(err, LinkError::PipeliningRefused), "{err}");
    let report = link.abort(&err.to_string());
    assert_eq!(report.dropped, 1);
}

#[test]
fn a_plain_link_sends_no_probe_and_replicates_with_publish_repl() {
    let t0 = base();
    let mut b = node(22);
    let (data_conn, mut data) = subscriber(&mut b, "t", t0);
    let (conn, mut link) = link_in(LinkMode::Plain, &mut b, t0);
    assert!(!link.is_pipelined());
    link.batch_mut()
        .extend([msg("t", b"one", t0), msg("t", b"two", t0)]);
    link.poll_send(t0, 0).expect("offer");
    let mut tx = TxBuf::new();
    link.poll_transmit(&mut tx);
    assert_eq!(tx.to_vec()[0], crate::wire::op::PUBLISH_REPL);
    b.send(conn, &tx.to_vec(), t0);
    link.read_buf().extend_from_slice(&b.recv(conn, t0));
    link.handle_input(t0).expect("OK_WAITING");
    pump_link(&mut b, conn, &mut link, t0);
    assert_eq!(received(&mut b, data_conn, &mut data, t0), ["one", "two"]);
}
