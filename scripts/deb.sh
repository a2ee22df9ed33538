#!/usr/bin/env bash
# Builds the psrtd Debian package with `cargo deb` and checks it:
#
#   scripts/deb.sh
#
# Installs cargo-deb when missing, builds psrtd (default runtime, tokio)
# and psrt-cli in release mode (reusing what the smoke script built),
# packages them, then checks the package: its files (`dpkg-deb -c`), its
# control data and conffiles (`dpkg-deb -I`), that the packaged config
# passes `--test-config` with no warning, and that the daemon starts from
# the extracted files (`-d`, on free loopback ports and a Unix socket in
# a temporary folder), serves psrt-cli on its Unix socket, and stops on
# SIGTERM sent to its PID. Prints the .deb's path.
#
# Needs cargo, dpkg-deb and python3 (free ports).
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/psrt-deb.XXXXXX")"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "deb: $*" >&2
  exit 1
}

if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb"
  cargo install cargo-deb --locked --quiet
fi

echo "== release build of psrtd and psrt-cli"
cargo build --release -q -p psrtd
cargo build --release -q -p psrt-cli

echo "== cargo deb"
deb="$(cargo deb -p psrtd --no-build --quiet | tail -n 1)"
[ -f "$deb" ] || fail "cargo deb printed no package path (got: $deb)"
echo "$deb"

echo "== contents (dpkg-deb -c)"
dpkg-deb -c "$deb" | tee "$work/contents"
for path in ./usr/bin/psrtd ./usr/bin/psrt-cli ./etc/psrtd/config.yml ./etc/psrtd/acl.yml \
  ./etc/psrtd/passwd ./usr/share/doc/psrtd/README.md; do
  grep -q " $path\$" "$work/contents" || fail "$path missing from the package"
done
grep -Eq ' \./(usr/)?lib/systemd/system/psrtd\.service$' "$work/contents" \
  || fail "the systemd unit is missing from the package"

echo "== control data (dpkg-deb -I)"
dpkg-deb -I "$deb" | tee "$work/info"
grep -q '^ Package: psrtd$' "$work/info" || fail "wrong package name"
grep -q '^ Depends:.*adduser' "$work/info" || fail "no dependency on adduser"
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
for conffile in /etc/psrtd/config.yml /etc/psrtd/acl.yml /etc/psrtd/passwd; do
  grep -qx "$conffile" "$work/control/conffiles" || fail "$conffile is not a conffile"
done
grep -q 'adduser --system' "$work/control/postinst" || fail "postinst adds no psrt user"
grep -q 'systemctl' "$work/control/postinst" || fail "postinst does not enable the unit"

echo "== the unit"
root="$work/root"
dpkg-deb -x "$deb" "$root"
unit="$(find "$root" -name psrtd.service)"
for line in 'Type=notify' 'ExecReload=/bin/kill -HUP $MAINPID' 'User=psrt' 'NoNewPrivileges=yes' \
  'ProtectSystem=strict'; do
  grep -qxF "$line" "$unit" || fail "unit lacks $line"
done
if command -v systemd-analyze >/dev/null && [ -d /run/systemd/system ]; then
  systemd-analyze verify "$unit" || fail "systemd-analyze refuses the unit"
fi

echo "== the packaged config"
"$root/usr/bin/psrtd" --test-config --config "$root/etc/psrtd/config.yml" >"$work/test-config" \
  || fail "the packaged config does not pass --test-config"
cat "$work/test-config"
grep -qx 'anonymous: off' "$work/test-config" || fail "the packaged config allows anonymous users"
if grep -q '^warning:' "$work/test-config"; then
  fail "the packaged config draws a warning"
fi

echo "== the daemon from the extracted files"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
stats="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
socket="$work/psrtd.sock"
sed -e "s|0\.0\.0\.0:2873|127.0.0.1:$port|" -e "s|/run/psrtd/psrtd\.sock|$socket|" \
  -e "s|127\.0\.0\.1:8880|127.0.0.1:$stats|" -e "s|^server:|server:\n  pid_file: $work/psrtd.pid|" \
  "$root/etc/psrtd/config.yml" >"$root/etc/psrtd/test.yml"
"$root/usr/bin/psrtd" -d --config "$root/etc/psrtd/test.yml" || fail "psrtd -d failed to start"
daemon_pid="$(cat "$work/psrtd.pid")"
[ -S "$socket" ] || fail "no Unix socket at $socket once psrtd -d returned"
timeout 10 "$root/usr/bin/psrt-cli" "$socket" -t deb/check -m hello \
  || fail "psrt-cli cannot publish on the Unix socket"
kill -TERM "$daemon_pid"
for _ in $(seq 100); do
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$daemon_pid" 2>/dev/null && fail "psrtd did not stop on SIGTERM"
daemon_pid=""
[ ! -e "$work/psrtd.pid" ] || fail "the pid file was left behind"
echo "deb: $deb checked"
