//! Greeting and login (PROTOCOL.md "Greeting and login"): every way a login
//! succeeds or is refused, with the exact bytes the server sends.

mod support;

use psrt_proto::Limits;
use psrt_proto::broker::{BrokerEvent, DenyReason, LoginDecision, Origin};
use psrt_proto::conn::{CloseReason, ConnConfig, Transport};
use psrt_proto::wire::status;
use support::*;

const ACL: &str = "
_: {sub: ['#'], pub: ['#']}
alice: {sub: ['#'], pub: ['#']}
bob: {sub: ['#'], pub: ['#']}
limited: {sub: ['x/#'], pub: ['x/#']}
";

fn server_with_users(allow_anonymous: bool) -> Server {
    let users = [
        ("alice", "secret"),
        ("limited", "pw"),
        ("nobody-in-acl", "pw"),
    ];
    Server::new(Limits::default(), auth(ACL, &users, allow_anonymous))
}

/// The denial reason the broker logged last.
fn last_denial(server: &mut Server) -> Option<DenyReason> {
    let mut last = None;
    while let Some(event) = server.node.broker_mut().poll_event() {
        if let BrokerEvent::LoginDenied { reason, .. } = event {
            last = Some(reason);
        }
    }
    last
}

#[test]
fn anonymous_login_gets_greeting_reply_and_a_fresh_token() {
    let mut server = Server::open();
    let c = server.connect();
    assert_eq!(server.request(c, &[0xEE, 0xAA, 0x00]), CONTROL_REPLY);
    let out = server.request(c, &[0x01, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(out.len(), 32, "only the token after the greeting reply");
    let (_, other) = server.anon();
    assert_ne!(out, other, "each session gets its own token");
    assert_eq!(server.node.broker().session_count(), 2);
}

#[test]
fn anonymous_login_refused_when_anonymous_is_off() {
    let mut server = server_with_users(false);
    let (c, out) = server.try_login(b"", b"");
    assert_eq!(out, CONTROL_REPLY, "no reply byte after the greeting reply");
    assert!(server.closed(c));
    assert_eq!(server.reason(c), Some(CloseReason::LoginDenied));
    assert_eq!(last_denial(&mut server), Some(DenyReason::AnonymousOff));
    assert_eq!(server.node.broker().session_count(), 0);
}

#[test]
fn wrong_password_closes_without_a_reply() {
    let mut server = server_with_users(true);
    let (c, out) = server.try_login(b"alice", b"wrong");
    assert_eq!(out, CONTROL_REPLY);
    assert_eq!(server.reason(c), Some(CloseReason::LoginDenied));
    assert_eq!(last_denial(&mut server), Some(DenyReason::WrongPassword));
}

#[test]
fn unknown_user_closes_without_a_reply() {
    let mut server = server_with_users(true);
    // bob has an ACL entry but no password.
    let (c, out) = server.try_login(b"bob", b"secret");
    assert_eq!(out, CONTROL_REPLY);
    assert_eq!(server.reason(c), Some(CloseReason::LoginDenied));
    assert_eq!(last_denial(&mut server), Some(DenyReason::UnknownUser));
}

#[test]
fn user_without_acl_entry_is_refused_before_any_password_check() {
    let mut server = server_with_users(true);
    server.node.set_manual_checks(true);
    let (c, out) = server.try_login(b"nobody-in-acl", b"pw");
    assert_eq!(out, CONTROL_REPLY);
    assert!(server.closed(c));
    assert_eq!(
        server.node.run_checks(server.now),
        0,
        "no bcrypt for a login without rights"
    );
    assert_eq!(last_denial(&mut server), Some(DenyReason::NoAclEntry));
}

#[test]
fn correct_password_logs_in_with_the_users_rights() {
    let mut server = server_with_users(false);
    let (c, _token) = server.login("limited", "pw");
    assert_eq!(server.request(c, &publish(b"x/1", b"")), [OK]);
    assert_eq!(server.request(c, &publish(b"y/1", b"")), [ERR_ACCESS]);
    assert_eq!(server.request(c, &subscribe(&["y"])), [ERR_ACCESS]);
}

#[test]
fn htpasswd_2y_and_2b_hashes_both_verify() {
    let entries = [("y", hash_2y("pw-y")), ("b", hash_2b("pw-b"))];
    assert!(entries[0].1.starts_with("$2y$04$"));
    assert!(entries[1].1.starts_with("$2b$04$"));
    let auth = psrt_proto::broker::AuthConfig {
        allow_anonymous: false,
        acl: acl("y: {}\nb: {}\n"),
        passwords: Some(passwords(&entries)),
        keys: None,
    };
    let mut server = Server::new(Limits::default(), auth);
    server.login("y", "pw-y");
    server.login("b", "pw-b");
    let (c, _) = server.try_login(b"y", b"pw-b");
    assert!(server.closed(c));
}

#[test]
fn a_verified_password_is_cached_and_not_checked_again() {
    let mut server = server_with_users(false);
    server.node.set_manual_checks(true);
    let (first, out) = server.try_login(b"alice", b"secret");
    assert_eq!(out, CONTROL_REPLY, "token waits for the password check");
    assert!(!server.closed(first));
    assert_eq!(server.node.run_checks(server.now), 1);
    assert_eq!(server.recv(first).len(), 32);

    let (second, out) = server.try_login(b"alice", b"secret");
    assert_eq!(out.len(), 36, "token at once, from the cache");
    assert!(!server.closed(second));
    assert_eq!(server.node.run_checks(server.now), 0);

    // Another password is not the cached one: it needs a check, and fails.
    let (third, out) = server.try_login(b"alice", b"other");
    assert_eq!(out, CONTROL_REPLY);
    assert!(!server.closed(third), "waiting for the check");
    assert_eq!(server.node.run_checks(server.now), 1);
    assert!(server.closed(third));
    assert!(server.recv(third).is_empty());
}

#[test]
fn a_login_waiting_for_its_check_that_disconnects_frees_the_check_slot() {
    let limits = Limits {
        max_pending_checks: 1,
        ..Limits::default()
    };
    let mut server = Server::new(limits, auth(ACL, &[("alice", "secret")], false));
    server.node.set_manual_checks(true);
    let (waiting, _) = server.try_login(b"alice", b"secret");
    let (busy, out) = server.try_login(b"alice", b"secret");
    assert_eq!(out, CONTROL_REPLY);
    assert!(server.closed(busy), "one check at most may wait");
    assert_eq!(last_denial(&mut server), Some(DenyReason::Busy));
    server.node.disconnect(waiting);
    assert_eq!(server.node.run_checks(server.now), 0);
    let (again, _) = server.try_login(b"alice", b"secret");
    assert!(
        !server.closed(again),
        "the abandoned check gave its slot back"
    );
}

#[test]
fn unix_socket_login_skips_the_password_and_has_full_rights() {
    let mut server = server_with_users(false);
    server.node.set_manual_checks(true);
    let (c, out) = server.try_login_on(Transport::Unix, b"limited", b"not-the-password");
    assert_eq!(out.len(), 36);
    assert_eq!(
        server.node.run_checks(server.now),
        0,
        "no password check on a Unix socket"
    );
    assert_eq!(server.request(c, &publish(b"y/1", b"")), [OK]);
    assert_eq!(server.request(c, &subscribe(&["#"])), [OK]);
    // Even a login unknown everywhere.
    let (c, out) = server.try_login_on(Transport::Unix, b"ghost", b"");
    assert_eq!(out.len(), 36);
    assert!(!server.closed(c));
}

#[test]
fn login_frame_longer_than_1024_closes_as_soon_as_its_length_arrives() {
    let mut server = Server::open();
    let c = server.connect();
    server.send(c, &CONTROL_GREETING);
    server.send(c, &le(1025));
    assert!(server.closed(c));
    server.assert_protocol_close(c);
}

#[test]
fn login_frame_of_exactly_1024_bytes_is_accepted() {
    let auth = auth("_: {}\n", &[], true);
    let mut server = Server::new(Limits::default(), auth);
    let c = server.connect();
    server.send(c, &CONTROL_GREETING);
    // An anonymous login padded to the limit (an empty login is anonymous
    // whatever the password).
    let frame = login_frame(b"", &[b'p'; 1023]);
    assert_eq!(frame.len(), 4 + 1024);
    server.send(c, &frame);
    assert_eq!(server.recv(c).len(), 36);
}

#[test]
fn login_without_separator_is_a_protocol_error() {
    let mut server = Server::open();
    let c = server.connect();
    server.send(c, &CONTROL_GREETING);
    server.send(c, &[3, 0, 0, 0, b'a', b'b', b'c']);
    server.assert_protocol_close(c);
}

#[test]
fn login_that_is_not_utf8_is_refused() {
    let mut server = server_with_users(true);
    let (c, out) = server.try_login(b"\xFF\xFE", b"pw");
    assert_eq!(out, CONTROL_REPLY);
    assert_eq!(server.reason(c), Some(CloseReason::LoginDenied));
    assert_eq!(last_denial(&mut server), Some(DenyReason::BadLogin));
}

#[test]
fn bad_greeting_closes_without_a_reply() {
    for greeting in [
        &[0x16, 0x03, 0x01][..],
        &[0xEE, 0xAC, 0x00],
        &[0xEE, 0xAA, 0x02],
    ] {
        let mut server = Server::open();
        let c = server.connect();
        assert!(server.request(c, greeting).is_empty());
        server.assert_protocol_close(c);
    }
}

#[test]
fn plain_tcp_refused_when_plain_is_not_allowed_but_unix_still_works() {
    let config = ConnConfig {
        tls: None,
        allow_no_tls: false,
        tls_client_cn_login: false,
    };
    let mut server = Server::with_config(
        Limits::default(),
        psrt_proto::broker::AuthConfig::open(),
        config,
    );
    let c = server.connect();
    assert!(server.request(c, &CONTROL_GREETING).is_empty());
    assert_eq!(server.reason(c), Some(CloseReason::TlsRequired));
    let (u, out) = server.try_login_on(Transport::Unix, b"", b"");
    assert_eq!(out.len(), 36);
    assert!(!server.closed(u));
}

#[test]
fn the_max_sessions_limit_refuses_further_logins() {
    let limits = Limits {
        max_sessions: 2,
        ..Limits::default()
    };
    let mut server = Server::new(limits, psrt_proto::broker::AuthConfig::open());
    let (a, _) = server.anon();
    server.anon();
    let (c, out) = server.try_login(b"", b"");
    assert_eq!(out, CONTROL_REPLY);
    assert!(server.closed(c));
    assert_eq!(last_denial(&mut server), Some(DenyReason::TooManySessions));
    server.node.disconnect(a);
    server.anon();
}

#[test]
fn certificate_login_is_the_common_name_with_its_acl_rights() {
    let mut server = server_with_users(false);
    let now = start();
    let broker = server.node.broker_mut();
    let origin = || Origin {
        unix: false,
        peer: "192.0.2.7:4000".to_owned(),
    };
    // The login sent is ignored; the name needs an ACL entry, no password.
    let LoginDecision::Granted(limited, _) =
        broker.login_by_certificate(Some("limited"), b"alice", origin())
    else {
        panic!("the certificate's name logs in");
    };
    let publish = |broker: &mut psrt_proto::broker::Broker, topic: &[u8]| {
        broker
            .publish(
                limited,
                &psrt_proto::wire::request::Publish::new(0, topic, b"v"),
                now,
            )
            .expect("a reply")
    };
    assert_eq!(publish(broker, b"x/1"), status::OK);
    assert_eq!(publish(broker, b"y/1"), status::ERR_ACCESS, "limited's ACL");
    let denied = |broker: &mut psrt_proto::broker::Broker, name: Option<&str>| {
        let decision = broker.login_by_certificate(name, b"offered", origin());
        assert!(matches!(decision, LoginDecision::Denied(_)), "{name:?}");
        std::iter::from_fn(|| broker.poll_event())
            .filter(|event| matches!(event, BrokerEvent::LoginDenied { .. }))
            .last()
            .expect("a login denial")
    };
    let event = denied(broker, None);
    assert!(
        matches!(
            event,
            BrokerEvent::LoginDenied {
                reason: DenyReason::NoCertName,
                ..
            }
        ),
        "{event:?}"
    );
    assert!(
        event
            .to_string()
            .contains("login=\"offered\" peer=192.0.2.7:4000 reason: the client certificate has no usable common name"),
        "{event}"
    );
    let event = denied(broker, Some("nobody-in-acl"));
    assert!(
        matches!(
            event,
            BrokerEvent::LoginDenied {
                reason: DenyReason::NoAclEntry,
                ..
            }
        ),
        "{event:?}"
    );
    // A reload without a password file keeps the certified session's
    // rights: the certificate, not a password, is its credential.
    broker.reload(auth(ACL, &[], false));
    assert_eq!(publish(broker, b"x/2"), status::OK, "rights kept on reload");
}
