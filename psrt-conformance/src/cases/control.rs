//! Control-socket operations: ACL answers, protocol errors, pipelining,
//! bulk requests, keep-alive and replication.

use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{SENTINEL, assert_nothing_before_sentinel, subscriber};
use crate::Start;
use crate::client::{
    ERR, ERR_ACCESS, IO_TIMEOUT, NOT_REQUIRED, OK, OK_WAITING, PRIO, Session, publish_frame,
    topics_frame, with_len,
};
use crate::fixture::{Server, auth, spec};

/// How fast a protocol error must close the connection: well under the
/// keep-alive timeout, so the close is not just the idle timer.
const PROMPT: Duration = Duration::from_secs(2);

/// Sends `request` on a fresh anonymous session and asserts the server
/// closes it promptly without answering.
fn assert_closes(server: &Server, request: &[u8], what: &str) {
    let mut session = Session::anonymous(server.tcp());
    session.control.send(request);
    session.control.expect_closed(PROMPT, what);
}

/// ERR_ACCESS for publish and subscribe outside the ACL; the connection
/// stays usable.
pub fn acl_denies_publish_and_subscribe(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, "_: {pub: ['ok/#'], sub: ['ok/#']}", &[]);
    let server = Server::start(start, spec);
    let mut session = Session::anonymous(server.tcp());
    assert_eq!(session.publish("no/x", b"p"), ERR_ACCESS, "publish denied");
    assert_eq!(session.publish("ok/x", b"p"), OK, "publish allowed");
    assert_eq!(session.subscribe(&["no/x"]), ERR_ACCESS, "subscribe denied");
    assert_eq!(session.subscribe(&["#"]), ERR_ACCESS, "subscribe # denied");
    assert_eq!(session.subscribe(&["ok/+"]), OK, "subscribe allowed");
    assert_eq!(session.nop(), OK, "connection kept");
}

/// `sub: [a/+]` refuses `a/#` (it could match `a/b/c`).
pub fn acl_plus_mask_refuses_hash(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, "_: {pub: ['#'], sub: ['a/+', 'zz/#']}", &[]);
    let server = Server::start(start, spec);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["a/#"]), ERR_ACCESS, "a/# under a/+");
    assert_eq!(sub.subscribe(&["#"]), ERR_ACCESS, "# under a/+");
    assert_eq!(sub.subscribe(&["a/+"]), OK, "a/+ itself");
    let mut publisher = Session::anonymous(server.tcp());
    assert_eq!(publisher.publish("a/b/c", b"deep"), OK, "publish a/b/c");
    assert_nothing_before_sentinel(&mut sub, &mut data, &mut publisher);
}

/// A topic deeper than `max_topic_depth` gets ERR, connection kept.
pub fn too_deep_topic_is_err(start: Start) {
    let mut spec = spec();
    spec.limits.max_topic_depth = 4;
    let server = Server::start(start, spec);
    let mut session = Session::anonymous(server.tcp());
    assert_eq!(session.publish("a/b/c/d/e", b"x"), OK, "4 separators");
    assert_eq!(session.publish("a/b/c/d/e/f", b"x"), ERR, "5 separators");
    assert_eq!(session.subscribe(&["a/b/c/d/e/+"]), ERR, "deep filter");
    assert_eq!(
        session.publish("//a//b/c/d/e", b"x"),
        OK,
        "depth after normalising"
    );
    assert_eq!(session.nop(), OK, "connection kept");
}

/// A PUBLISH frame without the `00` separator closes the connection.
pub fn missing_separator_closes(start: Start) {
    let server = Server::start(start, spec());
    let request = [&[0x01, PRIO][..], &with_len(b"no-separator")].concat();
    assert_closes(&server, &request, "publish without 00");
}

/// Publishing to a topic holding `+` or `#` closes the connection.
pub fn wildcard_in_published_topic_closes(start: Start) {
    let server = Server::start(start, spec());
    assert_closes(&server, &publish_frame(b"a/+", b"x"), "publish to a/+");
    assert_closes(&server, &publish_frame(b"a/#", b"x"), "publish to a/#");
}

/// A topic that is not UTF-8 closes the connection.
pub fn invalid_utf8_closes(start: Start) {
    let server = Server::start(start, spec());
    assert_closes(
        &server,
        &publish_frame(b"a/\xFF\xFE", b"x"),
        "non-UTF-8 topic",
    );
}

/// An unknown op byte closes the connection.
pub fn unknown_op_closes(start: Start) {
    let server = Server::start(start, spec());
    assert_closes(&server, &[0x42], "op 0x42");
}

/// A PUBLISH declaring more than `max_pub_size` is closed from its header,
/// before the body is sent.
pub fn oversized_publish_closed_before_body(start: Start) {
    let mut spec = spec();
    spec.limits.max_pub_size = 1024;
    let server = Server::start(start, spec);
    let mut session = Session::anonymous(server.tcp());
    assert_eq!(session.publish("fits", &[7; 1000]), OK, "under the limit");
    session.control.send(&[0x01, PRIO]);
    session.control.send(&100_000u32.to_le_bytes());
    session
        .control
        .expect_closed(PROMPT, "declared length over max_pub_size");
}

/// A SUBSCRIBE declaring more than `max_topic_length` closes the connection.
pub fn oversized_subscribe_closes(start: Start) {
    let mut spec = spec();
    spec.limits.max_topic_length = 64;
    let server = Server::start(start, spec);
    let mut session = Session::anonymous(server.tcp());
    session.control.send(&[0x02]);
    session.control.send(&1000u32.to_le_bytes());
    session
        .control
        .expect_closed(PROMPT, "declared length over max_topic_length");
}

/// Requests written in one go are answered in order.
pub fn pipelined_requests_answered_in_order(start: Start) {
    let mut spec = spec();
    spec.limits.max_topic_depth = 2;
    let server = Server::start(start, spec);
    let (mut session, mut data) = subscriber(&server);
    let batch = [
        vec![0x00],
        topics_frame(0x02, &["p/q"]),
        publish_frame(b"p/q", b"1"),
        publish_frame(b"a/b/c/d", b"too deep"),
        topics_frame(0x03, &["p/q"]),
        publish_frame(b"p/q", b"2"),
        vec![0x00],
        topics_frame(0x02, &["p/r"]),
    ]
    .concat();
    session.control.send(&batch);
    let replies = session.control.recv(8);
    assert_eq!(
        replies,
        [OK, OK, OK, ERR, OK, OK, OK, OK],
        "replies in order"
    );
    data.expect("p/q", b"1");
    assert_eq!(session.op(&[0xFF]), OK, "BYE");
    session.control.expect_closed(IO_TIMEOUT, "after BYE");
}

/// A bulk SUBSCRIBE applies topics in order up to the first failure; empty
/// pieces are skipped.
pub fn bulk_subscribe_stops_at_first_failure(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, "_: {pub: ['#'], sub: ['ok/#', 'zz/#']}", &[]);
    let server = Server::start(start, spec);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(
        sub.subscribe(&["ok/1", "denied", "ok/2"]),
        ERR_ACCESS,
        "bulk with a denied topic"
    );
    assert_eq!(
        sub.subscribe(&["", "ok/3", "", "ok/4", ""]),
        OK,
        "empty pieces"
    );
    let mut publisher = Session::anonymous(server.tcp());
    for topic in ["ok/1", "ok/2", "ok/3", "ok/4"] {
        assert_eq!(publisher.publish(topic, b"m"), OK, "publish {topic}");
    }
    data.expect("ok/1", b"m");
    data.expect("ok/3", b"m");
    data.expect("ok/4", b"m");
    assert_nothing_before_sentinel(&mut sub, &mut data, &mut publisher);
}

/// Subscriptions are a set: twice subscribed, once unsubscribed is gone;
/// unsubscribing an unknown filter is OK; bulk unsubscribe works.
pub fn unsubscribe_semantics(start: Start) {
    let server = Server::start(start, spec());
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["u/a"]), OK, "subscribe");
    assert_eq!(sub.subscribe(&["u/a"]), OK, "subscribe again");
    assert_eq!(sub.subscribe(&["u/b", "u/c"]), OK, "bulk subscribe");
    assert_eq!(sub.unsubscribe(&["u/a"]), OK, "unsubscribe once");
    assert_eq!(sub.unsubscribe(&["never/had"]), OK, "unsubscribe unknown");
    assert_eq!(sub.unsubscribe(&["u/b", "u/c"]), OK, "bulk unsubscribe");
    assert_eq!(sub.subscribe(&["u/d"]), OK, "subscribe u/d");
    let mut publisher = Session::anonymous(server.tcp());
    for topic in ["u/a", "u/b", "u/c", "u/d"] {
        assert_eq!(publisher.publish(topic, b"m"), OK, "publish {topic}");
    }
    data.expect("u/d", b"m");
    assert_nothing_before_sentinel(&mut sub, &mut data, &mut publisher);
}

/// With `timeout: 1`, a control socket idle for a second is closed, and
/// an operation resets the idle timer.
pub fn idle_control_socket_closed(start: Start) {
    let mut spec = spec();
    spec.limits.timeout = Duration::from_secs(1);
    let server = Server::start(start, spec);
    let mut session = Session::anonymous(server.tcp());
    sleep(Duration::from_millis(600));
    assert_eq!(session.nop(), OK, "NOP within the timeout");
    sleep(Duration::from_millis(600));
    assert_eq!(session.nop(), OK, "the NOP reset the idle timer");
    let idle_from = Instant::now();
    session
        .control
        .expect_closed(Duration::from_secs(3), "idle control socket");
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(800),
        "closed too early: {idle:?}"
    );
}

/// With `timeout: 1`, an operation dribbled a byte at a time is closed
/// about a second after it started, although bytes keep arriving.
pub fn slowloris_partial_frame_closed(start: Start) {
    let mut spec = spec();
    spec.limits.timeout = Duration::from_secs(1);
    let server = Server::start(start, spec);
    let mut session = Session::anonymous(server.tcp());
    let started = Instant::now();
    session.control.send(&[0x01, PRIO, 64, 0, 0, 0]);
    for _ in 0..10 {
        sleep(Duration::from_millis(250));
        if session.control.try_send(b"a").is_err() {
            break;
        }
    }
    session
        .control
        .expect_closed(Duration::from_secs(2), "slowloris publish");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2800),
        "closed too late: {took:?}"
    );
}

/// ACL of the replication cases: `peer` is a replicator.
const REPLICATION_ACL: &str = "
_: {pub: ['#'], sub: ['#']}
peer: {pub: ['#'], sub: ['#'], replicator: true}
";

/// A replicator gets NOT_REQUIRED without local subscribers, OK_WAITING
/// with one, and its payload is delivered.
pub fn replication_offer_and_delivery(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, REPLICATION_ACL, &[("peer", "pw")]);
    let server = Server::start(start, spec);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["r/x", SENTINEL]), OK, "subscribe");
    let mut peer = Session::login(server.tcp(), "peer", "pw");
    let offer = |topic: &str| [&[0x11][..], &with_len(topic.as_bytes())].concat();
    assert_eq!(peer.op(&offer("r/none")), NOT_REQUIRED, "no subscriber");
    assert_eq!(peer.op(&offer("r/x")), OK_WAITING, "a subscriber");
    let timestamp = 1_700_000_000_000_000_000u64.to_le_bytes();
    let body = [&[PRIO][..], &timestamp, &with_len(b"replicated")].concat();
    assert_eq!(peer.op(&body), OK, "payload accepted");
    data.expect("r/x", b"replicated");
    assert_eq!(peer.nop(), OK, "connection kept");
}

/// A client without `replicator: true` gets ERR_ACCESS.
pub fn replication_refused_for_non_replicator(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, REPLICATION_ACL, &[("peer", "pw")]);
    let server = Server::start(start, spec);
    let (mut sub, _data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["r/x"]), OK, "subscribe");
    let mut anonymous = Session::anonymous(server.tcp());
    let offer = [&[0x11][..], &with_len(b"r/x")].concat();
    assert_eq!(anonymous.op(&offer), ERR_ACCESS, "not a replicator");
    assert_eq!(anonymous.nop(), OK, "connection kept");
}

/// Our extension between psrtd nodes (`docs/replication.md`): op `0x12`
/// carries a replicated message in one frame, so several are pipelined
/// and answered in order (`OK` delivered, `NOT_REQUIRED` nobody
/// subscribes); with `LEN` 0 it is the capability probe. Non-replicators
/// get ERR_ACCESS and keep the connection.
pub fn pipelined_replication_answered_in_order(start: Start) {
    let mut spec = spec();
    spec.auth = auth(true, REPLICATION_ACL, &[("peer", "pw")]);
    let server = Server::start(start, spec);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["r/x", SENTINEL]), OK, "subscribe");
    let timestamp = 1_700_000_000_000_000_000u64.to_le_bytes();
    let message = |topic: &[u8], payload: &[u8]| {
        let body = [topic, &[0], payload].concat();
        [&[0x12, PRIO][..], &timestamp, &with_len(&body)].concat()
    };
    let probe = [&[0x12, 0][..], &[0; 8], &with_len(b"")].concat();
    let mut peer = Session::login(server.tcp(), "peer", "pw");
    assert_eq!(peer.op(&probe), OK, "probe");
    let script = [
        message(b"r/x", b"one"),
        message(b"r/none", b"unwanted"),
        message(b"r/x", b"two"),
    ]
    .concat();
    peer.control.send(&script);
    peer.control
        .expect(&[OK, NOT_REQUIRED, OK], "one answer per frame, in order");
    data.expect("r/x", b"one");
    data.expect("r/x", b"two");
    assert_eq!(peer.nop(), OK, "connection kept");
    let mut anonymous = Session::anonymous(server.tcp());
    assert_eq!(anonymous.op(&probe), ERR_ACCESS, "probe: not a replicator");
    assert_eq!(
        anonymous.op(&message(b"r/x", b"denied")),
        ERR_ACCESS,
        "not a replicator"
    );
    assert_eq!(anonymous.nop(), OK, "connection kept");
}
