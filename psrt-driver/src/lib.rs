//! Everything a PSRT server driver and the async client do that is not
//! specific to an async runtime, written once over the small [`Runtime`]
//! trait; the crates `psrt-runtime-tokio`, `-smol` and `-monoio` only
//! implement that trait, start their runtime and name the client's types
//! on it.
//!
//! * [`runtime`]: the trait (streams, listeners, UDP, timers, spawning,
//!   connecting); [`ready`] implements its socket parts once for the
//!   readiness runtimes.
//! * [`socket_loop`]: the one socket loop, a task per PSRT socket over
//!   `psrt_proto::conn::SocketTask::turn`; [`accept`], [`udp`],
//!   [`stats`]: the other tasks, all spawned as a [`Job`].
//! * [`server`]: bind, serve, stop, drain and reload ([`Server`],
//!   [`ServerHandle`], [`serve_listeners`]); [`shared`]: the state every
//!   task holds, with the broker lock that logs events after release;
//!   [`core`]: the runtime-free part of that state ([`ServerCore`]).
//! * [`client`]: the async PSRT client ([`client::Client`],
//!   [`client::UdpClient`]), its control and data tasks spawned as a
//!   [`Job`] too.
//! * [`cluster`]: replication links to the cluster peers, one task each,
//!   and their supervisor.
//! * [`bind`]: the listener plan of a spec, bound as std sockets;
//!   [`checks`]: bcrypt on idle-priority threads; [`events`]: the
//!   rate-limited audit log and reload; [`metrics`]: connection counters
//!   and process figures for `/metrics`; [`signals`]: SIGHUP reload,
//!   SIGTERM/SIGINT stop.
//!
//! The broker is locked only to apply a decoded operation and to take
//! queued messages, never across an `.await`; each socket's decoding, TLS
//! and writes run in its own task, in parallel.

pub mod accept;
pub mod backoff;
pub mod bind;
pub mod checks;
pub mod client;
pub mod cluster;
pub mod core;
pub mod events;
pub mod job;
pub mod metrics;
pub mod ready;
pub mod runtime;
pub mod server;
pub mod shared;
pub mod signals;
pub mod socket_loop;
pub mod stats;
pub mod udp;

pub use bind::BoundAddrs;
pub use checks::CheckPool;
pub use core::ServerCore;
pub use job::Job;
pub use runtime::Runtime;
pub use server::{Server, ServerHandle, serve_listeners};
pub use shared::Shared;
