//! An async PSRT client over the core's client state machines
//! ([`psrt_proto::client`]).
//!
//! * [`Client`]: a TCP, TLS or Unix-socket session. One background task
//!   drives the control socket (requests, replies, keep-alive NOPs) and,
//!   unless the client is publish-only, a second one drives the data socket
//!   and forwards pushed [`Message`]s into a bounded channel. Requests reach
//!   the control task over a bounded channel, each with a one-shot channel
//!   for its reply, so a `Client` (cheap to clone) can be used from many
//!   tasks and keep many publishes in flight ([`Client::publish_nowait`]).
//! * [`UdpClient`]: publishing over UDP, plain or AES-GCM sealed.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use psrt_proto::spec::ServerSpec;
//! use psrt_runtime_tokio::client::{Client, ClientOptions};
//! use psrt_runtime_tokio::server::Server;
//!
//! // An in-process server with anonymous full access on a free port.
//! let server = Server::bind(ServerSpec::open("127.0.0.1:0".parse()?)).await?;
//! let addr = server.addrs().tcp[0].to_string();
//! let stop = server.handle();
//! tokio::spawn(server.run());
//!
//! let client = Client::connect(&addr, ClientOptions::default()).await?;
//! let mut messages = client.take_messages().expect("taken once");
//! client.subscribe("sensors/#").await?;
//! client.publish("sensors/t1", "21.5").await?;
//!
//! let message = messages.recv().await.expect("one message");
//! assert_eq!(message.topic_str(), Some("sensors/t1"));
//! assert_eq!(&message.payload[..], b"21.5");
//!
//! client.bye().await?;
//! stop.stop();
//! # Ok(())
//! # }
//! ```

mod control;
mod data;
mod io;
mod udp;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use psrt_proto::client::{COMMAND_QUEUE, ClientHandle, ConnectPlan, Request};
use psrt_proto::wire::Token;
use tokio::sync::{mpsc, oneshot};

pub use psrt_proto::client::{
    ClientOptions, DEFAULT_PORT, Message, SessionError as ClientError, TlsOptions, UdpAuth,
};
pub use psrt_proto::udp::Cipher;
pub use udp::UdpClient;

use control::Command;

/// A logged-in PSRT session.
///
/// Clones share the session: every clone may issue requests concurrently,
/// and replies are matched in order by the control task. The session ends
/// with [`Client::bye`], or when the last clone is dropped (the task then
/// says BYE itself).
#[derive(Debug, Clone)]
pub struct Client {
    shared: ClientHandle<mpsc::Sender<Command>, mpsc::Receiver<Message>>,
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

impl Client {
    /// Connects to `addr` (`host:port`, `host` for the default port, or a
    /// Unix-socket path), logs in and, unless `options.data_socket` is
    /// false, opens the data socket. Everything must finish within
    /// `options.timeout`.
    pub async fn connect(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let timeout = options.timeout;
        tokio::time::timeout(timeout, connect(ConnectPlan::new(addr, options)?))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// The receiver of pushed messages; `Some` only on the first call (and
    /// never for a publish-only client). It yields `None` once the data
    /// socket has closed and every message was read.
    pub fn take_messages(&self) -> Option<mpsc::Receiver<Message>> {
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

/// The connection steps of [`Client::connect`], without the overall
/// timeout.
async fn connect(mut plan: ConnectPlan) -> Result<Client, ClientError> {
    let (token, commands) = start_control(&mut plan).await?;
    let messages = start_data(&mut plan, token).await?;
    let shared = plan.into_handle(commands, messages);
    Ok(Client { shared })
}

/// Opens the control socket, spawns its task and waits for the login.
async fn start_control(
    plan: &mut ConnectPlan,
) -> Result<(Token, mpsc::Sender<Command>), ClientError> {
    let io = plan.opened(io::open(plan.target()).await)?;
    let (login, login_rx) = oneshot::channel();
    let session = plan.control_session(login, Instant::now())?;
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    tokio::spawn(control::run(io, session, command_rx));
    let token = login_rx.await.map_err(|_| ClientError::session_ended())??;
    Ok((token, commands))
}

/// Opens the data socket, spawns its task and waits for the server's OK;
/// `None` for a publish-only client.
async fn start_data(
    plan: &mut ConnectPlan,
    token: Token,
) -> Result<Option<mpsc::Receiver<Message>>, ClientError> {
    if !plan.wants_data_socket() {
        return Ok(None);
    }
    let io = plan.opened(io::open(plan.target()).await)?;
    let (ready, ready_rx) = oneshot::channel();
    let session = plan.data_session(token, ready, Instant::now());
    let (messages, message_rx) = mpsc::channel(plan.queue_capacity());
    tokio::spawn(data::run(io, session, messages));
    ready_rx.await.map_err(|_| ClientError::session_ended())??;
    Ok(Some(message_rx))
}
