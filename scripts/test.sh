#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds promptshap and runs every test, the model tests included. The
# model is $PROMPTSHAP_MODEL, else the demo model from scripts/fetch-model.sh.
# With PROMPTSHAP_SANITIZE=1 the build goes to build-sanitize/ with
# AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PROMPTSHAP_MODEL:-}" ]; then
    PROMPTSHAP_MODEL=$("$root/scripts/fetch-model.sh")
fi
if [ ! -f "$PROMPTSHAP_MODEL" ]; then
    echo "test: the model '$PROMPTSHAP_MODEL' does not exist; set PROMPTSHAP_MODEL to a GGUF file" >&2
    exit 1
fi
export PROMPTSHAP_MODEL
if [ "${PROMPTSHAP_SANITIZE:-0}" = 1 ]; then
    export PROMPTSHAP_BUILD_DIR=$root/build-sanitize
    "$root/scripts/build.sh" -DPROMPTSHAP_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
else
    export PROMPTSHAP_BUILD_DIR=${PROMPTSHAP_BUILD_DIR:-$root/build}
    "$root/scripts/build.sh"
fi
# --no-tests=error: a run that found no tests fails rather than passing empty
cd "$PROMPTSHAP_BUILD_DIR" && ctest --output-on-failure --no-tests=error
