use std::path::Path;

use rand::SeedableRng;

use super::*;
use crate::TxBuf;
use crate::acl::Acl;
use crate::auth::Passwords;

/// Test times: the clock is not read in psrt-proto, not even in tests.
fn start() -> (Instant, SystemTime) {
    #[allow(clippy::disallowed_methods)]
    (Instant::now(), SystemTime::now())
}

fn core(spec: &ServerSpec, now: Instant) -> ServerCore {
    ServerCore::new(spec, Box::new(rand::rngs::StdRng::seed_from_u64(7)), now)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

/// A binder that hands out numbered fake sockets, each bound to port
/// 40000 + its number, and fails the UDP bind of `fail_udp`.
#[derive(Default)]
struct FakeBind {
    calls: Vec<String>,
    fail_udp: Option<SocketAddr>,
}

impl FakeBind {
    fn next(&mut self, call: String) -> (usize, SocketAddr) {
        self.calls.push(call);
        let n = self.calls.len();
        let port = 40_000 + u16::try_from(n).expect("few calls");
        (n, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

impl Bind for FakeBind {
    type Tcp = usize;
    type Unix = usize;
    type Udp = usize;

    fn tcp(&mut self, addr: SocketAddr) -> io::Result<(usize, SocketAddr)> {
        Ok(self.next(format!("tcp {addr}")))
    }

    fn unix(&mut self, path: &Path) -> io::Result<usize> {
        Ok(self.next(format!("unix {}", path.display())).0)
    }

    fn udp(&mut self, addr: SocketAddr) -> io::Result<(usize, SocketAddr)> {
        if self.fail_udp == Some(addr) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "in use"));
        }
        Ok(self.next(format!("udp {addr}")))
    }
}

fn full_spec() -> ServerSpec {
    let mut spec = ServerSpec::open(addr("127.0.0.1:0"));
    spec.tcp.push(addr("[::1]:0"));
    spec.unix = vec![PathBuf::from("/tmp/a.sock")];
    spec.udp = vec![addr("127.0.0.1:0"), addr("127.0.0.1:9")];
    spec.stats = Some(addr("127.0.0.1:0"));
    spec
}

#[test]
fn bind_all_binds_in_spec_order_and_records_the_bound_addresses() {
    let spec = full_spec();
    let mut binder = FakeBind::default();
    let (listeners, addrs) = bind_all(&spec, &mut binder).expect("fake binds succeed");
    assert_eq!(
        binder.calls,
        [
            "tcp 127.0.0.1:0",
            "tcp [::1]:0",
            "unix /tmp/a.sock",
            "udp 127.0.0.1:0",
            "udp 127.0.0.1:9",
            "tcp 127.0.0.1:0",
        ]
    );
    assert_eq!(listeners.tcp, [1, 2]);
    assert_eq!(listeners.unix, [3]);
    assert_eq!(listeners.udp, [4, 5]);
    assert_eq!(listeners.stats, Some(6));
    assert_eq!(
        addrs.tcp,
        [addr("127.0.0.1:40001"), addr("127.0.0.1:40002")]
    );
    assert_eq!(addrs.unix, [PathBuf::from("/tmp/a.sock")]);
    assert_eq!(
        addrs.udp,
        [addr("127.0.0.1:40004"), addr("127.0.0.1:40005")]
    );
    assert_eq!(addrs.stats, Some(addr("127.0.0.1:40006")));
}

#[test]
fn bind_all_stops_at_the_first_failure_and_names_it() {
    let spec = full_spec();
    let mut binder = FakeBind {
        fail_udp: Some(addr("127.0.0.1:9")),
        ..FakeBind::default()
    };
    let err = bind_all(&spec, &mut binder).expect_err("the UDP bind fails");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert_eq!(err.to_string(), "udp 127.0.0.1:9: in use");
    assert_eq!(binder.calls.len(), 4, "nothing is bound after the failure");
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
