//! Connection storms: thousands of connections opened and abandoned at
//! every stage of the protocol, and as many idle clients as the descriptor
//! limit allows (minus a margin). The broker keeps serving, forgets every
//! abandoned session, and its memory returns close to the baseline once
//! the idle clients leave.

mod daemon_support;
mod hostile_support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hostile_support::{
    Broker, Control, DataSocket, OK, Opts, Summary, connect, figure, stamped, unstamp, wait_closed,
};

/// Abandoned connections per stage.
const ABANDONED_PER_STAGE: usize = 600;
/// Connections left half-open (greeting only) for the server to time out.
const HALF_OPEN: usize = 500;
/// Idle sockets at most, whatever the limit (both loopback ends live in
/// this machine: ~19,000 descriptors in all, see FACTS.md).
const MAX_IDLE_SOCKETS: usize = 9_000;
/// The target from the issues: broker memory per idle client, control and
/// data socket included (the original server uses about 26 KiB).
const MAX_BYTES_PER_CLIENT: u64 = 8 * 1024;
/// How long the broker may take to give the memory of departed clients
/// back: the 30 s of issue 12. jemalloc purges over its 10 s decay time,
/// asked on every 5 s housekeeping tick (measured: back in 12–16 s);
/// psrtd trims glibc's heap at its next tick.
const MEMORY_BACK_WITHIN: Duration = Duration::from_secs(30);
/// The idle-client tests hold most of the descriptors: one at a time.
static IDLE_SOCKETS: Mutex<()> = Mutex::new(());
/// Descriptors kept free for the test harness, the daemon's listeners and
/// the other tests of this binary.
const FD_MARGIN: usize = 1_000;
/// Threads opening connections.
const OPENERS: usize = 4;

/// The soft limit on open files of this process (the daemon inherits it).
fn fd_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .expect("Max open files")
}

/// Opens one connection and abandons it at `stage` (no BYE, no close
/// handshake beyond dropping the socket).
fn abandon(addr: SocketAddr, stage: usize) {
    match stage {
        0 => drop(TcpStream::connect(addr).expect("connect")),
        1 => {
            let mut stream = connect(addr);
            let _ = stream.write_all(&[0xEE, 0xAA, 0x00]);
        }
        2 => {
            let mut stream = connect(addr);
            let _ = stream.write_all(&[0xEE, 0xAA, 0x00, 9, 0, 0, 0, b'a']);
        }
        3 => {
            let mut control = Control::login(addr, "", "").expect("login");
            assert_eq!(control.subscribe("abandoned/#"), OK);
            let _ = control.stream.write_all(&[0x01, 0x7F, 50, 0, 0, 0, b'a']);
        }
        _ => {
            let mut control = Control::login(addr, "", "").expect("login");
            let _data = control.data_socket(addr);
            assert_eq!(control.subscribe("abandoned/+"), OK);
        }
    }
}

#[test]
fn thousands_of_abandoned_connections_leave_nothing_behind() {
    let broker = Broker::start(
        "abandoned",
        &Opts {
            timeout: 2.0,
            ..Opts::default()
        },
    );
    broker.assert_serving("before");
    let rss_before = broker.rss();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for opener in 0..OPENERS {
            let addr = broker.tcp;
            scope.spawn(move || {
                for i in (opener..ABANDONED_PER_STAGE * 5).step_by(OPENERS) {
                    abandon(addr, i % 5);
                }
            });
        }
    });
    let storm = start.elapsed();
    let mut half_open: Vec<TcpStream> = (0..HALF_OPEN)
        .map(|_| {
            let mut stream = connect(broker.tcp);
            stream.write_all(&[0xEE, 0xAA]).expect("half greeting");
            stream
        })
        .collect();
    broker.assert_serving("during the half-open connections");
    let closed = half_open
        .iter_mut()
        .map(|stream| wait_closed(stream, Duration::from_secs(6)))
        .filter(Option::is_some)
        .count();
    assert_eq!(closed, HALF_OPEN, "half-open connections the server kept");
    assert!(
        broker.wait_clients(0),
        "abandoned sessions kept: {}",
        broker.client_count()
    );
    assert_eq!(
        broker.subscription_count(),
        0,
        "abandoned subscriptions kept"
    );
    broker.assert_serving("after the storm");
    let rss_after = broker.rss();
    figure(
        "abandoned",
        format!(
            "connections={} in {}ms half_open={HALF_OPEN} closed_by_timeout={closed} rss_before={rss_before} rss_after={rss_after}",
            ABANDONED_PER_STAGE * 5,
            storm.as_millis()
        ),
    );
}

/// An idle client's sockets, held open until dropped.
struct IdleClient {
    _control: TcpStream,
    _data: Option<DataSocket>,
}

/// Opens `count` anonymous control sessions over [`OPENERS`] threads, each
/// with a bound data socket when `with_data`.
fn open_idle(addr: SocketAddr, count: usize, with_data: bool) -> Vec<IdleClient> {
    std::thread::scope(|scope| {
        let openers: Vec<_> = (0..OPENERS)
            .map(|opener| {
                scope.spawn(move || {
                    (opener..count)
                        .step_by(OPENERS)
                        .map(|_| {
                            let control = Control::login(addr, "", "").expect("idle login");
                            let data = with_data.then(|| control.data_socket(addr));
                            IdleClient {
                                _control: control.stream,
                                _data: data,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        openers
            .into_iter()
            .flat_map(|opener| opener.join().expect("opener"))
            .collect()
    })
}

/// A publisher/subscriber pair exchanging `count` stamped messages.
fn pair_latency(broker: &Broker, count: u64) -> Summary {
    let epoch = Instant::now();
    let mut subscriber = Control::login(broker.tcp, "", "").expect("login");
    let mut data = subscriber.data_socket(broker.tcp);
    assert_eq!(subscriber.subscribe("idle-pair/#"), OK);
    let mut publisher = Control::login(broker.tcp, "", "").expect("login");
    let mut latencies = Vec::new();
    for seq in 0..count {
        assert_eq!(
            publisher.publish("idle-pair/x", &stamped(seq, epoch, 32)),
            OK
        );
        let (_, payload) = data.next_message().expect("pair message");
        let (got, sent) = unstamp(&payload);
        assert_eq!(got, seq, "lost or reordered");
        latencies.push(epoch.elapsed() - sent);
    }
    subscriber.bye();
    publisher.bye();
    Summary::of(latencies)
}

#[test]
fn idle_clients_up_to_the_descriptor_limit_are_served_and_forgotten() {
    idle_clients("idle", false, false);
}

/// Holds on every build: on jemalloc, psrtd's housekeeping thread asks
/// for the decay-based purge of the freed per-client memory; on glibc malloc, which keeps it in its fragmented
/// arenas, psrtd's housekeeping thread trims the heap (`psrtd::memory`).
#[test]
fn idle_clients_memory_returns_to_the_baseline() {
    idle_clients("idle_data", true, true);
}

/// Connects as many idle clients as the descriptor limit allows (with a
/// data socket each when `with_data`), checks the broker's memory per
/// client and that it still serves, lets them leave, and (when
/// `require_memory_back`) waits for its memory to return.
fn idle_clients(scenario: &str, with_data: bool, require_memory_back: bool) {
    let _one_at_a_time = IDLE_SOCKETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let limit = fd_limit();
    let sockets_each = if with_data { 2 } else { 1 };
    let idle = MAX_IDLE_SOCKETS.min(limit.saturating_sub(FD_MARGIN) / 2) / sockets_each;
    assert!(
        idle >= 1_000,
        "descriptor limit {limit} too low for the test"
    );
    let broker = Broker::start(scenario, &Opts::default());
    broker.assert_serving("warm-up");
    let alone = pair_latency(&broker, 200);
    assert!(broker.wait_clients(0));
    std::thread::sleep(Duration::from_millis(300));
    let rss_base = broker.rss();

    let start = Instant::now();
    let clients = open_idle(broker.tcp, idle, with_data);
    let opened = start.elapsed();
    assert_eq!(clients.len(), idle);
    assert!(
        broker.wait_clients(idle as u64),
        "sessions: {}",
        broker.client_count()
    );
    let rss_full = broker.rss();
    let loaded = pair_latency(&broker, 200);
    broker.assert_serving("with every idle client connected");

    drop(clients);
    assert!(
        broker.wait_clients(0),
        "sessions after the idle clients left: {}",
        broker.client_count()
    );
    let grown = rss_full.saturating_sub(rss_base);
    let allowed = rss_base + grown / 4 + 4 * 1024 * 1024;
    let waited = Instant::now();
    let mut rss_after = broker.rss();
    while require_memory_back && rss_after > allowed && waited.elapsed() < MEMORY_BACK_WITHIN {
        std::thread::sleep(Duration::from_millis(250));
        rss_after = broker.rss();
    }
    let back_in = waited.elapsed();
    broker.assert_serving("after the idle clients left");

    let per_client = grown / idle as u64;
    figure(
        scenario,
        format!(
            "fd_limit={limit} idle_clients={idle} sockets_each={sockets_each} opened_in={}ms",
            opened.as_millis()
        ),
    );
    figure(
        scenario,
        format!(
            "rss_base={rss_base} rss_full={rss_full} rss_after={rss_after} after_wait={}ms per_client={per_client}",
            back_in.as_millis()
        ),
    );
    figure(scenario, format!("pair_alone {alone}"));
    figure(scenario, format!("pair_with_idle {loaded}"));
    assert!(
        per_client < MAX_BYTES_PER_CLIENT,
        "{per_client} bytes per idle client ({sockets_each} sockets each)"
    );
    assert!(
        !require_memory_back || rss_after <= allowed,
        "memory kept after the clients left: base {rss_base}, full {rss_full}, after {rss_after}"
    );
}
