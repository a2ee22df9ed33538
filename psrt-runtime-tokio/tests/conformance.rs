//! The shared conformance suite (`psrt-conformance`) against the tokio
//! server: each case runs its own server on a runtime thread.

mod support;

use psrt_conformance::conformance_suite;

conformance_suite!(support::start);
