//! Shared by the `daemon_*` integration tests: a temporary folder, free
//! ports, the built `psrtd` binary as a child process with its log captured,
//! and raw PSRT requests over `std::net`.
//!
//! Every wait is bounded; a test kills only the process it started.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// How long a daemon may take to start, stop or log something.
pub const WAIT: Duration = Duration::from_secs(10);

/// Read/write timeout on test sockets, so a silent server fails the test.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Status codes of the protocol.
pub const OK: u8 = 0x01;
/// The ACL denied the topic.
pub const ERR_ACCESS: u8 = 0xFE;

/// The built daemon.
pub fn psrtd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_psrtd"))
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("psrtd-it-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// Writes `text` to `name` in the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1, from
/// [`unassigned_port`]'s range.
pub fn free_tcp_port() -> u16 {
    unassigned_port(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// A UDP port that was free a moment ago on 127.0.0.1, from
/// [`unassigned_port`]'s range.
pub fn free_udp_port() -> u16 {
    unassigned_port(|port| UdpSocket::bind(("127.0.0.1", port)).is_ok())
}

/// The next port that `bindable` accepts, below the kernel's ephemeral
/// range. A port the kernel chose (`bind` to port 0) can be handed to a
/// parallel test's outgoing connection between our check and the daemon's
/// bind ("Address already in use"); ports below the ephemeral range are
/// never given out that way. Each test process walks its own stretch (by
/// PID) so that test binaries run side by side rarely meet.
fn unassigned_port(bindable: impl Fn(u16) -> bool) -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    const FIRST: usize = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(FIRST).max(1_000);
    let start = std::process::id() as usize * 97 % span;
    for _ in 0..span {
        let port = FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        if let Ok(port) = u16::try_from(port)
            && bindable(port)
        {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + span);
}

/// The ACL of a cluster test node: `repl` may replicate, anonymous may do
/// everything and read the stats pages.
pub const CLUSTER_ACL: &str =
    "repl: {replicator: true}\n_: {sub: ['#'], pub: ['#'], admin: true}\n";

/// The cluster-file entry for a peer on `127.0.0.1:port` logged in as
/// `repl` with `password`; `extra` holds further indented keys.
pub fn peer_entry(port: u16, password: &str, extra: &str) -> String {
    format!("- path: 127.0.0.1:{port}\n  user: repl\n  password: {password}\n  timeout: 2\n{extra}")
}

/// Writes a cluster node's files into `dir` and returns its config's
/// path: `NAME.yml` (TCP on `port`, stats on `stats`, `proto_extra` lines
/// under `proto:`, anonymous access on), a password file with `repl` /
/// `secret`, [`CLUSTER_ACL`], and the cluster file `peers` (entries from
/// [`peer_entry`]).
pub fn cluster_node_files(
    dir: &TempDir,
    name: &str,
    (port, stats): (u16, u16),
    peers: &str,
    proto_extra: &str,
) -> PathBuf {
    let passwd = dir.write(
        &format!("{name}.passwd"),
        &format!("repl:{}\n", bcrypt_hash("secret")),
    );
    let acl = dir.write(&format!("{name}.acl.yml"), CLUSTER_ACL);
    let cluster = dir.write(&format!("{name}.cluster.yml"), peers);
    dir.write(
        &format!("{name}.yml"),
        &format!(
            "server:\n  bind_stats: 127.0.0.1:{stats}\nproto:\n  bind: 127.0.0.1:{port}\n{proto_extra}\
             auth:\n  allow_anonymous: true\n  password_file: {}\n  acl: {}\n\
             cluster:\n  config: {}\n",
            passwd.display(),
            acl.display(),
            cluster.display()
        ),
    )
}

/// A bcrypt hash at the cheapest cost, for password files.
pub fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt hash")
}

/// A running `psrtd` child; killed on drop if still running.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `psrtd -c config` and waits until `port` accepts connections.
    pub fn start(config: &Path, port: u16) -> Daemon {
        let mut child = psrtd()
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .expect("spawn psrtd");
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut daemon = Daemon { child, log };
        daemon.wait_for_port(port);
        daemon
    }

    fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("psrtd exited early with {status}; log:\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "psrtd did not listen on {port} in time; log:\n{}",
            self.log()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the log holds `needle` `count` times.
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let found = poll(|| self.log().matches(needle).count() >= count);
        assert!(
            found,
            "log never showed {needle:?} x{count}:\n{}",
            self.log()
        );
    }

    /// Sends `sig` to this child only.
    pub fn signal(&self, sig: Signal) {
        signal_pid(self.pid(), sig);
    }

    /// Waits for the child to exit; panics after [`WAIT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("psrtd did not exit in time; log:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` to completion, killing it (and failing) after [`WAIT`].
pub fn run_bounded(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .expect("spawn psrtd");
    let exited = poll(|| matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("psrtd did not exit in time");
    }
    child.wait_with_output().expect("collect output")
}

/// Sends `sig` to the process `pid` (one this test started).
pub fn signal_pid(pid: u32, sig: Signal) {
    let pid = Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
    signal::kill(pid, sig).expect("send signal");
}

/// Polls `check` every 50 ms for up to [`WAIT`].
pub fn poll(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Opens a control connection and logs in; the session token on success,
/// `None` when the server closes the socket instead.
pub fn login(addr: SocketAddr, login: &str, password: &str) -> (TcpStream, Option<[u8; 32]>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.write_all(&[0xEE, 0xAA, 0x00]).expect("greeting");
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).expect("server header");
    assert_eq!(header, [0xEE, 0xAA, 0x01, 0x00], "server greeting");
    let mut frame = Vec::new();
    let len = login.len() + 1 + password.len();
    frame.extend_from_slice(&u32::try_from(len).expect("short").to_le_bytes());
    frame.extend_from_slice(login.as_bytes());
    frame.push(0);
    frame.extend_from_slice(password.as_bytes());
    stream.write_all(&frame).expect("login frame");
    let mut token = [0u8; 32];
    let token = stream.read_exact(&mut token).ok().map(|()| token);
    (stream, token)
}

/// Publishes `payload` to `topic` on a logged-in control connection and
/// returns the status byte.
pub fn publish(stream: &mut TcpStream, topic: &str, payload: &[u8]) -> u8 {
    let len = topic.len() + 1 + payload.len();
    let mut frame = vec![0x01, 0x7F];
    frame.extend_from_slice(&u32::try_from(len).expect("short").to_le_bytes());
    frame.extend_from_slice(topic.as_bytes());
    frame.push(0);
    frame.extend_from_slice(payload);
    stream.write_all(&frame).expect("publish frame");
    let mut status = [0u8; 1];
    stream.read_exact(&mut status).expect("publish status");
    status[0]
}

/// `GET path` over HTTP/1.1; returns the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect stats");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or((response.as_str(), ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, body.to_owned())
}
