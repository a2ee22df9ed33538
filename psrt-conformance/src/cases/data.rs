//! The data socket: token check, beacons, lifetime, slow consumers.

use std::time::Duration;

use super::subscriber;
use crate::Start;
use crate::client::{ERR, IO_TIMEOUT, OK, Session, data_connect};
use crate::fixture::{Server, spec};

/// A token of no live session gets ERR, then the socket closes.
pub fn data_socket_bad_token_refused(start: Start) {
    let server = Server::start(start, spec());
    let (mut conn, reply) = data_connect(server.tcp(), &[7; 32], 5);
    assert_eq!(reply, ERR, "unknown token");
    conn.expect_closed(IO_TIMEOUT, "after ERR");
    let session = Session::anonymous(server.tcp());
    let token = session.token.clone();
    drop(session);
    std::thread::sleep(Duration::from_millis(200));
    let (mut conn, reply) = data_connect(server.tcp(), &token, 5);
    assert_eq!(reply, ERR, "token of an ended session");
    conn.expect_closed(IO_TIMEOUT, "after ERR");
}

/// A second data socket for one session gets ERR; the first keeps working.
pub fn second_data_socket_refused(start: Start) {
    let server = Server::start(start, spec());
    let (mut session, mut data) = subscriber(&server);
    let (mut second, reply) = data_connect(server.tcp(), &session.token, 5);
    assert_eq!(reply, ERR, "second data socket");
    second.expect_closed(IO_TIMEOUT, "second data socket after ERR");
    assert_eq!(session.subscribe(&["d/x"]), OK, "subscribe");
    assert_eq!(session.publish("d/x", b"still"), OK, "publish");
    data.expect("d/x", b"still");
}

/// With TIMEOUT 2, an idle data socket gets a single `00` within about a
/// second, and again after that.
pub fn data_socket_beacons_when_idle(start: Start) {
    let server = Server::start(start, spec());
    let session = Session::anonymous(server.tcp());
    let mut data = session.open_data(server.tcp(), 2);
    data.conn.set_read_timeout(Duration::from_millis(1800));
    assert_eq!(data.conn.status(), 0x00, "first beacon");
    assert_eq!(data.conn.status(), 0x00, "second beacon");
}

/// The data socket closes when its control session ends, by BYE or by
/// the control socket closing.
pub fn data_socket_closes_with_session(start: Start) {
    let server = Server::start(start, spec());
    let (mut by_bye, mut bye_data) = subscriber(&server);
    assert_eq!(by_bye.op(&[0xFF]), OK, "BYE");
    bye_data
        .conn
        .expect_closed_skipping(IO_TIMEOUT, "data socket after BYE", &[0x00]);
    let (dropped, mut dropped_data) = subscriber(&server);
    drop(dropped);
    dropped_data.conn.expect_closed_skipping(
        IO_TIMEOUT,
        "data socket after the control socket closed",
        &[0x00],
    );
}

/// Messages of the slow-consumer case and their size: far more than
/// kernel socket buffers hold.
const FLOOD_MESSAGES: usize = 96;
const FLOOD_PAYLOAD: usize = 512 * 1024;

/// A subscriber that never reads is dropped once its queue is full, while
/// another subscriber of the same topic receives every message in order.
pub fn slow_consumer_dropped_others_unaffected(start: Start) {
    let mut spec = spec();
    spec.limits.data_queue = 4;
    let server = Server::start(start, spec);
    let (mut slow, mut slow_data) = subscriber(&server);
    let (mut fast, mut fast_data) = subscriber(&server);
    assert_eq!(slow.subscribe(&["flood"]), OK, "slow subscribes");
    assert_eq!(fast.subscribe(&["flood"]), OK, "fast subscribes");
    let mut publisher = Session::anonymous(server.tcp());
    for i in 0..FLOOD_MESSAGES {
        let payload = numbered(i);
        assert_eq!(publisher.publish("flood", &payload), OK, "publish {i}");
        let got = fast_data.recv();
        assert!(
            got.payload == payload,
            "fast subscriber got message {i} in order"
        );
    }
    let mut slow_got = 0;
    while let Some(message) = slow_data.try_next() {
        assert!(
            message.payload == numbered(slow_got),
            "slow got a prefix in order"
        );
        slow_got += 1;
        assert!(slow_got < FLOOD_MESSAGES, "slow consumer was never dropped");
    }
    assert_eq!(fast.nop(), OK, "fast subscriber still connected");
}

/// A large payload starting with its index.
fn numbered(i: usize) -> Vec<u8> {
    let mut payload = vec![0xA5; FLOOD_PAYLOAD];
    payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
    payload
}
