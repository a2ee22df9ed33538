#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, property,
# scenario, conformance and integration tests) and the compatibility tests
# with the PyPI `psrt` client. Needs cargo and python3; installs the
# Python packages into a private venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
cargo test --workspace --doc

# monoio picks io_uring where the kernel allows it; run its tests a second
# time on the epoll fallback that containers without io_uring get.
MONOIO_FORCE_LEGACY_DRIVER=1 cargo test -p psrt-runtime-monoio --all-targets

# The README's examples as printed, against the binaries just built
# (psrtd and psrt-cli in target/debug; needs openssl for the TLS recipe).
python3 scripts/readme-examples.py target/debug

if [ -x tests/python/run.sh ]; then
  tests/python/run.sh
fi

# Without the `jemalloc` feature psrtd runs on glibc's malloc and returns
# a burst's memory itself (psrtd/src/memory/): its unit tests and the
# memory tests on that build too. Last, because this build replaces
# target/debug/psrtd, which the steps above run.
cargo test -p psrtd --no-default-features --features runtime-tokio \
  --lib --test hostile_conns --test hostile_subscriptions
