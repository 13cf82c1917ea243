#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the benchmark, computes the model games once (cached in
# bench/games/), and writes the markdown tables of bench_estimators to
# stdout, then a row for permutation sampling at 256n on the 14-player
# games. Usage: bench/run.sh [MODEL] [SEEDS]; MODEL defaults to
# $PROMPTSHAP_MODEL, SEEDS to 10.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-${PROMPTSHAP_MODEL:-}}
seeds=${2:-10}
cmake --build "$root/build" --target bench_estimators model_games >/dev/null
if ! ls "$root"/bench/games/model-*.txt >/dev/null 2>&1; then
    if [ -z "$model" ]; then
        echo "bench/run.sh: no model games cached in bench/games and no model given" >&2
        exit 1
    fi
    "$root/build/model_games" "$model" "$root/bench/games"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "command: bench/run.sh MODEL $seeds"
"$root/build/bench_estimators" --seeds "$seeds" "$root"/tests/games/sentiment-n14-*.txt \
    "$root"/tests/games/sentiment-n10-*.txt "$root"/bench/games/model-*.txt
# permutation sampling with 4 times gp's 64n, for the evaluation-ratio target
echo
echo "permutation at 256n on the 14-player games:"
"$root/build/bench_estimators" --seeds "$seeds" --method permutation --multiple 256 \
    "$root"/tests/games/sentiment-n14-*.txt
