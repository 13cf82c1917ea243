#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configures and builds promptshap into build/ (libllama too on the first
# run). Build messages go to stderr. Extra arguments go to CMake's configure step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PROMPTSHAP_BUILD_DIR:-$root/build}
generator=()
if command -v ninja >/dev/null && [ ! -f "$build/CMakeCache.txt" ]; then
    generator=(-G Ninja)
fi
cmake -S "$root" -B "$build" "${generator[@]}" "$@" >&2
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >&2
