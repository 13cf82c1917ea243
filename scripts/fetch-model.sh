#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Prints the path of the small demo model, downloading it on first use.
#
# The model is stories260K.gguf (1.2 MB, llama architecture, trained on
# TinyStories) from the Hugging Face repository ggml-org/tiny-llamas. It is
# cached in ${XDG_CACHE_HOME:-~/.cache}/promptshap and checked against its
# SHA-256 before use. PROMPTSHAP_MODEL_URL overrides the download address
# (a mirror, or a file:// URL).
set -euo pipefail

sha256=270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d
url=${PROMPTSHAP_MODEL_URL:-https://huggingface.co/ggml-org/tiny-llamas/resolve/main/stories260K.gguf}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/promptshap
path=$cache/stories260K.gguf

verify() { [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]; }

if [ -f "$path" ] && verify "$path"; then
    echo "$path"
    exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp "$cache/stories260K.gguf.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo "fetch-model: downloading $url" >&2
if command -v curl >/dev/null; then
    curl -fL --retry 2 -o "$tmp" "$url" >&2 || { echo "fetch-model: download failed; set PROMPTSHAP_MODEL to a local GGUF file" >&2; exit 1; }
elif command -v wget >/dev/null; then
    wget -O "$tmp" "$url" >&2 || { echo "fetch-model: download failed; set PROMPTSHAP_MODEL to a local GGUF file" >&2; exit 1; }
else
    echo "fetch-model: neither curl nor wget found; set PROMPTSHAP_MODEL to a local GGUF file" >&2
    exit 1
fi
if ! verify "$tmp"; then
    echo "fetch-model: $url does not have the expected SHA-256 $sha256" >&2
    exit 1
fi
mv "$tmp" "$path"
trap - EXIT
echo "$path"
