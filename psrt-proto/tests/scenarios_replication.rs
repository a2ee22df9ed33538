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
