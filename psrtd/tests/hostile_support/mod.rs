//! Shared by the `hostile_*` integration tests: a daemon configured for a
//! scenario, raw PSRT clients over `std::net` (control, data socket, UDP),
//! the daemon's resident memory, latency summaries and figure lines.
//!
//! Every wait is bounded; tests kill only processes they started (by PID).
//! Figures are printed as `FIGURE <scenario> <name>=<value>` lines so a run
//! with `--nocapture` can be copied into `docs/reliability.md`.

#![allow(dead_code)]

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::daemon_support::{Daemon, TempDir, free_tcp_port, free_udp_port, http_get};

/// Read/write timeout on client sockets, so a silent server fails a test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Status bytes.
pub const OK: u8 = 0x01;
/// Any other error.
pub const ERR: u8 = 0xFF;
/// ACL denial.
pub const ERR_ACCESS: u8 = 0xFE;

/// How a scenario's daemon is configured.
pub struct Opts {
    /// Keep-alive timeout in seconds (`proto.timeout`).
    pub timeout: f64,
    /// Per-client queue (`server.data_queue`).
    pub data_queue: usize,
    /// `(login, password, acl entry)` users; the anonymous user `_` always
    /// has full rights and admin (stats open).
    pub users: Vec<(String, String, String)>,
    /// bcrypt cost of the password hashes.
    pub bcrypt_cost: u32,
    /// Serve UDP too.
    pub udp: bool,
    /// Serve TLS (self-signed certificate) next to plain.
    pub tls: bool,
    /// Key file lines (`login: hex`), for encrypted UDP.
    pub keys: Vec<(String, String)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            timeout: 30.0,
            data_queue: 1024,
            users: Vec::new(),
            bcrypt_cost: 4,
            udp: false,
            tls: false,
            keys: Vec::new(),
        }
    }
}

/// A running daemon and where it listens.
pub struct Broker {
    pub daemon: Daemon,
    pub dir: TempDir,
    pub tcp: SocketAddr,
    pub udp: Option<SocketAddr>,
    pub stats: SocketAddr,
    /// The ACL file, for reload scenarios.
    pub acl_path: std::path::PathBuf,
}

impl Broker {
    /// Writes the config files of `opts` and starts `psrtd` on them.
    pub fn start(name: &str, opts: &Opts) -> Broker {
        let dir = TempDir::new(name);
        let port = free_tcp_port();
        let stats_port = free_tcp_port();
        let mut passwd = String::new();
        for (login, password, _) in &opts.users {
            let hash = bcrypt::hash(password, opts.bcrypt_cost).expect("bcrypt hash");
            passwd.push_str(&format!("{login}:{hash}\n"));
        }
        dir.write("passwd", &passwd);
        let acl_path = dir.write("acl.yml", &acl_text(&opts.users));
        let mut config = format!(
            "server:\n  workers: 2\n  data_queue: {}\n  bind_stats: 127.0.0.1:{stats_port}\n\
             proto:\n  bind: 127.0.0.1:{port}\n  timeout: {}\n",
            opts.data_queue, opts.timeout
        );
        let udp = opts.udp.then(|| {
            let udp_port = free_udp_port();
            config.push_str(&format!("  bind_udp: 127.0.0.1:{udp_port}\n"));
            SocketAddr::from(([127, 0, 0, 1], udp_port))
        });
        if opts.tls {
            let certified =
                rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
            dir.write("server.crt", &certified.cert.pem());
            dir.write("server.key", &certified.signing_key.serialize_pem());
            config.push_str("  tls_cert: server.crt\n  tls_key: server.key\n");
        }
        config
            .push_str("auth:\n  allow_anonymous: true\n  password_file: passwd\n  acl: acl.yml\n");
        if !opts.keys.is_empty() {
            let keys: String = opts
                .keys
                .iter()
                .map(|(login, key)| format!("{login}: \"{key}\"\n"))
                .collect();
            dir.write("keys.yml", &keys);
            config.push_str("  key_file: keys.yml\n");
        }
        let config_path = dir.write("config.yml", &config);
        let daemon = Daemon::start(&config_path, port);
        Broker {
            daemon,
            dir,
            tcp: SocketAddr::from(([127, 0, 0, 1], port)),
            udp,
            stats: SocketAddr::from(([127, 0, 0, 1], stats_port)),
            acl_path,
        }
    }

    /// `GET /status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (line, body) = http_get(self.stats, "/status");
        assert!(line.contains(" 200"), "{line}: {body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// Live control sessions, from the stats endpoint.
    pub fn client_count(&self) -> u64 {
        self.status()["clients"]["client_count"]
            .as_u64()
            .expect("client_count")
    }

    /// Subscriptions in the index, from the stats endpoint.
    pub fn subscription_count(&self) -> u64 {
        self.status()["clients"]["subscription_count"]
            .as_u64()
            .expect("subscription_count")
    }

    /// The daemon's resident memory in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        rss_bytes(self.daemon.pid())
    }

    /// Waits (bounded) until the stats endpoint reports `count` sessions.
    pub fn wait_clients(&self, count: u64) -> bool {
        poll_for(Duration::from_secs(20), || self.client_count() == count)
    }

    /// Fails unless a fresh anonymous client can still publish, subscribe
    /// and receive its own message: the server still serves.
    pub fn assert_serving(&self, context: &str) {
        let mut control = Control::login(self.tcp, "", "")
            .unwrap_or_else(|| panic!("{context}: login refused; log:\n{}", self.daemon.log()));
        let mut data = control.data_socket(self.tcp);
        assert_eq!(control.subscribe("health/#"), OK, "{context}");
        assert_eq!(control.publish("health/check", b"ping"), OK, "{context}");
        let message = data.next_message().expect("health message");
        assert_eq!(
            message,
            ("health/check".to_owned(), b"ping".to_vec()),
            "{context}"
        );
        control.bye();
    }
}

fn acl_text(users: &[(String, String, String)]) -> String {
    let mut acl = String::from("_: {pub: [\"#\"], sub: [\"#\"], admin: true}\n");
    for (login, _, entry) in users {
        acl.push_str(&format!("{login}: {entry}\n"));
    }
    acl
}

/// `VmRSS` of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub fn poll_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Connects to `addr` with the test timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// `LEN body` with a little-endian `u32` length.
pub fn sized(body: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(body.len())
        .expect("short")
        .to_le_bytes()
        .to_vec();
    frame.extend_from_slice(body);
    frame
}

/// A PUBLISH request.
pub fn publish_frame(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = topic.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(payload);
    let mut frame = vec![0x01, 0x7F];
    frame.extend_from_slice(&sized(&body));
    frame
}

/// A logged-in control connection.
pub struct Control {
    pub stream: TcpStream,
    pub token: [u8; 32],
}

impl Control {
    /// Greets and logs in; `None` when the server closes instead of
    /// sending a token.
    pub fn login(addr: SocketAddr, login: &str, password: &str) -> Option<Control> {
        let mut stream = connect(addr);
        stream.write_all(&[0xEE, 0xAA, 0x00]).ok()?;
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).ok()?;
        assert_eq!(header, [0xEE, 0xAA, 0x01, 0x00], "server greeting");
        let mut body = login.as_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(password.as_bytes());
        stream.write_all(&sized(&body)).ok()?;
        let mut token = [0u8; 32];
        stream.read_exact(&mut token).ok()?;
        Some(Control { stream, token })
    }

    /// Sends `request` and reads the one status byte.
    pub fn request(&mut self, request: &[u8]) -> io::Result<u8> {
        self.stream.write_all(request)?;
        let mut status = [0u8; 1];
        self.stream.read_exact(&mut status)?;
        Ok(status[0])
    }

    /// PUBLISH; the status byte (panics when the socket fails).
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> u8 {
        self.request(&publish_frame(topic, payload))
            .expect("publish status")
    }

    /// SUBSCRIBE one filter; the status byte.
    pub fn subscribe(&mut self, filter: &str) -> u8 {
        let mut frame = vec![0x02];
        frame.extend_from_slice(&sized(filter.as_bytes()));
        self.request(&frame).expect("subscribe status")
    }

    /// NOP; the status byte.
    pub fn nop(&mut self) -> io::Result<u8> {
        self.request(&[0x00])
    }

    /// BYE, then close.
    pub fn bye(mut self) {
        let _ = self.request(&[0xFF]);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Opens and binds this session's data socket.
    pub fn data_socket(&self, addr: SocketAddr) -> DataSocket {
        DataSocket::open(addr, &self.token).expect("data socket refused")
    }
}

/// A bound data socket, read with a buffer.
pub struct DataSocket {
    pub reader: BufReader<TcpStream>,
}

impl DataSocket {
    /// Greets as a data socket and binds `token`; `Err` when refused.
    pub fn open(addr: SocketAddr, token: &[u8; 32]) -> Result<DataSocket, u8> {
        let mut stream = connect(addr);
        stream.write_all(&[0xEE, 0xAB, 0x00]).map_err(|_| ERR)?;
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).map_err(|_| ERR)?;
        assert_eq!(header, [0xEE, 0xAB, 0x01, 0x00], "data greeting");
        let mut hello = token.to_vec();
        hello.push(30);
        stream.write_all(&hello).map_err(|_| ERR)?;
        let mut status = [0u8; 1];
        stream.read_exact(&mut status).map_err(|_| ERR)?;
        if status[0] != OK {
            return Err(status[0]);
        }
        Ok(DataSocket {
            reader: BufReader::with_capacity(256 * 1024, stream),
        })
    }

    /// The next pushed message `(topic, payload)`, skipping NOP beacons;
    /// `Err` on end of stream, a socket error or a timeout.
    pub fn next_message(&mut self) -> io::Result<(String, Vec<u8>)> {
        loop {
            let mut code = [0u8; 1];
            self.reader.read_exact(&mut code)?;
            match code[0] {
                0x00 => continue,
                0x01 => return self.read_body(),
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected byte {other:#04x} on data socket"),
                    ));
                }
            }
        }
    }

    fn read_body(&mut self) -> io::Result<(String, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.reader.read_exact(&mut head)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        let nul = body
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no topic terminator"))?;
        let payload = body.split_off(nul + 1);
        body.truncate(nul);
        let topic = String::from_utf8(body)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "topic not UTF-8"))?;
        Ok((topic, payload))
    }

    /// Sets the read timeout of the underlying socket.
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }
}

/// Reads `stream` until the server closes it (end of stream or reset) or
/// `limit` passes. Returns how long that took and the bytes received, or
/// `None` if the socket was still open at `limit`.
pub fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some((start.elapsed(), received)),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if start.elapsed() >= limit {
                    return None;
                }
            }
            Err(_) => return Some((start.elapsed(), received)),
        }
    }
}

/// A payload carrying a sequence number and a send time (nanoseconds
/// since `epoch`), padded to `size` bytes.
pub fn stamped(seq: u64, epoch: Instant, size: usize) -> Vec<u8> {
    let mut payload = seq.to_le_bytes().to_vec();
    let nanos = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    payload.extend_from_slice(&nanos.to_le_bytes());
    payload.resize(size.max(16), 0xA5);
    payload
}

/// The sequence number and send time of a [`stamped`] payload.
pub fn unstamp(payload: &[u8]) -> (u64, Duration) {
    let seq = u64::from_le_bytes(payload[..8].try_into().expect("seq"));
    let nanos = u64::from_le_bytes(payload[8..16].try_into().expect("time"));
    (seq, Duration::from_nanos(nanos))
}

/// p50 / p99 / max of a set of latencies.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples` (nearest-rank percentiles).
    pub fn of(mut samples: Vec<Duration>) -> Summary {
        assert!(!samples.is_empty(), "no latency samples");
        samples.sort_unstable();
        let rank = |p: usize| samples[(samples.len() * p).div_ceil(100).max(1) - 1];
        Summary {
            count: samples.len(),
            p50: rank(50),
            p99: rank(99),
            max: samples[samples.len() - 1],
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={}us p99={}us max={}us",
            self.count,
            self.p50.as_micros(),
            self.p99.as_micros(),
            self.max.as_micros()
        )
    }
}

/// Prints one figure line for the report.
pub fn figure(scenario: &str, text: impl std::fmt::Display) {
    println!("FIGURE {scenario} {text}");
}
