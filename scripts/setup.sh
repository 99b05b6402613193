#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install dependencies, build, and transcribe the
# bundled demo audio with the bundled demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
echo "== build/qasr --model tests/models/qasr-demo tests/audio/demo.flac"
build/qasr --model tests/models/qasr-demo tests/audio/demo.flac
