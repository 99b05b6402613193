#!/usr/bin/python3
"""Device memory on the CUDA backend (qasr-emu, on emulated devices of a chosen size): with the KV
cache sized by default, the run's passes are warmed up first and the cache takes what is left,
so a mixed run (files of different lengths and formats decoded together) on a small device
transcribes everything and allocates no device memory after start-up; a device too small for the
passes is an error at load that names the memory and the sizes and says what to lower, never an
abort; so is a --kv-gb that does not fit. The default batch comes from the device's memory: more
sequences on a larger device (32..512), from the --kv-gb given, 32 on the CPU.

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

    def run(mb, extra=(), batch=("--batch", "3")):
        env = dict(os.environ, CUEMU_DEVICE_MEM_MB=str(mb))
        return subprocess.run([qasr, "--model", args.model, "-v", *batch, "--max-new-tokens", "6", *extra,
                               *files], capture_output=True, text=True, env=env)

    def batch_size(stderr):
        m = re.search(r"loaded in [0-9.]+ s \(.*\); (\d+) sequences per batch", stderr)
        return int(m.group(1)) if m else None

    # a small device, the default batch: weights, the warmed-up passes (sized by the batch chosen
    # from what the encoder pass left), and a cache of what is left
    p = run(512, batch=())
    chk.ok(p.returncode == 0, f"512 MiB device: exit {p.returncode}\n{p.stderr[-3000:]}")
    chk.ok(len(p.stdout.splitlines()) == len(files), f"512 MiB device: {len(p.stdout.splitlines())} transcripts")
    m = re.search(r"qasr: (\d+) device memory allocations during the run", p.stderr)
    chk.ok(m is not None and m.group(1) == "0", f"allocations after start-up: {m.group(1) if m else 'not reported'}")
    n512 = batch_size(p.stderr)
    chk.ok(n512 is not None and 32 <= n512 <= 512, f"512 MiB device: default batch {n512}")
    print(f"512 MiB device, {len(files)} files, default batch {n512}: "
          f"{m.group(1) if m else '?'} device memory allocations after start-up")

    # the default batch follows the memory (qasr-batch, a small encoder pass so that the
    # sequences' share is what grows): more on a larger device, from --kv-gb when given, 32 on the CPU
    manifest = os.path.join(args.work, "two.tsv")
    os.makedirs(args.work, exist_ok=True)
    with open(manifest, "w") as f:
        f.write("id\tpath\n" + "".join(f"f{i}\t{files[i]}\n" for i in (2, 4)))

    def batch_run(mb, extra):
        env = dict(os.environ, CUEMU_DEVICE_MEM_MB=str(mb))
        p = subprocess.run([os.path.join(args.bin, "qasr-batch-emu"), manifest, "--model", args.model,
                            "--max-new-tokens", "4", "-o", os.path.join(args.work, "out.jsonl"), "--overwrite",
                            *extra], capture_output=True, text=True, env=env)
        chk.ok(p.returncode == 0, f"qasr-batch {mb} MiB {extra}: exit {p.returncode}\n{p.stderr[-2000:]}")
        return batch_size(p.stderr)

    small = batch_run(160, ["--backend", "cuda", "--encoder-seconds", "10"])
    large = batch_run(320, ["--backend", "cuda", "--encoder-seconds", "10"])
    chk.ok(small is not None and large is not None and 32 < small < large < 512,
           f"default batch on 160 MiB {small}, on 320 MiB {large}: expected 32 < small < large < 512")
    kv1 = batch_run(4096, ["--backend", "cuda", "--kv-gb", "0.1"])
    kv2 = batch_run(4096, ["--backend", "cuda", "--kv-gb", "0.2"])
    chk.ok(kv1 is not None and kv2 is not None and 32 < kv1 < 256 and abs(kv2 - 2 * kv1) <= 2,
           f"default batch with --kv-gb 0.1: {kv1}, 0.2: {kv2} (expected twice)")
    cpu = batch_run(4096, ["--backend", "cpu"])
    chk.ok(cpu == 32, f"default batch on the CPU: {cpu}")
    print(f"default batch: 160 MiB {small}, 320 MiB {large}; --kv-gb 0.1 {kv1}, 0.2 {kv2}; CPU {cpu}")

    # too small for the passes: an error at load, naming what ran out and what to lower
    p = run(96)  # the weights, the RoPE table and the lanes' cuBLASLt workspaces fit; the passes do not
    chk.ok(p.returncode == 3, f"96 MiB device: exit {p.returncode}, expected 3\n{p.stderr[-2000:]}")
    chk.ok("device memory for a run's passes (lower --batch or --step-tokens)" in p.stderr and
           "out of memory for" in p.stderr and "MB more needed" in p.stderr, f"96 MiB device: message:\n{p.stderr}")
    print(f"96 MiB device: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")

    # a KV cache asked for that does not fit: the same kind of error
    p = run(512, ["--kv-gb", "2"])
    chk.ok(p.returncode != 0 and p.returncode < 128, f"--kv-gb 2 on 512 MiB: exit {p.returncode}")
    chk.ok("out of memory for the KV cache" in p.stderr and "lower --kv-gb" in p.stderr,
           f"--kv-gb 2 on 512 MiB: message:\n{p.stderr[-2000:]}")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
