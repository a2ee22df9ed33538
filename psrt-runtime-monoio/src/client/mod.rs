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
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use psrt_proto::client::{COMMAND_QUEUE, Request, Target};
use psrt_proto::tls::TlsSession;
use psrt_proto::wire::Token;

pub use psrt_proto::client::{
    ClientOptions, DEFAULT_PORT, Message, SessionError as ClientError, TlsOptions, UdpAuth,
};
pub use psrt_proto::udp::Cipher;
pub use udp::UdpClient;

use control::{Command, ControlTask, ReplyTx};
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
    commands: flume::Sender<Command>,
    messages: Arc<Mutex<Option<Messages>>>,
    /// Why the control task ended, once it has.
    ended: Arc<OnceLock<String>>,
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
        Pin::new(&mut self.reply).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| Err(ClientError::Disconnected("the session ended".into())))
        })
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
        monoio::time::timeout(timeout, connect(addr, options))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// The receiver of pushed messages; `Some` only on the first call (and
    /// never for a publish-only client).
    pub fn take_messages(&self) -> Option<Messages> {
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// Publishes `payload` to `topic` and waits for the server's answer.
    pub async fn publish(&self, topic: &str, payload: impl Into<Bytes>) -> Result<(), ClientError> {
        self.publish_nowait(topic, payload).await?.await
    }

    /// Sends a publish without waiting for its answer; await the returned
    /// [`Ticket`] for it. Waits only while the request queue is full, so
    /// many publishes can be in flight.
    pub async fn publish_nowait(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
    ) -> Result<Ticket, ClientError> {
        let request = Request::Publish {
            topic: topic.to_owned(),
            payload: payload.into(),
        };
        self.send(request).await
    }

    /// Subscribes to one topic filter (`+` and `#` wildcards allowed).
    pub async fn subscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.subscribe_bulk(&[filter]).await
    }

    /// Subscribes to several filters in one request; the server stops at
    /// the first refused one (earlier ones stay applied).
    pub async fn subscribe_bulk(&self, filters: &[&str]) -> Result<(), ClientError> {
        self.send(Request::Subscribe(owned(filters))).await?.await
    }

    /// Unsubscribes from one topic filter.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.unsubscribe_bulk(&[filter]).await
    }

    /// Unsubscribes from several filters in one request.
    pub async fn unsubscribe_bulk(&self, filters: &[&str]) -> Result<(), ClientError> {
        self.send(Request::Unsubscribe(owned(filters))).await?.await
    }

    /// Ends the session for every clone: requests already sent are
    /// answered first, then the server confirms and closes both sockets.
    pub async fn bye(self) -> Result<(), ClientError> {
        self.send(Request::Bye).await?.await
    }

    /// Hands a request to the control task and returns its reply ticket.
    async fn send(&self, request: Request) -> Result<Ticket, ClientError> {
        let (reply, ticket): (ReplyTx, _) = flume::bounded(1);
        if self.commands.send_async((request, reply)).await.is_err() {
            return Err(self.disconnected());
        }
        Ok(Ticket {
            reply: ticket.into_recv_async(),
        })
    }

    /// The error for a request after the session ended.
    fn disconnected(&self) -> ClientError {
        let reason = self.ended.get().map_or("the session ended", String::as_str);
        ClientError::Disconnected(reason.to_owned())
    }
}

fn owned(filters: &[&str]) -> Vec<String> {
    filters.iter().map(|f| (*f).to_owned()).collect()
}

/// The connection steps of [`Client::connect`], without the overall
/// timeout.
async fn connect(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
    let target = Target::parse(addr);
    let [control_tls, data_tls] = options.tls_sessions(&target)?;
    let (token, commands, ended) = start_control(addr, &target, control_tls, &options).await?;
    let messages = if options.data_socket {
        Some(start_data(addr, &target, data_tls, &options, token).await?)
    } else {
        None
    };
    Ok(Client {
        commands,
        messages: Arc::new(Mutex::new(messages)),
        ended,
    })
}

/// Opens a socket, naming the target in the error.
async fn open(addr: &str, target: &Target) -> Result<Opened, ClientError> {
    io::open(target)
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })
}

/// Opens the control socket, spawns its task and waits for the login.
async fn start_control(
    addr: &str,
    target: &Target,
    tls: Option<TlsSession>,
    options: &ClientOptions,
) -> Result<(Token, flume::Sender<Command>, Arc<OnceLock<String>>), ClientError> {
    let opened = open(addr, target).await?;
    let control = options.control_client(tls, Instant::now())?;
    let (commands, command_rx) = flume::bounded(COMMAND_QUEUE);
    let (login, login_rx) = flume::bounded(1);
    let ended = Arc::new(OnceLock::new());
    let task = ControlTask::new(
        control,
        command_rx,
        login,
        options.max_in_flight,
        ended.clone(),
    );
    match opened {
        Opened::Tcp(stream) => monoio::spawn(task.run(stream)),
        Opened::Unix(stream) => monoio::spawn(task.run(stream)),
    };
    let token = login_rx
        .recv_async()
        .await
        .map_err(|_| ClientError::Disconnected("the control task ended".into()))??;
    Ok((token, commands, ended))
}

/// Opens the data socket, spawns its task and waits for the server's OK.
async fn start_data(
    addr: &str,
    target: &Target,
    tls: Option<TlsSession>,
    options: &ClientOptions,
    token: Token,
) -> Result<Messages, ClientError> {
    let opened = open(addr, target).await?;
    let data = options.data_client(token, tls, Instant::now());
    let (messages, rx) = flume::bounded(options.queue_capacity());
    let (ready, ready_rx) = flume::bounded(1);
    match opened {
        Opened::Tcp(stream) => monoio::spawn(data::run(stream, data, messages, ready)),
        Opened::Unix(stream) => monoio::spawn(data::run(stream, data, messages, ready)),
    };
    ready_rx
        .recv_async()
        .await
        .map_err(|_| ClientError::Disconnected("the data task ended".into()))??;
    Ok(Messages { rx })
}
