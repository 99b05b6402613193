#!/usr/bin/python3
"""Adversarial input for qasr-batch, made at test time: special files in the manifest, a WAV cut
short, NUL escapes and absurd durations in manifests, subtitle names that collide, signals while
the manifest is still loading, a symlinked output rewritten by --retry-errors. Each case states
its expected outcome; a hang is a failure (every run has a generous time limit, for hangs only).

usage: test_bad_input.py --bin BUILD_DIR --model DIR --work DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, ROOT, bin_model_work_args, result_lines  # noqa: E402

HANG = 300  # seconds: a run this long has hung (they take about a second)
AUDIO = os.path.join(ROOT, "tests", "audio")


def write_wav(path, seconds):
    """A 16 kHz mono 16-bit WAV of silence."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(2 * round(16000 * seconds)))


def main():
    args = bin_model_work_args(__doc__)
    batch = os.path.join(args.bin, "qasr-batch")
    common = ["--model", args.model, "-n", "4", "--ignore-eos", "-t", "2"]
    chk = Checker()
    work = args.work

    def run(manifest, out, *extra, **kw):
        try:
            return subprocess.run([batch, manifest, "-o", out, *common, *extra], capture_output=True, text=True,
                                  timeout=HANG, **kw)
        except subprocess.TimeoutExpired:
            chk.ok(False, f"{manifest}: qasr-batch still running after {HANG} s (hung)")
            return None

    def manifest(name, rows):
        """work/NAME.tsv with the (path, id) rows; its path."""
        path = os.path.join(work, name + ".tsv")
        with open(path, "w") as f:
            f.write("path\tid\n" + "".join(f"{a}\t{i}\n" for a, i in rows))
        return path

    def by_id(out):
        return {o["id"]: o for o in result_lines(out)}

    # --- special files: an error line naming the kind, never a blocked reader (with and without
    # a duration column: without one, the header probe opens the file before the model loads) ---
    fifo = os.path.join(work, "pipe.wav")
    os.mkfifo(fifo)
    good = os.path.join(AUDIO, "demo.flac")
    for with_duration in (False, True):
        m = os.path.join(work, f"special-{int(with_duration)}.tsv")
        with open(m, "w") as f:
            f.write("path\tid" + ("\tduration" if with_duration else "") + "\n")
            for path, id_ in ((good, "good"), (fifo, "fifo"), ("/dev/zero", "chardev")):
                f.write(f"{path}\t{id_}" + ("\t3.0" if with_duration else "") + "\n")
        out = os.path.join(work, f"special-{int(with_duration)}.jsonl")
        p = run(m, out)
        if p is None:
            continue
        by = by_id(out)
        chk.ok(p.returncode == 1, f"special files: exit {p.returncode}, wanted 1\n{p.stderr}")
        chk.ok(sorted(by) == ["chardev", "fifo", "good"], f"special files: ids {sorted(by)}")
        chk.ok(by.get("good", {}).get("error") is None, f"special files: the good file failed: {by.get('good')}")
        chk.ok("FIFO" in (by.get("fifo", {}).get("error") or ""), f"FIFO: {by.get('fifo')}")
        chk.ok("character device" in (by.get("chardev", {}).get("error") or ""), f"/dev/zero: {by.get('chardev')}")

    # --- a WAV whose header promises 10 s and holds 0.5 s: transcribed, with a warning ---
    full = os.path.join(work, "full.wav")
    write_wav(full, 10)
    cut = os.path.join(work, "cut.wav")
    with open(full, "rb") as f, open(cut, "wb") as g:
        g.write(f.read(44 + 2 * 8000))
    m = manifest("cut", [(cut, "cut"), (good, "good")])
    out = os.path.join(work, "cut.jsonl")
    p = run(m, out)
    if p is not None:
        by = by_id(out)
        c = by.get("cut", {})
        chk.ok(p.returncode == 0 and c.get("error") is None and c.get("text") is not None,
               f"cut WAV: exit {p.returncode}, line {c}")
        warn = c.get("warning") or ""
        chk.ok("promises 10.00 s" in warn and "holds 0.50 s" in warn and cut in warn, f"cut WAV warning: {warn!r}")
        chk.ok(abs((c.get("duration") or 0) - 0.5) < 1e-3, f"cut WAV: duration {c.get('duration')}")
        chk.ok("warning" not in by.get("good", {}), f"whole file: {by.get('good')}")
        chk.ok("warning: " + cut in p.stderr and "promises 10.00 s" in p.stderr, f"cut WAV: stderr\n{p.stderr}")

    # --- manifests: a NUL escape in JSONL, absurd durations; the other lines still run ---
    m = os.path.join(work, "nul.jsonl")
    with open(m, "w") as f:
        f.write(json.dumps({"audio_filepath": good, "id": "ok"}) + "\n")
        f.write('{"audio_filepath": "%s", "id": "cut\\u0000here"}\n' % good)
        f.write(json.dumps({"audio_filepath": good, "id": "escaped", "text": "a \\u0000 b"}) + "\n")
        f.write(json.dumps({"audio_filepath": good, "id": "huge", "duration": 1e300}) + "\n")
    out = os.path.join(work, "nul.jsonl.out")
    p = run(m, out)
    if p is not None:
        ids = sorted(o["id"] for o in result_lines(out))
        chk.ok(ids == ["escaped", "ok"], f"NUL/huge manifest: ids {ids}")
        chk.ok(p.returncode == 1, f"NUL/huge manifest: exit {p.returncode}, wanted 1")
        chk.ok(":2: a string holds \\u0000" in p.stderr, f"NUL line not reported:\n{p.stderr}")
        chk.ok(":4: \"duration\" is not a number of seconds" in p.stderr, f"huge duration not reported:\n{p.stderr}")
    # Durations at the bound, sharded: sums in int64 without overflow (UBSan watches this build).
    m = os.path.join(work, "long.tsv")
    with open(m, "w") as f:
        f.write("path\tid\tduration\n")
        for i in range(64):
            f.write(f"{good}\tlong{i}\t604800\n")
        f.write(f"{good}\ttoo-long\t604801\n")
    p = run(m, os.path.join(work, "long.jsonl"), "--shard", "1/2")
    if p is not None:
        shard_out = os.path.join(work, "long.1-of-2.jsonl")
        got = result_lines(shard_out) if os.path.exists(shard_out) else []
        chk.ok(p.returncode == 1 and len(got) == 32, f"long manifest: exit {p.returncode}, {len(got)} lines in shard 1/2")
        chk.ok(":66: duration '604801' is not a number of seconds" in p.stderr, f"604801 s accepted:\n{p.stderr}")
        chk.ok("of 10752.00 h of audio" in p.stderr, f"shard plan: total of 64 weeks wrong:\n{p.stderr}")

    # --- subtitles: two files of one folder (x/talk.wav, x/talk.flac) get two files ---
    x = os.path.join(work, "x")
    os.makedirs(x)
    shutil.copy(good, os.path.join(x, "talk.flac"))
    shutil.copy(os.path.join(AUDIO, "phone8k.wav"), os.path.join(x, "talk.wav"))
    m = os.path.join(work, "talks.tsv")
    with open(m, "w") as f:
        f.write("path\nx/talk.wav\nx/talk.flac\n")
    subs = os.path.join(work, "subs")
    out = os.path.join(work, "talks.jsonl")
    p = run(m, out, "--format", "srt", "--output-dir", subs)
    if p is not None:
        made = sorted(os.listdir(os.path.join(subs, "x"))) if os.path.isdir(os.path.join(subs, "x")) else []
        chk.ok(p.returncode == 0 and made == ["talk.flac.srt", "talk.wav.srt"], f"subtitles: exit {p.returncode}, {made}")

    # --- signals while the manifest is still being read (stdin held open): exit 4, no lines ---
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        out = os.path.join(work, f"sig{int(sig)}.jsonl")
        proc = subprocess.Popen([batch, "-", "-o", out, *common], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        proc.stdin.write(f"path\n{good}\n")
        proc.stdin.flush()
        time.sleep(0.5)
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            proc.kill()
            chk.ok(False, f"{sig.name} while reading the manifest: still running after {HANG} s")
            continue
        chk.ok(proc.returncode == 4, f"{sig.name} while reading the manifest: exit {proc.returncode}, wanted 4\n{err}")
        chk.ok(not os.path.exists(out) or os.path.getsize(out) == 0, f"{sig.name}: lines written")

    # --- messages: the command's own name, the file named, no raw escape sequence on the terminal ---
    tiny = os.path.join(work, "tiny.wav")
    write_wav(tiny, 10 / 16000)
    esc = os.path.join(work, "x\x1b[2Jy.wav")
    m = manifest("names", [(tiny, "tiny"), (esc, "esc")])
    out = os.path.join(work, "names.jsonl")
    p = run(m, out)
    if p is not None:
        by = by_id(out)
        chk.ok(tiny in (by.get("tiny", {}).get("error") or ""), f"too short: the error does not name the file: {by.get('tiny')}")
        chk.ok("\x1b" not in p.stderr and "x\\x1b[2Jy.wav" in p.stderr, f"escape sequence on stderr: {p.stderr!r}")
    p = run(os.path.join(work, "cut.tsv"), "/dev/full")
    if p is not None:
        chk.ok(p.returncode == 2 and "qasr-batch: /dev/full: writing a result: No space left" in p.stderr
               and "qasr: " not in p.stderr, f"/dev/full: exit {p.returncode}\n{p.stderr}")

    # --- --retry-errors through a symlinked output: the link stays, its target gets the lines ---
    real = os.path.join(work, "real.jsonl")
    link = os.path.join(work, "link.jsonl")
    m = manifest("retry", [(good, "good"), (os.path.join(work, "later.wav"), "later")])
    p = run(m, real)
    os.symlink(real, link)
    shutil.copy(os.path.join(AUDIO, "phone8k.wav"), os.path.join(work, "later.wav"))
    p = run(m, link, "--retry-errors")
    if p is not None:
        chk.ok(os.path.islink(link), "--retry-errors replaced the symlinked output by a file")
        got = {o["id"]: o["error"] for o in result_lines(real)}
        chk.ok(got == {"good": None, "later": None}, f"--retry-errors through a link: target holds {got}")

    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
