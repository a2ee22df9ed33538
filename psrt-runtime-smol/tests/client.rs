//! The shared client suite (`psrt_conformance::client_suite!`) against the
//! smol client: each case runs on the test's own thread with
//! `smol::block_on` and talks to its own server.

mod support;

psrt_conformance::client_suite! {
    crate: psrt_runtime_smol,
    block_on: |future| smol::block_on(future),
    sleep: |duration| smol::Timer::after(duration),
    spawn: |task| smol::spawn(task),
    start: support::start,
}
