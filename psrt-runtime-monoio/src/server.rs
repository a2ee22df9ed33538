//! The monoio server: psrt-driver's [`psrt_driver::Server`] on the
//! [`Monoio`] runtime, one runtime per worker thread. Binding, the socket
//! loop, accept/UDP/stats tasks, drain, reload and signals are
//! psrt-driver's; this module only starts the workers.
//!
//! monoio is thread-per-core: its tasks are `!Send` and never move between
//! threads. The listeners are bound once as std sockets (no
//! `SO_REUSEPORT`: a taken port fails to bind) and every worker thread
//! accepts on its own duplicate of each TCP and Unix listener, taking
//! turns with the other workers' duplicates (`turns`: a staggered
//! rotation that spreads both control and data sockets), and the socket stays on that
//! thread for its life. The UDP sockets and the stats listener are served
//! by worker 0. Wakes from other threads (the broker queueing a message
//! for a socket, a password check finishing, the stop signal) go through
//! std `Waker`s, which monoio's `sync` feature makes work across threads.

use std::io;
use std::ops::Deref;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use monoio::{FusionDriver, FusionRuntime, RuntimeBuilder};
use psrt_driver::bind::{StdListeners, remove_unix_files};
use psrt_driver::runtime::until;
use psrt_driver::{Shared, serve_listeners};
use psrt_proto::spec::ServerSpec;

use crate::runtime::Monoio;
use crate::timer_wheel;

pub use psrt_driver::BoundAddrs;

/// Controls a running server from elsewhere (tests, signal handlers).
pub type ServerHandle = psrt_driver::ServerHandle<Monoio>;

/// A bound server, ready to [`Server::run`]. It dereferences to
/// psrt-driver's server for [`addrs`](psrt_driver::Server::addrs) and
/// [`handle`](psrt_driver::Server::handle).
pub struct Server {
    inner: psrt_driver::Server<Monoio>,
    workers: usize,
}

impl Deref for Server {
    type Target = psrt_driver::Server<Monoio>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Server {
    /// Binds every listener of `spec`. Needs no runtime: the sockets are
    /// plain std sockets until each worker thread adopts them. Errors name
    /// the address that failed.
    pub fn bind(spec: ServerSpec) -> io::Result<Server> {
        let workers = spec.workers.max(1);
        let inner = psrt_driver::Server::bind(spec, Monoio)?;
        Ok(Server { inner, workers })
    }

    /// Serves on `workers` threads (the calling one and `workers - 1` new
    /// ones, each with its own runtime) until [`ServerHandle::stop`]; then
    /// stops accepting, lets queued messages drain to subscribers for at
    /// most the drain timeout, and removes the Unix-socket files.
    ///
    /// Blocks the calling thread until then (thread-per-core: the server
    /// owns its runtimes), so call it from a plain thread, not from inside
    /// an async runtime. Fails if a worker thread or its runtime cannot be
    /// created; the server is then stopped.
    pub fn run(self) -> io::Result<()> {
        let (shared, listeners, addrs) = self.inner.into_parts();
        let mut threads = Vec::with_capacity(self.workers);
        let mut result = Ok(());
        for index in 1..self.workers {
            let spawned = listeners
                .try_clone_accept()
                .and_then(|copy| spawn_worker(index, shared.clone(), copy));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    shared.stop();
                    result = Err(err);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = run_worker(0, &shared, listeners);
        }
        for thread in threads {
            let joined = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("worker thread panicked")));
            result = result.and(joined);
        }
        remove_unix_files(&addrs);
        result
    }
}

/// Binds `spec`, runs `on_bound` once every listener is bound (write the
/// pid file there), serves on `spec.workers` monoio threads and returns on
/// SIGTERM or SIGINT after the graceful drain. SIGHUP reloads the access
/// rules.
pub fn serve(spec: ServerSpec, on_bound: impl FnOnce(&BoundAddrs)) -> io::Result<()> {
    psrt_driver::signals::serve(spec, on_bound, Server::bind, Server::run)
}

fn spawn_worker(
    index: usize,
    shared: Arc<Shared<Monoio>>,
    listeners: StdListeners,
) -> io::Result<JoinHandle<io::Result<()>>> {
    std::thread::Builder::new()
        .name(format!("psrtd-worker-{index}"))
        .spawn(move || run_worker(index, &shared, listeners))
}

/// One worker thread: builds its runtime (io_uring when the kernel allows,
/// else epoll; `MONOIO_FORCE_LEGACY_DRIVER=1` forces epoll), serves its
/// listeners and the thread's timer wheel, and returns after the drain.
/// Tasks still running then are dropped with the runtime.
fn run_worker(
    index: usize,
    shared: &Arc<Shared<Monoio>>,
    listeners: StdListeners,
) -> io::Result<()> {
    let built = RuntimeBuilder::<FusionDriver>::new().enable_timer().build();
    let mut runtime = built.inspect_err(|_| shared.stop())?;
    let driver = match runtime {
        FusionRuntime::Uring(_) => "io_uring",
        FusionRuntime::Legacy(_) => "epoll fallback",
    };
    tracing::info!(worker = index, driver, "monoio worker started");
    // The thread's timer wheel runs beside the listeners (it never ends
    // by itself) and stops with them.
    let served = until(
        timer_wheel::drive(),
        serve_listeners(shared, listeners, index == 0),
    );
    runtime.block_on(async {
        let result = served.await.unwrap_or(Ok(()));
        submit_last_closes().await;
        result
    })
}

/// How long the last park of a worker waits (for nothing).
const LAST_PARK: Duration = Duration::from_millis(1);

/// Parks the thread's runtime once more. On io_uring a dropped socket is
/// closed by an operation that waits in the submission queue until the
/// runtime next parks; sockets dropped in the serve loop's last turn (the
/// UDP socket, say) would otherwise stay open, their ports bound, after
/// the worker ends: monoio does not submit when `block_on` returns, and a
/// runtime whose tasks are still pending is never torn down.
async fn submit_last_closes() {
    monoio::time::sleep(LAST_PARK).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use psrt_driver::Runtime;
    use psrt_driver::socket_loop::socket_task_size;

    /// Every idle socket holds one socket-loop future: it must stay small.
    #[monoio::test(timer_enabled = true)]
    async fn serve_future_stays_small() {
        let addr = "127.0.0.1:0".parse().expect("address");
        let server = Server::bind(ServerSpec::open(addr)).expect("bind");
        let stream = Monoio.connect_tcp(server.addrs().tcp[0]).await;
        let size = socket_task_size(server.shared(), stream.expect("connect"));
        // 48 bytes of it are the socket's entry in the thread's timer
        // wheel, which replaced a boxed 640-byte monoio timer per socket.
        assert!(size <= 1152, "serve future is {size} bytes");
    }
}
