#!/usr/bin/python3
"""The forced aligner on the CUDA backend (run on the CPU emulation, or a real device with --gpu)
against the CPU backend, on a synthetic aligner checkpoint.

Both backends dump every stage of one alignment (--dump-dir); the CUDA backend computes in bf16,
the CPU backend in fp32, so stages agree within test_cuda_model.py's bf16 tolerances. The slot
classes must be equal wherever the CPU's top-1/top-2 logit gap is beyond bf16 resolution (2^-7 of
the top logit; a closer pair may flip legitimately); the CUDA times must be the repair of the
CUDA classes, and equal to the CPU's when no class flipped.

usage: test_aligner_cuda.py --bin BUILD_DIR --aligner DIR --work DIR [--gpu]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import CLIPS, ROOT, Checker, stage_of, write_clip  # noqa: E402
from testlib import run as run_or_exit  # noqa: E402
from test_cuda_model import TOLERANCE  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from qasr_reference import align_repair  # noqa: E402

CASES = [("ragged", "It's 10 o'clock, Mr. O\u2019Neil! Hello world, and again.", "English"),
         ("exact", "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002 fine", "Chinese")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--aligner", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--gpu", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    cpu = os.path.join(args.bin, "qasr")
    cuda = os.path.join(args.bin, "qasr" if args.gpu else "qasr-emu")
    ms = json.load(open(os.path.join(args.aligner, "config.json")))["timestamp_segment_time"]
    chk = Checker()
    for clip, text, language in CASES:
        wav = os.path.join(args.work, clip + ".wav")
        write_clip(wav, *CLIPS[clip])
        if args.gpu:
            probe = subprocess.run([cuda, "--aligner", args.aligner, "--text", "a", "--backend", "cuda", wav],
                                   capture_output=True, text=True)
            if probe.returncode != 0:
                print(f"SKIPPED: no usable CUDA device: {probe.stderr.strip()}")
                return 77
        dirs, res = {}, {}
        for b, exe in (("cpu", cpu), ("cuda", cuda)):
            dirs[b] = os.path.join(args.work, f"{clip}.{b}")
            res[b] = json.loads(run_or_exit([exe, "--aligner", args.aligner, "--text", text, "--language", language,
                                             "--json", "-t", "2", "--kv-gb", "0.05", "--backend", b,
                                             "--dump-dir", dirs[b], wav], out_tail=2000, err_tail=4000))
        worst = {}
        for f in sorted(os.listdir(dirs["cpu"])):
            c, g = np.load(os.path.join(dirs["cpu"], f)), np.load(os.path.join(dirs["cuda"], f))
            if not chk.ok(c.shape == g.shape, f"{clip}/{f}: shape {g.shape} vs {c.shape}") or c.dtype.kind == "i":
                continue
            key = f[:-4]
            err = float(np.max(np.abs(g.astype(np.float64) - c))) / (float(np.max(np.abs(c))) or 1.0)
            worst[key] = err
            chk.ok(np.all(np.isfinite(g)), f"{clip}/{key}: non-finite values")
            chk.ok(err <= TOLERANCE[stage_of(key)], f"{clip}/{key}: relative error {err:.3g} > {TOLERANCE[stage_of(key)]}")
        chk.ok(np.array_equal(np.load(os.path.join(dirs["cpu"], "prompt_ids.npy")),
                              np.load(os.path.join(dirs["cuda"], "prompt_ids.npy"))), f"{clip}: prompt ids differ")
        logits = np.load(os.path.join(dirs["cpu"], "slot_logits.npy"))
        top2 = np.sort(logits, axis=1)[:, -2:]
        trusted = top2[:, 1] - top2[:, 0] > np.abs(top2[:, 1]) * 2.0 ** -7
        cls = {b: np.load(os.path.join(dirs[b], "classes.npy")).tolist() for b in dirs}
        times = {b: np.load(os.path.join(dirs[b], "times_ms.npy")).tolist() for b in dirs}
        flips = [i for i in range(len(cls["cpu"])) if cls["cpu"][i] != cls["cuda"][i]]
        chk.ok(not any(trusted[i] for i in flips), f"{clip}: classes differ at trusted slots {flips}")
        chk.ok(times["cuda"] == align_repair([c * float(ms) for c in cls["cuda"]]),
               f"{clip}: the CUDA times are not the repair of its classes")
        if not flips:
            chk.ok(res["cuda"]["words"] == res["cpu"]["words"], f"{clip}: words or times differ")
        top = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
        print(f"{clip}: {len(worst)} tensors, worst " + ", ".join(f"{k} {v:.2e}" for k, v in top) +
              f"; {len(cls['cpu'])} slots, {int(trusted.sum())} trusted, {len(flips)} flipped")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
