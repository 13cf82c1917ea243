#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job on a real model: builds promptshap if needed, then explains
# the answer to "explain deep leaning in 50 words" by the prompt's six words
# with exact Shapley values.
#
#   scripts/demo.sh [-m MODEL] [more promptshap explain options]
#
# The model is -m, else $PROMPTSHAP_MODEL, else the 1.2 MB demo model that
# scripts/fetch-model.sh downloads once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${PROMPTSHAP_MODEL:-}
if [ "${1:-}" = "-m" ] && [ $# -ge 2 ]; then
    model=$2
    shift 2
fi
if [ -z "$model" ]; then
    model=$("$root/scripts/fetch-model.sh")
fi
"$root/scripts/build.sh"
case=$root/examples/cases/deep-learning-long
exec "${PROMPTSHAP_BUILD_DIR:-$root/build}/promptshap" explain -m "$model" -f "$case/prompt.txt" \
    --target-file "$case/target.txt" "$@"
