//! The async PSRT client on tokio: `psrt_driver::client`'s [`Client`] and
//! [`UdpClient`] on [`Tokio`], so the session's tasks run on the ambient
//! tokio runtime (any flavour) and its timers are tokio's. See
//! `psrt_driver::client` for how the client works.
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
//! let messages = client.take_messages().expect("taken once");
//! client.subscribe("sensors/#").await?;
//! client.publish("sensors/t1", "21.5").await?;
//!
//! let message = messages.recv().await?;
//! assert_eq!(message.topic_str(), Some("sensors/t1"));
//! assert_eq!(&message.payload[..], b"21.5");
//!
//! client.bye().await?;
//! stop.stop();
//! # Ok(())
//! # }
//! ```

pub use psrt_driver::client::{
    Cipher, ClientError, ClientOptions, DEFAULT_PORT, Message, Messages, Ticket, TlsOptions,
    UdpAuth,
};

use crate::runtime::Tokio;

/// A logged-in PSRT session with its tasks on the ambient tokio runtime.
pub type Client = psrt_driver::client::Client<Tokio>;

/// Publishes datagrams to one PSRT server's UDP port, with tokio's timers.
pub type UdpClient = psrt_driver::client::UdpClient<Tokio>;
