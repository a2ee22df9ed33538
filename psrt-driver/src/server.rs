//! A server's life on any runtime: [`Server::bind`] binds every listener
//! of a spec; [`serve_listeners`] adopts listeners into the runtime,
//! spawns their loops, waits for the stop and then for the drain;
//! [`ServerHandle`] stops or reloads it from elsewhere.
//!
//! A runtime with one event loop serves everything with [`Server::run`]; a
//! thread-per-core one calls [`serve_listeners`] on each thread with a
//! duplicate of the listeners ([`StdListeners::try_clone_accept`]) and
//! removes the Unix-socket files once all have returned.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use psrt_proto::broker::Broker;
use psrt_proto::conn::{BrokerLock, Transport};
use psrt_proto::spec::ServerSpec;
use rand::SeedableRng;

use crate::accept::{AcceptJob, ListenerCloser, Serves};
use crate::bind::{BoundAddrs, StdBind, StdListeners, bind_all, remove_unix_files};
use crate::checks::CheckPool;
use crate::core::ServerCore;
use crate::events;
use crate::job::Job;
use crate::runtime::{Listener, Runtime, Udp};
use crate::shared::Shared;
use crate::stats::StatsJob;
use crate::udp::UdpJob;

/// A bound server, ready to serve on runtime `R`.
pub struct Server<R: Runtime> {
    shared: Arc<Shared<R>>,
    listeners: StdListeners,
    addrs: BoundAddrs,
}

impl<R: Runtime> Server<R> {
    /// Binds every listener of `spec` (plain std sockets, so no runtime is
    /// needed yet); its tasks will run on `runtime`. Errors name the
    /// address that failed.
    pub fn bind(spec: ServerSpec, runtime: R) -> io::Result<Self> {
        let (listeners, addrs) = bind_all(&spec, &mut StdBind)?;
        let rng = Box::new(rand::rngs::StdRng::from_os_rng());
        let core = ServerCore::new(&spec, rng, Instant::now());
        let shared = Shared::new(core, runtime, CheckPool::for_server(&spec)?);
        Ok(Self {
            shared: Arc::new(shared),
            listeners,
            addrs,
        })
    }

    /// What was bound.
    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    /// A handle to stop or reload the server once it runs.
    pub fn handle(&self) -> ServerHandle<R> {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// The state the server's tasks share.
    pub fn shared(&self) -> &Arc<Shared<R>> {
        &self.shared
    }

    /// Takes the server apart, for a runtime that serves the listeners on
    /// several threads with [`serve_listeners`].
    pub fn into_parts(self) -> (Arc<Shared<R>>, StdListeners, BoundAddrs) {
        (self.shared, self.listeners, self.addrs)
    }

    /// Serves on the current runtime until [`ServerHandle::stop`]; then
    /// stops accepting, lets queued messages drain to subscribers for at
    /// most the drain timeout, and removes the Unix-socket files. A
    /// listener the runtime cannot adopt is logged and stops the server.
    pub async fn run(self) {
        let (shared, listeners, addrs) = self.into_parts();
        if let Err(err) = serve_listeners(&shared, listeners, true).await {
            tracing::error!(%err, "cannot serve the listeners");
        }
        remove_unix_files(&addrs);
    }
}

/// Adopts `listeners` into the current runtime, spawns a loop for each,
/// and returns once the server has stopped and drained (every connection
/// closed, on all threads, or the drain limit passed). `announce` marks
/// the one call per server (the first worker) that starts the cluster
/// links and logs the start of the drain. Fails (and stops the server) if a listener
/// cannot be adopted.
pub async fn serve_listeners<R: Runtime>(
    shared: &Arc<Shared<R>>,
    listeners: StdListeners,
    announce: bool,
) -> io::Result<()> {
    if let Err(err) = spawn_listeners(shared, listeners) {
        shared.stop();
        return Err(err);
    }
    if announce {
        crate::cluster::start(shared);
    }
    shared.stopped().await;
    if announce {
        tracing::info!("shutting down: draining queued messages");
    }
    shared.drain().await;
    Ok(())
}

fn spawn_listeners<R: Runtime>(shared: &Arc<Shared<R>>, listeners: StdListeners) -> io::Result<()> {
    let accept = |listener, closer, serves| {
        let job = AcceptJob::new(shared.clone(), listener, closer, serves);
        shared.spawn(Job::Accept(Box::new(job)));
    };
    for listener in listeners.tcp {
        let closer = ListenerCloser::of(&listener)?;
        accept(
            R::Listener::from_tcp(listener)?,
            closer,
            Serves::Protocol(Transport::Tcp),
        );
    }
    for listener in listeners.unix {
        let closer = ListenerCloser::of(&listener)?;
        accept(
            R::Listener::from_unix(listener)?,
            closer,
            Serves::Protocol(Transport::Unix),
        );
    }
    for socket in listeners.udp {
        let job = UdpJob::new(shared.clone(), R::Udp::from_std(socket)?);
        shared.spawn(Job::Udp(Box::new(job)));
    }
    if let Some(listener) = listeners.stats {
        let closer = ListenerCloser::of(&listener)?;
        accept(R::Listener::from_tcp(listener)?, closer, Serves::Stats);
    }
    shared.spawn(Job::Stats(Box::new(StatsJob::sampler(shared.clone()))));
    Ok(())
}

/// Controls a running server from elsewhere (tests, signal handlers).
pub struct ServerHandle<R: Runtime> {
    shared: Arc<Shared<R>>,
}

impl<R: Runtime> Clone for ServerHandle<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Runtime> ServerHandle<R> {
    /// Starts the graceful shutdown.
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Reloads the access rules without blocking the calling task: the
    /// files are read on a thread of their own. On error the old rules
    /// stay and the message is returned (and logged). Works under any
    /// executor.
    pub async fn reload(&self) -> Result<(), String> {
        let (done_tx, done_rx) = async_channel::bounded(1);
        let handle = self.clone();
        std::thread::Builder::new()
            .name("psrt-reload".into())
            .spawn(move || {
                let _ = done_tx.try_send(handle.reload_blocking());
            })
            .map_err(|e| format!("reload thread failed: {e}"))?;
        done_rx
            .recv()
            .await
            .map_err(|_| String::from("reload thread panicked"))?
    }

    /// Reloads the access rules and the cluster peer list on the calling
    /// thread (signal handler, tests); blocks while the files are read.
    /// Same result as [`ServerHandle::reload`].
    pub fn reload_blocking(&self) -> Result<(), String> {
        let cluster = self.shared.cluster.reload();
        events::reload(&self.shared).and(cluster)
    }

    /// Runs `f` on the broker (stats, inspection); events it raises are
    /// logged.
    pub fn with_broker<T>(&self, f: impl FnOnce(&mut Broker) -> T) -> T {
        self.shared.with_broker(f)
    }
}
