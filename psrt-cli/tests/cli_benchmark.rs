//! psrt-cli --benchmark: the built binary runs every stage against an
//! in-process server and prints the table; a refused stage fails; with
//! --benchmark-cluster-sub it receives on a second node what the first
//! replicates.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::*;
use psrt_proto::broker::AuthConfig;
use psrt_proto::cluster::{ClusterSpec, LinkState, PeerSpec};
use psrt_proto::config::PeerConfig;
use psrt_runtime_tokio::server::{Server, ServerHandle};

/// Every stage in order, with the iterations over 2 workers x 200.
const STAGES: [(&str, u64); 13] = [
    ("subscribe", 400),
    ("pub-10b", 400),
    ("pub-read-10b", 400),
    ("pub-1kb", 400),
    ("pub-read-1kb", 400),
    ("pub-10kb", 400),
    ("pub-read-10kb", 400),
    ("pub-100kb", 40),
    ("pub-read-100kb", 40),
    ("pub-1mb", 4),
    ("pub-read-1mb", 4),
    ("latency-10b", 40),
    ("unsubscribe", 400),
];

/// The header of the results table.
const HEADER: [&str; 7] = [
    "stage", "iters", "secs", "msecs", "iters/s", "p50-us", "p99-us",
];

/// Checks the table in `stdout`: every stage in order with its
/// iterations, non-negative figures, and latencies exactly for the stages
/// that receive.
fn check_table(stdout: &str) {
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.first().map(Vec::as_slice),
        Some(&HEADER[..]),
        "{stdout}"
    );
    assert_eq!(rows.len(), STAGES.len() + 1, "{stdout}");
    for (row, (stage, iterations)) in rows.iter().skip(1).zip(STAGES) {
        assert_eq!(row.len(), HEADER.len(), "{stdout}");
        assert_eq!(row[0], stage, "{stdout}");
        assert_eq!(row[1], iterations.to_string(), "{stdout}");
        for number in &row[2..5] {
            let value: f64 = number.parse().expect("a number");
            assert!(value >= 0.0, "{stdout}");
        }
        let receives = stage.starts_with("pub-read") || stage.starts_with("latency");
        for latency in &row[5..] {
            assert_eq!(latency.parse::<u64>().is_ok(), receives, "{stdout}");
            assert_eq!(*latency == "-", !receives, "{stdout}");
        }
    }
}

/// A server run here, whose broker the test can look at; stopped on
/// drop.
struct Node {
    addr: String,
    handle: ServerHandle,
}

impl Node {
    async fn start(spec: psrt_proto::spec::ServerSpec) -> Node {
        let server = Server::bind(spec).await.expect("server binds");
        let addr = server.addrs().tcp[0].to_string();
        let handle = server.handle();
        tokio::spawn(server.run());
        Node { addr, handle }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.handle.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_runs_and_is_tabled() {
    let server = start(open_spec()).await;
    let output = run_cli(&[
        &server.tcp(),
        "--benchmark",
        "--benchmark-workers",
        "2",
        "--benchmark-iterations",
        "200",
    ])
    .await;
    assert_ok(&output);
    check_table(&String::from_utf8_lossy(&output.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_sub_node_receives_what_the_target_replicates() {
    // Open specs grant anonymous `replicator`, so A links to B as `_`.
    let b = Node::start(open_spec()).await;
    let mut spec = open_spec();
    spec.cluster = ClusterSpec {
        peers: vec![PeerSpec {
            config: PeerConfig {
                path: b.addr.clone(),
                user: String::new(),
                password: String::new(),
                timeout: Duration::from_secs(5),
                tls: false,
                tls_ca: None,
            },
            ca_pem: None,
        }],
        ..ClusterSpec::default()
    };
    let a = Node::start(spec).await;
    let peer = || {
        a.handle
            .with_broker(|broker| broker.cluster().stats().first().cloned())
    };
    let deadline = Instant::now() + LIMIT;
    while peer().is_none_or(|peer| peer.state != LinkState::Up) {
        assert!(Instant::now() < deadline, "A's link to B never came up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let output = run_cli(&[
        &a.addr,
        "--benchmark",
        "--benchmark-workers",
        "2",
        "--benchmark-iterations",
        "200",
        "--benchmark-cluster-sub",
        &b.addr,
    ])
    .await;
    assert_ok(&output);
    check_table(&String::from_utf8_lossy(&output.stdout));
    let received: u64 = STAGES
        .iter()
        .filter(|(stage, _)| stage.starts_with("pub-read") || stage.starts_with("latency"))
        .map(|(_, iterations)| iterations)
        .sum();
    let stats = peer().expect("B listed");
    assert_eq!(
        stats.sent, received,
        "every received message crossed the link: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stage_fails_the_run() {
    let mut spec = open_spec();
    spec.auth = AuthConfig {
        allow_anonymous: true,
        acl: acl("_: {sub: ['benchmark/#'], pub: ['other/#']}\n"),
        passwords: None,
        keys: None,
    };
    let server = start(spec).await;
    let output = run_cli(&[
        &server.tcp(),
        "--benchmark",
        "--benchmark-workers",
        "1",
        "--benchmark-iterations",
        "10",
    ])
    .await;
    assert_failed_with(&output, "benchmark: stage pub-10b, worker 0: access denied");
    assert!(output.stdout.is_empty(), "no table after a failure");
}
