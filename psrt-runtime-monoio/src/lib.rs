//! Runs the [`psrt_proto`] core over monoio: thread-per-core, io_uring
//! where the kernel allows it, epoll otherwise.
//!
//! * [`runtime::Monoio`]: psrt-driver's `Runtime` trait over monoio:
//!   completion I/O with owned buffers (`io_slot`, shared with the
//!   client), cancellable accepts, monoio's timers, `monoio::spawn`.
//! * [`server::Server`]: `psrt_driver::Server` on that runtime (the socket
//!   loop, listeners, UDP, stats, password checks on idle-priority
//!   threads, SIGHUP reload, graceful SIGTERM/SIGINT drain are all
//!   psrt-driver's), on one monoio runtime per worker thread. Its API
//!   mirrors `psrt-runtime-tokio`'s.
//! * [`client`]: an async PSRT client over the core's client state
//!   machines, with the same API as `psrt-runtime-tokio`'s.

pub mod client;
mod io_slot;
pub mod runtime;
pub mod server;
