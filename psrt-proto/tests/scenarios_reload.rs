//! Reloading the password, ACL and key files (PROTOCOL.md "Files", and the
//! fixed upstream weakness: a reload governs live sessions' next
//! operations).

mod support;

use psrt_proto::Limits;
use psrt_proto::conn::Transport;
use support::*;

const BEFORE: &str = "
alice: {sub: ['#'], pub: ['#']}
bob: {sub: ['#'], pub: ['#']}
_: {sub: ['#'], pub: ['#']}
";

fn server() -> Server {
    Server::new(
        Limits::default(),
        auth(BEFORE, &[("alice", "a"), ("bob", "b")], true),
    )
}

#[test]
fn a_removed_user_can_no_longer_publish_or_subscribe_and_stops_receiving() {
    let mut server = server();
    let (alice, token) = server.login("alice", "a");
    let alice_data = server.data(token);
    assert_eq!(server.request(alice, &subscribe(&["news/#", "x"])), [OK]);
    let (_, bob_data) = server.subscriber(&["news/#"]);
    let (bob, _) = server.login("bob", "b");
    assert_eq!(server.node.broker().subscription_count(), 3);

    let after = "bob: {sub: ['#'], pub: ['#']}\n_: {sub: ['#'], pub: ['#']}\n";
    server
        .node
        .broker_mut()
        .reload(auth(after, &[("bob", "b")], true));

    assert_eq!(
        server.node.broker().subscription_count(),
        1,
        "alice's filters are gone"
    );
    assert_eq!(server.request(bob, &publish(b"news/1", b"n")), [OK]);
    assert!(
        server.recv(alice_data).is_empty(),
        "no delivery on a forbidden subscription"
    );
    assert_eq!(server.recv(bob_data), pushed("news/1", b"n"));
    assert_eq!(
        server.request(alice, &publish(b"news/2", b"")),
        [ERR_ACCESS]
    );
    assert_eq!(server.request(alice, &subscribe(&["news/#"])), [ERR_ACCESS]);
    let (c, out) = server.try_login(b"alice", b"a");
    assert_eq!(out, CONTROL_REPLY, "alice cannot log in again");
    assert!(server.closed(c));
}

#[test]
fn narrowed_rights_drop_only_the_subscriptions_no_longer_allowed() {
    let mut server = server();
    let (alice, token) = server.login("alice", "a");
    let d = server.data(token);
    assert_eq!(
        server.request(alice, &subscribe(&["a/#", "a/b", "c"])),
        [OK]
    );
    let after = "alice: {sub: ['a/b', 'c'], pub: ['a/b']}\n_: {sub: ['#'], pub: ['#']}\n";
    server
        .node
        .broker_mut()
        .reload(auth(after, &[("alice", "a")], true));
    assert_eq!(server.node.broker().subscription_count(), 2);
    let (p, _) = server.anon();
    for topic in ["a/x", "a/b", "c"] {
        assert_eq!(server.request(p, &publish(topic.as_bytes(), b"")), [OK]);
    }
    assert_eq!(
        server.recv(d),
        [pushed("a/b", b""), pushed("c", b"")].concat()
    );
    assert_eq!(server.request(alice, &publish(b"a/b", b"")), [OK]);
    assert_eq!(server.request(alice, &publish(b"c", b"")), [ERR_ACCESS]);
}

#[test]
fn a_changed_password_invalidates_the_cached_one() {
    let mut server = server();
    server.node.set_manual_checks(true);
    let (_, out) = server.try_login(b"alice", b"a");
    assert_eq!(out, CONTROL_REPLY);
    assert_eq!(server.node.run_checks(server.now), 1);
    server
        .node
        .broker_mut()
        .reload(auth(BEFORE, &[("alice", "new"), ("bob", "b")], true));
    let (c, _) = server.try_login(b"alice", b"a");
    assert_eq!(
        server.node.run_checks(server.now),
        1,
        "checked again, not taken from the cache"
    );
    assert!(server.closed(c));
    let (c, _) = server.try_login(b"alice", b"new");
    assert_eq!(server.node.run_checks(server.now), 1);
    assert!(!server.closed(c));
}

#[test]
fn unix_socket_sessions_keep_full_rights_across_a_reload() {
    let mut server = server();
    let (c, out) = server.try_login_on(Transport::Unix, b"alice", b"");
    assert_eq!(out.len(), 36);
    assert_eq!(server.request(c, &subscribe(&["#"])), [OK]);
    server.node.broker_mut().reload(auth("_: {}\n", &[], false));
    assert_eq!(server.node.broker().subscription_count(), 1);
    assert_eq!(server.request(c, &publish(b"any", b"")), [OK]);
}

#[test]
fn turning_anonymous_access_off_takes_rights_from_anonymous_sessions() {
    let mut server = server();
    let (c, token) = server.anon();
    let d = server.data(token);
    assert_eq!(server.request(c, &subscribe(&["t"])), [OK]);
    server
        .node
        .broker_mut()
        .reload(auth(BEFORE, &[("alice", "a"), ("bob", "b")], false));
    assert_eq!(server.node.broker().subscription_count(), 0);
    assert_eq!(server.request(c, &publish(b"t", b"")), [ERR_ACCESS]);
    assert!(server.recv(d).is_empty());
}

#[test]
fn a_login_in_progress_during_a_reload_is_decided_by_the_new_rules() {
    let mut server = server();
    server.node.set_manual_checks(true);
    let (c, _) = server.try_login(b"alice", b"a");
    server
        .node
        .broker_mut()
        .reload(auth("bob: {}\n", &[("alice", "a"), ("bob", "b")], true));
    assert_eq!(server.node.run_checks(server.now), 1);
    assert!(
        server.closed(c),
        "alice lost her ACL entry while bcrypt ran"
    );
}

#[test]
fn a_user_removed_from_the_password_file_only_also_loses_their_rights() {
    let mut server = server();
    let (alice, _) = server.login("alice", "a");
    assert_eq!(server.request(alice, &subscribe(&["t"])), [OK]);
    server
        .node
        .broker_mut()
        .reload(auth(BEFORE, &[("bob", "b")], true));
    assert_eq!(server.node.broker().subscription_count(), 0);
    assert_eq!(server.request(alice, &publish(b"t", b"")), [ERR_ACCESS]);
}

#[test]
fn a_reload_governs_the_next_publish_to_the_same_topic() {
    let mut server = server();
    let (_, d) = server.subscriber(&["a/#"]);
    let (alice, _) = server.login("alice", "a");
    assert_eq!(server.request(alice, &publish(b"a/x", b"1")), [OK]);
    let after = "alice: {sub: ['#'], pub: ['b/#']}\n_: {sub: ['#'], pub: ['#']}\n";
    server
        .node
        .broker_mut()
        .reload(auth(after, &[("alice", "a")], true));
    assert_eq!(server.request(alice, &publish(b"a/x", b"2")), [ERR_ACCESS]);
    assert_eq!(server.request(alice, &publish(b"a/x", b"3")), [ERR_ACCESS]);
    assert_eq!(server.recv(d), pushed("a/x", b"1"));
}
