#!/usr/bin/env bash
# Makes the GPU check kit: everything scripts/gpu-check.sh needs on a GPU machine that has only
# the NVIDIA driver, the CUDA toolkit and a Python with numpy (no network, no apt, none of
# libsndfile, oneDNN, soxr, FFTW, cJSON, utf8proc, espeak-ng or sox), in one tar.xz under 40 MB.
# Run it on a Debian build machine set up by scripts/setup.sh (the CUDA toolkit installed), then
# copy the file into the checkout on the GPU machine and run scripts/gpu-check.sh there.
#
# usage: scripts/gpu-bundle.sh [-o FILE] [--build DIR] [--work DIR]
#   -o FILE      the bundle (default: gpu-bundle.tar.xz in the repository root)
#   --build DIR  take the binaries from this existing build (it must be a portable Release
#                build with the CUDA module: the defaults of scripts/build.sh) instead of
#                configuring and building build-bundle/
#   --work DIR   where the kit is staged and the clips are made (default: build-bundle/kit-work)
#   --xz-preset N  xz preset 0-9 (default 6: 26 MB; 9 makes 25 MB in one thread, as its 192 MiB
#                blocks are more than the 84 MB staged: 93 s against 59 s; tests/test_gpu_bundle.sh
#                uses 1: 31 MB in 10 s; timed on the 2-vCPU AMD EPYC Zen 3 VM, no AMX, shared)
#
# The bundle (gpu-bundle/ inside the tar):
#   bin/     qasr, qasr-batch, qasr-merge, libqasr_cuda.so, bench_ops, gpu_constants and the kernel tests linked
#            to the real kernels (test_kernels_*_gpu); host code for any x86-64-v3 CPU, device
#            code for sm_80 and sm_90 (machine code and PTX; an H200 is sm_90)
#   lib/     every shared library those need that is not part of glibc, libstdc++/libgcc_s or
#            the CUDA toolkit (libsndfile and its codecs, oneDNN, soxr, FFTW, cJSON, utf8proc,
#            libgomp, the OpenCL loader oneDNN links): gpu-check.sh puts lib/ and the toolkit's
#            lib64 on LD_LIBRARY_PATH. cuBLAS, cuFFT and the CUDA runtime are the GPU machine's
#            own (CUDA 13, the same major version as the build).
#   models/qasr-demo         the demo model (tests/models/qasr-demo)
#   clips/heldout/           the first 24 held-out clips of scripts/make_corpus.py (test.tsv),
#                            what tests/test_demo_cuda.py --gpu transcribes
#   clips/mixed/             32 espeak-ng clips of 2-20 s, 16 kHz WAV, mixed.tsv (path, id,
#                            duration), looped by gpu-check.sh into the throughput manifest
#   BUNDLE_INFO              commit, date, toolchain, glibc needed, library and file list
# The python scripts (tests/*.py, scripts/make_synthetic_model.py: numpy only) are taken from
# the checkout gpu-check.sh runs in; gpu-check.sh says when its commit differs from the bundle's.
#
# At the end the bundle is unpacked and checked by `scripts/gpu-check.sh --bundle FILE --steps
# kit`: every file present, every library a bundled binary needs resolved from lib/ or an
# allowed system library, and the bundled qasr transcribing a held-out clip on the CPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/gpu-bundle.tar.xz build="" work=$root/build-bundle/kit-work xz_preset=6
limit_mb=40
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --xz-preset) xz_preset=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $out in /*) ;; *) out=$PWD/$out ;; esac
case $xz_preset in [0-9]) ;; *) echo "gpu-bundle.sh: --xz-preset takes 0-9, not '$xz_preset'" >&2; exit 2 ;; esac
. "$root/scripts/gpu_common.sh"
t_start=$(date +%s)
say() { echo "gpu-bundle: [$(($(date +%s) - t_start)) s] $*"; }

# ---- the binaries
targets=(qasr qasr-batch qasr-merge qasr_cuda bench_ops gpu_constants)
if [ -z "$build" ]; then
  build=$root/build-bundle
  say "configuring $build (Release, portable x86-64-v3 host code, CUDA module for sm_80 and sm_90)"
  mkdir -p "$build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DQASR_CUDA=ON -DQASR_CUDA_EMU=OFF -DQASR_NATIVE=OFF \
    -DQASR_SANITIZE=OFF >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 1; }
  mapfile -t gpu_tests < <(cd "$root/tests/cuda" && ls test_kernels_*.c | sed 's/\.c$/_gpu/')
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" "${gpu_tests[@]}"
else
  build=$(cd "$build" && pwd)
fi
cache=$build/CMakeCache.txt
[ -f "$cache" ] || { echo "gpu-bundle.sh: $build is not a build directory" >&2; exit 1; }
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$cache"; }
[ "$(cache_get CMAKE_BUILD_TYPE)" = Release ] || { echo "gpu-bundle.sh: $build is not a Release build" >&2; exit 1; }
for v in QASR_NATIVE QASR_SANITIZE; do
  case $(cache_get $v) in ON|TRUE|1) echo "gpu-bundle.sh: $build has $v=ON: not portable" >&2; exit 1 ;; esac
done
archs=$(cache_get QASR_CUDA_ARCHS)
case " ${archs:-80 90} " in *" 90 "*|*";90"*|*"90;"*) ;; *)
  echo "gpu-bundle.sh: $build builds the CUDA code for '$archs' only: an H100/H200 needs 90" >&2; exit 1 ;; esac
bins=(qasr qasr-batch qasr-merge libqasr_cuda.so bench_ops gpu_constants)
for f in "$build"/test_kernels_*_gpu; do [ -x "$f" ] && bins+=("$(basename "$f")"); done
for f in "${bins[@]}"; do
  [ -f "$build/$f" ] || { echo "gpu-bundle.sh: $build/$f is missing (a build with the CUDA toolkit makes it)" >&2; exit 1; }
done
[ ${#bins[@]} -gt 5 ] || { echo "gpu-bundle.sh: no test_kernels_*_gpu in $build" >&2; exit 1; }

stage=$work/gpu-bundle
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib" "$stage/models" "$stage/clips"
for f in "${bins[@]}"; do cp "$build/$f" "$stage/bin/"; done
say "binaries from $build: ${bins[*]}"

# ---- the shared libraries they need, less glibc, libstdc++/libgcc_s and CUDA (gpu_common.sh)
declare -A libs=()
for f in "$stage"/bin/*; do
  while read -r name path; do
    gpu_lib_is_system "$name" && continue
    if [ -z "$path" ] || [ ! -f "$path" ]; then echo "gpu-bundle.sh: $f needs $name, which is not found here" >&2; exit 1; fi
    libs[$name]=$path
  done < <(ldd "$f" | sed -n 's/^\s*\(\S*\) => \(\S*\) .*/\1 \2/p; s/^\s*\(\S*\) => not found/\1/p')
done
for name in "${!libs[@]}"; do cp -L "${libs[$name]}" "$stage/lib/$name"; done
say "libraries: $(cd "$stage/lib" && ls | tr '\n' ' ')"

# ---- the demo model and the clips
cp -r "$root/tests/models/qasr-demo" "$stage/models/"
heldout=$work/heldout
if [ ! -f "$heldout/test.tsv" ]; then
  say "making the first 24 held-out clips (scripts/make_corpus.py, espeak-ng + sox)"
  /usr/bin/python3 "$root/scripts/make_corpus.py" "$heldout" --splits test --test 24 --jobs "$(nproc)" >/dev/null
fi
mkdir -p "$stage/clips/heldout/audio/test"
head -n 25 "$heldout/test.tsv" >"$stage/clips/heldout/test.tsv"
tail -n +2 "$stage/clips/heldout/test.tsv" | cut -f1 | while read -r p; do cp "$heldout/$p" "$stage/clips/heldout/$p"; done

mixed=$work/mixed
if [ ! -f "$mixed/mixed.tsv" ]; then
  say "making 32 clips of 2-20 s (espeak-ng + sox, as bench/bench_batch.sh)"
  mkdir -p "$mixed"
  . "$root/bench/common.sh"
  printf 'path\tid\tduration\n' >"$mixed/mixed.tsv.tmp"
  for i in $(seq 0 31); do
    secs=$((2 + (i * 7919) % 19))
    text=""
    for k in 0 1 2 3 4 5; do text="$text ${bench_sentences[$(((i + k) % ${#bench_sentences[@]}))]}"; done
    bench_speak "$mixed/clip-$i.wav" "$secs" en-us $((140 + (i % 5) * 10)) "$text"
    printf 'clip-%d.wav\tclip%02d\t%s\n' "$i" "$i" "$secs" >>"$mixed/mixed.tsv.tmp"
  done
  rm -f "$mixed/raw.wav"
  mv "$mixed/mixed.tsv.tmp" "$mixed/mixed.tsv"
fi
mkdir -p "$stage/clips/mixed"
cp "$mixed"/mixed.tsv "$mixed"/clip-*.wav "$stage/clips/mixed/"

# ---- what it is
{
  echo "qasr GPU check bundle"
  echo "commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m)"
  echo "build: $build (Release, -march=$(cache_get QASR_ARCH), CUDA architectures ${archs:-80 90})"
  echo "cuda: $("$(cache_get CMAKE_CUDA_COMPILER)" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "glibc needed: $(gpu_glibc_needed "$stage"/bin/* "$stage"/lib/*)"
  echo "cuda libraries from the GPU machine: $(for f in "$stage"/bin/*; do readelf -d "$f"; done | sed -n 's/.*NEEDED.*\[\(lib\(cudart\|cublas\|cublasLt\|cufft\)\.so[.0-9]*\)\]/\1/p' | sort -u | tr '\n' ' ')"
  echo "files:"
  (cd "$stage" && find . -type f | sort | sed 's/^\.\///' | while read -r f; do printf '  %10d  %s\n' "$(stat -c %s "$f")" "$f"; done)
} >"$stage/BUNDLE_INFO"

# ---- the archive
say "compressing ($(du -sm "$stage" | cut -f1) MB staged, xz -$xz_preset)"
mkdir -p "$(dirname "$out")"
tar -C "$work" -cf - gpu-bundle | xz -"$xz_preset" -T"$(nproc)" >"$out.tmp"
mv "$out.tmp" "$out"
bytes=$(stat -c %s "$out")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
say "$out: $mb MB ($bytes bytes; limit $limit_mb MB)"
if [ "$bytes" -gt $((limit_mb * 1048576)) ]; then
  echo "gpu-bundle.sh: the bundle is over $limit_mb MB" >&2
  exit 1
fi

# ---- unpacked and checked as gpu-check.sh will on the GPU machine
say "checking the bundle: scripts/gpu-check.sh --bundle $out --steps kit"
"$root/scripts/gpu-check.sh" --bundle "$out" --steps kit --work "$work/check-work" --out "$work/check"
say "done in $(($(date +%s) - t_start)) s: copy $out into the checkout on the GPU machine and run scripts/gpu-check.sh there"
