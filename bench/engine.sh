#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The engine benchmark: exact Shapley through the naive and the batched
# engine, side by side, against libllama's raw prompt-processing throughput,
# for the 6-word notebook prompt and a 12-word prompt with a 100-token
# target, in raw and harmony framing. Writes a markdown table to stdout.
#
#   bench/engine.sh [ROUNDS] [CASES]
#
# ROUNDS defaults to 5. CASES is a space-separated list of
# MODEL:CASE:FRAMING entries (default: the full set below), with MODEL one
# of llama-100m, gpt-oss-bench or stories (the real model in
# $PROMPTSHAP_MODEL), CASE one of six-words or twelve-words and FRAMING none
# or harmony. The random-weight benchmark models are written to
# bench/models/ by promptshap-mkmodel when missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}
build=${PROMPTSHAP_BUILD_DIR:-$root/build}
models=$root/bench/models
threads=${PROMPTSHAP_THREADS:-$(nproc)}
default_cases="llama-100m:six-words:none llama-100m:six-words:harmony gpt-oss-bench:six-words:none
gpt-oss-bench:six-words:harmony stories:six-words:none stories:twelve-words:none"
cases=${2:-$default_cases}

cmake --build "$build" --target bench_engine promptshap-mkmodel >/dev/null
mkdir -p "$models"

model_path() {
    case $1 in
        llama-100m | gpt-oss-bench)
            local path=$models/$1-harmony.gguf
            if [ ! -f "$path" ]; then
                echo "engine.sh: writing $path" >&2
                "$build/promptshap-mkmodel" --preset "$1" --harmony -o "$path" >&2
            fi
            echo "$path"
            ;;
        stories)
            if [ -z "${PROMPTSHAP_MODEL:-}" ]; then
                echo "engine.sh: set PROMPTSHAP_MODEL to the stories260K GGUF file" >&2
                exit 1
            fi
            echo "$PROMPTSHAP_MODEL"
            ;;
        *) echo "engine.sh: unknown model '$1'" >&2; exit 2 ;;
    esac
}

case_files() {
    case $1 in
        six-words) echo "$root/examples/cases/deep-learning-short/prompt.txt $root/examples/cases/deep-learning-short/target.txt" ;;
        twelve-words) echo "$root/bench/cases/construction-100/prompt.txt $root/bench/cases/construction-100/target.txt" ;;
        *) echo "engine.sh: unknown case '$1'" >&2; exit 2 ;;
    esac
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads"
echo "command: bench/engine.sh $rounds '$cases'"
echo
header=--header
for entry in $cases; do
    IFS=: read -r model name framing <<<"$entry"
    path=$(model_path "$model")
    read -r prompt target <<<"$(case_files "$name")"
    # harmony with its date line, as GPT-OSS's own template writes it: a
    # framing head of about 60 tokens
    date_args=()
    if [ "$framing" = harmony ]; then
        date_args=(--date 2025-08-05)
    fi
    "$build/bench_engine" -m "$path" -f "$prompt" --target-file "$target" --chat "$framing" "${date_args[@]}" \
        --rounds "$rounds" -t "$threads" --label "$model, $name, $framing" $header
    header=
done
