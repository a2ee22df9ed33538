//! The shared conformance suite (`psrt-conformance`) against the smol
//! server: each case runs its own server on `spec.workers` threads, the
//! way the daemon does.

mod support;

use psrt_conformance::conformance_suite;

conformance_suite!(support::start);
