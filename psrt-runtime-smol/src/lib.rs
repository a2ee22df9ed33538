//! Runs the [`psrt_proto`] core over smol (`async-io`, `async-executor`).
//!
//! * [`runtime::Smol`]: psrt-driver's `Runtime` trait over smol: sockets
//!   registered with async-io's reactor (driven by `psrt_driver::ready`),
//!   async-io's timers, spawning on the server's executor.
//! * [`server::Server`]: `psrt_driver::Server` on that runtime (the socket
//!   loop, listeners, UDP, stats, password checks on idle-priority
//!   threads, SIGHUP reload, graceful SIGTERM/SIGINT drain are all
//!   psrt-driver's), on an executor driven by `workers` threads.
//! * [`client`]: psrt-driver's async client on that runtime, its tasks
//!   on smol's global executor; the same API as the tokio crate's.

pub mod client;
pub mod runtime;
pub mod server;
