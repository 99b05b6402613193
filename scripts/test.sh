#!/usr/bin/env bash
# The whole test suite: dependencies, a Release build with every ctest label (CPU engine, CUDA
# kernels and backend on the CPU emulation, nvcc compile and real-CUDA link when the toolkit is
# installed; "gpu" tests report skipped without a device), then an AddressSanitizer + UBSan build
# running the unit, tiny-model, CLI and emulated-kernel tests again.
set -euo pipefail
cd "$(dirname "$0")/.."
# The builds and their test models take about 12 GB (the synthetic 0.6B and 1.7B checkpoints and
# the 0.6B aligner at real dimensions are 8 GB of it): said up front rather than as ENOSPC in whichever test
# writes next. What earlier runs left in build/ and build-asan/ is reused, so it counts as room.
have_kb=$( (du -sk build build-asan 2>/dev/null || true) | awk '{ s += $1 } END { print s + 0 }')
need_kb=$((13 * 1024 * 1024 - have_kb))
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "$free_kb" -lt "$need_kb" ]; then
  echo "test.sh: $((free_kb / 1024)) MB free on $(df -P . | awk 'NR == 2 { print $6 }'); the suite needs about 13 GB (build/, build-asan/, test models): free some space" >&2
  exit 1
fi
scripts/deps.sh
scripts/build.sh build
(cd build && ctest --output-on-failure --timeout 1800 -j2)
scripts/build.sh build-asan -DQASR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DQASR_CUDA=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 1800 -L 'unit|sanitize')
