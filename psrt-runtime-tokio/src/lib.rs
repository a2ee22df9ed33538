//! Runs the [`psrt_proto`] core over tokio.
//!
//! * [`server::Server`]: the broker daemon's I/O: TCP, Unix and UDP
//!   listeners, the stats HTTP endpoint, password checks on
//!   `psrt_checks`' idle-priority threads, SIGHUP reload and graceful SIGTERM/SIGINT shutdown.
//! * [`client`]: an async PSRT client over the core's client state
//!   machines.
//!
//! All protocol logic lives in `psrt_proto`; this crate only moves bytes,
//! keeps time and runs slow work off the event loop.

pub mod client;
pub mod runtime;
pub mod server;
