//! The server runtime, chosen at build time by cargo features.
//!
//! `runtime-tokio` is a default feature, and cargo features only add up:
//! `--features runtime-smol` cannot switch the default off. So a
//! non-default runtime takes precedence: with `runtime-smol` or
//! `runtime-monoio` enabled, the tokio driver is neither referenced nor
//! linked, whatever the defaults say. Asking for smol and monoio together
//! is an error.

#[cfg(all(feature = "runtime-smol", feature = "runtime-monoio"))]
compile_error!(
    "the features runtime-smol and runtime-monoio exclude each other: enable one of them \
     (runtime-tokio, the default, yields to either)"
);

#[cfg(not(any(
    feature = "runtime-tokio",
    feature = "runtime-smol",
    feature = "runtime-monoio"
)))]
compile_error!("enable one of the features runtime-tokio, runtime-smol, runtime-monoio");

#[cfg(all(
    feature = "runtime-tokio",
    not(feature = "runtime-smol"),
    not(feature = "runtime-monoio")
))]
mod selected {
    pub use psrt_runtime_tokio::server::{BoundAddrs, serve};

    /// Name of the runtime compiled in.
    pub const NAME: &str = "tokio";

    /// tokio has one I/O driver (epoll on Linux): nothing to report.
    pub fn io_driver() -> Option<String> {
        None
    }
}

#[cfg(all(feature = "runtime-smol", not(feature = "runtime-monoio")))]
mod selected {
    pub use psrt_runtime_smol::server::{BoundAddrs, serve};

    /// Name of the runtime compiled in.
    pub const NAME: &str = "smol";

    /// async-io has one reactor (epoll on Linux): nothing to report.
    pub fn io_driver() -> Option<String> {
        None
    }
}

#[cfg(all(feature = "runtime-monoio", not(feature = "runtime-smol")))]
mod selected {
    pub use psrt_runtime_monoio::server::{BoundAddrs, serve};

    /// Name of the runtime compiled in.
    pub const NAME: &str = "monoio";

    /// What monoio's Fusion driver picks on this machine (`io_uring` or
    /// `epoll fallback`), found by building a throwaway runtime.
    pub fn io_driver() -> Option<String> {
        Some(match psrt_runtime_monoio::io_driver() {
            Ok(driver) => driver.to_owned(),
            Err(err) => format!("no I/O driver: {err}"),
        })
    }
}

// Without a valid selection only the compile_error above is reported.
#[cfg(all(
    any(
        feature = "runtime-tokio",
        feature = "runtime-smol",
        feature = "runtime-monoio"
    ),
    not(all(feature = "runtime-smol", feature = "runtime-monoio"))
))]
pub use selected::{BoundAddrs, NAME, io_driver, serve};
