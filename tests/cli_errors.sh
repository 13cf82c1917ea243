#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Input errors of the command line, one case each: the exit code (1 runtime
# failure, 2 usage error) and a message that names what failed and the
# value or file involved. Cases that cli_usage.sh and cli_model.sh cover are
# not repeated here.
#
#   cli_errors.sh BIN          the cases that need no model
#   cli_errors.sh BIN model    the cases that need $PROMPTSHAP_MODEL (exit 77
#                              when it is not set)
#
# Permission cases run as the user "nobody" through setpriv when the tests
# run as root, since root may read and write files whatever their mode.
set -u
# an abort inside libllama prints no gdb backtrace
export GGML_NO_BACKTRACE=1
bin=$1
part=${2:-basic}
tmp=$(mktemp -d)
trap 'chmod -R u+rwx "$tmp"; rm -rf "$tmp"' EXIT
# the user "nobody" must reach the files of the permission cases
chmod 755 "$tmp"
pass=0
fail=0
skipped=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAILED: $*" >&2; }

# run ARGS...: runs promptshap, through $runner when it is set, with its
# output in $tmp/out and $tmp/err and its exit code in rc
runner=()
run() {
    "${runner[@]}" "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# expect CODE PATTERN ARGS...: exit code CODE and stderr matching the
# extended regular expression PATTERN
expect() {
    local code=$1 pattern=$2
    shift 2
    run "$@"
    if [ "$rc" -ne "$code" ]; then
        bad "promptshap $* exited $rc, expected $code; stderr: $(head -c 600 "$tmp/err")"
    elif ! grep -qE -- "$pattern" "$tmp/err"; then
        bad "promptshap $*: stderr does not match '$pattern': $(head -c 600 "$tmp/err")"
    else
        ok
    fi
}

# refute PATTERN: the last run's stderr must not match PATTERN
refute() {
    if grep -qE -- "$1" "$tmp/err"; then
        bad "the last run's stderr matches '$1': $(head -c 600 "$tmp/err")"
    else
        ok
    fi
}

# The permission cases need a user that the mode bits apply to.
can_drop=false
if [ "$(id -u)" -ne 0 ]; then
    can_drop=true
elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null &&
    setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$bin"; then
    can_drop=true
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
unprivileged() {
    if [ "$(id -u)" -eq 0 ]; then
        runner=("${as_user[@]}")
    fi
}
privileged() { runner=(); }

basic_cases() {
    printf 'not a model' >"$tmp/fake.gguf"
    printf 'hello there' >"$tmp/prompt.txt"
    printf 'x' >"$tmp/target.txt"
    chmod 644 "$tmp/fake.gguf" "$tmp/prompt.txt" "$tmp/target.txt"

    # files that cannot be read or written (not as root)
    if $can_drop; then
        cp "$tmp/fake.gguf" "$tmp/locked.gguf"
        cp "$tmp/prompt.txt" "$tmp/locked.txt"
        chmod 000 "$tmp/locked.gguf" "$tmp/locked.txt"
        mkdir "$tmp/readonly"
        chmod 555 "$tmp/readonly"
        printf 'old' >"$tmp/readonly-file.csv"
        chmod 444 "$tmp/readonly-file.csv"
        unprivileged
        expect 1 "cannot open model '$tmp/locked.gguf': Permission denied" \
            explain -m "$tmp/locked.gguf" -p hi --target x
        expect 1 "cannot read the prompt file '$tmp/locked.txt': Permission denied" \
            explain -m "$tmp/fake.gguf" -f "$tmp/locked.txt" --target x
        expect 1 "cannot read the target file '$tmp/locked.txt': Permission denied" \
            explain -m "$tmp/fake.gguf" -p hi --target-file "$tmp/locked.txt"
        # output paths fail before the model is opened: the fake model would fail otherwise
        expect 1 "cannot write '$tmp/readonly/out.json': no write permission in '$tmp/readonly'" \
            explain -m "$tmp/fake.gguf" -p hi --target x --json "$tmp/readonly/out.json"
        refute "GGUF"
        expect 1 "cannot write '$tmp/readonly/report.html': no write permission in '$tmp/readonly'" \
            explain -m "$tmp/fake.gguf" -p hi --target x --html "$tmp/readonly/report.html"
        expect 1 "cannot write '$tmp/readonly/fig-units.svg'" \
            explain -m "$tmp/fake.gguf" -p hi --target x --svg "$tmp/readonly/fig"
        expect 1 "cannot write '$tmp/readonly-file.csv': Permission denied" \
            explain -m "$tmp/fake.gguf" -p hi --target x --csv "$tmp/readonly-file.csv"
        privileged
    else
        echo "skipped: permission cases (running as root without a working setpriv)" >&2
        skipped=$((skipped + 8))
    fi
    expect 1 "cannot read the target file '$tmp/nope.txt': No such file or directory" \
        explain -m "$tmp/fake.gguf" -p hi --target-file "$tmp/nope.txt"

    # --budget: an integer of at least 2
    for value in 0 -5 abc 1.5 '' 99999999999999999999; do
        expect 2 "--budget needs an integer from 2 to [0-9]+: '$value'" explain -m m.gguf -p hi --budget "$value"
    done
    expect 2 "--tolerance needs a number from 0 to 1: 'nan'" explain -m m.gguf -p hi --tolerance nan
    expect 2 "--tolerance needs a number from 0 to 1: '2'" explain -m m.gguf -p hi --tolerance 2
    expect 2 "-c needs an integer from 0 to [0-9]+: '-1'" explain -m m.gguf -p hi -c -1
    expect 2 "--ctx-size needs an integer from 0 to [0-9]+: 'abc'" explain -m m.gguf -p hi --ctx-size abc
    expect 2 "-b needs an integer from 1 to [0-9]+: '0'" explain -m m.gguf -p hi -b 0
    expect 2 "-n needs an integer from 1 to [0-9]+: '0'" explain -m m.gguf -p hi -n 0
    expect 2 "--top-k needs an integer from 1 to [0-9]+: '0'" explain -m m.gguf -p hi --top-k 0
    expect 2 "-ngl needs an integer from -1 to [0-9]+: '-2'" explain -m m.gguf -p hi -ngl -2

    # unknown options: no prefixes, no --name=value, case matters
    expect 2 "unknown option: '--targ'" explain -m m.gguf -p hi --targ x
    expect 2 "unknown option: '--budget=8'" explain -m m.gguf -p hi --budget=8
    expect 2 "unknown option: '--JSON'" explain -m m.gguf -p hi --JSON out.json
    expect 2 "unknown option: '-x'" explain -m m.gguf -p hi -x

    # an input given twice is a conflict, not "the last one wins"
    expect 2 "(twice|more than once|once).*'(-p|--prompt|there)'" explain -m m.gguf -p hi -p there --target x
    expect 2 "(twice|more than once|once).*'(-f|--file|$tmp/prompt.txt)'" \
        explain -m m.gguf -f "$tmp/prompt.txt" -f "$tmp/prompt.txt" --target x
    expect 2 "(twice|more than once|once).*'(--target|b)'" explain -m m.gguf -p hi --target a --target b
    expect 2 "(twice|more than once|once).*'(--target-file|$tmp/target.txt)'" \
        explain -m m.gguf -p hi --target-file "$tmp/target.txt" --target-file "$tmp/target.txt"
    expect 2 "(twice|more than once|once).*'(-m|--model|n.gguf)'" explain -m m.gguf -m n.gguf -p hi --target x
}

# Writes a GGUF file with the single key general.architecture = ARCH.
write_gguf_arch() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
def string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b
# magic, version 3, no tensors, one key-value pair of type 8 (string)
data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string("general.architecture") + struct.pack("<I", 8) + string(sys.argv[2])
open(sys.argv[1], "wb").write(data)
PY
}

# Copies the model FROM to TO with one vocabulary entry overwritten by an
# earlier one of the same length, so the file keeps its size and layout.
write_duplicate_token() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
key = b"tokenizer.ggml.tokens"
at = data.index(key) + len(key)
value_type, item_type, count = struct.unpack_from("<IIQ", data, at)
assert value_type == 9, "tokenizer.ggml.tokens is not an array"
assert item_type == 8, "tokenizer.ggml.tokens is not an array of strings"
at += 16
first_of_length = {}
for index in range(count):
    (length,) = struct.unpack_from("<Q", data, at)
    start = at + 8
    if length in first_of_length:
        earlier = first_of_length[length]
        data[start:start + length] = data[earlier:earlier + length]
        break
    first_of_length[length] = start
    at = start + length
else:
    sys.exit("no two vocabulary entries of the same length")
open(sys.argv[2], "wb").write(data)
PY
}

# Copies the model FROM to TO with llama.block_count set to 0.
write_zero_layers() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
key = b"llama.block_count"
at = data.index(key) + len(key)
(value_type,) = struct.unpack_from("<I", data, at)
assert value_type == 4, "llama.block_count is not a uint32"
struct.pack_into("<I", data, at + 4, 0)
open(sys.argv[2], "wb").write(data)
PY
}

model_cases() {
    local model=$1

    # damaged models: the message names the file and the reason
    head -c 600000 "$model" >"$tmp/half.gguf"
    expect 1 "could not load '$tmp/half.gguf'.*(not within the file bounds|is truncated|incomplete)" \
        explain -m "$tmp/half.gguf" -p hi --target x
    write_gguf_arch "$tmp/arch.gguf" nonexistent
    expect 1 "'$tmp/arch.gguf'.*unknown model architecture.*'nonexistent'" explain -m "$tmp/arch.gguf" -p hi --target x
    # libllama v0.4.0 aborts on a vocabulary with one string twice, so the loader has to check it first
    write_duplicate_token "$model" "$tmp/duplicate.gguf"
    expect 1 "'$tmp/duplicate.gguf'.*(twice|duplicate)" explain -m "$tmp/duplicate.gguf" -p hi --target x
    # and on a layer count of 0 (or above 512)
    write_zero_layers "$model" "$tmp/no-layers.gguf"
    expect 1 "'$tmp/no-layers.gguf'.*block_count" explain -m "$tmp/no-layers.gguf" -p hi --target x

    # empty and whitespace-only inputs
    expect 1 "the prompt is empty" explain -m "$model" -p '' --target x
    : >"$tmp/empty.txt"
    expect 1 "the prompt file '$tmp/empty.txt' is empty" explain -m "$model" -f "$tmp/empty.txt" --target x
    printf ' \t\n \r\n' >"$tmp/blank.txt"
    for kind in words tokens sentences; do
        expect 1 "the prompt has no $kind \(it is empty or only whitespace\)" \
            explain -m "$model" -f "$tmp/blank.txt" --target x --units "$kind"
    done
    expect 1 "the target is empty" explain -m "$model" -p hi --target ''

    # invalid UTF-8 and NUL bytes: the offset, and the file when there is one
    expect 1 "the prompt is not valid UTF-8 text: byte 0xff at offset 4" explain -m "$model" -p $'bad \xff' --target x
    expect 1 "the target is not valid UTF-8 text: byte 0xc3 at offset 3" explain -m "$model" -p hi --target $'cut\xc3'
    printf 'a\0b' >"$tmp/nul.txt"
    expect 1 "'$tmp/nul.txt'.*(NUL|0x00).*offset 1" explain -m "$model" -f "$tmp/nul.txt" --target x
    expect 1 "'$tmp/nul.txt'.*(NUL|0x00).*offset 1" explain -m "$model" -p hi --target-file "$tmp/nul.txt"
    printf 'fine \355\240\200 surrogate' >"$tmp/surrogate.txt"
    expect 1 "'$tmp/surrogate.txt'.*not valid UTF-8.*offset 5" explain -m "$model" -p hi --target-file "$tmp/surrogate.txt"

    # longer than the context: token counts and the flag to change
    expect 1 "need [0-9]+ tokens.*context size is 16; raise -c" \
        explain -m "$model" -p 'explain deep leaning in 50 words' --target 'Deep learning is a kind of machine learning.' -c 16
    local long
    long=$(for i in $(seq 1 1500); do printf 'word%d ' "$i"; done)
    expect 1 "need [0-9]+ tokens \(framing and prompt [0-9]+, target [0-9]+\) but the context size is 2048; raise -c" \
        explain -m "$model" -p hi --target "$long"

    # more units than a method allows, and budgets too small for one
    local words
    words=$(for i in $(seq 1 25); do printf 'w%d ' "$i"; done)
    expect 1 "exact enumeration of [0-9]+ units needs 2\^[0-9]+ coalitions; it is limited to 20 units" \
        explain -m "$model" -p 'one two three four five six seven eight nine ten eleven twelve' --target x \
        --units tokens --method exact
    expect 1 "interactions are limited to 12 units, got 13" \
        explain -m "$model" -p 'a b c d e f g h i j k l m' --target x --interactions
    expect 1 "a budget of 3 evaluations is too small for 25 units: sampling needs at least [0-9]+" \
        explain -m "$model" -p "$words" --target x --method permutation --budget 3
    expect 1 "a budget of 5 evaluations is too small for 25 units" \
        explain -m "$model" -p "$words" --target x --method kernel --budget 5

    # output paths are checked before any model work: no libllama log line
    # with --verbose, and the error within two seconds
    local start elapsed
    start=$(date +%s%N)
    expect 1 "the directory '$tmp/no/such' does not exist" \
        explain -m "$model" -p hi --target x -v --json "$tmp/no/such/out.json"
    elapsed=$((($(date +%s%N) - start) / 1000000))
    refute "llama_model_load|llama_model_loader|print_info"
    if [ "$elapsed" -le 2000 ]; then ok; else bad "the output path error took $elapsed ms"; fi
    # without a target, generation would come first: the path still wins
    expect 1 "the directory '$tmp/no/such' does not exist" explain -m "$model" -p hi -v --csv "$tmp/no/such/m.csv"
    refute "llama_model_load|llama_model_loader|print_info|generated target"
    if $can_drop; then
        mkdir -p "$tmp/readonly2"
        chmod 555 "$tmp/readonly2"
        unprivileged
        expect 1 "no write permission in '$tmp/readonly2'" \
            explain -m "$model" -p hi --target x -v --html "$tmp/readonly2/r.html"
        refute "llama_model_load|llama_model_loader|print_info"
        privileged
    else
        skipped=$((skipped + 2))
    fi
}

if [ "$part" = model ]; then
    model=${PROMPTSHAP_MODEL:-}
    if [ -z "$model" ]; then
        echo "PROMPTSHAP_MODEL is not set: skipping" >&2
        exit 77
    fi
    if $can_drop && [ "$(id -u)" -eq 0 ] && ! "${as_user[@]}" test -r "$model"; then
        echo "nobody cannot read $model: permission cases skipped" >&2
        can_drop=false
    fi
    model_cases "$model"
else
    basic_cases
fi

echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
