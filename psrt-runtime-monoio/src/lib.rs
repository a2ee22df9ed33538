//! Runs the [`psrt_proto`] core over monoio: thread-per-core, io_uring
//! where the kernel allows it, epoll otherwise.
//!
//! * [`server::Server`]: the broker daemon's I/O: TCP, Unix and UDP
//!   listeners, the stats HTTP endpoint, password checks on `psrt_checks`'
//!   idle-priority threads, SIGHUP reload and graceful SIGTERM/SIGINT
//!   shutdown. Its API mirrors `psrt-runtime-tokio`'s.
//! * [`client`]: an async PSRT client over the core's client state
//!   machines, with the same API as `psrt-runtime-tokio`'s.
//!
//! All protocol logic lives in `psrt_proto`; this crate only moves bytes,
//! keeps time and runs slow work off the event loops.

pub mod client;
mod io_slot;
pub mod runtime;
pub mod server;
