//! Slowloris: clients that send one byte per second, and clients that ask
//! for TLS (`EE AA 01`) and then never continue the handshake. Each is
//! closed at the keep-alive timeout (a whole operation, or the greeting and
//! login, must arrive within it), and meanwhile a normal publisher and
//! subscriber see no change: every message arrives, in order, on time.

mod daemon_support;
mod hostile_support;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hostile_support::{
    Broker, Control, OK, Opts, Summary, connect, figure, publish_frame, stamped, unstamp,
};

/// Keep-alive timeout of the daemon, seconds.
const TIMEOUT: f64 = 2.0;
/// Slow clients of each kind.
const PER_KIND: usize = 30;
/// Give up on a slow client after this long.
const GIVE_UP: Duration = Duration::from_secs(8);
/// Messages the healthy pair exchanges, and their pace.
const MESSAGES: u64 = 600;
const PACE: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Greeting and login, one byte per second, from the first byte.
    SlowGreeting,
    /// Logs in at full speed, then sends a PUBLISH one byte per second.
    SlowOperation,
    /// `EE AA 01`, then silence: the TLS handshake never progresses.
    TlsStall,
}

/// Drives one slow client; returns how long after its last complete step
/// (connect, or login for [`Kind::SlowOperation`]) the server closed it,
/// or `None` if it was still open at [`GIVE_UP`].
fn slow_client(addr: SocketAddr, kind: Kind) -> Option<Duration> {
    let (mut stream, script) = match kind {
        Kind::SlowGreeting => (connect(addr), vec![0xEE, 0xAA, 0x00, 1, 0, 0, 0, 0]),
        Kind::SlowOperation => {
            let control = Control::login(addr, "", "").expect("login");
            (control.stream, publish_frame("slow/topic", &[7u8; 64]))
        }
        Kind::TlsStall => (connect(addr), vec![0xEE, 0xAA, 0x01]),
    };
    let start = Instant::now();
    let mut next = 0;
    let mut buf = [0u8; 64];
    while start.elapsed() < GIVE_UP {
        let burst = if kind == Kind::TlsStall {
            script.len()
        } else {
            1
        };
        if next < script.len() {
            let end = (next + burst).min(script.len());
            if stream.write_all(&script[next..end]).is_err() {
                return Some(start.elapsed());
            }
            next = end;
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let second = Instant::now();
        while second.elapsed() < Duration::from_secs(1) {
            match stream.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => return Some(start.elapsed()),
            }
        }
    }
    None
}

/// Publishes [`MESSAGES`] stamped messages at [`PACE`] while a subscriber
/// reads them; returns their delivery latencies, checking order.
fn healthy_pair(broker: &Broker, epoch: Instant) -> Summary {
    let mut subscriber = Control::login(broker.tcp, "", "").expect("login");
    let mut data = subscriber.data_socket(broker.tcp);
    assert_eq!(subscriber.subscribe("pair/#"), OK);
    let mut publisher = Control::login(broker.tcp, "", "").expect("login");
    let latencies = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut latencies = Vec::new();
            for expected in 0..MESSAGES {
                let (_, payload) = data.next_message().expect("pair message");
                let (seq, sent) = unstamp(&payload);
                assert_eq!(seq, expected, "out of order or lost");
                latencies.push(epoch.elapsed() - sent);
            }
            latencies
        });
        for seq in 0..MESSAGES {
            assert_eq!(publisher.publish("pair/x", &stamped(seq, epoch, 32)), OK);
            if seq % 100 == 0 {
                // The subscriber's control socket needs a keep-alive too.
                assert_eq!(subscriber.nop().expect("keep-alive"), OK);
            }
            std::thread::sleep(PACE);
        }
        reader.join().expect("reader")
    });
    Summary::of(latencies)
}

#[test]
fn slow_and_stalled_clients_are_closed_at_the_timeout_and_cost_nothing_meanwhile() {
    let broker = Broker::start(
        "slowloris",
        &Opts {
            timeout: TIMEOUT,
            tls: true,
            ..Opts::default()
        },
    );
    let epoch = Instant::now();
    let baseline = healthy_pair(&broker, epoch);
    let rss_before = broker.rss();
    let kinds = [Kind::SlowGreeting, Kind::SlowOperation, Kind::TlsStall];
    let (closed, during, rss_during) = std::thread::scope(|scope| {
        let clients: Vec<_> = kinds
            .iter()
            .flat_map(|&kind| std::iter::repeat_n(kind, PER_KIND))
            .map(|kind| (kind, scope.spawn(move || slow_client(broker.tcp, kind))))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let rss_during = broker.rss();
        let during = healthy_pair(&broker, epoch);
        let closed: Vec<(Kind, Option<Duration>)> = clients
            .into_iter()
            .map(|(kind, client)| (kind, client.join().expect("slow client")))
            .collect();
        (closed, during, rss_during)
    });

    let timeout = Duration::from_secs_f64(TIMEOUT);
    for kind in kinds {
        let times: Vec<Duration> = closed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, at)| at.unwrap_or_else(|| panic!("{kind:?} client never closed")))
            .collect();
        let summary = Summary::of(times.clone());
        for at in &times {
            assert!(
                *at >= timeout - Duration::from_millis(100)
                    && *at <= timeout + Duration::from_millis(1500),
                "{kind:?} closed after {at:?}, timeout {timeout:?}"
            );
        }
        figure(
            "slowloris",
            format!(
                "{kind:?} clients={} closed_after p50={}ms max={}ms",
                summary.count,
                summary.p50.as_millis(),
                summary.max.as_millis()
            ),
        );
    }
    figure("slowloris", format!("pair_alone {baseline}"));
    figure("slowloris", format!("pair_during {during}"));
    figure(
        "slowloris",
        format!(
            "rss_before={} rss_during={} slow_clients={}",
            rss_before,
            rss_during,
            PER_KIND * kinds.len()
        ),
    );
    assert_eq!(during.count as u64, MESSAGES);
    assert!(
        during.p99 <= baseline.p99 * 3 + Duration::from_millis(5),
        "slow clients raised the pair's p99: alone {baseline}, during {during}"
    );
    assert!(
        broker.wait_clients(0),
        "sessions left: {}",
        broker.client_count()
    );
    broker.assert_serving("after the slow clients");
}
