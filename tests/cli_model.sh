#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The command line on a real model (PROMPTSHAP_MODEL): the main job's table,
# JSON to a file and to stdout, logprob, generation, units, and the runtime
# errors that need a model.
set -u
bin=$1
examples=$2
model=${PROMPTSHAP_MODEL:-}
if [ -z "$model" ]; then
    echo "PROMPTSHAP_MODEL is not set: skipping" >&2
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAILED: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

prompt='explain deep leaning in 50 words'
target=$examples/cases/deep-learning-long/target.txt

# the main job: 6 words, 64 coalitions, efficiency gap about zero
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" >"$tmp/table" 2>"$tmp/err"
rc=$?
check '[ $rc -eq 0 ]' "explain exited non-zero: $(cat "$tmp/err")"
check 'grep -q "6 words, 64 coalitions evaluated" "$tmp/table"' "table lacks the run summary"
check '[ "$(grep -cE "^(explain|deep|leaning|in|50|words) " "$tmp/table")" -eq 6 ]' "table lacks a row per word"
check 'grep -qE "^efficiency gap [0-9.e-]+" "$tmp/table"' "table lacks the efficiency gap"
check '[ ! -s "$tmp/err" ]' "stderr is not empty without --verbose: $(cat "$tmp/err")"

# JSON to a file, and to stdout with nothing else there
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" --json "$tmp/out.json" --sentences -q >/dev/null
rc=$?
check '[ $rc -eq 0 ]' "explain --json FILE failed"
check 'python3 - "$tmp/out.json" <<PY
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["units"]) == 6
assert d["evaluations"] == 64
assert d["method"] == "exact"
assert len(d["matrix"]) == 6
assert all(len(r) == len(d["target_tokens"]) for r in d["matrix"])
assert abs(sum(u["value"] for u in d["units"]) - (d["v_full"] - d["v_empty"])) < 1e-9 * abs(d["v_full"])
assert d["units"][1]["text"] == "deep"
assert d["units"][1]["start"] == 8
assert d["units"][1]["end"] == 12
assert len(d["sentences"]) == 3
for k in ("model", "chat", "seed", "efficiency_gap", "seconds"):
    assert k in d, k
PY' "JSON file has the wrong content"
check '[ -z "$(ls "$tmp" | grep tmp)" ]' "a temporary file was left behind"
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" --method loo --json - >"$tmp/stdout.json" 2>/dev/null
check 'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"index\"] == \"leave-one-out\"" "$tmp/stdout.json"' \
    "--json - does not give valid JSON on stdout"

# permutation reports standard errors; the same seed gives the same numbers
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" --method permutation --samples 8 --seed 3 --json - 2>/dev/null | grep -v '"seconds"' >"$tmp/p1"
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" --method permutation --samples 8 --seed 3 --json - 2>/dev/null | grep -v '"seconds"' >"$tmp/p2"
check 'cmp -s "$tmp/p1" "$tmp/p2"' "same seed gave different JSON"
check 'grep -q "\"samples\": 8" "$tmp/p1"' "permutation JSON lacks the sample count"

# other unit kinds, top-k
"$bin" explain -m "$model" -p "$prompt" --target 'Deep learning is fun.' --units tokens --method loo --top-k 2 >"$tmp/tok" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "top 2 units per target token" "$tmp/tok"' "--units tokens --top-k failed: $(cat "$tmp/tok")"
"$bin" explain -m "$model" -p 'The cat sat. The dog ran. Birds sing.' --target 'A story.' --units sentences >"$tmp/sen" 2>&1
check 'grep -q "3 sentences, 8 coalitions" "$tmp/sen"' "--units sentences failed: $(cat "$tmp/sen")"

# logprob
"$bin" logprob -m "$model" -p 'Once upon a' --target 'time' --json "$tmp/lp.json" >"$tmp/lp" 2>&1
check 'grep -q "total" "$tmp/lp" && python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"total_logprob\"] > -0.5" "$tmp/lp.json"' \
    "logprob failed: $(cat "$tmp/lp")"

# generation when no target is given
"$bin" explain -m "$model" -p 'Once upon a time' -n 16 --method loo >"$tmp/gen" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "generated target" "$tmp/gen" && grep -q "coalitions evaluated" "$tmp/gen"' \
    "explain without a target failed: $(cat "$tmp/gen")"

# runtime errors that need the model; no output file is left behind
: >"$tmp/empty.txt"
"$bin" explain -m "$model" -p hi --target-file "$tmp/empty.txt" --json "$tmp/e.json" 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "the target is empty" "$tmp/err" && [ ! -e "$tmp/e.json" ]' "empty target: $(cat "$tmp/err")"
"$bin" explain -m "$model" -p '   ' --target x 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "the prompt has no words" "$tmp/err"' "whitespace prompt: $(cat "$tmp/err")"
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" -c 64 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "context size is 64; raise -c" "$tmp/err"' "too long: $(cat "$tmp/err")"
printf 'bad \377 byte' >"$tmp/bad.txt"
"$bin" explain -m "$model" -f "$tmp/bad.txt" --target x 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "not valid UTF-8" "$tmp/err"' "invalid UTF-8: $(cat "$tmp/err")"
words=$(for i in $(seq 1 21); do printf 'w%d ' "$i"; done)
"$bin" explain -m "$model" -p "$words" --target x --method exact 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "use the permutation method" "$tmp/err"' "21 units exact: $(cat "$tmp/err")"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
