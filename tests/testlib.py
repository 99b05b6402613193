"""What the Python end-to-end tests share: the check counter and its summary line, the
--bin/--model/--work arguments, running a command that must succeed, the dump stage names, the synthetic test clips, and a manifest of the
first entries of a make_corpus.py split.

The tests run as scripts (/usr/bin/python3 tests/<name>.py) and import this module from their
own directory."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Checker:
    """Counts checks; a failed one prints "FAIL: msg" and the run goes on."""

    def __init__(self):
        self.checks = self.failures = 0

    def ok(self, cond, msg):
        self.checks += 1
        if not cond:
            self.failures += 1
            print("FAIL:", msg)
        return cond

    def result(self):
        """Prints the summary; the exit code: 1 if a check failed or none ran."""
        print(f"{self.checks - self.failures}/{self.checks} checks passed")
        return 1 if self.failures or self.checks == 0 else 0


def result_lines(path):
    """The parsed lines of a results file; raises if its last line is torn or a line is not JSON."""
    with open(path, "rb") as f:
        data = f.read()
    assert not data or data.endswith(b"\n"), f"{path}: torn last line"
    return [json.loads(line) for line in data.decode().splitlines()]


def bin_model_work_args(doc):
    """The --bin BUILD_DIR --model DIR --work DIR arguments of an end-to-end test (doc: its
    usage text); the work directory is emptied."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--bin", "--model", "--work"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    return args


def run(cmd, out_tail=None, err_tail=None, env=None):
    """cmd's stdout (env: its environment, None: this one's). If cmd fails: its exit code, the
    command line and its output (only the last out_tail / err_tail characters of stdout /
    stderr, when given) on stderr, then exit 1."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        out = p.stdout[-out_tail:] if out_tail else p.stdout
        err = p.stderr[-err_tail:] if err_tail else p.stderr
        sys.stderr.write(f"command failed ({p.returncode}): {' '.join(cmd)}\n{out}\n{err}\n")
        sys.exit(1)
    return p.stdout


def stage_of(name):
    """The tolerance class of a dumped tensor (mel, enc, dec or logits) from its name."""
    if name == "mel":
        return "mel"
    if name.startswith("enc"):
        return "enc"
    if name.endswith("logits"):
        return "logits"
    return "dec"


# Max |c - ref| relative to max |ref| per stage. fp32 everywhere on both sides; the only
# differences are summation order (BLAS blocking, numpy pairwise sums), the reference's float64
# mel/norm statistics and the engine's polynomial exp/erf (~1e-7 relative). Measured worst
# cases (tiny, 0.6B, 1.7B): mel 1.2e-5 (quiet bins), encoder 1.3e-6, decoder 2.6e-6, logits
# 3.4e-6; the limits leave 4-8x headroom, far below what any modelling error produces (a
# wrong window size or RoPE pairing gives 1e-2 or more).
TOLERANCE = {"mel": 5e-5, "enc": 1e-5, "dec": 2e-5, "logits": 2e-5}


def compare_dumps(chk, label, c_dir, r_dir, skip=()):
    """Every .npy the reference wrote into r_dir against the engine's in c_dir: integer arrays
    equal, float ones within TOLERANCE of their stage (relative to the reference's max), except
    the names in skip (compared by the caller)."""
    names = sorted(f[:-4] for f in os.listdir(r_dir) if f.endswith(".npy") and f[:-4] not in skip)
    chk.ok(len(names) >= 8, f"{label}: reference wrote only {names}")
    worst = {}
    for name in names:
        cpath = os.path.join(c_dir, name + ".npy")
        if not chk.ok(os.path.exists(cpath), f"{label}: engine did not dump {name}"):
            continue
        c, r = np.load(cpath), np.load(os.path.join(r_dir, name + ".npy"))
        if not chk.ok(c.shape == r.shape, f"{label}/{name}: shape {c.shape} vs reference {r.shape}"):
            continue
        if r.dtype.kind == "i":
            chk.ok(np.array_equal(c, r), f"{label}/{name}: ids differ\n  engine    {c.tolist()}\n  reference {r.tolist()}")
            continue
        scale = float(np.max(np.abs(r))) or 1.0
        err = float(np.max(np.abs(c.astype(np.float64) - r))) / scale
        tol = TOLERANCE[stage_of(name)]
        worst[name] = err
        chk.ok(np.all(np.isfinite(c)), f"{label}/{name}: non-finite values")
        chk.ok(err <= tol, f"{label}/{name}: relative error {err:.3g} > {tol:g}")
    if worst:
        top = max(worst, key=worst.get)
        print(f"{label}: {len(names)} tensors, worst {top} {worst[top]:.2e}")


# name -> (samples at 16 kHz, seed). Frame counts T = N // 160.
CLIPS = {
    "short": (9_000, 1),       # T = 56: shorter than one 100-frame chunk, conv unpadded
    "ragged": (53_210, 2),     # T = 332: tail chunk of 32 frames, zero-padded to 100
    "long": (150_000, 3),      # T = 937: 122 tokens, two attention windows (104 + 18)
    "exact": (32_000, 4),      # T = 200: whole chunks only
}


def write_clip(path, n, seed):
    """Speech-like test signal: a few harmonic tones with vibrato plus noise, with a silent gap."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000.0
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t)) + 0.02 * rng.standard_normal(n)
    x[n // 3: n // 3 + n // 10] *= 0.01
    pcm = np.clip(np.round(x * 16000), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())


def corpus_subset(corpus, limit, path):
    """Write a manifest (path, id; absolute paths) of the first `limit` entries of corpus/test.tsv
    (scripts/make_corpus.py) to path; returns their ids, sorted."""
    with open(os.path.join(corpus, "test.tsv"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    cols = header.split("\t")
    ids = []
    with open(path, "w", encoding="utf-8") as m:
        m.write("path\tid\n")
        for line in rows[:limit]:
            r = dict(zip(cols, line.split("\t")))
            m.write(f"{os.path.join(os.path.abspath(corpus), r['path'])}\t{r['id']}\n")
            ids.append(r["id"])
    return sorted(ids)
