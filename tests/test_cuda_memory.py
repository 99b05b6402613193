#!/usr/bin/python3
"""Device memory on the CUDA backend (qasr-emu, on emulated devices of a chosen size): with the KV
cache sized by default, the run's passes are warmed up first and the cache takes what is left,
so a mixed run (files of different lengths and formats decoded together) on a small device
transcribes everything and allocates no device memory after start-up; a device too small for the
passes is an error at load that names the memory and the sizes and says what to lower, never an
abort; so is a --kv-gb that does not fit.

usage: test_cuda_memory.py --bin BUILD_DIR --model DIR --work DIR
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import ROOT, Checker, bin_model_work_args  # noqa: E402

AUDIO = ["speech10s.aiff", "demo.flac", "short.wav", "stereo44k.ogg", "phone8k.wav", "quiet48k.flac",
         "heldout-00000.flac", "heldout-00004.ogg"]


def main():
    args = bin_model_work_args(__doc__)
    qasr = os.path.join(args.bin, "qasr-emu")
    files = [os.path.join(ROOT, "tests", "audio", f) for f in AUDIO]
    chk = Checker()

    def run(mb, extra=()):
        env = dict(os.environ, CUEMU_DEVICE_MEM_MB=str(mb))
        return subprocess.run([qasr, "--model", args.model, "-v", "--batch", "3", "--max-new-tokens", "6", *extra,
                               *files], capture_output=True, text=True, env=env)

    # a small device: weights, the warmed-up passes, and a cache of what is left
    p = run(512)
    chk.ok(p.returncode == 0, f"512 MiB device: exit {p.returncode}\n{p.stderr[-3000:]}")
    chk.ok(len(p.stdout.splitlines()) == len(files), f"512 MiB device: {len(p.stdout.splitlines())} transcripts")
    m = re.search(r"qasr: (\d+) device memory allocations during the run", p.stderr)
    chk.ok(m is not None and m.group(1) == "0", f"allocations after start-up: {m.group(1) if m else 'not reported'}")
    print(f"512 MiB device, {len(files)} files three at a time: "
          f"{m.group(1) if m else '?'} device memory allocations after start-up")

    # too small for the passes: an error at load, naming what ran out and what to lower
    p = run(80)
    chk.ok(p.returncode == 3, f"80 MiB device: exit {p.returncode}, expected 3\n{p.stderr[-2000:]}")
    chk.ok("device memory for a run's passes (lower --batch or --step-tokens)" in p.stderr and
           "out of memory for" in p.stderr and "MB more needed" in p.stderr, f"80 MiB device: message:\n{p.stderr}")
    print(f"80 MiB device: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")

    # a KV cache asked for that does not fit: the same kind of error
    p = run(512, ["--kv-gb", "2"])
    chk.ok(p.returncode != 0 and p.returncode < 128, f"--kv-gb 2 on 512 MiB: exit {p.returncode}")
    chk.ok("out of memory for the KV cache" in p.stderr and "lower --kv-gb" in p.stderr,
           f"--kv-gb 2 on 512 MiB: message:\n{p.stderr[-2000:]}")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
