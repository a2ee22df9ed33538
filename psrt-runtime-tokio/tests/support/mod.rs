//! The test harness's tokio server: binds a [`ServerSpec`] on a runtime
//! thread of its own and serves it until stopped, behind the
//! runtime-independent [`RunningServer`] interface that
//! `psrt-conformance`'s suites drive.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use psrt_conformance::{Addrs, RunningServer};
use psrt_proto::spec::ServerSpec;
use psrt_runtime_tokio::server::{Server, ServerHandle};

/// A tokio server running on its own thread.
struct TokioServer {
    addrs: Addrs,
    handle: ServerHandle,
    runtime: tokio::runtime::Handle,
    thread: JoinHandle<()>,
}

impl RunningServer for TokioServer {
    fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    fn reload(&self) -> Result<(), String> {
        self.runtime.block_on(self.handle.reload())
    }

    fn stop(self: Box<Self>) {
        self.handle.stop();
        self.thread.join().expect("server thread");
    }
}

/// Binds `spec` on a fresh multi-threaded runtime and serves it until
/// stopped.
pub fn start(spec: ServerSpec) -> Box<dyn RunningServer> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let workers = spec.workers.max(1);
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let server = Server::bind(spec).await.expect("bind");
            let bound = server.addrs();
            let addrs = Addrs::first_of(&bound.tcp, &bound.udp, &bound.unix, bound.stats);
            let ready = (addrs, server.handle(), tokio::runtime::Handle::current());
            ready_tx.send(ready).expect("report bound server");
            server.run().await;
        });
    });
    let (addrs, handle, runtime) = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server started");
    Box::new(TokioServer {
        addrs,
        handle,
        runtime,
        thread,
    })
}
