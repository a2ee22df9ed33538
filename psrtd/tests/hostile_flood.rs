//! A flood of wrong-password logins (100 per second over TCP, each a real
//! bcrypt check) and of bad UDP datagrams (garbage, and wrong passwords)
//! while a publisher/subscriber pair runs.
//!
//! The pair's latency is sampled in interleaved phases (quiet, logins
//! only, logins and UDP; three rounds), so a drift of the machine's load
//! during the test affects every kind alike. The flood threads run at
//! idle CPU priority: an attacker is on another machine, and what is
//! measured is the daemon's share of the cost, not the load generator's
//! competition for the test machine's cores. Nothing may be lost; the
//! password checks (on the daemon's idle-priority check threads) must not
//! raise the pair's latency beyond a noise bound.

mod daemon_support;
mod hostile_support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hostile_support::{Broker, Control, OK, Opts, Summary, figure, stamped, unstamp};

/// Messages per phase and their pace (500 per second).
const MESSAGES: u64 = 1_000;
const PACE: Duration = Duration::from_millis(2);
/// Rounds of (quiet, logins, logins and UDP) phases.
const ROUNDS: usize = 3;
/// Wrong-password TCP logins per second, over this many threads.
const BAD_LOGINS_PER_SEC: u64 = 100;
const LOGIN_THREADS: u64 = 2;
/// Garbage and wrong-password UDP datagrams per second.
const UDP_GARBAGE_PER_SEC: u64 = 1_000;
const UDP_BAD_PASSWORD_PER_SEC: u64 = 100;
/// `htpasswd -B`'s default bcrypt cost.
const BCRYPT_COST: u32 = 5;

#[derive(Default)]
struct FloodCounts {
    logins: AtomicU64,
    logins_refused: AtomicU64,
    datagrams: AtomicU64,
    udp_err_acks: AtomicU64,
}

/// Runs `tick` every `period` until `stop`.
fn paced(stop: &AtomicBool, period: Duration, mut tick: impl FnMut(u64)) {
    let start = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick(n);
        n += 1;
        let next = start + period * u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn flood_logins(addr: SocketAddr, stop: &AtomicBool, counts: &FloodCounts) {
    let period =
        Duration::from_secs(LOGIN_THREADS) / u32::try_from(BAD_LOGINS_PER_SEC).expect("rate");
    paced(stop, period, |n| {
        counts.logins.fetch_add(1, Ordering::Relaxed);
        if Control::login(addr, "alice", &format!("wrong-{n}")).is_none() {
            counts.logins_refused.fetch_add(1, Ordering::Relaxed);
        }
    });
}

fn flood_udp(addr: SocketAddr, stop: &AtomicBool, counts: &FloodCounts) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    let per_tick = UDP_GARBAGE_PER_SEC / 100;
    let bad_every = UDP_GARBAGE_PER_SEC / UDP_BAD_PASSWORD_PER_SEC;
    paced(stop, Duration::from_millis(10), |tick| {
        for i in 0..per_tick {
            let n = tick * per_tick + i;
            let datagram = if n.is_multiple_of(bad_every) {
                let mut d = vec![0xEE, 0xAA, 1, 0, 0];
                d.extend_from_slice(format!("alice\0wrong-{n}\0").as_bytes());
                d.extend_from_slice(b"\x01\x7Fflood/x\0payload");
                d
            } else {
                (0..64u64)
                    .map(|j| (n.wrapping_mul(31).wrapping_add(j * 17)) as u8)
                    .collect()
            };
            if socket.send_to(&datagram, addr).is_ok() {
                counts.datagrams.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut ack = [0u8; 16];
        while let Ok((len, _)) = socket.recv_from(&mut ack) {
            assert!(
                len == 5 && ack[4] != OK,
                "a bad datagram was accepted: {:02X?}",
                &ack[..len]
            );
            counts.udp_err_acks.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// One phase of the pair: [`MESSAGES`] stamped messages at [`PACE`];
/// returns the latencies, checking that every message arrives in order.
fn pair_phase(
    publisher: &mut Control,
    data: &mut hostile_support::DataSocket,
    first: u64,
) -> Vec<Duration> {
    let epoch = Instant::now();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            (first..first + MESSAGES)
                .map(|expected| {
                    let (_, payload) = data.next_message().expect("pair message");
                    let (seq, sent) = unstamp(&payload);
                    assert_eq!(seq, expected, "lost or reordered");
                    epoch.elapsed() - sent
                })
                .collect::<Vec<_>>()
        });
        let start = Instant::now();
        for (i, seq) in (first..first + MESSAGES).enumerate() {
            assert_eq!(publisher.publish("pair/x", &stamped(seq, epoch, 32)), OK);
            let next = start + PACE * u32::try_from(i + 1).expect("small");
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        reader.join().expect("reader")
    })
}

/// What runs next to the pair during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flood {
    Quiet,
    Logins,
    LoginsAndUdp,
}

/// Puts the calling flood thread at idle priority (see the module doc).
fn as_attacker() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        .expect("idle priority for the flood threads");
}

/// Runs one pair phase with `flood` going on; returns the latencies and
/// the phase's duration.
fn phase(
    broker: &Broker,
    udp: SocketAddr,
    pair: (&mut Control, &mut hostile_support::DataSocket),
    first: u64,
    flood: Flood,
    counts: &FloodCounts,
) -> (Vec<Duration>, Duration) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if flood != Flood::Quiet {
            for _ in 0..LOGIN_THREADS {
                scope.spawn(|| {
                    as_attacker();
                    flood_logins(broker.tcp, &stop, counts)
                });
            }
        }
        if flood == Flood::LoginsAndUdp {
            scope.spawn(|| {
                as_attacker();
                flood_udp(udp, &stop, counts)
            });
        }
        let start = Instant::now();
        let samples = pair_phase(pair.0, pair.1, first);
        let took = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        (samples, took)
    })
}

#[test]
fn login_and_udp_floods_do_not_slow_or_lose_a_running_pair() {
    let broker = Broker::start(
        "flood",
        &Opts {
            users: vec![(
                "alice".into(),
                "alice-pw".into(),
                "{pub: [\"#\"], sub: [\"#\"]}".into(),
            )],
            bcrypt_cost: BCRYPT_COST,
            udp: true,
            ..Opts::default()
        },
    );
    let udp = broker.udp.expect("udp");
    let mut subscriber = Control::login(broker.tcp, "", "").expect("login");
    let mut data = subscriber.data_socket(broker.tcp);
    assert_eq!(subscriber.subscribe("pair/#"), OK);
    let mut publisher = Control::login(broker.tcp, "", "").expect("login");

    let counts = FloodCounts::default();
    let kinds = [Flood::Quiet, Flood::Logins, Flood::LoginsAndUdp];
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut flood_time = Duration::ZERO;
    let mut udp_time = Duration::ZERO;
    let mut first = 0;
    for _ in 0..ROUNDS {
        for (k, &flood) in kinds.iter().enumerate() {
            let (got, took) = phase(
                &broker,
                udp,
                (&mut publisher, &mut data),
                first,
                flood,
                &counts,
            );
            first += MESSAGES;
            samples[k].extend(got);
            if flood != Flood::Quiet {
                flood_time += took;
            }
            if flood == Flood::LoginsAndUdp {
                udp_time += took;
            }
        }
    }
    let [quiet, logins, both] = samples.map(Summary::of);

    let logins_made = counts.logins.load(Ordering::Relaxed);
    let refused = counts.logins_refused.load(Ordering::Relaxed);
    let datagrams = counts.datagrams.load(Ordering::Relaxed);
    let acks = counts.udp_err_acks.load(Ordering::Relaxed);
    figure("flood", format!("pair_quiet {quiet}"));
    figure("flood", format!("pair_logins {logins}"));
    figure("flood", format!("pair_logins_udp {both}"));
    figure(
        "flood",
        format!(
            "tcp_bad_logins={logins_made} ({:.0}/s) refused={refused} udp_datagrams={datagrams} ({:.0}/s) udp_err_acks={acks} bcrypt_cost={BCRYPT_COST} loss=0",
            logins_made as f64 / flood_time.as_secs_f64(),
            datagrams as f64 / udp_time.as_secs_f64()
        ),
    );
    assert_eq!(refused, logins_made, "a wrong password was accepted");
    assert!(
        logins_made as f64 / flood_time.as_secs_f64() >= BAD_LOGINS_PER_SEC as f64 * 0.8,
        "the login flood ran too slowly to mean anything: {logins_made} in {flood_time:?}"
    );
    assert!(acks > 0, "no wrong-password datagram was answered");
    let expected = MESSAGES as usize * ROUNDS;
    for summary in [quiet, logins, both] {
        assert_eq!(summary.count, expected, "lost messages");
        assert!(
            summary.p99 <= quiet.p99 * 3 + Duration::from_millis(5),
            "a flood raised the pair's p99: quiet {quiet}, flooded {summary}"
        );
    }
    assert_eq!(subscriber.nop().expect("subscriber alive"), OK);
    broker.assert_serving("after the flood");
}
