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
mod udp;
mod waiters;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::oneshot;
use psrt_proto::client::{COMMAND_QUEUE, ClientHandle, ConnectPlan, Request};
use psrt_proto::wire::Token;

pub use psrt_proto::client::{
    ClientOptions, DEFAULT_PORT, Message, SessionError as ClientError, TlsOptions, UdpAuth,
};
pub use psrt_proto::udp::Cipher;
pub use udp::UdpClient;

use crate::job::Job;
use crate::runtime::{Runtime, until};
use control::{Command, ControlTask};
use data::DataTask;

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
pub struct Client<R: Runtime> {
    shared: ClientHandle<async_channel::Sender<Command>, Messages>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            runtime: PhantomData,
        }
    }
}

impl<R: Runtime> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("shared", &self.shared)
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
    /// `node1:2873,node2:2873`: they are tried in order, each within
    /// `options.timeout`, and the session is with the first that answers;
    /// the error is the last node's. A client that loses its node connects
    /// again the same way (to fail over) and subscribes again.
    pub async fn connect_on(
        runtime: R,
        addr: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let nodes = psrt_proto::client::node_list(addr);
        let mut last = None;
        for node in if nodes.is_empty() { vec![addr] } else { nodes } {
            let timeout = options.timeout;
            let plan = ConnectPlan::new(node, options.clone())?;
            let attempt = until(runtime.sleep(timeout), connect(&runtime, plan))
                .await
                .unwrap_or(Err(ClientError::Timeout(timeout)));
            match attempt {
                Ok(client) => return Ok(client),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or(ClientError::Timeout(options.timeout)))
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

/// The two kinds of client task.
enum Task<R: Runtime> {
    Control(ControlTask<R>),
    Data(DataTask<R>),
}

impl<R: Runtime> ClientJob<R> {
    /// Runs the task until its socket's session ends.
    pub(crate) async fn run(self) {
        match self.0 {
            Task::Control(task) => task.run().await,
            Task::Data(task) => task.run().await,
        }
    }
}

/// The connection steps of [`Client::connect`], without the overall
/// timeout.
async fn connect<R: Runtime>(runtime: &R, mut plan: ConnectPlan) -> Result<Client<R>, ClientError> {
    let (token, commands) = start_control(runtime, &mut plan).await?;
    let messages = start_data(runtime, &mut plan, token).await?;
    Ok(Client {
        shared: plan.into_handle(commands, messages),
        runtime: PhantomData,
    })
}

/// Opens the control socket, spawns its task and waits for the login.
async fn start_control<R: Runtime>(
    runtime: &R,
    plan: &mut ConnectPlan,
) -> Result<(Token, async_channel::Sender<Command>), ClientError> {
    let stream = plan.opened(runtime.connect(plan.target()).await)?;
    let (login, login_rx) = oneshot::channel();
    let session = plan.control_session(login, Instant::now())?;
    let (commands, command_rx) = async_channel::bounded(COMMAND_QUEUE);
    let task = ControlTask::new(stream, session, command_rx);
    runtime.spawn(Job::Client(Box::new(ClientJob(Task::Control(task)))));
    let token = login_rx.await.map_err(|_| ClientError::session_ended())??;
    Ok((token, commands))
}

/// Opens the data socket, spawns its task and waits for the server's OK;
/// `None` for a publish-only client.
async fn start_data<R: Runtime>(
    runtime: &R,
    plan: &mut ConnectPlan,
    token: Token,
) -> Result<Option<Messages>, ClientError> {
    if !plan.wants_data_socket() {
        return Ok(None);
    }
    let stream = plan.opened(runtime.connect(plan.target()).await)?;
    let (ready, ready_rx) = oneshot::channel();
    let session = plan.data_session(token, ready, Instant::now());
    let (messages, message_rx) = async_channel::bounded(plan.queue_capacity());
    let task = DataTask::new(stream, session, messages);
    runtime.spawn(Job::Client(Box::new(ClientJob(Task::Data(task)))));
    ready_rx.await.map_err(|_| ClientError::session_ended())??;
    Ok(Some(message_rx))
}
