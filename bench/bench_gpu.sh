#!/usr/bin/env bash
# GPU benchmark, one command on a machine with an NVIDIA GPU, offline:
#   bench/bench_gpu.sh [--size 0.6b|1.7b] [--device N] [--files 1024] [--batches "32 128 default"]
#                      [--model DIR] [--bundle FILE|DIR | --build DIR] [--out DIR]
# The measuring steps of scripts/gpu-check.sh, without its tests and sanitizers and with a
# budget of an hour: nvidia-smi's device line, then
#   1. per-op timings with achieved TFLOP/s and TB/s (bench_ops --backend cuda) at 64 and 256
#      decode rows,
#   2. end-to-end qasr-batch throughput (seconds of audio per second, model load excluded;
#      files/s; peak GPU memory) at each batch size, on a synthetic checkpoint at real dimensions
#      (or --model DIR, e.g. a downloaded Qwen3-ASR-0.6B) over espeak-ng clips of 2-20 s.
# The binaries and clips come from a bundle of scripts/gpu-bundle.sh (gpu-bundle.tar.xz in the
# repository root is found by itself), or a build; see scripts/gpu-check.sh --help.
# Compare the figures with bench/ROOFLINE.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --clips) args+=(--files "$2"); shift 2 ;;  # the older name of --files
    *) args+=("$1"); shift ;;
  esac
done
exec "$root/scripts/gpu-check.sh" --steps device,ops,e2e --budget 3600 --out "$root/build-gpu/bench" "${args[@]}"
