#!/usr/bin/env bash
# Checks that the original `psrt-cli` (crates.io psrt 0.3.8) works unchanged
# against our psrtd: subscribe, publish (text and 1 MB), and its whole
# built-in benchmark. Not part of CI: installing the original needs cmake,
# golang-go and clang and takes ~10 minutes. Usage:
#   scripts/upstream-compat.sh [UPSTREAM_ROOT]   (default /tmp/upstream)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-/tmp/upstream}
if [ ! -x "$root/bin/psrt-cli" ]; then
  echo "installing the original psrt 0.3.8 into $root" >&2
  apt-get install -y -qq cmake golang-go clang libclang-dev pkg-config libssl-dev >/dev/null
  cargo install psrt --version 0.3.8 --features server,cli --root "$root"
fi
cargo build -q -p psrtd
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YAML
proto:
  bind: 127.0.0.1:$port
  timeout: 5
auth:
  allow_anonymous: true
YAML
target/debug/psrtd --config "$work/config.yml" > "$work/psrtd.log" 2>&1 &
daemon=$!
sub=""
cleanup() {
  [ -n "$sub" ] && kill "$sub" 2>/dev/null || true
  kill "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
sleep 1
"$root/bin/psrt-cli" "127.0.0.1:$port" -t 'compat/#' > "$work/sub.out" 2>&1 &
sub=$!
sleep 1
"$root/bin/psrt-cli" "127.0.0.1:$port" -t compat/a -m hello > /dev/null 2>&1
"$root/bin/psrt-cli" "127.0.0.1:$port" -t compat/big -m ==1M > /dev/null 2>&1
sleep 1
grep -q '^"hello"$' "$work/sub.out" || { echo "FAIL: text message not received" >&2; exit 1; }
grep -q '^compat/big$' "$work/sub.out" || { echo "FAIL: 1 MB message not received" >&2; exit 1; }
timeout 120 "$root/bin/psrt-cli" "127.0.0.1:$port" --benchmark --benchmark-iterations 2000 2>&1 \
  | sed -n '/Benchmark results/,$p'
echo "upstream psrt-cli: subscribe, publish and benchmark OK against our psrtd"
