#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses of fuzz/ with clang into build-fuzz/ and
# runs each one for a fixed time on a copy of its seed corpus
# fuzz/corpus/<harness>/, so the committed corpus stays as it is. Exits 1
# on any finding (crash, leak, sanitizer report, failed check, timeout or
# out-of-memory) and prints the reproducer's path.
#
#   scripts/fuzz.sh [HARNESS...]   all harnesses, or the ones named
#   PROMPTSHAP_FUZZ_SECONDS=N      time per harness (default 60)
#   PROMPTSHAP_FUZZ_JOBS=N         harnesses run at once (default: the core count)
#   PROMPTSHAP_FUZZ_DIR=DIR        build folder (default build-fuzz/)
#   PROMPTSHAP_FUZZ_MODEL=FILE     fuzz_tokenize's model (default: the gpt-oss-tiny
#                                  harmony model, written to build-fuzz/models/)
#
# A reproducer reruns with: build-fuzz/fuzz/<harness> <file>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PROMPTSHAP_FUZZ_DIR:-$root/build-fuzz}
seconds=${PROMPTSHAP_FUZZ_SECONDS:-60}
jobs=${PROMPTSHAP_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
all=(fuzz_text fuzz_align fuzz_harmony fuzz_harmony_parse fuzz_views fuzz_game_file fuzz_model_load fuzz_tokenize)
harnesses=("${@:-${all[@]}}")

log() { printf 'fuzz: %s\n' "$*" >&2; }

case $seconds in
    '' | *[!0-9]*) log "PROMPTSHAP_FUZZ_SECONDS must be a whole number of seconds, got '$seconds'"; exit 2 ;;
esac
for h in "${harnesses[@]}"; do
    if [ ! -d "$root/fuzz/corpus/$h" ]; then
        log "unknown harness '$h' (known: ${all[*]})"
        exit 2
    fi
done
if ! command -v clang >/dev/null; then
    log "clang not found: install clang and libFuzzer (Debian: clang libclang-rt-dev)"
    exit 1
fi

# configure once with clang; later runs rebuild what changed
generator=()
if command -v ninja >/dev/null && [ ! -f "$build/CMakeCache.txt" ]; then
    generator=(-G Ninja)
fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" "${generator[@]}" -DPROMPTSHAP_FUZZ=ON \
    -DPROMPTSHAP_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
cmake --build "$build" -j "$jobs" --target "${harnesses[@]}" >&2

# fuzz_tokenize tokenizes with a vocabulary that has harmony's markers:
# the gpt-oss-tiny model, written again whenever promptshap-mkmodel changed.
# Without the llama.cpp source tree (an installed llama.cpp) mkmodel has no
# default vocabulary, and the harness is skipped.
if [[ " ${harnesses[*]} " == *" fuzz_tokenize "* ]]; then
    if [ -z "${PROMPTSHAP_FUZZ_MODEL:-}" ]; then
        PROMPTSHAP_FUZZ_MODEL=$build/models/gpt-oss-tiny.gguf
        cmake --build "$build" -j "$jobs" --target promptshap-mkmodel >&2
        if [ ! -f "$PROMPTSHAP_FUZZ_MODEL" ] || [ "$build/promptshap-mkmodel" -nt "$PROMPTSHAP_FUZZ_MODEL" ]; then
            mkdir -p "$build/models"
            if ! "$build/promptshap-mkmodel" --preset gpt-oss-tiny --harmony -t 1 -o "$PROMPTSHAP_FUZZ_MODEL" >&2; then
                log "skipping fuzz_tokenize: promptshap-mkmodel could not write its model; set PROMPTSHAP_FUZZ_MODEL"
                remaining=()
                for h in "${harnesses[@]}"; do
                    [ "$h" = fuzz_tokenize ] || remaining+=("$h")
                done
                harnesses=("${remaining[@]}")
            fi
        fi
    fi
    export PROMPTSHAP_FUZZ_MODEL
fi

# Options per harness: the largest input (bytes) and the slowest one
# allowed (seconds). fuzz_model_load's seed is a 14 kB GGUF header.
max_len() {
    case $1 in
        fuzz_model_load) echo 32768 ;;
        fuzz_game_file | fuzz_views) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

# libFuzzer options of one harness beyond the common ones, into the array
# extra
extra_options() {
    extra=()
    case $1 in
        fuzz_tokenize) extra=("-dict=$root/fuzz/tokenize.dict") ;;
    esac
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"

# One harness: new inputs go to a scratch corpus listed first; the seed
# corpus is read only. libllama's abort backtrace (through gdb) is turned
# off, since libFuzzer prints the stack itself.
run_one() {
    local h=$1
    mkdir -p "$work/$h"
    rm -f "$build/artifacts/$h"-*
    extra_options "$h"
    GGML_NO_BACKTRACE=1 "$build/fuzz/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$h")" "${extra[@]}" -print_final_stats=1 -artifact_prefix="$build/artifacts/$h-" \
        "$work/$h" "$root/fuzz/corpus/$h" >"$work/$h.log" 2>&1
}

# run up to $jobs harnesses at once and collect each one's exit status
declare -A pids=()
for h in "${harnesses[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    log "running $h for $seconds s"
    run_one "$h" &
    pids[$h]=$!
done

failed=0
for h in "${harnesses[@]}"; do
    if wait "${pids[$h]}"; then
        runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$work/$h.log" | grep -Eo '[0-9]+$' || echo '?')
        rate=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$work/$h.log" | grep -Eo '[0-9]+$' || echo '?')
        log "$h: no finding in $seconds s ($runs inputs, $rate per second)"
    else
        failed=1
        log "$h: FINDING; the end of its log:"
        tail -n 60 "$work/$h.log" >&2
        for f in "$build/artifacts/$h"-*; do
            env_prefix=
            if [ "$h" = fuzz_tokenize ]; then
                env_prefix="PROMPTSHAP_FUZZ_MODEL=$PROMPTSHAP_FUZZ_MODEL "
            fi
            [ -e "$f" ] && log "reproduce with: $env_prefix$build/fuzz/$h $f"
        done
    fi
done
exit "$failed"
