#!/usr/bin/python3
"""The whole model on the CUDA backend (run on the CPU emulation) against the CPU backend.

For each clip both backends dump every stage (--dump-dir); the CUDA backend computes in bf16
(activations and weights bf16, fp32 math, rounding at each op's output), the CPU backend in
fp32, so stages must agree within bf16 tolerances. Greedy tokens are compared up to the first
step whose fp32 top-2 logit gap (from the CPU run) is below bf16 resolution at that logit's
magnitude: from there on a bf16 run may legitimately pick the other token. The agreement is
reported. Then the same clips go through both backends in one batched call (clips of different
lengths decoded together), compared the same way, and through qasr-batch-emu.

usage: test_cuda_model.py --bin BUILD_DIR --model DIR --work DIR [--steps N] [--gpu] [--modes M,M]
  --gpu: use the real CUDA build (qasr, qasr-batch) instead of the emulated one (qasr-emu,
         qasr-batch-emu); exits 77 (skipped) when no CUDA device is present.
  --modes: only the batched runs of these modes (the first is the reference), equal token ids;
         the sanitizer build runs graphs,capture-fails so that AddressSanitizer watches the
         engine's overlapped steps, graph replays and the fallback from a failed capture.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import CLIPS, Checker, stage_of, write_clip  # noqa: E402
from testlib import run as run_or_exit  # noqa: E402

# Max |cuda - cpu| relative to max |cpu| per stage. One bf16 rounding is <= 2^-9 (0.2%) relative;
# each stage output has passed through a few tens of roundings (every op of every layer rounds
# to bf16, the residual stream included), which add up like a random walk to about 1%.
# Modelling errors (a wrong window, position or head mapping) give errors of 10-100%.
TOLERANCE = {"mel": 0.01, "enc": 0.03, "dec": 0.04, "logits": 0.04}


def run(cmd):
    return run_or_exit(cmd, out_tail=2000, err_tail=4000)  # the emulator can report at length


def trusted_steps(step_logits):
    """Steps whose greedy choice a bf16 run must reproduce: those before the first step whose
    top-2 gap is within bf16 resolution (2^-7 relative) of the top logit."""
    for i, row in enumerate(step_logits):
        top2 = np.sort(row)[-2:]
        if top2[1] - top2[0] <= abs(top2[1]) * 2.0 ** -7:
            return i
    return len(step_logits)


# CUEMU_SYNC=random's seeds (each one whole run, without the race detector: kernels are checked above)
RANDOM_SEEDS = (1, 2, 3)


def mode_table(gpu):
    """Each mode of the batched runs: its flags and environment."""
    modes = {"graphs": ([], {}), "no-graphs": (["--no-cuda-graphs"], {}), "sync-steps": (["--sync-steps"], {})}
    if not gpu:
        modes["capture-fails"] = ([], {"CUEMU_CAPTURE_FAIL": "1"})
        for seed in RANDOM_SEEDS:
            modes[f"random{seed}"] = ([], {"CUEMU_SYNC": "random", "CUEMU_SEED": str(seed), "CUEMU_STATS": "1",
                                          "CUEMU_RACECHECK": "0"})
    return modes


def run_modes(chk, args, emu, wavs, names):
    """The clips in one call with --batch 2 in each named mode: token ids, graph launches (from
    the emulation's trace) and stderr by mode."""
    table = mode_table(args.gpu)
    tokens, launches, stderr = {}, {}, {}
    for mode in names:
        flags, extra = table[mode]
        trace = os.path.join(args.work, f"{mode}.trace")
        if os.path.exists(trace):
            os.remove(trace)
        env = dict(os.environ, **({} if args.gpu else {"CUEMU_TRACE": trace}), **extra)
        cmd = [emu, "--model", args.model, "--json", "-t", "2", "--kv-gb", "0.05", "--backend", "cuda",
               "--batch", "2", *flags, *wavs]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        chk.ok(p.returncode == 0, f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr[-4000:]}")
        tokens[mode] = [json.loads(x)["token_ids"] for x in p.stdout.splitlines()] if p.returncode == 0 else []
        stderr[mode] = p.stderr
        if not args.gpu:
            with open(trace) as f:
                launches[mode] = sum(line.startswith("G\t") for line in f)
    return tokens, launches, stderr


def compare_modes(args, emu, wavs, names):
    """--modes: every named mode's token ids equal the first's, and each mode's runs finished."""
    chk = Checker()
    unknown = [m for m in names if m not in mode_table(args.gpu)]
    if unknown:
        sys.exit(f"--modes: unknown {', '.join(unknown)} (known: {', '.join(mode_table(args.gpu))})")
    tokens, launches, _ = run_modes(chk, args, emu, wavs, names)
    for mode in names[1:]:
        chk.ok(tokens[mode] == tokens[names[0]], f"token ids differ between {names[0]} and {mode}")
    chk.ok(all(len(t) == len(wavs) for t in tokens.values()), f"runs without a line per clip: {tokens}")
    print(f"modes {', '.join(names)}: token ids equal; graph launches {launches}")
    return chk.result()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--modes", help="comma-separated: only these modes' runs (see usage)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    suffix = "" if args.gpu else "-emu"
    cpu, emu = os.path.join(args.bin, "qasr"), os.path.join(args.bin, "qasr" + suffix)
    if args.gpu:
        probe = subprocess.run([emu, "--model", args.model, "--backend", "cuda", "--list-languages"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            print(f"SKIPPED: no usable CUDA device: {probe.stderr.strip()}")
            return 77
    # a small KV cache: the emulated device fills every allocation with 0xFF (uninitialised reads
    # show), and the default 80% of its memory would cost seconds of memset per run
    common = ["--model", args.model, "--json", "--ignore-eos", "--max-new-tokens", str(args.steps), "-t", "2",
              "--kv-gb", "0.05"]
    chk, agree, compared = Checker(), 0, 0
    ok = chk.ok

    clips = ["short", "ragged", "long"]
    wavs, cpu_tokens, cuda_tokens, trusted = [], {}, {}, {}
    for name in clips:
        wav = os.path.join(args.work, f"{name}.wav")
        write_clip(wav, *CLIPS[name])
        wavs.append(wav)
    if args.modes:
        return compare_modes(args, emu, wavs, args.modes.split(","))
    for name, wav in zip(clips, wavs):
        dirs = {b: os.path.join(args.work, f"{name}.{b}") for b in ("cpu", "cuda")}
        res = {}
        for b, exe in (("cpu", cpu), ("cuda", emu)):
            res[b] = json.loads(run([exe, *common, "--backend", b, "--dump-dir", dirs[b], wav]).splitlines()[0])
        worst = {}
        for f in sorted(os.listdir(dirs["cpu"])):
            c = np.load(os.path.join(dirs["cpu"], f))
            g = np.load(os.path.join(dirs["cuda"], f))
            ok(c.shape == g.shape, f"{name}/{f}: shape {g.shape} vs {c.shape}")
            if c.shape != g.shape or c.dtype.kind == "i":
                continue
            key = f[:-4]
            err = float(np.max(np.abs(g.astype(np.float64) - c))) / (float(np.max(np.abs(c))) or 1.0)
            worst[key] = err
            if key == "step_logits":
                continue  # after a legitimate bf16 flip the steps see different tokens
            ok(np.all(np.isfinite(g)), f"{name}/{key}: non-finite values")
            ok(err <= TOLERANCE[stage_of(key)], f"{name}/{key}: relative error {err:.3g} > {TOLERANCE[stage_of(key)]}")
        ok(np.array_equal(np.load(os.path.join(dirs["cpu"], "prompt_ids.npy")),
                          np.load(os.path.join(dirs["cuda"], "prompt_ids.npy"))), f"{name}: prompt ids differ")
        n = trusted_steps(np.load(os.path.join(dirs["cpu"], "step_logits.npy")))
        cpu_tokens[name], cuda_tokens[name], trusted[name] = res["cpu"]["token_ids"], res["cuda"]["token_ids"], n
        ok(cpu_tokens[name][:n] == cuda_tokens[name][:n],
           f"{name}: tokens differ within the first {n} trusted steps\n  cpu  {cpu_tokens[name]}\n  cuda {cuda_tokens[name]}")
        same = sum(a == b for a, b in zip(cpu_tokens[name], cuda_tokens[name]))
        agree, compared = agree + same, compared + len(cpu_tokens[name])
        top = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
        print(f"{name}: {len(worst)} tensors, worst " + ", ".join(f"{k} {v:.2e}" for k, v in top) +
              f"; tokens: {n} trusted steps, {same}/{len(cpu_tokens[name])} equal")

    # all clips in one call: different lengths decoded together must give the single-clip tokens
    batch = [json.loads(x) for x in run([emu, *common, "--backend", "cuda", *wavs]).splitlines()]
    for name, r in zip(clips, batch):
        ok(r["token_ids"] == cuda_tokens[name], f"batched cuda {name}: tokens differ from its single run")
    out = os.path.join(args.work, "batch.jsonl")
    manifest = os.path.join(args.work, "clips.txt")
    with open(manifest, "w") as m:
        m.write("\n".join(wavs) + "\n")
    run([os.path.join(args.bin, "qasr-batch" + suffix), manifest, "--model", args.model, "--backend", "cuda", "-o", out,
         "--overwrite", "-q", "--ignore-eos", "--max-new-tokens", str(args.steps), "--kv-gb", "0.05"])
    rows = {os.path.basename(json.loads(x)["path"]): json.loads(x) for x in open(out)}
    for name in clips:
        r = rows.get(f"{name}.wav")
        ok(r is not None and r["error"] is None and r["n_tokens"] == args.steps, f"qasr-batch{suffix} {name}: {r}")

    # decode steps as CUDA graphs, each launched before the previous step's tokens are read (the
    # default), against op-by-op launches and against steps that wait for their tokens: the same
    # token ids while the batch changes (--batch 2, each clip to its default limit of 32 + 24
    # tokens per second, which this random model reaches: short ends, long is admitted and
    # prefilled, ragged ends, long decodes alone: 2, 2 and 1 rows) and contexts grow across pages
    # and, long's 134 + 257 tokens, past the decode kernel's first context split (256 keys);
    # emulated, the trace shows graph launches with graphs only; and when the first capture fails
    # (CUEMU_CAPTURE_FAIL=1), one warning, graphs off, the step run again op by op, the same ids;
    # and with the streams run in random interleavings (CUEMU_SYNC=random, three seeds: the encoder's
    # and the decoder's stream overtake each other where no event orders them), the same ids
    tokens, launches, stderr = run_modes(chk, args, emu, wavs, list(mode_table(args.gpu)))
    limits = [32 + math.ceil(24 * CLIPS[name][0] / 16000) for name in clips]
    ok([len(t) for t in tokens["graphs"]] == limits, f"graphs: {[len(t) for t in tokens['graphs']]} tokens, expected {limits}")
    ok(tokens["graphs"] == tokens["no-graphs"], "token ids differ with and without CUDA graphs")
    ok(tokens["graphs"] == tokens["sync-steps"], "token ids differ with and without --sync-steps")
    if not args.gpu:
        # about 180 decode steps, of a few sizes (rows, block table) whose first step runs directly
        ok(launches["graphs"] >= 150 and launches["sync-steps"] == launches["graphs"] and launches["no-graphs"] == 0,
           f"graph launches: {launches['graphs']} with graphs, {launches['sync-steps']} with --sync-steps, "
           f"{launches['no-graphs']} without")
        print(f"graph launches: {launches['graphs']}; token ids equal with and without graphs: "
              f"{tokens['graphs'] == tokens['no-graphs']}")
        warned = stderr["capture-fails"].count("CUDA graphs off, capturing a decode step failed")
        ok(tokens["capture-fails"] == tokens["graphs"] and launches["capture-fails"] == 0 and warned == 1,
           f"a failed capture: {launches['capture-fails']} graph launches, {warned} warnings, token ids "
           f"{'equal' if tokens['capture-fails'] == tokens['graphs'] else 'differ'}\n{stderr['capture-fails'][-2000:]}")
        for seed in RANDOM_SEEDS:
            m = re.search(r"cuemu: (\d+) operations run ahead", stderr[f"random{seed}"])
            ahead = int(m.group(1)) if m else 0
            ok(tokens[f"random{seed}"] == tokens["graphs"] and ahead > 0,
               f"streams in random order (seed {seed}): {ahead} operations run ahead, token ids "
               f"{'equal' if tokens[f'random{seed}'] == tokens['graphs'] else 'differ'}")
            print(f"streams in random order (seed {seed}): {ahead} operations run ahead, token ids equal")

    print(f"token agreement cpu (fp32) vs cuda (bf16): {agree}/{compared}")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
