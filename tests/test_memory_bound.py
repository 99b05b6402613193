#!/usr/bin/python3
"""qasr-batch's memory does not grow with the length of the files: long files are read and cut
into pieces as they stream (README: audio in memory), so four entries of a 2-hour file take no
more memory than four of a 40-minute file, where holding each file whole would take ~1.2 GB more
(4 x 80 min of 16 kHz float32). Both runs use --readers 4 and are sampled over the same first
seconds (peak resident memory, VmHWM), then killed: the bound is about what is held, not speed.

usage: test_memory_bound.py --bin BUILD_DIR --model DIR --work DIR
"""
import os
import subprocess
import sys
import time
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, bin_model_work_args  # noqa: E402

WINDOW = 12      # seconds sampled: readers and workers are long in their steady state by then
SLACK_MB = 100   # allowed difference; holding the files whole would differ by ~1,200 MB


def write_wav(path, minutes):
    """16 kHz mono 8-bit noise (8-bit keeps the 2-hour file at 115 MB)."""
    block = (128 + np.random.default_rng(1).integers(-3, 4, 16000 * 60)).astype(np.uint8).tobytes()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(16000)
        for _ in range(minutes):
            w.writeframes(block)


def peak_rss_mb(batch, model, work, minutes):
    """Peak resident memory of a run on 4 entries of a `minutes`-long file, over WINDOW seconds."""
    audio = os.path.join(work, f"long{minutes}.wav")
    write_wav(audio, minutes)
    manifest = os.path.join(work, f"long{minutes}.tsv")
    with open(manifest, "w") as f:
        f.write("path\tid\n" + "".join(f"{audio}\t{i}\n" for i in range(4)))
    p = subprocess.Popen([batch, manifest, "--model", model, "-o", os.path.join(work, f"long{minutes}.jsonl"),
                          "--readers", "4", "-t", "2", "-n", "4", "--ignore-eos", "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    end = time.time() + WINDOW
    while time.time() < end and p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                peak = max([peak] + [int(x.split()[1]) for x in f if x.startswith("VmHWM:")])
        except OSError:
            break
        time.sleep(0.2)
    p.kill()
    _, err = p.communicate()
    os.remove(audio)
    return peak / 1024, p.returncode, err


def main():
    args = bin_model_work_args(__doc__)
    batch = os.path.join(args.bin, "qasr-batch")
    chk = Checker()
    short, rc_s, err_s = peak_rss_mb(batch, args.model, args.work, 40)
    long_, rc_l, err_l = peak_rss_mb(batch, args.model, args.work, 120)
    print(f"peak resident memory, 4 x 40 min: {short:.0f} MB; 4 x 2 h: {long_:.0f} MB")
    chk.ok(short > 0 and long_ > 0, f"no memory figure (exit {rc_s}, {rc_l})\n{err_s}\n{err_l}")
    chk.ok(long_ - short < SLACK_MB, f"4 x 2 h took {long_ - short:.0f} MB more than 4 x 40 min (at most {SLACK_MB})")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
