#!/usr/bin/env bash
# Run the libFuzzer harnesses of tests/fuzz (README "Testing").
#
#   tests/fuzz/run.sh [--build DIR] [--jobs N] [SECONDS] [HARNESS...]
#
# Configures and builds DIR (default build-fuzz: clang, -DQASR_FUZZ=ON, only the harnesses and
# the host files they reach), then runs each harness (default: all) for SECONDS (default 60),
# N at a time (default: the number of CPUs), on a fresh copy of its seeds and regressions in
# DIR/fuzz-work/<name>/corpus: nothing is written into the repository. Prints per harness the
# executions and the coverage reached (cov: edges, ft: features). Fails on any crash, failed
# property, sanitizer report, leak, timeout (10 s for one input) or out-of-memory (2 GB); the
# input is then saved as DIR/fuzz-work/<name>/crash-* (or leak-*, timeout-*, oom-*), and is
# reproduced with `DIR/tests/fuzz/fuzz_<name> FILE`. Once fixed, keep it as a regression:
# copy it into tests/fuzz/regressions/<name>/ (the unit test fuzz_replay_<name> runs it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
all=(utf8 jsonl config safetensors tokenizer manifest results result_line merge subtitles align_text align_repair
  cues)

build=$root/build-fuzz
jobs=$(nproc)
seconds=60
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) seconds=$1; shift ;;
    *) break ;;
  esac
done
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${all[@]}")
for h in "${harnesses[@]}"; do
  [ -f "$root/tests/fuzz/fuzz_$h.c" ] || { echo "run.sh: no harness '$h' (have: ${all[*]})" >&2; exit 2; }
done

start=$SECONDS
command -v clang >/dev/null || { echo "run.sh: clang is needed (scripts/deps.sh installs it)" >&2; exit 2; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DQASR_FUZZ=ON -DQASR_CUDA=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; exit 2; }
  mv "$build.configure.log" "$build/configure.log"
fi
targets=()
for h in "${harnesses[@]}"; do targets+=(--target "fuzz_$h"); done
if ! cmake --build "$build" -j"$(nproc)" "${targets[@]}" >"$build/fuzz-build.log" 2>&1; then
  cat "$build/fuzz-build.log" >&2
  exit 2
fi
echo "run.sh: built ${#harnesses[@]} harness(es) in $build in $((SECONDS - start)) s; ${seconds} s each, $jobs at a time"

work=$build/fuzz-work
rm -rf "$work"
mkdir -p "$work"
# The harnesses' scratch files (the parsers read files; results and merge fsync them) on a
# tmpfs where there is one, where a sync costs nothing; removed at the end, also after a crash.
scratch=$(mktemp -d /dev/shm/qasr-fuzz.XXXXXX 2>/dev/null || mktemp -d "$work/scratch.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM

# One harness: fresh corpus, run, one summary line; the exit status is libFuzzer's.
run_one() {
  local h=$1 dir=$work/$1
  mkdir -p "$dir/corpus" "$scratch/$h"
  cp "$root/tests/fuzz/corpus/$h"/* "$dir/corpus/"
  if [ -d "$root/tests/fuzz/regressions/$h" ] && ls "$root/tests/fuzz/regressions/$h"/* >/dev/null 2>&1; then
    cp "$root/tests/fuzz/regressions/$h"/* "$dir/corpus/"
  fi
  local rc=0
  # -close_fd_mask=3: the parsers' own messages stay out of the log (libFuzzer's and the
  # sanitizers' reports still go to it).
  (cd "$dir" && TMPDIR=$scratch/$h ASAN_OPTIONS=detect_leaks=1 "$build/tests/fuzz/fuzz_$h" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 -print_final_stats=1 \
    -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1) || rc=$?
  local runs cov
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  cov=$(grep -E '^#[0-9]+' "$dir/log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1)
  local corpus
  corpus=$(find "$dir/corpus" -type f | wc -l)
  if [ $rc -eq 0 ] && [ -n "$runs" ]; then
    printf '%-12s ok      %9s runs  %-22s corpus %s -> %s files\n' "$h" "$runs" "$cov" \
      "$(find "$root/tests/fuzz/corpus/$h" -type f | wc -l)" "$corpus"
  else
    local artifact
    artifact=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
      -o -name 'oom-*' -o -name 'slow-unit-*' \) | head -1)
    printf '%-12s FAILED  (libFuzzer exit %s) after %s runs  %s\n' "$h" "$rc" "${runs:-?}" "$cov"
    grep -E 'ERROR|property does not hold|runtime error|SUMMARY|Test unit written' "$dir/log" | head -8 | sed 's/^/    /'
    echo "    log: $dir/log"
    [ -n "$artifact" ] && echo "    input: $artifact (reproduce: $build/tests/fuzz/fuzz_$h $artifact;" \
      "once fixed: cp it to tests/fuzz/regressions/$h/)"
    return 1
  fi
}

for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  { if run_one "$h" >"$work/$h.summary" 2>&1; then echo 0; else echo 1; fi >"$work/$h.rc"; } &
done
wait
failed=0
for h in "${harnesses[@]}"; do
  cat "$work/$h.summary"
  [ "$(cat "$work/$h.rc")" = 0 ] || failed=1
done
echo "run.sh: $((SECONDS - start)) s in all"
[ $failed -eq 0 ] || { echo "run.sh: FAILED (see above)" >&2; exit 1; }
