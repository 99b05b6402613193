#!/usr/bin/python3
"""End-to-end tests of qasr-batch: one line per manifest entry, errors where the input is bad,
texts identical to single-file qasr runs, resume after clean runs, after SIGKILL at random
moments and after SIGINT, long files split and joined, malformed manifests, per-file outputs.

usage: test_batch.py --bin BUILD_DIR --model DIR --work DIR
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, ROOT, result_lines  # noqa: E402

MANIFEST = os.path.join(ROOT, "manifests", "e2e.tsv")
TOKENS = "6"  # tokens per segment: the tiny model never stops by itself


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def count_lines(path):
    """Complete lines in path so far (0 if it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def manifest_entries():
    rows = [line.rstrip("\n").split("\t") for line in open(MANIFEST) if line.strip() and not line.startswith("#")]
    header = rows[0]
    return [dict(zip(header, r)) for r in rows[1:]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    batch = os.path.join(args.bin, "qasr-batch")
    qasr = os.path.join(args.bin, "qasr")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    chk = Checker()
    common = ["--model", args.model, "-n", TOKENS, "--ignore-eos", "-t", "2"]

    # --- the bundled manifest: one line per entry, errors exactly for the broken ones ---
    out = os.path.join(args.work, "e2e.jsonl")
    p = run([batch, MANIFEST, "-o", out, "--progress-interval", "0.5", *common])
    chk.ok(p.returncode == 1, f"e2e manifest: exit {p.returncode}, wanted 1 (some failed)\n{p.stderr}")
    lines = result_lines(out)
    entries = manifest_entries()
    ids = [o["id"] for o in lines]
    chk.ok(sorted(ids) == sorted(e["id"] for e in entries), f"ids {sorted(ids)}")
    by_id = {o["id"]: o for o in lines}
    for e in entries:
        o = by_id.get(e["id"])
        if not o:
            continue
        broken = e["id"].startswith("broken")
        chk.ok(bool(o["error"]) == broken, f"{e['id']}: error {o['error']!r}")
        if broken:
            chk.ok(o["text"] is None, f"{e['id']}: text on a failed entry")
            if e["id"] != "broken-directory":
                chk.ok(os.path.basename(e["path"]) in o["error"], f"{e['id']}: error does not name the file: {o['error']}")
        else:
            chk.ok(o["reference"] == e["text"], f"{e['id']}: reference {o['reference']!r}")
            seg = o["segments"]
            chk.ok(len(seg) == 1 and seg[0]["start"] == 0 and abs(seg[0]["end"] - o["duration"]) < 1e-3,
                   f"{e['id']}: segments {seg}")
            chk.ok(o["n_tokens"] == int(TOKENS), f"{e['id']}: n_tokens {o['n_tokens']}")
    chk.ok("named" not in p.stderr and "broken-missing" not in p.stdout, "stdout stays clean")

    # --- batching does not change results: the same files through qasr one call per file ---
    for e in entries:
        if e["id"].startswith("broken"):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(MANIFEST), e["path"]))
        extra = ["--language", e["language"]] if e.get("language") else []
        q = run([qasr, "--json", *common, *extra, path])
        single = json.loads(q.stdout.splitlines()[0])
        chk.ok(single["text"] == by_id[e["id"]]["text"] and single["language"] == by_id[e["id"]]["language"],
               f"{e['id']}: batch text {by_id[e['id']]['text']!r} != single {single['text']!r}")

    # --- resume: nothing to do; retry re-runs only the failed ones ---
    before = open(out, "rb").read()
    p = run([batch, MANIFEST, "-o", out, *common])
    chk.ok(p.returncode == 1 and open(out, "rb").read() == before, "resume rewrote a finished output")
    chk.ok("nothing to do" in p.stderr, f"resume message: {p.stderr}")
    p = run([batch, MANIFEST, "-o", out, "--retry-errors", *common])
    again = result_lines(out)
    chk.ok(sorted(o["id"] for o in again) == sorted(ids), "retry: one line per id")
    chk.ok(sum(1 for o in again if o["error"]) == sum(1 for e in entries if e["id"].startswith("broken")),
           "retry: the broken entries fail again, nothing else")

    # --- kill -9 at random moments, restart until done: exactly one complete line per id ---
    clips = os.path.join(args.work, "clips")
    os.makedirs(clips)
    src = os.path.join(ROOT, "tests", "audio")
    names = ["demo.flac", "stereo44k.ogg", "phone8k.wav", "quiet48k.flac", "speech10s.aiff"]
    # plus two long files cut into pieces (--max-segment-seconds 20): kills land inside them too
    long_kill = os.path.join(args.work, "long-kill.wav")
    subprocess.run(["sox", os.path.join(src, "demo.flac"), "-r", "16000", long_kill, "repeat", "8"], check=True)
    # QASR_TEST_KILLS: more kills than CI's 10 (e.g. 200), on a manifest grown to match
    n_kills = int(os.environ.get("QASR_TEST_KILLS", "10"))
    n_many = max(162, 4 * n_kills + 2)
    with open(os.path.join(args.work, "many.tsv"), "w") as m:
        m.write("path\tid\n")
        for i in range(n_many - 2):
            m.write(f"{os.path.join(src, names[i % len(names)])}\tclip{i:03d}\n")
        m.write(f"{long_kill}\tlong0\n{long_kill}\tlong1\n")
    many = os.path.join(args.work, "many.tsv")
    slow = ["--model", args.model, "-n", "32", "--ignore-eos", "-t", "2", "--batch", "4",
            "--max-segment-seconds", "20"]  # a run of seconds
    ref_out = os.path.join(args.work, "many-ref.jsonl")
    t0 = time.time()
    run([batch, many, "-o", ref_out, *slow])
    span = time.time() - t0
    ref = {o["id"]: o["text"] for o in result_lines(ref_out)}
    pieces = {o["id"]: len(o["segments"]) for o in result_lines(ref_out) if o["id"].startswith("long")}
    chk.ok(pieces and min(pieces.values()) >= 3, f"the long files were not cut into pieces: {pieces}")
    killed_out = os.path.join(args.work, "many-killed.jsonl")
    rng = random.Random(7)
    kills, rc = 0, None
    # Each run is killed after a random number (2-8, or 0-5 beyond 10 kills) of new complete
    # lines plus a random delay of up to two files' time, so kills land at any moment of a run
    # (between lines, mid-write, mid-decode) whatever the machine's speed; after the last kill,
    # a run ends (at most ~150 of the 162 lines are written by then with 10). After every kill
    # the output holds only complete lines, no id twice.
    per_line = span / n_many
    after_kill = []  # what was wrong after a kill, if anything
    for attempt in range(4 * n_kills):
        proc = subprocess.Popen([batch, many, "-o", killed_out, "--fsync-seconds", "-1", "-q", *slow],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kills >= n_kills:
            rc = proc.wait()
            break
        target = count_lines(killed_out) + (rng.randint(2, 8) if n_kills <= 10 else rng.randint(0, 5))
        while proc.poll() is None and count_lines(killed_out) < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 2) * per_line)
        if proc.poll() is not None:
            rc = proc.returncode
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        try:
            now = [o["id"] for o in result_lines(killed_out)] if os.path.exists(killed_out) else []
            if len(now) != len(set(now)):
                after_kill.append(f"kill {kills}: an id written twice")
        except (AssertionError, ValueError) as e:
            after_kill.append(f"kill {kills}: {e}")
    chk.ok(rc == 0, f"after {kills} kills the run did not finish cleanly (exit {rc})")
    chk.ok(kills == n_kills, f"only {kills} kills happened: the test did not exercise resume")
    chk.ok(not after_kill, f"after a kill: {after_kill[:5]}")
    got = result_lines(killed_out)
    print(f"resume after {kills} SIGKILLs: {len(got)} lines")
    chk.ok(len(got) == n_many and len({o["id"] for o in got}) == n_many, f"{len(got)} lines after kills")
    chk.ok(all(ref[o["id"]] == o["text"] for o in got), "texts after kills differ from an uninterrupted run")

    # --- SIGINT: in-flight files finish, exit 4, rerun completes ---
    # (the first 40 entries: SIGINT comes at the first line, the in-flight files leave most undone)
    few = os.path.join(args.work, "few.tsv")
    n_few = 40
    with open(many) as f, open(few, "w") as g:
        g.writelines(f.readlines()[:1 + n_few])
    int_out = os.path.join(args.work, "few-int.jsonl")
    proc = subprocess.Popen([batch, few, "-o", int_out, *slow], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while not (os.path.exists(int_out) and os.path.getsize(int_out) > 0) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    chk.ok(proc.returncode == 4, f"SIGINT: exit {proc.returncode}, wanted 4\n{err}")
    part = result_lines(int_out)
    chk.ok(0 < len(part) < n_few and len({o["id"] for o in part}) == len(part), f"SIGINT: {len(part)} lines")
    p = run([batch, few, "-o", int_out, *slow])
    chk.ok(p.returncode == 0 and len(result_lines(int_out)) == n_few, "rerun after SIGINT did not complete")

    # --- a long file is split at quiet points, segments tile it, texts joined ---
    long_wav = os.path.join(args.work, "long.wav")
    subprocess.run(["sox", os.path.join(src, "demo.flac"), "-r", "16000", long_wav, "repeat", "30"], check=True)
    with wave.open(long_wav) as w:
        duration = w.getnframes() / w.getframerate()
    long_out = os.path.join(args.work, "long.jsonl")
    p = run([batch, "-", "-o", long_out, "--max-segment-seconds", "45", "--format", "srt",
             "--output-dir", os.path.join(args.work, "srt"), *common], input=long_wav + "\n")
    o = result_lines(long_out)[0]
    seg = o["segments"]
    chk.ok(p.returncode == 0 and len(seg) >= 4, f"long file: exit {p.returncode}, {len(seg)} segments")
    chk.ok(seg[0]["start"] == 0 and abs(seg[-1]["end"] - duration) < 1e-3, f"segments do not cover the file: {seg}")
    chk.ok(all(a["end"] == b["start"] for a, b in zip(seg, seg[1:])), "segments are not contiguous")
    chk.ok(all(0 < s["end"] - s["start"] <= 45.0 + 1e-6 for s in seg), "a segment exceeds the limit")
    chk.ok(o["n_tokens"] == int(TOKENS) * len(seg), "segment token counts")
    chk.ok(o["text"] == " ".join(s["text"] for s in seg if s["text"]), "joined text")
    srt = os.path.join(args.work, "srt", os.path.splitext(long_wav.lstrip("/"))[0] + ".srt")
    chk.ok(os.path.exists(srt) and open(srt).read().count(" --> ") == len(seg), f"srt file {srt}")
    # qasr cuts it the same way: the same pieces, texts and tokens, joined the same
    p = run([qasr, "--json", "--max-segment-seconds", "45", *common, long_wav])
    one = json.loads(p.stdout) if p.returncode == 0 else {}
    chk.ok(p.returncode == 0 and (one["text"], one["language"], one["n_tokens"]) == (o["text"], o["language"],
                                                                                     o["n_tokens"])
           and abs(one["audio_seconds"] - duration) < 1e-3,
           f"qasr --max-segment-seconds 45: exit {p.returncode}, {p.stdout[:300]} vs {o['text'][:200]}\n{p.stderr}")
    p = run([qasr, "--json", "--max-segment-seconds", "0", *common, long_wav])
    chk.ok(p.returncode == 0 and json.loads(p.stdout)["n_tokens"] == int(TOKENS), f"qasr, not cut: {p.stdout[:200]}")
    p = run([qasr, "--max-segment-seconds", "5", *common, long_wav])
    chk.ok(p.returncode == 2 and "more than 6" in p.stderr, f"qasr --max-segment-seconds 5: {p.returncode} {p.stderr}")

    # --- malformed manifest lines are reported with their line number; the rest runs ---
    bad = os.path.join(args.work, "bad.tsv")
    with open(bad, "w") as m:
        m.write(f"path\tid\tduration\n{os.path.join(src, 'demo.flac')}\tok\t\n\tnopath\t\n"
                f"{os.path.join(src, 'demo.flac')}\tbaddur\tabc\n{os.path.join(src, 'short.wav')}\tok2\t0.4\n")
    bad_out = os.path.join(args.work, "bad.jsonl")
    p = run([batch, bad, "-o", bad_out, *common])
    chk.ok(p.returncode == 1, f"malformed lines: exit {p.returncode}")
    chk.ok(f"{bad}:3" in p.stderr and f"{bad}:4" in p.stderr, f"line numbers not reported:\n{p.stderr}")
    chk.ok(sorted(o["id"] for o in result_lines(bad_out)) == ["ok", "ok2"], "valid lines not transcribed")

    # --- duplicate ids stop the run before any work ---
    dup = os.path.join(args.work, "dup.tsv")
    with open(dup, "w") as m:
        m.write(f"path\tid\n{os.path.join(src, 'demo.flac')}\tsame\n{os.path.join(src, 'short.wav')}\tsame\n")
    p = run([batch, dup, "-o", os.path.join(args.work, "dup.jsonl"), *common])
    chk.ok(p.returncode == 2 and "same" in p.stderr, f"duplicate ids: exit {p.returncode} {p.stderr}")
    chk.ok(not os.path.exists(os.path.join(args.work, "dup.jsonl")) or
           os.path.getsize(os.path.join(args.work, "dup.jsonl")) == 0, "output written despite duplicate ids")

    # --- bad invocations and a bad model ---
    p = run([batch, MANIFEST, "-o", os.path.join(args.work, "x.jsonl")])
    chk.ok(p.returncode == 2 and "--model" in p.stderr, "missing --model")
    p = run([batch, MANIFEST, "-o", os.path.join(args.work, "x.jsonl"), "--model", args.work, "-n", "4"])
    chk.ok(p.returncode == 3 and "config.json" in p.stderr, f"bad model: exit {p.returncode} {p.stderr[-200:]}")
    p = run([batch, os.path.join(args.work, "nope.tsv"), "--model", args.model])
    chk.ok(p.returncode == 2 and "nope.tsv" in p.stderr, "unreadable manifest")
    p = run([batch, MANIFEST, "-o", os.path.join(args.work, "x.jsonl"), "--model", args.model, "--precision", "f32"])
    chk.ok(p.returncode == 2 and "--precision 'f32'" in p.stderr, f"bad --precision: exit {p.returncode} {p.stderr}")

    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
