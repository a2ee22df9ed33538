//! Shared helpers of the psrt-cli tests: an in-process server, a library
//! client to observe it, and running the built binary with a time limit.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use psrt_proto::acl::Acl;
use psrt_proto::auth::{Keys, Passwords};
use psrt_proto::config::parse_acl;
use psrt_proto::spec::ServerSpec;
use psrt_runtime_tokio::client::{Client, ClientOptions, Message, Messages};
use psrt_runtime_tokio::server::{BoundAddrs, Server, ServerHandle};
use tokio::process::Command;

/// Upper bound of one CLI run and of one wait for a message or a line.
pub const LIMIT: Duration = Duration::from_secs(20);

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

/// Binds and runs `spec` in the current runtime.
pub async fn start(spec: ServerSpec) -> TestServer {
    let server = Server::bind(spec).await.expect("server binds");
    let addrs = server.addrs().clone();
    let handle = server.handle();
    tokio::spawn(server.run());
    TestServer { addrs, handle }
}

/// A library client subscribed to `filter`, with its message receiver.
pub async fn observer(addr: &str, filter: &str) -> (Client, Messages) {
    let client = Client::connect(addr, ClientOptions::default())
        .await
        .expect("observer connects");
    let messages = client.take_messages().expect("receiver");
    client.subscribe(filter).await.expect("observer subscribes");
    (client, messages)
}

/// The next message, within [`LIMIT`].
pub async fn next(messages: &mut Messages) -> Message {
    tokio::time::timeout(LIMIT, messages.recv())
        .await
        .expect("a message in time")
        .expect("the stream is open")
}

/// The psrt-cli binary with `args`, output captured, killed on drop.
pub fn cli(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_psrt-cli"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs psrt-cli to completion within [`LIMIT`].
pub async fn run_cli(args: &[&str]) -> Output {
    tokio::time::timeout(LIMIT, cli(args).output())
        .await
        .expect("psrt-cli finished in time")
        .expect("psrt-cli runs")
}

/// Asserts a failed run whose stderr mentions `needle`.
pub fn assert_failed_with(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure; stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
}

/// Asserts a successful run.
pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "psrt-cli failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
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
