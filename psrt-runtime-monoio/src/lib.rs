//! Runs the [`psrt_proto`] core over monoio: thread-per-core, io_uring
//! where the kernel allows it, epoll otherwise.
//!
//! * [`runtime::Monoio`]: psrt-driver's `Runtime` trait over monoio:
//!   completion I/O with owned buffers (`io_slot`) for the server's and
//!   the client's sockets, cancellable accepts, monoio's timers,
//!   `monoio::spawn`.
//! * [`server::Server`]: `psrt_driver::Server` on that runtime (the socket
//!   loop, listeners, UDP, stats, password checks on idle-priority
//!   threads, SIGHUP reload, graceful SIGTERM/SIGINT drain are all
//!   psrt-driver's), on one monoio runtime per worker thread. Its API
//!   mirrors `psrt-runtime-tokio`'s.
//! * [`client`]: psrt-driver's async client on that runtime, its tasks
//!   on the connecting thread's runtime; the same API as
//!   `psrt-runtime-tokio`'s.

pub mod client;
mod io_slot;
pub mod runtime;
pub mod server;
