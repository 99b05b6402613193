# Sourced by bench_cpu.sh and bench_batch.sh (after they set $root): the synthetic checkpoint and
# the espeak-ng speech clips they transcribe. Both are made once and kept in the work directory.

# bench_make_model DIR SIZE: a synthetic SIZE checkpoint at real dimensions (seed 1) in DIR.
bench_make_model() {
  local dir=$1 size=$2
  if [ ! -f "$dir/config.json" ]; then
    echo "making a synthetic $size checkpoint in $dir" >&2
    /usr/bin/python3 "$root/scripts/make_synthetic_model.py" "$dir" --size "$size" --seed 1 >&2
  fi
}

# What the clips say.
bench_sentences=(
  "The committee will meet again on Thursday to review the budget for the coming year."
  "Seven ships sailed into the harbour before the storm reached the northern coast."
  "Please remember to bring your passport, two photographs and the signed application form."
  "Researchers measured the temperature of the lake every morning for three months."
  "Our train was delayed by forty minutes because of a signal failure near the station."
  "She explained that the new software would be installed on every computer next week."
  "Fresh bread, cheese and a bottle of water were all we needed for the long walk."
  "The museum opens at nine o'clock and closes early on the first Monday of each month."
)

# bench_speak OUT SECONDS VOICE RATE TEXT: TEXT spoken by espeak-ng, as a 16 kHz mono 16-bit wav
# padded or trimmed to exactly SECONDS. The raw espeak output goes next to OUT (raw.wav).
bench_speak() {
  local out=$1 seconds=$2 voice=$3 rate=$4 text=$5
  local raw
  raw=$(dirname "$out")/raw.wav
  espeak-ng -v "$voice" -s "$rate" -w "$raw" "$text"
  sox -V1 "$raw" -r 16000 -c 1 -b 16 "$out" pad 0 "$seconds" trim 0 "$seconds"
}
