//! The stats HTTP endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::subscriber;
use crate::Start;
use crate::client::{IO_TIMEOUT, OK, Session};
use crate::fixture::{Server, auth, loopback, spec};

/// Most bytes a stats answer may have before the case gives up.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// An HTTP answer: status code, head (lowercased) and body.
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// `GET path` with optional Basic credentials; reads until the server
/// closes.
fn get(addr: SocketAddr, path: &str, basic: Option<(&str, &str)>) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect stats");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let authorization = basic.map_or(String::new(), |(login, password)| {
        let encoded = STANDARD.encode(format!("{login}:{password}"));
        format!("Authorization: Basic {encoded}\r\n")
    });
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head ends");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    Response {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

/// A server with stats where anonymous is admin.
fn stats_server(start: Start) -> (Server, SocketAddr) {
    let mut spec = spec();
    spec.stats = Some(loopback());
    spec.auth = auth(true, "_: {pub: ['#'], sub: ['#'], admin: true}", &[]);
    let server = Server::start(start, spec);
    let stats = server.addrs().stats.expect("stats bound");
    (server, stats)
}

/// `/status` is JSON with the documented fields and live values.
pub fn stats_status_json(start: Start) {
    let (server, stats) = stats_server(start);
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["s/x"]), OK, "subscribe");
    let mut publisher = Session::anonymous(server.tcp());
    assert_eq!(publisher.publish("s/x", b"12345"), OK, "publish");
    data.expect("s/x", b"12345");
    let response = get(stats, "/status", None);
    assert_eq!(response.status, 200, "status code");
    assert!(
        response.head.contains("application/json"),
        "JSON content type"
    );
    let json: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON body");
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros();
    let time = u128::from(json["time"].as_u64().expect("time"));
    assert!(time.abs_diff(now_us) < 60_000_000, "time is µs since epoch");
    assert!(json["uptime"].as_u64().is_some(), "uptime");
    assert!(
        json["data_queue_size"].as_u64().is_some(),
        "data_queue_size"
    );
    assert!(json["host"].is_string(), "host");
    assert!(json["version"].is_string(), "version");
    let counters = &json["counters"];
    assert!(counters["c_sub_ops"].as_u64() >= Some(1), "c_sub_ops");
    assert!(
        counters["c_pub_messages"].as_u64() >= Some(1),
        "c_pub_messages"
    );
    assert!(counters["c_pub_bytes"].as_u64() >= Some(5), "c_pub_bytes");
    assert!(
        counters["c_sent_messages"].as_u64() >= Some(1),
        "c_sent_messages"
    );
    assert!(counters["c_sent_bytes"].as_u64() >= Some(5), "c_sent_bytes");
    assert!(
        counters["c_sent_latency"].as_u64().is_some(),
        "c_sent_latency"
    );
    let clients = &json["clients"];
    assert_eq!(
        clients["subscription_count"].as_u64(),
        Some(1),
        "subscriptions"
    );
    assert_eq!(clients["client_count"].as_u64(), Some(2), "clients");
    assert!(json["cluster"].is_null(), "no cluster");
}

/// `/metrics` is Prometheus text, counting the connection and login of a
/// live client; `/` is an HTML page polling `/status`.
pub fn stats_metrics_and_index(start: Start) {
    let (server, stats) = stats_server(start);
    let mut client = Session::anonymous(server.tcp());
    assert_eq!(client.publish("m/x", b"1"), OK, "publish");
    let metrics = get(stats, "/metrics", None);
    assert_eq!(metrics.status, 200, "/metrics status");
    let text = String::from_utf8(metrics.body).expect("UTF-8 metrics");
    assert!(text.contains("# TYPE "), "Prometheus TYPE lines");
    assert!(
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .all(|line| line
                .rsplit(' ')
                .next()
                .is_some_and(|v| v.parse::<f64>().is_ok())),
        "every sample ends in a number"
    );
    for sample in [
        "psrt_connections{listener=\"tcp\"} 1",
        "psrt_connections_total{listener=\"tcp\"} 1",
        "psrt_logins_total{outcome=\"granted\"} 1",
        "psrt_pub_messages_total 1",
    ] {
        assert!(
            text.lines().any(|line| line == sample),
            "{sample} in {text}"
        );
    }
    let index = get(stats, "/", None);
    assert_eq!(index.status, 200, "/ status");
    assert!(index.head.contains("text/html"), "HTML content type");
    let html = String::from_utf8_lossy(&index.body);
    assert!(html.contains("/status"), "the page polls /status");
}

/// Without anonymous admin, `/status` needs Basic auth of an admin user.
pub fn stats_require_admin(start: Start) {
    let mut spec = spec();
    spec.stats = Some(loopback());
    let acl = "
_: {pub: ['#'], sub: ['#']}
boss: {admin: true}
worker: {pub: ['#']}
";
    spec.auth = auth(true, acl, &[("boss", "bpw"), ("worker", "wpw")]);
    let server = Server::start(start, spec);
    let stats = server.addrs().stats.expect("stats bound");
    let anonymous = get(stats, "/status", None);
    assert_eq!(anonymous.status, 401, "anonymous");
    assert!(
        anonymous.head.contains("www-authenticate: basic"),
        "asks for Basic"
    );
    assert_eq!(
        get(stats, "/status", Some(("boss", "nope"))).status,
        401,
        "wrong password"
    );
    assert_eq!(
        get(stats, "/status", Some(("worker", "wpw"))).status,
        403,
        "a known user who is not an admin is forbidden"
    );
    assert_eq!(
        get(stats, "/status", Some(("boss", "bpw"))).status,
        200,
        "admin"
    );
    assert_eq!(
        get(stats, "/metrics", Some(("boss", "bpw"))).status,
        200,
        "admin metrics"
    );
}
