//! The server runtime, chosen at build time by exactly one cargo feature.

#[cfg(not(any(feature = "runtime-tokio")))]
compile_error!("enable exactly one of the features runtime-tokio, runtime-smol, runtime-monoio");

#[cfg(feature = "runtime-tokio")]
pub use psrt_runtime_tokio::server::{BoundAddrs, serve};

/// Name of the runtime compiled in, for logs and `--version`.
#[cfg(feature = "runtime-tokio")]
pub const NAME: &str = "tokio";
