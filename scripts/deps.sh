#!/usr/bin/env bash
# Install the Debian packages qasr needs to build, run and test (Debian 12 "bookworm").
# Skips apt-get entirely when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config         # toolchain
  clang                                    # C++ of the CUDA-on-CPU emulation (cuda/emu)
  libsndfile1-dev libsoxr-dev              # audio decoding and resampling
  libfftw3-dev                             # CPU mel spectrogram
  libdnnl-dev                              # oneDNN: CPU GEMMs (OpenMP build: one thread pool with ours)
  libcjson-dev libutf8proc-dev             # config/tokenizer JSON, Unicode (NFC, categories)
  python3 python3-numpy python3-regex      # synthetic checkpoints and the reference implementation
  espeak-ng sox                            # demo/test speech and audio conversion
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
