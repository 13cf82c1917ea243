#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds libllama (Release, shared; CPU unless told otherwise) from the llama.cpp source release that
# the npm package pinned in deps/package-lock.json carries, and installs it into
# a cache folder that later builds reuse. Prints the install prefix on stdout.
#
#   scripts/build-llama.sh            build or reuse .cache/llama-<release>
#   PROMPTSHAP_CACHE=DIR              put the cache somewhere else
#   PROMPTSHAP_LLAMA_CMAKE_ARGS="..." extra CMake arguments (for example -DGGML_CUDA=ON)
#   PROMPTSHAP_LLAMA_FLAVOR=NAME      keep this build apart from the CPU one
#                                     (.cache/llama.cpp-<release>-NAME)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PROMPTSHAP_CACHE:-$root/.cache}
release=v0.4.0
jobs=${PROMPTSHAP_JOBS:-$(nproc 2>/dev/null || echo 2)}
extra_args=${PROMPTSHAP_LLAMA_CMAKE_ARGS:-}

flavor=${PROMPTSHAP_LLAMA_FLAVOR:+-$PROMPTSHAP_LLAMA_FLAVOR}
src=$cache/llama.cpp-$release/src
build=$cache/llama.cpp-$release$flavor/build
prefix=$cache/llama.cpp-$release$flavor/install
stamp=$prefix/.promptshap-stamp

log() { printf 'build-llama: %s\n' "$*" >&2; }

# the stamp names the release and the options, so an unchanged request is a no-op
want_stamp="release=$release rpath=origin args=$extra_args"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
    echo "$prefix"
    exit 0
fi

# fetch the npm package that carries the source bundle (exact pin, lock file)
bundle=$root/deps/node_modules/node-llama-cpp/llama/gitRelease.bundle
if [ ! -f "$bundle" ]; then
    command -v npm >/dev/null || { log "npm not found: install Node.js and npm, or install llama.cpp $release system-wide"; exit 1; }
    log "installing node-llama-cpp from deps/package-lock.json"
    (cd "$root/deps" && npm ci --ignore-scripts --omit=optional --no-audit --no-fund >&2)
fi
[ -f "$bundle" ] || { log "source bundle missing after npm ci: $bundle"; exit 1; }

info=$root/deps/node_modules/node-llama-cpp/llama/llama.cpp.info.json
if ! grep -q "\"$release\"" "$info"; then
    log "the npm package carries another llama.cpp release than $release (see $info)"
    exit 1
fi

# unpack the bundle once
if [ ! -f "$src/include/llama.h" ]; then
    log "cloning the llama.cpp $release bundle into $src"
    rm -rf "$src"
    mkdir -p "$(dirname "$src")"
    git clone --quiet "$bundle" "$src" 2>/dev/null || git clone --quiet "$bundle" "$src"
fi

# configure and build the library alone: no tools, examples, tests or server
log "building libllama $release (a few minutes on 2 cores)"
# shellcheck disable=SC2086
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF "-DCMAKE_INSTALL_RPATH=\$ORIGIN" $extra_args >&2
cmake --build "$build" --config Release -j "$jobs" >&2
rm -rf "$prefix"
cmake --install "$build" >&2
echo "$want_stamp" > "$stamp"
echo "$prefix"
