#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# On a machine with an NVIDIA GPU and the CUDA toolkit: builds promptshap
# against a CUDA libllama (build-cuda/, cache .cache/llama.cpp-<release>-cuda),
# runs the main job with every layer offloaded, checks that its values match
# the CPU build's, then runs the engine benchmark with every layer offloaded.
#
#   PROMPTSHAP_MODEL=stories260K.gguf bench/gpu.sh [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}
model=${PROMPTSHAP_MODEL:?set PROMPTSHAP_MODEL to the stories260K GGUF file}
command -v nvcc >/dev/null || { echo "gpu.sh: nvcc not found: install the CUDA toolkit" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

# the CUDA build next to the CPU one
PROMPTSHAP_BUILD_DIR=$root/build-cuda "$root/scripts/build.sh" -DPROMPTSHAP_CUDA=ON
"$root/scripts/build.sh"
case=$root/examples/cases/deep-learning-long

# the main job on the GPU, and the same on the CPU for comparison
"$root/build-cuda/promptshap" explain -m "$model" -f "$case/prompt.txt" --target-file "$case/target.txt" \
    -ngl -1 --json "$root/build-cuda/main-gpu.json"
"$root/build/promptshap" explain -m "$model" -f "$case/prompt.txt" --target-file "$case/target.txt" \
    --json "$root/build-cuda/main-cpu.json" -q >/dev/null
python3 - "$root/build-cuda/main-gpu.json" "$root/build-cuda/main-cpu.json" <<'PY'
import json, sys
gpu, cpu = (json.load(open(p)) for p in sys.argv[1:3])
worst = max(abs(a["value"] - b["value"]) for a, b in zip(gpu["units"], cpu["units"]))
print(f"largest GPU - CPU difference of a unit's value: {worst:.3g} nats")
print(f"GPU engine: {gpu['engine']}")
PY

# the engine benchmark with every layer on the GPU
threads=$(nproc)
cmake --build "$root/build-cuda" --target bench_engine promptshap-mkmodel >/dev/null
mkdir -p "$root/bench/models"
for preset in llama-100m gpt-oss-bench; do
    path=$root/bench/models/$preset-harmony.gguf
    [ -f "$path" ] || "$root/build-cuda/promptshap-mkmodel" --preset "$preset" --harmony -o "$path"
done
header=--header
for entry in llama-100m:none llama-100m:harmony gpt-oss-bench:none gpt-oss-bench:harmony; do
    IFS=: read -r preset framing <<<"$entry"
    date_args=()
    [ "$framing" = harmony ] && date_args=(--date 2025-08-05)
    "$root/build-cuda/bench_engine" -m "$root/bench/models/$preset-harmony.gguf" \
        -f "$root/examples/cases/deep-learning-short/prompt.txt" \
        --target-file "$root/examples/cases/deep-learning-short/target.txt" --chat "$framing" "${date_args[@]}" \
        --rounds "$rounds" -t "$threads" -ngl -1 --label "$preset, six-words, $framing, GPU" $header
    header=
done
