#!/usr/bin/env bash
# Runs every cargo-fuzz target of psrt-proto for N seconds each (default 60)
# on the stable toolchain, one after the other, and prints how many inputs
# each executed. Installs cargo-fuzz when it is missing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The committed seed corpus fuzz/corpus/TARGET/ is only read: new
# interesting inputs go to fuzz/target/grown/TARGET/ (outside git), which
# later runs reuse. To promote some, `cargo fuzz cmin --sanitizer none
# TARGET fuzz/target/grown/TARGET` and copy a few small ones over. A crash
# leaves its input in fuzz/artifacts/TARGET/; the other targets still run
# and the script exits non-zero at the end. The
# summary table is also written to fuzz/target/fuzz-summary.txt.
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer none

logs="target/fuzz-logs"
mkdir -p "$logs"
summary=()
failed=()
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    log="$logs/$target.log"
    grown="target/grown/$target"
    mkdir -p "$grown"
    if ! cargo fuzz run --sanitizer none "$target" "$grown" "corpus/$target" \
        -- -max_total_time="$seconds" >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "== $target FAILED; the input is in fuzz/artifacts/$target/" >&2
        failed+=("$target")
    fi
    # libFuzzer's final line: "Done N runs in S second(s)".
    runs="$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1 | grep -Eo '[0-9]+ runs' || echo '? runs')"
    cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 || true)"
    summary+=("$(printf '%-14s %14s  %s' "$target" "$runs" "$cov")")
done

{
    echo "target          executions      coverage (in ${seconds}s each, $(date -u +%F))"
    printf '%s\n' "${summary[@]}"
} | tee target/fuzz-summary.txt
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
