//! The pushed frame of a published message: the publisher's frame itself
//! when its topic came normalised and its payload is not inlined, a head
//! built here otherwise, and the same bytes on the wire either way.

use std::task::Waker;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::SeedableRng;

use super::{AuthConfig, Broker, EMBEDDED_FRAME, INLINE_PAYLOAD, LoginDecision, Origin, SessionId};
use crate::Limits;
use crate::topic;
use crate::txbuf::TxBuf;
use crate::wire::request::{self, Op, OpLimits, Publish};
use crate::wire::{push, status};

/// A base instant; the core itself never reads the clock.
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

/// An open broker with one anonymous session whose data socket is bound
/// and which subscribes to every topic.
fn subscribed() -> (Broker, SessionId) {
    subscribed_with(Limits::default(), b"#")
}

/// An open broker with `limits` and one anonymous session whose data
/// socket is bound and which subscribes to `filter`.
fn subscribed_with(limits: Limits, filter: &[u8]) -> (Broker, SessionId) {
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(7));
    let mut broker = Broker::new(limits, AuthConfig::open(), rng);
    let origin = Origin {
        unix: false,
        peer: "127.0.0.1:1".into(),
    };
    let LoginDecision::Granted(id, token) = broker.begin_login(b"", b"", origin) else {
        panic!("anonymous may log in");
    };
    assert!(broker.bind_data(&token, Waker::noop().clone()).is_some());
    assert_eq!(broker.subscribe(id, filter), status::OK);
    (broker, id)
}

/// `publish`'s frame as a decoder cuts it from a read buffer.
fn received(prio: u8, topic: &[u8], payload: &[u8]) -> Publish {
    let mut input = BytesMut::new();
    request::encode_publish(&mut input, prio, topic, payload);
    let limits = OpLimits {
        max_pub_size: usize::MAX,
        max_topic_length: usize::MAX,
    };
    match request::decode_op(&mut input, limits) {
        Ok(Some(Op::Publish(publish))) => publish,
        other => panic!("a PUBLISH decodes: {other:?}"),
    }
}

/// What the pushed frame was before the publisher's frame was reused: a
/// head with the normalised topic, then the payload.
fn built_push(prio: u8, raw_topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let topic = topic::parse_topic(raw_topic, 32).expect("a valid topic");
    let mut frame = push::message_head(prio, &topic, payload.len());
    frame.extend_from_slice(payload);
    frame.to_vec()
}

fn publish_and_take(broker: &mut Broker, id: SessionId, publish: &Publish) -> TxBuf {
    let now = start();
    assert_eq!(broker.publish(id, publish, now), Ok(status::OK));
    let mut tx = TxBuf::new();
    broker.take_messages(id, now, &mut tx, usize::MAX);
    tx
}

#[test]
fn a_large_message_to_a_normalised_topic_is_pushed_as_its_frame() {
    let (mut broker, id) = subscribed();
    let payload = vec![0xA5; 64 * 1024];
    let publish = received(0x7F, b"sensors/a", &payload);
    let tx = publish_and_take(&mut broker, id, &publish);
    assert_eq!(tx.chunk_count(), 1, "one buffer per message");
    let chunk = tx.chunks().next().expect("a chunk");
    assert_eq!(chunk, publish.frame(), "the received frame");
    assert_eq!(chunk.as_ptr(), publish.frame().as_ptr(), "not a copy");
    assert_eq!(tx.to_vec(), built_push(0x7F, b"sensors/a", &payload));
    let counters = broker.counters();
    assert_eq!(counters.c_pub_bytes, payload.len() as u64);
    assert_eq!(counters.c_sent_bytes, payload.len() as u64);
    assert_eq!(counters.c_sent_messages, 1);
}

#[test]
fn a_topic_that_needs_normalising_gets_a_head_of_its_own() {
    let (mut broker, id) = subscribed();
    let payload = vec![0x5A; 64 * 1024];
    for raw in [&b"a//b"[..], b"/a/b"] {
        let publish = received(0x10, raw, &payload);
        let tx = publish_and_take(&mut broker, id, &publish);
        assert_eq!(tx.chunk_count(), 2, "head and payload for {raw:?}");
        let head = tx.chunks().next().expect("a head");
        assert_eq!(
            &head[..],
            &push::message_head(0x10, "a/b", payload.len())[..]
        );
        assert_eq!(tx.to_vec(), built_push(0x10, raw, &payload));
    }
}

#[test]
fn small_messages_are_copied_together_into_one_chunk() {
    let (mut broker, id) = subscribed();
    let now = start();
    let small = vec![1; INLINE_PAYLOAD];
    for raw in [&b"t"[..], b"//t"] {
        assert_eq!(
            broker.publish(id, &received(0x7F, raw, &small), now),
            Ok(status::OK)
        );
    }
    let mut tx = TxBuf::new();
    broker.take_messages(id, now, &mut tx, usize::MAX);
    assert_eq!(tx.chunk_count(), 1);
    let expected = [
        built_push(0x7F, b"t", &small),
        built_push(0x7F, b"t", &small),
    ]
    .concat();
    assert_eq!(tx.to_vec(), expected);
}

#[test]
fn frames_at_and_past_the_embedded_size_are_delivered_whole_and_counted() {
    let head = push::message_head_len("t");
    let sizes = [0, EMBEDDED_FRAME - head, EMBEDDED_FRAME - head + 1];
    let total: usize = sizes.iter().map(|size| head + size).sum();
    let limits = Limits {
        data_queue_bytes: total,
        ..Limits::default()
    };
    let now = start();
    let publish_all = |broker: &mut Broker, id| {
        let mut expected = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            let payload = vec![i as u8 + 1; size];
            assert_eq!(
                broker.publish(id, &received(0x05, b"t", &payload), now),
                Ok(status::OK)
            );
            expected.extend(built_push(0x05, b"t", &payload));
        }
        expected
    };
    let (mut broker, id) = subscribed_with(limits, b"t");
    let expected = publish_all(&mut broker, id);
    let mut tx = TxBuf::new();
    broker.take_messages(id, now, &mut tx, usize::MAX);
    assert_eq!(tx.chunk_count(), 1, "copied together");
    assert_eq!(tx.to_vec(), expected);
    // The queue counted each at its wire size: they filled it exactly.
    let (mut broker, id) = subscribed_with(limits, b"t");
    publish_all(&mut broker, id);
    assert_eq!(
        broker.publish(id, &received(0x05, b"t", b""), now),
        Ok(status::OK)
    );
    let mut tx = TxBuf::new();
    assert_eq!(
        broker.take_messages(id, now, &mut tx, usize::MAX),
        super::DataState::Gone,
        "one more frame overflows the byte bound"
    );
}

#[test]
fn queue_bytes_count_the_received_frame() {
    let frame_len = 7 + 1 + 1000;
    let limits = Limits {
        data_queue_bytes: 2 * frame_len,
        ..Limits::default()
    };
    let (mut broker, id) = subscribed_with(limits, b"t");
    let publish = received(0x7F, b"t", &[3; 1000]);
    assert_eq!(publish.frame().len(), frame_len);
    let now = start();
    for _ in 0..2 {
        assert_eq!(broker.publish(id, &publish, now), Ok(status::OK));
    }
    assert_eq!(broker.queued(id), 2, "two frames fit exactly");
    assert_eq!(broker.publish(id, &publish, now), Ok(status::OK));
    let mut tx = TxBuf::new();
    assert_eq!(
        broker.take_messages(id, now, &mut tx, usize::MAX),
        super::DataState::Gone,
        "a third overflows the byte bound"
    );
}

/// A topic of a few levels, with doubled and leading separators now and
/// then.
fn raw_topic() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        prop::collection::vec(("[a-z]{1,4}", 1..3usize), 1..4),
    )
        .prop_map(|(leading, levels)| {
            let mut raw = Vec::new();
            if leading {
                raw.push(b'/');
            }
            for (i, (level, separators)) in levels.iter().enumerate() {
                if i > 0 {
                    raw.extend(std::iter::repeat_n(b'/', *separators));
                }
                raw.extend_from_slice(level.as_bytes());
            }
            raw
        })
}

proptest! {
    /// Whatever the topic and payload size, subscribers get the bytes the
    /// built head and payload would have made, in one buffer exactly when
    /// the received frame could be reused.
    #[test]
    fn the_wire_is_the_same_as_a_built_head_and_payload(
        messages in prop::collection::vec(
            (any::<u8>(), raw_topic(), 0..3 * INLINE_PAYLOAD),
            1..6,
        ),
    ) {
        let (mut broker, id) = subscribed();
        let now = start();
        let mut expected = Vec::new();
        let mut published = Vec::new();
        for (prio, raw, size) in &messages {
            let payload: Vec<u8> = (0..*size).map(|i| i as u8).collect();
            let publish = received(*prio, raw, &payload);
            prop_assert_eq!(broker.publish(id, &publish, now), Ok(status::OK));
            expected.extend(built_push(*prio, raw, &payload));
            published.push(publish);
        }
        let mut tx = TxBuf::new();
        broker.take_messages(id, now, &mut tx, usize::MAX);
        prop_assert_eq!(tx.to_vec(), expected);
        let chunks: Vec<*const u8> = tx.drain().map(|chunk| chunk.as_ptr()).collect();
        for publish in &published {
            let normalised = topic::parse_topic(publish.topic(), 32).expect("valid");
            let reused = publish.payload().len() > INLINE_PAYLOAD
                && normalised.as_bytes() == publish.topic();
            let found = chunks.contains(&publish.frame().as_ptr());
            prop_assert_eq!(found, reused, "frame reused for {:?}", publish.topic());
        }
    }
}

#[test]
fn a_built_publish_is_its_own_frame() {
    let publish = Publish::new(0x42, b"x/y", b"payload");
    assert_eq!(publish.prio(), 0x42);
    assert_eq!(publish.topic(), b"x/y");
    assert_eq!(publish.payload(), &Bytes::from_static(b"payload"));
    assert_eq!(publish.frame().len(), 6 + 3 + 1 + 7);
    assert_eq!(publish, received(0x42, b"x/y", b"payload"));
}
