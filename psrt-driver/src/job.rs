//! [`Job`]: every kind of task a server (or a client) spawns, as one
//! closed set, so the generic code never names a spawner's bounds: a
//! runtime crate spawns `job.run()` with its own spawner, and the compiler
//! checks there, on concrete types, whether the task is `Send`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use psrt_proto::conn::Transport;

use crate::accept::AcceptJob;
use crate::client::ClientJob;
use crate::cluster::ClusterJob;
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::socket_loop::SocketJob;
use crate::stats::StatsJob;
use crate::udp::UdpJob;

/// A task of a server. The per-socket kind is inline, since every idle
/// socket holds one; the rare, larger kinds are boxed so they do not make
/// every task's future larger.
pub enum Job<R: Runtime> {
    /// Serves one protocol socket until it closes.
    Socket(SocketJob<R>),
    /// Accepts on one listener until the server stops.
    Accept(Box<AcceptJob<R>>),
    /// Receives datagrams on one UDP socket until the server stops.
    Udp(Box<UdpJob<R>>),
    /// Answers one stats HTTP request.
    Stats(Box<StatsJob<R>>),
    /// Drives one socket of a [`crate::client::Client`].
    Client(Box<ClientJob<R>>),
    /// Supervises the cluster links, or keeps one up.
    Cluster(Box<ClusterJob<R>>),
}

impl<R: Runtime> Job<R> {
    /// The job serving one accepted protocol socket.
    pub fn socket(
        shared: Arc<Shared<R>>,
        stream: R::Stream,
        transport: Transport,
        peer: String,
    ) -> Self {
        Job::Socket(SocketJob::new(shared, stream, transport, peer))
    }

    /// Runs the job to its end. A panic is logged and ends only this task
    /// instead of unwinding through (and ending) the worker thread that
    /// polled it.
    ///
    /// Not an `async fn`: its future would hold the job and, beside it,
    /// the future that owns the job's parts. The socket future is returned
    /// as is; the rare kinds are boxed.
    pub fn run(self) -> impl Future<Output = ()> {
        match self {
            Job::Socket(job) => JobRun::Socket { socket: job.run() },
            rare => JobRun::Other {
                other: Box::pin(rare.run_boxed()),
            },
        }
    }

    /// The work of a rare kind of job, for [`Job::run`] to box. (A socket
    /// job never comes here; its future is boxed apart so that it does not
    /// make the others' boxes as large.)
    async fn run_boxed(self) {
        match self {
            Job::Socket(job) => Box::pin(job.run()).await,
            Job::Accept(job) => job.run().await,
            Job::Udp(job) => job.run().await,
            Job::Stats(job) => job.run().await,
            Job::Client(job) => job.run().await,
            Job::Cluster(job) => job.run().await,
        }
    }
}

pin_project! {
    /// The future of a [`Job`]: a socket's, or a boxed one.
    #[project = JobRunProj]
    enum JobRun<S, O> {
        Socket { #[pin] socket: S },
        Other { #[pin] other: O },
    }
}

impl<S: Future<Output = ()>, O: Future<Output = ()>> Future for JobRun<S, O> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| match self.project() {
            JobRunProj::Socket { socket } => socket.poll(cx),
            JobRunProj::Other { other } => other.poll(cx),
        }));
        polled.unwrap_or_else(|_| {
            tracing::error!("a PSRT task panicked; it was dropped");
            Poll::Ready(())
        })
    }
}
