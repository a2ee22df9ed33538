//! The shared client suite (`psrt_conformance::client_suite!`) against the
//! tokio client: each case runs on a fresh two-worker runtime and talks to
//! its own server.

mod support;

use std::future::Future;
use std::time::Duration;

use psrt_conformance::RunningServer;
use psrt_conformance::client_suite;
use psrt_conformance::client_suite::ClientRuntime;
use psrt_proto::spec::ServerSpec;

/// The tokio adapter of the client suite.
struct Tokio;

impl ClientRuntime for Tokio {
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(future)
    }

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn spawn(task: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()> {
        let task = tokio::spawn(task);
        async { task.await.expect("task ran") }
    }

    fn start(spec: ServerSpec) -> Box<dyn RunningServer> {
        support::start(spec)
    }
}

client_suite!(psrt_runtime_tokio, Tokio);
