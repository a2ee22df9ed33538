//! A subscriber that stops reading its data socket: it alone is dropped
//! (slow consumer), while every other subscriber receives every message in
//! order and the publisher is never refused.

mod daemon_support;
mod hostile_support;

use std::time::{Duration, Instant};

use hostile_support::{Broker, Control, DataSocket, OK, Opts, figure, stamped, unstamp};

/// Healthy subscribers reading at full speed.
const HEALTHY: usize = 3;
/// Messages published, and their size: far more than the stalled
/// subscriber's socket buffers and queue can hold.
const MESSAGES: u64 = 4_000;
const PAYLOAD: usize = 4 * 1024;
/// Per-client queue of the daemon, in messages. The healthy readers are
/// threads on the same cores as the daemon and the publisher: the queue
/// must cover a reader descheduled for a few milliseconds at full publish
/// rate (about 30,000 messages/s here), or a healthy reader becomes a slow
/// consumer by the scheduler's chance. 512 messages (2 MiB) is about 17 ms
/// of slack and still an eighth of what the stalled subscriber is sent.
const DATA_QUEUE: usize = 512;

fn read_all(mut data: DataSocket) -> Vec<u64> {
    (0..MESSAGES)
        .map(|_| unstamp(&data.next_message().expect("healthy subscriber message").1).0)
        .collect()
}

/// Reads what the server had already written to the stalled subscriber,
/// until the server's close; the number of messages it got.
fn drain_stalled(mut data: DataSocket) -> u64 {
    data.set_read_timeout(Duration::from_secs(5));
    let mut got = 0;
    while data.next_message().is_ok() {
        got += 1;
    }
    got
}

#[test]
fn a_subscriber_that_stops_reading_is_dropped_alone() {
    let broker = Broker::start(
        "slow-subscriber",
        &Opts {
            data_queue: DATA_QUEUE,
            ..Opts::default()
        },
    );
    let mut stalled = Control::login(broker.tcp, "", "").expect("login");
    let stalled_data = stalled.data_socket(broker.tcp);
    assert_eq!(stalled.subscribe("feed/#"), OK);
    let mut healthy_controls = Vec::new();
    let mut healthy_data = Vec::new();
    for _ in 0..HEALTHY {
        let mut control = Control::login(broker.tcp, "", "").expect("login");
        healthy_data.push(control.data_socket(broker.tcp));
        assert_eq!(control.subscribe("feed/#"), OK);
        healthy_controls.push(control);
    }
    let mut publisher = Control::login(broker.tcp, "", "").expect("login");
    let epoch = Instant::now();
    let start = Instant::now();
    let received: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let readers: Vec<_> = healthy_data
            .into_iter()
            .map(|data| scope.spawn(move || read_all(data)))
            .collect();
        for seq in 0..MESSAGES {
            assert_eq!(
                publisher.publish("feed/x", &stamped(seq, epoch, PAYLOAD)),
                OK,
                "publisher refused at {seq}"
            );
        }
        readers
            .into_iter()
            .map(|reader| reader.join().expect("reader"))
            .collect()
    });
    let elapsed = start.elapsed();
    let expected: Vec<u64> = (0..MESSAGES).collect();
    for (i, got) in received.iter().enumerate() {
        assert!(
            *got == expected,
            "healthy subscriber {i} lost or reordered messages"
        );
    }
    broker.daemon.wait_for_log("slow consumer", 1);
    assert_eq!(
        broker.daemon.log().matches("slow consumer").count(),
        1,
        "more than one client dropped:\n{}",
        broker.daemon.log()
    );
    let stalled_got = drain_stalled(stalled_data);
    assert!(
        stalled_got < MESSAGES,
        "the stalled subscriber was never dropped"
    );
    // Its control session lives on; only the data socket was dropped.
    assert_eq!(stalled.nop().expect("stalled control"), OK);
    for control in &mut healthy_controls {
        assert_eq!(control.nop().expect("healthy control"), OK);
    }
    broker.assert_serving("after the slow consumer");
    figure(
        "slow-subscriber",
        format!(
            "messages={MESSAGES} payload={PAYLOAD}B healthy={HEALTHY} each_received={} in_order=yes stalled_received_before_drop={stalled_got} dropped=1 elapsed={}ms loss=0",
            received[0].len(),
            elapsed.as_millis()
        ),
    );
}
