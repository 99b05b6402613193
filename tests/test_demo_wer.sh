#!/usr/bin/env bash
# The evaluation recipe end to end with the bundled demo model (tests/models/qasr-demo), on the
# held-out synthetic test split (400 entries, made by the demo_corpus fixture with
# make_corpus.py: sentences never in training, every fourth one in a voice never in training):
# qasr-batch on the CPU, on the fp32 and (where the CPU has it) the bf16 path -> score.py with
# the Whisper normaliser -> fail above the bounds or when the two paths' WERs differ by more
# than 0.5 points; then the training script's own PyTorch inference on the same files must
# agree with the fp32 engine.
#
# usage: test_demo_wer.sh QASR_BATCH PYTHON CORPUS_DIR WORK_DIR
#
# Bounds below: the issues' (WER <= 5%, PyTorch agreement >= 98%, bf16 within 0.5 points). Measured values are in
# README "The demo model" (WER 3.20%, CER 2.36%, language 99.8%, agreement 100%).
set -euo pipefail
batch=$1 py=$2 corpus=$3 work=$4
root=$(cd "$(dirname "$0")/.." && pwd)
model="$root/tests/models/qasr-demo"
WER_BOUND=5.0        # percent, corpus level
LANG_BOUND=98.0      # percent of entries with the right language
AGREEMENT_BOUND=98.0 # percent of entries where PyTorch and the engine give the same text

BF16_DELTA=0.5       # WER points the bf16 path may differ from the fp32 path (the issue's)

rm -rf "$work"
mkdir -p "$work"
precisions=(fp32)
if "${batch%-batch}" --model "$model" --precision bf16 --list-languages >/dev/null 2>"$work/bf16.err"; then
  precisions+=(bf16)
else
  echo "SKIPPED the bf16 half: $(cat "$work/bf16.err")"
fi
rc=0
for p in "${precisions[@]}"; do
  brc=0
  "$batch" "$corpus/test.tsv" --model "$model" -o "$work/results-$p.jsonl" --overwrite -t 2 -q \
    --precision "$p" || brc=$?
  if [ $brc -ne 0 ]; then
    echo "FAIL: qasr-batch --precision $p exited $brc"
    exit 1
  fi
  echo "--- --precision $p"
  "$py" "$root/scripts/score.py" "$work/results-$p.jsonl" --manifest "$corpus/test.tsv" \
    --normalizer whisper --group-by subset,ref_language --rows 10 --json "$work/report-$p.json" \
    --max-wer $WER_BOUND --min-language-accuracy $LANG_BOUND || rc=$?
done
echo "bounds: WER <= $WER_BOUND%, language >= $LANG_BOUND%"
if [ ${#precisions[@]} -eq 2 ]; then
  "$py" - "$work/report-fp32.json" "$work/report-bf16.json" $BF16_DELTA <<'PY' || rc=1
import json, sys
fp32, bf16 = (json.load(open(f))["total"]["wer"] for f in sys.argv[1:3])
ok = abs(bf16 - fp32) <= float(sys.argv[3])
print(f"WER fp32 {fp32:.2f}%, bf16 {bf16:.2f}%: {'within' if ok else 'FAIL: more than'} {sys.argv[3]} points")
sys.exit(0 if ok else 1)
PY
fi
"$py" "$root/scripts/train_demo_model.py" infer --model "$model" --manifest "$corpus/test.tsv" \
  -o "$work/torch.jsonl" --compare "$work/results-fp32.jsonl" --min-agreement $AGREEMENT_BOUND || rc=1
exit $rc
