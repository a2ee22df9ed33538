//! The async PSRT client, written once over the [`Runtime`] trait: each
//! runtime crate's `client` module is this module on its runtime
//! (`psrt_runtime_tokio::client::Client` is `Client<Tokio>`, and so on).
//! The protocol itself is `psrt_proto::client`'s; this module adds the
//! sockets, timers, channels and tasks.
//!
//! * [`Client`]: a TCP, TLS or Unix-socket session. One background task
//!   drives the control socket (requests, replies, keep-alive NOPs) and,
//!   unless the client is publish-only, a second one drives the data socket
//!   and forwards pushed [`Message`]s into a bounded channel
//!   ([`Messages`]). Requests reach the control task over a bounded
//!   channel, each with a one-shot channel for its reply, so a `Client`
//!   (cheap to clone) can be used from many tasks and keep many publishes
//!   in flight ([`Client::publish_nowait`]).
//! * [`UdpClient`]: publishing over UDP, plain or AES-GCM sealed.
//!
//! The tasks are spawned as a [`Job`] on the runtime given to
//! [`Client::connect_on`] ([`Client::connect`] takes the runtime's
//! default: the ambient tokio runtime, smol's global executor, the monoio
//! runtime of the current thread). Their timers are the runtime's.
//!
//! # Threads
//!
//! The handles talk to the tasks over `async-channel` and
//! `futures-channel` channels only, which wake across threads on every
//! runtime. So [`Client`], [`Ticket`] and [`Messages`] are `Send`: a clone
//! may move to another thread (another monoio runtime, or any executor)
//! and be used there. The tasks stay where the runtime put them; on monoio
//! that is the thread that connected, whose runtime must keep running
//! (with its timer enabled) for the session to live.

mod control;
mod data;
mod failover;
mod udp;
mod waiters;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::oneshot;
use psrt_proto::client::{COMMAND_QUEUE, ClientHandle, ConnectPlan, Request};
use psrt_proto::wire::Token;
use rand::seq::SliceRandom;

pub use psrt_proto::client::{
    ClientOptions, DEFAULT_PORT, Message, SessionError as ClientError, TlsOptions, UdpAuth,
};
pub use psrt_proto::udp::Cipher;
pub use udp::UdpClient;

use crate::job::Job;
use crate::runtime::{Runtime, until};
use control::{Command, ControlTask};
use data::DataTask;
use failover::{FailoverTask, Gone, NodeStatus, Nodes};

/// The messages pushed to a [`Client`]'s subscriptions, in the order the
/// server sent them (from [`Client::take_messages`]). `recv` fails once
/// the data socket has closed and every message was read; it is also a
/// `futures_core::Stream`.
pub type Messages = async_channel::Receiver<Message>;

/// A logged-in PSRT session whose tasks run on runtime `R`.
///
/// Clones share the session: every clone may issue requests concurrently,
/// and replies are matched in order by the control task. The session ends
/// with [`Client::bye`], or when the last clone is dropped (the task then
/// says BYE itself).
///
/// A client connected through a list of several cluster nodes fails over:
/// see [`Client::connect_on`].
pub struct Client<R: Runtime> {
    shared: Handle,
    status: Arc<NodeStatus>,
    runtime: PhantomData<fn() -> R>,
}

/// The state the handles of one session share: the sender of requests to
/// its control task (or, with failover, to the failover task) and the
/// message receiver.
type Handle = ClientHandle<async_channel::Sender<Command>, Messages>;

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            status: Arc::clone(&self.status),
            runtime: PhantomData,
        }
    }
}

impl<R: Runtime> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("shared", &self.shared)
            .field("status", &self.status)
            .finish()
    }
}

/// The pending reply to a request sent with [`Client::publish_nowait`]:
/// await it for the outcome. Dropping it does not cancel the request.
#[derive(Debug)]
#[must_use = "await the ticket to learn whether the server accepted the request"]
pub struct Ticket {
    reply: oneshot::Receiver<Result<(), ClientError>>,
}

impl Future for Ticket {
    type Output = Result<(), ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.reply)
            .poll(cx)
            .map(|answer| answer.unwrap_or_else(|_| Err(ClientError::session_ended())))
    }
}

impl<R: Runtime + Default> Client<R> {
    /// Connects to `addr` (`host:port`, `host` for the default port, or a
    /// Unix-socket path), logs in and, unless `options.data_socket` is
    /// false, opens the data socket. Everything must finish within
    /// `options.timeout`. The session's tasks run on `R::default()`.
    pub async fn connect(addr: &str, options: ClientOptions) -> Result<Self, ClientError> {
        Self::connect_on(R::default(), addr, options).await
    }
}

impl<R: Runtime> Client<R> {
    /// [`Client::connect`] with the session's tasks spawned on `runtime`.
    ///
    /// `addr` may list several nodes of a cluster,
    /// `node1:2873,node2:2873`: they are tried in order (in random order
    /// with `options.shuffle_nodes`), each within `options.timeout`, and
    /// the session is with the first that answers; the error is the last
    /// node's.
    ///
    /// Failover: a client of several nodes that loses its node (the node
    /// stops, the connection breaks) connects to the next node that
    /// answers, trying the list round after round with a growing pause
    /// between rounds, for at most `options.failover`, and there
    /// subscribes again to every filter it was asked to subscribe to (and
    /// not to unsubscribe from). Messages published while no node was
    /// connected are not replayed. Requests made meanwhile fail at once
    /// with [`ClientError::Disconnected`], nothing is buffered; requests
    /// in flight when the node was lost fail too. [`Client::failovers`]
    /// counts the moves and [`Client::node`] names the node. When every
    /// attempt failed the session ends as a single-node session does: the
    /// message stream ends and requests fail.
    pub async fn connect_on(
        runtime: R,
        addr: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let mut nodes: Vec<String> = psrt_proto::client::node_list(addr)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if nodes.is_empty() {
            nodes.push(addr.to_owned());
        }
        if options.shuffle_nodes {
            nodes.shuffle(&mut rand::rng());
        }
        let fails_over = nodes.len() > 1 && !options.failover.is_zero();
        let (feed, messages) = if fails_over && options.data_socket {
            let (feed, messages) = async_channel::bounded(options.queue_capacity());
            (Some(feed), Some(messages))
        } else {
            (None, None)
        };
        let mut last = None;
        for (index, node) in nodes.iter().enumerate() {
            match connect_node(&runtime, node, &options, feed.as_ref()).await {
                Ok(session) => {
                    let status = Arc::new(NodeStatus::new(node));
                    let shared = if fails_over {
                        FailoverTask::start(
                            runtime,
                            options,
                            Nodes::new(nodes, index),
                            session,
                            feed,
                            messages,
                            Arc::clone(&status),
                        )
                    } else {
                        session.handle
                    };
                    return Ok(Self {
                        shared,
                        status,
                        runtime: PhantomData,
                    });
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or(ClientError::Timeout(options.timeout)))
    }

    /// The node the session is with, as the address list names it.
    pub fn node(&self) -> String {
        self.status.node()
    }

    /// How many times the session moved to another node after losing
    /// its node (always 0 for a client of a single node).
    pub fn failovers(&self) -> u64 {
        self.status.failovers()
    }

    /// The receiver of pushed messages; `Some` only on the first call (and
    /// never for a publish-only client).
    pub fn take_messages(&self) -> Option<Messages> {
        self.shared.take_messages()
    }

    psrt_proto::client_request_methods!(Ticket, ClientError);

    /// Hands a request to the control task and returns its reply ticket.
    async fn send(&self, request: Request) -> Result<Ticket, ClientError> {
        let (reply, ticket) = oneshot::channel();
        if self.shared.commands().send((request, reply)).await.is_err() {
            return Err(self.shared.ended_error());
        }
        Ok(Ticket { reply: ticket })
    }
}

/// A background task of a client session, spawned as [`Job::Client`].
pub struct ClientJob<R: Runtime>(Task<R>);

/// The kinds of client task. A socket's task holds the sending end of a
/// one-shot channel that nobody sends on: it is dropped when the task
/// ends, which tells a failover task that the session is gone.
enum Task<R: Runtime> {
    Control(ControlTask<R>, oneshot::Sender<()>),
    Data(DataTask<R>, oneshot::Sender<()>),
    Failover(FailoverTask<R>),
}

impl<R: Runtime> ClientJob<R> {
    /// Runs the task until its socket's session ends (a failover task:
    /// until the client ends).
    pub(crate) async fn run(self) {
        match self.0 {
            Task::Control(task, _gone) => task.run().await,
            Task::Data(task, _gone) => task.run().await,
            Task::Failover(task) => task.run().await,
        }
    }
}

/// A session with one node: its handles' state, and what tells that its
/// socket tasks ended.
struct Session {
    handle: Handle,
    gone: Gone,
}

/// Connects to one `node` within `options.timeout`; the data task sends
/// to `feed` when given (a failover client's one stream of messages), else
/// to a channel of its own.
async fn connect_node<R: Runtime>(
    runtime: &R,
    node: &str,
    options: &ClientOptions,
    feed: Option<&async_channel::Sender<Message>>,
) -> Result<Session, ClientError> {
    let timeout = options.timeout;
    let plan = ConnectPlan::new(node, options.clone())?;
    until(runtime.sleep(timeout), connect(runtime, plan, feed))
        .await
        .unwrap_or(Err(ClientError::Timeout(timeout)))
}

/// The connection steps of [`Client::connect`], without the overall
/// timeout.
async fn connect<R: Runtime>(
    runtime: &R,
    mut plan: ConnectPlan,
    feed: Option<&async_channel::Sender<Message>>,
) -> Result<Session, ClientError> {
    let (token, commands, control_gone) = start_control(runtime, &mut plan).await?;
    let (messages, data_gone) = if plan.wants_data_socket() {
        start_data(runtime, &mut plan, token, feed).await?
    } else {
        (None, None)
    };
    Ok(Session {
        handle: plan.into_handle(commands, messages),
        gone: Gone::new(control_gone, data_gone),
    })
}

/// Opens the control socket, spawns its task and waits for the login.
async fn start_control<R: Runtime>(
    runtime: &R,
    plan: &mut ConnectPlan,
) -> Result<(Token, async_channel::Sender<Command>, oneshot::Receiver<()>), ClientError> {
    let stream = plan.opened(runtime.connect(plan.target()).await)?;
    let (login, login_rx) = oneshot::channel();
    let session = plan.control_session(login, Instant::now())?;
    let (commands, command_rx) = async_channel::bounded(COMMAND_QUEUE);
    let task = ControlTask::new(stream, session, command_rx);
    let (alive, gone) = oneshot::channel();
    runtime.spawn(Job::Client(Box::new(ClientJob(Task::Control(task, alive)))));
    let token = login_rx.await.map_err(|_| ClientError::session_ended())??;
    Ok((token, commands, gone))
}

/// Opens the data socket, spawns its task and waits for the server's OK.
/// The task sends to `feed` when given; else to a new channel, whose
/// receiver is returned.
async fn start_data<R: Runtime>(
    runtime: &R,
    plan: &mut ConnectPlan,
    token: Token,
    feed: Option<&async_channel::Sender<Message>>,
) -> Result<(Option<Messages>, Option<oneshot::Receiver<()>>), ClientError> {
    let stream = plan.opened(runtime.connect(plan.target()).await)?;
    let (ready, ready_rx) = oneshot::channel();
    let session = plan.data_session(token, ready, Instant::now());
    let (messages, message_rx) = match feed {
        Some(feed) => (feed.clone(), None),
        None => {
            let (messages, message_rx) = async_channel::bounded(plan.queue_capacity());
            (messages, Some(message_rx))
        }
    };
    let task = DataTask::new(stream, session, messages);
    let (alive, gone) = oneshot::channel();
    runtime.spawn(Job::Client(Box::new(ClientJob(Task::Data(task, alive)))));
    ready_rx.await.map_err(|_| ClientError::session_ended())??;
    Ok((message_rx, Some(gone)))
}
