#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# promptshap-mkmodel, in two modes.
#
#   mkmodel.sh setup MKMODEL BPE_VOCAB TEMPLATE OUT
#       writes the gpt-oss-tiny harmony model to OUT for the tests that use
#       the ctest fixture shaped_model
#   mkmodel.sh check MKMODEL PROMPTSHAP BPE_VOCAB SPM_VOCAB TEMPLATE FIXTURE
#       checks that a second write is byte-identical to FIXTURE and that a
#       tiny llama model is written the same way twice. Then promptshap
#       explains with both, choosing harmony framing with --chat auto on the
#       gpt-oss one. Last come the tool's exit codes.
#
# The vocabularies and the GPT-OSS chat template come from the llama.cpp
# source tree; without it (an installed llama.cpp) both modes exit 77 (skip).
set -u
mode=${1:-}
shift

require() {
    for f in "$@"; do
        if [ ! -f "$f" ]; then
            echo "skipping: '$f' does not exist (the llama.cpp source tree with its vocabularies and chat templates is missing)" >&2
            exit 77
        fi
    done
}

if [ "$mode" = setup ]; then
    mkmodel=$1 vocab=$2 template=$3 out=$4
    require "$vocab" "$template"
    mkdir -p "$(dirname "$out")"
    if ! "$mkmodel" --preset gpt-oss-tiny --harmony --vocab "$vocab" --chat-template "$template" -t 1 -o "$out"; then
        echo "FAILED: writing $out" >&2
        exit 1
    fi
    exit 0
fi
if [ "$mode" != check ]; then
    echo "usage: mkmodel.sh setup|check ARGS..." >&2
    exit 2
fi

mkmodel=$1 promptshap=$2 bpe=$3 spm=$4 template=$5 fixture=$6
require "$bpe" "$spm" "$template" "$fixture"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAILED: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
# one thread: on a busy machine, ggml's threads waiting for each other cost
# more than these tiny models' arithmetic
gpt_oss=(--preset gpt-oss-tiny --harmony --vocab "$bpe" --chat-template "$template" -t 1)
llama=(--arch llama --layers 2 --embd 64 --ff 96 --heads 4 --kv-heads 2 --ctx 256 --vocab "$spm" -t 1)

# the same options and seed give the same bytes (the setup run has already
# reloaded and decoded the fixture, so the rewrites skip that check)
"$mkmodel" "${gpt_oss[@]}" --no-check -o "$tmp/again.gguf" >"$tmp/summary" 2>"$tmp/err"
check '[ $? -eq 0 ]' "gpt-oss-tiny rewrite failed: $(cat "$tmp/err")"
check 'cmp -s "$fixture" "$tmp/again.gguf"' "gpt-oss-tiny is not byte-identical to the fixture"
check 'grep -qE "^$tmp/again.gguf: gpt-oss, 2 layers, width 64, [0-9.]+M parameters .*active per token.*MiB, vocabulary 129090 tokens$" "$tmp/summary"' \
    "unexpected summary line: $(cat "$tmp/summary")"
# another seed, and the quantized types of real GPT-OSS files, which the
# tool's own check decodes
"$mkmodel" "${gpt_oss[@]}" --seed 2 --type q8_0 --expert-type mxfp4 -o "$tmp/seed2.gguf" >/dev/null 2>"$tmp/err"
check '[ $? -eq 0 ]' "gpt-oss-tiny with q8_0 and mxfp4 failed: $(cat "$tmp/err")"
"$mkmodel" "${gpt_oss[@]}" --seed 2 --no-check -o "$tmp/seed2.gguf" >/dev/null 2>&1
check '! cmp -s "$fixture" "$tmp/seed2.gguf"' "--seed 2 wrote the same bytes as seed 1"
"$mkmodel" "${llama[@]}" -o "$tmp/llama1.gguf" >"$tmp/summary" 2>"$tmp/err"
check '[ $? -eq 0 ]' "tiny llama write failed: $(cat "$tmp/err")"
check 'grep -q "llama, 2 layers, width 64, .*vocabulary 32000 tokens" "$tmp/summary"' \
    "unexpected llama summary line: $(cat "$tmp/summary")"
"$mkmodel" "${llama[@]}" --no-check -o "$tmp/llama2.gguf" >/dev/null 2>&1
check 'cmp -s "$tmp/llama1.gguf" "$tmp/llama2.gguf"' "the tiny llama model differs between two writes"
check '[ -z "$(ls "$tmp" | grep -v "\.gguf$" | grep -v -e ^summary$ -e ^err$)" ]' "a temporary file was left behind: $(ls "$tmp")"

# promptshap on the gpt-oss model: --chat auto finds the harmony template
"$promptshap" explain -m "$fixture" -p "Name a primary color" --target "Blue" --chat auto -t 1 \
    --json "$tmp/out.json" >"$tmp/table" 2>"$tmp/err"
check '[ $? -eq 0 ]' "explain on gpt-oss-tiny failed: $(cat "$tmp/err")"
check 'grep -q "harmony framing, 4 words, 16 coalitions evaluated" "$tmp/table"' \
    "explain did not use harmony framing: $(grep framing "$tmp/table")"
check 'python3 -c "import json,math,sys; d=json.load(open(sys.argv[1])); assert d[\"chat\"] == \"harmony\"; assert all(math.isfinite(u[\"value\"]) for u in d[\"units\"])" "$tmp/out.json"' \
    "the JSON does not report finite values with harmony framing"

# promptshap on the llama model, which has no chat template: none framing
"$promptshap" explain -m "$tmp/llama1.gguf" -p "Once upon a time" --target " there was" --chat auto -t 1 >"$tmp/table" 2>"$tmp/err"
check '[ $? -eq 0 ]' "explain on the tiny llama failed: $(cat "$tmp/err")"
check 'grep -q "none framing, 4 words, 16 coalitions evaluated" "$tmp/table"' \
    "explain on the tiny llama did not use none framing: $(grep framing "$tmp/table")"

status_set() { "$mkmodel" "${llama[@]}" "$@" -o "$tmp/x.gguf" >"$tmp/out" 2>"$tmp/err"; echo $?; }

# Numbers that cannot be trusted. With a zero embedding table every hidden
# state and logit is 0, so each target token has probability 1/32000 under
# any context: v(N) equals v(empty) exactly, which is a warning, not a
# silent table of zeros.
"$mkmodel" "${llama[@]}" --set token_embd.weight=0 -o "$tmp/flat.gguf" >"$tmp/summary" 2>"$tmp/err"
check '[ $? -eq 0 ]' "--set token_embd.weight=0 failed: $(cat "$tmp/err")"
"$promptshap" explain -m "$tmp/flat.gguf" -p "Once upon a time" --target " there was" -t 1 \
    --json "$tmp/flat.json" >"$tmp/table" 2>"$tmp/err"
check '[ $? -eq 0 ]' "explain on a model that ignores its input failed: $(cat "$tmp/err")"
check 'grep -q "warning: every target token has the same log-probability under the full prompt (all 4 units) as under the empty coalition" "$tmp/err"' \
    "no warning when v(N) equals v(empty): $(cat "$tmp/err")"
check 'python3 -c "import json,math,sys; d=json.load(open(sys.argv[1])); assert all(abs(u[\"value\"]) < 1e-9 for u in d[\"units\"]); assert d[\"v_full\"] == d[\"v_empty\"]; assert abs(d[\"v_full\"] - 2 * -math.log(32000)) < 1e-4, d[\"v_full\"]" "$tmp/flat.json"' \
    "the flat model's values are not 0 with v(N) = v(empty) = 2 log(1/32000)"
check 'grep -qE "^time +\+0\.0000 +0\.0%  *$" "$tmp/table"' "values within rounding of 0 print with a share or a bar: $(cat "$tmp/table")"
# the same warning must not appear for a model that reads its input
"$promptshap" explain -m "$tmp/llama1.gguf" -p "Once upon a time" --target " there was" -t 1 >"$tmp/table" 2>"$tmp/err"
check '! grep -q "warning: every target token" "$tmp/err"' "the warning appears for a model that reads its input"

# NaN weights: scoring stops with the coalition and token involved, exit 1,
# and leaves no JSON file behind
"$mkmodel" "${llama[@]}" --set token_embd.weight=nan -o "$tmp/nan.gguf" >"$tmp/summary" 2>"$tmp/err"
check '[ $? -eq 0 ]' "--set token_embd.weight=nan failed: $(cat "$tmp/err")"
"$promptshap" explain -m "$tmp/nan.gguf" -p "Once upon a time" --target " there was" -t 1 \
    --json "$tmp/nan.json" >"$tmp/table" 2>"$tmp/err"
check '[ $? -eq 1 ]' "explain on a model with NaN weights did not exit 1"
check 'grep -qE "the log-probability of target token 0 is -?nan for the coalition of units \{.*\}; the model.s logits are not finite" "$tmp/err"' \
    "no clear error for logits that are not finite: $(cat "$tmp/err")"
check '[ ! -e "$tmp/nan.json" ] && [ -z "$(ls -a "$tmp" | grep "nan.json.")" ]' "a failed run left a JSON file"
# --set rejects what it cannot mean
check '[ "$(status_set --set token_embd.weight)" -eq 2 ]' "--set without a value is not a usage error"
check '[ "$(status_set --set token_embd.weight=abc)" -eq 2 ]' "--set with a non-number is not a usage error"
check '[ "$(status_set --set no_such.weight=0)" -eq 2 ] && grep -q "has no tensor .no_such.weight." "$tmp/err"' \
    "--set with an unknown tensor is not a usage error naming it"
check '[ "$(status_set --type q8_0 --set token_embd.weight=nan)" -eq 2 ] && grep -q "cannot hold a value that is not finite" "$tmp/err"' \
    "--set nan on a q8_0 tensor is not a usage error"

# exit codes: 0 help, 2 usage errors, 1 unusable files
status() { "$mkmodel" "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
check '[ "$(status --help)" -eq 0 ] && grep -q "^usage: promptshap-mkmodel" "$tmp/out"' "--help does not print the usage"
check '[ "$(status)" -eq 2 ] && grep -q "try .promptshap-mkmodel --help." "$tmp/err"' "no arguments is not a usage error"
check '[ "$(status --preset nope -o "$tmp/x.gguf")" -eq 2 ]' "an unknown preset is not a usage error"
check '[ "$(status --arch llama --type q4_0 -o "$tmp/x.gguf")" -eq 2 ]' "--type q4_0 is not a usage error"
check '[ "$(status --arch llama --embd 48 --heads 4 --type q8_0 --vocab "$spm" -o "$tmp/x.gguf")" -eq 2 ]' \
    "q8_0 with 48-value rows is not a usage error"
check '[ "$(status --preset gpt-oss-tiny --lm-head tied -o "$tmp/x.gguf")" -eq 2 ]' "a tied gpt-oss is not a usage error"
check '[ "$(status --preset gpt-oss-tiny --layers 0 -o "$tmp/x.gguf")" -eq 2 ]' "--layers 0 is not a usage error"
check '[ "$(status --preset gpt-oss-tiny --vocab "$tmp/missing.gguf" -o "$tmp/x.gguf")" -eq 1 ]' \
    "a missing vocabulary file is not a runtime failure"
check '[ "$(status --preset gpt-oss-tiny --harmony --vocab "$spm" --chat-template "$template" -o "$tmp/x.gguf")" -eq 1 ] && grep -q "byte-level BPE" "$tmp/err"' \
    "--harmony accepts a SentencePiece vocabulary"
check '[ ! -e "$tmp/x.gguf" ]' "a failed run left its output file"

echo "mkmodel: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
