//! The data socket (PROTOCOL.md "Data socket"): binding by token, beacons,
//! its end with the control session, and the slow-consumer policy.

mod support;

use std::time::Duration;

use psrt_proto::Limits;
use psrt_proto::broker::{AuthConfig, BrokerEvent};
use psrt_proto::conn::CloseReason;
use support::*;

#[test]
fn unknown_token_is_err_and_close() {
    let mut server = Server::open();
    server.anon();
    let (d, out) = server.try_data([0x42; 32], 5);
    assert_eq!(out, [&DATA_REPLY[..], &[ERR]].concat());
    assert!(server.closed(d));
    assert_eq!(server.reason(d), Some(CloseReason::DataRefused));
}

#[test]
fn a_second_data_socket_for_a_session_is_err_and_close() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let first = server.data(token);
    let (second, out) = server.try_data(token, 5);
    assert_eq!(out, [&DATA_REPLY[..], &[ERR]].concat());
    assert!(server.closed(second));
    assert!(!server.closed(first));
    assert_eq!(server.request(c, &subscribe(&["t"])), [OK]);
    assert_eq!(server.request(c, &publish(b"t", b"v")), [OK]);
    assert_eq!(
        server.recv(first),
        pushed("t", b"v"),
        "the first one still works"
    );
}

#[test]
fn a_data_socket_may_be_bound_again_after_the_first_one_closed() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let first = server.data(token);
    server.node.disconnect(first);
    let second = server.data(token);
    assert_eq!(server.request(c, &subscribe(&["t"])), [OK]);
    assert_eq!(server.request(c, &publish(b"t", b"v")), [OK]);
    assert_eq!(server.recv(second), pushed("t", b"v"));
}

#[test]
fn the_hello_may_arrive_in_pieces_and_later_client_bytes_are_ignored() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let d = server.connect();
    let mut hello = DATA_GREETING.to_vec();
    hello.extend_from_slice(&token);
    hello.push(5);
    for byte in &hello {
        server.send(d, std::slice::from_ref(byte));
    }
    assert_eq!(server.recv(d), [&DATA_REPLY[..], &[OK]].concat());
    server.send(d, b"garbage the server must ignore");
    assert!(!server.closed(d));
    assert_eq!(server.request(c, &subscribe(&["t"])), [OK]);
    assert_eq!(server.request(c, &publish(b"t", b"")), [OK]);
    assert_eq!(server.recv(d), pushed("t", b""));
}

#[test]
fn beacons_every_half_of_the_client_timeout_when_idle() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let (d, out) = server.try_data(token, 4);
    assert_eq!(out, [&DATA_REPLY[..], &[OK]].concat());
    // The control socket stays alive with NOPs; the data socket beacons.
    let mut beacons = Vec::new();
    for step in 1..=16 {
        server.at(ms(500 * step));
        if step % 4 == 0 {
            assert_eq!(server.request(c, &[0x00]), [OK]);
        }
        beacons.push(server.recv(d));
    }
    let expected: Vec<Vec<u8>> = (1..=16)
        .map(|step| if step % 4 == 0 { vec![0x00] } else { vec![] })
        .collect();
    assert_eq!(beacons, expected, "one NOP at 2 s, 4 s, 6 s, 8 s");
}

#[test]
fn a_message_postpones_the_next_beacon() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let (d, _) = server.try_data(token, 4);
    assert_eq!(server.request(c, &subscribe(&["t"])), [OK]);
    server.at(ms(1500));
    assert_eq!(server.request(c, &publish(b"t", b"")), [OK]);
    assert_eq!(server.recv(d), pushed("t", b""));
    server.at(ms(3000));
    assert!(
        server.recv(d).is_empty(),
        "2 s not yet passed since the message"
    );
    server.at(ms(3500));
    assert_eq!(server.recv(d), [0x00]);
}

#[test]
fn a_zero_timeout_byte_beacons_every_half_server_timeout() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let (d, _) = server.try_data(token, 0);
    server.at(ms(2400));
    assert_eq!(server.request(c, &[0x00]), [OK]);
    assert!(server.recv(d).is_empty());
    server.at(ms(2500));
    assert_eq!(server.recv(d), [0x00]);
}

#[test]
fn the_data_socket_closes_when_its_control_session_ends() {
    // BYE, end of stream and keep-alive timeout of the control socket.
    for ending in 0..3 {
        let mut server = Server::open();
        let (c, token) = server.anon();
        let d = server.data(token);
        match ending {
            0 => assert_eq!(server.request(c, &[0xFF]), [OK]),
            1 => server.node.disconnect(c),
            _ => server.at(Duration::from_secs(5)),
        }
        assert!(
            server.node.was_woken(d),
            "ending {ending}: the data socket is woken"
        );
        assert!(server.recv(d).is_empty());
        assert!(server.closed(d), "ending {ending}");
        assert_eq!(server.reason(d), Some(CloseReason::SessionGone));
        server.assert_baseline();
    }
}

#[test]
fn a_data_socket_stalled_before_its_hello_times_out() {
    let mut server = Server::open();
    server.anon();
    let d = server.connect();
    server.send(d, &DATA_GREETING);
    server.at(ms(4999));
    assert!(!server.closed(d));
    server.at(ms(5000));
    assert_eq!(server.reason(d), Some(CloseReason::Timeout));
}

#[test]
fn a_publish_only_client_needs_no_data_socket() {
    let mut server = Server::open();
    let (_, d) = server.subscriber(&["t"]);
    let (p, _) = server.anon();
    for i in 0..3u8 {
        assert_eq!(server.request(p, &publish(b"t", &[i])), [OK]);
    }
    server.at(Duration::from_secs(4));
    assert_eq!(server.request(p, &[0x00]), [OK]);
    assert!(!server.closed(p));
    let expected: Vec<u8> = (0..3u8).flat_map(|i| pushed("t", &[i])).collect();
    assert_eq!(server.recv(d), expected);
}

#[test]
fn a_slow_consumer_is_dropped_and_others_get_every_message_in_order() {
    let limits = Limits {
        data_queue: 4,
        ..Limits::default()
    };
    let mut server = Server::new(limits, AuthConfig::open());
    let (slow_control, slow) = server.subscriber(&["t"]);
    let (_, fast) = server.subscriber(&["t"]);
    let (p, _) = server.anon();
    let mut received = Vec::new();
    for i in 0..20u8 {
        assert_eq!(
            server.request(p, &publish(b"t", &[i])),
            [OK],
            "the publisher is never delayed"
        );
        received.extend(server.recv(fast));
        if i < 4 {
            assert!(!server.closed(slow));
        }
    }
    let expected: Vec<u8> = (0..20u8).flat_map(|i| pushed("t", &[i])).collect();
    assert_eq!(received, expected);
    // The fifth message did not fit the slow queue of four.
    assert!(server.node.was_woken(slow));
    server.recv(slow);
    assert!(server.closed(slow));
    assert_eq!(server.reason(slow), Some(CloseReason::SessionGone));
    let mut events = std::iter::from_fn(|| server.node.broker_mut().poll_event());
    assert!(events.any(|e| matches!(e, BrokerEvent::SlowConsumer { .. })));
    // The slow client's control session lives on and may bind again.
    assert_eq!(server.request(slow_control, &[0x00]), [OK]);
}

#[test]
fn the_byte_bound_of_the_data_queue_also_drops_a_slow_consumer() {
    let limits = Limits {
        data_queue_bytes: 1000,
        ..Limits::default()
    };
    let mut server = Server::new(limits, AuthConfig::open());
    let (_, slow) = server.subscriber(&["t"]);
    let (_, fast) = server.subscriber(&["t"]);
    let (p, _) = server.anon();
    // 6 + 2 + 400 bytes per message: two fit in 1000 bytes, the third not.
    for _ in 0..3 {
        assert_eq!(server.request(p, &publish(b"t", &[1; 400])), [OK]);
        assert_eq!(server.recv(fast), pushed("t", &[1; 400]));
    }
    server.recv(slow);
    assert!(server.closed(slow));
}

#[test]
fn a_reader_that_stops_reading_is_closed_after_the_timeout() {
    let mut server = Server::open();
    let (c, d) = server.subscriber(&["t"]);
    assert_eq!(server.request(c, &publish(b"t", &[5; 1000])), [OK]);
    let first = server.node.recv_at_most(d, 10, server.now);
    assert_eq!(first.len(), 10);
    server.at(ms(4000));
    assert_eq!(server.request(c, &[0x00]), [OK]);
    assert!(!server.closed(d));
    server.at(ms(5000));
    assert_eq!(server.reason(d), Some(CloseReason::WriteStalled));
}

#[test]
fn small_and_large_messages_queued_together_arrive_in_order() {
    let mut server = Server::open();
    let (_, d) = server.subscriber(&["m/#"]);
    let (p, _) = server.anon();
    let large = vec![7u8; 1000];
    let sizes: [&[u8]; 6] = [b"a", b"bb", &large, b"c", &large, b""];
    let mut expected = Vec::new();
    for (i, payload) in sizes.iter().enumerate() {
        let topic = format!("m/{i}");
        assert_eq!(server.request(p, &publish(topic.as_bytes(), payload)), [OK]);
        expected.extend(pushed(&topic, payload));
    }
    assert_eq!(server.recv(d), expected);
}
