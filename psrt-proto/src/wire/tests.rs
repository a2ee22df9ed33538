//! Every frame of PROTOCOL.md with its exact bytes, and property tests of
//! the codecs: round trips, arbitrary splitting, no panics, early length
//! checks.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::push::{self, Push};
use super::request::{self, DataHello, Greeting, Login, OpLimits, ReplPayload};
use super::*;

const LIMITS: OpLimits = OpLimits {
    max_pub_size: 1 << 20,
    max_topic_length: 1 << 20,
};

fn buf(bytes: &[u8]) -> BytesMut {
    BytesMut::from(bytes)
}

/// `bytes` with a little-endian `u32` length in front.
fn sized(bytes: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(bytes.len())
        .expect("small")
        .to_le_bytes()
        .to_vec();
    out.extend_from_slice(bytes);
    out
}

fn encoded_op(op: &request::Op) -> Vec<u8> {
    let mut out = BytesMut::new();
    request::encode_op(&mut out, op);
    out.to_vec()
}

/// Encodes a pushed frame the way a server does: shared head, then payload.
fn encode_push(out: &mut BytesMut, frame: &Push) {
    match frame {
        Push::Nop => out.put_u8(status::NOP),
        Push::Message {
            prio,
            topic,
            payload,
        } => {
            let topic = std::str::from_utf8(topic).expect("test topics are UTF-8");
            push::put_message_head(out, *prio, topic, payload.len());
            out.put_slice(payload);
        }
    }
}

#[test]
fn greetings() {
    let cases = [
        (SocketKind::Control, false, [0xEE, 0xAA, 0x00]),
        (SocketKind::Control, true, [0xEE, 0xAA, 0x01]),
        (SocketKind::Data, false, [0xEE, 0xAB, 0x00]),
        (SocketKind::Data, true, [0xEE, 0xAB, 0x01]),
    ];
    for (kind, tls, bytes) in cases {
        let greeting = Greeting { kind, tls };
        let mut out = BytesMut::new();
        request::encode_greeting(&mut out, greeting);
        assert_eq!(out[..], bytes);
        assert_eq!(request::decode_greeting(&mut out), Ok(Some(greeting)));
        assert!(out.is_empty());
    }
}

#[test]
fn greeting_errors_and_partial_input() {
    let mut partial = buf(&[0xEE, 0xAA]);
    assert_eq!(request::decode_greeting(&mut partial), Ok(None));
    assert_eq!(partial.len(), 2);
    // A wrong first byte is refused before more bytes arrive.
    assert_eq!(
        request::decode_greeting(&mut buf(b"G")),
        Err(WireError::BadGreeting)
    );
    assert_eq!(
        request::decode_greeting(&mut buf(&[0xEE, 0xAC, 0x00])),
        Err(WireError::BadGreeting)
    );
    assert_eq!(
        request::decode_greeting(&mut buf(&[0xEE, 0xAA, 0x02])),
        Err(WireError::BadMode(2))
    );
}

#[test]
fn greeting_replies() {
    assert_eq!(
        push::greeting_reply(SocketKind::Control),
        [0xEE, 0xAA, 0x01, 0x00]
    );
    assert_eq!(
        push::greeting_reply(SocketKind::Data),
        [0xEE, 0xAB, 0x01, 0x00]
    );
    let mut input = buf(&[0xEE, 0xAB, 0x01, 0x00, 0x42]);
    assert_eq!(
        push::decode_greeting_reply(&mut input, SocketKind::Data),
        Ok(Some(()))
    );
    assert_eq!(input[..], [0x42]);
    let mut partial = buf(&[0xEE, 0xAA, 0x01]);
    assert_eq!(
        push::decode_greeting_reply(&mut partial, SocketKind::Control),
        Ok(None)
    );
    assert_eq!(
        push::decode_greeting_reply(&mut buf(&[0xEE, 0xAA, 0x01, 0x00]), SocketKind::Data),
        Err(WireError::BadGreeting)
    );
    assert_eq!(
        push::decode_greeting_reply(&mut buf(&[0xEE, 0xAA, 0x02, 0x00]), SocketKind::Control),
        Err(WireError::BadVersion(2))
    );
}

#[test]
fn anonymous_login() {
    let mut out = BytesMut::new();
    request::encode_login(&mut out, "", b"");
    assert_eq!(out[..], [0x01, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(
        request::decode_login(&mut out, 1024),
        Ok(Some(Login {
            login: Bytes::new(),
            password: Bytes::new(),
        }))
    );
}

#[test]
fn login_with_password() {
    let mut out = BytesMut::new();
    request::encode_login(&mut out, "bob", b"s3\0cret");
    let mut expected = vec![0x0B, 0x00, 0x00, 0x00];
    expected.extend_from_slice(b"bob\0s3\0cret");
    assert_eq!(out[..], expected[..]);
    // The password may hold NUL bytes: only the first one separates.
    assert_eq!(
        request::decode_login(&mut out, 1024),
        Ok(Some(Login {
            login: Bytes::from_static(b"bob"),
            password: Bytes::from_static(b"s3\0cret"),
        }))
    );
    assert_eq!(
        request::decode_login(&mut buf(&sized(b"nobody")), 1024),
        Err(WireError::MissingSeparator)
    );
}

#[test]
fn data_hello() {
    let hello = DataHello {
        token: [7; TOKEN_LEN],
        timeout_secs: 5,
    };
    let mut out = BytesMut::new();
    request::encode_data_hello(&mut out, &hello);
    let mut expected = vec![7; 32];
    expected.push(5);
    assert_eq!(out[..], expected[..]);
    let mut partial = buf(&expected[..32]);
    assert_eq!(request::decode_data_hello(&mut partial), Ok(None));
    assert_eq!(request::decode_data_hello(&mut out), Ok(Some(hello)));
}

#[test]
fn one_byte_operations() {
    assert_eq!(encoded_op(&request::Op::Nop), [0x00]);
    assert_eq!(encoded_op(&request::Op::Bye), [0xFF]);
    assert_eq!(
        request::decode_op(&mut buf(&[0x00]), LIMITS),
        Ok(Some(request::Op::Nop))
    );
    assert_eq!(
        request::decode_op(&mut buf(&[0xFF]), LIMITS),
        Ok(Some(request::Op::Bye))
    );
    assert_eq!(
        request::decode_op(&mut buf(&[0x04]), LIMITS),
        Err(WireError::UnknownOp(0x04))
    );
}

#[test]
fn publish() {
    let op = request::Op::Publish(request::Publish::new(0x7F, b"a/b", b"\0x"));
    let mut expected = vec![0x01, 0x7F, 0x06, 0x00, 0x00, 0x00];
    expected.extend_from_slice(b"a/b\0\0x");
    assert_eq!(encoded_op(&op), expected);
    let mut direct = BytesMut::new();
    request::encode_publish(&mut direct, 0x7F, b"a/b", b"\0x");
    assert_eq!(direct[..], expected[..]);
    assert_eq!(
        request::decode_op(&mut buf(&expected), LIMITS),
        Ok(Some(op))
    );
    // An empty payload is valid.
    assert_eq!(
        request::decode_op(&mut buf(&[0x01, 0x7F, 0x02, 0, 0, 0, b't', 0]), LIMITS),
        Ok(Some(request::Op::Publish(request::Publish::new(
            0x7F, b"t", b""
        ))))
    );
    assert_eq!(
        request::decode_op(&mut buf(&[0x01, 0x7F, 0x01, 0, 0, 0, b't']), LIMITS),
        Err(WireError::MissingSeparator)
    );
}

#[test]
fn subscribe_unsubscribe_and_replicate() {
    let mut out = BytesMut::new();
    request::encode_topics(&mut out, op::SUBSCRIBE, ["a/+", "b/#"]);
    let mut expected = vec![0x02, 0x07, 0x00, 0x00, 0x00];
    expected.extend_from_slice(b"a/+\0b/#");
    assert_eq!(out[..], expected[..]);
    assert_eq!(
        request::decode_op(&mut out, LIMITS),
        Ok(Some(request::Op::Subscribe(Bytes::from_static(
            b"a/+\0b/#"
        ))))
    );

    let unsubscribe = request::Op::Unsubscribe(Bytes::from_static(b"x"));
    assert_eq!(
        encoded_op(&unsubscribe),
        [0x03, 0x01, 0x00, 0x00, 0x00, b'x']
    );

    let repl = request::Op::PublishRepl {
        topic: Bytes::from_static(b"t/1"),
    };
    let mut expected = vec![0x11, 0x03, 0x00, 0x00, 0x00];
    expected.extend_from_slice(b"t/1");
    assert_eq!(encoded_op(&repl), expected);
    assert_eq!(
        request::decode_op(&mut buf(&expected), LIMITS),
        Ok(Some(repl))
    );
}

#[test]
fn topic_lists_skip_empty_pieces() {
    let pieces: Vec<&[u8]> = request::split_topics(b"\0a\0\0b/c\0").collect();
    assert_eq!(pieces, [&b"a"[..], &b"b/c"[..]]);
    assert_eq!(request::split_topics(b"").count(), 0);
}

#[test]
fn replication_payload() {
    let mut out = BytesMut::new();
    request::encode_repl_payload(&mut out, 0x7F, 0x0102_0304_0506_0708, b"hi");
    let expected = [
        0x7F, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, b'h', b'i',
    ];
    assert_eq!(out[..], expected);
    assert_eq!(
        request::decode_repl_payload(&mut out, 16),
        Ok(Some(ReplPayload {
            prio: 0x7F,
            timestamp_ns: 0x0102_0304_0506_0708,
            payload: Bytes::from_static(b"hi"),
        }))
    );
}

#[test]
fn token_and_status_bytes() {
    let mut input = buf(&[9; 33]);
    assert_eq!(push::decode_token(&mut input), Some([9; 32]));
    assert_eq!(push::decode_status(&mut input), Some(9));
    assert_eq!(push::decode_status(&mut input), None);
    assert_eq!(push::decode_token(&mut buf(&[1; 31])), None);
}

#[test]
fn pushed_message_and_beacon() {
    let head = push::message_head(0x7F, "a/b", 2);
    let mut expected = vec![0x01, 0x7F, 0x06, 0x00, 0x00, 0x00];
    expected.extend_from_slice(b"a/b\0");
    assert_eq!(head[..], expected[..]);
    expected.extend_from_slice(b"hi");
    expected.push(0x00);
    let mut input = buf(&expected);
    assert_eq!(
        push::decode_push(&mut input, 64),
        Ok(Some(Push::Message {
            prio: 0x7F,
            topic: Bytes::from_static(b"a/b"),
            payload: Bytes::from_static(b"hi"),
        }))
    );
    assert_eq!(push::decode_push(&mut input, 64), Ok(Some(Push::Nop)));
    assert!(input.is_empty());
    assert_eq!(
        push::decode_push(&mut buf(&[0x02]), 64),
        Err(WireError::Unexpected(0x02))
    );
    assert_eq!(
        push::decode_push(&mut buf(&[0x01, 0x7F, 0x01, 0, 0, 0, b't']), 64),
        Err(WireError::MissingSeparator)
    );
}

#[test]
fn lengths_at_the_limit_are_accepted() {
    let mut input = buf(&sized(b"u\0pw"));
    assert!(matches!(request::decode_login(&mut input, 4), Ok(Some(_))));
    let mut input = buf(&sized(b"u\0pwd"));
    assert_eq!(
        request::decode_login(&mut input, 4),
        Err(WireError::TooLarge { len: 5, max: 4 })
    );
}

fn topic_text() -> impl Strategy<Value = String> {
    "[^\0]{0,24}"
}

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn any_op() -> impl Strategy<Value = request::Op> {
    prop_oneof![
        Just(request::Op::Nop),
        Just(request::Op::Bye),
        (any::<u8>(), topic_text(), any_bytes(64)).prop_map(|(prio, topic, payload)| {
            request::Op::Publish(request::Publish::new(prio, topic.as_bytes(), &payload))
        }),
        any_bytes(64).prop_map(|b| request::Op::Subscribe(Bytes::from(b))),
        any_bytes(64).prop_map(|b| request::Op::Unsubscribe(Bytes::from(b))),
        any_bytes(64).prop_map(|b| request::Op::PublishRepl {
            topic: Bytes::from(b)
        }),
        (any::<u8>(), any::<u64>(), topic_text(), any_bytes(64)).prop_map(
            |(prio, timestamp_ns, topic, payload)| request::Op::ReplPipelined {
                prio,
                timestamp_ns,
                topic: Bytes::from(topic),
                payload: Bytes::from(payload),
            }
        ),
        Just(request::Op::ReplProbe),
    ]
}

fn any_push() -> impl Strategy<Value = Push> {
    prop_oneof![
        Just(Push::Nop),
        (any::<u8>(), topic_text(), any_bytes(64)).prop_map(|(prio, topic, payload)| {
            Push::Message {
                prio,
                topic: Bytes::from(topic),
                payload: Bytes::from(payload),
            }
        }),
    ]
}

/// Feeds `bytes` in the chunks given by `cuts` into one buffer, decoding
/// every complete frame after each chunk.
fn decode_in_chunks<T>(
    bytes: &[u8],
    mut cuts: Vec<usize>,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, WireError>,
) -> Result<Vec<T>, WireError> {
    cuts.push(bytes.len());
    cuts.retain(|&c| c <= bytes.len());
    cuts.sort_unstable();
    let mut input = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    for cut in cuts {
        input.extend_from_slice(&bytes[at..cut]);
        at = cut;
        while let Some(frame) = decode(&mut input)? {
            frames.push(frame);
        }
    }
    assert!(input.is_empty(), "{} bytes left undecoded", input.len());
    Ok(frames)
}

/// Runs a decoder on arbitrary bytes: it must not panic, must leave the
/// input untouched when it needs more, and may only remove a prefix.
fn check_consumption<T>(
    bytes: &[u8],
    decode: impl FnOnce(&mut BytesMut) -> Result<Option<T>, WireError>,
) -> Result<(), TestCaseError> {
    let mut input = buf(bytes);
    let result = decode(&mut input);
    prop_assert!(input.len() <= bytes.len());
    prop_assert_eq!(&input[..], &bytes[bytes.len() - input.len()..]);
    match result {
        Ok(None) => prop_assert_eq!(input.len(), bytes.len()),
        Ok(Some(_)) => prop_assert!(input.len() < bytes.len()),
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    #[test]
    fn greeting_round_trip(control in any::<bool>(), tls in any::<bool>()) {
        let kind = if control { SocketKind::Control } else { SocketKind::Data };
        let greeting = Greeting { kind, tls };
        let mut out = BytesMut::new();
        request::encode_greeting(&mut out, greeting);
        prop_assert_eq!(request::decode_greeting(&mut out), Ok(Some(greeting)));
        let mut reply = buf(&push::greeting_reply(kind));
        prop_assert_eq!(push::decode_greeting_reply(&mut reply, kind), Ok(Some(())));
    }

    #[test]
    fn login_round_trip(login in topic_text(), password in any_bytes(64)) {
        let mut out = BytesMut::new();
        request::encode_login(&mut out, &login, &password);
        let expected = Login { login: Bytes::from(login), password: Bytes::from(password) };
        prop_assert_eq!(request::decode_login(&mut out, 1024), Ok(Some(expected)));
        prop_assert!(out.is_empty());
    }

    #[test]
    fn data_hello_round_trip(token in any::<[u8; 32]>(), timeout_secs in any::<u8>()) {
        let hello = DataHello { token, timeout_secs };
        let mut out = BytesMut::new();
        request::encode_data_hello(&mut out, &hello);
        prop_assert_eq!(request::decode_data_hello(&mut out), Ok(Some(hello)));
        prop_assert!(out.is_empty());
    }

    #[test]
    fn op_round_trip(op in any_op()) {
        let mut out = BytesMut::new();
        request::encode_op(&mut out, &op);
        prop_assert_eq!(request::decode_op(&mut out, LIMITS), Ok(Some(op)));
        prop_assert!(out.is_empty());
    }

    #[test]
    fn repl_payload_round_trip(prio in any::<u8>(), ts in any::<u64>(), payload in any_bytes(64)) {
        let mut out = BytesMut::new();
        request::encode_repl_payload(&mut out, prio, ts, &payload);
        let expected = ReplPayload { prio, timestamp_ns: ts, payload: Bytes::from(payload) };
        prop_assert_eq!(request::decode_repl_payload(&mut out, 64), Ok(Some(expected)));
        prop_assert!(out.is_empty());
    }

    #[test]
    fn push_round_trip(frame in any_push()) {
        let mut out = BytesMut::new();
        encode_push(&mut out, &frame);
        prop_assert_eq!(push::decode_push(&mut out, 1024), Ok(Some(frame)));
        prop_assert!(out.is_empty());
    }

    #[test]
    fn op_stream_survives_any_split(
        ops in prop::collection::vec(any_op(), 0..20),
        cuts in prop::collection::vec(0usize..2000, 0..40),
    ) {
        let mut bytes = BytesMut::new();
        for op in &ops {
            request::encode_op(&mut bytes, op);
        }
        let decoded = decode_in_chunks(&bytes, cuts, |b| request::decode_op(b, LIMITS));
        prop_assert_eq!(decoded, Ok(ops));
    }

    #[test]
    fn push_stream_survives_any_split(
        frames in prop::collection::vec(any_push(), 0..20),
        cuts in prop::collection::vec(0usize..2000, 0..40),
    ) {
        let mut bytes = BytesMut::new();
        for frame in &frames {
            encode_push(&mut bytes, frame);
        }
        let decoded = decode_in_chunks(&bytes, cuts, |b| push::decode_push(b, 1024));
        prop_assert_eq!(decoded, Ok(frames));
    }

    #[test]
    fn login_then_ops_survive_any_split(
        login in topic_text(),
        ops in prop::collection::vec(any_op(), 0..8),
        cuts in prop::collection::vec(0usize..800, 0..20),
    ) {
        let mut bytes = BytesMut::new();
        request::encode_greeting(&mut bytes, Greeting { kind: SocketKind::Control, tls: false });
        request::encode_login(&mut bytes, &login, b"pw");
        for op in &ops {
            request::encode_op(&mut bytes, op);
        }
        let mut stage = 0;
        let decoded = decode_in_chunks(&bytes, cuts, |b| {
            let frame = match stage {
                0 => request::decode_greeting(b)?.map(|_| None),
                1 => request::decode_login(b, 1024)?.map(|_| None),
                _ => request::decode_op(b, LIMITS)?.map(Some),
            };
            if frame.is_some() {
                stage += 1;
            }
            Ok(frame)
        });
        let decoded: Vec<request::Op> = decoded.map(|f| f.into_iter().flatten().collect())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(stage, ops.len() + 2);
        prop_assert_eq!(decoded, ops);
    }

    #[test]
    fn decoders_never_panic_or_overconsume(bytes in any_bytes(200)) {
        let small = OpLimits { max_pub_size: 64, max_topic_length: 64 };
        check_consumption(&bytes, request::decode_greeting)?;
        check_consumption(&bytes, |b| request::decode_login(b, 64))?;
        check_consumption(&bytes, request::decode_data_hello)?;
        check_consumption(&bytes, |b| request::decode_op(b, small))?;
        check_consumption(&bytes, |b| request::decode_repl_payload(b, 64))?;
        check_consumption(&bytes, |b| push::decode_greeting_reply(b, SocketKind::Control))?;
        check_consumption(&bytes, |b| push::decode_greeting_reply(b, SocketKind::Data))?;
        check_consumption(&bytes, |b| Ok(push::decode_token(b)))?;
        check_consumption(&bytes, |b| Ok(push::decode_status(b)))?;
        check_consumption(&bytes, |b| push::decode_push(b, 64))?;
    }

    #[test]
    fn oversized_lengths_fail_before_the_body(
        max in 0usize..4096,
        excess in 1u32..=u32::MAX - 4096,
        prio in any::<u8>(),
    ) {
        let len = u32::try_from(max).expect("small") + excess;
        let declared = usize::try_from(len).expect("fits");
        let too_large = Some(WireError::TooLarge { len: declared, max });
        let len = len.to_le_bytes();
        let limits = OpLimits { max_pub_size: max, max_topic_length: max };

        let mut publish = vec![op::PUBLISH, prio];
        publish.extend_from_slice(&len);
        prop_assert_eq!(request::decode_op(&mut buf(&publish[..5]), limits), Ok(None));
        prop_assert_eq!(request::decode_op(&mut buf(&publish), limits).err(), too_large.clone());
        for code in [op::SUBSCRIBE, op::UNSUBSCRIBE, op::PUBLISH_REPL] {
            let mut frame = vec![code];
            frame.extend_from_slice(&len);
            prop_assert_eq!(request::decode_op(&mut buf(&frame), limits).err(), too_large.clone());
        }
        let mut pipelined = vec![op::REPL_PIPELINED, prio, 0, 0, 0, 0, 0, 0, 0, 0];
        pipelined.extend_from_slice(&len);
        prop_assert_eq!(request::decode_op(&mut buf(&pipelined[..13]), limits), Ok(None));
        prop_assert_eq!(request::decode_op(&mut buf(&pipelined), limits).err(), too_large.clone());
        prop_assert_eq!(request::decode_login(&mut buf(&len[..3]), max), Ok(None));
        prop_assert_eq!(request::decode_login(&mut buf(&len), max).err(), too_large.clone());
        let mut repl = vec![prio; 9];
        repl.extend_from_slice(&len);
        prop_assert_eq!(request::decode_repl_payload(&mut buf(&repl), max).err(), too_large.clone());
        let mut pushed = vec![status::OK, prio];
        pushed.extend_from_slice(&len);
        prop_assert_eq!(push::decode_push(&mut buf(&pushed), max).err(), too_large);
    }
}

#[test]
fn declared_op_size_is_known_once_the_header_is() {
    let mut publish = BytesMut::new();
    request::encode_publish(&mut publish, 0x7F, b"a/b", &[7u8; 100]);
    assert_eq!(request::declared_op_size(&publish[..5]), None);
    assert_eq!(
        request::declared_op_size(&publish[..6]),
        Some(publish.len())
    );
    let mut subscribe = BytesMut::new();
    request::encode_topics(&mut subscribe, op::SUBSCRIBE, ["x/#", "y"]);
    assert_eq!(request::declared_op_size(&subscribe), Some(subscribe.len()));
    let mut pipelined = BytesMut::new();
    request::encode_repl_pipelined(&mut pipelined, 0x7F, 1, b"a", &[7u8; 50]);
    assert_eq!(request::declared_op_size(&pipelined[..13]), None);
    assert_eq!(
        request::declared_op_size(&pipelined[..14]),
        Some(pipelined.len())
    );
    assert_eq!(request::declared_op_size(&[op::NOP]), None);
    assert_eq!(request::declared_op_size(&[]), None);
}

#[test]
fn the_pipelined_replication_op_is_self_delimited() {
    let mut out = BytesMut::new();
    request::encode_repl_pipelined(&mut out, 0x03, 0x0102_0304_0506_0708, b"t/1", b"p\0q");
    let mut expected = vec![0x12, 0x03, 8, 7, 6, 5, 4, 3, 2, 1, 0x07, 0, 0, 0];
    expected.extend_from_slice(b"t/1\0p\0q");
    assert_eq!(out[..], expected[..]);
    request::encode_repl_probe(&mut out);
    out.extend_from_slice(&[op::NOP]);
    assert_eq!(
        request::decode_op(&mut out, LIMITS),
        Ok(Some(request::Op::ReplPipelined {
            prio: 0x03,
            timestamp_ns: 0x0102_0304_0506_0708,
            topic: Bytes::from_static(b"t/1"),
            payload: Bytes::from_static(b"p\0q"),
        }))
    );
    assert_eq!(
        request::decode_op(&mut out, LIMITS),
        Ok(Some(request::Op::ReplProbe))
    );
    assert_eq!(
        request::decode_op(&mut out, LIMITS),
        Ok(Some(request::Op::Nop))
    );
    let mut no_separator = buf(&[0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b't']);
    assert_eq!(
        request::decode_op(&mut no_separator, LIMITS),
        Err(WireError::MissingSeparator)
    );
}
