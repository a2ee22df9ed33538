//! The test harness's monoio server: binds a [`ServerSpec`] and runs its
//! worker threads until stopped, behind the runtime-independent
//! [`RunningServer`] interface that `psrt-conformance`'s suites drive.

use std::io;
use std::thread::JoinHandle;

use psrt_conformance::{Addrs, RunningServer};
use psrt_proto::spec::ServerSpec;
use psrt_runtime_monoio::server::{Server, ServerHandle};

/// A monoio server running its workers from a helper thread.
struct MonoioServer {
    addrs: Addrs,
    handle: ServerHandle,
    thread: JoinHandle<io::Result<()>>,
}

impl RunningServer for MonoioServer {
    fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    fn reload(&self) -> Result<(), String> {
        self.handle.reload_blocking()
    }

    fn stop(self: Box<Self>) {
        self.handle.stop();
        self.thread
            .join()
            .expect("server thread")
            .expect("server ran");
    }
}

/// Binds `spec` (listening starts here, so clients may connect at once)
/// and serves it until stopped.
pub fn start(spec: ServerSpec) -> Box<dyn RunningServer> {
    let server = Server::bind(spec).expect("bind");
    let bound = server.addrs();
    let addrs = Addrs::first_of(&bound.tcp, &bound.udp, &bound.unix, bound.stats);
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    Box::new(MonoioServer {
        addrs,
        handle,
        thread,
    })
}
