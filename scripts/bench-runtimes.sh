#!/usr/bin/env bash
# Runtime comparison benchmark: builds psrtd in release once per runtime
# (tokio, smol, monoio; the README's commands) into
# target/bench/psrtd-RUNTIME, builds psrt-bench,
# and runs the six workloads against each copy plus the original server
# (crates.io psrt 0.3.8) when it is installed. Writes docs/benchmarks.md.
# Usage:
#   scripts/bench-runtimes.sh [--skip-build] [UPSTREAM_PSRTD]
#   (default UPSTREAM_PSRTD: /tmp/upstream/bin/psrtd; extra psrt-bench
#   arguments can be passed in PSRT_BENCH_ARGS, e.g. "--quick")
set -euo pipefail
cd "$(dirname "$0")/.."
skip_build=0
if [ "${1:-}" = "--skip-build" ]; then
  skip_build=1
  shift
fi
upstream=${1:-/tmp/upstream/bin/psrtd}
runtimes=(tokio smol monoio)
mkdir -p target/bench docs
if [ "$skip_build" = 0 ]; then
  for rt in "${runtimes[@]}"; do
    echo "building psrtd with runtime-$rt (release)" >&2
    # The README's build commands: tokio is the default feature, and
    # runtime-smol / runtime-monoio take precedence over it.
    features=()
    if [ "$rt" != tokio ]; then
      features=(--features "runtime-$rt")
    fi
    cargo build -q --release -p psrtd "${features[@]}"
    cp target/release/psrtd "target/bench/psrtd-$rt"
  done
  cargo build -q --release -p psrt-bench
fi
servers=()
for rt in "${runtimes[@]}"; do
  servers+=(--server "$rt=target/bench/psrtd-$rt")
done
if [ -x "$upstream" ]; then
  servers+=(--server "original=$upstream" --baseline original)
else
  echo "original server not found at $upstream: comparing our runtimes only" >&2
fi
# shellcheck disable=SC2086
target/release/psrt-bench "${servers[@]}" --out docs/benchmarks.md ${PSRT_BENCH_ARGS:-}
