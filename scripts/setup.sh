#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install dependencies, build, and run the main job
# (qasr-batch over the bundled demo manifest with the bundled demo model), and score it; then
# word times and subtitles of the demo clips with the bundled demo aligner.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
echo "== build/qasr-batch manifests/demo.tsv --model tests/models/qasr-demo -o build/demo-results.jsonl --overwrite"
build/qasr-batch manifests/demo.tsv --model tests/models/qasr-demo -o build/demo-results.jsonl --overwrite
echo "== build/demo-results.jsonl"
cat build/demo-results.jsonl
echo "== scripts/score.py build/demo-results.jsonl --manifest manifests/demo.tsv"
/usr/bin/python3 scripts/score.py build/demo-results.jsonl --manifest manifests/demo.tsv
echo "== word times of two demo clips: build/qasr --aligner tests/models/qasr-demo-aligner --text TEXT --language L AUDIO"
grep -v '^#' manifests/demo.tsv | sed -n 2,3p | while IFS=$'\t' read -r path _ lang text; do
  echo "-- $path ($lang)"
  build/qasr --aligner tests/models/qasr-demo-aligner --text "$text" --language "$lang" "manifests/$path" < /dev/null
done
echo "== subtitles from word times: build/qasr-batch manifests/demo.tsv --model tests/models/qasr-demo --aligner tests/models/qasr-demo-aligner --format srt --output-dir build/demo-subs -o build/demo-aligned.jsonl --overwrite"
build/qasr-batch manifests/demo.tsv --model tests/models/qasr-demo --aligner tests/models/qasr-demo-aligner \
  --format srt --output-dir build/demo-subs -o build/demo-aligned.jsonl --overwrite
for f in build/demo-subs/test-00000.srt build/demo-subs/test-00001.srt; do echo "-- $f"; cat "$f"; done
