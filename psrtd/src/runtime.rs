//! The server runtime, chosen at build time by exactly one cargo feature.

#[cfg(not(any(
    all(
        feature = "runtime-tokio",
        not(feature = "runtime-smol"),
        not(feature = "runtime-monoio")
    ),
    all(
        feature = "runtime-smol",
        not(feature = "runtime-tokio"),
        not(feature = "runtime-monoio")
    ),
    all(
        feature = "runtime-monoio",
        not(feature = "runtime-tokio"),
        not(feature = "runtime-smol")
    ),
)))]
compile_error!("enable exactly one of the features runtime-tokio, runtime-smol, runtime-monoio");

#[cfg(feature = "runtime-tokio")]
pub use psrt_runtime_tokio::server::{BoundAddrs, serve};

/// Name of the runtime compiled in, for logs and `--version`.
#[cfg(feature = "runtime-tokio")]
pub const NAME: &str = "tokio";

#[cfg(feature = "runtime-smol")]
pub use psrt_runtime_smol::server::{BoundAddrs, serve};

/// Name of the runtime compiled in, for logs and `--version`.
#[cfg(feature = "runtime-smol")]
pub const NAME: &str = "smol";

#[cfg(feature = "runtime-monoio")]
pub use psrt_runtime_monoio::server::{BoundAddrs, serve};

/// Name of the runtime compiled in, for logs and `--version`.
#[cfg(feature = "runtime-monoio")]
pub const NAME: &str = "monoio";
