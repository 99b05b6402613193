#!/usr/bin/python3
"""Compare the engine's forced aligner with the independent numpy reference
(scripts/qasr_reference.py --align-text), stage by stage, on a synthetic aligner checkpoint.

For each case (a clip, a transcript, a language) both implementations dump mel, encoder,
prompt ids, decoder layers and the logits at every <timestamp> slot; tensors must agree to fp32
accuracy, the prompt ids exactly, and the slot classes, the words and their times after the
repair must be identical. A class may differ only where the reference's top-1/top-2 margin is
below NEAR_TIE (then the engine's times must still be the repair of its own classes). Random
weights put the slots all over the 400 s class range, so the repair is exercised heavily.
Then every case is aligned again with 37-row decoder steps (the slots of one alignment split
across prefill chunks): the words and times must be the single runs'. With --model, the clips
are transcribed and all transcripts aligned in one batched engine run (two sequence slots, so
alignments also join mid-run), each equal to aligning that transcript alone.

usage: test_aligner_reference.py --qasr BIN --aligner DIR --work DIR [--model ASR_DIR] [--cases a,b]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import CLIPS, ROOT, Checker, compare_dumps, run, write_clip  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from qasr_reference import align_repair  # noqa: E402

REFERENCE = os.path.join(ROOT, "scripts", "qasr_reference.py")
NEAR_TIE = 1e-4  # logits agree to ~3e-6 relative (TOLERANCE): a smaller margin may flip

LONG_TEXT = " ".join("word%d, again." % i for i in range(40))
CASES = [  # (label, clip, transcript, language)
    ("english", "ragged", "It's 10 o'clock, Mr. O\u2019Neil! Hello world.", "English"),
    ("chinese", "exact", "\u6211\u5728Qwen3-ASR\u4e0a\u8dd1\u4e862.5\u5c0f\u65f6\u7684benchmark, it's fine.", "Chinese"),
    ("korean", "exact", "\ubc18\uac11\uc2b5\ub2c8\ub2e4. \uc800\ub294 \ud559\uc0dd\uc785\ub2c8\ub2e4!", "Korean"),
    ("japanese", "short", "\u660e\u65e5\u306f\u96e8\u304c\u964d\u308b\u3067\u3057\u3087\u3046\u3002\uff21\uff29\uff12\uff10\uff12\uff16\u5e74", "Japanese"),
    ("long", "long", LONG_TEXT, None),
]


def engine_align(qasr, aligner, wav, text, language, extra=()):
    lang = ["--language", language] if language else []
    out = run([qasr, "--aligner", aligner, "--text", text, *lang, "--json", "--threads", "2",
               "--precision", "fp32", *extra, wav])
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qasr", required=True)
    ap.add_argument("--aligner", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", help="an ASR checkpoint: also transcribe all clips and align the "
                                    "transcripts in one batched run")
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES), help="which cases (labels)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    chk = Checker()

    single = {}
    for label, clip, text, language in (c for c in CASES if c[0] in args.cases.split(",")):
        n, seed = CLIPS[clip]
        wav = os.path.join(args.work, clip + ".wav")
        write_clip(wav, n, seed)
        c_dir, r_dir = os.path.join(args.work, label + ".engine"), os.path.join(args.work, label + ".reference")
        res = engine_align(args.qasr, args.aligner, wav, text, language, ["--dump-dir", c_dir])
        lang = ["--language", language] if language else []
        run([REFERENCE, "--model", args.aligner, "--audio", wav, "--dump-dir", r_dir,
             "--align-text", text, *lang])
        compare_dumps(chk, label, c_dir, r_dir, skip=("classes", "times_ms"))
        meta = json.load(open(os.path.join(r_dir, "meta.json"), encoding="utf-8"))
        c_classes = np.load(os.path.join(c_dir, "classes.npy")).tolist()
        c_times = np.load(os.path.join(c_dir, "times_ms.npy")).tolist()
        flips = [i for i, (a, b) in enumerate(zip(c_classes, meta["classes"])) if a != b]
        chk.ok(len(c_classes) == len(meta["classes"]), f"{label}: {len(c_classes)} slots vs {len(meta['classes'])}")
        chk.ok(all(meta["margins"][i] < NEAR_TIE for i in flips),
               f"{label}: classes differ at slots {flips} (margins {[meta['margins'][i] for i in flips]})")
        if not flips:
            chk.ok(c_times == [t for w in meta["words"] for t in (w["start_ms"], w["end_ms"])],
                   f"{label}: times differ from the reference's")
        ms = json.load(open(os.path.join(args.aligner, "config.json")))["timestamp_segment_time"]
        chk.ok(c_times == align_repair([c * float(ms) for c in c_classes]),
               f"{label}: the engine's times are not the repair of its classes")
        words = [w["word"] for w in res["words"]]
        chk.ok(words == [w["word"] for w in meta["words"]], f"{label}: words {words} vs {meta['words']}")
        chk.ok([round(w["start"] * 1000) for w in res["words"]] == c_times[0::2] and
               [round(w["end"] * 1000) for w in res["words"]] == c_times[1::2],
               f"{label}: JSON times are not the dumped ones")
        chk.ok(len(set(meta["classes"])) > 1, f"{label}: every slot has the same class: nothing repaired")
        single[label] = (wav, text, language, res["words"])
        print(f"{label}: {len(words)} words, {len(c_classes)} slots, {len(flips)} near-tie flips")

    # chunked: the same alignments in 37-row steps
    flow = [engine_align(args.qasr, args.aligner, wav, text, language, ["--step-tokens", "37"])
            for wav, text, language, _ in single.values()]
    for (label, (_, _, _, words)), res in zip(single.items(), flow):
        chk.ok(res["words"] == words, f"{label}: chunked prefill changed the words or times")

    if args.model:  # transcripts of the ASR model aligned together, against one at a time
        wavs = [v[0] for v in single.values()]
        out = run([args.qasr, "--model", args.model, "--aligner", args.aligner, "--json", "--threads", "2",
                   "--precision", "fp32", "--max-new-tokens", "24", "--batch", "2", "--step-tokens", "37", *wavs])
        aligned = 0
        for line in out.splitlines():
            r = json.loads(line)
            if not r["text"]:
                continue
            aligned += bool(r.get("words"))
            one = engine_align(args.qasr, args.aligner, r["path"], r["text"], r["language"] or None)
            chk.ok(r.get("words") == one["words"] or ("words_error" in r and one.get("error")),
                   f"{r['path']}: batched alignment of the transcript differs from aligning it alone")
        chk.ok(aligned >= 2, f"only {aligned} transcripts got word times in the batched run")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
