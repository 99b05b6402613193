#!/usr/bin/env bash
# The whole test suite: dependencies, a Release build with every ctest label, then an
# AddressSanitizer + UBSan build running the unit tests and the tiny-model tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
(cd build && ctest --output-on-failure --timeout 1800 -j2)
scripts/build.sh build-asan -DQASR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 1800 -L 'unit|sanitize')
