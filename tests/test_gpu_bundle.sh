#!/usr/bin/env bash
# scripts/gpu-bundle.sh and scripts/gpu-check.sh on a machine without a GPU:
#  1. the bundle is made from this build: under 40 MB, with every file gpu-check.sh needs;
#  2. its binaries run with the bundled libraries only: in a private mount namespace where the
#     system library directory holds nothing but glibc, libstdc++ and libgcc_s (what a GPU
#     machine with only the driver, the toolkit and Python is sure to have), qasr transcribes two
#     held-out clips (FLAC, Ogg) right and a kernel test reports "no device" (exit 77);
#  3. gpu-check.sh on the bundle prints the summary table, every GPU step "no device", exit 77;
#  4. its tests step runs exactly the ctest "gpu" tests of this build;
#  5. a bundle that lacks a library fails the kit step (exit 1), naming the library;
#  6. without a bundle, a machine that cannot build is told so (exit 3);
# and, with the CUDA emulation's commands and kernel tests standing in for the real ones and
# stand-ins for nvidia-smi and compute-sanitizer (so the GPU branches of gpu-check.sh run here):
#  7. every step runs and passes (tests, ops figures, e2e throughput, the four sanitizer tools),
#     exit 0; a sanitizer that reports errors fails its row (exit 1);
#  8. with a small budget, the steps that do not fit are skipped and named, and the run ends
#     near the budget.
# usage: test_gpu_bundle.sh BUILD_DIR WORK_DIR TINY_MODEL [QASR_EMU QASR_BATCH_EMU EMU_KERNEL_TEST_DIR]
set -uo pipefail
build=$1 work=$2 tiny=$3
emu_qasr=${4:-} emu_batch=${5:-} emu_tests=${6:-}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/testlib.sh"
has() { grep -qE -- "$2" "$1"; }  # has FILE REGEX
rm -rf "$work"
mkdir -p "$work"

cache=$build/CMakeCache.txt
if grep -qE '^QASR_NATIVE:BOOL=(ON|TRUE|1)$' "$cache" || ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$cache"; then
  echo "test_gpu_bundle: SKIPPED: not a portable Release build (a bundle is made from one)"
  exit 77
fi

# ---- 1. the bundle
bundle=$work/gpu-bundle.tar.xz
# --xz-preset 1: the same files in a larger bundle, in seconds; under the limit at 1, under it at 6
"$root/scripts/gpu-bundle.sh" --build "$build" -o "$bundle" --work "$work/bundle-work" --xz-preset 1 >"$work/bundle.log" 2>&1
rc=$?
tail -n 5 "$work/bundle.log"
check "gpu-bundle.sh exits 0 (exit $rc; $work/bundle.log)" test $rc -eq 0
bytes=$(stat -c %s "$bundle" 2>/dev/null || echo 0)
echo "bundle: $bytes bytes"
check "the bundle is under 40 MB ($bytes bytes)" test "$bytes" -gt 0 -a "$bytes" -le $((40 * 1048576))
tar -tJf "$bundle" >"$work/listing" 2>/dev/null
for f in bin/qasr bin/qasr-batch bin/qasr-merge bin/libqasr_cuda.so bin/bench_ops bin/gpu_constants bin/test_kernels_rows_gpu \
         bin/test_kernels_front_gpu bin/test_kernels_attention_gpu lib/libsndfile.so.1 lib/libdnnl.so.2 \
         lib/libsoxr.so.0 lib/libfftw3f.so.3 lib/libcjson.so.1 lib/libutf8proc.so.2 lib/libgomp.so.1 lib/libFLAC.so.12 \
         models/qasr-demo/config.json models/qasr-demo/model.safetensors clips/heldout/test.tsv clips/mixed/mixed.tsv BUNDLE_INFO; do
  check "the bundle has $f" grep -qx "gpu-bundle/$f" "$work/listing"
done
for f in libc.so.6 libstdc++.so.6 libcublas.so.13 libcudart.so.13; do
  check "the bundle leaves $f to the GPU machine" bash -c "! grep -q '/$f\$' '$work/listing'"
done
mkdir -p "$work/unpacked"
tar -C "$work/unpacked" -xJf "$bundle"
kit=$work/unpacked/gpu-bundle
check "24 held-out clips" test "$(tail -n +2 "$kit/clips/heldout/test.tsv" | wc -l)" -eq 24
check "32 throughput clips of 2-20 s" test "$(awk -F'\t' 'NR > 1 && $3 >= 2 && $3 <= 20' "$kit/clips/mixed/mixed.tsv" | wc -l)" -eq 32

# ---- 2. the bundled binaries with the bundled libraries only
sys=$work/syslibs
mkdir -p "$sys"
for l in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libmvec.so.1 libdl.so.2 libpthread.so.0 librt.so.1 libstdc++.so.6 libgcc_s.so.1; do
  [ -e "/lib/x86_64-linux-gnu/$l" ] && cp -L "/lib/x86_64-linux-gnu/$l" "$sys/"
done
isolated() { # isolated LOG LD_LIBRARY_PATH CMD...: CMD where the system library directory has only $sys
  local log=$1
  shift
  unshare -m sh -c 'mount --bind "$0" /usr/lib/x86_64-linux-gnu && LD_LIBRARY_PATH=$1 && export LD_LIBRARY_PATH &&
    shift && exec "$@"' "$sys" "$@" >"$log" 2>&1
}
if [ "$(uname -m)" = x86_64 ] && unshare -m sh -c "mount --bind '$sys' /usr/lib/x86_64-linux-gnu" 2>/dev/null; then
  isolated "$work/iso-nolib.log" "" "$kit/bin/qasr" --help
  check "isolation works: without the bundle's lib/ qasr does not start" has "$work/iso-nolib.log" "libsndfile.so.1: cannot open"
  for b in qasr qasr-batch qasr-merge; do
    isolated "$work/iso-help-$b.log" "$kit/lib" "$kit/bin/$b" --help
    check "bundled $b --help runs with the bundled libraries only" test $? -eq 0
  done
  a=$(sed -n 2p "$kit/clips/heldout/test.tsv" | cut -f1) b=$(sed -n 6p "$kit/clips/heldout/test.tsv" | cut -f1)
  isolated "$work/iso-cpu.log" "$kit/lib" "$kit/bin/qasr" --backend cpu -t 2 \
    --model "$kit/models/qasr-demo" "$kit/clips/heldout/$a" "$kit/clips/heldout/$b"
  cat "$work/iso-cpu.log"
  check "bundled qasr transcribes a FLAC and an Ogg clip with the bundled libraries only" \
    test "$(grep -c -e 'Der Bus fährt um neun Uhr\.' -e 'Please paint the black camera before Friday\.' "$work/iso-cpu.log")" -eq 2
  isolated "$work/iso-kernel.log" "$kit/lib:$(. "$root/scripts/gpu_common.sh"; gpu_cuda_libdir)" "$kit/bin/test_kernels_rows_gpu"
  check "bundled kernel test: exit 77 with 'no CUDA device'" has "$work/iso-kernel.log" "SKIPPED: no CUDA device"
else
  echo "note: no private mount namespace here (unshare -m needs root): the bundle's libraries are checked by gpu-check's kit step only"
fi

# ---- 3. gpu-check.sh on the bundle, no device
"$root/scripts/gpu-check.sh" --bundle "$bundle" --work "$work/check-work" --out "$work/check" >"$work/check.log" 2>&1
rc=$?
cat "$work/check.log"
check "gpu-check.sh exits 77 without a device (exit $rc)" test $rc -eq 77
s=$work/check/summary.txt
check "the summary table is printed" has "$work/check.log" '^step +result +seconds +figure$'
check "kit ok, the CPU transcript right" has "$s" '^kit +ok .*Der Bus fährt um neun Uhr\."$'
for step in device "test test_kernels_rows_gpu" "test test_kernels_front_gpu" "test test_kernels_attention_gpu" \
            "test cuda_model_gpu" "test demo_cuda_gpu" "ops rows=64" "ops rows=256" "e2e batch=32" "e2e batch=128" \
            "e2e batch=default" "e2e batch=32+sync" "constants" "sanitize memcheck" "sanitize racecheck" \
            "sanitize synccheck" "sanitize initcheck"; do
  check "$step: no device" has "$s" "^${step//+/\\+} +no device "
done
check "every row but kit says 'no device'" test "$(grep -cE '^(device|test|ops|e2e|sanitize) ' "$s")" -eq \
  "$(grep -cE '^(device|test|ops|e2e|sanitize) .* no device ' "$s")"

# ---- 4. the tests step runs the ctest gpu tests
ctest --test-dir "$build" -N -L gpu -FA ".*" | sed -n 's/^ *Test *#[0-9]*: //p' | sort >"$work/ctest-gpu"
"$root/scripts/gpu-check.sh" --list-tests | sort >"$work/check-gpu"
check "gpu-check.sh --list-tests = ctest -L gpu ($(tr '\n' ' ' <"$work/ctest-gpu"))" cmp -s "$work/ctest-gpu" "$work/check-gpu"

# ---- 5. a bundle without oneDNN
cp -r "$kit" "$work/broken"
rm "$work/broken/lib/libdnnl.so.2"
"$root/scripts/gpu-check.sh" --bundle "$work/broken" --steps kit --work "$work/broken-work" --out "$work/broken-check" >"$work/broken.log" 2>&1
rc=$?
check "a bundle without libdnnl.so.2 fails the kit step (exit $rc)" test $rc -eq 1
check "... naming libdnnl.so.2" has "$work/broken-check/summary.txt" '^kit +FAILED .*libdnnl\.so\.2'

# ---- 6. no bundle, no libraries to build with
PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH="" "$root/scripts/gpu-check.sh" --from-source --work "$work/src-work" \
  >"$work/from-source.log" 2>&1
rc=$?
cat "$work/from-source.log"
check "from source without the libraries: exit 3 (exit $rc)" test $rc -eq 3
check "... naming them" has "$work/from-source.log" "it lacks sndfile soxr fftw3f libcjson libutf8proc"
check "... and the bundle to make" has "$work/from-source.log" "scripts/gpu-bundle.sh"

# ---- 7, 8. the GPU branches, on the CUDA emulation
if [ -n "$emu_qasr" ] && [ -x "$emu_qasr" ]; then
  fake=$work/fake-gpu
  mkdir -p "$fake/bin" "$fake/tools"
  ln -s "$emu_qasr" "$fake/bin/qasr"
  ln -s "$emu_batch" "$fake/bin/qasr-batch"
  ln -s "$build/qasr-merge" "$fake/bin/qasr-merge"
  ln -s "$build/libqasr_cuda.so" "$fake/bin/libqasr_cuda.so"
  for t in "$emu_tests"/test_kernels_*; do
    case ${t##*/} in *.*) continue ;; esac # executables only (the directory may hold a dot)
    ln -s "$t" "$fake/bin/$(basename "$t")_gpu"
  done
  # bench_ops on the CPU at small shapes: its real output format, in a few seconds
  printf '#!/bin/sh\nexec "%s" --backend cpu --size 0.6b --rows 4 --ctx 16 --reps 1 --threads 2\n' "$build/bench_ops" >"$fake/bin/bench_ops"
  cat >"$fake/tools/nvidia-smi" <<'EOF'
#!/bin/sh
# nvidia-smi's answers for one emulated device
case "$*" in
  *memory.used*) while :; do echo 1234; sleep 0.2; done ;;
  *--query-gpu=name*) echo "Emulated GPU (test), 81559 MiB, 580.00, 9.0" ;;
  *) echo "| 0  Emulated GPU (test) |" ;;
esac
EOF
  cat >"$fake/tools/compute-sanitizer" <<'EOF'
#!/bin/sh
# runs the program (with the emulation's race detector at its default: on where built) and reports
# no errors; with FAKE_SANITIZER_ERRORS (the error run: the programs ran clean under every tool
# in the run before it) only reports, 2 errors for the tool it names, none for the others
tool=""
while [ $# -gt 0 ]; do
  case $1 in
    --tool) tool=$2; shift 2 ;;
    --error-exitcode|--print-limit|--leak-check) shift 2 ;;
    *) break ;;
  esac
done
echo "========= COMPUTE-SANITIZER (test stand-in) $tool"
if [ -n "${FAKE_SANITIZER_ERRORS:-}" ]; then
  if [ "$FAKE_SANITIZER_ERRORS" = "$tool" ]; then echo "========= Invalid __global__ read of size 2 bytes"; echo "========= ERROR SUMMARY: 2 errors"; exit 86; fi
  echo "========= ERROR SUMMARY: 0 errors"
  exit 0
fi
env -u CUEMU_RACECHECK "$@"
rc=$?
echo "========= ERROR SUMMARY: 0 errors"
exit $rc
EOF
  # gpu_constants on the emulation at tiny sizes: its real output format
  printf '#!/bin/sh\nexec "%s" --quick "$@"\n' "$build/gpu_constants_emu" >"$fake/bin/gpu_constants"
  chmod +x "$fake/bin/bench_ops" "$fake/bin/gpu_constants" "$fake/tools/nvidia-smi" "$fake/tools/compute-sanitizer"
  export PATH="$fake/tools:$PATH"
  export CUEMU_DEVICE_MEM_MB=512  # the default KV cache is 80% of the device: a small one is quick to fill
  # Every step but sanitize (its stand-in unsets this) without the emulation's race detector, as in
  # demo_cuda_emu: it doubles their time and checks the kernels (cuda_model_emu), not gpu-check.sh
  export CUEMU_RACECHECK=0
  t0=$(date +%s)
  "$root/scripts/gpu-check.sh" --build "$fake/bin" --model "$tiny" --files 6 --batches 4 --tests 'kernels|demo' \
    --work "$work/fake-work" --out "$work/fake-check" >"$work/fake.log" 2>&1
  rc=$?
  cat "$work/fake.log"
  s=$work/fake-check/summary.txt
  check "emulated device: gpu-check.sh exits 0 (exit $rc, $(($(date +%s) - t0)) s)" test $rc -eq 0
  check "device row names it" has "$s" '^device +ok .*Emulated GPU \(test\)'
  for t in test_kernels_rows_gpu test_kernels_front_gpu test_kernels_attention_gpu demo_cuda_gpu; do
    check "test $t passed" has "$s" "^test $t +passed "
  done
  check "demo_cuda_gpu compared the transcripts" has "$s" '^test demo_cuda_gpu .*transcripts equal .*: 6/6;'
  check "constants: the measured figures" has "$s" '^constants +ok .*HBM [0-9.]+ TB/s, bf16 GEMM [0-9]+ / [0-9]+ TFLOP/s \(8192\^3 / 64 rows\), launch [0-9.]+ us, sync [0-9.]+ us, PCIe pinned [0-9.]+ GB/s'
  for r in 64 256; do
    check "ops rows=$r: TFLOP/s and TB/s" has "$s" "^ops rows=$r +ok .*best [0-9.]+ TFLOP/s \([a-z].*\), [0-9.]+ TB/s \([a-z].*\); lm head [0-9.]+ TB/s"
  done
  check "e2e batch=4: throughput and peak memory" has "$s" "^e2e batch=4 +ok .*[0-9]+ s audio/s, [0-9.]+ files/s, .*peak 1234 MiB; 6/6 files"
  check "cuda_model_gpu left out by --tests" bash -c "! grep -q cuda_model_gpu '$s'"
  for tool in memcheck racecheck synccheck initcheck; do
    check "sanitize $tool: 0 errors over qasr and the kernel tests" \
      has "$s" "^sanitize $tool +ok .*0 errors; ran: qasr, test_kernels_attention_gpu, test_kernels_front_gpu, test_kernels_rows_gpu$"
  done
  FAKE_SANITIZER_ERRORS=racecheck "$root/scripts/gpu-check.sh" --build "$fake/bin" --steps sanitize \
    --work "$work/fake-work" --out "$work/fake-check-err" >"$work/fake-err.log" 2>&1
  rc=$?
  check "a sanitizer reporting errors fails (exit $rc)" test $rc -eq 1
  check "... its row only" has "$work/fake-check-err/summary.txt" '^sanitize racecheck +FAILED .*8 errors'
  check "... the others pass" test "$(grep -cE '^sanitize (memcheck|synccheck|initcheck) +ok ' "$work/fake-check-err/summary.txt")" -eq 3

  t0=$(date +%s)
  "$root/scripts/gpu-check.sh" --build "$fake/bin" --model "$tiny" --files 6 --batches "2 4" --budget 30 \
    --work "$work/fake-work" --out "$work/fake-budget" >"$work/fake-budget.log" 2>&1
  rc=$?
  took=$(($(date +%s) - t0))
  cat "$work/fake-budget/summary.txt"
  check "budget 30 s: exit 0 (exit $rc)" test $rc -eq 0
  check "... steps that do not fit are named as skipped" has "$work/fake-budget/summary.txt" ' skipped +0.0 +budget: needs ~[0-9]+ s, [0-9]+ s left'
  check "... and it ends near the budget ($took s)" test "$took" -le 45
else
  echo "note: no emulated CUDA commands given: the GPU branches are not exercised"
fi

echo "$((checks - fails))/$checks checks passed"
[ $fails -eq 0 ] && [ $checks -gt 0 ]
