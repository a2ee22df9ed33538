//! Runs the [`psrt_proto`] core over smol (`async-io`, `async-net`,
//! `async-executor`).
//!
//! * [`client`]: an async PSRT client over the core's client state
//!   machines, with the same API as the tokio crate's.
//! * [`server::Server`]: the broker daemon's I/O: TCP, Unix and UDP
//!   listeners, the stats HTTP endpoint, password checks on
//!   `psrt_checks`' idle-priority threads, SIGHUP reload and graceful SIGTERM/SIGINT shutdown.
//!
//! All protocol logic lives in `psrt_proto`; this crate only moves bytes,
//! keeps time and runs slow work off the event loop. Its public server API
//! matches `psrt-runtime-tokio`'s, so the daemon picks either at build
//! time.

pub mod client;
pub mod runtime;
pub mod server;
