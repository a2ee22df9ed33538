#!/usr/bin/env bash
# Cluster replication benchmark (issue 10): the same `psrt-cli --benchmark`
# workload on one node and across two, in one run.
#
# Builds psrtd and psrt-cli in release, starts two psrtd nodes A and B on
# free loopback ports, each listing the other in its cluster file (user
# `repl`, `replicator: true` in the ACL), waits for both links to be up,
# then runs RUNS rounds of:
#   single: psrt-cli A --benchmark                              (publish and receive on A)
#   cross:  psrt-cli A --benchmark --benchmark-cluster-sub B    (publish on A, receive on B)
# alternating which goes first. Prints each run's table, then a compact
# table of medians: throughput (iters/s) and p50/p99 latency (µs) of every
# reading stage, single against cross, and their ratios. Targets: cross
# throughput >= 0.5x single, cross p50 < 2x single. The two nodes link
# with the pipelined replication op (docs/replication.md); PSRTD= a build
# from before it (e.g. a8c5e15) measures PUBLISH_REPL. The nodes are stopped
# by PID on exit; their logs and the raw tables stay in the kept work
# directory when KEEP=1.
#
# Usage: scripts/bench-cluster.sh [--skip-build] [--runs N] [--iterations N] [--workers N]
#   (defaults: 3 runs, 10000 iterations, 4 workers; PSRTD_FEATURES picks
#   another runtime, e.g. PSRTD_FEATURES=runtime-monoio; PSRTD and PSRT_CLI
#   run other binaries, e.g. an older build, with --skip-build)
set -euo pipefail
cd "$(dirname "$0")/.."

skip_build=0
runs=3
iterations=10000
workers=4
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-build) skip_build=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [ "$skip_build" = 0 ]; then
  echo "building psrtd and psrt-cli (release)" >&2
  features=()
  if [ -n "${PSRTD_FEATURES:-}" ]; then
    features=(--features "$PSRTD_FEATURES")
  fi
  cargo build -q --release -p psrtd "${features[@]}"
  cargo build -q --release -p psrt-cli
fi
psrtd=${PSRTD:-$PWD/target/release/psrtd}
cli=${PSRT_CLI:-$PWD/target/release/psrt-cli}

work=$(mktemp -d -t psrt-bench-cluster.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then
    echo "work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Free loopback ports, asked of the kernel (bound to port 0, then closed).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r port_a port_b stats_a stats_b <<<"$(free_ports 4)"

# bcrypt (cost 4) of the benchmark-only password `bench-secret`.
hash='$2b$04$Pq4MoMSAWbV4XQv6vGtWWeXk8ETPjwtGh/apNOGe1rwtYaLOt4IbG'
printf 'repl:%s\n' "$hash" >"$work/passwd"
printf "repl: {replicator: true}\n_: {sub: ['#'], pub: ['#'], admin: true}\n" >"$work/acl.yml"

# node NAME PORT STATS PEER_PORT: writes NAME.yml and NAME.cluster.yml.
node() {
  cat >"$work/$1.cluster.yml" <<EOF
- path: 127.0.0.1:$4
  user: repl
  password: bench-secret
  timeout: 5
EOF
  cat >"$work/$1.yml" <<EOF
server:
  workers: 2
  bind_stats: 127.0.0.1:$3
  pid_file: $work/$1.pid
proto:
  bind: 127.0.0.1:$2
  timeout: 5
auth:
  allow_anonymous: true
  password_file: $work/passwd
  acl: $work/acl.yml
cluster:
  config: $work/$1.cluster.yml
EOF
}
node a "$port_a" "$stats_a" "$port_b"
node b "$port_b" "$stats_b" "$port_a"
"$psrtd" --config "$work/a.yml" >"$work/a.log" 2>&1 &
pids+=($!)
"$psrtd" --config "$work/b.yml" >"$work/b.log" 2>&1 &
pids+=($!)

# The cluster.peers of a node's /status, compact.
peers() {
  curl -fsS "http://127.0.0.1:$1/status" | jq -c '[.cluster.peers[] | {state, sent, not_required, suppressed, dropped}]'
}
up=0
for _ in $(seq 100); do
  if [ "$(curl -fsS "http://127.0.0.1:$stats_a/status" 2>/dev/null | jq -r '.cluster.peers[0].state')" = up ] &&
    [ "$(curl -fsS "http://127.0.0.1:$stats_b/status" 2>/dev/null | jq -r '.cluster.peers[0].state')" = up ]; then
    up=1
    break
  fi
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "the cluster links did not come up; logs:" >&2
  cat "$work/a.log" "$work/b.log" >&2
  exit 1
fi

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
echo "nodes: A 127.0.0.1:$port_a, B 127.0.0.1:$port_b; $workers workers, $iterations iterations, $runs runs"
bench() { # bench MODE RUN
  local extra=()
  if [ "$1" = cross ]; then
    extra=(--benchmark-cluster-sub "127.0.0.1:$port_b")
  fi
  "$cli" "127.0.0.1:$port_a" --benchmark --benchmark-workers "$workers" \
    --benchmark-iterations "$iterations" "${extra[@]}" >"$work/$1.$2.txt"
  echo "== run $2, $1"
  cat "$work/$1.$2.txt"
}
for run in $(seq "$runs"); do
  if [ $((run % 2)) = 1 ]; then
    bench single "$run"
    bench cross "$run"
  else
    bench cross "$run"
    bench single "$run"
  fi
done
echo "A's link to B after the runs: $(peers "$stats_a")"

# The median of column COL (iters/s 5, p50 6, p99 7) of STAGE over MODE's runs.
median() { # median MODE STAGE COL
  cat "$work/$1".*.txt | awk -v s="$2" -v c="$3" '$1 == s { print $c }' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b != "-") printf "%.2fx", b / a; else print "-" }'
}
echo
echo "medians of $runs runs (cross = publish on A, receive on B; ratio = cross / single)"
printf '%-14s %12s %12s %7s %9s %9s %7s %9s %9s\n' \
  stage "single/s" "cross/s" ratio "p50 1" "p50 x" ratio "p99 1" "p99 x"
for stage in pub-read-10b pub-read-1kb pub-read-10kb pub-read-100kb pub-read-1mb latency-10b; do
  s_rate=$(median single "$stage" 5)
  c_rate=$(median cross "$stage" 5)
  s_p50=$(median single "$stage" 6)
  c_p50=$(median cross "$stage" 6)
  printf '%-14s %12s %12s %7s %9s %9s %7s %9s %9s\n' "$stage" "$s_rate" "$c_rate" \
    "$(ratio "$s_rate" "$c_rate")" "$s_p50" "$c_p50" "$(ratio "$s_p50" "$c_p50")" \
    "$(median single "$stage" 7)" "$(median cross "$stage" 7)"
done
echo "targets: throughput ratio >= 0.50x; latency-10b p50 ratio < 2.00x"
