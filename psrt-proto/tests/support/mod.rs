//! Shared helpers of the scenario tests: an in-memory [`Node`] with a clock
//! the test moves, the exact frames of PROTOCOL.md written out byte by byte
//! (not with the crate's encoders, so the tests check the wire format
//! independently), and builders for credentials files.

// Each scenario file is its own test crate and uses a subset of these.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use psrt_proto::Limits;
use psrt_proto::acl::Acl;
use psrt_proto::auth::{Keys, Passwords};
use psrt_proto::broker::{AuthConfig, Broker};
use psrt_proto::config::parse_acl;
use psrt_proto::conn::{CloseReason, ConnConfig, Transport};
use psrt_proto::node::{ConnId, Node};
use rand::SeedableRng;

/// `EE AA 01 00`: the server's answer to a control greeting.
pub const CONTROL_REPLY: [u8; 4] = [0xEE, 0xAA, 0x01, 0x00];
/// `EE AB 01 00`: the server's answer to a data greeting.
pub const DATA_REPLY: [u8; 4] = [0xEE, 0xAB, 0x01, 0x00];
/// Plain control greeting.
pub const CONTROL_GREETING: [u8; 3] = [0xEE, 0xAA, 0x00];
/// Plain data greeting.
pub const DATA_GREETING: [u8; 3] = [0xEE, 0xAB, 0x00];
/// Status bytes.
pub const OK: u8 = 0x01;
pub const OK_WAITING: u8 = 0x02;
pub const NOT_REQUIRED: u8 = 0xE0;
pub const ERR_ACCESS: u8 = 0xFE;
pub const ERR: u8 = 0xFF;
/// The priority byte clients send.
pub const PRIO: u8 = 0x7F;

/// A base instant; the core never reads the clock itself.
#[allow(clippy::disallowed_methods)]
pub fn start() -> Instant {
    Instant::now()
}

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A node plus the test's clock.
pub struct Server {
    pub node: Node,
    pub now: Instant,
    t0: Instant,
}

impl Server {
    /// Anonymous access with full rights, default limits.
    pub fn open() -> Self {
        Self::new(Limits::default(), AuthConfig::open())
    }

    /// Plain TCP allowed, no TLS.
    pub fn new(limits: Limits, auth: AuthConfig) -> Self {
        Self::with_config(
            limits,
            auth,
            ConnConfig {
                tls: None,
                allow_no_tls: true,
                tls_client_cn_login: false,
            },
        )
    }

    /// Any connection settings; the broker's RNG is seeded, so tokens
    /// repeat from run to run.
    pub fn with_config(limits: Limits, auth: AuthConfig, config: ConnConfig) -> Self {
        let rng = Box::new(rand::rngs::StdRng::seed_from_u64(7));
        let broker = Broker::new(limits, auth, rng);
        let t0 = start();
        Self {
            node: Node::new(broker, config),
            now: t0,
            t0,
        }
    }

    /// Moves the clock to `t0 + since_start` and fires due timeouts.
    pub fn at(&mut self, since_start: Duration) {
        self.now = self.t0 + since_start;
        self.node.advance(self.now);
    }

    /// A new TCP socket.
    pub fn connect(&mut self) -> ConnId {
        self.node
            .connect(Transport::Tcp, "192.0.2.1:40000", self.now)
    }

    /// A new Unix socket.
    pub fn connect_unix(&mut self) -> ConnId {
        self.node
            .connect(Transport::Unix, "/run/psrtd.sock", self.now)
    }

    /// The client sends bytes.
    pub fn send(&mut self, c: ConnId, bytes: &[u8]) {
        self.node.send(c, bytes, self.now);
    }

    /// Everything the server has for the client.
    pub fn recv(&mut self, c: ConnId) -> Vec<u8> {
        self.node.recv(c, self.now)
    }

    /// Sends bytes and returns the server's answer.
    pub fn request(&mut self, c: ConnId, bytes: &[u8]) -> Vec<u8> {
        self.send(c, bytes);
        self.recv(c)
    }

    /// Greeting plus login on `transport`; returns the socket and every
    /// byte the server answered (greeting reply included).
    pub fn try_login_on(
        &mut self,
        transport: Transport,
        login: &[u8],
        password: &[u8],
    ) -> (ConnId, Vec<u8>) {
        let c = match transport {
            Transport::Tcp => self.connect(),
            Transport::Unix => self.connect_unix(),
        };
        self.send(c, &CONTROL_GREETING);
        let out = self.request(c, &login_frame(login, password));
        (c, out)
    }

    /// [`Self::try_login_on`] over TCP.
    pub fn try_login(&mut self, login: &[u8], password: &[u8]) -> (ConnId, Vec<u8>) {
        self.try_login_on(Transport::Tcp, login, password)
    }

    /// A login that must succeed: returns the socket and the token.
    pub fn login(&mut self, login: &str, password: &str) -> (ConnId, [u8; 32]) {
        let (c, out) = self.try_login(login.as_bytes(), password.as_bytes());
        assert!(
            !self.closed(c),
            "login of {login:?} refused: {:?}",
            self.reason(c)
        );
        (c, token_of(&out))
    }

    /// Anonymous login.
    pub fn anon(&mut self) -> (ConnId, [u8; 32]) {
        self.login("", "")
    }

    /// Opens the data socket of `token` (client timeout 5 s) and checks
    /// the server accepted it.
    pub fn data(&mut self, token: [u8; 32]) -> ConnId {
        let (d, out) = self.try_data(token, 5);
        assert_eq!(out, [&DATA_REPLY[..], &[OK]].concat());
        d
    }

    /// Opens a data socket with any token and timeout byte; returns every
    /// byte the server answered.
    pub fn try_data(&mut self, token: [u8; 32], timeout: u8) -> (ConnId, Vec<u8>) {
        let d = self.connect();
        let mut hello = DATA_GREETING.to_vec();
        hello.extend_from_slice(&token);
        hello.push(timeout);
        let out = self.request(d, &hello);
        (d, out)
    }

    /// An anonymous client with a data socket, subscribed to `filters`.
    pub fn subscriber(&mut self, filters: &[&str]) -> (ConnId, ConnId) {
        let (c, token) = self.anon();
        let d = self.data(token);
        assert_eq!(self.request(c, &subscribe(filters)), [OK]);
        (c, d)
    }

    /// Whether the server closed the socket.
    pub fn closed(&self, c: ConnId) -> bool {
        self.node.is_closed(c)
    }

    /// Why the server closed the socket.
    pub fn reason(&self, c: ConnId) -> Option<CloseReason> {
        self.node.close_reason(c)
    }

    /// Asserts the server closed the socket for a protocol error.
    pub fn assert_protocol_close(&self, c: ConnId) {
        assert!(
            matches!(self.reason(c), Some(CloseReason::Protocol(_))),
            "expected a protocol close, got {:?}",
            self.reason(c)
        );
    }

    /// Asserts nothing is left in the broker: no session, no subscription.
    pub fn assert_baseline(&self) {
        assert_eq!(self.node.broker().session_count(), 0);
        assert_eq!(self.node.broker().subscription_count(), 0);
    }
}

/// The token from a successful login's answer (greeting reply + token).
pub fn token_of(out: &[u8]) -> [u8; 32] {
    assert_eq!(
        out.len(),
        36,
        "greeting reply and a 32-byte token, got {out:02X?}"
    );
    assert_eq!(out[..4], CONTROL_REPLY);
    let mut token = [0u8; 32];
    token.copy_from_slice(&out[4..]);
    token
}

/// A little-endian `u32` length.
pub fn le(len: usize) -> [u8; 4] {
    u32::try_from(len)
        .expect("test frame fits u32")
        .to_le_bytes()
}

/// `LEN login 00 password`.
pub fn login_frame(login: &[u8], password: &[u8]) -> Vec<u8> {
    let mut out = le(login.len() + 1 + password.len()).to_vec();
    out.extend_from_slice(login);
    out.push(0);
    out.extend_from_slice(password);
    out
}

/// `01 PRIO LEN topic 00 payload` with the priority byte `PRIO`.
pub fn publish(topic: &[u8], payload: &[u8]) -> Vec<u8> {
    publish_prio(PRIO, topic, payload)
}

/// `01 prio LEN topic 00 payload`.
pub fn publish_prio(prio: u8, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x01, prio];
    out.extend_from_slice(&le(topic.len() + 1 + payload.len()));
    out.extend_from_slice(topic);
    out.push(0);
    out.extend_from_slice(payload);
    out
}

/// `op LEN body`.
pub fn sized(op: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![op];
    out.extend_from_slice(&le(body.len()));
    out.extend_from_slice(body);
    out
}

/// SUBSCRIBE of `filters`, `00`-separated.
pub fn subscribe(filters: &[&str]) -> Vec<u8> {
    sized(0x02, filters.join("\0").as_bytes())
}

/// UNSUBSCRIBE of `filters`, `00`-separated.
pub fn unsubscribe(filters: &[&str]) -> Vec<u8> {
    sized(0x03, filters.join("\0").as_bytes())
}

/// A pushed message `01 PRIO LEN topic 00 payload`.
pub fn pushed(topic: &str, payload: &[u8]) -> Vec<u8> {
    pushed_prio(PRIO, topic, payload)
}

/// A pushed message with priority `prio`.
pub fn pushed_prio(prio: u8, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x01, prio];
    out.extend_from_slice(&le(topic.len() + 1 + payload.len()));
    out.extend_from_slice(topic.as_bytes());
    out.push(0);
    out.extend_from_slice(payload);
    out
}

/// An ACL from YAML text.
pub fn acl(yaml: &str) -> Acl {
    parse_acl(yaml, Path::new("acl.yml"), 32).expect("test ACL parses")
}

/// A `$2b$` bcrypt hash at cost 4 (fast).
pub fn hash_2b(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt hash")
}

/// A `$2y$` bcrypt hash at cost 4, as `htpasswd -B` writes.
pub fn hash_2y(password: &str) -> String {
    bcrypt::hash_with_result(password, 4)
        .expect("bcrypt hash")
        .format_for_version(bcrypt::Version::TwoY)
}

/// A password file with these `login:hash` lines.
pub fn passwords(entries: &[(&str, String)]) -> Passwords {
    let text: String = entries
        .iter()
        .map(|(login, hash)| format!("{login}:{hash}\n"))
        .collect();
    Passwords::parse(&text, Path::new("passwd")).expect("test password file parses")
}

/// A key file from YAML text.
pub fn keys(yaml: &str) -> Keys {
    Keys::parse(yaml, Path::new("keys.yml")).expect("test key file parses")
}

/// Access rules from an ACL and `(login, password)` pairs (hashed `$2b$`).
pub fn auth(acl_yaml: &str, users: &[(&str, &str)], allow_anonymous: bool) -> AuthConfig {
    let entries: Vec<(&str, String)> = users
        .iter()
        .map(|(login, pw)| (*login, hash_2b(pw)))
        .collect();
    AuthConfig {
        allow_anonymous,
        acl: acl(acl_yaml),
        passwords: Some(passwords(&entries)),
        keys: None,
    }
}
