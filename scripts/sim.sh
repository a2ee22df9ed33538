#!/usr/bin/env bash
# Long runs of the deterministic simulation (psrt-proto feature `sim`), in
# release mode.
#
#   scripts/sim.sh                     10,000 seeds from 0, 1,000 steps each
#   scripts/sim.sh --seeds N --first F N seeds from F
#   scripts/sim.sh --seed N            replay one seed exactly
#   scripts/sim.sh --steps S           steps per seed (a failure names the
#                                      count it ran with)
#   scripts/sim.sh --cluster ...       the cluster simulation (several nodes
#                                      replicating), same options
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=10000 first=0 steps=1000 seed="" test=long_run
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --first) first="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --cluster) test=long_cluster_run; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

export SIM_STEPS="$steps" SIM_SEEDS="$seeds" SIM_FIRST="$first"
if [ -n "$seed" ]; then
  export SIM_SEED="$seed"
fi
exec cargo test --release -p psrt-proto --features sim --test sim "$test" \
  -- --ignored --nocapture
