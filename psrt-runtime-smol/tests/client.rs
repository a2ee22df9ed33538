//! The shared client suite (`psrt_conformance::client_suite!`) against the
//! smol client: each case runs on the test's own thread with
//! `smol::block_on` and talks to its own server.

mod support;

use std::future::Future;
use std::time::Duration;

use psrt_conformance::RunningServer;
use psrt_conformance::client_suite;
use psrt_conformance::client_suite::ClientRuntime;
use psrt_proto::spec::ServerSpec;

/// The smol adapter of the client suite.
struct Smol;

impl ClientRuntime for Smol {
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }

    fn spawn(task: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()> {
        smol::spawn(task)
    }

    fn start(spec: ServerSpec) -> Box<dyn RunningServer> {
        support::start(spec)
    }
}

client_suite!(psrt_runtime_smol, Smol);
