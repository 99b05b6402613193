#!/usr/bin/env bash
# `pip install ./python` as README "Python" says, into a fresh virtual environment (numpy from
# Debian's python3-numpy through --system-site-packages; --no-build-isolation --no-index: the
# build uses Debian's setuptools and wheel and nothing is downloaded), a fresh CMake build of the
# library, then README's ten-line evaluation, taken from README.md as it stands, run verbatim
# from the repository root: it must transcribe every demo clip, and its WER must be score.py's
# (--normalizer plain) on qasr-batch's results for the same manifest.
#
# usage: test_pip_install.sh PYTHON QASR_BATCH WORK_DIR
set -euo pipefail
py=$1 batch=$2 work=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$work"
mkdir -p "$work"
"$py" -m venv --system-site-packages "$work/venv"
start=$(date +%s)
QASR_BUILD_DIR="$work/cmake" QASR_BUILD_JOBS=2 "$work/venv/bin/pip" install --quiet --no-build-isolation \
  --no-index "$root/python" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
echo "pip install: $(( $(date +%s) - start )) s"

# The block after the "<!-- python-eval -->" marker in README.md.
"$py" - "$root/README.md" >"$work/eval.py" <<'PY'
import re, sys
m = re.search(r"<!-- python-eval -->\s*```python\n(.*?)```", open(sys.argv[1], encoding="utf-8").read(), re.S)
sys.exit("README.md has no <!-- python-eval --> block") if not m else print(m.group(1), end="")
PY
echo "README's evaluation: $(grep -cv '^\s*$' "$work/eval.py") lines"
out=$(cd "$root" && env -u PYTHONPATH -u QASR_LIBRARY "$work/venv/bin/python" "$work/eval.py")
echo "$out"
n=$(grep -cv '^\s*#\|^path' "$root/manifests/demo.tsv")
[[ $out =~ WER\ ([0-9.]+)%,\ $n/$n\ files ]] || { echo "FAIL: expected 'WER x%, $n/$n files'"; exit 1; }
wer=${BASH_REMATCH[1]}

"$batch" "$root/manifests/demo.tsv" --model "$root/tests/models/qasr-demo" -o "$work/c.jsonl" -q
ref=$("$py" "$root/scripts/score.py" "$work/c.jsonl" --manifest "$root/manifests/demo.tsv" --normalizer plain \
      | sed -n 's/.*corpus *WER *\([0-9.]*\)%.*/\1/p')
[[ $wer == "$ref" ]] || { echo "FAIL: the README's WER $wer% is not score.py's $ref%"; exit 1; }
echo "OK: WER $wer% = score.py's on qasr-batch's results"
