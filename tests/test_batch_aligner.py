#!/usr/bin/python3
"""qasr-batch with a forced aligner: word times across the pieces of cut files, subtitle cues
from them (JSON segments and SRT/VTT files agree), alignment of known text (--align-reference),
and the errors of alignment.

The words of a transcribed file must be exactly those `qasr --aligner --text` gives for each
piece's transcript and audio alone, moved by the piece's start: the pieces and their texts come
from the same run with --timestamps none (same cut, same transcripts).

usage: test_batch_aligner.py --bin BUILD_DIR --model ASR_DIR --aligner DIR --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import CLIPS, Checker, result_lines, write_clip  # noqa: E402

TOKENS = "6"  # tokens per piece: the tiny model never stops by itself


def read_wav(path):
    with wave.open(path) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def write_wav(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.astype(np.int16).tobytes())


def align_alone(qasr, aligner, wav, text):
    p = subprocess.run([qasr, "--aligner", aligner, "--text", text, "--json", "-t", "2", wav],
                       capture_output=True, text=True)
    return json.loads(p.stdout) if p.stdout.strip() else {"error": p.stderr}


def srt_cues(path):
    """[(start, end, text)] of a SubRip file, times in seconds."""
    def sec(t):
        h, m, rest = t.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
    cues = []
    for block in open(path, encoding="utf-8").read().strip().split("\n\n"):
        lines = block.split("\n")
        a, b = lines[1].split(" --> ")
        cues.append((sec(a), sec(b), "\n".join(lines[2:])))
    return cues


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--bin", "--model", "--aligner", "--work"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    batch, qasr = os.path.join(args.bin, "qasr-batch"), os.path.join(args.bin, "qasr")
    chk = Checker()

    clips = dict(CLIPS, cut=(20 * 16000 + 1234, 9))  # 20 s: three pieces at 7 s
    manifest = os.path.join(args.work, "m.tsv")
    with open(manifest, "w") as m:
        m.write("path\tid\ttext\n")
        for name, (n, seed) in clips.items():
            write_clip(os.path.join(args.work, name + ".wav"), n, seed)
            m.write(f"{name}.wav\t{name}\tthe {name} clip, said once.\n")
    common = [manifest, "--model", args.model, "-n", TOKENS, "--ignore-eos", "-t", "2", "--max-segment-seconds", "7", "-q"]

    # --- the same run without and with word times ---
    plain, timed = os.path.join(args.work, "plain.jsonl"), os.path.join(args.work, "timed.jsonl")
    p = subprocess.run([batch, *common, "-o", plain, "--aligner", args.aligner, "--timestamps", "none"],
                       capture_output=True, text=True)
    chk.ok(p.returncode == 0, f"--timestamps none: exit {p.returncode}: {p.stderr}")
    subs = os.path.join(args.work, "subs")
    p = subprocess.run([batch, *common, "-o", timed, "--aligner", args.aligner, "--format", "srt", "--output-dir", subs],
                       capture_output=True, text=True)
    chk.ok(p.returncode == 0, f"--aligner: exit {p.returncode}: {p.stderr}")
    plain_lines = {o["id"]: o for o in result_lines(plain)}
    timed_lines = {o["id"]: o for o in result_lines(timed)}
    chk.ok(sorted(timed_lines) == sorted(clips), f"ids {sorted(timed_lines)}")
    chk.ok(all("words" not in o for o in plain_lines.values()), "--timestamps none wrote words")
    n_pieces = 0
    for name in clips:
        a, b = timed_lines.get(name), plain_lines.get(name)
        if not chk.ok(a and b and a["error"] is None and b["error"] is None, f"{name}: {a} / {b}"):
            continue
        chk.ok(a["text"] == b["text"], f"{name}: word times changed the transcript")
        chk.ok("align" in a["timings"], f"{name}: no align timing: {a['timings']}")
        pcm = read_wav(os.path.join(args.work, name + ".wav"))
        want = []
        for i, seg in enumerate(b["segments"]):
            piece = pcm[round(seg["start"] * 16000):round(seg["end"] * 16000)]
            if i > 0 and len(piece) < 8000:
                piece = np.concatenate([piece, np.zeros(8000 - len(piece), np.int16)])
            wav = os.path.join(args.work, f"{name}.piece{i}.wav")
            write_wav(wav, piece)
            if not seg["text"]:
                continue
            one = align_alone(qasr, args.aligner, wav, seg["text"])
            start_ms = round(seg["start"] * 1000)
            want += [{"word": w["word"], "start": (round(w["start"] * 1000) + start_ms) / 1000,
                      "end": (round(w["end"] * 1000) + start_ms) / 1000} for w in one.get("words", [])]
        n_pieces += len(b["segments"])
        chk.ok(a["words"] == want, f"{name}: words are not those of its pieces aligned alone\n  {a['words'][:4]}\n  {want[:4]}")
        # the segments are now cues cut from the words, and the SRT file shows the same cues
        chk.ok(len(a["segments"]) >= 1 and a["segments"][0]["start"] == a["words"][0]["start"],
               f"{name}: the first cue does not start at the first word")
        cues = srt_cues(os.path.join(subs, name + ".srt"))
        chk.ok([(round(s, 3), round(e, 3), t) for s, e, t in cues] ==
               [(s["start"], s["end"], s["text"]) for s in a["segments"]], f"{name}: SRT cues differ from the JSON segments")
        chk.ok(all(e >= s for s, e, _ in cues), f"{name}: a cue ends before it starts")
    chk.ok(n_pieces >= len(clips) + 2, f"only {n_pieces} pieces: the long clip was not cut")
    # qasr cuts and aligns a file as qasr-batch does: the same text and words in file time
    p = subprocess.run([qasr, "--model", args.model, "--aligner", args.aligner, "--json", "-n", TOKENS, "--ignore-eos",
                        "-t", "2", "--max-segment-seconds", "7", os.path.join(args.work, "cut.wav")],
                       capture_output=True, text=True)
    one = json.loads(p.stdout) if p.returncode == 0 else {}
    b = timed_lines.get("cut", {})
    ms = lambda words: [(w["word"], round(w["start"] * 1000), round(w["end"] * 1000)) for w in words or []]  # noqa: E731
    chk.ok(p.returncode == 0 and one["text"] == b.get("text") and ms(one["words"]) == ms(b.get("words")),
           f"qasr --aligner on the cut clip: exit {p.returncode} {p.stderr}\n  {one.get('words', [])[:4]}\n"
           f"  {(b.get('words') or [])[:4]}")

    # --- resume: nothing left to do ---
    p = subprocess.run([batch, *common, "-o", timed, "--aligner", args.aligner], capture_output=True, text=True)
    chk.ok(p.returncode == 0 and len(result_lines(timed)) == len(clips), f"resume: exit {p.returncode}")

    # --- known text: --align-reference, and its errors ---
    ref_manifest = os.path.join(args.work, "ref.tsv")
    with open(ref_manifest, "w") as m:
        m.write("path\tid\ttext\n")
        for name in ("short", "ragged", "exact"):
            m.write(f"{name}.wav\t{name}\tIt's the {name} clip: 10 o'clock.\n")
        m.write("short.wav\tpunct\t?! ...\n")     # nothing to align
        m.write("cut.wav\ttoo-long\tthe cut clip\n")  # three pieces: its text cannot be split
        m.write("exact.wav\tno-text\t\n")
    out = os.path.join(args.work, "ref.jsonl")
    p = subprocess.run([batch, ref_manifest, "--aligner", args.aligner, "--align-reference", "-o", out, "-t", "2",
                        "--max-segment-seconds", "7", "-q"], capture_output=True, text=True)
    chk.ok(p.returncode == 1, f"--align-reference: exit {p.returncode}, wanted 1 (some failed): {p.stderr}")
    lines = {o["id"]: o for o in result_lines(out)}
    for name in ("short", "ragged", "exact"):
        o = lines.get(name, {})
        one = align_alone(qasr, args.aligner, os.path.join(args.work, name + ".wav"), f"It's the {name} clip: 10 o'clock.")
        chk.ok(o.get("error") is None and o.get("words") == one.get("words") and len(one.get("words", [])) == 6,
               f"--align-reference {name}: {o.get('words')} vs {one.get('words')}")
    chk.ok("no word to align" in (lines.get("punct", {}).get("error") or ""), f"punct: {lines.get('punct')}")
    chk.ok("aligned with its whole audio" in (lines.get("too-long", {}).get("error") or ""), f"too-long: {lines.get('too-long')}")
    chk.ok("no transcript to align" in (lines.get("no-text", {}).get("error") or ""), f"no-text: {lines.get('no-text')}")

    # --- a speech model given as the aligner, an aligner as the model: exit 3, named ---
    for opts, what in (([ "--model", args.model, "--aligner", args.model], "not a Qwen3-ForcedAligner"),
                       (["--model", args.aligner], "a Qwen3-ForcedAligner checkpoint")):
        p = subprocess.run([batch, ref_manifest, *opts, "-o", os.path.join(args.work, "x.jsonl"), "--overwrite"],
                           capture_output=True, text=True)
        chk.ok(p.returncode == 3 and what in p.stderr, f"{opts}: exit {p.returncode}: {p.stderr}")
    p = subprocess.run([batch, ref_manifest, "--align-reference", "-o", os.path.join(args.work, "x.jsonl")],
                       capture_output=True, text=True)
    chk.ok(p.returncode == 2 and "--aligner" in p.stderr, f"--align-reference alone: exit {p.returncode}: {p.stderr}")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
