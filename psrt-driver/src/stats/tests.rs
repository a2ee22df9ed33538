//! `/metrics` as a Prometheus server reads it: the whole body goes through
//! the `prometheus-parse` text-format parser.

use std::net::SocketAddr;
use std::path::Path;
use std::task::Waker;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use psrt_proto::broker::{AuthConfig, LoginDecision, Origin};
use psrt_proto::config::parse_acl;
use psrt_proto::conn::ListenerKind;
use psrt_proto::spec::ServerSpec;
use psrt_proto::wire::request::Publish;
use rand::SeedableRng;

use super::*;
use crate::core::ServerCore;

fn scrape(core: &ServerCore) -> Scrape {
    let now = Instant::now();
    let mut conn = StatsConnection::new(Duration::from_secs(5), now);
    conn.read_buf()
        .extend_from_slice(b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(
        core.stats_input(&mut conn, now, SystemTime::now())
            .is_none()
    );
    let mut tx = TxBuf::new();
    conn.poll_transmit(&mut tx);
    let text = String::from_utf8(tx.to_vec()).expect("text");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    Scrape::parse(lines).expect("valid Prometheus text")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name}{labels:?}"));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

fn origin(peer: &str) -> Origin {
    Origin {
        unix: false,
        peer: peer.to_owned(),
    }
}

#[test]
fn metrics_parse_and_count_what_happened() {
    let mut spec = ServerSpec::open("127.0.0.1:0".parse::<SocketAddr>().expect("addr"));
    spec.build = "runtime smol; allocator system".into();
    let acl = "_: {sub: ['#'], pub: ['ok/#'], admin: true}\n";
    spec.auth = AuthConfig {
        allow_anonymous: true,
        acl: parse_acl(acl, Path::new("acl"), 32).expect("acl"),
        passwords: None,
        keys: None,
    };
    let start = Instant::now();
    let core = ServerCore::new(&spec, Box::new(rand::rngs::StdRng::seed_from_u64(5)), start);
    core.metrics.opened(ListenerKind::Tls);
    core.metrics.opened(ListenerKind::Tcp);
    {
        let mut broker = core.lock();
        let LoginDecision::Granted(session, token) = broker.begin_login(b"", b"", origin("a:1"))
        else {
            panic!("anonymous may log in");
        };
        broker.begin_login(b"ghost", b"x", origin("b:2"));
        assert!(broker.bind_data(&token, Waker::noop().clone()).is_some());
        broker.subscribe(session, b"#");
        broker
            .publish(session, &Publish::new(0, b"ok/1", b"four"), start)
            .expect("answered");
        broker
            .publish(session, &Publish::new(0, b"no/1", b""), start)
            .expect("answered");
        let mut tx = TxBuf::new();
        let later = start + Duration::from_millis(3);
        broker.take_messages(session, later, &mut tx, 1 << 20);
        broker.handle_datagram(b"\xEE\xAA\x01\x00\x00", &"c:3", start);
    }
    let scrape = scrape(&core);
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "psrt_build_info")
        .expect("build info");
    assert_eq!(build.labels.get("runtime"), Some("smol"));
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    let expected = [
        ("psrt_connections_total", &[("listener", "tls")][..], 1.0),
        ("psrt_connections", &[("listener", "tcp")][..], 1.0),
        ("psrt_connections", &[("listener", "unix")][..], 0.0),
        ("psrt_logins_total", &[("outcome", "granted")][..], 1.0),
        ("psrt_logins_total", &[("outcome", "no_acl_entry")][..], 1.0),
        (
            "psrt_acl_denials_total",
            &[("operation", "publish")][..],
            1.0,
        ),
        (
            "psrt_udp_frames_total",
            &[("outcome", "malformed")][..],
            1.0,
        ),
        ("psrt_pub_messages_total", &[][..], 1.0),
        ("psrt_pub_bytes_total", &[][..], 4.0),
        ("psrt_sent_messages_total", &[][..], 1.0),
        ("psrt_subscriptions", &[][..], 1.0),
        ("psrt_queued_messages", &[][..], 0.0),
        ("psrt_slow_consumer_drops_total", &[][..], 0.0),
        ("psrt_tls_handshake_failures_total", &[][..], 0.0),
    ];
    for (name, labels, want) in expected {
        assert_eq!(value(&scrape, name, labels), want, "{name}{labels:?}");
    }
    assert!(value(&scrape, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&scrape, "process_open_fds", &[]) >= 3.0);
    let latency = scrape
        .samples
        .iter()
        .find(|s| s.metric == "psrt_delivery_latency_seconds")
        .expect("the latency histogram");
    let Value::Histogram(buckets) = &latency.value else {
        panic!("not a histogram: {:?}", latency.value);
    };
    let count_at = |le: f64| {
        buckets
            .iter()
            .find(|b| b.less_than == le || (b.less_than - le).abs() < 1e-9)
            .map(|b| b.count)
    };
    assert_eq!(count_at(0.0025), Some(0.0), "{buckets:?}");
    assert_eq!(count_at(0.005), Some(1.0), "{buckets:?}");
    assert_eq!(count_at(f64::INFINITY), Some(1.0), "{buckets:?}");
    assert!(
        scrape.docs.contains_key("psrt_udp_frames_total"),
        "every family has its help"
    );
}
