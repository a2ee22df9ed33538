#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, property,
# scenario, conformance and integration tests) and the compatibility tests
# with the PyPI `psrt` client. Needs cargo and python3; installs the
# Python packages into a private venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
cargo test --workspace --doc

if [ -x tests/python/run.sh ]; then
  tests/python/run.sh
fi
