#!/usr/bin/env bash
# Runs the Python-client compatibility tests: a venv with the PyPI `psrt`
# client (plus pycryptodomex for its encrypted UDP mode) and pytest,
# against the psrtd binary (PSRTD_BIN, built here when not given).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${PSRT_PY_VENV:-$root/target/python-venv}"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check psrt pytest pycryptodomex

if [ -z "${PSRTD_BIN:-}" ]; then
    (cd "$root" && cargo build -p psrtd --bin psrtd)
    export PSRTD_BIN="$root/target/debug/psrtd"
fi

exec "$venv/bin/python" -m pytest -q "$here" "$@"
