//! The library half of the `psrtd` daemon, shared by its binary and its
//! tests.
//!
//! * [`setup`]: turns config files into a runtime-independent
//!   [`psrt_proto::spec::ServerSpec`] (and reloads them on SIGHUP).
//! * [`runtime`]: the server runtime chosen at build time.
//! * [`pid_file`]: the locked pid file.
//! * [`startup`]: `-d`'s fork with an honest exit status, and systemd's
//!   readiness notifications.
//! * [`build_info`]: the one-line description of this build (runtime, I/O
//!   driver, allocator) that `--version` and `/status` show.
//! * [`memory`]: housekeeping that gives idle large-frame buffers back.

pub mod build_info;
pub mod memory;
pub mod pid_file;
pub mod runtime;
pub mod setup;
pub mod startup;
