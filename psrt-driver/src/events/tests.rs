//! The audit log: lines as logged (captured from `tracing`), and the
//! per-peer rate limit.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use psrt_proto::broker::{AuthConfig, LoginDecision, Origin};
use psrt_proto::config::parse_acl;
use psrt_proto::conn::{ConnConfig, Transport};
use psrt_proto::spec::ServerSpec;
use psrt_proto::wire::request;
use rand::SeedableRng;

use super::*;

/// A `tracing` writer that keeps everything written, for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes)
            .expect("log text")
            .lines()
            // The level is padded to five characters: " WARN", "DEBUG".
            .map(|line| line.trim_start().to_owned())
            .collect()
    }
}

/// Runs `f` with every `tracing` event (debug and up) written, without
/// colours, to the returned capture.
fn capture(f: impl FnOnce()) -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::DEBUG)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    captured
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

/// A server where anonymous may subscribe to `pub/#` only and publish
/// nothing, with anonymous logins on.
fn core() -> ServerCore {
    let mut spec = ServerSpec::open(addr("127.0.0.1:0"));
    let acl = parse_acl("_: {sub: ['pub/#']}\n", Path::new("acl"), 32).expect("acl");
    spec.auth = AuthConfig {
        allow_anonymous: true,
        acl,
        passwords: None,
        keys: None,
    };
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(3));
    ServerCore::new(&spec, rng, Instant::now())
}

fn origin(peer: &str) -> Origin {
    Origin {
        unix: false,
        peer: peer.to_owned(),
    }
}

#[test]
fn denials_are_logged_at_warn_with_login_peer_and_reason_in_words() {
    let core = core();
    let log = capture(|| {
        let session = with_broker_logged(&core, |broker| {
            match broker.begin_login(b"", b"", origin("10.0.0.7:4000")) {
                LoginDecision::Granted(session, _) => session,
                other => panic!("anonymous may log in: {other:?}"),
            }
        });
        with_broker_logged(&core, |broker| {
            let now = Instant::now();
            broker
                .publish(
                    session,
                    &psrt_proto::wire::request::Publish::new(0, b"secret/x", b""),
                    now,
                )
                .expect("answered");
            broker.subscribe(session, b"pub/a\0priv/b\0pub/c");
            broker.replication_offer(session, b"pub/a");
            broker.begin_login(b"ghost", b"pw", origin("10.0.0.8:4001"));
            broker.handle_datagram(b"\xEE\xAA\x01\x00\x02short", &"10.0.0.9:53", now);
        });
    });
    let lines = log.lines();
    let expected = [
        r#"WARN psrt_driver::events: publish denied: login="" peer=10.0.0.7:4000 topic="secret/x" reason: the ACL does not allow publishing to this topic"#,
        r#"WARN psrt_driver::events: subscribe denied: login="" peer=10.0.0.7:4000 topic="priv/b" reason: the ACL does not allow subscribing to this filter"#,
        r#"WARN psrt_driver::events: replication denied: login="" peer=10.0.0.7:4000 topic="pub/a" reason: the login is not a replicator in the ACL"#,
        r#"WARN psrt_driver::events: login refused: login="ghost" peer=10.0.0.8:4001 reason: the user has no ACL entry"#,
    ];
    for line in expected {
        assert!(
            lines.iter().any(|l| l == line),
            "{line}\nnot in:\n{lines:#?}"
        );
    }
    let udp = lines
        .iter()
        .find(|l| l.contains("UDP frame rejected"))
        .expect("the broken datagram is logged");
    assert!(
        udp.starts_with("WARN ") && udp.contains("peer=10.0.0.9:53"),
        "{udp}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("NoAclEntry")),
        "no enum names"
    );
}

#[test]
fn a_plain_client_refused_by_a_tls_only_server_is_a_warning() {
    let config = Arc::new(ConnConfig {
        tls: None,
        allow_no_tls: false,
        tls_client_cn_login: false,
    });
    let now = Instant::now();
    let mut conn = Connection::new(
        config,
        Transport::Tcp,
        "192.0.2.1:999".into(),
        Waker::noop().clone(),
        Duration::from_secs(5),
        now,
    );
    let mut greeting = bytes::BytesMut::from(&[0xEE, 0xAA, 0x00][..]);
    request::encode_login(&mut greeting, "bob", b"pw");
    conn.read_buf().extend_from_slice(&greeting);
    conn.handle_input(now);
    assert_eq!(conn.close_reason(), Some(&CloseReason::TlsRequired));
    assert_eq!(conn.listener_kind(), None, "never counted as connected");
    let audit = AuditLog::default();
    let log = capture(|| {
        audit.connected(conn.peer(), "tcp");
        audit.disconnected(&conn, now);
    });
    assert_eq!(
        log.lines(),
        [
            "DEBUG psrt_driver::events: connected: peer=192.0.2.1:999 listener=tcp",
            "WARN psrt_driver::events: connection refused: peer=192.0.2.1:999 reason: plain connection refused: the server requires TLS",
        ]
    );
}

#[test]
fn a_flood_from_one_peer_is_one_line_with_a_count() {
    let core = core();
    let start = Instant::now();
    let flood = |core: &ServerCore, port: u16, at: Instant| {
        let events: Vec<BrokerEvent> = (0..1000)
            .map(|i| {
                let peer = format!("10.1.1.1:{}", port + i);
                core.lock().begin_login(b"ghost", b"pw", origin(&peer));
                core.lock().poll_event().expect("a denial")
            })
            .collect();
        core.audit.log_events(&events, at);
    };
    let log = capture(|| {
        flood(&core, 1000, start);
        // Another peer is not held back by the first one's flood.
        let other = core
            .lock()
            .begin_login(b"ghost", b"pw", origin("10.2.2.2:1"));
        assert!(matches!(other, LoginDecision::Denied(_)));
        let event = core.lock().poll_event().expect("a denial");
        core.audit
            .log_events(&[event], start + Duration::from_secs(1));
        // The window ends: the next event brings the summary first.
        flood(&core, 3000, start + WINDOW);
    });
    let lines = log.lines();
    let refused = |l: &&String| l.contains("login refused");
    assert_eq!(
        lines.iter().filter(refused).count(),
        2 * BURST as usize + 1 + 1,
        "{lines:#?}"
    );
    let summary: Vec<&String> = lines.iter().filter(|l| l.contains("repeated")).collect();
    assert_eq!(summary.len(), 1, "{lines:#?}");
    assert!(
        summary[0].contains(&format!(
            "[repeated {} more times from 10.1.1.1 within 10 s; not logged]",
            1000 - BURST
        )),
        "{}",
        summary[0]
    );
    assert!(summary[0].starts_with("WARN "), "{}", summary[0]);
    assert!(lines.iter().any(|l| l.contains("peer=10.2.2.2:1")));
}

#[test]
fn a_quiet_peer_gets_its_summary_at_the_next_sweep() {
    let mut limiter = RateLimiter::default();
    let start = Instant::now();
    let mut out = Vec::new();
    for _ in 0..BURST + 3 {
        limiter.admit(start, "k", "[::1]:7", Level::WARN, "x".into(), &mut out);
    }
    assert_eq!(out.len(), BURST as usize);
    out.clear();
    limiter.sweep(start + WINDOW / 2, &mut out);
    assert!(out.is_empty(), "the window is still open");
    limiter.sweep(start + WINDOW, &mut out);
    assert_eq!(
        out,
        [Line {
            level: Level::WARN,
            text: "x [repeated 3 more times from ::1 within 10 s; not logged]".into()
        }]
    );
    assert_eq!(limiter.tracked(), 0, "ended windows are forgotten");
}

#[test]
fn the_peer_table_is_bounded() {
    let mut limiter = RateLimiter::default();
    let now = Instant::now();
    let mut out = Vec::new();
    for i in 0..MAX_PEERS + 100 {
        let peer = format!("10.{}.{}.{}:1", i >> 16, (i >> 8) & 0xff, i & 0xff);
        for _ in 0..BURST + 1 {
            limiter.admit(now, "k", &peer, Level::WARN, "x".into(), &mut out);
        }
    }
    assert_eq!(
        limiter.tracked(),
        MAX_PEERS + 1,
        "one shared entry beyond the cap"
    );
    assert_eq!(
        out.len(),
        MAX_PEERS * BURST as usize + BURST as usize,
        "the peers beyond the cap share one burst"
    );
}

#[test]
fn hosts_drop_the_port() {
    assert_eq!(host_of("10.0.0.1:5000"), "10.0.0.1");
    assert_eq!(host_of("[::1]:5000"), "::1");
    assert_eq!(host_of("/run/psrt.sock"), "/run/psrt.sock");
    assert_eq!(host_of(""), "");
}

#[test]
fn a_disconnect_names_the_login_of_the_ended_session() {
    let core = core();
    let now = Instant::now();
    let config = Arc::new(ConnConfig {
        tls: None,
        allow_no_tls: true,
        tls_client_cn_login: false,
    });
    // A Unix-socket client logs in as anyone without a password.
    let mut conn = Connection::new(
        config,
        Transport::Unix,
        "psrt.sock".into(),
        Waker::noop().clone(),
        Duration::from_secs(5),
        now,
    );
    let mut frames = bytes::BytesMut::from(&[0xEE, 0xAA, 0x00][..]);
    request::encode_login(&mut frames, "alice", b"");
    conn.read_buf().extend_from_slice(&frames);
    conn.handle_input(now);
    let mut tx = psrt_proto::TxBuf::new();
    conn.handle_broker(&mut core.lock(), now, &mut tx);
    assert!(conn.session().is_some(), "logged in");
    conn.handle_eof(now);
    conn.handle_broker(&mut core.lock(), now, &mut tx);
    assert_eq!(core.lock().session_count(), 0, "the session ended");
    let log = capture(|| core.audit.disconnected(&conn, now));
    assert_eq!(
        log.lines(),
        [
            "DEBUG psrt_driver::events: disconnected: peer=psrt.sock login=\"alice\" reason: the peer closed the connection"
        ]
    );
}
