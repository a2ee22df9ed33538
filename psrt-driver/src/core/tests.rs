use std::net::SocketAddr;
use std::path::Path;

use psrt_proto::TxBuf;
use psrt_proto::acl::Acl;
use psrt_proto::auth::Passwords;
use rand::SeedableRng;

use super::*;

fn start() -> (Instant, SystemTime) {
    (Instant::now(), SystemTime::now())
}

fn core(spec: &ServerSpec, now: Instant) -> ServerCore {
    ServerCore::new(spec, Box::new(rand::rngs::StdRng::seed_from_u64(7)), now)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

#[test]
fn status_info_counts_uptime_from_the_start_and_time_from_the_epoch() {
    let (now, wall) = start();
    let core = core(&ServerSpec::open(addr("127.0.0.1:0")), now);
    let info = core.status_info(
        now + Duration::from_secs(90),
        UNIX_EPOCH + Duration::from_millis(1500),
    );
    assert_eq!(info.uptime_s, 90);
    assert_eq!(info.time_us, 1_500_000);
    assert_eq!(info.host, "localhost");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    let before_epoch = core.status_info(now, UNIX_EPOCH - Duration::from_secs(1));
    assert_eq!(before_epoch.time_us, 0);
    assert!(core.status_info(now, wall).time_us > 0);
}

#[test]
fn drain_limit_leaves_the_connections_their_own_deadline() {
    let mut spec = ServerSpec::open(addr("127.0.0.1:0"));
    spec.drain_timeout = Duration::from_secs(3);
    let core = core(&spec, start().0);
    assert_eq!(core.drain_timeout, Duration::from_secs(3));
    assert!(core.drain_limit() > core.drain_timeout);
}

/// Access rules with no anonymous user and one admin, `admin:pw`.
fn admin_only() -> AuthConfig {
    let hash = bcrypt::hash("pw", 4).expect("bcrypt at cost 4");
    let passwords = Passwords::parse(&format!("admin:{hash}\n"), Path::new("passwd"));
    AuthConfig {
        allow_anonymous: false,
        acl: Acl::allow_all(),
        passwords: Some(passwords.expect("password file")),
        keys: None,
    }
}

/// Sends `request` to a fresh stats connection; returns the password
/// check it asked for, if any.
fn stats_request(
    core: &ServerCore,
    conn: &mut StatsConnection,
    request: &str,
) -> Option<PasswordCheck> {
    let (now, wall) = start();
    conn.read_buf().extend_from_slice(request.as_bytes());
    core.stats_input(conn, now, wall)
}

fn response(conn: &mut StatsConnection) -> String {
    let mut tx = TxBuf::new();
    conn.poll_transmit(&mut tx);
    let bytes: Vec<u8> = tx.drain().flat_map(|chunk| chunk.to_vec()).collect();
    String::from_utf8(bytes).expect("HTTP answers are text")
}

#[test]
fn reload_puts_new_rules_in_force_and_keeps_the_old_ones_on_error() {
    let (now, _) = start();
    let core = core(&ServerSpec::open(addr("127.0.0.1:0")), now);
    assert_eq!(core.reload(Err("bad acl".into())), Err("bad acl".into()));
    let mut open = StatsConnection::new(core.timeout, now);
    assert!(stats_request(&core, &mut open, "GET /status HTTP/1.1\r\n\r\n").is_none());
    assert!(response(&mut open).starts_with("HTTP/1.1 200"));

    assert_eq!(core.reload(Ok(admin_only())), Ok(()));
    let mut closed = StatsConnection::new(core.timeout, now);
    assert!(stats_request(&core, &mut closed, "GET /status HTTP/1.1\r\n\r\n").is_none());
    assert!(response(&mut closed).starts_with("HTTP/1.1 401"));
}

#[test]
fn the_reloader_is_the_specs() {
    let (now, _) = start();
    let mut spec = ServerSpec::open(addr("127.0.0.1:0"));
    assert!(core(&spec, now).reloader().is_none());
    spec.reload = Some(Arc::new(|| Err("unreadable".into())));
    let core = core(&spec, now);
    let reload = core.reloader().expect("the spec's reloader");
    assert_eq!(core.reload(reload()), Err("unreadable".into()));
}

#[test]
fn stats_requests_with_a_password_wait_for_the_check() {
    let mut spec = ServerSpec::open(addr("127.0.0.1:0"));
    spec.auth = admin_only();
    let (now, wall) = start();
    // "admin:pw" in base64.
    let request = "GET /status HTTP/1.1\r\nAuthorization: Basic YWRtaW46cHc=\r\n\r\n";
    for (ok, status) in [(true, "HTTP/1.1 200"), (false, "HTTP/1.1 401")] {
        // A fresh server each time: a verified password is remembered.
        let core = core(&spec, now);
        let mut conn = StatsConnection::new(core.timeout, now);
        let check = stats_request(&core, &mut conn, request).expect("a password check");
        assert!(!conn.is_closed(), "no answer before the check");
        assert!(check.verify(), "the check carries the password sent");
        core.stats_checked(&mut conn, ok, now, wall);
        assert!(conn.is_closed());
        assert!(response(&mut conn).starts_with(status));
    }
}
