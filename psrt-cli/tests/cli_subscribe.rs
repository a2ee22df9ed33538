//! psrt-cli subscribing: a spawned binary prints what a library client
//! publishes.

mod cli_support;

use std::time::Duration;

use cli_support::*;
use psrt_runtime_tokio::client::{Client, ClientOptions};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

/// The next stdout line of the subscriber, within [`LIMIT`].
async fn line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("a line in time")
        .expect("stdout readable")
        .expect("stdout open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_topic_then_payload_as_text_or_hex() {
    let server = start(open_spec()).await;
    let mut child = cli(&[&server.tcp(), "-t", "s/#,other"])
        .spawn()
        .expect("spawns");
    let pid = child.id().expect("running");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();

    let publisher = Client::connect(&server.tcp(), ClientOptions::default())
        .await
        .expect("publisher connects");
    // The subscriber needs a moment to log in and subscribe: publish a
    // probe until it shows up.
    let mut attempts = 0;
    loop {
        publisher.publish("s/ready", "probe").await.expect("probe");
        let got = tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await;
        if let Ok(Ok(Some(first))) = got {
            assert_eq!(first, "s/ready");
            assert_eq!(line(&mut lines).await, "probe");
            break;
        }
        attempts += 1;
        assert!(attempts < 50, "subscriber never showed the probe");
    }
    // Probes sent before the first line may still be in flight.
    publisher.publish("s/marker", "m").await.expect("marker");
    loop {
        let topic = line(&mut lines).await;
        let payload = line(&mut lines).await;
        if topic == "s/marker" {
            assert_eq!(payload, "m");
            break;
        }
        assert_eq!((topic.as_str(), payload.as_str()), ("s/ready", "probe"));
    }

    publisher.publish("s/text", "héllo").await.expect("text");
    publisher
        .publish("ignored", "x")
        .await
        .expect("unsubscribed topic");
    publisher
        .publish("other", vec![0_u8, 1, 0xAB])
        .await
        .expect("binary");
    assert_eq!(line(&mut lines).await, "s/text");
    assert_eq!(line(&mut lines).await, "héllo");
    assert_eq!(line(&mut lines).await, "other");
    assert_eq!(line(&mut lines).await, "hex: 0001ab");

    assert_eq!(child.id(), Some(pid), "still running");
    child.kill().await.expect("killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_exits_non_zero_when_the_server_stops() {
    let server = start(open_spec()).await;
    let addr = server.tcp();
    let child = cli(&[&addr, "--timeout", "1"]).spawn().expect("spawns");
    // Let it connect, then stop the server under it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(server);
    let output = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("exits in time")
        .expect("waited");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("psrt-cli: "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_prints_topic_and_payload_on_one_line() {
    let server = start(open_spec()).await;
    let mut child = cli(&[&server.tcp(), "-v", "-t", "v/#"])
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let publisher = Client::connect(&server.tcp(), ClientOptions::default())
        .await
        .expect("publisher connects");
    let mut attempts = 0;
    loop {
        publisher.publish("v/ready", "probe").await.expect("probe");
        let got = tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await;
        if let Ok(Ok(Some(first))) = got {
            assert_eq!(first, "v/ready probe");
            break;
        }
        attempts += 1;
        assert!(attempts < 50, "subscriber never showed the probe");
    }
    publisher.publish("v/end", "last one").await.expect("end");
    loop {
        let got = line(&mut lines).await;
        if got != "v/ready probe" {
            assert_eq!(got, "v/end last one");
            break;
        }
    }
    child.kill().await.expect("killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_names_its_topic() {
    let mut spec = open_spec();
    spec.auth.acl = acl("_: {sub: ['ok/#'], pub: ['#']}\n");
    let server = start(spec).await;
    let output = run_cli(&[&server.tcp(), "-t", "ok/a,no/b,ok/c"]).await;
    assert_failed_with(&output, "cannot subscribe to no/b: access denied");
}
