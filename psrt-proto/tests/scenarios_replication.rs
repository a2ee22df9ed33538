//! PUBLISH_REPL from cluster peers (PROTOCOL.md "Replication").

mod support;

use psrt_proto::Limits;
use support::*;

const ACL: &str = "
peer: {replicator: true}
plain: {sub: ['#'], pub: ['#']}
_: {sub: ['#'], pub: ['#']}
";

fn server() -> Server {
    Server::new(
        Limits::default(),
        auth(ACL, &[("peer", "pw"), ("plain", "pw")], true),
    )
}

/// `PRIO TIMESTAMP LEN payload`.
fn repl_payload(prio: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![prio];
    out.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
    out.extend_from_slice(&le(payload.len()));
    out.extend_from_slice(payload);
    out
}

#[test]
fn a_non_replicator_gets_err_access_and_stays_connected() {
    let mut server = server();
    let (c, _) = server.login("plain", "pw");
    assert_eq!(server.request(c, &sized(0x11, b"t")), [ERR_ACCESS]);
    assert_eq!(
        server.request(c, &[0x00]),
        [OK],
        "the next byte is an op again"
    );
}

#[test]
fn not_required_when_no_local_subscriber_matches() {
    let mut server = server();
    server.subscriber(&["other/#"]);
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(server.request(peer, &sized(0x11, b"t/x")), [NOT_REQUIRED]);
    assert_eq!(
        server.request(peer, &[0x00]),
        [OK],
        "no payload is expected after E0"
    );
}

#[test]
fn ok_waiting_then_payload_then_ok_and_local_delivery() {
    let mut server = server();
    let (_, d) = server.subscriber(&["t/+"]);
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(server.request(peer, &sized(0x11, b"//t//x")), [OK_WAITING]);
    assert_eq!(
        server.request(peer, &repl_payload(0x03, b"hello\0world")),
        [OK]
    );
    assert_eq!(server.recv(d), pushed_prio(0x03, "t/x", b"hello\0world"));
    assert_eq!(server.node.broker().counters().c_pub_messages, 1);
    assert_eq!(server.request(peer, &[0x00]), [OK]);
}

#[test]
fn a_replicated_exchange_may_be_pipelined_and_split_anywhere() {
    let script = [sized(0x11, b"t/x"), repl_payload(PRIO, b"p"), vec![0x00]].concat();
    for at in 0..=script.len() {
        let mut server = server();
        let (_, d) = server.subscriber(&["t/x"]);
        let (peer, _) = server.login("peer", "pw");
        let mut out = server.request(peer, &script[..at]);
        out.extend(server.request(peer, &script[at..]));
        assert_eq!(out, [OK_WAITING, OK, OK], "split at {at}");
        assert_eq!(server.recv(d), pushed("t/x", b"p"), "split at {at}");
    }
}

#[test]
fn an_invalid_replicated_topic_is_err() {
    let mut server = server();
    server.subscriber(&["#"]);
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(server.request(peer, &sized(0x11, b"t/+")), [ERR]);
    assert_eq!(server.request(peer, &[0x00]), [OK]);
}

#[test]
fn an_oversized_replicated_payload_closes() {
    let limits = Limits {
        max_pub_size: 32,
        ..Limits::default()
    };
    let mut server = Server::new(limits, auth(ACL, &[("peer", "pw")], true));
    server.subscriber(&["t"]);
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(server.request(peer, &sized(0x11, b"t")), [OK_WAITING]);
    let mut head = vec![PRIO];
    head.extend_from_slice(&0u64.to_le_bytes());
    head.extend_from_slice(&le(33));
    server.send(peer, &head);
    assert!(server.closed(peer));
    server.assert_protocol_close(peer);
}

/// Our pipelined op: `12 PRIO TIMESTAMP LEN topic 00 payload`.
fn pipelined(prio: u8, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x12, prio];
    out.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
    out.extend_from_slice(&le(topic.len() + 1 + payload.len()));
    out.extend_from_slice(topic);
    out.push(0);
    out.extend_from_slice(payload);
    out
}

/// The pipelined op's capability probe: `LEN` 0.
fn probe() -> Vec<u8> {
    let mut out = vec![0x12, 0];
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&le(0));
    out
}

#[test]
fn the_probe_is_ok_for_a_replicator_and_err_access_otherwise() {
    let mut server = server();
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(server.request(peer, &probe()), [OK]);
    let (plain, _) = server.login("plain", "pw");
    assert_eq!(server.request(plain, &probe()), [ERR_ACCESS]);
    assert_eq!(server.request(plain, &[0x00]), [OK]);
}

#[test]
fn pipelined_messages_are_answered_in_order_and_delivered_locally() {
    let mut server = server();
    let (_, d) = server.subscriber(&["t/+"]);
    let (peer, _) = server.login("peer", "pw");
    let script = [
        pipelined(0x03, b"//t//x", b"one\0"),
        pipelined(PRIO, b"u", b"nobody"),
        pipelined(PRIO, b"t/y", b""),
        vec![0x00],
    ]
    .concat();
    assert_eq!(
        server.request(peer, &script),
        [OK, NOT_REQUIRED, OK, OK],
        "one reply per frame, in order"
    );
    let expected = [pushed_prio(0x03, "t/x", b"one\0"), pushed("t/y", b"")].concat();
    assert_eq!(server.recv(d), expected);
    assert_eq!(server.node.broker().counters().c_pub_messages, 2);
}

#[test]
fn a_pipelined_script_may_be_split_anywhere() {
    let script = [pipelined(PRIO, b"t/x", b"p"), pipelined(PRIO, b"t/x", b"q")].concat();
    for at in 0..=script.len() {
        let mut server = server();
        let (_, d) = server.subscriber(&["t/x"]);
        let (peer, _) = server.login("peer", "pw");
        let mut out = server.request(peer, &script[..at]);
        out.extend(server.request(peer, &script[at..]));
        assert_eq!(out, [OK, OK], "split at {at}");
        let expected = [pushed("t/x", b"p"), pushed("t/x", b"q")].concat();
        assert_eq!(server.recv(d), expected, "split at {at}");
    }
}

#[test]
fn a_pipelined_message_from_a_non_replicator_is_err_access() {
    let mut server = server();
    let (_, d) = server.subscriber(&["#"]);
    let (plain, _) = server.login("plain", "pw");
    assert_eq!(
        server.request(plain, &pipelined(PRIO, b"t", b"x")),
        [ERR_ACCESS]
    );
    assert_eq!(server.request(plain, &[0x00]), [OK]);
    assert!(server.recv(d).is_empty());
}

#[test]
fn a_pipelined_message_is_never_offered_onwards() {
    let mut server = server();
    server.node.broker_mut().cluster_mut().set_peers(["b"]);
    server
        .node
        .broker_mut()
        .cluster_mut()
        .peer_mut("b")
        .expect("b")
        .set_state(psrt_proto::cluster::LinkState::Up);
    server.subscriber(&["t"]);
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(server.request(peer, &pipelined(PRIO, b"t", b"x")), [OK]);
    let stats = server.node.broker().cluster().stats();
    assert_eq!((stats[0].queue_len, stats[0].dropped), (0, 0));
}

#[test]
fn a_too_deep_pipelined_topic_is_err_and_bad_topics_close() {
    let limits = Limits {
        max_topic_depth: 1,
        ..Limits::default()
    };
    let mut server = Server::new(limits, auth(ACL, &[("peer", "pw")], true));
    server.subscriber(&["#"]);
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(
        server.request(peer, &pipelined(PRIO, b"a/b/c", b"x")),
        [ERR]
    );
    assert_eq!(server.request(peer, &[0x00]), [OK]);
    for topic in [&b"t/+"[..], b"t/#", b"\xff", b"/"] {
        let (peer, _) = server.login("peer", "pw");
        assert!(
            server
                .request(peer, &pipelined(PRIO, topic, b"x"))
                .is_empty()
        );
        assert!(server.closed(peer), "{topic:?}");
        server.assert_protocol_close(peer);
    }
    let (peer, _) = server.login("peer", "pw");
    let mut no_separator = pipelined(PRIO, b"t", b"");
    no_separator.pop();
    no_separator[10..14].copy_from_slice(&le(1));
    assert!(server.request(peer, &no_separator).is_empty());
    server.assert_protocol_close(peer);
}

#[test]
fn an_oversized_pipelined_message_closes() {
    let limits = Limits {
        max_pub_size: 32,
        ..Limits::default()
    };
    let mut server = Server::new(limits, auth(ACL, &[("peer", "pw")], true));
    server.subscriber(&["t"]);
    let (peer, _) = server.login("peer", "pw");
    assert_eq!(server.request(peer, &pipelined(PRIO, b"t", &[7; 30])), [OK]);
    let frame = pipelined(PRIO, b"t", &[7; 31]);
    assert!(server.request(peer, &frame[..14]).is_empty());
    assert!(server.closed(peer));
    server.assert_protocol_close(peer);
}
