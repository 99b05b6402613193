#!/usr/bin/env bash
# Install the Debian packages qasr needs to build, run and test (Debian 12 "bookworm").
# Skips apt-get entirely when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config         # toolchain
  clang                                    # C++ of the CUDA-on-CPU emulation (cuda/emu)
  libclang-rt-dev                          # libFuzzer and clang's sanitizers (tests/fuzz)
  libsndfile1-dev libsoxr-dev              # audio decoding and resampling
  libavformat-dev libavcodec-dev libavutil-dev  # FFmpeg: what libsndfile cannot read (M4A, MP4, MKV, WebM, WMA)
  ffmpeg                                   # tests/test_ffmpeg.py makes its files with the CLI
  libfftw3-dev                             # CPU mel spectrogram
  libdnnl-dev                              # oneDNN: CPU GEMMs (OpenMP build: one thread pool with ours)
  libcjson-dev libutf8proc-dev             # config/tokenizer JSON, Unicode (NFC, categories)
  python3 python3-numpy python3-regex      # synthetic checkpoints and the reference implementation
  espeak-ng sox                            # demo/test speech and audio conversion
  python3-pip python3-more-itertools       # scripts/score.py: whisper-normalizer (PyPI, below)
  python3-torch libopenblas0-openmp        # scripts/train_demo_model.py (training; the PyTorch
                                           # agreement test): torch's BLAS is the system libblas,
                                           # the reference BLAS until OpenBLAS provides it
  slurm-wlm munge                          # tests/test_slurm.sh: a private one-node cluster
  python3-pytest python3-venv              # the Python package (python/): its tests; pip install
  python3-setuptools python3-wheel         # ./python into a venv, offline (tests/python)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# PyPI: Whisper's text normaliser, which scripts/score.py applies as the Open ASR Leaderboard
# does (Debian does not package it). Installed for Debian's python3, the interpreter the tests
# use; pip puts it under /usr/local, apart from Debian's own packages, and PEP 668 asks for
# --break-system-packages to allow that. --no-deps: the two modules score.py imports need only
# regex and more-itertools, both from apt above (the package's other dependencies serve its
# Indic and non-English number code, which score.py does not load). Skipped when present.
pypi_spec=whisper-normalizer==0.1.15
pypi_check='import importlib.metadata as m, whisper_normalizer.english, whisper_normalizer.basic
assert m.version("whisper-normalizer") == "0.1.15"'

need_pypi=0
/usr/bin/python3 -c "$pypi_check" 2>/dev/null || need_pypi=1
if [ ${#missing[@]} -eq 0 ] && [ $need_pypi -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root (or sudo) to install: ${missing[*]} $pypi_spec" >&2; exit 1; }
  sudo=sudo
fi
if [ ${#missing[@]} -ne 0 ]; then
  echo "deps.sh: installing ${missing[*]}" >&2
  # The munge and slurm postinst scripts start their services (a system munged with the
  # packaged key; the tests run their own daemons): a temporary policy-rc.d (exit 101) stops
  # that. Only when the host has none, which is then left as it was.
  rcd=/usr/sbin/policy-rc.d
  if [ ! -e $rcd ]; then
    trap '$sudo rm -f $rcd' EXIT
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $rcd >/dev/null
    $sudo chmod 755 $rcd
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! /usr/bin/python3 -c "$pypi_check" 2>/dev/null; then
  echo "deps.sh: installing $pypi_spec (PyPI)" >&2
  $sudo /usr/bin/python3 -m pip install --quiet --no-deps --break-system-packages \
    --root-user-action=ignore --disable-pip-version-check "$pypi_spec"
fi
