//! The shared conformance suite (`psrt-conformance`) against the monoio
//! server: each case binds its own server and runs it on its worker
//! threads. Run once as is (io_uring where available) and once with
//! `MONOIO_FORCE_LEGACY_DRIVER=1` (epoll).

mod support;

use psrt_conformance::conformance_suite;

conformance_suite!(support::start);
