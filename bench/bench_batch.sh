#!/usr/bin/env bash
# qasr-batch throughput: a synthetic checkpoint at real dimensions and a manifest of espeak-ng
# clips of 2-20 s (mixed lengths, shuffled), 2 threads. Random weights never emit an end token,
# so every clip decodes up to its duration-scaled token limit (32 + 24 per second): output lengths
# vary with input length as real transcripts do. Four runs show what bucketing (longest first)
# and continuous batching (vs static batches) each bring. Prints audio seconds per second, files
# per second and peak RSS per run.
#
# usage: bench/bench_batch.sh [--size 0.6b|1.7b] [--clips 64] [--threads 2] [--work DIR]
#                             [--only-make: make the checkpoint and manifest, run nothing]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=0.6b clips=64 threads=2 work=$root/build/bench only_make=0
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --only-make) only_make=1; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
batch=$root/build/qasr-batch
model=$work/model-$size
mkdir -p "$work/mixed"
. "$root/bench/common.sh"
bench_make_model "$model" "$size"

sentences=("${bench_sentences[@]:0:6}") # clip i says sentences i .. i+3 of these six
manifest=$work/mixed-$clips.tsv
if [ ! -f "$manifest" ]; then
  printf 'path\tid\tduration\n' >"$manifest.tmp"
  for i in $(seq 0 $((clips - 1))); do
    secs=$(( 2 + (i * 7919) % 19 ))   # 2..20 s, spread over the manifest out of order
    f=$work/mixed/clip-$i.wav
    text=""
    for k in 0 1 2 3; do text="$text ${sentences[$(((i + k) % ${#sentences[@]}))]}"; done
    bench_speak "$f" "$secs" en-us $((140 + (i % 5) * 10)) "$text"
    printf '%s\tclip%03d\t%s\n' "$f" "$i" "$secs" >>"$manifest.tmp"
  done
  mv "$manifest.tmp" "$manifest"
fi

[ "$only_make" = 1 ] && exit 0
[ -x "$batch" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }

run() { # run LABEL qasr-batch-options...
  local label=$1; shift
  local out=$work/bench-$label.jsonl log=$work/bench-$label.log
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v "$batch" "$manifest" --model "$model" -o "$out" --overwrite -t "$threads" -q "$@" 2>"$log" || [ $? -eq 1 ]
  t1=$(date +%s.%N)
  /usr/bin/python3 - "$out" "$log" "$label" "$t0" "$t1" <<'EOF'
import json, re, sys
out, log, label, t0, t1 = sys.argv[1:6]
rows = [json.loads(l) for l in open(out)]
audio = sum(r["duration"] or 0 for r in rows)
tokens = sum(r["n_tokens"] for r in rows)
wall = float(t1) - float(t0)
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(log).read()).group(1))
print(f"{label:>22}: {len(rows)} files, {audio:.0f} s audio, {tokens} tokens in {wall:.1f} s -> "
      f"{audio / wall:.2f} s of audio/s, {len(rows) / wall:.2f} files/s, {tokens / wall:.0f} tokens/s, "
      f"peak RSS {rss / 1048576:.2f} GB")
EOF
}

echo "qasr-batch benchmark: $size synthetic checkpoint, $clips clips of 2-20 s, $threads threads, $(nproc) cores"
run "bucketed+continuous"
run "manifest-order+continuous" --no-bucketing
run "bucketed+static" --static-batching
run "manifest-order+static" --no-bucketing --static-batching
