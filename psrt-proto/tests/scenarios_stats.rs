//! Statistics (PROTOCOL.md "Stats HTTP"): the counters as traffic moves,
//! and the HTTP endpoint's pages and access rules.

mod support;

use std::time::Duration;

use base64::Engine as _;
use psrt_proto::broker::Broker;
use psrt_proto::conn::Action;
use psrt_proto::http::StatusInfo;
use psrt_proto::stats_conn::StatsConnection;
use psrt_proto::{Limits, TxBuf};
use support::*;

fn info() -> StatusInfo {
    StatusInfo {
        time_us: 1_700_000_000_000_000,
        uptime_s: 42,
        host: "testhost".into(),
        version: "0.1.0".into(),
        build: "runtime tokio; allocator system".into(),
        connections: Default::default(),
        process: None,
        history: Default::default(),
    }
}

/// One HTTP exchange: the response text, and whether a password check was
/// needed (run inline).
fn http(broker: &mut Broker, request: &str) -> (String, bool) {
    let now = start();
    let mut conn = StatsConnection::new(Duration::from_secs(5), now);
    conn.read_buf().extend_from_slice(request.as_bytes());
    conn.handle_input(broker, &info());
    let mut checked = false;
    while let Some(Action::CheckPassword(check)) = conn.poll_action() {
        checked = true;
        let ok = check.verify();
        conn.password_checked(ok, broker, &info());
    }
    assert!(conn.is_closed(), "one request, one answer");
    let mut tx = TxBuf::new();
    conn.poll_transmit(&mut tx);
    (String::from_utf8(tx.to_vec()).expect("HTTP text"), checked)
}

fn body(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .expect("a head and a body")
}

fn basic(login: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    format!("GET /status HTTP/1.1\r\nAuthorization: Basic {encoded}\r\n\r\n")
}

#[test]
fn counters_follow_publishes_subscriptions_and_deliveries() {
    let mut server = Server::open();
    let (c, token) = server.anon();
    let d = server.data(token);
    assert_eq!(server.request(c, &subscribe(&["a", "b", "c/#"])), [OK]);
    assert_eq!(server.request(c, &publish(b"a", b"12345")), [OK]);
    assert_eq!(server.request(c, &publish(b"b", b"")), [OK]);
    assert_eq!(server.request(c, &publish(b"nobody", b"xyz")), [OK]);
    let counters = server.node.broker().counters();
    assert_eq!(counters.c_sub_ops, 3);
    assert_eq!(counters.c_pub_messages, 3);
    assert_eq!(counters.c_pub_bytes, 8);
    assert_eq!(
        counters.c_sent_messages, 0,
        "nothing sent before the socket is written"
    );

    server.at(Duration::from_micros(1500));
    server.recv(d);
    let counters = server.node.broker().counters();
    assert_eq!(counters.c_sent_messages, 2);
    assert_eq!(counters.c_sent_bytes, 5, "payload bytes");
    assert_eq!(counters.c_sent_latency, 3000, "two messages 1,500 µs each");

    assert_eq!(server.request(c, &publish(b"c/1", b"zz")), [OK]);
    server.at(Duration::from_micros(2000));
    server.recv(d);
    let counters = server.node.broker().counters();
    assert_eq!((counters.c_sent_messages, counters.c_sent_bytes), (3, 7));
    assert_eq!(counters.c_sent_latency, 3500);
}

#[test]
fn status_json_has_upstreams_fields() {
    let mut server = Server::new(
        Limits::default(),
        auth("_: {sub: ['#'], pub: ['#'], admin: true}\n", &[], true),
    );
    let (c, _) = server.anon();
    assert_eq!(server.request(c, &subscribe(&["x", "y"])), [OK]);
    assert_eq!(server.request(c, &publish(b"x", b"abc")), [OK]);
    server.anon();
    let (response, checked) = http(
        server.node.broker_mut(),
        "GET /status HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert!(!checked);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let json: serde_json::Value = serde_json::from_str(body(&response)).expect("JSON body");
    assert_eq!(json["time"], 1_700_000_000_000_000u64);
    assert_eq!(json["uptime"], 42);
    assert_eq!(json["data_queue_size"], 1024);
    assert_eq!(json["host"], "testhost");
    assert_eq!(json["version"], "0.1.0");
    assert_eq!(json["counters"]["c_sub_ops"], 2);
    assert_eq!(json["counters"]["c_pub_messages"], 1);
    assert_eq!(json["counters"]["c_pub_bytes"], 3);
    assert_eq!(json["counters"]["c_sent_messages"], 0);
    assert_eq!(json["counters"]["c_sent_bytes"], 0);
    assert_eq!(json["counters"]["c_sent_latency"], 0);
    assert_eq!(json["clients"]["subscription_count"], 2);
    assert_eq!(json["clients"]["client_count"], 2);
    assert!(json["cluster"].is_null());
}

const ADMIN_ACL: &str = "
_: {sub: ['#'], pub: ['#']}
root: {admin: true}
user: {sub: ['#']}
";

fn protected() -> Server {
    Server::new(
        Limits::default(),
        auth(ADMIN_ACL, &[("root", "r00t"), ("user", "u")], true),
    )
}

#[test]
fn without_credentials_a_non_admin_anonymous_gets_401() {
    let mut server = protected();
    let broker = server.node.broker_mut();
    let (response, checked) = http(broker, "GET /status HTTP/1.1\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{response}"
    );
    assert!(response.contains("WWW-Authenticate: Basic realm=\"psrt\"\r\n"));
    assert!(!checked);
}

#[test]
fn basic_auth_of_an_admin_works_after_a_password_check_then_from_the_cache() {
    let mut server = protected();
    let broker = server.node.broker_mut();
    let (response, checked) = http(broker, &basic("root", "r00t"));
    assert!(checked, "bcrypt ran as an action");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(body(&response).contains("\"c_pub_messages\""));
    let (response, checked) = http(broker, &basic("root", "r00t"));
    assert!(!checked, "cached");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn basic_auth_with_a_wrong_password_gets_401_and_a_non_admin_403() {
    let mut server = protected();
    let broker = server.node.broker_mut();
    for (login, password) in [("root", "bad"), ("user", "bad"), ("ghost", "x")] {
        let (response, _) = http(broker, &basic(login, password));
        assert!(response.starts_with("HTTP/1.1 401 "), "{login}: {response}");
    }
    // Twice: after the password check, then from the credential cache.
    for _ in 0..2 {
        let (response, _) = http(broker, &basic("user", "u"));
        assert!(response.starts_with("HTTP/1.1 403 "), "{response}");
        assert!(!response.contains("WWW-Authenticate"), "{response}");
    }
}

#[test]
fn metrics_are_prometheus_text() {
    let mut server = Server::new(
        Limits::default(),
        auth("_: {sub: ['#'], pub: ['#'], admin: true}\n", &[], true),
    );
    let (c, _) = server.anon();
    assert_eq!(server.request(c, &publish(b"m", b"1234")), [OK]);
    let (response, _) = http(server.node.broker_mut(), "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(
        response.contains("Content-Type: text/plain; version=0.0.4"),
        "{response}"
    );
    let text = body(&response);
    assert!(
        text.contains("# TYPE psrt_pub_messages_total counter\n"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "psrt_pub_messages_total 1"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "psrt_pub_bytes_total 4"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "psrt_clients 1"), "{text}");
}

#[test]
fn a_metrics_user_reads_metrics_and_nothing_else() {
    let acl = "root: {admin: true}\nprom: {metrics: true}\n";
    let mut server = Server::new(
        Limits::default(),
        auth(acl, &[("root", "r00t"), ("prom", "scrape")], true),
    );
    let broker = server.node.broker_mut();
    let encoded = base64::engine::general_purpose::STANDARD.encode("prom:scrape");
    let metrics = format!("GET /metrics HTTP/1.1\r\nAuthorization: Basic {encoded}\r\n\r\n");
    for _ in 0..2 {
        let (response, _) = http(broker, &metrics);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(body(&response).contains("psrt_build_info"));
    }
    let (status, _) = http(broker, &basic("prom", "scrape"));
    assert!(status.starts_with("HTTP/1.1 403 "), "{status}");
    let (root, _) = http(broker, &basic("root", "r00t"));
    assert!(root.starts_with("HTTP/1.1 200 OK\r\n"), "{root}");
}

#[test]
fn other_paths_and_methods() {
    let mut server = Server::new(Limits::default(), auth("_: {admin: true}\n", &[], true));
    let broker = server.node.broker_mut();
    assert!(
        http(broker, "GET /nope HTTP/1.1\r\n\r\n")
            .0
            .starts_with("HTTP/1.1 404 ")
    );
    assert!(
        http(broker, "POST /status HTTP/1.1\r\n\r\n")
            .0
            .starts_with("HTTP/1.1 405 ")
    );
    assert!(
        http(broker, "garbage\r\n\r\n")
            .0
            .starts_with("HTTP/1.1 400 ")
    );
    let (index, _) = http(broker, "GET / HTTP/1.1\r\n\r\n");
    assert!(index.starts_with("HTTP/1.1 200 OK\r\n") && index.contains("text/html"));
    let (head, _) = http(broker, "HEAD /status HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
}
