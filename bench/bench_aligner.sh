#!/usr/bin/env bash
# The forced aligner's cost next to transcription's (issue: under 15% of transcription time), on
# synthetic checkpoints at the published dimensions (Qwen3-ASR-0.6B and -1.7B, and
# Qwen3-ForcedAligner-0.6B) and espeak-ng speech clips of a fixed length.
#   transcription: qasr on all clips in one batched call, --steps tokens per clip (default 12 per
#                  second of audio + 8, about the fastest speech; random weights never stop);
#   alignment:     qasr-batch --align-reference on the same clips with their real texts (the
#                  words a transcript of them would have), the aligner time it reports.
# Both exclude loading. Prints the machine, each time and the ratio.
#
# usage: bench/bench_aligner.sh [--size 0.6b|1.7b] [--clips 8] [--seconds 10] [--steps N]
#                               [--threads N] [--work DIR] [-- extra options for both]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=0.6b clips=8 seconds=10 steps="" threads=2 work=$root/build/bench
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
extra=("$@")
steps=${steps:-$((12 * seconds + 8))}
[ -x "$root/build/qasr" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
. "$root/bench/common.sh"
model=$work/model-$size aligner=$work/aligner-0.6b
bench_make_model "$model" "$size"
if [ ! -f "$aligner/config.json" ]; then
  echo "making a synthetic aligner in $aligner" >&2
  /usr/bin/python3 "$root/scripts/make_synthetic_model.py" "$aligner" --size 0.6b --aligner --seed 1 >&2
fi

mkdir -p "$work/clips"
voices=(en-us en-gb en-us+f3 en-gb+m3 en-us+m7 en-gb+f4)
manifest=$work/aligner-clips.tsv
printf 'path\ttext\n' > "$manifest"
files=()
for i in $(seq 0 $((clips - 1))); do
  f=$work/clips/align${seconds}s-$i.wav
  text="${bench_sentences[$((i % ${#bench_sentences[@]}))]} ${bench_sentences[$(((i + 3) % ${#bench_sentences[@]}))]}"
  [ -f "$f" ] || bench_speak "$f" "$seconds" "${voices[$((i % ${#voices[@]}))]}" $((140 + (i % 5) * 10)) "$text"
  printf '%s\t%s\n' "$f" "$text" >> "$manifest"
  files+=("$f")
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "qasr aligner benchmark: ASR $size + aligner 0.6b (synthetic), $clips x $seconds s clips, $threads threads"
echo "machine: $cpu; $(nproc) CPUs usable; load average $(cut -d' ' -f1-3 /proc/loadavg)"
t_log=$work/aligner-transcribe.log a_log=$work/aligner-align.log
"$root/build/qasr" --model "$model" --threads "$threads" --ignore-eos --max-new-tokens "$steps" -v "${extra[@]}" \
  "${files[@]}" >/dev/null 2>"$t_log" || { cat "$t_log" >&2; exit 1; }
"$root/build/qasr-batch" "$manifest" --aligner "$aligner" --align-reference --threads "$threads" "${extra[@]}" \
  -o "$work/aligner-words.jsonl" --overwrite 2>"$a_log" || { cat "$a_log" >&2; exit 1; }
/usr/bin/python3 - "$t_log" "$a_log" "$work/aligner-words.jsonl" "$steps" <<'PY'
import json, re, sys
t = open(sys.argv[1]).read()
a = open(sys.argv[2]).read()
n, audio, wall = (float(x) for x in re.search(r"(\d+) files, ([\d.]+) s of audio in ([\d.]+) s", t).groups())
how = re.search(r"model loaded in [\d.]+ s \((.*)\)", t).group(1)
aligned, t_align = (float(x) for x in re.search(r"word times: ([\d.]+) s of audio aligned in ([\d.]+) s", a).groups())
lines = [json.loads(l) for l in open(sys.argv[3])]
words = sum(len(l["words"] or []) for l in lines)
print(f"transcription: {int(n)} clips, {audio:.1f} s of audio, {sys.argv[4]} tokens each: {wall:.2f} s ({audio / wall:.2f} s of audio per s) | {how}")
print(f"alignment:     {len(lines)} clips, {words} words: {t_align:.2f} s ({aligned / t_align:.2f} s of audio per s)")
print(f"aligner / transcription: {100 * t_align / wall:.1f}% (target: under 15%)")
PY
