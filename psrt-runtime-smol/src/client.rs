//! The async PSRT client on smol: `psrt_driver::client`'s [`Client`] and
//! [`UdpClient`] on [`Smol`]'s default, so the session's tasks run on
//! smol's global executor (`smol::spawn`) and the client works from any
//! executor, or from `smol::block_on`. See `psrt_driver::client` for how
//! the client works.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use psrt_proto::spec::ServerSpec;
//! use psrt_runtime_smol::client::{Client, ClientOptions};
//! use psrt_runtime_smol::server::Server;
//!
//! smol::block_on(async {
//!     // An in-process server with anonymous full access on a free port.
//!     let server = Server::bind(ServerSpec::open("127.0.0.1:0".parse()?)).await?;
//!     let addr = server.addrs().tcp[0].to_string();
//!     let stop = server.handle();
//!     let running = smol::spawn(server.run());
//!
//!     let client = Client::connect(&addr, ClientOptions::default()).await?;
//!     let messages = client.take_messages().expect("taken once");
//!     client.subscribe("sensors/#").await?;
//!     client.publish("sensors/t1", "21.5").await?;
//!
//!     let message = messages.recv().await?;
//!     assert_eq!(message.topic_str(), Some("sensors/t1"));
//!     assert_eq!(&message.payload[..], b"21.5");
//!
//!     client.bye().await?;
//!     stop.stop();
//!     running.await;
//!     Ok(())
//! })
//! # }
//! ```

pub use psrt_driver::client::{
    Cipher, ClientError, ClientOptions, DEFAULT_PORT, Message, Messages, Ticket, TlsOptions,
    UdpAuth,
};

use crate::runtime::Smol;

/// A logged-in PSRT session with its tasks on smol's global executor
/// (`Client::connect_on` takes another [`Smol`]).
pub type Client = psrt_driver::client::Client<Smol>;

/// Publishes datagrams to one PSRT server's UDP port, with async-io's
/// timers.
pub type UdpClient = psrt_driver::client::UdpClient<Smol>;
