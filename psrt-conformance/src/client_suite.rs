//! One test suite for every runtime's async client.
//!
//! Every runtime crate's `client` module names `psrt_driver::client`'s
//! types on its own runtime (same names and signatures), but the
//! executors that run a test differ in how they run a future, sleep and
//! spawn, so the cases are not generic functions here. Instead
//! [`client_suite!`](crate::client_suite!) expands each case, written once
//! in this module's submodules, inside the runtime's own test crate,
//! against `$runtime_crate::client::*`, with a [`ClientRuntime`] adapter
//! it builds from the executor's few lines:
//!
//! ```ignore
//! mod support;
//!
//! psrt_conformance::client_suite! {
//!     crate: psrt_runtime_smol,
//!     block_on: |future| smol::block_on(future),
//!     sleep: |duration| smol::Timer::after(duration),
//!     spawn: |task| smol::spawn(task),
//!     start: support::start,
//! }
//! ```
//!
//! The cases are grouped in modules `client_pubsub`, `client_auth`,
//! `client_udp` and `server_smoke`. Each body runs under [`TEST_LIMIT`],
//! every wait for a message under [`RECV_LIMIT`], and servers bind
//! `127.0.0.1:0` only.

mod auth;
mod pubsub;
mod smoke;
mod udp;

pub use auth::restricted_auth;
pub use smoke::publish_over_raw_sockets;
pub use udp::{ACK_WAIT, udp_spec, udp_test_key};

use std::future::Future;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use psrt_proto::client::{ClientOptions, Message};
use psrt_proto::spec::ServerSpec;

use crate::RunningServer;
use crate::fixture::{Server, spec};

/// Upper bound of every test body.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound of one wait for a message.
pub const RECV_LIMIT: Duration = Duration::from_secs(10);
/// How long "no message arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// What the client suite needs from an executor, besides the client API
/// it calls by name.
pub trait ClientRuntime {
    /// Runs `future` to completion on a fresh runtime on this thread, with
    /// timers and I/O enabled.
    fn block_on<T>(future: impl Future<Output = T>) -> T;

    /// Waits for `duration` on the current runtime.
    fn sleep(duration: Duration) -> impl Future<Output = ()>;

    /// Runs `task` concurrently on the current runtime; the returned future
    /// completes with it (and panics if it panicked).
    fn spawn(task: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()>;

    /// Binds `spec` and runs the runtime's server on threads of its own
    /// until stopped; the same contract as [`crate::Start`].
    fn start(spec: ServerSpec) -> Box<dyn RunningServer>;
}

/// Runs a test body on `R` under [`TEST_LIMIT`]; panics if it overruns.
pub fn run<R: ClientRuntime>(body: impl Future<Output = ()>) {
    R::block_on(async {
        within::<R, _>(TEST_LIMIT, body)
            .await
            .unwrap_or_else(|| panic!("the test did not finish within {TEST_LIMIT:?}"));
    });
}

/// `future`'s output, or `None` once `limit` has passed.
pub async fn within<R: ClientRuntime, T>(
    limit: Duration,
    future: impl Future<Output = T>,
) -> Option<T> {
    let expired = async {
        R::sleep(limit).await;
        None
    };
    futures_lite::future::or(async { Some(future.await) }, expired).await
}

/// Starts an open server from [`spec`] (anonymous full access) edited by
/// `edit`, with `R`'s driver.
pub fn serve<R: ClientRuntime>(edit: impl FnOnce(&mut ServerSpec)) -> Server {
    let mut spec = spec();
    edit(&mut spec);
    Server::start(R::start, spec)
}

/// The server's TCP address as `host:port`, the form clients connect to.
pub fn tcp(server: &Server) -> String {
    server.tcp().to_string()
}

/// A Unix-socket path in a fresh temporary directory, which is removed
/// when the returned guard drops.
pub fn socket_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("psrt.sock");
    (dir, path)
}

/// Client options logging in as `login` with `password`.
pub fn login(login: &str, password: &str) -> ClientOptions {
    ClientOptions {
        login: login.into(),
        password: password.into(),
        ..ClientOptions::default()
    }
}

/// Runs `work` on a new thread and waits for its result without blocking
/// the current runtime (whose tasks `work` may depend on).
pub async fn on_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done_tx, done_rx) = flume::bounded(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(work());
    });
    done_rx.recv_async().await.expect("the thread reports")
}

/// A client's message stream (what `Client::take_messages` hands out:
/// every runtime's client is `psrt_driver::client`'s, over the same
/// channel) with bounded waits on `R`'s timers.
pub struct Inbox<R: ClientRuntime> {
    messages: async_channel::Receiver<Message>,
    runtime: PhantomData<R>,
}

impl<R: ClientRuntime> Inbox<R> {
    /// Wraps what `Client::take_messages` returned; panics if it returned
    /// `None`.
    pub fn new(messages: Option<async_channel::Receiver<Message>>) -> Inbox<R> {
        Inbox {
            messages: messages.expect("the message receiver"),
            runtime: PhantomData,
        }
    }

    /// The next message, or `None` once the stream has ended.
    async fn recv(&self) -> Option<Message> {
        self.messages.recv().await.ok()
    }

    /// The next message, within [`RECV_LIMIT`].
    pub async fn next(&mut self) -> Message {
        within::<R, _>(RECV_LIMIT, self.recv())
            .await
            .expect("a message in time")
            .expect("the stream is open")
    }

    /// Asserts that no message arrives for a short while.
    pub async fn assert_quiet(&mut self) {
        let got = within::<R, _>(QUIET, self.recv()).await;
        assert!(got.is_none(), "unexpected message: {got:?}");
    }

    /// Asserts that the stream ends (within [`RECV_LIMIT`]) with no
    /// further message.
    pub async fn assert_ends(&mut self) {
        let end = within::<R, _>(RECV_LIMIT, self.recv()).await;
        assert!(matches!(end, Some(None)), "stream ends: {end:?}");
    }
}

/// Expands to the client suite, one `#[test]` per case, against the client
/// of the runtime crate `crate`, with a [`ClientRuntime`] adapter made of
/// the given pieces: `block_on` runs `future` on a fresh runtime, `sleep`
/// is a future that waits `duration`, `spawn` starts `task` and is a
/// future of its end, `start` is a [`crate::Start`].
#[macro_export]
macro_rules! client_suite {
    (
        crate: $rt:ident,
        block_on: |$future:ident| $block_on:expr,
        sleep: |$duration:ident| $sleep:expr,
        spawn: |$task:ident| $spawn:expr,
        start: $start:path $(,)?
    ) => {
        /// The client suite's adapter to this runtime.
        struct Adapter;

        impl $crate::client_suite::ClientRuntime for Adapter {
            fn block_on<T>($future: impl ::std::future::Future<Output = T>) -> T {
                $block_on
            }

            async fn sleep($duration: ::std::time::Duration) {
                $sleep.await;
            }

            fn spawn(
                $task: impl ::std::future::Future<Output = ()> + Send + 'static,
            ) -> impl ::std::future::Future<Output = ()> {
                $spawn
            }

            fn start(
                spec: ::psrt_proto::spec::ServerSpec,
            ) -> Box<dyn $crate::RunningServer> {
                $start(spec)
            }
        }

        $crate::client_suite!(@cases $rt, Adapter);
    };
    (@cases $rt:ident, $runtime:ty) => {
        /// Publishing, subscribing and session handling.
        mod client_pubsub {
            use super::*;
            $crate::__client_pubsub_cases!($rt, $runtime);
        }
        /// Logins, ACL refusals and TLS.
        mod client_auth {
            use super::*;
            $crate::__client_auth_cases!($rt, $runtime);
        }
        /// Publishing over UDP.
        mod client_udp {
            use super::*;
            $crate::__client_udp_cases!($rt, $runtime);
        }
        /// The server over raw sockets, with no client library.
        mod server_smoke {
            use super::*;
            #[test]
            fn publish_is_delivered_over_loopback() {
                $crate::client_suite::publish_over_raw_sockets(
                    <$runtime as $crate::client_suite::ClientRuntime>::start,
                );
            }
        }
    };
}
