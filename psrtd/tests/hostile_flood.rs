//! A flood of wrong-password logins (100 per second over TCP, each a real
//! bcrypt check) and of bad UDP datagrams (garbage, and wrong passwords)
//! while a publisher/subscriber pair runs. The pair's delivery count and
//! latency are measured in one run without and then with the flood: nothing
//! is lost, and the password checks on the blocking pool do not raise the
//! pair's latency measurably.

mod daemon_support;
mod hostile_support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hostile_support::{Broker, Control, OK, Opts, Summary, figure, stamped, unstamp};

/// Messages per phase and their pace (500 per second).
const MESSAGES: u64 = 1_500;
const PACE: Duration = Duration::from_millis(2);
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
) -> Summary {
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
        Summary::of(reader.join().expect("reader"))
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

    let quiet = pair_phase(&mut publisher, &mut data, 0);
    let stop = AtomicBool::new(false);
    let counts = FloodCounts::default();
    let (flooded, flood_time) = std::thread::scope(|scope| {
        for _ in 0..LOGIN_THREADS {
            scope.spawn(|| flood_logins(broker.tcp, &stop, &counts));
        }
        scope.spawn(|| flood_udp(udp, &stop, &counts));
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        let flooded = pair_phase(&mut publisher, &mut data, MESSAGES);
        let flood_time = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        (flooded, flood_time)
    });

    let logins = counts.logins.load(Ordering::Relaxed);
    let refused = counts.logins_refused.load(Ordering::Relaxed);
    let datagrams = counts.datagrams.load(Ordering::Relaxed);
    let acks = counts.udp_err_acks.load(Ordering::Relaxed);
    let secs = flood_time.as_secs_f64() + 0.3;
    figure("flood", format!("pair_quiet {quiet}"));
    figure("flood", format!("pair_flooded {flooded}"));
    figure(
        "flood",
        format!(
            "tcp_bad_logins={logins} ({:.0}/s) refused={refused} udp_datagrams={datagrams} ({:.0}/s) udp_err_acks={acks} bcrypt_cost={BCRYPT_COST} loss=0",
            logins as f64 / secs,
            datagrams as f64 / secs
        ),
    );
    assert_eq!(refused, logins, "a wrong password was accepted");
    assert!(
        logins as f64 / secs >= BAD_LOGINS_PER_SEC as f64 * 0.8,
        "the login flood ran too slowly to mean anything: {logins} in {secs:.1}s"
    );
    assert!(acks > 0, "no wrong-password datagram was answered");
    assert_eq!(quiet.count as u64 + flooded.count as u64, 2 * MESSAGES);
    assert!(
        flooded.p99 <= quiet.p99 * 3 + Duration::from_millis(5),
        "the flood raised the pair's p99: quiet {quiet}, flooded {flooded}"
    );
    assert_eq!(subscriber.nop().expect("subscriber alive"), OK);
    broker.assert_serving("after the flood");
}
