//! An async PSRT client over the core's client state machines
//! ([`psrt_proto::client`]), for monoio. Its API mirrors
//! `psrt-runtime-tokio`'s client.
//!
//! * [`Client`]: a TCP, TLS or Unix-socket session. One background task
//!   drives the control socket (requests, replies, keep-alive NOPs) and,
//!   unless the client is publish-only, a second one drives the data socket
//!   and forwards pushed [`Message`]s into a bounded channel ([`Messages`]).
//!   Requests reach the control task over a bounded channel, each with a
//!   one-shot channel for its reply, so a `Client` (cheap to clone) can be
//!   used from many tasks and keep many publishes in flight
//!   ([`Client::publish_nowait`]).
//! * [`UdpClient`]: publishing over UDP, plain or AES-GCM sealed.
//!
//! # Threads
//!
//! monoio is thread-per-core and its tasks never move: the session's tasks
//! run on the monoio runtime of the thread that called
//! [`Client::connect`], and live as long as that runtime runs. The runtime
//! needs its timer (`RuntimeBuilder::enable_timer`, or
//! `#[monoio::main(timer_enabled = true)]`). The handles themselves talk to
//! the tasks over thread-safe channels only, so `Client`, [`Ticket`] and
//! [`Messages`] are `Send`: a clone may be moved to another thread (another
//! monoio runtime, or any executor) and used there; monoio's `sync`
//! feature delivers the cross-thread wakes.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use monoio::{FusionDriver, RuntimeBuilder};
//! use psrt_proto::spec::ServerSpec;
//! use psrt_runtime_monoio::client::{Client, ClientOptions};
//! use psrt_runtime_monoio::server::Server;
//!
//! // An in-process server with anonymous full access on a free port; it
//! // owns its threads, so it runs on a plain one.
//! let server = Server::bind(ServerSpec::open("127.0.0.1:0".parse()?))?;
//! let addr = server.addrs().tcp[0].to_string();
//! let stop = server.handle();
//! let serving = std::thread::spawn(move || server.run());
//!
//! let mut runtime = RuntimeBuilder::<FusionDriver>::new()
//!     .enable_timer()
//!     .build()?;
//! runtime.block_on(async {
//!     let client = Client::connect(&addr, ClientOptions::default()).await?;
//!     let mut messages = client.take_messages().expect("taken once");
//!     client.subscribe("sensors/#").await?;
//!     client.publish("sensors/t1", "21.5").await?;
//!
//!     let message = messages.recv().await.expect("one message");
//!     assert_eq!(message.topic_str(), Some("sensors/t1"));
//!     assert_eq!(&message.payload[..], b"21.5");
//!     client.bye().await
//! })?;
//!
//! stop.stop();
//! serving.join().expect("server thread")?;
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

pub use psrt_proto::client::{
    ClientOptions, DEFAULT_PORT, Message, SessionError as ClientError, TlsOptions, UdpAuth,
};
pub use psrt_proto::udp::Cipher;
pub use udp::UdpClient;

use control::Command;
use io::Opened;

/// A logged-in PSRT session.
///
/// Clones share the session: every clone may issue requests concurrently,
/// and replies are matched in order by the control task. The session ends
/// with [`Client::bye`], or when the last clone is dropped (the task then
/// says BYE itself). See the [module docs](self#threads) for which thread
/// runs the session.
#[derive(Debug, Clone)]
pub struct Client {
    shared: ClientHandle<flume::Sender<Command>, Messages>,
}

/// The messages pushed to a [`Client`]'s subscriptions, in the order the
/// server sent them (from [`Client::take_messages`]). A wrapper, so the
/// channel behind it stays an implementation detail.
#[derive(Debug)]
pub struct Messages {
    rx: flume::Receiver<Message>,
}

impl Messages {
    /// The next message; `None` once the data socket has closed and every
    /// message was read.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv_async().await.ok()
    }
}

/// The pending reply to a request sent with [`Client::publish_nowait`]:
/// await it for the outcome. Dropping it does not cancel the request.
#[must_use = "await the ticket to learn whether the server accepted the request"]
pub struct Ticket {
    reply: flume::r#async::RecvFut<'static, Result<(), ClientError>>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").finish_non_exhaustive()
    }
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
    /// `options.timeout`. Must run inside a monoio runtime with its timer
    /// enabled; the session's tasks are spawned on it.
    pub async fn connect(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let timeout = options.timeout;
        monoio::time::timeout(timeout, connect(ConnectPlan::new(addr, options)?))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// The receiver of pushed messages; `Some` only on the first call (and
    /// never for a publish-only client).
    pub fn take_messages(&self) -> Option<Messages> {
        self.shared.take_messages()
    }

    psrt_proto::client_request_methods!(Ticket, ClientError);

    /// Hands a request to the control task and returns its reply ticket.
    async fn send(&self, request: Request) -> Result<Ticket, ClientError> {
        let (reply, ticket) = flume::bounded(1);
        if self
            .shared
            .commands()
            .send_async((request, reply))
            .await
            .is_err()
        {
            return Err(self.shared.ended_error());
        }
        Ok(Ticket {
            reply: ticket.into_recv_async(),
        })
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
) -> Result<(Token, flume::Sender<Command>), ClientError> {
    let opened = plan.opened(io::open(plan.target()).await)?;
    let (login, login_rx) = flume::bounded(1);
    let session = plan.control_session(login, Instant::now())?;
    let (commands, command_rx) = flume::bounded(COMMAND_QUEUE);
    match opened {
        Opened::Tcp(stream) => monoio::spawn(control::run(stream, session, command_rx)),
        Opened::Unix(stream) => monoio::spawn(control::run(stream, session, command_rx)),
    };
    let token = login_rx
        .recv_async()
        .await
        .map_err(|_| ClientError::session_ended())??;
    Ok((token, commands))
}

/// Opens the data socket, spawns its task and waits for the server's OK;
/// `None` for a publish-only client.
async fn start_data(plan: &mut ConnectPlan, token: Token) -> Result<Option<Messages>, ClientError> {
    if !plan.wants_data_socket() {
        return Ok(None);
    }
    let opened = plan.opened(io::open(plan.target()).await)?;
    let (ready, ready_rx) = flume::bounded(1);
    let session = plan.data_session(token, ready, Instant::now());
    let (messages, rx) = flume::bounded(plan.queue_capacity());
    match opened {
        Opened::Tcp(stream) => monoio::spawn(data::run(stream, session, messages)),
        Opened::Unix(stream) => monoio::spawn(data::run(stream, session, messages)),
    };
    ready_rx
        .recv_async()
        .await
        .map_err(|_| ClientError::session_ended())??;
    Ok(Some(Messages { rx }))
}
