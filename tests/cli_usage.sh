#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The command line's contract without a model: help, version, usage errors
# (exit 2 with "promptshap: <problem>: '<argument>'" and a hint) and
# runtime errors on a missing or non-GGUF model (exit 1).
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAILED: $*" >&2; }

# expect CODE PATTERN ARGS...: exit code CODE and stderr matching PATTERN
expect() {
    local code=$1 pattern=$2
    shift 2
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then
        bad "promptshap $* exited $rc, expected $code; stderr: $(cat "$tmp/err")"
    elif ! grep -qE -- "$pattern" "$tmp/err"; then
        bad "promptshap $*: stderr does not match '$pattern': $(cat "$tmp/err")"
    else
        ok
    fi
}

# help and version go to stdout with exit 0
"$bin" --help >"$tmp/out" 2>&1 && grep -q "exit status" "$tmp/out" && grep -q -- "--samples N" "$tmp/out" && ok || bad "--help"
"$bin" explain -h >"$tmp/out" 2>&1 && grep -q "examples:" "$tmp/out" && ok || bad "explain -h"
"$bin" --version >"$tmp/out" 2>&1 && grep -q "llama.cpp v0.4.0" "$tmp/out" && ok || bad "--version"

# usage errors
expect 2 "a command is required"
expect 2 "unknown command.*'frobnicate'" frobnicate
expect 2 "unknown option: '--frob'" explain -m m.gguf -p hi --frob
expect 2 "a model is required" explain -p hi
expect 2 "a prompt is required" explain -m m.gguf
expect 2 "not both" explain -m m.gguf -p hi -f p.txt
expect 2 "not both" explain -m m.gguf -p hi --target a --target-file b
expect 2 "logprob needs a target" logprob -m m.gguf -p hi
expect 2 "--samples needs an integer from 4.*'abc'" explain -m m.gguf -p hi --samples abc
expect 2 "--samples needs an integer from 4.*'0'" explain -m m.gguf -p hi --samples 0
expect 2 "--samples needs an integer from 4.*'-5'" explain -m m.gguf -p hi --samples -5
expect 2 "--samples applies to the permutation method only" explain -m m.gguf -p hi --method exact --samples 8
expect 2 "--method must be.*'shap'" explain -m m.gguf -p hi --method shap
expect 2 "--chat must be.*'jinja'" explain -m m.gguf -p hi --chat jinja
# generate, compare, --plan and the harmony channel options
expect 2 "generate writes a response and takes no target: '--target'" generate -m m.gguf -p hi --target x
expect 2 "a model is required" generate -p hi
expect 2 "compare needs either a second prompt.*'compare'" compare -m m.gguf -p hi --target x
expect 2 "compare needs either a second prompt.*not both: '--vs-model'" compare -m m.gguf -p hi --vs-prompt a --vs-model b.gguf
expect 2 "give the second prompt once.*'--vs-prompt-file'" compare -m m.gguf -p hi --vs-prompt a --vs-prompt-file b
expect 2 "the second model's path must not be empty" compare -m m.gguf -p hi --vs-model ''
expect 2 "apply to compare only: '--vs-prompt'" explain -m m.gguf -p hi --vs-prompt b
expect 2 "apply to compare only: '--vs-model'" logprob -m m.gguf -p hi --target x --vs-model b.gguf
expect 2 "--explain-channel must be analysis, commentary or final: 'reasoning'" explain -m m.gguf -p hi --explain-channel reasoning
expect 2 "--explain-channel picks the channel of a generated target, but a target is given" explain -m m.gguf -p hi --target x --explain-channel analysis
expect 2 "--explain-channel applies to harmony framing only, not: 'none'" explain -m m.gguf -p hi --chat none --explain-channel analysis
expect 2 "--explain-channel applies to explain and compare" generate -m m.gguf -p hi --explain-channel analysis
expect 2 "--plan needs the target" explain -m m.gguf -p hi --plan
expect 2 "--plan applies to explain only" logprob -m m.gguf -p hi --target x --plan
expect 2 "--mem-limit needs a number" explain -m m.gguf -p hi --mem-limit lots
expect 2 "--reasoning must be low, medium or high: 'none'" explain -m m.gguf -p hi --reasoning none
expect 2 "--units must be.*'chars'" explain -m m.gguf -p hi --units chars
expect 2 "option needs a value: '--target'" explain -m m.gguf -p hi --target
expect 2 "--seed needs a non-negative integer" explain -m m.gguf -p hi --seed -1
expect 2 "-t needs an integer" explain -m m.gguf -p hi -t 0
expect 2 "--temp needs a number" explain -m m.gguf -p hi --temp x
expect 2 "unexpected argument" explain -m m.gguf hello
expect 2 "--engine must be batched or naive: 'fast'" explain -m m.gguf -p hi --engine fast
expect 2 "--seed needs a non-negative integer: ' -5'" explain -m m.gguf -p hi --seed ' -5'
expect 2 "--date must be a date YYYY-MM-DD: 'abcd-ef-gh'" explain -m m.gguf -p hi --date abcd-ef-gh
expect 2 "--chat-template needs a template" explain -m m.gguf -p hi --chat-template ''
expect 2 "--chat-template applies to template framing only, not: 'none'" explain -m m.gguf -p hi --chat none --chat-template chatml
expect 2 "--reasoning and --date apply to harmony framing only, not: 'none'" explain -m m.gguf -p hi --chat none --reasoning low
expect 2 "--target-sep applies to none framing only, not: 'harmony'" explain -m m.gguf -p hi --chat harmony --target-sep x
expect 2 "-n and --temp apply to generation, but a target is given" explain -m m.gguf -p hi --target x -n 5

# runtime errors before any model work
expect 1 "cannot open model '$tmp/missing.gguf'" explain -m "$tmp/missing.gguf" -p hi --target x
printf 'not a model' >"$tmp/fake.gguf"
expect 1 "is not a GGUF model file" explain -m "$tmp/fake.gguf" -p hi --target x
printf 'GGUF\003\000\000\000' >"$tmp/truncated.gguf"
expect 1 "could not load '$tmp/truncated.gguf'" explain -m "$tmp/truncated.gguf" -p hi --target x
expect 1 "cannot read the prompt file '$tmp/nope.txt'" explain -m "$tmp/fake.gguf" -f "$tmp/nope.txt" --target x
mkdir "$tmp/dir"
expect 1 "cannot open model '$tmp/dir': it is a directory" explain -m "$tmp/dir" -p hi --target x
expect 1 "cannot read the prompt file '$tmp/dir': it is a directory" explain -m "$tmp/fake.gguf" -f "$tmp/dir" --target x
expect 1 "cannot write '$tmp/dir': it is a directory" explain -m "$tmp/fake.gguf" -p hi --target x --json "$tmp/dir"
ln -s "$tmp/no/such/file.json" "$tmp/dangling.json"
expect 1 "symbolic link to a missing file" explain -m "$tmp/fake.gguf" -p hi --target x --json "$tmp/dangling.json"
expect 1 "the directory '$tmp/no/such' does not exist" explain -m "$tmp/fake.gguf" -p hi --target x --json "$tmp/no/such/out.json"

# the views' paths are checked before the model loads (the fake model would fail later)
expect 1 "cannot write '$tmp/dir': it is a directory" explain -m "$tmp/fake.gguf" -p hi --target x --html "$tmp/dir"
expect 1 "the directory '$tmp/no/such' does not exist" explain -m "$tmp/fake.gguf" -p hi --target x --csv "$tmp/no/such/m.csv"
expect 1 "cannot write '$tmp/no/such/fig-units.svg'" explain -m "$tmp/fake.gguf" -p hi --target x --svg "$tmp/no/such/fig"
expect 2 "--svg, --html and --csv apply to explain only: '--html'" logprob -m m.gguf -p hi --target x --html r.html
expect 2 "an output file name must not be empty: '--svg'" explain -m m.gguf -p hi --svg ''
[ -z "$(ls "$tmp" | grep -v -e '^dir$' -e '\.gguf$' -e '^out$' -e '^err$' -e '^dangling.json$')" ] && ok || bad "a view file was left behind"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
