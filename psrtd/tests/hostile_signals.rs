//! Signals during traffic: repeated SIGHUP reloads lose nothing that was
//! accepted, and a user removed from the ACL can no longer publish or
//! subscribe (its live subscription goes too); SIGTERM delivers every
//! accepted message to live subscribers before the process exits, within
//! the drain time.

mod daemon_support;
mod hostile_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hostile_support::{Broker, Control, ERR_ACCESS, OK, Opts, figure, stamped, unstamp};
use nix::sys::signal::Signal;

/// Fewest messages published across the reloads, and reloads sent.
const RELOAD_MESSAGES: u64 = 3_000;
const RELOADS: usize = 20;

fn users() -> Vec<(String, String, String)> {
    let all = "{pub: [\"#\"], sub: [\"#\"]}".to_owned();
    vec![
        ("alice".into(), "alice-pw".into(), all.clone()),
        ("bob".into(), "bob-pw".into(), all),
    ]
}

#[test]
fn sighup_during_traffic_loses_nothing_and_revokes_a_removed_user() {
    let broker = Broker::start(
        "sighup",
        &Opts {
            users: users(),
            ..Opts::default()
        },
    );
    let mut alice = Control::login(broker.tcp, "alice", "alice-pw").expect("alice");
    let mut alice_data = alice.data_socket(broker.tcp);
    assert_eq!(alice.subscribe("traffic/#"), OK);
    let mut bob_sub = Control::login(broker.tcp, "bob", "bob-pw").expect("bob");
    let mut bob_data = bob_sub.data_socket(broker.tcp);
    assert_eq!(bob_sub.subscribe("traffic/#"), OK);
    let mut bob_pub = Control::login(broker.tcp, "bob", "bob-pw").expect("bob");
    let acl_kept = std::fs::read_to_string(&broker.acl_path).expect("acl");
    let acl_without_alice =
        "_: {pub: [\"#\"], sub: [\"#\"], admin: true}\nbob: {pub: [\"#\"], sub: [\"#\"]}\n";
    let published = AtomicU64::new(0);
    let reloading = AtomicBool::new(true);
    let epoch = Instant::now();

    let received = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut seqs = Vec::new();
            loop {
                let (topic, payload) = bob_data.next_message().expect("bob message");
                if topic == "traffic/end" {
                    return seqs;
                }
                seqs.push(unstamp(&payload).0);
            }
        });
        let publisher = scope.spawn(|| {
            let mut seq = 0;
            while seq < RELOAD_MESSAGES || reloading.load(Ordering::Relaxed) {
                assert_eq!(
                    bob_pub.publish("traffic/x", &stamped(seq, epoch, 64)),
                    OK,
                    "refused at {seq}"
                );
                seq += 1;
                published.store(seq, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(bob_pub.publish("traffic/end", b""), OK);
        });
        for reload in 0..RELOADS {
            let acl = if reload < RELOADS / 2 {
                acl_kept.as_str()
            } else {
                acl_without_alice
            };
            std::fs::write(&broker.acl_path, acl).expect("write ACL");
            broker.daemon.signal(Signal::SIGHUP);
            broker
                .daemon
                .wait_for_log("access rules reloaded", reload + 1);
            std::thread::sleep(Duration::from_millis(20));
        }
        let during = published.load(Ordering::Relaxed);
        reloading.store(false, Ordering::Relaxed);
        publisher.join().expect("publisher");
        figure(
            "sighup",
            format!("reloads={RELOADS} messages_published_while_reloading={during}"),
        );
        reader.join().expect("reader")
    });
    let expected: Vec<u64> = (0..received.len() as u64).collect();
    assert!(
        received.len() as u64 >= RELOAD_MESSAGES,
        "got {}",
        received.len()
    );
    assert!(
        received == expected,
        "bob lost or reordered messages across reloads"
    );

    assert_eq!(
        alice.publish("traffic/x", b"revoked"),
        ERR_ACCESS,
        "removed user published"
    );
    assert_eq!(
        alice.subscribe("traffic/#"),
        ERR_ACCESS,
        "removed user subscribed"
    );
    assert!(
        Control::login(broker.tcp, "alice", "alice-pw").is_none(),
        "removed user logged in"
    );
    assert_eq!(bob_pub.publish("traffic/marker", b"after"), OK);
    assert_eq!(bob_data.next_message().expect("marker").0, "traffic/marker");
    alice_data.set_read_timeout(Duration::from_millis(500));
    let mut alice_got_marker = false;
    while let Ok((topic, _)) = alice_data.next_message() {
        alice_got_marker |= topic == "traffic/marker";
    }
    assert!(
        !alice_got_marker,
        "the removed user still received messages"
    );
    figure(
        "sighup",
        format!(
            "published={} delivered_to_bob={} loss=0 removed_user: publish=ERR_ACCESS subscribe=ERR_ACCESS login=refused live_subscription=removed",
            published.load(Ordering::Relaxed),
            received.len()
        ),
    );
}

/// Messages in flight at SIGTERM: enough that the subscriber's socket
/// buffers cannot hold them, fewer than its queue limit.
const TERM_PAYLOAD: usize = 16 * 1024;
const TERM_MAX: u64 = 900;
const TERM_AT: u64 = 600;

#[test]
fn sigterm_delivers_every_accepted_message_before_exit() {
    let mut broker = Broker::start("sigterm", &Opts::default());
    let mut subscriber = Control::login(broker.tcp, "", "").expect("login");
    let mut data = subscriber.data_socket(broker.tcp);
    assert_eq!(subscriber.subscribe("term/#"), OK);
    let mut publisher = Control::login(broker.tcp, "", "").expect("login");
    let acked = AtomicU64::new(0);
    let epoch = Instant::now();
    let signalled = std::thread::scope(|scope| {
        scope.spawn(|| {
            for seq in 0..TERM_MAX {
                let frame =
                    hostile_support::publish_frame("term/x", &stamped(seq, epoch, TERM_PAYLOAD));
                match publisher.request(&frame) {
                    Ok(OK) => acked.store(seq + 1, Ordering::Relaxed),
                    _ => break,
                }
            }
        });
        assert!(hostile_support::poll_for(Duration::from_secs(20), || acked
            .load(Ordering::Relaxed)
            >= TERM_AT));
        broker.daemon.signal(Signal::SIGTERM);
        Instant::now()
    });
    let accepted = acked.load(Ordering::Relaxed);
    // The subscriber only starts reading now: the daemon must wait for it.
    std::thread::sleep(Duration::from_millis(300));
    let mut received = Vec::new();
    while let Ok((_, payload)) = data.next_message() {
        received.push(unstamp(&payload).0);
    }
    let status = broker.daemon.wait_exit();
    let exit_after = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        received.len() as u64 >= accepted,
        "accepted {accepted}, delivered {}",
        received.len()
    );
    let expected: Vec<u64> = (0..received.len() as u64).collect();
    assert!(received == expected, "delivered out of order or with gaps");
    assert!(
        exit_after <= Duration::from_secs(7),
        "drain took {exit_after:?}"
    );
    figure(
        "sigterm",
        format!(
            "payload={TERM_PAYLOAD}B accepted_before_exit={accepted} delivered={} lost=0 exit_after_signal={}ms",
            received.len(),
            exit_after.as_millis()
        ),
    );
}
