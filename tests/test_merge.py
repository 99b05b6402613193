#!/usr/bin/python3
"""End-to-end tests of qasr-batch --shard and qasr-merge: three shards of a manifest are
disjoint, cover it, and are exactly the greedy split recomputed here (by duration, or by file
size when durations are missing); the shard from the Slurm variables equals the one from
--shard; a shard resumes; the merge of the shards has one line per id in manifest order with
the texts of an unsharded run; and the merge reports and exits as documented for missing
entries (5, naming them and their shard), error entries (1, listed with their errors),
duplicates, ids not in the manifest, torn last lines (1) and bad invocations (2).

usage: test_merge.py --bin BUILD_DIR --model DIR --work DIR
"""
import json
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, ROOT, bin_model_work_args, result_lines  # noqa: E402

E2E = os.path.join(ROOT, "manifests", "e2e.tsv")
AUDIO = os.path.join(ROOT, "tests", "audio")
N = 3


def run(cmd, env=None, **kw):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, **kw)


def manifest_rows(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip() and not line.startswith("#")]
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def expected_split(path, n):
    """The split shard.h specifies, written again from its text: weights are durations in ms when
    every entry has one, else file sizes (0 when the file cannot be stat'ed); heaviest first, ties
    by id in byte order; each to the least-loaded shard, ties to the lowest index."""
    rows = manifest_rows(path)
    base = os.path.dirname(path)
    if all(r.get("duration") for r in rows):
        weights = [math.floor(float(r["duration"]) * 1000 + 0.5) for r in rows]
    else:
        weights = []
        for r in rows:
            try:
                weights.append(os.stat(os.path.join(base, r["path"])).st_size)
            except OSError:
                weights.append(0)
    ids = [r.get("id") or r["path"] for r in rows]
    loads, shard_of = [0] * n, {}
    for w, i in sorted(zip(weights, ids), key=lambda x: (-x[0], x[1].encode())):
        k = min(range(n), key=lambda s: (loads[s], s))
        shard_of[i] = k
        loads[k] += w
    return ids, shard_of


def main():
    args = bin_model_work_args(__doc__)
    batch = os.path.join(args.bin, "qasr-batch")
    merge = os.path.join(args.bin, "qasr-merge")
    work = args.work
    chk = Checker()
    common = ["--model", args.model, "--backend", "cpu", "-t", "2", "--ignore-eos", "-n", "6"]

    # A manifest of good clips with durations (balanced by duration), ids in no particular order.
    good = os.path.join(work, "good.tsv")
    names = ["demo.flac", "stereo44k.ogg", "phone8k.wav", "quiet48k.flac", "speech10s.aiff", "short.wav"]
    with open(good, "w") as m:
        m.write("id\tpath\tduration\n")
        for i in range(14):
            m.write(f"utt-{(i * 5) % 14:02d}\t{os.path.join(AUDIO, names[i % len(names)])}\t{1 + (i * 37) % 11 * 0.25}\n")

    for label, manifest, want_rc in (("good", good, 0), ("e2e", E2E, 1)):
        ids, shard_of = expected_split(manifest, N)
        ref = os.path.join(work, f"{label}-ref.jsonl")
        p = run([batch, manifest, "-o", ref, "--shard", "none", *common])
        chk.ok(p.returncode == want_rc, f"{label}: unsharded run: exit {p.returncode}\n{p.stderr[-1500:]}")
        ref_text = {o["id"]: o["text"] for o in result_lines(ref)}

        # --- three shards: the names, the stderr line, disjoint, covering, the specified split ---
        out = os.path.join(work, label, "results.jsonl")
        os.makedirs(os.path.dirname(out))
        shard_files = []
        for k in range(N):
            p = run([batch, manifest, "-o", out, "--shard", f"{k}/{N}", *common])
            path = os.path.join(work, label, f"results.{k}-of-{N}.jsonl")
            shard_files.append(path)
            chk.ok(p.returncode in (0, 1) and os.path.exists(path), f"{label} shard {k}: exit {p.returncode}, "
                   f"{path} exists: {os.path.exists(path)}\n{p.stderr[-1500:]}")
            mine = [i for i in ids if shard_of[i] == k]
            chk.ok(f"shard {k}/{N} (from --shard {k}/{N}): {len(mine)} of {len(ids)} entries" in p.stderr,
                   f"{label} shard {k}: no shard line for {len(mine)} entries in:\n{p.stderr[:600]}")
            chk.ok(("h of audio" if label == "good" else "file size") in p.stderr,
                   f"{label} shard {k}: weights not as specified:\n{p.stderr[:600]}")
            got = [o["id"] for o in result_lines(path)] if os.path.exists(path) else []
            chk.ok(sorted(got) == sorted(mine), f"{label} shard {k}: ids {sorted(got)}, wanted {sorted(mine)}")
        chk.ok(not os.path.exists(out), f"{label}: the unsharded name {out} was written")
        all_ids = [o["id"] for f in shard_files if os.path.exists(f) for o in result_lines(f)]
        chk.ok(sorted(all_ids) == sorted(ids), f"{label}: shards not disjoint or not covering: {sorted(all_ids)}")

        # --- merge: one line per id, manifest order, the unsharded texts, the documented exit ---
        merged = os.path.join(work, f"{label}-merged.jsonl")
        p = run([merge, manifest, *shard_files, "-o", merged])
        chk.ok(p.returncode == want_rc, f"{label}: merge exit {p.returncode}, wanted {want_rc}\n{p.stderr}")
        lines = result_lines(merged) if os.path.exists(merged) else []
        chk.ok([o["id"] for o in lines] == ids, f"{label}: merged ids {[o['id'] for o in lines]}")
        chk.ok(all(o["text"] == ref_text.get(o["id"]) for o in lines), f"{label}: merged texts differ from unsharded")
        chk.ok(not os.path.exists(merged + ".tmp"), f"{label}: {merged}.tmp left behind")
        failed = [i for i in ids if i.startswith("broken")]
        chk.ok(f"{len(ids)} entries" in p.stderr and f"{len(failed)} failed, 0 missing" in p.stderr,
               f"{label}: merge counts\n{p.stderr}")
        for i in failed:  # each failed id is listed with its error
            err = next(o["error"] for o in lines if o["id"] == i)
            chk.ok(f"failed: {i}: {err}" in p.stderr, f"{label}: failed id {i} not listed with its error\n{p.stderr}")
        if label == "good":
            chk.ok("every entry exactly once" in p.stderr, f"good: merge message\n{p.stderr}")

    # --- the Slurm variables give the same shard as --shard; irregular arrays are refused ---
    env_out = os.path.join(work, "env", "results.jsonl")
    os.makedirs(os.path.dirname(env_out))
    slurm = {"SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_MAX": "12",
             "SLURM_ARRAY_TASK_STEP": "1", "SLURM_ARRAY_TASK_COUNT": "3"}
    p = run([batch, good, "-o", env_out, *common], env=slurm)
    env_file = os.path.join(work, "env", f"results.1-of-{N}.jsonl")
    chk.ok(p.returncode == 0 and "SLURM_ARRAY_TASK_ID=11" in p.stderr, f"env shard: exit {p.returncode}\n{p.stderr}")
    chk.ok(os.path.exists(env_file) and sorted(o["id"] for o in result_lines(env_file)) ==
           sorted(o["id"] for o in result_lines(os.path.join(work, "good", f"results.1-of-{N}.jsonl"))),
           "the array task 11 of 10-12 is not shard 1/3")
    p = run([batch, good, "-o", env_out, *common], env={**slurm, "SLURM_ARRAY_TASK_MAX": "20"})
    chk.ok(p.returncode == 2 and "--shard K/N" in p.stderr, f"sparse array: exit {p.returncode}\n{p.stderr}")
    p = run([batch, good, "-o", env_out, *common], env={"SLURM_NTASKS": "2", "SLURM_PROCID": "0"})
    chk.ok(p.returncode == 2 and "srun" in p.stderr, f"batch script of -n 2: exit {p.returncode}\n{p.stderr}")
    p = run([batch, good, "-o", env_out, "--shard", "none", *common], env=slurm)
    chk.ok(p.returncode == 0 and os.path.exists(env_out), f"--shard none in an array: exit {p.returncode}")
    p = run([batch, good, "-o", env_out, "--shard", "3/3", *common])
    chk.ok(p.returncode == 2 and "--shard '3/3'" in p.stderr, f"--shard 3/3: exit {p.returncode}\n{p.stderr}")

    # --- a shard resumes: a second run has nothing to do and leaves the file alone ---
    shard0 = os.path.join(work, "good", f"results.0-of-{N}.jsonl")
    before = open(shard0, "rb").read()
    p = run([batch, good, "-o", os.path.join(work, "good", "results.jsonl"), "--shard", f"0/{N}", *common])
    chk.ok(p.returncode == 0 and "nothing to do: every entry of this shard" in p.stderr and
           open(shard0, "rb").read() == before, f"shard resume: exit {p.returncode}\n{p.stderr}")

    # --- damaged inputs (copies of the good shards) ---
    ids, shard_of = expected_split(good, N)
    dmg = os.path.join(work, "damaged")
    os.makedirs(dmg)
    files = []
    for k in range(N):
        files.append(os.path.join(dmg, f"results.{k}-of-{N}.jsonl"))
        shutil.copy(os.path.join(work, "good", f"results.{k}-of-{N}.jsonl"), files[-1])
    merged = os.path.join(work, "damaged-merged.jsonl")

    # shard 1 lost its lines: exit 5, each missing id named, traced to shard 1; the rest written
    lost = [i for i in ids if shard_of[i] == 1]
    open(files[1], "w").close()
    p = run([merge, good, *files, "-o", merged])
    chk.ok(p.returncode == 5 and "INCOMPLETE" in p.stderr, f"missing: exit {p.returncode}\n{p.stderr}")
    chk.ok(all(f"missing: {i} " in p.stderr for i in lost), f"missing ids {lost} not all named\n{p.stderr}")
    chk.ok(f"belong to shard(s) 1 of {N}" in p.stderr, f"missing entries not traced to shard 1\n{p.stderr}")
    chk.ok(len(result_lines(merged)) == len(ids) - len(lost), "the incomplete merge did not write the others")
    p = run([merge, good, files[0], files[2], "-o", merged])
    chk.ok(p.returncode == 5 and f"no input file for shard(s) 1 of {N}" in p.stderr,
           f"absent shard file not named\n{p.stderr}")
    shutil.copy(os.path.join(work, "good", f"results.1-of-{N}.jsonl"), files[1])

    # a duplicate success, an error line for an id that succeeded elsewhere, an id not in the
    # manifest, a torn last line: all reported, exit 1, the merged output still one success per id
    first = result_lines(files[0])[0]
    other = result_lines(files[1])[0]
    with open(files[2], "a") as f:
        f.write(json.dumps(first) + "\n")
        f.write(json.dumps({**other, "text": None, "error": "decoder exploded"}) + "\n")
        f.write(json.dumps({**first, "id": "not-in-manifest"}) + "\n")
        f.write('{"id": "utt-00", "text": "cut')
    p = run([merge, good, *files, "-o", merged])
    chk.ok(p.returncode == 1, f"damaged: exit {p.returncode}, wanted 1\n{p.stderr}")
    chk.ok(f"duplicate: {first['id']} at {files[0]}:1 and {files[2]}:" in p.stderr and "both succeeded" in p.stderr,
           f"duplicate success not reported\n{p.stderr}")
    chk.ok(f"duplicate: {other['id']}" in p.stderr and "kept the success" in p.stderr,
           f"duplicate error not reported\n{p.stderr}")
    chk.ok("not in the manifest (dropped): not-in-manifest" in p.stderr, f"extra id not reported\n{p.stderr}")
    chk.ok("incomplete last line" in p.stderr and f"{files[2]}:" in p.stderr, f"torn line not reported\n{p.stderr}")
    chk.ok("2 duplicate(s), 1 not in the manifest, 1 unreadable line(s)" in p.stderr, f"counts\n{p.stderr}")
    lines = result_lines(merged)
    chk.ok([o["id"] for o in lines] == ids and all(o["error"] is None for o in lines),
           "damaged merge: not one success per id in manifest order")

    # --- bad invocations: exit 2 ---
    p = run([merge, good, *files])
    chk.ok(p.returncode == 2 and "-o FILE" in p.stderr, f"no -o: exit {p.returncode}")
    p = run([merge, good, os.path.join(dmg, "nope.jsonl"), "-o", merged])
    chk.ok(p.returncode == 2 and "nope.jsonl" in p.stderr, f"missing input: exit {p.returncode}\n{p.stderr}")
    p = run([merge, good, *files, merged, "-o", merged])
    chk.ok(p.returncode == 2 and "both an input and the output" in p.stderr, f"output is an input: {p.stderr}")
    p = run([merge, os.path.join(work, "nope.tsv"), *files, "-o", merged])
    chk.ok(p.returncode == 2 and "nope.tsv" in p.stderr, f"unreadable manifest: exit {p.returncode}")
    p = run([merge, "--help"])
    chk.ok(p.returncode == 0 and "exit status" in p.stdout and "5 incomplete" in p.stdout, "--help")

    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
