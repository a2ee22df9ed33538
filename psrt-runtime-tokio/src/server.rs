//! The tokio server: psrt-driver's [`psrt_driver::Server`] on the
//! [`Tokio`] runtime. Binding, the socket loop, accept/UDP/stats tasks,
//! drain, reload and signals are psrt-driver's; this module only starts
//! tokio.

use std::io;
use std::ops::Deref;

use psrt_proto::spec::ServerSpec;

use crate::runtime::Tokio;

pub use psrt_driver::BoundAddrs;

/// Controls a running server from elsewhere (tests, signal handlers).
pub type ServerHandle = psrt_driver::ServerHandle<Tokio>;

/// A bound server, ready to [`Server::run`]. It dereferences to
/// psrt-driver's server for [`addrs`](psrt_driver::Server::addrs) and
/// [`handle`](psrt_driver::Server::handle).
pub struct Server(psrt_driver::Server<Tokio>);

impl Deref for Server {
    type Target = psrt_driver::Server<Tokio>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Server {
    /// Binds every listener of `spec`; needs no runtime (async to match
    /// the other runtimes' API). Errors name the address that failed.
    pub async fn bind(spec: ServerSpec) -> io::Result<Server> {
        Self::bind_now(spec)
    }

    fn bind_now(spec: ServerSpec) -> io::Result<Server> {
        psrt_driver::Server::bind(spec, Tokio).map(Server)
    }

    /// Serves until [`ServerHandle::stop`]; then stops accepting, lets
    /// queued messages drain to subscribers for at most the drain timeout,
    /// and removes the Unix-socket files. Must run inside a tokio runtime
    /// (a multi-threaded one serves sockets in parallel).
    pub async fn run(self) {
        self.0.run().await;
    }
}

/// Builds a runtime with `spec.workers` threads, serves `spec` and returns
/// on SIGTERM or SIGINT after the graceful drain. SIGHUP reloads the
/// access rules. `on_bound` runs once every listener is bound (write the
/// pid file there).
pub fn serve(spec: ServerSpec, on_bound: impl FnOnce(&BoundAddrs)) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.workers.max(1))
        .thread_name("psrtd-worker")
        .enable_all()
        .build()?;
    let run = |server: Server| {
        runtime.block_on(server.run());
        Ok(())
    };
    psrt_driver::signals::serve(spec, on_bound, Server::bind_now, run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use psrt_driver::Runtime;
    use psrt_driver::socket_loop::socket_task_size;

    /// Every idle socket holds one socket-loop future: it must stay small.
    #[tokio::test]
    async fn serve_future_stays_small() {
        let server = Server::bind(ServerSpec::open("127.0.0.1:0".parse().expect("addr")))
            .await
            .expect("bind");
        let stream = Tokio
            .connect_tcp(server.addrs().tcp[0])
            .await
            .expect("connect");
        let size = socket_task_size(server.shared(), stream);
        assert!(size <= 1024, "serve future is {size} bytes");
    }
}
