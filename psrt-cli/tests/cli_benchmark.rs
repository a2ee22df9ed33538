//! psrt-cli --benchmark: the built binary runs every stage against an
//! in-process server and prints the table; a refused stage fails.

mod cli_support;

use cli_support::*;
use psrt_proto::broker::AuthConfig;

/// Every stage in order, with the iterations over 2 workers x 200.
const STAGES: [(&str, u64); 12] = [
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
    ("unsubscribe", 400),
];

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
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.first().map(Vec::as_slice),
        Some(&["stage", "iters", "secs", "msecs", "iters/s"][..]),
        "{stdout}"
    );
    assert_eq!(rows.len(), STAGES.len() + 1, "{stdout}");
    for (row, (stage, iterations)) in rows.iter().skip(1).zip(STAGES) {
        assert_eq!(row.len(), 5, "{stdout}");
        assert_eq!(row[0], stage, "{stdout}");
        assert_eq!(row[1], iterations.to_string(), "{stdout}");
        for number in &row[2..] {
            let value: f64 = number.parse().expect("a number");
            assert!(value >= 0.0, "{stdout}");
        }
    }
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
