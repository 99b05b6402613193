#!/usr/bin/env bash
# CPU throughput benchmark: a synthetic checkpoint at real dimensions and espeak-ng speech clips
# of a fixed length, transcribed one clip alone and then N clips in one batched call, each with
# exactly --steps generated tokens per clip (--ignore-eos: random weights never stop).
# Prints seconds of audio per second, prefill and decode tokens/s, peak RSS, and the engine's
# per-stage breakdown (mel, conv stem, encoder layers, prefill, decode, LM head: ms, GFLOP/s).
#
# Names the machine first (CPU model, the ISA extensions that decide the products, the threads
# qasr chose and why), and after each run's figures the precision plan it ran (--precision auto:
# per matrix shape and row count fp32 or bf16, as measured on this machine). --contention: the batch again with a busy loop beside it (another job
# taking a core, as on a shared node), and its throughput as a share of the quiet one.
#
# usage: bench/bench_cpu.sh [--size 0.6b|1.7b] [--clips 32] [--seconds 10] [--steps 32]
#                           [--threads N] [--contention] [--work DIR] [-- extra qasr options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=0.6b clips=32 seconds=10 steps=32 threads=2 work=$root/build/bench contention=0
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --contention) contention=1; shift ;;
    --work) work=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
extra=("$@") # options after --, for every run
qasr=$root/build/qasr
[ -x "$qasr" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
model=$work/model-$size
mkdir -p "$work/clips"
. "$root/bench/common.sh"
bench_make_model "$model" "$size"

# Speech clips: different sentences and voices, padded/trimmed to exactly $seconds at 16 kHz.
voices=(en-us en-gb en-us+f3 en-gb+m3 en-us+m7 en-gb+f4)
files=()
for i in $(seq 0 $((clips - 1))); do
  f=$work/clips/clip${seconds}s-$i.wav
  if [ ! -f "$f" ]; then
    text="${bench_sentences[$((i % ${#bench_sentences[@]}))]} ${bench_sentences[$(((i + 3) % ${#bench_sentences[@]}))]}"
    bench_speak "$f" "$seconds" "${voices[$((i % ${#voices[@]}))]}" $((140 + (i % 5) * 10)) "$text"
  fi
  files+=("$f")
done

run() { # run LABEL FILES...
  local label=$1; shift
  local log=$work/$label.log
  /usr/bin/time -v "$qasr" --model "$model" --threads "$threads" --ignore-eos --max-new-tokens "$steps" \
    -v "${extra[@]}" "$@" >/dev/null 2>"$log" || { cat "$log" >&2; exit 1; }
  /usr/bin/python3 - "$log" "$label" <<'EOF'
import re, sys
log = open(sys.argv[1]).read()
def num(pattern):
    return [float(x) for x in re.search(pattern, log).groups()]
load, = num(r"model loaded in ([\d.]+) s")
n, audio, wall, rtx = num(r"(\d+) files, ([\d.]+) s of audio in ([\d.]+) s \(([\d.]+)x")
mel, enc, pre, ptok, dec, dtok, steps = num(
    r"mel ([\d.]+) s, encoder ([\d.]+) s, prefill ([\d.]+) s \((\d+) tokens\), decode ([\d.]+) s \((\d+) tokens\), (\d+) decoder steps")
rss, = num(r"Maximum resident set size \(kbytes\): (\d+)")
m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", log)
process = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
how = re.search(r"model loaded in [\d.]+ s \((.*)\)", log).group(1)
stages = re.search(r"stages \(ms, GFLOP/s\): (.*)", log).group(1)
print(f"{sys.argv[2]:>10}: {int(n)} x {audio / n:.1f} s audio: {wall:.2f} s -> {audio / wall:.2f} s of audio per s | "
      f"mel {mel:.2f} s, encoder {enc:.2f} s ({audio / max(enc, 1e-9):.1f} s audio/s), "
      f"prefill {pre:.2f} s ({ptok / max(pre, 1e-9):.0f} tok/s), decode {dec:.2f} s ({dtok / max(dec, 1e-9):.1f} tok/s, "
      f"{int(steps)} steps) | load {load:.2f} s, whole process {process:.2f} s, peak RSS {rss / 1048576:.2f} GiB | {how}")
print(f"{'':>10}  stages, ms (GFLOP/s): {stages}")
plan = re.search(r"qasr: (precision plan .*(?:\n  +\d.*)*)", log)
if plan:
    print(f"{'':>10}  " + plan.group(1).replace("\n", f"\n{'':>10}  "))
EOF
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
isa=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx2|avx512f|avx512_bf16|avx512_fp16|amx_tile|amx_bf16' | tr '\n' ' ')
echo "qasr CPU benchmark: $size synthetic checkpoint, $threads threads, $steps tokens per clip"
echo "machine: $cpu; $(nproc) CPUs usable of $(getconf _NPROCESSORS_ONLN); ISA: ${isa:-no avx2/avx512/amx}"
echo "  AMX usable: $(grep -m1 '^flags' /proc/cpuinfo | grep -qw amx_tile && echo yes || echo no)"
run single "${files[0]}"
run batch "${files[@]}"
if [ "$contention" = 1 ]; then
  # another process busy on one core for the whole run: a shell loop, as a neighbour job would be
  ( while :; do :; done ) &
  busy=$!
  trap 'kill $busy 2>/dev/null' EXIT
  run busy "${files[@]}"
  kill $busy
  /usr/bin/python3 - "$work/batch.log" "$work/busy.log" <<'EOF'
import re, sys
def rate(path):
    n, audio, wall = re.search(r"(\d+) files, ([\d.]+) s of audio in ([\d.]+) s", open(path).read()).groups()
    return float(audio) / float(wall)
quiet, busy = rate(sys.argv[1]), rate(sys.argv[2])
print(f"contention: {busy:.2f} s of audio per s with a core busy, {100 * busy / quiet:.0f}% of the quiet {quiet:.2f}")
EOF
fi
