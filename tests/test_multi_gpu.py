#!/usr/bin/python3
"""qasr-batch --gpus on 1, 2 and 3 emulated CUDA devices (qasr-batch-emu): the weights reach
the other devices by NCCL broadcast (the emulation's NCCL shim checks that every rank issues
matching calls), every device takes files from the one queue, and the output is the same as
with one device, each entry exactly once; the same with NCCL unavailable (each device uploads
the weights). Then devices fail (CUEMU_FAIL makes a chosen kernel
launch of a device fail stickily, as a lost GPU does): one device of three fails mid-run and
its files in progress are redone by the others, nothing lost, also a long file whose pieces
run on several devices, with and without a forced aligner after transcription on each device
(the words equal to one device's); both devices of two fail and the
run exits 5 with only complete lines, and a rerun finishes the rest.

usage: test_multi_gpu.py --bin BUILD_DIR --model DIR --corpus DIR --work DIR [--limit N] [--aligner DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, corpus_subset  # noqa: E402


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(x) for x in f]


def key(o):
    return (o["text"], o["language"], o["n_tokens"], o["truncated"], o["error"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--aligner", help="a forced aligner: the long-file runs again with word times")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    batch = os.path.join(args.bin, "qasr-batch-emu")

    manifest = os.path.join(args.work, "subset.tsv")
    ids = corpus_subset(args.corpus, args.limit, manifest)

    def run(n_devices, gpus, out, fail=None, extra=(), env_extra=None, manifest_path=manifest):
        env = dict(os.environ, CUEMU_DEVICES=str(n_devices))
        env.pop("CUEMU_FAIL", None)
        env.pop("QASR_NCCL", None)
        if fail:
            env["CUEMU_FAIL"] = fail
        env.update(env_extra or {})
        # --batch 2: a device takes two files at a time, so the files spread over the devices;
        # --kv-gb: the emulated device fills every allocation with 0xFF, a small cache is faster
        cmd = [batch, manifest_path, "--model", args.model, "-o", out, "-t", "2", "--kv-gb", "0.05", "--batch", "2",
               "--progress-interval", "1000", *extra]
        if gpus:
            cmd += ["--gpus", gpus]
        return subprocess.run(cmd, capture_output=True, text=True, env=env)

    chk = Checker()
    ok = chk.ok
    ref_out = os.path.join(args.work, "one.jsonl")
    p = run(1, None, ref_out, extra=["--overwrite"])
    ok(p.returncode == 0, f"one device: exit {p.returncode}\n{p.stderr[-3000:]}")
    ref = {o["id"]: key(o) for o in lines(ref_out)}
    ok(sorted(ref) == ids and all(v[4] is None for v in ref.values()), "one device: one good line per entry")

    for n in (2, 3):
        out = os.path.join(args.work, f"gpus{n}.jsonl")
        p = run(n, ",".join(map(str, range(n))), out, extra=["--overwrite"])
        ok(p.returncode == 0, f"{n} devices: exit {p.returncode}\n{p.stderr[-3000:]}")
        ok("copied to %d more with NCCL broadcast" % (n - 1) in p.stderr, f"{n} devices: weights not broadcast:\n{p.stderr}")
        got = lines(out)
        ok(sorted(o["id"] for o in got) == ids, f"{n} devices: not exactly one line per entry")
        same = sum(key(o) == ref.get(o["id"]) for o in got)
        ok(same == len(ids), f"{n} devices: {same}/{len(ids)} results equal to one device's")
        files = [int(x) for x in re.findall(r"device \d+: (\d+) files", p.stderr)]
        ok(len(files) == n and all(f > 0 for f in files) and sum(files) == len(ids),
           f"{n} devices: files per device {files}")
        print(f"{n} devices: files per device {files}, {same}/{len(ids)} equal to one device")

    # Without NCCL (a runtime that lacks it, here turned off): each device uploads the weights
    # itself, says so, and the results are the same.
    out = os.path.join(args.work, "no_nccl.jsonl")
    p = run(2, "0,1", out, extra=["--overwrite"], env_extra={"QASR_NCCL": "0"})
    ok(p.returncode == 0, f"no NCCL: exit {p.returncode}\n{p.stderr[-3000:]}")
    ok("NCCL is turned off (QASR_NCCL=0): each device uploads the weights itself" in p.stderr,
       f"no NCCL: the fallback is not reported:\n{p.stderr[-2000:]}")
    got = lines(out)
    ok(sorted(o["id"] for o in got) == ids and all(key(o) == ref.get(o["id"]) for o in got),
       "no NCCL: results differ from one device's")

    # One device of three dies at half its usual launches (~1/3 of the work each, about 100 launches
    # per file): the others take over its files in progress.
    out = os.path.join(args.work, "fail1.jsonl")
    p = run(3, "0,1,2", out, fail="1:700", extra=["--overwrite"])
    ok(p.returncode == 0, f"one device failing: exit {p.returncode}\n{p.stderr[-3000:]}")
    ok("device 1 fails at its launch 700" in p.stderr and "device 1 failed" in p.stderr, "device 1 did not fail")
    ok("its files in progress go to the other devices" in p.stderr, f"no files were in flight on device 1:\n{p.stderr}")
    got = lines(out)
    ok(sorted(o["id"] for o in got) == ids, "one device failing: not exactly one line per entry")
    ok(all(key(o) == ref.get(o["id"]) for o in got), "one device failing: results differ from one device's")
    files = dict(re.findall(r"device (\d+): (\d+) files", p.stderr))
    print(f"device 1 failing: files per device {files}")

    # A long file cut into pieces (--max-segment-seconds 7): its pieces run on whichever device is
    # free, one device fails among them, and its line still equals one device's.
    speech = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audio", "heldout-00001.wav")
    long_wav = os.path.join(args.work, "long.wav")
    with wave.open(speech) as r, wave.open(long_wav, "wb") as w:
        w.setparams(r.getparams())
        frames = r.readframes(r.getnframes())
        for _ in range(max(1, round(40 * r.getframerate() / r.getnframes()))):
            w.writeframes(frames)
    long_manifest = os.path.join(args.work, "long.tsv")
    with open(manifest) as f, open(long_manifest, "w") as g:
        g.write("".join(f.readlines()[:3]) + f"{long_wav}\tlong\n")
    long_ref = os.path.join(args.work, "long_one.jsonl")
    p = run(1, None, long_ref, extra=["--overwrite", "--max-segment-seconds", "7"], manifest_path=long_manifest)
    ok(p.returncode == 0, f"long file, one device: exit {p.returncode}\n{p.stderr[-3000:]}")
    want = {o["id"]: key(o) + (len(o["segments"]),) for o in lines(long_ref)}
    ok(want.get("long", (0,) * 6)[5] >= 5, f"long file: not cut into pieces: {want.get('long')}")
    out = os.path.join(args.work, "long_fail1.jsonl")
    p = run(3, "0,1,2", out, fail="1:700", extra=["--overwrite", "--max-segment-seconds", "7"], manifest_path=long_manifest)
    ok(p.returncode == 0 and "device 1 failed" in p.stderr, f"long file, device 1 failing: exit {p.returncode}\n{p.stderr[-3000:]}")
    got = {o["id"]: key(o) + (len(o["segments"]),) for o in lines(out)}
    ok(got == want, f"long file, device 1 failing: results differ from one device's:\n{got}\n{want}")
    if args.aligner:  # the aligner on every device after transcription: a failure may hit either stage
        aligned_ref = os.path.join(args.work, "long_one_aligned.jsonl")
        common = ["--overwrite", "--max-segment-seconds", "7", "--aligner", args.aligner]
        p = run(1, None, aligned_ref, extra=common, manifest_path=long_manifest)
        ok(p.returncode == 0, f"aligned, one device: exit {p.returncode}\n{p.stderr[-3000:]}")
        want = {o["id"]: (key(o), o["words"]) for o in lines(aligned_ref)}
        ok(all(w for _, w in want.values()) and len(want.get("long", (0, []))[1]) > 20,
           f"aligned, one device: words missing: {[(k, len(w or [])) for k, (_, w) in want.items()]}")
        out = os.path.join(args.work, "long_fail1_aligned.jsonl")
        p = run(3, "0,1,2", out, fail="1:700", extra=common, manifest_path=long_manifest)
        ok(p.returncode == 0 and "device 1 failed" in p.stderr, f"aligned, device 1 failing: exit {p.returncode}\n{p.stderr[-3000:]}")
        got = {o["id"]: (key(o), o["words"]) for o in lines(out)}
        ok(got == want, "aligned, device 1 failing: transcripts or words differ from one device's")

    # Both devices die: exit 5, only complete lines; a rerun (devices healthy) does the rest.
    out = os.path.join(args.work, "failall.jsonl")
    p = run(2, "0,1", out, fail="0:900,1:600", extra=["--overwrite"])
    ok(p.returncode == 5, f"all devices failing: exit {p.returncode}, expected 5\n{p.stderr[-3000:]}")
    ok("no device left" in p.stderr and "left undone by failed devices" in p.stderr, f"message:\n{p.stderr[-2000:]}")
    partial = lines(out)
    ok(0 < len(partial) < len(ids), f"all devices failing: {len(partial)} lines (expected some, not all)")
    ok(len({o["id"] for o in partial}) == len(partial), "all devices failing: an id written twice")
    p = run(2, "0,1", out)
    ok(p.returncode == 0, f"rerun: exit {p.returncode}\n{p.stderr[-2000:]}")
    got = lines(out)
    ok(sorted(o["id"] for o in got) == ids, "rerun: not exactly one line per entry")
    ok(all(key(o) == ref.get(o["id"]) for o in got), "rerun: results differ from one device's")

    # A device that does not exist is a usage error naming it.
    p = run(2, "0,5", os.path.join(args.work, "bad.jsonl"), extra=["--overwrite"])
    ok(p.returncode == 2 and "device 5 does not exist" in p.stderr, f"--gpus 0,5: exit {p.returncode} {p.stderr}")
    p = run(2, "1,1", os.path.join(args.work, "bad.jsonl"), extra=["--overwrite"])
    ok(p.returncode == 2 and "listed twice" in p.stderr, f"--gpus 1,1: exit {p.returncode} {p.stderr}")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
