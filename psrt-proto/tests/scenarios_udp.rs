//! UDP publish (PROTOCOL.md "UDP publish"): plain and sealed datagrams,
//! acknowledgements, and every refusal.

mod support;

use psrt_proto::Limits;
use psrt_proto::broker::{AuthConfig, UdpOutcome};
use psrt_proto::udp::{Cipher, encode_plain, encode_sealed};
use support::*;

const ACL: &str = "
_: {sub: ['#'], pub: ['open/#']}
alice: {sub: ['#'], pub: ['a/#']}
";
const ALICE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const ANON_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn key(hex_text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex_text[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

fn ack(code: u8) -> Option<[u8; 5]> {
    Some([0xEE, 0xAA, 0x01, 0x00, code])
}

/// A server with alice (password and key) and an anonymous key, plus a
/// subscriber to everything.
fn server() -> (Server, psrt_proto::node::ConnId) {
    let mut auth = auth(ACL, &[("alice", "pw")], true);
    auth.keys = Some(keys(&format!("alice: {ALICE_KEY}\n_: {ANON_KEY}\n")));
    let mut server = Server::new(Limits::default(), auth);
    let (_, d) = server.subscriber(&["#"]);
    (server, d)
}

fn plain(login: &str, password: &[u8], ack: bool, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_plain(&mut out, login, password, ack, PRIO, topic, payload).expect("encodes");
    out
}

fn sealed(
    login: &str,
    key_hex: &str,
    cipher: Cipher,
    ack: bool,
    topic: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let nonce = [7u8; 12];
    encode_sealed(
        &mut out,
        login,
        &key(key_hex),
        cipher,
        nonce,
        ack,
        PRIO,
        topic,
        payload,
    )
    .expect("encodes");
    out
}

#[test]
fn plain_anonymous_with_ack_is_acked_and_delivered() {
    let (mut server, d) = server();
    // EE AA 01 00 | ENC 00 | login "" 00 | password "" 00 | OP 01 PRIO topic 00 payload
    let mut datagram = vec![0xEE, 0xAA, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, PRIO];
    datagram.extend_from_slice(b"open/x\0data");
    assert_eq!(server.node.datagram(&datagram, server.now), ack(OK));
    assert_eq!(server.recv(d), pushed("open/x", b"data"));
    assert_eq!(
        datagram,
        plain("", b"", true, "open/x", b"data"),
        "the encoder agrees"
    );
}

#[test]
fn plain_without_ack_is_delivered_silently() {
    let (mut server, d) = server();
    let datagram = plain("", b"", false, "open/y", b"v");
    assert_eq!(datagram[7], 0x21);
    assert_eq!(server.node.datagram(&datagram, server.now), None);
    assert_eq!(server.recv(d), pushed("open/y", b"v"));
}

#[test]
fn plain_user_password_is_checked_once_then_cached() {
    let (mut server, d) = server();
    let datagram = plain("alice", b"pw", true, "a/1", b"");
    assert!(matches!(
        server
            .node
            .broker_mut()
            .handle_datagram(&datagram, &"127.0.0.1:1", server.now),
        UdpOutcome::Verify(_)
    ));
    assert_eq!(server.node.datagram(&datagram, server.now), ack(OK));
    assert!(
        matches!(server.node.broker_mut().handle_datagram(&datagram, &"127.0.0.1:1", server.now), UdpOutcome::Reply(a) if a[4] == OK),
        "the verified password is cached: no second bcrypt"
    );
    assert_eq!(
        server.recv(d),
        [pushed("a/1", b""), pushed("a/1", b"")].concat()
    );
}

#[test]
fn wrong_password_is_err_access_and_not_delivered() {
    let (mut server, d) = server();
    assert_eq!(
        server
            .node
            .datagram(&plain("alice", b"nope", true, "a/1", b""), server.now),
        ack(ERR_ACCESS)
    );
    assert_eq!(
        server
            .node
            .datagram(&plain("mallory", b"pw", true, "a/1", b""), server.now),
        ack(ERR_ACCESS)
    );
    assert_eq!(
        server
            .node
            .datagram(&plain("", b"pw", true, "open/1", b""), server.now),
        ack(ERR_ACCESS)
    );
    assert_eq!(
        server
            .node
            .datagram(&plain("alice", b"nope", false, "a/1", b""), server.now),
        None
    );
    assert!(server.recv(d).is_empty());
}

#[test]
fn anonymous_datagrams_are_refused_when_anonymous_is_off() {
    let mut auth = auth(ACL, &[], false);
    auth.keys = None;
    let mut server = Server::new(Limits::default(), auth);
    assert_eq!(
        server
            .node
            .datagram(&plain("", b"", true, "open/1", b""), server.now),
        ack(ERR_ACCESS)
    );
}

#[test]
fn acl_denial_is_err_access() {
    let (mut server, d) = server();
    assert_eq!(
        server
            .node
            .datagram(&plain("", b"", true, "a/1", b""), server.now),
        ack(ERR_ACCESS)
    );
    assert_eq!(
        server
            .node
            .datagram(&plain("alice", b"pw", true, "open/1", b""), server.now),
        ack(ERR_ACCESS)
    );
    let sealed = sealed("alice", ALICE_KEY, Cipher::Aes256Gcm, true, "open/1", b"");
    assert_eq!(server.node.datagram(&sealed, server.now), ack(ERR_ACCESS));
    assert!(server.recv(d).is_empty());
}

#[test]
fn topic_errors_are_err() {
    let (mut server, d) = server();
    let deep = format!("open/{}", vec!["l"; 40].join("/"));
    assert_eq!(
        server
            .node
            .datagram(&plain("", b"", true, &deep, b""), server.now),
        ack(ERR)
    );
    assert_eq!(
        server
            .node
            .datagram(&plain("", b"", true, "open/+", b""), server.now),
        ack(ERR)
    );
    assert_eq!(
        server
            .node
            .datagram(&plain("", b"", true, "", b""), server.now),
        ack(ERR)
    );
    assert!(server.recv(d).is_empty());
}

#[test]
fn aes_128_and_aes_256_sealed_datagrams_are_acked_and_delivered() {
    let (mut server, d) = server();
    for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
        let datagram = sealed("alice", ALICE_KEY, cipher, true, "a/s", b"secret");
        assert_eq!(datagram[4], cipher.enc_byte());
        assert_eq!(
            server.node.datagram(&datagram, server.now),
            ack(OK),
            "{cipher:?}"
        );
        let silent = sealed("alice", ALICE_KEY, cipher, false, "a/s", b"quiet");
        assert_eq!(server.node.datagram(&silent, server.now), None);
        assert_eq!(
            server.recv(d),
            [pushed("a/s", b"secret"), pushed("a/s", b"quiet")].concat()
        );
    }
    let anonymous = sealed("", ANON_KEY, Cipher::Aes256Gcm, true, "open/s", b"x");
    assert_eq!(
        server.node.datagram(&anonymous, server.now),
        ack(OK),
        "the `_` key"
    );
    assert_eq!(server.recv(d), pushed("open/s", b"x"));
}

#[test]
fn aes_128_uses_the_first_half_of_the_key() {
    let (mut server, d) = server();
    // Same first 16 bytes, different rest: still alice's AES-128 key.
    let other_tail = format!("{}{}", &ALICE_KEY[..32], "ab".repeat(16));
    let datagram = sealed("alice", &other_tail, Cipher::Aes128Gcm, true, "a/k", b"");
    assert_eq!(server.node.datagram(&datagram, server.now), ack(OK));
    let datagram = sealed("alice", &other_tail, Cipher::Aes256Gcm, true, "a/k", b"");
    assert_eq!(server.node.datagram(&datagram, server.now), None);
    assert_eq!(server.recv(d), pushed("a/k", b""));
}

#[test]
fn tampered_or_wrongly_keyed_sealed_datagrams_get_no_answer() {
    let (mut server, d) = server();
    let good = sealed(
        "alice",
        ALICE_KEY,
        Cipher::Aes256Gcm,
        true,
        "a/t",
        b"payload",
    );
    for at in [good.len() - 1, good.len() - 20, 12] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert_eq!(
            server.node.datagram(&bad, server.now),
            None,
            "byte {at} flipped"
        );
    }
    let wrong_key = sealed("alice", ANON_KEY, Cipher::Aes256Gcm, true, "a/t", b"");
    assert_eq!(server.node.datagram(&wrong_key, server.now), None);
    let no_key = sealed("mallory", ALICE_KEY, Cipher::Aes256Gcm, true, "a/t", b"");
    assert_eq!(server.node.datagram(&no_key, server.now), None);
    assert!(server.recv(d).is_empty());
}

#[test]
fn broken_datagrams_get_no_answer() {
    let (mut server, d) = server();
    let good = plain("", b"", true, "open/b", b"");
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xEE, 0xAA, 0x01, 0x00],
        [&[0xEE, 0xAB][..], &good[2..]].concat(),
        [&[0xEE, 0xAA, 0x02, 0x00][..], &good[4..]].concat(),
        [&good[..4], &[0x09], &good[5..]].concat(),
        vec![0xEE, 0xAA, 0x01, 0x00, 0x00, 0x00, 0x00],
        vec![
            0xEE, 0xAA, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, PRIO, b't', 0,
        ],
        vec![0xEE, 0xAA, 0x01, 0x00, 0x00, b'a', b'b'],
    ];
    for case in &cases {
        assert_eq!(server.node.datagram(case, server.now), None, "{case:02X?}");
    }
    let mut huge = plain("", b"", true, "open/b", &[0; 4096]);
    assert_eq!(
        server.node.datagram(&huge, server.now),
        None,
        "larger than udp_frame_size"
    );
    huge.truncate(4096);
    assert_eq!(
        server.node.datagram(&huge, server.now),
        ack(OK),
        "exactly udp_frame_size"
    );
    assert_eq!(server.recv(d), pushed("open/b", &[0; 4096 - 16]));
}

#[test]
fn an_ack_is_sent_for_a_readable_op_with_a_broken_rest() {
    let mut server = Server::new(Limits::default(), AuthConfig::open());
    // OP 01 asks for an ack, but no 00 ends the topic.
    let datagram = vec![0xEE, 0xAA, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, PRIO, b't'];
    assert_eq!(server.node.datagram(&datagram, server.now), ack(ERR));
}

#[test]
fn a_key_reload_applies_to_the_next_datagram() {
    let (mut server, d) = server();
    let alice = sealed("alice", ALICE_KEY, Cipher::Aes256Gcm, true, "a/r", b"1");
    let bob = sealed("bob", ANON_KEY, Cipher::Aes256Gcm, true, "a/r", b"2");
    assert_eq!(server.node.datagram(&alice, server.now), ack(OK));
    assert_eq!(server.node.datagram(&bob, server.now), None);

    // alice's key is withdrawn and bob gets one (and the right to publish).
    let mut rules = auth(&format!("{ACL}bob: {{pub: ['a/#']}}\n"), &[], true);
    rules.keys = Some(keys(&format!("bob: {ANON_KEY}\n")));
    server.node.broker_mut().reload(rules);
    assert_eq!(server.node.datagram(&alice, server.now), None);
    assert_eq!(server.node.datagram(&bob, server.now), ack(OK));
    assert_eq!(
        server.recv(d),
        [pushed("a/r", b"1"), pushed("a/r", b"2")].concat()
    );
}
