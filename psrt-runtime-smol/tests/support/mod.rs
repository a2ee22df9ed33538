//! The test harness's smol server: binds a [`ServerSpec`] and serves it on
//! `spec.workers` threads until stopped, behind the runtime-independent
//! [`RunningServer`] interface that `psrt-conformance`'s suites drive.

use std::thread::JoinHandle;

use psrt_conformance::{Addrs, RunningServer};
use psrt_proto::spec::ServerSpec;
use psrt_runtime_smol::server::{Server, ServerHandle};

/// A smol server running on its own threads.
struct SmolServer {
    addrs: Addrs,
    handle: ServerHandle,
    thread: JoinHandle<()>,
}

impl RunningServer for SmolServer {
    fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    fn reload(&self) -> Result<(), String> {
        smol::block_on(self.handle.reload())
    }

    fn stop(self: Box<Self>) {
        self.handle.stop();
        self.thread.join().expect("server thread");
    }
}

/// Binds `spec` and serves it on `spec.workers` threads until stopped.
pub fn start(spec: ServerSpec) -> Box<dyn RunningServer> {
    let workers = spec.workers;
    let server = smol::block_on(Server::bind(spec)).expect("bind");
    let bound = server.addrs();
    let addrs = Addrs::first_of(&bound.tcp, &bound.udp, &bound.unix, bound.stats);
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run_on_threads(workers));
    Box::new(SmolServer {
        addrs,
        handle,
        thread,
    })
}
