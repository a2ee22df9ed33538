//! Runs the [`psrt_proto`] core over monoio: thread-per-core, io_uring
//! where the kernel allows it, epoll otherwise.
//!
//! * [`runtime::Monoio`]: psrt-driver's `Runtime` trait over monoio:
//!   completion I/O with owned buffers (`io_slot`) for the server's and
//!   the client's sockets, cancellable accepts, timers on one wheel per
//!   server thread ([`timer_wheel`]), `monoio::spawn`, listeners whose
//!   copies on the workers take turns to accept (`turns`).
//! * [`server::Server`]: `psrt_driver::Server` on that runtime (the socket
//!   loop, listeners, UDP, stats, password checks on idle-priority
//!   threads, SIGHUP reload, graceful SIGTERM/SIGINT drain are all
//!   psrt-driver's), on one monoio runtime per worker thread. Its API
//!   mirrors `psrt-runtime-tokio`'s.
//! * [`client`]: psrt-driver's async client on that runtime, its tasks
//!   on the connecting thread's runtime; the same API as
//!   `psrt-runtime-tokio`'s.

pub mod client;
mod gather;
mod io_slot;
pub mod runtime;
pub mod server;
pub mod timer_wheel;
mod turns;

use monoio::{FusionDriver, FusionRuntime, RuntimeBuilder};

/// The I/O driver monoio's Fusion builder picks on this machine, as the
/// server's workers will get it: `"io_uring"` where the kernel allows it,
/// `"epoll fallback"` where it does not or `MONOIO_FORCE_LEGACY_DRIVER=1`
/// is set. Builds (and drops) a throwaway runtime to find out, so call it
/// once, e.g. for `--version` or a start-up line; an error means no
/// runtime can be built here at all.
pub fn io_driver() -> std::io::Result<&'static str> {
    let runtime = RuntimeBuilder::<FusionDriver>::new().build()?;
    Ok(match runtime {
        FusionRuntime::Uring(_) => "io_uring",
        FusionRuntime::Legacy(_) => "epoll fallback",
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn io_driver_honours_the_forced_fallback() {
        let picked = super::io_driver().expect("a monoio runtime builds");
        let forced = std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        if forced {
            assert_eq!(picked, "epoll fallback");
        } else {
            assert!(["io_uring", "epoll fallback"].contains(&picked), "{picked}");
        }
    }
}
