//! Shared helpers of the client tests: an in-process smol server on
//! loopback and the files it is configured from.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use psrt_proto::acl::Acl;
use psrt_proto::auth::{Keys, Passwords};
use psrt_proto::config::parse_acl;
use psrt_proto::spec::ServerSpec;
use psrt_runtime_smol::client::{Client, ClientOptions, Message};
use psrt_runtime_smol::server::{BoundAddrs, Server, ServerHandle};
use smol::Timer;
use smol::channel::Receiver;
use smol::future::FutureExt;

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

/// Binds `spec` and serves it on a thread of its own.
pub async fn start(spec: ServerSpec) -> TestServer {
    let server = Server::bind(spec).await.expect("server binds");
    let addrs = server.addrs().clone();
    let handle = server.handle();
    std::thread::spawn(move || smol::block_on(server.run()));
    TestServer { addrs, handle }
}

/// Runs a test body to completion on this thread, under [`TEST_LIMIT`].
pub fn run<F: Future<Output = ()>>(body: F) {
    smol::block_on(body.or(async {
        Timer::after(TEST_LIMIT).await;
        panic!("the test did not finish within {TEST_LIMIT:?}");
    }));
}

/// `future`'s output, or `None` after `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    async { Some(future.await) }
        .or(async {
            Timer::after(limit).await;
            None
        })
        .await
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
pub async fn next(messages: &Receiver<Message>) -> Message {
    within(RECV_LIMIT, messages.recv())
        .await
        .expect("a message in time")
        .expect("the stream is open")
}

/// Asserts that no message arrives for a short while.
pub async fn assert_quiet(messages: &Receiver<Message>) {
    let got = within(Duration::from_millis(300), messages.recv()).await;
    assert!(got.is_none(), "unexpected message: {got:?}");
}

/// Asserts that the stream ends (within [`RECV_LIMIT`]) with no message.
pub async fn assert_ends(messages: &Receiver<Message>) {
    let end = within(RECV_LIMIT, messages.recv()).await;
    assert!(matches!(end, Some(Err(_))), "stream ends: {end:?}");
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
        "psrt-smol-client-{}-{tag}-{n}.sock",
        std::process::id()
    ))
}
