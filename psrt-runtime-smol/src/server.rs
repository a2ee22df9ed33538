//! The smol server: psrt-driver's [`psrt_driver::Server`] on the [`Smol`]
//! runtime. Binding, the socket loop, accept/UDP/stats tasks, drain,
//! reload and signals are psrt-driver's; this module only runs executors.
//!
//! smol has no ambient runtime: each [`Server`] owns an [`Executor`] that
//! [`Server::run`] drives on the calling thread, and
//! [`Server::run_on_threads`] adds `workers - 1` more threads driving the
//! same executor (smol's documented multi-threaded pattern).

use std::io;
use std::ops::Deref;
use std::sync::Arc;

use psrt_proto::spec::ServerSpec;
use smol::Executor;

use crate::runtime::Smol;

pub use psrt_driver::BoundAddrs;

/// Controls a running server from elsewhere (tests, signal handlers).
pub type ServerHandle = psrt_driver::ServerHandle<Smol>;

/// A bound server, ready to [`Server::run`]. It dereferences to
/// psrt-driver's server for [`addrs`](psrt_driver::Server::addrs) and
/// [`handle`](psrt_driver::Server::handle).
pub struct Server {
    inner: psrt_driver::Server<Smol>,
    executor: Arc<Executor<'static>>,
}

impl Deref for Server {
    type Target = psrt_driver::Server<Smol>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Server {
    /// Binds every listener of `spec`; needs no runtime (async to match
    /// the other runtimes' API). Errors name the address that failed.
    pub async fn bind(spec: ServerSpec) -> io::Result<Server> {
        Self::bind_now(spec)
    }

    fn bind_now(spec: ServerSpec) -> io::Result<Server> {
        let executor = Arc::new(Executor::new());
        let inner = psrt_driver::Server::bind(spec, Smol::new(&executor))?;
        Ok(Server { inner, executor })
    }

    /// Serves until [`ServerHandle::stop`]; then stops accepting, lets
    /// queued messages drain to subscribers for at most the drain timeout,
    /// and removes the Unix-socket files.
    ///
    /// The server's tasks run on its own executor, which this future
    /// drives: await it from any executor or `smol::block_on`. Tasks still
    /// running when it returns are cancelled once the server is dropped.
    pub async fn run(self) {
        self.executor.clone().run(self.inner.run()).await;
    }

    /// Runs the server on `workers` threads (the calling one included,
    /// at least one) and returns once it has stopped and drained.
    pub fn run_on_threads(self, workers: usize) {
        // Closed when the server has drained: the extra workers then return.
        let (done_tx, done) = smol::channel::bounded::<()>(1);
        let mut threads = Vec::new();
        for _ in 1..workers.max(1) {
            let (executor, done) = (self.executor.clone(), done.clone());
            let thread = std::thread::Builder::new()
                .name("psrtd-worker".into())
                .spawn(move || smol::block_on(executor.run(done.recv())));
            match thread {
                Ok(thread) => threads.push(thread),
                Err(err) => tracing::warn!(%err, "cannot start a worker thread"),
            }
        }
        smol::block_on(self.run());
        done_tx.close();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Serves `spec` on `spec.workers` threads and returns on SIGTERM or
/// SIGINT after the graceful drain. SIGHUP reloads the access rules.
/// `on_bound` runs once every listener is bound (write the pid file
/// there).
pub fn serve(spec: ServerSpec, on_bound: impl FnOnce(&BoundAddrs)) -> io::Result<()> {
    let workers = spec.workers;
    let run = |server: Server| {
        server.run_on_threads(workers);
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
    #[test]
    fn serve_future_stays_small() {
        let addr = "127.0.0.1:0".parse().expect("addr");
        let server = Server::bind_now(ServerSpec::open(addr)).expect("bind");
        let runtime = server.shared().runtime().clone();
        let stream = smol::block_on(runtime.connect_tcp(server.addrs().tcp[0]));
        let size = socket_task_size(server.shared(), stream.expect("connect"));
        assert!(size <= 1024, "serve future is {size} bytes");
    }
}
