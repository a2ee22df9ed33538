//! The async PSRT client on monoio: `psrt_driver::client`'s [`Client`] and
//! [`UdpClient`] on [`Monoio`]. See `psrt_driver::client` for how the
//! client works.
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
//! feature delivers the cross-thread wakes. A [`UdpClient`]'s socket
//! belongs to the runtime of the thread that made it.
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
//!     let messages = client.take_messages().expect("taken once");
//!     client.subscribe("sensors/#").await?;
//!     client.publish("sensors/t1", "21.5").await?;
//!
//!     let message = messages.recv().await?;
//!     assert_eq!(message.topic_str(), Some("sensors/t1"));
//!     assert_eq!(&message.payload[..], b"21.5");
//!     client.bye().await?;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//!
//! stop.stop();
//! serving.join().expect("server thread")?;
//! # Ok(())
//! # }
//! ```

pub use psrt_driver::client::{
    Cipher, ClientError, ClientOptions, DEFAULT_PORT, Message, Messages, Ticket, TlsOptions,
    UdpAuth,
};

use crate::runtime::Monoio;

/// A logged-in PSRT session with its tasks on the current thread's monoio
/// runtime (see the [module docs](self#threads)).
pub type Client = psrt_driver::client::Client<Monoio>;

/// Publishes datagrams to one PSRT server's UDP port, with monoio's
/// timers.
pub type UdpClient = psrt_driver::client::UdpClient<Monoio>;
