#!/usr/bin/env bash
# One command for a GPU machine: checks the CUDA backend on the GPU and measures it, within a
# time budget, and prints one summary table. Needs only the NVIDIA driver, the CUDA toolkit
# (compute-sanitizer for the sanitizer step) and a Python 3 with numpy: no network, no packages.
#
#   scripts/gpu-check.sh [--bundle FILE|DIR] [--out DIR] [--budget SECONDS]
#
# The binaries come from a bundle made by scripts/gpu-bundle.sh on a Debian build machine
# (default: gpu-bundle.tar.xz or gpu-bundle/ in the repository root), or --build DIR (an existing
# build), or else are built here into build-gpu/build (which needs libsndfile, soxr, FFTW, cJSON,
# utf8proc and oneDNN with their headers: without them the script says which are missing and
# exits 3).
#
# Steps, in this order; each is timed, and one whose estimate no longer fits in the budget is
# skipped and named in the table (a running step is cut at the budget):
#   kit       unpack the bundle; every file present; every library the binaries need resolves
#             (from the bundle's lib/, the system, or the CUDA toolkit); the bundled qasr
#             transcribes a held-out clip on the CPU
#   device    nvidia-smi's line for the device; the CUDA module loads and creates the backend
#   tests     the ctest "gpu" tests: the kernel tests linked to the real kernels
#             (test_kernels_*_gpu: each kernel against the CPU backend), aligner_cuda_gpu (a tiny
#             synthetic forced aligner against the CPU backend), cuda_model_gpu (a tiny
#             synthetic model, every stage against the CPU backend) and demo_cuda_gpu (the demo
#             model's transcripts of 24 held-out clips, GPU = CPU)
#   constants bench/gpu_constants: what the performance model assumes (HBM bandwidth, cuBLAS bf16
#             rates at large and 64-row shapes, launch, sync and copy latencies, PCIe rates),
#             measured; on an H100 or H200 also OUT/gpu_constants.measured.tsv, the model's
#             table with the measured rows (bench/gpu_model.py --constants FILE)
#   ops       bench_ops --backend cuda at 0.6B shapes, 64 and 256 decode rows: time per op,
#             achieved TFLOP/s and TB/s (expected: bench/ROOFLINE.md)
#   e2e       a synthetic checkpoint at real dimensions (--size, made here with numpy, kept in
#             the work directory), then qasr-batch over the bundle's clips looped to --files
#             entries at each --batches size: seconds of audio per second (model load
#             excluded), files/s, peak GPU memory (nvidia-smi, every 200 ms)
#   sanitize  compute-sanitizer memcheck, racecheck, synccheck and initcheck on small runs: the
#             demo model on 2 clips (qasr --backend cuda) and the kernel tests; each tool gets at
#             most 90 s and a fair share of what is left
#
# Options:
#   --bundle FILE|DIR  a gpu-bundle.tar.xz (unpacked into the work directory) or an unpacked one
#   --build DIR        use this build directory's binaries (qasr, libqasr_cuda.so, ...) instead
#   --from-source      ignore bundles and build here
#   --out DIR          logs, outputs and summary.txt (default: WORK/check)
#   --work DIR         unpacked bundle, synthetic checkpoints (default: build-gpu/)
#   --budget SECONDS   total time (default 480)
#   --steps LIST       comma-separated subset of kit,device,tests,constants,ops,e2e,sanitize (default all;
#                      kit always runs)
#   --device N         CUDA device (default 0)
#   --size 0.6b|1.7b   the synthetic checkpoint of the e2e step (default 0.6b)
#   --model DIR        the e2e step transcribes with this checkpoint (e.g. a downloaded
#                      Qwen3-ASR-0.6B) instead of making a synthetic one
#   --files N          manifest entries of each e2e run (default 1024)
#   --batches "B ..."  qasr-batch --batch sizes of the e2e step; "default": qasr-batch's own
#                      choice from device memory, with its default readers; B+sync: the same with
#                      --sync-steps (each step's tokens read before the next is launched), to
#                      measure what launching ahead gains (default "32 128 default 32+sync")
#   --tests REGEX      run only the gpu tests whose names match (grep -E)
#   --list-tests       print the names of the gpu tests run by the tests step and exit
# The Python is $PYTHON, else /usr/bin/python3 or the first python3 on PATH that has numpy; the
# CUDA toolkit is $CUDA_HOME, else nvcc's, else /usr/local/cuda.
#
# Exit status: 0 every step that ran passed, with a device; 1 a step failed; 2 usage error;
# 3 no bundle and the machine cannot build (missing libraries named); 77 no CUDA device: the
# steps that need none passed and the GPU steps say "no device" (what a machine without a GPU,
# or CI, gets). Results in the table: ok or passed; FAILED; timeout (a test or run that did not
# end within its own limit: a failure); cut (stopped at the budget: the figures are those of what
# finished; not a failure); skipped (the budget: not a failure); no device.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/gpu_common.sh"

bundle="" build="" from_source=0 out="" work=$root/build-gpu budget=480 steps=all device=0 size=0.6b
files=1024 batches="32 128 default 32+sync" e2e_model="" tests_re=.
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
list_tests() { (cd "$root/tests/cuda" && ls test_kernels_*.c | sed 's/\.c$/_gpu/'); echo cuda_model_gpu; echo demo_cuda_gpu; echo aligner_cuda_gpu; }
while [ $# -gt 0 ]; do
  case $1 in
    --bundle) bundle=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --from-source) from_source=1; shift ;;
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --model) e2e_model=$2; shift 2 ;;
    --tests) tests_re=$2; shift 2 ;;
    --list-tests) list_tests; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $budget in ''|*[!0-9]*) echo "gpu-check.sh: --budget takes whole seconds" >&2; exit 2 ;; esac
case $files in ''|*[!0-9]*|0) echo "gpu-check.sh: --files takes a positive number" >&2; exit 2 ;; esac
case $size in 0.6b|1.7b) ;; *) echo "gpu-check.sh: --size 0.6b or 1.7b" >&2; exit 2 ;; esac
if [ -n "$e2e_model" ]; then
  [ -f "$e2e_model/config.json" ] || { echo "gpu-check.sh: --model $e2e_model: no config.json there" >&2; exit 2; }
  e2e_model=$(cd "$e2e_model" && pwd)
fi
for s in ${steps//,/ }; do
  case $s in all|kit|device|tests|constants|ops|e2e|sanitize) ;; *) echo "gpu-check.sh: unknown step '$s' in --steps" >&2; exit 2 ;; esac
done
mkdir -p "$work" || exit 2
work=$(cd "$work" && pwd)
out=${out:-$work/check}
# the output directory is emptied: only one that gpu-check made, or a new or empty one
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/.gpu-check" ]; then
  echo "gpu-check.sh: --out $out holds other files: give a new directory" >&2
  exit 2
fi
rm -rf "$out"
mkdir -p "$out" || exit 2
touch "$out/.gpu-check"
out=$(cd "$out" && pwd)

# A Python 3 with numpy: $PYTHON, else Debian's, else the first on PATH.
python=""
for p in "${PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$p" ] && "$p" -c 'import numpy' 2>/dev/null && { python=$(command -v "$p"); break; }
done

# ---------------------------------------------------------------- bookkeeping
t_begin=$(date +%s.%N)
now() { date +%s.%N; }
elapsed() { awk -v a="$t_begin" -v b="$(now)" 'BEGIN { printf "%d", b - a }'; }
left() { echo $((budget - $(elapsed))); }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
want() { [ "$steps" = all ] || [[ ",$steps," == *",$1,"* ]]; }
rows_step=() rows_result=() rows_figure=() rows_secs=()
failures=0 no_device_rows=0
row() { # row STEP RESULT FIGURE SECONDS
  rows_step+=("$1") rows_result+=("$2") rows_figure+=("$3") rows_secs+=("$4")
  case $2 in FAILED*|timeout) failures=$((failures + 1)) ;; "no device") no_device_rows=$((no_device_rows + 1)) ;; esac
  printf '   -> %s: %s%s (%s s)\n' "$1" "$2" "${3:+, $3}" "$4"
}
# fits STEP ESTIMATE: true if ESTIMATE seconds fit in what is left, else a "skipped" row
fits() {
  local l
  l=$(left)
  [ "$2" -le "$l" ] && return 0
  row "$1" skipped "budget: needs ~$2 s, $((l > 0 ? l : 0)) s left" 0.0
  return 1
}
# cap SECONDS: SECONDS or what is left of the budget less the 15 s a stopped command may take
# to end, whichever is less (at least 1)
cap() { local l; l=$(($(left) - 15)); [ "$1" -lt "$l" ] && echo "$1" || echo $((l > 1 ? l : 1)); }
# run_logged LOG SECONDS CMD...: CMD with a time limit (TERM, then KILL 15 s later), output to LOG
run_logged() {
  local log=$1 secs=$2
  shift 2
  echo "\$ $*" >"$log"
  timeout -k 15 "$secs" "$@" >>"$log" 2>&1
}
join_by() { local sep=$1 r="" x; shift; for x in "$@"; do r=${r:+$r$sep}$x; done; echo "${r:-nothing}"; }
tail_log() { echo "   --- last lines of $1"; tail -n "${2:-25}" "$1" | sed 's/^/   | /'; }
header() { echo; echo "== $* ($(elapsed) s of $budget)"; }

echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n), budget $budget s, logs in $out"
echo "gpu-check: python: ${python:-none with numpy}"

# ---------------------------------------------------------------- kit
header "kit"
t=$(now)
kit="" kit_kind="" kit_ok=1
if [ -z "$bundle" ] && [ -z "$build" ] && [ $from_source = 0 ]; then
  if [ -f "$root/gpu-bundle.tar.xz" ]; then bundle=$root/gpu-bundle.tar.xz
  elif [ -d "$root/gpu-bundle/bin" ]; then bundle=$root/gpu-bundle
  fi
fi
if [ -n "$bundle" ]; then
  if [ -f "$bundle" ]; then
    echo "unpacking $bundle"
    rm -rf "$work/kit" && mkdir -p "$work/kit"
    # xz through tar, or Python's tarfile where there is no xz program
    if command -v xz >/dev/null; then
      tar -C "$work/kit" -xJf "$bundle" 2>"$out/unpack.log"
    else
      "${python:-python3}" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle" "$work/kit" 2>"$out/unpack.log"
    fi
    if [ $? != 0 ]; then
      tail_log "$out/unpack.log"
      row kit FAILED "cannot unpack $bundle" "$(since "$t")"
      kit_ok=0
    fi
    kit=$work/kit/gpu-bundle
  elif [ -d "$bundle" ]; then
    kit=$(cd "$bundle" && pwd)
  else
    echo "gpu-check.sh: no bundle at $bundle" >&2
    exit 2
  fi
  kit_kind=bundle
elif [ -n "$build" ]; then
  build=$(cd "$build" && pwd) || exit 2
  kit_kind=build
else
  # Build here: only possible with the libraries the host code links (scripts/deps.sh installs
  # them on Debian); a GPU machine without them needs a bundle.
  missing=()
  for m in sndfile soxr fftw3f libcjson libutf8proc; do
    pkg-config --exists "$m" 2>/dev/null || missing+=("$m")
  done
  ldconfig -p 2>/dev/null | grep 'libdnnl\.so' >/dev/null || compgen -G "/usr/local/lib*/libdnnl.so" >/dev/null || missing+=(oneDNN)
  command -v cmake >/dev/null || missing+=(cmake)
  gpu_tool nvcc >/dev/null || missing+=(nvcc)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "gpu-check: no bundle (gpu-bundle.tar.xz) here, and this machine cannot build qasr: it lacks ${missing[*]}."
    echo "gpu-check: make a bundle on a Debian build machine (scripts/setup.sh, then scripts/gpu-bundle.sh),"
    echo "gpu-check: copy gpu-bundle.tar.xz into this checkout's root and run scripts/gpu-check.sh again."
    exit 3
  fi
  build=$work/build
  # device code for this machine's GPU; the defaults (sm_80, sm_90) where none answers
  archs=()
  nvidia-smi -L >/dev/null 2>&1 && archs=(-DQASR_CUDA_ARCHS=native)
  echo "building qasr into $build (${archs[*]:-CUDA architectures 80 90}); log: $out/build.log"
  mapfile -t gpu_tests < <(cd "$root/tests/cuda" && ls test_kernels_*.c | sed 's/\.c$/_gpu/')
  if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DQASR_CUDA=ON -DQASR_CUDA_EMU=OFF \
           "${archs[@]}" >"$out/build.log" 2>&1 &&
         cmake --build "$build" -j"$(nproc)" --target qasr qasr-batch qasr-merge qasr_cuda bench_ops gpu_constants "${gpu_tests[@]}" \
           >>"$out/build.log" 2>&1; }; then
    tail_log "$out/build.log"
    row kit FAILED "build failed: $out/build.log" "$(since "$t")"
    kit_ok=0
  fi
  kit_kind=build
fi
# the kit's parts: bin, lib, the demo model, the held-out clips, the throughput clips
if [ "$kit_kind" = bundle ]; then
  bin=$kit/bin lib=$kit/lib demo_model=$kit/models/qasr-demo heldout=$kit/clips/heldout mixed=$kit/clips/mixed
else
  # A build: the demo model and the clips of the checkout (the six held-out clips of
  # manifests/demo.tsv; tests/audio's clips for throughput).
  kit=$build bin=$build lib="" demo_model=$root/tests/models/qasr-demo
  heldout=$work/heldout mixed=$work/mixed
  mkdir -p "$heldout" "$mixed"
  printf 'path\tid\n' >"$heldout/test.tsv"
  for f in "$root"/tests/audio/heldout-*; do
    printf '%s\t%s\n' "$f" "$(basename "${f%.*}" | sed 's/heldout-/test-/')" >>"$heldout/test.tsv"
  done
  printf 'path\tid\n' >"$mixed/mixed.tsv"
  for f in demo.flac heldout-00001.wav heldout-00003.flac phone8k.wav quiet48k.flac speech10s.aiff stereo44k.ogg; do
    printf '%s\t%s\n' "$root/tests/audio/$f" "${f%.*}" >>"$mixed/mixed.tsv"
  done
fi
if [ $kit_ok = 1 ]; then
  problems=()
  need=(qasr qasr-batch qasr-merge libqasr_cuda.so bench_ops gpu_constants)
  while read -r t_name; do case $t_name in test_kernels_*) need+=("$t_name") ;; esac; done < <(list_tests)
  for f in "${need[@]}"; do [ -f "$bin/$f" ] || problems+=("bin/$f missing"); done
  for f in "$demo_model/config.json" "$heldout/test.tsv" "$mixed/mixed.tsv"; do [ -f "$f" ] || problems+=("$f missing"); done
  # the libraries: the bundle's first, then the CUDA toolkit's
  cuda_libdir=$(gpu_cuda_libdir) || cuda_libdir=""
  export LD_LIBRARY_PATH="${lib:+$lib:}${cuda_libdir:+$cuda_libdir:}${LD_LIBRARY_PATH:-}"
  LD_LIBRARY_PATH=${LD_LIBRARY_PATH%:}
  cuda_missing=()
  for f in "${need[@]}"; do
    [ -f "$bin/$f" ] || continue
    while read -r name path; do
      if [ -z "$path" ] || [ "$path" = not ]; then
        if gpu_lib_is_cuda "$name"; then
          [[ " ${cuda_missing[*]} " == *" $name "* ]] || cuda_missing+=("$name")
        else
          problems+=("$f needs $name: not found")
        fi
      elif [ "$kit_kind" = bundle ] && ! gpu_lib_is_system "$name" && [ "$(dirname "$path")" != "$lib" ]; then
        problems+=("$f takes $name from $path, not from the bundle")
      fi
    done < <(ldd "$bin/$f" 2>/dev/null | sed -n 's/^\s*\(\S*\) => \(\S*\) .*/\1 \2/p')
  done
  # glibc: the bundle was built against a version; this machine's must not be older
  if [ "$kit_kind" = bundle ] && [ -f "$kit/BUNDLE_INFO" ]; then
    want_glibc=$(sed -n 's/^glibc needed: //p' "$kit/BUNDLE_INFO")
    have_glibc=$(ldd --version 2>/dev/null | head -n 1 | grep -o '[0-9][0-9.]*$')
    if [ -n "$want_glibc" ] && [ -n "$have_glibc" ] && [ "$(printf '%s\n%s\n' "$want_glibc" "$have_glibc" | sort -V | head -n 1)" != "$want_glibc" ]; then
      problems+=("the bundle needs glibc $want_glibc, this machine has $have_glibc")
    fi
  fi
  # the binaries run: --help, and the demo model on the first held-out clip on the CPU
  smoke=""
  if [ ${#problems[@]} = 0 ]; then
    if ! run_logged "$out/kit-help.log" 30 "$bin/qasr-batch" --help; then
      problems+=("qasr-batch --help fails: $(tail -n 1 "$out/kit-help.log")")
    else
      clip=$(sed -n '2p' "$heldout/test.tsv" | cut -f1)
      case $clip in /*) ;; *) clip=$heldout/$clip ;; esac
      ref=$(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "text") c = i } NR == 2 && c { print $c }' "$heldout/test.tsv")
      if run_logged "$out/kit-cpu.log" 120 "$bin/qasr" --backend cpu -t 2 --model "$demo_model" --json "$clip"; then
        if [ -z "$python" ]; then
          smoke="transcribed (no python3 with numpy here to read it: set PYTHON)"
        else
          smoke=$("$python" -c 'import json, sys; print(json.loads(sys.stdin.read().splitlines()[-1])["text"])' <"$out/kit-cpu.log" 2>/dev/null)
          [ -n "$smoke" ] || problems+=("qasr on the CPU printed no transcript ($out/kit-cpu.log)")
        fi
        [ -n "$ref" ] && [ "$smoke" != "$ref" ] && smoke="$smoke (reference: $ref)"
      else
        problems+=("qasr on the CPU failed: $(tail -n 1 "$out/kit-cpu.log")")
      fi
    fi
  fi
  commit_note=""
  if [ "$kit_kind" = bundle ] && [ -f "$kit/BUNDLE_INFO" ]; then
    b_commit=$(sed -n 's/^commit: \([0-9a-f]\{7\}\).*/\1/p' "$kit/BUNDLE_INFO")
    c_commit=$(git -C "$root" rev-parse --short=7 HEAD 2>/dev/null || true)
    commit_note="bundle of $b_commit"
    [ -n "$c_commit" ] && [ "$c_commit" != "$b_commit" ] && commit_note="$commit_note (checkout: $c_commit: the test scripts may not match)"
    sed -n '/^files:/q; p' "$kit/BUNDLE_INFO" | sed 's/^/   /'
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    printf '   problem: %s\n' "${problems[@]}"
    row kit FAILED "${problems[0]}$([ ${#problems[@]} -gt 1 ] && echo " (+$((${#problems[@]} - 1)) more)")" "$(since "$t")"
    kit_ok=0
  else
    row kit ok "${kit_kind} $kit${commit_note:+, $commit_note}; CPU: \"$smoke\"" "$(since "$t")"
  fi
fi
echo "   LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

# ---------------------------------------------------------------- device
has_device=0 dev_name=""
gpu_steps_wanted=0
for s in device tests constants ops e2e sanitize; do want $s && gpu_steps_wanted=1; done
if [ $kit_ok = 1 ] && [ $gpu_steps_wanted = 1 ]; then
  header "device"
  t=$(now)
  # Every CUDA program below sees the one device, as device 0, in nvidia-smi's (PCI) order.
  export CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=$device
  smi=$(gpu_tool nvidia-smi) || smi=""
  if [ -z "$smi" ]; then
    row device "no device" "no nvidia-smi (no NVIDIA driver)" "$(since "$t")"
  elif ! dev_name=$("$smi" --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader -i "$device" 2>"$out/nvidia-smi.log") || [ -z "$dev_name" ]; then
    row device "no device" "nvidia-smi: $(head -n 1 "$out/nvidia-smi.log")" "$(since "$t")"
    dev_name=""
  elif [ ${#cuda_missing[@]} -gt 0 ]; then
    row device FAILED "$dev_name; the CUDA toolkit's ${cuda_missing[*]} not found (set CUDA_HOME)" "$(since "$t")"
  elif ! run_logged "$out/device-probe.log" 60 "$bin/qasr" --model "$demo_model" --backend cuda --kv-gb 0.05 --list-languages; then
    tail_log "$out/device-probe.log" 5
    row device FAILED "$dev_name; the CUDA backend does not start: $(tail -n 1 "$out/device-probe.log")" "$(since "$t")"
  else
    has_device=1
    "$smi" -i "$device" | sed 's/^/   /'
    row device ok "$dev_name" "$(since "$t")"
  fi
fi
gpu_ready() { [ $kit_ok = 1 ] && [ $has_device = 1 ]; }

# ---------------------------------------------------------------- tests
if [ $kit_ok = 1 ] && want tests; then
  header "tests (ctest label gpu)"
  # the tiny synthetic model of tests/CMakeLists.txt (make_model_tiny)
  tiny=$work/models/tiny
  if [ -n "$python" ] && [ ! -f "$tiny/config.json" ]; then
    "$python" "$root/scripts/make_synthetic_model.py" "$tiny" --size tiny --seed 7 >"$out/make-tiny.log" 2>&1 || tail_log "$out/make-tiny.log"
  fi
  tiny_aligner=$work/models/tiny_aligner # make_model_tiny_aligner
  if [ -n "$python" ] && [ ! -f "$tiny_aligner/config.json" ]; then
    "$python" "$root/scripts/make_synthetic_model.py" "$tiny_aligner" --size tiny --aligner --seed 7 >"$out/make-tiny-aligner.log" 2>&1 ||
      tail_log "$out/make-tiny-aligner.log"
  fi
  while read -r name; do
    case $name in
      test_kernels_*) est=20 lim=120 cmd=("$bin/$name") ;;
      cuda_model_gpu) est=40 lim=180 cmd=("$python" "$root/tests/test_cuda_model.py" --gpu --bin "$bin" --model "$tiny" --work "$out/work/cuda_model_gpu") ;;
      demo_cuda_gpu) est=30 lim=180 cmd=("$python" "$root/tests/test_demo_cuda.py" --gpu --bin "$bin" --model "$demo_model" --corpus "$heldout" --work "$out/work/demo_cuda_gpu") ;;
      aligner_cuda_gpu) est=20 lim=120 cmd=("$python" "$root/tests/test_aligner_cuda.py" --gpu --bin "$bin" --aligner "$tiny_aligner" --work "$out/work/aligner_cuda_gpu") ;;
    esac
    if [ -z "$python" ] && [ "${cmd[0]}" = "" ]; then row "test $name" FAILED "no python3 with numpy (set PYTHON)" 0.0; continue; fi
    fits "test $name" "$( [ $has_device = 1 ] && echo $est || echo 5)" || continue
    t=$(now)
    echo "-- $name"
    c=$(cap "$lim")
    run_logged "$out/test-$name.log" "$c" "${cmd[@]}"
    rc=$?
    # a test stopped by the budget (not by its own limit) is "cut", not failed
    [ $rc = 124 ] || [ $rc = 137 ] && [ "$c" -lt "$lim" ] && rc="cut"
    case $rc in
      0) row "test $name" passed "$(grep -hE 'transcripts equal|token agreement|checks passed|^device 0:' "$out/test-$name.log" | sed 's/^ *//' | paste -sd ';' | sed 's/;/; /g')" "$(since "$t")" ;;
      77) row "test $name" "no device" "skipped (exit 77)" "$(since "$t")" ;;
      cut) row "test $name" cut "stopped at the budget after $(since "$t") s" "$(since "$t")" ;;
      124|137) tail_log "$out/test-$name.log"; row "test $name" timeout "no end after $lim s" "$(since "$t")" ;;
      *) tail_log "$out/test-$name.log"; row "test $name" "FAILED (exit $rc)" "$out/test-$name.log" "$(since "$t")" ;;
    esac
  done < <(list_tests | grep -E -- "$tests_re")
fi

# ---------------------------------------------------------------- constants
if [ $kit_ok = 1 ] && want constants; then
  header "constants (bench/gpu_constants: the performance model's assumptions, measured)"
  gpu_key=$(echo "$dev_name" | grep -oiE 'H100|H200' | head -n 1 | tr 'A-Z' 'a-z')
  if ! gpu_ready; then
    row constants "no device" "" 0.0
  elif fits constants 20; then
    t=$(now)
    raw=$out/gpu_constants.raw.tsv
    if run_logged "$out/constants.log" "$(cap 120)" "$bin/gpu_constants" --gpu "${gpu_key:-gpu}"; then
      grep -E '^[^#$ ].*	measured	' "$out/constants.log" >"$raw"
      sed 's/^/   /' "$raw"
      figure=$(awk -F'\t' '{ v[$2] = $3 } END { printf "HBM %.2f TB/s, bf16 GEMM %.0f / %.0f TFLOP/s (8192^3 / 64 rows), launch %.1f us, sync %.1f us, PCIe pinned %.1f GB/s",
                 v["hbm_bw"] / 1e12, v["tc_bf16_large"] / 1e12, v["tc_bf16_small"] / 1e12, v["kernel_overhead"] * 1e6, v["sync_latency"] * 1e6, v["pcie_bw_pinned"] / 1e9 }' "$raw")
      if [ -n "$gpu_key" ] && [ -n "$python" ] &&
        "$python" "$root/bench/measured_constants.py" "$raw" --gpu "$gpu_key" >"$out/gpu_constants.measured.tsv" 2>>"$out/constants.log"; then
        figure="$figure; $out/gpu_constants.measured.tsv"
      fi
      row constants ok "$figure" "$(since "$t")"
    else
      tail_log "$out/constants.log"
      row constants FAILED "$out/constants.log" "$(since "$t")"
    fi
  fi
fi

# ---------------------------------------------------------------- ops
# bench_ops line: "<op label> <ms> ms <tflops> TFLOP/s <gbs> GB/s"
ops_figure() {
  awk '/ ms .* TFLOP\/s .* GB\/s$/ {
         n = NF; gbs = $(n - 1); tf = $(n - 3)
         label = substr($0, 1, 34); sub(/ *\[.*$/, "", label); sub(/ +$/, "", label)
         if (tf > best_tf) { best_tf = tf; best_tf_op = label }
         if (gbs > best_gb) { best_gb = gbs; best_gb_op = label }
         if ($1 == "lm") lm = gbs
       }
       END { printf "best %.1f TFLOP/s (%s), %.2f TB/s (%s); lm head %.2f TB/s", best_tf, best_tf_op, best_gb / 1000, best_gb_op, lm / 1000 }' "$1"
}
if [ $kit_ok = 1 ] && want ops; then
  header "ops (bench_ops --backend cuda --size $size; bench/ROOFLINE.md has the expected figures)"
  for r in 64 256; do
    if ! gpu_ready; then row "ops rows=$r" "no device" "" 0.0; continue; fi
    fits "ops rows=$r" 25 || continue
    t=$(now)
    if run_logged "$out/ops-$r.log" "$(cap 120)" "$bin/bench_ops" --backend cuda --size "$size" --rows "$r" --ctx 240 --reps 20; then
      sed '1d' "$out/ops-$r.log" | sed 's/^/   /'
      row "ops rows=$r" ok "$(ops_figure "$out/ops-$r.log")" "$(since "$t")"
    else
      tail_log "$out/ops-$r.log"
      row "ops rows=$r" FAILED "$out/ops-$r.log" "$(since "$t")"
    fi
  done
fi

# ---------------------------------------------------------------- e2e
if [ $kit_ok = 1 ] && want e2e; then
  header "e2e (qasr-batch, ${e2e_model:-synthetic $size checkpoint}, $files files)"
  model=$work/models/model-$size model_ready=0
  if ! gpu_ready; then
    row "e2e model $size" "no device" "not made" 0.0
  elif [ -n "$e2e_model" ]; then
    model=$e2e_model model_ready=1
  elif [ -f "$model/config.json" ] && [ -f "$model/.complete" ]; then
    row "e2e model $size" ok "reused $model" 0.0
    model_ready=1
  elif [ -z "$python" ]; then
    row "e2e model $size" FAILED "no python3 with numpy (set PYTHON)" 0.0
  elif fits "e2e model $size" "$([ "$size" = 0.6b ] && echo 40 || echo 100)"; then
    t=$(now)
    rm -rf "$model"
    if run_logged "$out/make-model.log" "$(cap 300)" "$python" "$root/scripts/make_synthetic_model.py" "$model" --size "$size" --seed 1; then
      touch "$model/.complete"
      model_ready=1
      row "e2e model $size" ok "made $model ($(du -sh "$model" | cut -f1))" "$(since "$t")"
    else
      tail_log "$out/make-model.log"
      row "e2e model $size" FAILED "$out/make-model.log" "$(since "$t")"
    fi
  fi
  # the throughput manifest: the bundle's clips, absolute paths, looped to $files entries
  manifest=$out/e2e-$files.tsv
  awk -F'\t' -v dir="$mixed" -v n="$files" '
    BEGIN { k = 0 }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { p = $(col["path"]); if (p !~ /^\//) p = dir "/" p; path[k] = p; dur[k] = ("duration" in col) ? $(col["duration"]) : ""; k++ }
    END { printf "path\tid%s\n", dur[0] != "" ? "\tduration" : ""
          for (i = 0; i < n; i++) printf "%s\tf%05d%s\n", path[i % k], i, dur[0] != "" ? "\t" dur[i % k] : "" }' \
    "$mixed/mixed.tsv" >"$manifest"
  for b in $batches; do
    if ! gpu_ready; then row "e2e batch=$b" "no device" "" 0.0; continue; fi
    [ $model_ready = 1 ] || { row "e2e batch=$b" skipped "no model" 0.0; continue; }
    fits "e2e batch=$b" 45 || continue
    t=$(now)
    res=$out/e2e-$b.jsonl mem=$out/e2e-$b.mem
    "$smi" --query-gpu=memory.used --format=csv,noheader,nounits -i "$device" -lms 200 >"$mem" 2>/dev/null &
    poll=$!
    sizing=(--batch "${b%+sync}" --readers 8)
    [ "${b%+sync}" = default ] && sizing=()
    [ "${b%+sync}" != "$b" ] && sizing+=(--sync-steps)
    run_logged "$out/e2e-$b.log" "$(cap 150)" "$bin/qasr-batch" "$manifest" --model "$model" --backend cuda \
      "${sizing[@]}" -o "$res" --overwrite --progress-interval 10
    rc=$?
    wall=$(since "$t")
    kill "$poll" 2>/dev/null
    wait "$poll" 2>/dev/null
    fig="no python3 with numpy here to read $res"
    [ -n "$python" ] && fig=$("$python" - "$res" "$out/e2e-$b.log" "$mem" "$wall" <<'EOF'
import json, re, sys
res, log, mem, wall = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rows = []
try:
    for line in open(res):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
except OSError:
    pass
text = open(log, errors="replace").read()
m = re.search(r"model loaded in ([0-9.]+) s", text)
load = float(m.group(1)) if m else 0.0
sizing = re.search(r"; ([0-9]+) sequences per batch, ([0-9]+) audio readers", text)
ok = [r for r in rows if r.get("error") is None]
audio = sum(r.get("duration") or 0 for r in ok)
tokens = sum(r.get("n_tokens") or 0 for r in ok)
run = max(wall - load, 1e-9)
peak = max((int(x) for x in open(mem) if x.strip().isdigit()), default=0) if mem else 0
print(f"{audio / run:.0f} s audio/s, {len(ok) / run:.1f} files/s, {tokens / run:.0f} tokens/s, peak {peak} MiB; "
      f"{len(ok)}/{len(rows)} files, {audio:.0f} s audio, load {load:.1f} s"
      + (f"; batch {sizing.group(1)}, {sizing.group(2)} readers" if sizing else ""))
EOF
)
    grep -E "model loaded|files \(|qasr-batch: (done|interrupted)" "$out/e2e-$b.log" | tail -n 3 | sed 's/^/   /'
    case $rc in
      0) row "e2e batch=$b" ok "$fig" "$wall" ;;
      # stopped at its time limit (TERM: qasr-batch finishes the files in progress and exits 4):
      # the figures are those of the files done
      124|4) row "e2e batch=$b" cut "stopped at the time limit: $fig" "$wall" ;;
      137) row "e2e batch=$b" timeout "killed: no end 15 s after TERM; $fig" "$wall" ;;
      *) tail_log "$out/e2e-$b.log"; row "e2e batch=$b" "FAILED (exit $rc)" "$fig" "$wall" ;;
    esac
  done
fi

# ---------------------------------------------------------------- sanitize
if [ $kit_ok = 1 ] && want sanitize; then
  header "sanitize (compute-sanitizer)"
  cs=$(gpu_tool compute-sanitizer) || cs=""
  tools=(memcheck racecheck synccheck initcheck)
  n_tools=${#tools[@]}
  sclips=()
  while read -r p; do case $p in /*) sclips+=("$p") ;; *) sclips+=("$heldout/$p") ;; esac; done < <(sed -n '2,3p' "$heldout/test.tsv" | cut -f1)
  for i in "${!tools[@]}"; do
    tool=${tools[$i]}
    if ! gpu_ready; then row "sanitize $tool" "no device" "" 0.0; continue; fi
    if [ -z "$cs" ]; then row "sanitize $tool" FAILED "no compute-sanitizer in the CUDA toolkit" 0.0; continue; fi
    fits "sanitize $tool" 20 || continue
    t=$(now)
    share=$(( ($(left) - 15) / (n_tools - i) ))
    tool_cap=$(( share < 90 ? share : 90 ))
    t_end=$(awk -v a="$(now)" -v c="$tool_cap" 'BEGIN { printf "%d", a + c }')
    errors=0 ran=() notrun=() result=ok
    targets=(qasr test_kernels_attention_gpu test_kernels_front_gpu test_kernels_rows_gpu)
    for target in "${targets[@]}"; do
      rest=$(( t_end - $(date +%s) ))
      if [ "$rest" -lt 5 ]; then notrun+=("$target"); continue; fi
      log=$out/sanitize-$tool-$target.log
      if [ "$target" = qasr ]; then
        cmd=("$bin/qasr" --backend cuda --model "$demo_model" --kv-gb 0.05 --max-new-tokens 16 -t 2 "${sclips[@]}")
      else
        cmd=("$bin/$target")
      fi
      extra=()
      [ "$tool" = memcheck ] && extra=(--leak-check no)
      run_logged "$log" "$rest" "$cs" --tool "$tool" "${extra[@]}" --error-exitcode 86 --print-limit 20 "${cmd[@]}"
      rc=$?
      n=$(grep -oE '(ERROR|RACECHECK|SYNCCHECK|INITCHECK) SUMMARY: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)
      case $rc in
        0) ran+=("$target") ;;
        86) ran+=("$target: ${n:-some} errors"); errors=$((errors + ${n:-1})); result="FAILED" ;;
        124|137) notrun+=("$target (cut)"); [ "$result" = ok ] && result=partial ;;
        *) ran+=("$target: exit $rc"); result="FAILED"; tail_log "$log" 10 ;;
      esac
    done
    fig="$errors errors; ran: $(join_by ', ' "${ran[@]}")"
    [ ${#notrun[@]} -gt 0 ] && fig="$fig; not run (time): $(join_by ', ' "${notrun[@]}")"
    [ "$result" = FAILED ] && grep -h -m 5 -E '^========= (Invalid|Race|Barrier|Uninitialized|Error|Program hit)' "$out"/sanitize-"$tool"-*.log | sed 's/^/   /'
    row "sanitize $tool" "$result" "$fig" "$(since "$t")"
  done
fi

# ---------------------------------------------------------------- the table
total=$(since "$t_begin")
if [ $failures -gt 0 ]; then status="$failures failed" code=1
elif [ $kit_ok = 1 ] && [ $gpu_steps_wanted = 1 ] && [ $has_device = 0 ]; then status="no CUDA device: the GPU steps did not run" code=77
else status="passed" code=0
fi
{
  echo
  echo "== gpu-check summary: ${dev_name:-$([ $gpu_steps_wanted = 1 ] && echo "no CUDA device" || echo "no device step")}; $(elapsed) s of a $budget s budget"
  w=4
  for s in "${rows_step[@]}"; do [ ${#s} -gt $w ] && w=${#s}; done
  printf "%-${w}s  %-15s  %7s  %s\n" step result seconds figure
  for i in "${!rows_step[@]}"; do
    printf "%-${w}s  %-15s  %7s  %s\n" "${rows_step[$i]}" "${rows_result[$i]}" "${rows_secs[$i]}" "${rows_figure[$i]}"
  done
  echo "== $status (exit $code); total $total s; logs in $out"
  [ $code = 0 ] && [ $has_device = 1 ] && echo "== compare the ops and e2e figures with bench/ROOFLINE.md (README: On a GPU machine)"
} | tee "$out/summary.txt"
exit $code
