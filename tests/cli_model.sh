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
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" --method permutation --samples 8 --seed 3 --json - 2>/dev/null | grep -v 'seconds"' >"$tmp/p1"
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" --method permutation --samples 8 --seed 3 --json - 2>/dev/null | grep -v 'seconds"' >"$tmp/p2"
check 'cmp -s "$tmp/p1" "$tmp/p2"' "same seed gave different JSON"
check 'grep -q "\"samples\": 8" "$tmp/p1"' "permutation JSON lacks the sample count"

# the naive engine gives the same numbers
"$bin" explain -m "$model" -p "$prompt" --target 'Deep learning is fun.' --engine naive --json - 2>/dev/null | grep '"value"' >"$tmp/naive"
"$bin" explain -m "$model" -p "$prompt" --target 'Deep learning is fun.' --json - 2>/dev/null | grep '"value"' >"$tmp/batched"
check 'python3 - "$tmp/naive" "$tmp/batched" <<PY
import re, sys
a = [float(re.search(r"\"value\": ([-0-9.e]+)", l).group(1)) for l in open(sys.argv[1])]
b = [float(re.search(r"\"value\": ([-0-9.e]+)", l).group(1)) for l in open(sys.argv[2])]
assert len(a) == 6 and len(b) == 6
assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3
PY' "--engine naive and batched disagree"

# other unit kinds, top-k
"$bin" explain -m "$model" -p "$prompt" --target 'Deep learning is fun.' --units tokens --method loo --top-k 2 >"$tmp/tok" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "top 2 units per target token" "$tmp/tok"' "--units tokens --top-k failed: $(cat "$tmp/tok")"
"$bin" explain -m "$model" -p 'The cat sat. The dog ran. Birds sing.' --target 'A story.' --units sentences >"$tmp/sen" 2>&1
check 'grep -q "3 sentences, 8 coalitions" "$tmp/sen"' "--units sentences failed: $(cat "$tmp/sen")"

# generate: the same seed gives the same bytes; plain text without harmony
"$bin" generate -m "$model" -p 'Once upon a time' -n 24 --temp 1 --seed 7 --json "$tmp/g1.json" >"$tmp/g1" 2>&1
rc=$?
"$bin" generate -m "$model" -p 'Once upon a time' -n 24 --temp 1 --seed 7 --json "$tmp/g2.json" >"$tmp/g2" 2>&1
check '[ $rc -eq 0 ] && cmp -s "$tmp/g1" "$tmp/g2" && cmp -s "$tmp/g1.json" "$tmp/g2.json"' \
    "generate with a fixed seed is not reproducible: $(cat "$tmp/g1")"
check 'grep -q "none framing, sampled, 24 tokens, stopped at the token limit" "$tmp/g1"' \
    "generate lacks its summary line: $(cat "$tmp/g1")"
check 'python3 - "$tmp/g1.json" <<PY
import json, sys
d = json.load(open(sys.argv[1]))
assert d["chat"] == "none" and d["hit_limit"] and len(d["tokens"]) == 24, d
assert len(d["messages"]) == 1 and d["messages"][0]["channel"] is None
assert d["messages"][0]["text"] and d["messages"][0]["text"] in d["text"]
PY' "generate JSON has the wrong content"
"$bin" generate -m "$model" -p 'Once upon a time' -n 24 --temp 1 --seed 8 >"$tmp/g3" 2>&1
check '! cmp -s "$tmp/g1" "$tmp/g3"' "another seed gave the same sampled text"
"$bin" generate -m "$model" -p 'Once upon a time' --target x >/dev/null 2>"$tmp/err"
check '[ $? -eq 2 ] && grep -q "takes no target" "$tmp/err"' "generate accepted a target"

# compare: identical prompts move nothing; another prompt moves the target
"$bin" compare -m "$model" -p 'Once upon a time' --vs-prompt 'Once upon a time' --target 'there was a girl.' \
    --json "$tmp/c0.json" >/dev/null 2>"$tmp/err"
rc=$?
check '[ $rc -eq 0 ] && python3 - "$tmp/c0.json" <<PY
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kind"] == "prompts" and d["same_tokens"], d
assert d["total_diff"] == 0 and all(t["diff"] == 0 for t in d["tokens"]), d
PY' "compare of identical prompts is not zero: $(cat "$tmp/err")"
"$bin" compare -m "$model" -p 'Once upon a time' --vs-prompt 'The dog ran home' --target 'there was a girl.' \
    >"$tmp/c1" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "most moved target tokens" "$tmp/c1" && ! grep -q "B - A +0.000000 nats" "$tmp/c1"' \
    "compare of two prompts shows no difference: $(cat "$tmp/c1")"
# two models: the same file twice agrees exactly, ranks included
"$bin" compare -m "$model" --vs-model "$model" -p 'the cat sat on the mat' --target 'They played.' \
    --json - >"$tmp/c2.json" 2>"$tmp/err"
rc=$?
check '[ $rc -eq 0 ] && python3 - "$tmp/c2.json" <<PY
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kind"] == "models" and d["total_diff"] == 0, d
assert len(d["units"]) == 6 and all(u["value_a"] == u["value_b"] for u in d["units"]), d
assert abs(d["spearman"] - 1) < 1e-12 and abs(d["kendall"] - 1) < 1e-12, d
PY' "compare of a model with itself: $(cat "$tmp/err")"
"$bin" compare -m "$model" --vs-model "$tmp/missing.gguf" -p x --target y >/dev/null 2>"$tmp/err"
check '[ $? -eq 1 ] && grep -q "cannot read the second model" "$tmp/err"' "a missing second model was not reported first"

# a huge batch is cut to what a tree can use, and halved to fit the memory
"$bin" explain -m "$model" -p hi --target there --method loo -b 400000000 >/dev/null 2>"$tmp/err"
rc=$?
check '[ $rc -eq 0 ]' "a huge batch was not cut down: exit $rc: $(cat "$tmp/err")"
# a request that cannot fit even with the smallest batch fails before libllama allocates it
"$bin" explain -m "$model" -p "$prompt" --target-file "$target" --method loo --mem-limit 1 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "MiB of memory are available, even with the smallest batch" "$tmp/err" &&
       grep -q "raise --mem-limit" "$tmp/err"' "a request too large for memory: exit $rc: $(cat "$tmp/err")"

# chat framings: a named template on a model without one; harmony needs its control tokens
"$bin" explain -m "$model" -p 'tell me a story' --target 'Once upon a time' --chat template --chat-template chatml >"$tmp/tpl" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "template framing, 4 words, 16 coalitions" "$tmp/tpl"' "--chat-template chatml: $(cat "$tmp/tpl")"
"$bin" explain -m "$model" -p 'tell me a story' --target 'Once' --chat template 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "the model has no chat template" "$tmp/err"' "template without one: $(cat "$tmp/err")"
"$bin" explain -m "$model" -p 'tell me a story' --target 'Once' --chat harmony 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "no harmony control tokens" "$tmp/err"' "harmony on a plain model: $(cat "$tmp/err")"

# small batches, output files of every kind
"$bin" explain -m "$model" -p "$prompt" --target 'Deep learning.' -b 64 --method loo >"$tmp/b64" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "-b 64 failed: $(cat "$tmp/b64")"
echo old >"$tmp/real.json"
chmod 640 "$tmp/real.json"
ln -s "$tmp/real.json" "$tmp/link.json"
"$bin" explain -m "$model" -p hi --target there --method loo -q --json "$tmp/link.json" >/dev/null 2>&1
check '[ -L "$tmp/link.json" ] && grep -q "\"v_full\"" "$tmp/real.json"' "--json through a symbolic link replaced the link"
check '[ "$(stat -c %a "$tmp/real.json")" = 640 ]' "--json changed the permissions of an existing file"
"$bin" explain -m "$model" -p hi --target there --method loo -q --json /dev/null >/dev/null 2>&1
rc=$?
check '[ $rc -eq 0 ] && [ -c /dev/null ]' "--json /dev/null failed or replaced the device"
if [ -c /dev/full ]; then
    "$bin" explain -m "$model" -p hi --target there --method loo -q --json - >/dev/full 2>"$tmp/err"
    rc=$?
    check '[ $rc -eq 1 ] && grep -q "writing to stdout failed" "$tmp/err"' "a full stdout was not reported: $(cat "$tmp/err")"
fi

# token units keep a character split over byte tokens whole; JSON stays valid
"$bin" explain -m "$model" -p 'pizza 🍕 now' --target 'yum' --units tokens --method loo --json - >"$tmp/emoji.json" 2>"$tmp/err"
rc=$?
check '[ $rc -eq 0 ] && python3 -c "import json,sys; d=json.load(open(sys.argv[1], encoding=\"utf-8\")); assert \"🍕\" in [u[\"text\"] for u in d[\"units\"]]" "$tmp/emoji.json"' \
    "emoji token units: $(cat "$tmp/err")"

# a generated target is scored as generated: its tokens spell it exactly
"$bin" explain -m "$model" -p 'Once upon a time' -n 12 --method loo -q --json - >"$tmp/gen.json" 2>/dev/null
check 'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert \"\".join(t[\"text\"] for t in d[\"target_tokens\"]) == d[\"target\"]" "$tmp/gen.json"' \
    "the generated target was not scored as generated"

# Ctrl-C stops a long run quickly and leaves no file
"$bin" explain -m "$model" -f "$examples/cases/construction-8-sentences/prompt.txt" \
    --target-file "$examples/cases/construction-8-sentences/target.txt" --method permutation --samples 2000 \
    --json "$tmp/sig.json" --svg "$tmp/sig" --html "$tmp/sig.html" --csv "$tmp/sig.csv" >/dev/null 2>"$tmp/err" &
pid=$!
sleep 2
kill -INT "$pid"
start=$(date +%s)
wait "$pid"
rc=$?
took=$(( $(date +%s) - start ))
check '[ $rc -eq 1 ] && grep -q "interrupted: cancelled after [0-9]* of [0-9]* coalitions" "$tmp/err" && grep -q "no output file written" "$tmp/err"' "SIGINT: exit $rc: $(cat "$tmp/err")"
check '[ "$took" -le 10 ]' "SIGINT took $took s to stop the run"
check '[ -z "$(ls "$tmp" | grep sig)" ]' "SIGINT left an output file: $(ls "$tmp" | grep sig)"

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
check '[ $rc -eq 1 ] && grep -q "the target file .*empty.txt. is empty" "$tmp/err" && [ ! -e "$tmp/e.json" ]' "empty target: $(cat "$tmp/err")"
"$bin" explain -m "$model" -p hi --target '' --json "$tmp/e.json" 2>"$tmp/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "the target is empty" "$tmp/err" && [ ! -e "$tmp/e.json" ]' "empty --target: $(cat "$tmp/err")"
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
