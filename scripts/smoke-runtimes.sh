#!/usr/bin/env bash
# Builds and runs psrtd the way the README tells users to, once per
# runtime: takes the three `cargo build --release -p psrtd ...` lines
# from README.md (so the README cannot drift from what works), and for
# each one builds, starts the daemon with the built-in default config
# (or, when 127.0.0.1:2873 / :8880 are taken or a system config exists,
# a config on free ports), checks that `psrtd --version` and `/status`
# name the runtime just selected, publishes and receives one message with
# psrt-cli, and stops the daemon by its PID with SIGTERM. The smol and
# monoio binaries must hold no tokio runtime code (`nm`); the tokio one
# must, so the check can fail. monoio runs a
# second time with MONOIO_FORCE_LEGACY_DRIVER=1 and must then say
# `epoll fallback`.
#
#   scripts/smoke-runtimes.sh
#
# Needs cargo, curl, nm and python3 (free ports, JSON). Prints the time
# each step took.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/psrt-smoke.XXXXXX")"
daemon_pid=""
subscriber_pid=""
cleanup() {
  for pid in "$subscriber_pid" "$daemon_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "smoke: $*" >&2
  for log in "$work"/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

# The README's build commands, comments stripped; exactly three expected.
mapfile -t builds < <(
  grep -E '^cargo build --release -p psrtd( --features runtime-(smol|monoio))? *(#.*)?$' README.md \
    | sed -E 's/ *#.*$//'
)
[ "${#builds[@]}" -eq 3 ] || fail "expected 3 psrtd build commands in README.md, found ${#builds[@]}"

echo "== psrt-cli (debug build, shared with the tests)"
cargo build -q -p psrt-cli
cli=target/debug/psrt-cli

# A TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether the built-in default's sockets (TCP+UDP 2873, stats 8880) are
# free. TCP is probed with SO_REUSEADDR, as every runtime binds, so the
# TIME_WAIT connections of the previous run do not count as taken.
default_ports_free() {
  python3 - <<'EOF'
import socket, sys
for kind, port in ((socket.SOCK_STREAM, 2873), (socket.SOCK_DGRAM, 2873), (socket.SOCK_STREAM, 8880)):
    s = socket.socket(socket.AF_INET, kind)
    if kind == socket.SOCK_STREAM:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
}

# Sets `args`, `port` and `stats` for the next daemon.
choose_config() {
  if [ ! -e /etc/psrtd/config.yml ] && [ ! -e /usr/local/etc/psrtd/config.yml ] && default_ports_free; then
    args=()
    port=2873
    stats=8880
    echo "   built-in default config (127.0.0.1:2873, stats :8880)"
  else
    port="$(free_port)"
    stats="$(free_port)"
    printf 'server:\n  bind_stats: 127.0.0.1:%s\nproto:\n  bind: 127.0.0.1:%s\nauth:\n  allow_anonymous: true\n' \
      "$stats" "$port" >"$work/config.yml"
    args=(--config "$work/config.yml")
    echo "   default ports taken or a system config exists: config on free ports $port, stats $stats"
  fi
}

# `/status`'s `build` field, or nothing while the daemon is not answering.
status_build() {
  curl -fsS --max-time 2 "http://127.0.0.1:$stats/status" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["build"])' 2>/dev/null || true
}

# Runs the freshly built daemon and checks it; $1 is the expected runtime
# prefix of the build string, $2 an extended regex the whole string matches.
smoke_run() {
  local expected_re="$1" binary="$work/psrtd"
  local version build
  version="$("$binary" --version)"
  [[ "$version" =~ ^psrtd\ [0-9.]+\ \((.*)\)$ ]] || fail "unexpected --version: $version"
  build="${BASH_REMATCH[1]}"
  [[ "$build" =~ $expected_re ]] || fail "--version says '$build', expected /$expected_re/"
  echo "   --version: $version"

  choose_config
  "$binary" "${args[@]}" >"$work/psrtd.log" 2>&1 &
  daemon_pid=$!
  local status="" i
  for i in $(seq 1 100); do
    kill -0 "$daemon_pid" 2>/dev/null || fail "psrtd exited at start"
    status="$(status_build)"
    [ -n "$status" ] && break
    sleep 0.1
  done
  [ "$status" = "$build" ] || fail "/status build is '$status', --version says '$build'"
  echo "   /status build: $status"

  "$cli" "127.0.0.1:$port" -t 'smoke/#' >"$work/subscriber.log" 2>&1 &
  subscriber_pid=$!
  local subscribed=0
  for i in $(seq 1 100); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$stats/status" \
      | python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["clients"]["subscription_count"] < 1)'; then
      subscribed=1
      break
    fi
    sleep 0.1
  done
  [ "$subscribed" = 1 ] || fail "psrt-cli did not subscribe"
  "$cli" "127.0.0.1:$port" -t smoke/a -m "hello $build" || fail "psrt-cli could not publish"
  local received=0
  for i in $(seq 1 100); do
    if grep -qxF "hello $build" "$work/subscriber.log"; then
      received=1
      break
    fi
    sleep 0.1
  done
  [ "$received" = 1 ] || fail "the subscriber did not print the message"
  kill "$subscriber_pid"
  wait "$subscriber_pid" 2>/dev/null || true
  subscriber_pid=""
  echo "   psrt-cli: published and received smoke/a"

  kill -TERM "$daemon_pid"
  local code=0
  wait "$daemon_pid" || code=$?
  daemon_pid=""
  [ "$code" = 0 ] || fail "psrtd exited with $code after SIGTERM"
  echo "   stopped by PID with SIGTERM, exit 0"
}

allocator="jemalloc"
for command in "${builds[@]}"; do
  case "$command" in
    *runtime-smol*) expected="^runtime smol; allocator $allocator$" ;;
    *runtime-monoio*) expected="^runtime monoio, (io_uring|epoll fallback); allocator $allocator$" ;;
    *) expected="^runtime tokio; allocator $allocator$" ;;
  esac
  echo "== $command"
  start=$SECONDS
  $command
  cp target/release/psrtd "$work/psrtd"
  echo "   built in $((SECONDS - start)) s"
  tokio_symbols="$(nm -C "$work/psrtd" | grep -c 'tokio::runtime' || true)"
  case "$command" in
    *runtime-smol* | *runtime-monoio*)
      [ "$tokio_symbols" = 0 ] || fail "$tokio_symbols tokio::runtime symbols in a non-tokio build" ;;
    *)
      [ "$tokio_symbols" -gt 0 ] || fail "no tokio::runtime symbols in the tokio build: is nm working?" ;;
  esac
  echo "   tokio::runtime symbols in the binary: $tokio_symbols"
  start=$SECONDS
  smoke_run "$expected"
  if [[ "$command" == *runtime-monoio* ]]; then
    echo "== the same with MONOIO_FORCE_LEGACY_DRIVER=1"
    MONOIO_FORCE_LEGACY_DRIVER=1 smoke_run "^runtime monoio, epoll fallback; allocator $allocator$"
  fi
  echo "   smoke run in $((SECONDS - start)) s"
done
echo "== every runtime built and served as the README says"
