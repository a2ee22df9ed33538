//! The shared conformance suite (`psrt-conformance`) against the monoio
//! server: each case binds its own server and runs it on its worker
//! threads. Run once as is (io_uring where available) and once with
//! `MONOIO_FORCE_LEGACY_DRIVER=1` (epoll).

use std::io;
use std::thread::JoinHandle;

use psrt_conformance::{Addrs, RunningServer, conformance_suite};
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
fn start(spec: ServerSpec) -> Box<dyn RunningServer> {
    let server = Server::bind(spec).expect("bind");
    let bound = server.addrs();
    let addrs = Addrs {
        tcp: bound.tcp[0],
        udp: bound.udp.first().copied(),
        unix: bound.unix.first().cloned(),
        stats: bound.stats,
    };
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    Box::new(MonoioServer {
        addrs,
        handle,
        thread,
    })
}

conformance_suite!(start);
