//! Codec costs on the hot path: decoding a small PUBLISH off the read
//! buffer (what a control connection does per message) and a pushed message
//! (what a subscriber does per message).
//!
//! Run with `cargo bench -p psrt-proto --bench wire`.

use divan::{Bencher, black_box};
use psrt_proto::BytesMut;
use psrt_proto::wire::push;
use psrt_proto::wire::request::{self, OpLimits};

fn main() {
    divan::main();
}

/// A typical telemetry topic.
const TOPIC: &str = "plant/line3/sensor42/temp";

/// A 32-byte payload.
const PAYLOAD: [u8; 32] = [0x42; 32];

const LIMITS: OpLimits = OpLimits {
    max_pub_size: 1_100_000,
    max_topic_length: 1_000_000,
};

/// One encoded PUBLISH frame.
fn publish_frame() -> BytesMut {
    let mut frame = BytesMut::new();
    request::encode_publish(&mut frame, 0x7F, TOPIC.as_bytes(), &PAYLOAD);
    frame
}

/// One encoded pushed message.
fn pushed_frame() -> BytesMut {
    let mut frame = push::message_head(0x7F, TOPIC, PAYLOAD.len());
    frame.extend_from_slice(&PAYLOAD);
    frame
}

/// Splits one PUBLISH off a buffer holding exactly that frame; the buffer
/// is prepared outside the timed region.
#[divan::bench]
fn decode_publish_32b(bencher: Bencher) {
    let frame = publish_frame();
    bencher
        .with_inputs(|| frame.clone())
        .bench_local_refs(|buf| request::decode_op(black_box(buf), LIMITS));
}

/// Splits one pushed message off a buffer, as a data client does.
#[divan::bench]
fn decode_push_32b(bencher: Bencher) {
    let frame = pushed_frame();
    bencher
        .with_inputs(|| frame.clone())
        .bench_local_refs(|buf| push::decode_push(black_box(buf), 1_100_000));
}
