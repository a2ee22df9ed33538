//! Shared code of the `psrtd` daemon and the `psrt-cli` client binaries.
//!
//! * [`setup`]: turns config files into a runtime-independent
//!   [`psrt_proto::spec::ServerSpec`] (and reloads them on SIGHUP).
//! * [`runtime`]: the server runtime chosen at build time.
//! * [`cli`]: the `psrt-cli` commands.

pub mod cli;
pub mod runtime;
pub mod setup;
