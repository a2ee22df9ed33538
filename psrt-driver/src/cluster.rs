//! Cluster links, written once for every runtime: one task per peer drives
//! one `psrt_proto::cluster::Link` per lane, each over its own client
//! connection (PUBLISH_REPL allows one offer in flight per connection, so
//! lanes let several publishers' round trips overlap; the pipelined op
//! keeps a window per lane). The lanes connect,
//! fail and reconnect together, with capped exponential backoff and
//! jitter; a supervisor task starts and stops the peer tasks as the peer
//! list changes (at start and on SIGHUP).
//!
//! Each link takes messages from its lane of the peer's outbox in the
//! broker in batches, under the broker lock and never across an `.await`;
//! publishers only append to the outbox (or drop when it is full), so a
//! slow or dead peer never delays local delivery.
//!
//! Our own nodes replicate to each other with the pipelined op (our
//! extension, see `docs/replication.md`); each link probes for it after
//! login. A peer that closes the connection on the probe (the original
//! server) is linked to with PUBLISH_REPL at once, and probed again only
//! after [`PLAIN_FOR`] or when its entry in the peer list changes.
//!
//! Logging: a link logs when it comes up and when it goes down, and while
//! retrying only when the failure changes, never once per retry.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backoff::Backoff;
use psrt_proto::TxBuf;
use psrt_proto::client::{ClientOptions, ReadOutcome, Target, TlsOptions};
use psrt_proto::cluster::{
    ClusterSpec, Link, LinkError, LinkMode, LinkState, PeerSpec, PeersReloader, ReplicationOp,
};
use psrt_proto::conn::BrokerLock;

use crate::job::Job;
use crate::runtime::{Runtime, Stream, Timer, until};
use crate::shared::Shared;

/// Messages a link moves from its outbox per broker lock.
const BATCH: usize = 256;
/// The reconnect delays: 100 ms doubling up to 10 s, with jitter.
const BACKOFF: Backoff = Backoff {
    start: Duration::from_millis(100),
    cap: Duration::from_secs(10),
};
/// How long a peer that refused the pipelined op's probe (the original
/// server) is linked to with PUBLISH_REPL before probing again.
const PLAIN_FOR: Duration = Duration::from_secs(600);

/// The cluster part of a server's shared state: the peer-list updates the
/// supervisor task applies, and how to re-read the list.
pub struct ClusterControl {
    updates: async_channel::Sender<Vec<PeerSpec>>,
    /// Taken by the one supervisor task when the server starts.
    receiver: Mutex<Option<async_channel::Receiver<Vec<PeerSpec>>>>,
    reload: Option<PeersReloader>,
}

impl ClusterControl {
    /// The control for `spec`, its peers queued as the first update (none
    /// for a standalone node, whose supervisor then never starts).
    pub fn new(spec: &ClusterSpec) -> Self {
        let (updates, receiver) = async_channel::unbounded();
        let configured = !spec.peers.is_empty() || spec.reload.is_some();
        if configured {
            let _ = updates.try_send(spec.peers.clone());
        }
        Self {
            updates,
            receiver: Mutex::new(configured.then_some(receiver)),
            reload: spec.reload.clone(),
        }
    }

    /// Re-reads the peer list and hands it to the supervisor: added peers
    /// connect, removed ones disconnect, unchanged ones are not touched.
    /// Blocks while the file is read. On error the peers in force stay.
    pub fn reload(&self) -> Result<(), String> {
        let Some(reload) = &self.reload else {
            return Ok(());
        };
        match reload() {
            Ok(peers) => {
                tracing::info!(peers = peers.len(), "cluster peer list reloaded");
                let _ = self.updates.try_send(peers);
                Ok(())
            }
            Err(message) => {
                tracing::error!(%message, "cluster reload failed; keeping the peers in force");
                Err(message)
            }
        }
    }

    fn take_receiver(&self) -> Option<async_channel::Receiver<Vec<PeerSpec>>> {
        self.receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// Starts the supervisor of the cluster links, once per server (on the
/// first worker of a thread-per-core runtime); a no-op without peers.
pub fn start<R: Runtime>(shared: &Arc<Shared<R>>) {
    if let Some(updates) = shared.cluster.take_receiver() {
        let job = ClusterJob(Task::Supervisor {
            shared: shared.clone(),
            updates,
        });
        shared.spawn(Job::Cluster(Box::new(job)));
    }
}

/// A cluster task, spawned as [`Job::Cluster`].
pub struct ClusterJob<R: Runtime>(Task<R>);

enum Task<R: Runtime> {
    /// Applies peer-list updates until the server stops.
    Supervisor {
        shared: Arc<Shared<R>>,
        updates: async_channel::Receiver<Vec<PeerSpec>>,
    },
    /// Keeps one peer's link up until the peer is removed or the server
    /// stops.
    Link(PeerLink<R>),
}

impl<R: Runtime> ClusterJob<R> {
    /// Runs the task to its end.
    pub(crate) async fn run(self) {
        match self.0 {
            Task::Supervisor { shared, updates } => supervise(shared, updates).await,
            Task::Link(link) => link.run().await,
        }
    }
}

async fn supervise<R: Runtime>(
    shared: Arc<Shared<R>>,
    updates: async_channel::Receiver<Vec<PeerSpec>>,
) {
    let limits = shared.with_broker(|broker| *broker.cluster().limits());
    tracing::debug!(?limits, "cluster supervisor started");
    let mut links: HashMap<String, (PeerSpec, async_channel::Sender<()>)> = HashMap::new();
    while let Some(Ok(peers)) = until(shared.stopped(), updates.recv()).await {
        links.retain(|path, (spec, stop)| {
            let keep = peers.contains(spec);
            if !keep {
                tracing::info!(peer = %path, "cluster peer removed or changed: disconnecting");
                stop.close();
            }
            keep
        });
        shared.with_broker(|broker| {
            let names = peers.iter().map(|p| p.config.path.as_str());
            broker.cluster_mut().set_peers(names);
        });
        for spec in peers {
            if links.contains_key(&spec.config.path) {
                continue;
            }
            tracing::info!(peer = %spec.config.path, "cluster peer added: connecting");
            let (stop, stopping) = async_channel::bounded(1);
            let link = PeerLink {
                shared: shared.clone(),
                spec: spec.clone(),
                stopping,
            };
            shared.spawn(Job::Cluster(Box::new(ClusterJob(Task::Link(link)))));
            links.insert(spec.config.path.clone(), (spec, stop));
        }
    }
}

/// One peer's link task.
struct PeerLink<R: Runtime> {
    shared: Arc<Shared<R>>,
    spec: PeerSpec,
    /// Closed when the peer is removed from the list.
    stopping: async_channel::Receiver<()>,
}

/// What woke a session's loop (with the lane it concerns).
enum Event {
    Read(usize, std::io::Result<usize>),
    Wrote(usize, std::io::Result<usize>),
    Batch,
    Removed,
    Timeout,
}

impl<R: Runtime> PeerLink<R> {
    fn peer(&self) -> &str {
        &self.spec.config.path
    }

    /// Completes when the peer is removed or the server stops.
    async fn stop(&self) {
        futures_lite::future::or(self.shared.stopped(), async {
            let _ = self.stopping.recv().await;
        })
        .await;
    }

    fn set_state(&self, state: LinkState) {
        self.shared.with_broker(|broker| {
            if let Some(outbox) = broker.cluster_mut().peer_mut(self.peer()) {
                outbox.set_state(state);
            }
        });
    }

    fn link_up(&self, op: ReplicationOp) {
        self.shared.with_broker(|broker| {
            if let Some(outbox) = broker.cluster_mut().peer_mut(self.peer()) {
                outbox.link_up(op);
            }
        });
    }

    async fn run(self) {
        let mut failures = 0u32;
        let mut last_logged: Option<String> = None;
        // Until when the peer is linked to with PUBLISH_REPL.
        let mut plain_until: Option<Instant> = None;
        loop {
            self.set_state(LinkState::Connecting);
            let mut was_up = false;
            let mode = match plain_until {
                Some(until) if Instant::now() < until => LinkMode::Plain,
                _ => LinkMode::Auto,
            };
            let Some(failure) = until(self.stop(), self.session(mode, &mut was_up)).await else {
                return;
            };
            let Failure { error, refused } = failure;
            if refused {
                if plain_until.is_none() {
                    tracing::info!(
                        peer = %self.peer(),
                        "the peer does not speak pipelined replication; using PUBLISH_REPL"
                    );
                }
                plain_until = Some(Instant::now() + PLAIN_FOR);
                continue;
            }
            if was_up {
                failures = 0;
                last_logged = None;
            }
            self.shared.with_broker(|broker| {
                if let Some(outbox) = broker.cluster_mut().peer_mut(self.peer()) {
                    outbox.link_failed(error.clone());
                }
            });
            if last_logged.as_ref() != Some(&error) {
                tracing::warn!(peer = %self.peer(), %error, "cluster link down; reconnecting with backoff");
                last_logged = Some(error);
            }
            let delay = BACKOFF.pause(failures);
            failures = failures.saturating_add(1);
            if until(self.stop(), self.shared.runtime().sleep(delay))
                .await
                .is_none()
            {
                return;
            }
        }
    }

    /// One session with the peer, one connection per lane, until one
    /// fails: the failure.
    async fn session(&self, mode: LinkMode, was_up: &mut bool) -> Failure {
        let lanes = self.shared.with_broker(|broker| {
            let cluster = broker.cluster();
            cluster
                .peer(self.peer())
                .map_or(cluster.limits().lanes, |outbox| outbox.lanes())
        });
        let mut open = Vec::with_capacity(lanes);
        let mut failure = None;
        for _ in 0..lanes {
            match self.connect(mode).await {
                Ok(lane) => open.push(lane),
                Err(error) => {
                    failure = Some(Failure::from(error));
                    break;
                }
            }
        }
        let failure = match failure {
            Some(failure) => failure,
            None => self.drive(&mut open, was_up).await,
        };
        let error = &failure.error;
        let reports: Vec<_> = open.iter_mut().map(|lane| lane.link.abort(error)).collect();
        self.shared.with_broker(|broker| {
            for report in reports {
                broker
                    .cluster_mut()
                    .apply(self.peer(), report, Instant::now());
            }
        });
        for lane in open {
            lane.stream.shutdown().await;
        }
        failure
    }

    /// Opens one connection to the peer, greeting and login queued.
    async fn connect(&self, mode: LinkMode) -> Result<Lane<R>, String> {
        let config = &self.spec.config;
        let target = Target::parse(&config.path);
        let options = ClientOptions {
            login: config.user.clone(),
            password: config.password.clone(),
            tls: config.tls.then(|| TlsOptions {
                ca_pem: self.spec.ca_pem.clone(),
                ..TlsOptions::default()
            }),
            timeout: config.timeout,
            data_socket: false,
            ..ClientOptions::default()
        };
        let [tls, _] = options
            .tls_sessions(&target)
            .map_err(|err| format!("TLS setup: {err}"))?;
        let runtime = self.shared.runtime();
        let connect = until(runtime.sleep(config.timeout), runtime.connect(&target)).await;
        let stream = match connect {
            None => return Err(String::from("connect timed out")),
            Some(Err(err)) => return Err(format!("connect: {err}")),
            Some(Ok(stream)) => stream,
        };
        let client = options
            .control_client(tls, Instant::now())
            .map_err(|err| err.to_string())?;
        Ok(Lane {
            stream,
            link: Link::new(client, mode),
            tx: TxBuf::new(),
        })
    }

    /// The session's event loop over every lane; returns its failure (or
    /// its removal), in words. The peer is up once every lane logged in.
    async fn drive(&self, lanes: &mut [Lane<R>], was_up: &mut bool) -> Failure {
        let mut timer = R::Timer::default();
        loop {
            let (now, unix) = (Instant::now(), unix_ns());
            for lane in lanes.iter_mut() {
                if let Err(err) = lane.link.poll_send(now, unix) {
                    return Failure::from(err);
                }
                lane.link.poll_transmit(&mut lane.tx);
            }
            if !*was_up && lanes.iter().all(|lane| lane.link.is_up()) {
                *was_up = true;
                let pipelined = lanes.iter().all(|lane| lane.link.is_pipelined());
                self.link_up(if pipelined {
                    ReplicationOp::Pipelined
                } else {
                    ReplicationOp::PublishRepl
                });
                tracing::info!(peer = %self.peer(), lanes = lanes.len(), pipelined, "cluster link up");
            }
            timer.set(
                lanes
                    .iter()
                    .filter_map(|lane| lane.link.poll_timeout())
                    .min(),
            );
            let wants = *was_up && lanes.iter().any(|lane| lane.link.wants_messages());
            let event = poll_fn(|cx| {
                for (index, lane) in lanes.iter_mut().enumerate() {
                    if let Poll::Ready(read) = lane.stream.poll_read(cx, lane.link.read_buf()) {
                        return Poll::Ready(Event::Read(index, read));
                    }
                    if !lane.tx.is_empty()
                        && let Poll::Ready(written) = lane.stream.poll_write(cx, &lane.tx)
                    {
                        return Poll::Ready(Event::Wrote(index, written));
                    }
                }
                if wants {
                    let took = self.shared.with_broker(|broker| {
                        let cluster = broker.cluster_mut();
                        for lane in lanes.iter_mut() {
                            cluster.apply(self.peer(), lane.link.take_report(), Instant::now());
                        }
                        let outbox = cluster.peer_mut(self.peer())?;
                        let mut took = false;
                        for (index, lane) in lanes.iter_mut().enumerate() {
                            if lane.link.wants_messages() {
                                outbox.take(index, lane.link.batch_mut(), BATCH, cx.waker());
                                took |= !lane.link.batch_mut().is_empty();
                            }
                        }
                        Some(took)
                    });
                    match took {
                        None => return Poll::Ready(Event::Removed),
                        Some(true) => return Poll::Ready(Event::Batch),
                        Some(false) => {}
                    }
                }
                timer.poll_fired(cx).map(|()| Event::Timeout)
            })
            .await;
            let outcome = match event {
                Event::Read(index, read) => {
                    let link = &mut lanes[index].link;
                    match ReadOutcome::of(&read) {
                        ReadOutcome::Data => link.handle_input(Instant::now()),
                        ReadOutcome::Eof => link.handle_eof(),
                    }
                }
                Event::Wrote(index, Ok(written)) => {
                    lanes[index].tx.advance(written);
                    Ok(())
                }
                Event::Wrote(_, Err(err)) => return Failure::from(format!("write: {err}")),
                Event::Batch => Ok(()),
                Event::Removed => return Failure::from(String::from("the peer was removed")),
                Event::Timeout => {
                    let now = Instant::now();
                    lanes
                        .iter_mut()
                        .try_for_each(|lane| lane.link.handle_timeout(now))
                }
            };
            if let Err(err) = outcome {
                return Failure::from(err);
            }
        }
    }
}

/// Why a peer session ended.
struct Failure {
    /// The failure in words.
    error: String,
    /// The peer refused the pipelined op's probe: link with PUBLISH_REPL.
    refused: bool,
}

impl From<String> for Failure {
    fn from(error: String) -> Self {
        Self {
            error,
            refused: false,
        }
    }
}

impl From<LinkError> for Failure {
    fn from(err: LinkError) -> Self {
        Self {
            refused: matches!(err, LinkError::PipeliningRefused),
            error: err.to_string(),
        }
    }
}

/// One connection of a peer session: its socket, its link, and the bytes
/// waiting to go out.
struct Lane<R: Runtime> {
    stream: R::Stream,
    link: Link,
    tx: TxBuf,
}

/// The wall clock in ns since the Unix epoch (0 if it is set before it).
fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_node_has_no_supervisor() {
        let control = ClusterControl::new(&ClusterSpec::default());
        assert!(control.take_receiver().is_none());
        assert_eq!(control.reload(), Ok(()));
    }
}
