//! The shared client suite (`psrt_conformance::client_suite!`) against the
//! monoio client: each case runs on a fresh runtime (io_uring where
//! available, epoll with `MONOIO_FORCE_LEGACY_DRIVER=1`) with its timer
//! on, and talks to its own server.

mod support;

use monoio::{FusionDriver, RuntimeBuilder};

psrt_conformance::client_suite! {
    crate: psrt_runtime_monoio,
    block_on: |future| {
        RuntimeBuilder::<FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("monoio runtime")
            .block_on(future)
    },
    sleep: |duration| monoio::time::sleep(duration),
    spawn: |task| monoio::spawn(task),
    start: support::start,
}
