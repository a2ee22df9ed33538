//! Failover of a client connected through a list of cluster nodes: the
//! [`FailoverTask`] stands between the client's handles and the session
//! with one node. It forwards every request to that session and notes the
//! filters subscribed; when the session's tasks end without the client
//! having asked for it, it connects to the next node that answers (round
//! after round, with a growing pause, for a bounded time) and subscribes
//! there again. Meanwhile every request fails at once: nothing is
//! buffered. Every session's data task sends into the one message channel
//! the application reads, so the stream goes on across nodes.

use std::collections::BTreeSet;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_lite::future::or;
use psrt_proto::client::{COMMAND_QUEUE, ClientHandle, Message, Request, SessionEnd, Waiters};

use super::control::Command;
use super::waiters::Channels;
use super::{ClientError, ClientJob, ClientOptions, Handle, Messages, Session, Task, connect_node};
use crate::backoff::Backoff;
use crate::job::Job;
use crate::runtime::Runtime;

/// The pauses between two rounds over the node list: 100 ms doubling up
/// to 2 s, with jitter.
const PAUSES: Backoff = Backoff {
    start: Duration::from_millis(100),
    cap: Duration::from_secs(2),
};

/// Which node a client is with and how often it failed over, shared by
/// every clone of the client and its failover task.
#[derive(Debug)]
pub(super) struct NodeStatus {
    node: Mutex<String>,
    failovers: AtomicU64,
}

impl NodeStatus {
    /// A client with `node`, never failed over.
    pub(super) fn new(node: &str) -> Self {
        Self {
            node: Mutex::new(node.to_owned()),
            failovers: AtomicU64::new(0),
        }
    }

    /// The node the session is with.
    pub(super) fn node(&self) -> String {
        self.lock().clone()
    }

    /// How many times the client moved to another node.
    pub(super) fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// The client failed over to `node`.
    fn moved_to(&self, node: &str) {
        node.clone_into(&mut self.lock());
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        self.node
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Completes when a session's control or data task ended (each task
/// holds the sender of one of these one-shot channels and drops it).
pub(super) struct Gone {
    control: oneshot::Receiver<()>,
    data: Option<oneshot::Receiver<()>>,
}

/// Which of a session's tasks ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Control,
    Data,
}

impl Gone {
    /// Watches the control task and, for a session with a data socket,
    /// the data task.
    pub(super) fn new(control: oneshot::Receiver<()>, data: Option<oneshot::Receiver<()>>) -> Self {
        Self { control, data }
    }

    /// Waits until a watched task ends.
    async fn ended(&mut self) -> Ended {
        poll_fn(|cx| {
            if Pin::new(&mut self.control).poll(cx).is_ready() {
                return Poll::Ready(Ended::Control);
            }
            match self.data.as_mut().map(|data| Pin::new(data).poll(cx)) {
                Some(Poll::Ready(_)) => Poll::Ready(Ended::Data),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

/// A client's node list, in the order it tries them, and the node it is
/// with.
#[derive(Debug)]
pub(super) struct Nodes {
    list: Vec<String>,
    current: usize,
}

impl Nodes {
    /// `list` (at least one node), connected to `list[current]`.
    pub(super) fn new(list: Vec<String>, current: usize) -> Self {
        Self { list, current }
    }

    /// The indexes to try after losing the current node: the nodes after
    /// it in list order, wrapping around, the lost node last (it may be
    /// back by then).
    fn failover_order(&self) -> Vec<usize> {
        let len = self.list.len();
        (1..=len).map(|step| (self.current + step) % len).collect()
    }
}

/// The filters a client asked to subscribe to and not to unsubscribe
/// from, to subscribe to again on the next node.
#[derive(Debug, Default)]
struct Subscriptions(BTreeSet<String>);

impl Subscriptions {
    /// Notes what `request` subscribes or unsubscribes.
    fn track(&mut self, request: &Request) {
        match request {
            Request::Subscribe(filters) => self.0.extend(filters.iter().cloned()),
            Request::Unsubscribe(filters) => {
                for filter in filters {
                    self.0.remove(filter);
                }
            }
            Request::Publish { .. } | Request::Bye => {}
        }
    }

    fn filters(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

/// How forwarding to one session ended.
enum Served {
    /// The node was lost: fail over.
    Lost,
    /// The client ended (BYE, or every handle dropped), for this reason.
    Ended(String),
}

/// The task of a client of several nodes (see the module documentation).
pub(super) struct FailoverTask<R: Runtime> {
    supervisor: Supervisor<R>,
    session: Session,
}

/// What the failover task keeps across sessions.
struct Supervisor<R: Runtime> {
    runtime: R,
    options: ClientOptions,
    nodes: Nodes,
    /// The requests of the client's handles.
    commands: async_channel::Receiver<Command>,
    /// The sending end of the message channel the application reads,
    /// handed to every session's data task; `None` without data socket.
    feed: Option<async_channel::Sender<Message>>,
    subscriptions: Subscriptions,
    status: Arc<NodeStatus>,
    /// Why the client ended, for the handles' later requests.
    ended: SessionEnd,
}

impl<R: Runtime> FailoverTask<R> {
    /// Spawns the failover task over the first `session` (with
    /// `nodes.current`) and returns the state the client's handles share:
    /// requests go to the task, messages come from `messages`, the
    /// receiving end of `feed`.
    pub(super) fn start(
        runtime: R,
        options: ClientOptions,
        nodes: Nodes,
        session: Session,
        feed: Option<async_channel::Sender<Message>>,
        messages: Option<Messages>,
        status: Arc<NodeStatus>,
    ) -> Handle {
        let (commands, command_rx) = async_channel::bounded(COMMAND_QUEUE);
        let ended = SessionEnd::new();
        let task = FailoverTask {
            supervisor: Supervisor {
                runtime: runtime.clone(),
                options,
                nodes,
                commands: command_rx,
                feed,
                subscriptions: Subscriptions::default(),
                status,
                ended: ended.clone(),
            },
            session,
        };
        runtime.spawn(Job::Client(Box::new(ClientJob(Task::Failover(task)))));
        ClientHandle::new(commands, messages, ended)
    }

    /// Forwards requests and fails over until the client ends.
    pub(super) async fn run(self) {
        let Self {
            mut supervisor,
            mut session,
        } = self;
        let reason = loop {
            match supervisor.serve(&mut session).await {
                Served::Ended(reason) => break reason,
                Served::Lost => {}
            }
            // Dropping the handle ends what is left of the lost session
            // (its control task says BYE when only the data socket broke).
            drop(session);
            match supervisor.fail_over().await {
                Ok(next) => session = next,
                Err(reason) => break reason,
            }
        };
        supervisor.ended.set(reason);
    }
}

impl<R: Runtime> Supervisor<R> {
    /// Forwards the handles' requests to `session` until it is lost or
    /// the client ends.
    async fn serve(&mut self, session: &mut Session) -> Served {
        /// What woke the task.
        enum Wake {
            Command(Option<Command>),
            Gone(Ended),
        }
        let mut closing = false;
        loop {
            let commands = &self.commands;
            let gone = &mut session.gone;
            let wake = or(async { Wake::Command(commands.recv().await.ok()) }, async {
                Wake::Gone(gone.ended().await)
            })
            .await;
            match wake {
                Wake::Command(None) => return Served::Ended("the client was dropped".into()),
                Wake::Command(Some((request, reply))) => {
                    closing |= request == Request::Bye;
                    self.subscriptions.track(&request);
                    let forwarded = session.handle.commands().send((request, reply)).await;
                    if let Err(async_channel::SendError((_, reply))) = forwarded {
                        Channels::answer(reply, Err(session.handle.ended_error()));
                        return self.lost(closing);
                    }
                }
                // The application dropped its message receiver: the
                // session goes on without data socket.
                Wake::Gone(Ended::Data) if self.feed.as_ref().is_some_and(|f| f.is_closed()) => {
                    session.gone.data = None;
                }
                Wake::Gone(_) => return self.lost(closing),
            }
        }
    }

    /// The session ended: the client's own end after its BYE, else a lost
    /// node.
    fn lost(&self, closing: bool) -> Served {
        if closing {
            Served::Ended("the session ended".into())
        } else {
            Served::Lost
        }
    }

    /// Connects to the next node that answers and subscribes there again;
    /// the reason to end the client when no node answered within
    /// `options.failover`, or when the client ended meanwhile.
    async fn fail_over(&mut self) -> Result<Session, String> {
        let lost = self.nodes.list[self.nodes.current].clone();
        tracing::warn!(node = %lost, "PSRT node lost; failing over");
        let started = Instant::now();
        let deadline = started + self.options.failover;
        let mut last = String::from("no node answered");
        for round in 0u32.. {
            for index in self.nodes.failover_order() {
                let node = self.nodes.list[index].clone();
                match self.rejecting(self.attempt(&node)).await? {
                    Ok(session) => {
                        self.nodes.current = index;
                        self.status.moved_to(&node);
                        tracing::info!(from = %lost, to = %node, "PSRT client failed over");
                        return Ok(session);
                    }
                    Err(err) => last = format!("{node}: {err}"),
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
            let pause = PAUSES
                .pause(round)
                .min(deadline.saturating_duration_since(Instant::now()));
            if pause.is_zero() {
                break;
            }
            self.rejecting(self.runtime.sleep(pause)).await?;
        }
        let reason = format!(
            "failover from {lost} gave up after {:.1?}; last error: {last}",
            started.elapsed()
        );
        tracing::warn!("PSRT {reason}");
        Err(reason)
    }

    /// One attempt on `node`: connect, then subscribe again.
    async fn attempt(&self, node: &str) -> Result<Session, ClientError> {
        let mut options = self.options.clone();
        let feed = self.feed.as_ref().filter(|feed| !feed.is_closed());
        options.data_socket &= feed.is_some();
        let session = connect_node(&self.runtime, node, &options, feed).await?;
        self.resubscribe(&session.handle).await?;
        Ok(session)
    }

    /// Subscribes `handle`'s session to every tracked filter: in one
    /// request, or one by one when the node refuses the bulk (a filter it
    /// refuses is logged and left out).
    async fn resubscribe(&self, handle: &Handle) -> Result<(), ClientError> {
        let filters = self.subscriptions.filters();
        if filters.is_empty() {
            return Ok(());
        }
        match request(handle, Request::subscribe(&filters)).await {
            Err(err) if is_refusal(&err) => {}
            other => return other,
        }
        for filter in filters {
            match request(handle, Request::subscribe(&[filter])).await {
                Err(err) if is_refusal(&err) => {
                    tracing::warn!(filter, %err, "PSRT subscription refused after failover");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Runs `work` while answering every request of the handles with an
    /// error (a BYE with OK); `Err` with the reason to end the client when
    /// a BYE came or every handle was dropped first.
    async fn rejecting<T>(&self, work: impl Future<Output = T>) -> Result<T, String> {
        let reject = async {
            loop {
                match self.commands.recv().await {
                    Err(_) => return String::from("the client was dropped"),
                    Ok((Request::Bye, reply)) => {
                        Channels::answer(reply, Ok(()));
                        return String::from("the session ended");
                    }
                    Ok((_, reply)) => {
                        let gap = ClientError::Disconnected("failing over to another node".into());
                        Channels::answer(reply, Err(gap));
                    }
                }
            }
        };
        or(async { Ok(work.await) }, async { Err(reject.await) }).await
    }
}

/// Sends `request` to `handle`'s control task and waits for the reply.
async fn request(handle: &Handle, request: Request) -> Result<(), ClientError> {
    let (reply, answer) = oneshot::channel();
    if handle.commands().send((request, reply)).await.is_err() {
        return Err(handle.ended_error());
    }
    answer.await.unwrap_or_else(|_| Err(handle.ended_error()))
}

/// Whether the server (or the state machine) refused a request and the
/// session is still usable.
fn is_refusal(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::AccessDenied | ClientError::Refused(_) | ClientError::Protocol(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_tries_the_next_nodes_and_the_lost_one_last() {
        let nodes = Nodes::new(vec!["a".into(), "b".into(), "c".into()], 1);
        assert_eq!(nodes.failover_order(), [2, 0, 1]);
        let nodes = Nodes::new(vec!["a".into(), "b".into()], 0);
        assert_eq!(nodes.failover_order(), [1, 0]);
    }

    #[test]
    fn subscriptions_follow_subscribes_and_unsubscribes() {
        let mut subscriptions = Subscriptions::default();
        subscriptions.track(&Request::subscribe(&["a/#", "b"]));
        subscriptions.track(&Request::subscribe(&["b", "c/+"]));
        subscriptions.track(&Request::publish("d", &b"x"[..]));
        subscriptions.track(&Request::unsubscribe(&["a/#", "never"]));
        assert_eq!(subscriptions.filters(), ["b", "c/+"]);
        subscriptions.track(&Request::Bye);
        assert_eq!(subscriptions.filters(), ["b", "c/+"]);
    }

    #[test]
    fn the_status_names_the_node_and_counts_moves() {
        let status = NodeStatus::new("a:1");
        assert_eq!((status.node(), status.failovers()), ("a:1".into(), 0));
        status.moved_to("b:2");
        assert_eq!((status.node(), status.failovers()), ("b:2".into(), 1));
    }
}
