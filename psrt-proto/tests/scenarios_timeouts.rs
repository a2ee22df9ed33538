//! Keep-alive and stall limits (PROTOCOL.md "Keep-alive"): idle control
//! sockets, slowloris senders, stalled logins, and TLS asked of a server
//! without TLS.

mod support;

use std::time::Duration;

use psrt_proto::Limits;
use psrt_proto::conn::CloseReason;
use support::*;

#[test]
fn an_idle_control_socket_closes_after_the_timeout() {
    let mut server = Server::open();
    let (c, _) = server.anon();
    server.at(ms(4999));
    assert!(!server.closed(c));
    server.at(ms(5000));
    assert!(server.closed(c));
    assert_eq!(server.reason(c), Some(CloseReason::Timeout));
    assert!(server.recv(c).is_empty(), "closed without a reply");
    server.assert_baseline();
}

#[test]
fn nops_in_time_keep_the_socket_open() {
    let mut server = Server::open();
    let (c, _) = server.anon();
    for second in 1..=30 {
        server.at(Duration::from_secs(second * 4));
        assert!(!server.closed(c), "at {}s", second * 4);
        assert_eq!(server.request(c, &[0x00]), [OK]);
    }
    server.at(Duration::from_secs(30 * 4 + 5));
    assert_eq!(server.reason(c), Some(CloseReason::Timeout));
}

#[test]
fn the_timeout_after_login_starts_at_the_login() {
    let mut server = Server::open();
    let c = server.connect();
    server.send(c, &CONTROL_GREETING);
    server.at(ms(4000));
    server.send(c, &login_frame(b"", b""));
    assert_eq!(server.recv(c).len(), 36);
    server.at(ms(8999));
    assert!(!server.closed(c), "a full timeout for the first operation");
    server.at(ms(9000));
    assert_eq!(server.reason(c), Some(CloseReason::Timeout));
}

#[test]
fn an_operation_trickling_in_slower_than_the_timeout_closes() {
    let mut server = Server::open();
    let (c, _) = server.anon();
    let frame = publish(b"slow/topic", b"payload");
    // One byte per second: the operation is never complete within 5 s.
    for (second, byte) in (1..).zip(&frame) {
        server.at(Duration::from_secs(second));
        if server.closed(c) {
            break;
        }
        server.send(c, std::slice::from_ref(byte));
    }
    assert_eq!(server.reason(c), Some(CloseReason::Timeout));
    assert!(server.recv(c).is_empty());
    assert_eq!(server.node.broker().counters().c_pub_messages, 0);
}

#[test]
fn a_partial_operation_completed_in_time_is_fine() {
    let mut server = Server::open();
    let (c, _) = server.anon();
    let frame = publish(b"t", b"v");
    server.at(ms(1000));
    server.send(c, &frame[..3]);
    server.at(ms(4900));
    server.send(c, &frame[3..]);
    assert_eq!(server.recv(c), [OK]);
    server.at(ms(9800));
    assert!(!server.closed(c), "the completed operation reset the timer");
}

#[test]
fn a_stall_before_login_closes() {
    // Nothing at all, the greeting only, and a partial login.
    let partial_login = [&CONTROL_GREETING[..], &[9, 0, 0, 0, b'a']].concat();
    for sent in [&[][..], &CONTROL_GREETING[..], &partial_login[..]] {
        let mut server = Server::open();
        let c = server.connect();
        server.send(c, sent);
        server.at(ms(4999));
        assert!(!server.closed(c));
        server.at(ms(5000));
        assert_eq!(
            server.reason(c),
            Some(CloseReason::Timeout),
            "after {sent:02X?}"
        );
        assert_eq!(server.node.broker().session_count(), 0);
    }
}

#[test]
fn a_login_waiting_for_its_password_check_is_not_timed_out() {
    let mut server = Server::new(
        Limits::default(),
        auth("alice: {}\n", &[("alice", "pw")], false),
    );
    server.node.set_manual_checks(true);
    let (c, out) = server.try_login(b"alice", b"pw");
    assert_eq!(out, CONTROL_REPLY);
    server.at(Duration::from_secs(30));
    assert!(!server.closed(c), "bcrypt may be slow on a busy pool");
    assert_eq!(server.node.run_checks(server.now), 1);
    assert_eq!(server.recv(c).len(), 32);
    server.at(Duration::from_secs(34));
    assert!(!server.closed(c), "a fresh timeout from the login");
    server.at(Duration::from_secs(35));
    assert_eq!(server.reason(c), Some(CloseReason::Timeout));
}

#[test]
fn a_tls_greeting_without_tls_configured_closes_without_a_reply() {
    for greeting in [[0xEE, 0xAA, 0x01], [0xEE, 0xAB, 0x01]] {
        let mut server = Server::open();
        let c = server.connect();
        assert!(server.request(c, &greeting).is_empty());
        assert!(server.closed(c));
        assert!(matches!(server.reason(c), Some(CloseReason::Tls(_))));
    }
}

#[test]
fn a_fractional_timeout_is_honoured() {
    let limits = Limits {
        timeout: ms(1500),
        ..Limits::default()
    };
    let mut server = Server::new(limits, psrt_proto::broker::AuthConfig::open());
    let (c, _) = server.anon();
    server.at(ms(1499));
    assert!(!server.closed(c));
    server.at(ms(1500));
    assert!(server.closed(c));
}
