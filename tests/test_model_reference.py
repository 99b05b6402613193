#!/usr/bin/python3
"""Compare the C engine with the independent numpy reference (scripts/qasr_reference.py),
stage by stage, on a synthetic checkpoint.

For each test clip both implementations dump every stage (mel, conv stem, each encoder layer,
audio embeddings, prompt ids, decoder input, each decoder layer, last-position logits, the
logits of every decode step, greedy tokens); tensors must agree to fp32 accuracy and the greedy
token sequences must be identical. The engine runs its fp32 path (--precision fp32);
test_bf16_path.py compares the bf16 path with it.
The clips cover the encoder's edge cases: a frame count that is not a multiple of 100, a clip
shorter than one conv chunk, and one longer than one 104-token attention window. Then all clips
are transcribed in ONE batched call, which must give exactly the single-clip tokens, and (with
--continuous) again through few sequence slots, a small KV cache and short decoder steps, so
that prefill chunks, mixed prefill/decode steps and sequences joining mid-run are exercised.

usage: test_model_reference.py --qasr BIN --model DIR --work DIR [--steps N] [--clips a,b]
       [--variants] [--continuous GB] [--same-as DIR ...]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import CLIPS, ROOT, Checker, compare_dumps, run, write_clip  # noqa: E402

REFERENCE = os.path.join(ROOT, "scripts", "qasr_reference.py")

def engine_json(qasr, model, wavs, steps, extra=()):
    out = run([qasr, "--model", model, "--json", "--ignore-eos", "--max-new-tokens", str(steps),
               "--threads", "2", "--precision", "fp32", *extra, *wavs])
    return [json.loads(line) for line in out.splitlines()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qasr", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--variants", action="store_true",
                    help="also compare with a context prompt and a forced language")
    ap.add_argument("--continuous", type=float, default=0,
                    help="also run with 2 slots, 37-row steps and a KV cache of this many GB")
    ap.add_argument("--same-as", action="append", default=[],
                    help="another checkpoint of the same weights (sharded, no lm_head): same tokens")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    chk = Checker()

    clips = args.clips.split(",")
    wavs, ref_tokens = [], {}
    for name in clips:
        n, seed = CLIPS[name]
        wav = os.path.join(args.work, f"{name}.wav")
        write_clip(wav, n, seed)
        wavs.append(wav)
        cases = [(name, [], [])]
        if args.variants and name == clips[0]:
            cases += [(name + "-context", ["--context", "Qwen ASR, 交易 停滞"], ["--context", "Qwen ASR, 交易 停滞"]),
                      (name + "-language", ["--language", "english"], ["--language", "English"])]
        for label, c_extra, r_extra in cases:
            c_dir = os.path.join(args.work, label + ".engine")
            r_dir = os.path.join(args.work, label + ".reference")
            res = engine_json(args.qasr, args.model, [wav], args.steps, ["--dump-dir", c_dir, *c_extra])
            run([REFERENCE, "--model", args.model, "--audio", wav, "--dump-dir", r_dir,
                 "--steps", str(args.steps), "--ignore-eos", "--dump-step-logits", *r_extra])
            compare_dumps(chk, label, c_dir, r_dir)
            tokens = np.load(os.path.join(r_dir, "tokens.npy")).tolist()
            chk.ok(res[0]["token_ids"] == tokens,
                   f"{label}: engine tokens {res[0]['token_ids']} != reference {tokens}")
            chk.ok(len(tokens) == args.steps, f"{label}: {len(tokens)} tokens, wanted {args.steps}")
            if label == name:
                ref_tokens[name] = tokens

    batch = engine_json(args.qasr, args.model, wavs, args.steps)
    for name, res in zip(clips, batch):
        chk.ok(res["token_ids"] == ref_tokens[name], f"batched {name}: tokens differ from the single-clip run")
    if args.continuous:
        # Two sequence slots, a KV cache with room for about two sequences and 37-row decoder
        # steps: prompts are prefilled in chunks next to decoding sequences, and waiting clips
        # join as others finish and free their pages.
        flow = engine_json(args.qasr, args.model, wavs + wavs[::-1], args.steps,
                           ["--batch", "2", "--step-tokens", "37", "--kv-gb", str(args.continuous)])
        for name, res in zip(clips + clips[::-1], flow):
            chk.ok(res["token_ids"] == ref_tokens[name], f"continuous batching {name}: tokens differ")
    for other in args.same_as:
        same = engine_json(args.qasr, other, wavs, args.steps)
        for name, res in zip(clips, same):
            chk.ok(res["token_ids"] == ref_tokens[name], f"{other} {name}: tokens differ")

    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
