#!/usr/bin/python3
"""Audio for bench/predict_gpu.sh: a LibriSpeech-like duration mix, or N clips of one length.

  make_mix.py OUT_DIR librispeech [--count 2620]   durations of test-clean's shape
  make_mix.py OUT_DIR clips --seconds 10 --count 64
  make_mix.py OUT_DIR gpu-check [--count 1024]     the e2e step of scripts/gpu-check.sh: its 32
                                                   clips of 2 + (7919 i mod 19) s looped

The mix: seeded (numpy default_rng(2620)) log-normal durations, mu = ln(7.4) - 0.65^2 / 2,
sigma = 0.65 (mean 7.4 s before clipping), clipped to [1.3, 35] s and rounded to 0.1 s; LibriSpeech
test-clean has 2,620 utterances, mean ~7.4 s, 1.3-35 s. One 16 kHz mono 16-bit WAV per distinct
duration (low-level seeded noise: its values do not matter to the performance trace, which has
no computed values); manifest.tsv lists every utterance (id, path, duration, text), so
utterances of one length share a file. The text (for the aligner's --align-reference) has
LibriSpeech test-clean's rate of words: 52,576 in 19,452 s, 2.7 per second. Prints the total
audio seconds.
"""
import argparse
import os
import wave

import numpy as np


def write_wav(path, seconds, rng):
    n = int(round(seconds * 16000))
    x = (rng.standard_normal(n) * 300).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(x.tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("kind", choices=["librispeech", "clips", "gpu-check"])
    ap.add_argument("--count", type=int, default=2620)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    if a.kind == "librispeech":
        rng = np.random.default_rng(2620)
        sigma = 0.65
        d = rng.lognormal(np.log(7.4) - sigma ** 2 / 2, sigma, a.count)
        d = np.round(np.clip(d, 1.3, 35.0), 1)
    elif a.kind == "gpu-check":  # scripts/gpu-bundle.sh's clip lengths, in gpu-check.sh's loop
        d = np.array([2.0 + (i % 32 * 7919) % 19 for i in range(a.count)])
    else:
        d = np.full(a.count, a.seconds)
    rng = np.random.default_rng(1)
    files = {}
    for s in sorted(set(d.tolist())):
        files[s] = f"a{s:05.1f}.wav"
        write_wav(os.path.join(a.out_dir, files[s]), s, rng)
    words = "the quick brown fox jumps over a lazy dog while seven ships sail into harbour".split()
    with open(os.path.join(a.out_dir, "manifest.tsv"), "w") as f:
        f.write("id\tpath\tduration\ttext\n")
        for i, s in enumerate(d.tolist()):
            n = max(1, round(2.7 * s))
            text = " ".join(words[(i + k) % len(words)] for k in range(n))
            f.write(f"u{i:05d}\t{files[s]}\t{s:.1f}\t{text}\n")
    print(f"{float(d.sum()):.1f}")


if __name__ == "__main__":
    main()
