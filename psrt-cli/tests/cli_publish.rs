//! psrt-cli publishing over TCP and UDP, observed with a library client.

mod cli_support;

use cli_support::*;
use psrt_proto::broker::AuthConfig;

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Users `alice` (password `secret`, key [`KEY_HEX`]) who may publish
/// under `ok/` only, anonymous full access, UDP on.
async fn restricted_server() -> TestServer {
    let mut spec = open_spec();
    spec.udp.push("127.0.0.1:0".parse().expect("address"));
    spec.auth = AuthConfig {
        allow_anonymous: true,
        acl: acl("alice: {pub: ['ok/#']}\n_: {sub: ['#'], pub: ['#']}\n"),
        passwords: Some(passwords(&[("alice", "secret")])),
        keys: Some(keys(&format!("alice: {KEY_HEX}\n"))),
    };
    start(spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_text_to_every_topic() {
    let server = start(open_spec()).await;
    let (_observer, mut messages) = observer(&server.tcp(), "#").await;
    let output = run_cli(&[&server.tcp(), "-t", "a/1,b/2", "-m", "hello"]).await;
    assert_ok(&output);
    for topic in ["a/1", "b/2"] {
        let message = next(&mut messages).await;
        assert_eq!(message.topic_str(), Some(topic));
        assert_eq!(&message.payload[..], b"hello");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_payload_has_the_asked_size() {
    let server = start(open_spec()).await;
    let (_observer, mut messages) = observer(&server.tcp(), "gen").await;
    assert_ok(&run_cli(&[&server.tcp(), "-t", "gen", "-m", "==1K"]).await);
    let message = next(&mut messages).await;
    assert_eq!(message.payload.len(), 1024);
    assert!(message.payload.starts_with(b"abc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("psrt-cli-test-{}.sock", std::process::id()));
    let mut spec = open_spec();
    spec.unix.push(path.clone());
    let server = start(spec).await;
    let (_observer, mut messages) = observer(&server.tcp(), "u").await;
    let target = path.to_str().expect("utf-8 path");
    assert_ok(&run_cli(&[target, "-t", "u", "-m", "via unix"]).await);
    assert_eq!(&next(&mut messages).await.payload[..], b"via unix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_non_zero_with_a_clear_message() {
    let server = restricted_server().await;
    let addr = server.tcp();
    let denied = run_cli(&[
        &addr, "-u", "alice", "-p", "secret", "-t", "no/x", "-m", "x",
    ])
    .await;
    assert_failed_with(&denied, "cannot publish to no/x: access denied");
    let refused = run_cli(&[&addr, "-u", "alice", "-p", "bad", "-t", "ok/x", "-m", "x"]).await;
    assert_failed_with(&refused, "login refused");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let unreachable = run_cli(&[&closed, "-t", "a", "-m", "x"]).await;
    assert_failed_with(&unreachable, &format!("cannot connect to {closed}"));

    let bad_size = run_cli(&[&addr, "-t", "a", "-m", "==12Q"]).await;
    assert_failed_with(&bad_size, "invalid size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_udp_plain_and_sealed() {
    let server = restricted_server().await;
    let udp = server.addrs.udp[0].to_string();
    let (_observer, mut messages) = observer(&server.tcp(), "ok/#").await;

    let plain = run_cli(&[
        &udp,
        "--udp",
        "--udp-ack",
        "-u",
        "alice",
        "-p",
        "secret",
        "-t",
        "ok/plain",
        "-m",
        "p",
    ])
    .await;
    assert_ok(&plain);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "OK\n");
    assert_eq!(next(&mut messages).await.topic_str(), Some("ok/plain"));

    for cipher in ["aes128", "aes256"] {
        let sealed = run_cli(&[
            &udp,
            "--udp",
            "--udp-ack",
            "-u",
            "alice",
            "--udp-key",
            KEY_HEX,
            "--udp-cipher",
            cipher,
            "-t",
            "ok/sealed",
            "-m",
            cipher,
        ])
        .await;
        assert_ok(&sealed);
        assert_eq!(&next(&mut messages).await.payload[..], cipher.as_bytes());
    }

    let no_ack = run_cli(&[&udp, "--udp", "-t", "ok/anon", "-m", "fire"]).await;
    assert_ok(&no_ack);
    assert_eq!(&next(&mut messages).await.payload[..], b"fire");

    let denied = run_cli(&[
        &udp,
        "--udp",
        "--udp-ack",
        "-u",
        "alice",
        "-p",
        "secret",
        "-t",
        "no/x",
        "-m",
        "x",
    ])
    .await;
    assert_failed_with(&denied, "access denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_from_a_file_or_stdin() {
    use tokio::io::AsyncWriteExt as _;

    let server = start(open_spec()).await;
    let (_observer, mut messages) = observer(&server.tcp(), "p/#").await;
    let file = std::env::temp_dir().join(format!("psrt-cli-payload-{}", std::process::id()));
    std::fs::write(&file, [0_u8, 1, 2, 0xFF]).expect("payload file");
    let path = file.to_str().expect("utf-8 path");
    assert_ok(&run_cli(&[&server.tcp(), "-t", "p/file", "-f", path]).await);
    assert_eq!(&next(&mut messages).await.payload[..], [0, 1, 2, 0xFF]);
    std::fs::remove_file(&file).expect("removed");
    let missing = run_cli(&[&server.tcp(), "-t", "p/file", "-f", path]).await;
    assert_failed_with(&missing, "cannot read the payload file");

    let mut child = cli(&[&server.tcp(), "-t", "p/stdin", "-s"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"line 1\nline 2\n").await.expect("written");
    drop(stdin);
    let output = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("in time")
        .expect("runs");
    assert_ok(&output);
    assert_eq!(&next(&mut messages).await.payload[..], b"line 1\nline 2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_udp_frame_is_an_error_before_sending() {
    let server = restricted_server().await;
    let udp = server.addrs.udp[0].to_string();
    let big = run_cli(&[&udp, "--udp", "-t", "ok/big", "-m", "==5000"]).await;
    assert_failed_with(&big, "above the frame size of 4096");
    assert_failed_with(&big, "ok/big");
    let raised = run_cli(&[
        &udp,
        "--udp",
        "--udp-frame-size",
        "9000",
        "-t",
        "t",
        "-m",
        "==5000",
    ])
    .await;
    assert_ok(&raised);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_server_gets_a_hint_and_errors_name_the_port() {
    let mut spec = open_spec();
    spec.conn.allow_no_tls = false;
    let server = start(spec).await;
    let refused = run_cli(&[&server.tcp(), "-t", "a", "-m", "x"]).await;
    assert_failed_with(&refused, "probably requires TLS; try --tls");
    assert_failed_with(&refused, &server.tcp());
}
