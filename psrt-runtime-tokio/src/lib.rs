//! Runs the [`psrt_proto`] core over tokio.
//!
//! * [`runtime::Tokio`]: psrt-driver's `Runtime` trait over tokio: sockets
//!   registered with tokio's reactor (driven by `psrt_driver::ready`),
//!   tokio's timers, `tokio::spawn`.
//! * [`server::Server`]: `psrt_driver::Server` on that runtime (the socket
//!   loop, listeners, UDP, stats, password checks on idle-priority
//!   threads, SIGHUP reload, graceful SIGTERM/SIGINT drain are all
//!   psrt-driver's); [`server::serve`] builds the multi-threaded runtime.
//! * [`client`]: psrt-driver's async client on that runtime (`Client`,
//!   `UdpClient` and the types they use), its tasks on the ambient tokio
//!   runtime.

pub mod client;
pub mod runtime;
pub mod server;
