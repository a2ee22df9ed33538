//! The shared client suite (`psrt_conformance::client_suite!`) against the
//! monoio client: each case runs on a fresh runtime (io_uring where
//! available, epoll with `MONOIO_FORCE_LEGACY_DRIVER=1`) with its timer
//! on, and talks to its own server.

mod support;

use std::future::Future;
use std::time::Duration;

use monoio::{FusionDriver, RuntimeBuilder};
use psrt_conformance::RunningServer;
use psrt_conformance::client_suite;
use psrt_conformance::client_suite::ClientRuntime;
use psrt_proto::spec::ServerSpec;

/// The monoio adapter of the client suite.
struct Monoio;

impl ClientRuntime for Monoio {
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        RuntimeBuilder::<FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("monoio runtime")
            .block_on(future)
    }

    async fn sleep(duration: Duration) {
        monoio::time::sleep(duration).await;
    }

    fn spawn(task: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()> {
        monoio::spawn(task)
    }

    fn start(spec: ServerSpec) -> Box<dyn RunningServer> {
        support::start(spec)
    }
}

client_suite!(psrt_runtime_monoio, Monoio);
