//! Shared helpers of the client tests: an in-process monoio server on
//! loopback (on its own threads) and the files it is configured from.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use psrt_proto::acl::Acl;
use psrt_proto::auth::{Keys, Passwords};
use psrt_proto::config::parse_acl;
use psrt_proto::spec::ServerSpec;
use psrt_runtime_monoio::client::{Client, ClientOptions, Message, Messages};
use psrt_runtime_monoio::server::{BoundAddrs, Server, ServerHandle};

/// Upper bound of every test body.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound of one wait for a message.
pub const RECV_LIMIT: Duration = Duration::from_secs(10);

/// A running server, stopped on drop.
pub struct TestServer {
    /// What it bound.
    pub addrs: BoundAddrs,
    handle: ServerHandle,
}

impl TestServer {
    /// The first TCP address as `host:port`.
    pub fn tcp(&self) -> String {
        self.addrs.tcp[0].to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
    }
}

/// A spec for 127.0.0.1 on a free port, anonymous full access.
pub fn open_spec() -> ServerSpec {
    ServerSpec::open("127.0.0.1:0".parse().expect("address"))
}

/// Binds `spec` and runs it on its own threads (the monoio server owns its
/// runtimes), so the test's runtime only runs clients.
pub fn start(spec: ServerSpec) -> TestServer {
    let server = Server::bind(spec).expect("server binds");
    let addrs = server.addrs().clone();
    let handle = server.handle();
    std::thread::Builder::new()
        .name("psrt-test-server".into())
        .spawn(move || server.run())
        .expect("server thread");
    TestServer { addrs, handle }
}

/// Runs a test body under [`TEST_LIMIT`].
pub async fn limited<F: Future<Output = ()>>(body: F) {
    monoio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test finished in time");
}

/// Connects with default options.
pub async fn connect(addr: &str) -> Client {
    Client::connect(addr, ClientOptions::default())
        .await
        .expect("client connects")
}

/// Connects as `login`/`password`.
pub async fn connect_as(addr: &str, login: &str, password: &str) -> Client {
    let options = ClientOptions {
        login: login.into(),
        password: password.into(),
        ..ClientOptions::default()
    };
    Client::connect(addr, options)
        .await
        .expect("client connects")
}

/// The next message, within [`RECV_LIMIT`].
pub async fn next(messages: &mut Messages) -> Message {
    monoio::time::timeout(RECV_LIMIT, messages.recv())
        .await
        .expect("a message in time")
        .expect("the stream is open")
}

/// Asserts that no message arrives for a short while.
pub async fn assert_quiet(messages: &mut Messages) {
    let got = monoio::time::timeout(Duration::from_millis(300), messages.recv()).await;
    assert!(got.is_err(), "unexpected message: {got:?}");
}

/// An ACL from YAML text.
pub fn acl(yaml: &str) -> Acl {
    parse_acl(yaml, Path::new("acl.yml"), 32).expect("test ACL parses")
}

/// A password file holding `login:bcrypt(password)` at cost 4.
pub fn passwords(entries: &[(&str, &str)]) -> Passwords {
    let text: String = entries
        .iter()
        .map(|(login, password)| {
            let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
            format!("{login}:{hash}\n")
        })
        .collect();
    Passwords::parse(&text, Path::new("passwd")).expect("password file parses")
}

/// A key file from YAML text.
pub fn keys(yaml: &str) -> Keys {
    Keys::parse(yaml, Path::new("keys.yml")).expect("key file parses")
}

/// A fresh path in the temp folder for a Unix socket.
pub fn socket_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "psrt-monoio-client-{}-{tag}-{n}.sock",
        std::process::id()
    ))
}
