#!/usr/bin/python3
"""LibriSpeech directory -> qasr-batch manifest (TSV: path, id, text).

Usage:
    librispeech_manifest.py DIR [DIR ...] -o manifest.tsv [--absolute] [--limit N]
                            [--language English]

DIR is any directory of a LibriSpeech download as unpacked (LibriSpeech/, or a split such
as LibriSpeech/test-clean, or one speaker's folder): every SPEAKER-CHAPTER.trans.txt below it
is read, each line "UTTERANCE-ID TRANSCRIPT" becoming one entry whose audio is
UTTERANCE-ID.flac beside it. Entries are sorted by id (speaker, chapter, utterance numbers
compared as numbers); the transcript is kept as distributed (upper case, no punctuation:
score.py normalises both sides). Paths are written relative to the manifest's folder
(qasr-batch resolves them from there), or absolute with --absolute. A transcript line whose
.flac is missing is an error (exit 1, each one named) unless --skip-missing.
No language column by default: the published Qwen3-ASR numbers (MODEL.md section 14) were
measured without a forced language, and a manifest `language` column forces it; --language
adds one.

Then:
    build/qasr-batch manifest.tsv --model Qwen3-ASR-0.6B -o results.jsonl
    scripts/score.py results.jsonl --manifest manifest.tsv
"""

import argparse
import os
import sys


def numeric_key(uid):
    return [int(p) if p.isdigit() else p for p in uid.split("-")]


def collect(dirs, skip_missing):
    entries, missing = {}, []
    for top in dirs:
        if not os.path.isdir(top):
            raise SystemExit("librispeech_manifest.py: %s is not a directory" % top)
        for d, _, files in os.walk(top):
            for fn in sorted(files):
                if not fn.endswith(".trans.txt"):
                    continue
                with open(os.path.join(d, fn), encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        line = line.strip()
                        if not line:
                            continue
                        uid, _, text = line.partition(" ")
                        if not text:
                            raise SystemExit("%s:%d: no transcript after the id"
                                             % (os.path.join(d, fn), n))
                        audio = os.path.join(d, uid + ".flac")
                        if not os.path.exists(audio):
                            missing.append(audio)
                            if skip_missing:
                                continue
                        entries[uid] = (audio, " ".join(text.split()))
    return entries, missing


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("dirs", nargs="+", metavar="DIR")
    ap.add_argument("-o", "--output", required=True, help="manifest to write (- = stdout)")
    ap.add_argument("--absolute", action="store_true", help="absolute audio paths")
    ap.add_argument("--limit", type=int, default=0, help="keep the first N entries (by id)")
    ap.add_argument("--language", help="add a language column with this value (forces it)")
    ap.add_argument("--skip-missing", action="store_true",
                    help="leave out transcript lines without audio instead of failing")
    args = ap.parse_args(argv)
    entries, missing = collect(args.dirs, args.skip_missing)
    if missing and not args.skip_missing:
        for m in missing[:20]:
            print("librispeech_manifest.py: missing audio %s" % m, file=sys.stderr)
        print("librispeech_manifest.py: %d transcript lines have no .flac (--skip-missing to "
              "leave them out)" % len(missing), file=sys.stderr)
        return 1
    if not entries:
        print("librispeech_manifest.py: no *.trans.txt under %s" % " ".join(args.dirs), file=sys.stderr)
        return 1
    ids = sorted(entries, key=numeric_key)
    if args.limit:
        ids = ids[:args.limit]
    base = os.path.dirname(os.path.abspath(args.output)) if args.output != "-" else os.getcwd()
    lines = ["path\tid\ttext" if not args.language else "path\tid\tlanguage\ttext"]
    for uid in ids:
        audio, text = entries[uid]
        path = os.path.abspath(audio) if args.absolute else os.path.relpath(os.path.abspath(audio), base)
        lang = "\t" + args.language if args.language else ""
        lines.append("%s\t%s%s\t%s" % (path, uid, lang, text))
    data = "\n".join(lines) + "\n"
    if args.output == "-":
        sys.stdout.write(data)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(data)
    print("librispeech_manifest.py: %d entries%s -> %s" % (
        len(ids), " (%d without audio left out)" % len(missing) if missing else "", args.output),
        file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
