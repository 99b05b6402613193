#!/usr/bin/env bash
# End-to-end checks of the qasr command: output formats, exit codes, and a clear message naming
# the file for every kind of bad input (audio or model), with good inputs still transcribed.
# usage: test_cli.sh QASR_BIN MODEL_DIR WORK_DIR
set -u
qasr=$1 model=$2 work=$3
py=/usr/bin/python3
[ -x $py ] || py=python3
root=$(cd "$(dirname "$0")/.." && pwd)
demo=$root/tests/audio/demo.flac
rm -rf "$work" && mkdir -p "$work"
fails=0 checks=0

check() { # check NAME CONDITION...
  local name=$1; shift
  checks=$((checks + 1))
  if ! "$@"; then
    fails=$((fails + 1))
    echo "FAIL: $name"
    echo "  stdout: $(head -c 400 "$work/out")"
    echo "  stderr: $(head -c 400 "$work/err")"
  fi
}
run() { "$qasr" "$@" >"$work/out" 2>"$work/err"; echo $? >"$work/rc"; }
rc_is() { [ "$(cat "$work/rc")" = "$1" ]; }
err_has() { grep -qF -- "$1" "$work/err"; }
out_has() { grep -qF -- "$1" "$work/out"; }
json_ok() { # every stdout line is a JSON object with the documented keys
  $py -c '
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    keys = {"path", "text", "error"} if o.get("error") else {"path", "text", "language", "raw", "token_ids", "n_tokens", "truncated", "audio_seconds", "error"}
    assert keys <= set(o), (keys - set(o))
' "$work/out"
}

# --- usage ---
run --help
check "help exits 0" rc_is 0
check "help documents --model" out_has "--model DIR"
run
check "no args is a usage error" rc_is 2
run --model "$model"
check "no audio is a usage error" rc_is 2
check "no audio message" err_has "no audio files"
run --model "$model" --ignore-eos "$demo"
check "--ignore-eos needs --max-new-tokens" rc_is 2
run --model "$model" --precision fp16 "$demo"
check "unknown --precision is a usage error" rc_is 2
check "unknown --precision message" err_has "--precision 'fp16': expected fp32, bf16 or auto"
run --model "$model" --precision fp32 --max-new-tokens 8 "$demo"
check "--precision fp32 transcribes" rc_is 0

# --- numbers in options are checked whole, before anything loads: a usage error naming the
# option and the value (atoi once read "--batch abc" as the default and "-n -5" as no limit) ---
bad_number() { # bad_number COMMAND OPTION VALUE EXPECTED...
  local cmd=$1 opt=$2 value=$3; shift 3
  "$cmd" --model "$model" "$opt" "$value" "$demo" >"$work/out" 2>"$work/err"; echo $? >"$work/rc"
  check "$(basename "$cmd") $opt '$value': exit 2" rc_is 2
  check "$(basename "$cmd") $opt '$value': message" err_has "$(basename "$cmd"): $opt '$value': expected $*"
}
bad_number "$qasr" --batch abc an integer from 1 to 65536
bad_number "$qasr" --threads 0 an integer from 1 to 4096
bad_number "$qasr" --threads 2x an integer from 1 to 4096
bad_number "$qasr" --max-new-tokens -5 an integer from 1 to 1000000
bad_number "$qasr" --max-new-tokens 1.5 an integer from 1 to 1000000
bad_number "$qasr" --step-tokens 99999999999999999999 an integer from 1 to 16777216
bad_number "$qasr" --device -1 an integer from 0 to 1023
bad_number "$qasr" --kv-gb 0 a number above 0 up to 1000000
bad_number "$qasr" --kv-gb nan a number above 0 up to 1000000
bad_number "$qasr" --max-segment-seconds 1e999 a number from 0 to 1000000000
qasr_batch=$(dirname "$qasr")/qasr-batch
bad_number "$qasr_batch" --readers 0 an integer from 1 to 1024
bad_number "$qasr_batch" --encoder-seconds -1 a number above 0 up to 1000000000
bad_number "$qasr_batch" --progress-interval x a number above 0 up to 1000000000
bad_number "$qasr_batch" --fsync-seconds "" a number from -1 to 1000000000
bad_number "$qasr_batch" --tokens-per-second 1001 a number above 0 up to 1000
bad_number "$qasr_batch" --threads " 3" an integer from 1 to 4096
run --model "$model" -t 1 --batch 1 --step-tokens 64 --kv-gb 0.25 --max-new-tokens 4 --ignore-eos "$demo"
check "numbers in range: transcribed" rc_is 0

# --- threads: OpenMP waits passively unless the user says otherwise; the default count is the
# CPUs the process may use (here an affinity of one CPU), said by -v ---
OMP_DISPLAY_ENV=true run --help
check "OpenMP waits passively by default" err_has "OMP_WAIT_POLICY = 'PASSIVE'"
OMP_DISPLAY_ENV=true OMP_WAIT_POLICY=active run --help
check "the user's OMP_WAIT_POLICY stays" err_has "OMP_WAIT_POLICY = 'ACTIVE'"
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
  taskset -c 0 "$qasr" --model "$model" --max-new-tokens 2 -v "$demo" >"$work/out" 2>"$work/err"
  check "threads default to the affinity mask" err_has "1 thread (affinity: 1 of"
fi

# --- audio on standard input: the same text as the file; errors name stdin ---
"$qasr" --model "$model" --max-new-tokens 6 --ignore-eos "$demo" >"$work/file.txt" 2>/dev/null
"$qasr" --model "$model" --max-new-tokens 6 --ignore-eos - <"$demo" >"$work/out" 2>"$work/err"
check "stdin: the file's text" cmp -s "$work/out" "$work/file.txt"
run --model "$model" --max-new-tokens 6 -j - </dev/null
check "empty stdin: exit 1" rc_is 1
check "empty stdin: named" err_has "stdin: empty file (0 bytes)"
check "empty stdin: no temporary file named" eval '! grep -q qasr-stdin "$work/err"'
run --model "$model" - - </dev/null
check "stdin twice: usage error" rc_is 2

# --- good input ---
stages_ok() { # -v: every stage named once, in order, with ms; FLOP rates where there are products
  $py -c '
import re, sys
err = open(sys.argv[1]).read()
line = re.search(r"stages \(ms, GFLOP/s\): (.*)", err).group(1)
parts = [re.fullmatch(r"(\D+?) (\d+)(?: \((\d+)\))?", p.strip()) for p in line.split(",")]
assert all(parts), line
names = [p.group(1) for p in parts]
assert names == ["mel", "conv stem", "encoder layers", "prefill", "decode", "LM head"], names
assert all(p.group(3) is not None for p in parts[1:]), "a stage without a FLOP rate: " + line
wall = float(re.search(r"s of audio in ([\d.]+) s", err).group(1))
assert sum(int(p.group(2)) for p in parts) <= wall * 1000 + 5, (line, wall)
' "$work/err"
}
run --model "$model" -v --ignore-eos --max-new-tokens 4 "$demo"
check "-v transcribes" rc_is 0
check "-v prints the stage breakdown" stages_ok
run --model "$model" --max-new-tokens 8 "$demo"
check "demo transcribes" rc_is 0
check "demo prints text" test -s "$work/out"
run --model "$model" --json --ignore-eos --max-new-tokens 5 "$demo" "$demo"
check "json exit 0" rc_is 0
check "json schema" json_ok
check "json one line per file" test "$(wc -l <"$work/out")" = 2
check "exactly 5 tokens with --ignore-eos" \
  $py -c 'import json,sys; assert all(len(json.loads(l)["token_ids"]) == 5 for l in open(sys.argv[1]))' "$work/out"
run --model "$model" --json --language ENGLISH --max-new-tokens 4 "$demo"
check "forced language accepted in any case" rc_is 0
check "forced language reported normalised" out_has '"language":"English"'
run --model "$model" --list-languages
check "list languages" out_has "Macedonian"

# stereo 44.1 kHz and 8 kHz inputs go through downmix + resampling
sox "$demo" -r 44100 -c 2 "$work/stereo.wav" 2>/dev/null
sox "$demo" -r 8000 "$work/narrow.ogg" 2>/dev/null
run --model "$model" --json --max-new-tokens 4 "$work/stereo.wav" "$work/narrow.ogg"
check "other rates and formats" rc_is 0
check "resampled duration" $py -c '
import json, sys
d = [json.loads(l)["audio_seconds"] for l in open(sys.argv[1])]
assert all(abs(x - 6.4977) < 0.01 for x in d), d' "$work/out"

# --- bad audio: reported, named, and the good file is still transcribed ---
: >"$work/empty.wav"
echo "this is not audio" >"$work/text.wav"
head -c 20000 "$demo" >"$work/cut.flac"
sox -n -r 16000 -c 1 -b 16 "$work/tiny.wav" trim 0 0.005 2>/dev/null
for bad in empty.wav text.wav missing.wav tiny.wav; do
  run --model "$model" --json --max-new-tokens 4 "$work/$bad" "$demo"
  check "$bad: exit 1" rc_is 1
  check "$bad: named on stderr" err_has "$work/$bad"
  check "$bad: good file still transcribed" $py -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[0]["error"] and rows[0]["text"] is None and rows[1]["error"] is None, rows' "$work/out"
done
run --model "$model" --max-new-tokens 4 "$work/tiny.wav"
check "too short explains" err_has "too short"
run --model "$model" --max-new-tokens 4 "$work/cut.flac"
check "truncated flac: no crash" test "$(cat "$work/rc")" -le 1
run --model "$model" --language Klingon --max-new-tokens 4 "$demo"
check "unsupported language fails the input" rc_is 1
check "unsupported language named" err_has "Klingon"
# the automatic token limit shrinks to what the KV cache holds beside the prompt, so a small cache
# still transcribes what fits (the trained demo model ends its transcript: 10 pages of 16 positions
# hold its 100-position prompt and the transcript, not the prompt and 32 + 24 per second); one
# that cannot hold the prompt and 32 tokens fails the file, naming the cache
dm=$root/tests/models/qasr-demo
"$qasr" --model "$dm" --json "$demo" >"$work/full.jsonl" 2>/dev/null
run --model "$dm" --json --kv-gb 0.0005 "$demo"
check "small cache: transcribed" rc_is 0
check "small cache: the same text" $py -c '
import json, sys
a, b = (json.loads(open(p).readline()) for p in sys.argv[1:])
assert a["text"] == b["text"] and not b["truncated"] and b["text"], (a, b)' "$work/full.jsonl" "$work/out"
run --model "$dm" --json --kv-gb 0.0003 "$demo"
check "cache too small: the file fails" rc_is 1
check "cache too small: named" err_has "audio too long for the KV cache"
# an empty or blank forced language means none, as in the official wrapper: the automatic run's tokens
run --model "$model" --json --max-new-tokens 4 "$demo"
cp "$work/out" "$work/auto.jsonl"
for blank in "" "  "; do
  run --model "$model" --json --language "$blank" --max-new-tokens 4 "$demo"
  check "language '$blank': transcribed" rc_is 0
  check "language '$blank': as without one" $py -c '
import json, sys
a, b = (json.loads(open(p).readline()) for p in sys.argv[1:])
assert a["token_ids"] == b["token_ids"] and a["language"] == b["language"], (a, b)' "$work/auto.jsonl" "$work/out"
done

# --- bad model directories: exit 3 and a message naming the file or tensor ---
bad_model() { rm -rf "$work/m" && cp -r "$model" "$work/m"; }
run --model "$work/nowhere" "$demo"
check "missing model dir: exit 3" rc_is 3
check "missing model dir named" err_has "$work/nowhere"
bad_model; echo '{"thinker_config": ' >"$work/m/config.json"
run --model "$work/m" "$demo"
check "broken config.json: exit 3" rc_is 3
check "broken config.json named" err_has "config.json"
bad_model; size=$(stat -c %s "$work/m/model.safetensors"); truncate -s $((size / 2)) "$work/m/model.safetensors"
run --model "$work/m" "$demo"
check "truncated safetensors: exit 3" rc_is 3
check "truncated safetensors named" err_has "model.safetensors"
bad_model; rm "$work/m/vocab.json"
run --model "$work/m" "$demo"
check "missing vocab.json: exit 3" rc_is 3
check "missing vocab.json named" err_has "vocab.json"
bad_model; $py - "$work/m/model.safetensors" <<'EOF'
# rename one tensor in the header (same length, so offsets stay valid)
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
n = int.from_bytes(b[:8], "little")
h = b[8:8 + n].decode()
old = "thinker.model.norm.weight"
assert old in h
b[8:8 + n] = h.replace(old, "thinker.model.norm.wrongo").encode()
open(p, "wb").write(b)
EOF
run --model "$work/m" "$demo"
check "missing tensor: exit 3" rc_is 3
check "missing tensor named" err_has "thinker.model.norm.weight"
bad_model; $py - "$work/m/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["thinker_config"]["text_config"]["intermediate_size"] += 8
json.dump(c, open(sys.argv[1], "w"))
EOF
run --model "$work/m" "$demo"
check "config/weights mismatch: exit 3" rc_is 3
check "mismatch names the tensor and shape" err_has "config.json implies"
# absurd sizes: refused against the checkpoint's tensor index before any weight is allocated
for edit in "text_config num_hidden_layers" "audio_config encoder_layers" "text_config vocab_size"; do
  bad_model; $py - "$work/m/config.json" $edit <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["thinker_config"][sys.argv[2]][sys.argv[3]] = 1000000 if sys.argv[3] != "vocab_size" else 2000000000
json.dump(c, open(sys.argv[1], "w"))
EOF
  run --model "$work/m" "$demo"
  set -- $edit
  check "absurd $2: exit 3" rc_is 3
  if [ "$2" = vocab_size ]; then
    check "absurd $2: named" err_has "config.json implies [2000000000,"
  else
    check "absurd $2: config.json and the key named" err_has "config.json: $1.$2 is 1000000"
  fi
done

# --- backends, and what a CPU run holds in memory ---
LD_DEBUG=files "$qasr" --model "$model" --backend cpu --max-new-tokens 4 "$demo" >"$work/out" 2>"$work/err"
echo $? >"$work/rc"
no_cuda_libs() { ! grep -qE "file=[^ ]*libcu(blas|blasLt|fft|dart)" "$work/err"; }
check "--backend cpu transcribes (LD_DEBUG run)" rc_is 0
check "--backend cpu maps no CUDA library (~140 MB of resident memory)" no_cuda_libs
if [ -f "$(dirname "$qasr")/libqasr_cuda.so" ]; then
  # the module loads with every symbol it takes from qasr resolved (RTLD_NOW), then finds a
  # device and transcribes, or finds none and says so
  run --model "$model" --backend cuda --max-new-tokens 4 "$demo"
  cuda_module_ok() { rc_is 0 || { rc_is 3 && err_has "no CUDA device found"; }; }
  check "--backend cuda loads libqasr_cuda.so" cuda_module_ok
fi
# A checkpoint without thinker.lm_head.weight: the bf16 path packs the head from the embedding
# table it reads in place from the file; the synthetic head equals the table, so the tokens must.
nohead=${model}_nohead
if [ -d "$nohead" ] && "$qasr" --model "$model" --precision bf16 --max-new-tokens 1 "$demo" >/dev/null 2>&1; then
  run --model "$model" --precision bf16 --json --ignore-eos --max-new-tokens 12 "$demo"
  cp "$work/out" "$work/head.jsonl"
  run --model "$nohead" --precision bf16 --json --ignore-eos --max-new-tokens 12 "$demo"
  same_tokens() {
    $py -c 'import json, sys; a, b = (json.loads(open(f).readline())["token_ids"] for f in sys.argv[1:]); assert len(a) == 12 and a == b, (a, b)' \
      "$work/head.jsonl" "$work/out"
  }
  check "bf16: tied head = stored head" same_tokens
fi

echo "$((checks - fails))/$checks checks passed"
[ $fails -eq 0 ] && [ $checks -gt 0 ]
