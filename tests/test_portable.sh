#!/usr/bin/env bash
# The default build's binaries run on any x86-64-v3 CPU: no AVX-512 instruction in the host code
# of qasr, qasr-batch, qasr-merge and libqasr_cuda.so (oneDNN, FFTW and the CUDA libraries are
# shared libraries that choose their kernels at run time, so they are not scanned), and the
# module does not need libnccl.so.2 to load (it loads NCCL itself, for --gpus only). The scan is
# checked on an object made with AVX-512, which it must flag. Skipped (77) for QASR_NATIVE builds
# and on other architectures.
# usage: test_portable.sh BUILD_DIR WORK_DIR NATIVE(ON|OFF)
set -uo pipefail
build=$1 work=$2 native=$3
mkdir -p "$work"
. "$(dirname "$0")/testlib.sh"
if [ "$native" = ON ] || [ "$(uname -m)" != x86_64 ]; then
  echo "test_portable: SKIPPED: QASR_NATIVE build or not x86-64 (binaries are for this machine by request)"
  exit 77
fi

# AVX-512 in AT&T syntax: a zmm register, or an opmask register k1-k7 as an operand
avx512() { objdump -d --no-show-raw-insn "$1" | grep -cE '%zmm[0-9]|\{%k[1-7]\}|%k[0-7],|,%k[0-7]\b'; }

printf 'void f(float *x, int n) { for (int i = 0; i < n; i++) x[i] = x[i] * 2.0f + 1.0f; }\n' >"$work/probe.c"
cc -O3 -march=skylake-avx512 -mprefer-vector-width=512 -c "$work/probe.c" -o "$work/probe512.o"
cc -O3 -march=x86-64-v3 -c "$work/probe.c" -o "$work/probe256.o"
check "the scan finds AVX-512 in an object built for it" test "$(avx512 "$work/probe512.o")" -gt 0
check "the scan finds none in one built for x86-64-v3" test "$(avx512 "$work/probe256.o")" -eq 0

for f in qasr qasr-batch qasr-merge libqasr.so libqasr_cuda.so; do
  [ -f "$build/$f" ] || continue
  n=$(avx512 "$build/$f")
  check "$f: no AVX-512 instruction in the host code ($n found)" test "$n" -eq 0
done
if [ -f "$build/libqasr_cuda.so" ]; then
  needed=$(readelf -d "$build/libqasr_cuda.so" | grep NEEDED)
  check "libqasr_cuda.so loads without NCCL (NEEDED: $(echo "$needed" | grep -o '\[.*\]' | tr '\n' ' '))" \
    bash -c "! grep -q libnccl <<<\"\$0\"" "$needed"
fi
echo "$((checks - fails))/$checks checks passed"
[ $fails -eq 0 ] && [ $checks -gt 0 ]
