#!/usr/bin/env bash
# The host side of a GPU run: how many seconds of audio per second qasr-batch's reader pool
# (decode, downmix, resample to 16 kHz, condition, cut: build/bench_readers) delivers per thread,
# for the formats users bring, and so how many cores keep one GPU fed at a given rate.
# Files: 8 s of the demo clips' speech (LibriSpeech test-clean's utterances average ~7.4 s, so
# the per-file costs of opening and setting up a resampler count as they would), written by
# sox/ffmpeg in each format, decoded --minutes worth of times.
#
# usage: bench/bench_readers.sh [--threads N] [--minutes M] [--rate S] [--work DIR]
#   --threads N   the most reader threads to try (default: the CPUs usable)
#   --minutes M   audio decoded per format and thread count (default 10)
#   --rate S      seconds of audio per second the GPU consumes (default 5000: issue target, 0.6B on an H100)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
threads=$(nproc) minutes=10 rate=5000 work=$root/build/bench/readers
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
bin=$root/build/bench_readers
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
mkdir -p "$work"
src=$work/speech.wav
if [ ! -f "$src" ]; then  # 8 s of the demo clips' speech at 16 kHz mono
  parts=()
  for c in $(ls "$root"/tests/audio/heldout-* | head -4); do  # their rates differ: each to 16 kHz first
    parts+=("$work/part${#parts[@]}.wav")
    sox -V1 "$c" -r 16000 -c 1 -b 16 "${parts[-1]}"
  done
  sox -V1 "${parts[@]}" "$work/joined.wav"
  sox -V1 "$work/joined.wav" "$src" repeat 4 trim 0 8
fi
repeat=$((minutes * 60 / 8))
# name, file, how it is made from the 16 kHz speech
make() {
  local out=$work/$2
  [ -f "$out" ] && return 0
  case $3 in
    sox) sox -V1 "$src" "${@:4}" "$out" ;;
    ffmpeg) ffmpeg -loglevel error -y -i "$src" "${@:4}" "$out" ;;
  esac
}
formats=(
  "wav-16k-mono|w16.wav|sox|-r 16000 -c 1 -b 16"
  "flac-16k-mono|f16.flac|sox|-r 16000 -c 1"
  "wav-48k-stereo|w48.wav|sox|-r 48000 -c 2 -b 16"
  "flac-44k-stereo|f44.flac|sox|-r 44100 -c 2"
  "mp3-44k-stereo|m44.mp3|ffmpeg|-ar 44100 -ac 2 -c:a libmp3lame -b:a 128k"
  "ogg-48k-stereo|o48.ogg|sox|-r 48000 -c 2"
  "m4a-44k-stereo|a44.m4a|ffmpeg|-ar 44100 -ac 2 -c:a aac -b:a 128k"
)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "machine: $cpu; $(nproc) CPUs usable; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-16s %8s %18s %18s %10s\n' format threads "audio s per s" "per thread" "cores@$rate"
for f in "${formats[@]}"; do
  IFS='|' read -r name file maker opts <<<"$f"
  # shellcheck disable=SC2086
  if ! make "$name" "$file" "$maker" $opts 2>/dev/null; then
    printf '%-16s  skipped: cannot make it here (%s)\n' "$name" "$maker"
    continue
  fi
  for t in $(seq 1 "$threads"); do
    line=$("$bin" --threads "$t" --repeat "$repeat" "$work/$file")
    total=$(sed -E 's/.*: ([0-9]+) s of audio per second.*/\1/' <<<"$line")
    per=$(sed -E 's/.*, ([0-9]+) per thread.*/\1/' <<<"$line")
    printf '%-16s %8d %18d %18d %10.1f\n' "$name" "$t" "$total" "$per" "$(awk -v r="$rate" -v p="$per" 'BEGIN { print r / p }')"
  done
done
echo "(cores@$rate: reader threads that deliver $rate s of audio per second at the per-thread rate measured)"
