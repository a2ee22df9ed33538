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
pub mod server;

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
