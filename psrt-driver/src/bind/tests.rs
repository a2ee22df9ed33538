use super::*;

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

/// A path under the temp directory unique to this test and process.
fn temp_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("psrt-driver-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn bind_unix_replaces_a_stale_socket_and_restricts_the_mode() {
    let path = temp_path("stale.sock");
    drop(UnixListener::bind(&path).expect("first bind"));
    assert!(
        UnixListener::bind(&path).is_err(),
        "the stale file blocks a plain bind"
    );
    let listener = bind_unix(&path).expect("bind over the stale socket");
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, UNIX_SOCKET_MODE);
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    drop(listener);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn bind_unix_leaves_a_live_server_alone() {
    let path = temp_path("live.sock");
    let live = bind_unix(&path).expect("first bind");
    let err = bind_unix(&path).expect_err("a live server answers");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    assert!(
        std::os::unix::net::UnixStream::connect(&path).is_ok(),
        "the live server's socket file is still there"
    );
    drop(live);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn bind_unix_leaves_other_files_alone() {
    let path = temp_path("regular");
    std::fs::write(&path, b"keep me").expect("regular file");
    assert!(bind_unix(&path).is_err());
    assert_eq!(std::fs::read(&path).expect("still there"), b"keep me");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn std_bind_refuses_a_taken_port() {
    let (listener, taken) = StdBind.tcp(addr("127.0.0.1:0")).expect("first bind");
    assert!(StdBind.tcp(taken).is_err(), "no SO_REUSEPORT");
    let copies = Listeners {
        tcp: vec![listener],
        unix: Vec::new(),
        udp: vec![StdBind.udp(addr("127.0.0.1:0")).expect("udp").0],
        stats: None,
    }
    .try_clone_accept()
    .expect("duplicates");
    assert_eq!(copies.tcp.len(), 1);
    assert!(copies.udp.is_empty(), "UDP stays with the first thread");
}
