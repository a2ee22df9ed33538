//! Publish, subscribe and delivery through the data socket.

use super::{assert_nothing_before_sentinel, subscriber};
use crate::Start;
use crate::client::{OK, Session, publish_frame};
use crate::fixture::{Server, spec};

/// The pushed frame is exactly `01 PRIO LEN topic 00 payload`, for binary
/// and empty payloads.
pub fn publish_delivered_exactly(start: Start) {
    let server = Server::start(start, spec());
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["a/b"]), OK, "subscribe");
    let mut publisher = Session::anonymous(server.tcp());
    let payload = [0x00, 0xFF, 0x01, b'x', 0x00];
    assert_eq!(publisher.publish("a/b", &payload), OK, "publish");
    let expected = publish_frame(b"a/b", &payload);
    data.conn.expect(&expected, "pushed frame bytes");
    assert_eq!(publisher.publish("a/b", b""), OK, "publish empty");
    data.conn
        .expect(&publish_frame(b"a/b", b""), "empty payload frame");
}

/// `//a//b` is delivered as `a/b`; subscriptions are normalised too.
pub fn topics_are_normalised(start: Start) {
    let server = Server::start(start, spec());
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["//x//y"]), OK, "subscribe //x//y");
    assert_eq!(sub.subscribe(&["a/b"]), OK, "subscribe a/b");
    let mut publisher = Session::anonymous(server.tcp());
    assert_eq!(publisher.publish("//a//b", b"1"), OK, "publish //a//b");
    data.expect("a/b", b"1");
    assert_eq!(publisher.publish("x/y", b"2"), OK, "publish x/y");
    data.expect("x/y", b"2");
    assert_eq!(publisher.publish("/x///y", b"3"), OK, "publish /x///y");
    data.expect("x/y", b"3");
}

/// `+` matches one level, an empty one too, and never two.
pub fn plus_matches_empty_level(start: Start) {
    let server = Server::start(start, spec());
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["b/+"]), OK, "subscribe b/+");
    let mut publisher = Session::anonymous(server.tcp());
    assert_eq!(publisher.publish("b/", b"empty"), OK, "publish b/");
    data.expect("b/", b"empty");
    assert_eq!(publisher.publish("b/c/d", b"deep"), OK, "publish b/c/d");
    assert_eq!(publisher.publish("b", b"parent"), OK, "publish b");
    assert_eq!(publisher.publish("b/c", b"one"), OK, "publish b/c");
    data.expect("b/c", b"one");
    assert_nothing_before_sentinel(&mut sub, &mut data, &mut publisher);
}

/// `a/#` matches `a/b` and `a/b/c` but not `a`; `#` matches everything.
pub fn hash_does_not_match_parent(start: Start) {
    let server = Server::start(start, spec());
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["a/#"]), OK, "subscribe a/#");
    let mut publisher = Session::anonymous(server.tcp());
    assert_eq!(publisher.publish("a", b"parent"), OK, "publish a");
    assert_eq!(publisher.publish("a/b/c", b"deep"), OK, "publish a/b/c");
    data.expect("a/b/c", b"deep");
    assert_nothing_before_sentinel(&mut sub, &mut data, &mut publisher);
    let (mut all, mut all_data) = subscriber(&server);
    assert_eq!(all.subscribe(&["#"]), OK, "subscribe #");
    assert_eq!(publisher.publish("a", b"top"), OK, "publish a");
    all_data.expect("a", b"top");
}

/// Several matching subscriptions of one client give one delivery.
pub fn overlapping_filters_deliver_once(start: Start) {
    let server = Server::start(start, spec());
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(
        sub.subscribe(&["a/b", "a/+", "a/#", "+/b", "#"]),
        OK,
        "subscribe overlapping"
    );
    let mut publisher = Session::anonymous(server.tcp());
    assert_eq!(publisher.publish("a/b", b"once"), OK, "publish");
    data.expect("a/b", b"once");
    assert_nothing_before_sentinel(&mut sub, &mut data, &mut publisher);
}

/// A publisher subscribed to its own topic receives its own messages.
pub fn publisher_receives_own_message(start: Start) {
    let server = Server::start(start, spec());
    let (mut session, mut data) = subscriber(&server);
    assert_eq!(session.subscribe(&["me/+"]), OK, "subscribe");
    assert_eq!(session.publish("me/too", b"echo"), OK, "publish");
    data.expect("me/too", b"echo");
}
