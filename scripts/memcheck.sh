#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the command line under valgrind's memcheck on the small real model:
# an explanation with every output (JSON, SVG, HTML, CSV, sentences,
# top-k, interactions), one whose target the model generates, and the
# game command. Fails on any invalid read or write, use of uninitialised
# memory, or definitely or indirectly lost block. "Possibly lost" blocks
# are allowed: with two threads, glibc's thread-local storage of libgomp's
# worker thread (304 bytes on Debian 12) is one, since the worker is still
# alive at exit. No suppression file is needed with libllama v0.4.0.
#
#   scripts/memcheck.sh             uses build/promptshap, building it if needed
#   PROMPTSHAP_MODEL=FILE           the model (default: as scripts/test.sh)
#   PROMPTSHAP_BUILD_DIR=DIR        the build folder
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PROMPTSHAP_BUILD_DIR:-$root/build}
if ! command -v valgrind >/dev/null; then
    echo "memcheck: valgrind not found; install it (Debian: valgrind)" >&2
    exit 1
fi
if [ -z "${PROMPTSHAP_MODEL:-}" ]; then
    PROMPTSHAP_MODEL=$("$root/scripts/fetch-model.sh")
fi
PROMPTSHAP_BUILD_DIR=$build "$root/scripts/build.sh"
bin=$build/promptshap
model=$PROMPTSHAP_MODEL

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0

# check NAME ARGS...: one run of the command line under memcheck
check() {
    local name=$1
    shift
    local start=$SECONDS
    if valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$out/$name.valgrind" \
        "$bin" "$@" >"$out/$name.out" 2>"$out/$name.err"; then
        echo "memcheck: $name: no error ($((SECONDS - start)) s)" >&2
    else
        failed=1
        echo "memcheck: $name: FAILED (exit $?)" >&2
        cat "$out/$name.valgrind" "$out/$name.err" >&2
    fi
}

# Two threads keep libgomp's worker pool in the run without the slowdown
# that busy-waiting threads cause under valgrind on a many-core machine.
check explain explain -m "$model" -p 'explain deep leaning please' \
    --target 'Deep learning is a kind of machine learning. It uses networks.' -t 2 -q \
    --json "$out/r.json" --svg "$out/fig" --html "$out/r.html" --csv "$out/r.csv" --sentences --top-k 2 --interactions
check generate explain -m "$model" -p 'Once upon a time' -n 8 --method loo -t 2 -q --json "$out/g.json"
check game game "$root/tests/games/sentiment-n10-1.txt" --method leverage --budget 300 --json "$out/game.json"
exit "$failed"
