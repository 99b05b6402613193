#!/usr/bin/env bash
# The whole test suite: dependencies, a Release build with every ctest label (CPU engine, CUDA
# kernels and backend on the CPU emulation, nvcc compile and real-CUDA link when the toolkit is
# installed; "gpu" tests report skipped without a device), then an AddressSanitizer + UBSan build
# running the unit, tiny-model, CLI and emulated-kernel tests again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
(cd build && ctest --output-on-failure --timeout 1800 -j2)
scripts/build.sh build-asan -DQASR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DQASR_CUDA=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 1800 -L 'unit|sanitize')
