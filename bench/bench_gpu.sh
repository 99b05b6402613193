#!/usr/bin/env bash
# GPU benchmark kit, one command on a machine with an NVIDIA GPU and the CUDA toolkit:
#   bench/bench_gpu.sh [--size 0.6b|1.7b] [--device N] [--clips 256]
# Builds qasr for the local GPU, makes a synthetic checkpoint at real dimensions and a manifest of
# LibriSpeech-like clips (espeak-ng, 2-20 s), then prints
#   1. per-op timings with achieved TFLOP/s and GB/s (bench_ops) at two batch sizes,
#   2. end-to-end qasr-batch throughput (RTFx = seconds of audio per second) and GPU memory use.
# Compare the figures with bench/ROOFLINE.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=0.6b device=0 clips=256 work=$root/build-gpu/bench
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
command -v nvidia-smi >/dev/null || { echo "bench_gpu.sh: no nvidia-smi: this needs a GPU machine" >&2; exit 77; }
"$root/scripts/deps.sh"
"$root/scripts/build.sh" build-gpu -DQASR_CUDA=ON -DQASR_CUDA_ARCHS=native
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader -i "$device"

echo "== per-op timings"
for rows in 64 256; do
  "$root/build-gpu/bench_ops" --backend cuda --size "$size" --rows "$rows" --ctx 240 --reps 20
done

echo "== end to end"
# Reuse the mixed-length manifest and synthetic checkpoint of the CPU batch benchmark.
"$root/bench/bench_batch.sh" --size "$size" --clips "$clips" --work "$work" --only-make
manifest=$work/mixed-$clips.tsv
( while sleep 1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$device"; done ) >"$work/mem.log" &
poll=$!
t0=$(date +%s.%N)
"$root/build-gpu/qasr-batch" "$manifest" --model "$work/model-$size" --backend cuda --device "$device" \
  -o "$work/gpu.jsonl" --overwrite --batch 256 --readers 8 -q
t1=$(date +%s.%N)
kill $poll
/usr/bin/python3 - "$work/gpu.jsonl" "$t0" "$t1" "$work/mem.log" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
wall = float(sys.argv[3]) - float(sys.argv[2])
audio = sum(r["duration"] or 0 for r in rows)
mem = max((int(x) for x in open(sys.argv[4]) if x.strip().isdigit()), default=0)
print(f"{len(rows)} files, {audio:.0f} s of audio in {wall:.1f} s: RTFx {audio / wall:.0f}, "
      f"{len(rows) / wall:.1f} files/s, peak GPU memory {mem} MiB")
EOF
