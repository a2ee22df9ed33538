//! The shared client suite (`psrt_conformance::client_suite!`) against the
//! tokio client: each case runs on a fresh two-worker runtime and talks to
//! its own server.

mod support;

psrt_conformance::client_suite! {
    crate: psrt_runtime_tokio,
    block_on: |future| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(future)
    },
    sleep: |duration| tokio::time::sleep(duration),
    spawn: |task| {
        let task = tokio::spawn(task);
        async { task.await.expect("task ran") }
    },
    start: support::start,
}
