#!/usr/bin/python3
"""Word and character error rates of a qasr-batch results file.

Usage:
    score.py RESULTS.jsonl [--manifest M.tsv] [--normalizer whisper] [--group-by COL,...]
             [--rows N] [--json OUT.json|-] [--max-wer PCT] [--min-language-accuracy PCT]

References come from the manifest's `text` column (TSV with a header row, or NeMo JSONL),
matched by id (the id column, else the path as written, as qasr-batch does), or, without
--manifest, from the `reference` field qasr-batch copies into each line. Entries without a
reference are left out (and counted).

Corpus-level rates, as the Open ASR Leaderboard reports them:
    WER = (substitutions + deletions + insertions) / reference words, summed over the corpus
    CER = the same over characters of the normalised texts (spaces included)
from one minimum-edit alignment per utterance. An entry whose line has an error, and a
manifest entry with no line at all, count as all deletions (hypothesis empty) and are
listed as such: a run that failed on half its files does not look good.

Normalisers (--normalizer), applied to both reference and hypothesis:
    whisper        (default) the Open ASR Leaderboard's: Whisper's EnglishTextNormalizer
                   (PyPI whisper-normalizer) for English entries and entries of unknown
                   language, Whisper's BasicTextNormalizer for the other languages; the
                   language is the manifest's reference language (below)
    whisper-en     EnglishTextNormalizer for every entry
    whisper-basic  BasicTextNormalizer for every entry
    plain          lowercase (Unicode), every punctuation or symbol character becomes a
                   space except an apostrophe between two letters, spaces collapsed
    none           split on whitespace only

Language: the reference language of an entry is the manifest's `ref_language` column (which
qasr-batch ignores), else its `language` column (which qasr-batch forces into the prompt, so
the check is then trivial). When there is one, the share of entries whose output language
equals it (case-insensitive; error lines count as wrong) is reported too.

Output: a summary, per-group lines (--group-by: manifest columns, e.g. subset,language),
then the worst --rows utterances (highest WER first). --json writes everything (summary,
groups, every utterance with its alignment counts) as JSON. Exit status: 0; 1 when
--max-wer or --min-language-accuracy is not met; 2 for bad input.
"""

import argparse
import json
import os
import re
import sys
import unicodedata


# ----------------------------------------------------------------------------------------
# inputs

def die(msg):
    print("score.py: " + msg, file=sys.stderr)
    sys.exit(2)


def read_results(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
            except json.JSONDecodeError as e:
                die("%s:%d: not JSON (%s)" % (path, n, e))
            key = o.get("id", o.get("path"))
            if key is None:
                die("%s:%d: no id or path" % (path, n))
            out[str(key)] = o
    return out


def read_manifest(path):
    """-> list of dicts with id, text (may be None), language, plus any other column."""
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\r\n") for l in f]
    body = [l for l in lines if l.strip() and not l.lstrip().startswith("#")]
    if body and body[0].lstrip().startswith("{"):          # NeMo JSONL
        for l in body:
            o = json.loads(l)
            rows.append(dict(o, id=str(o.get("id", o.get("audio_filepath"))),
                             text=o.get("text"),
                             language=o.get("ref_language") or o.get("lang") or o.get("language") or ""))
        return rows
    if not body:
        return rows
    header = body[0].split("\t")
    if "path" not in header:
        die("%s: the first row must name the columns (path, id, text, ...)" % path)
    for l in body[1:]:
        r = dict(zip(header, l.split("\t")))
        r["id"] = r.get("id") or r.get("path", "")
        r["language"] = r.get("ref_language") or r.get("language") or ""
        if "text" not in header:
            r["text"] = None
        rows.append(r)
    return rows


# ----------------------------------------------------------------------------------------
# normalisers

_WHISPER = {}


def _whisper(kind):
    if kind not in _WHISPER:
        try:
            if kind == "en":
                from whisper_normalizer.english import EnglishTextNormalizer as N
            else:
                from whisper_normalizer.basic import BasicTextNormalizer as N
        except ImportError:
            die("the whisper normaliser needs the PyPI package whisper-normalizer "
                "(scripts/deps.sh installs it); or use --normalizer plain")
        _WHISPER[kind] = N()
    return _WHISPER[kind]


def normalize_plain(s):
    s = unicodedata.normalize("NFKC", s).lower()
    out = []
    for i, ch in enumerate(s):
        cat = unicodedata.category(ch)
        if ch in "'\u2019" and 0 < i < len(s) - 1 and s[i - 1].isalpha() and s[i + 1].isalpha():
            out.append("'")
        elif cat[0] in "PS":
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def normalizer(name):
    """-> f(text, language) -> normalised text."""
    if name == "none":
        return lambda s, lang: " ".join(s.split())
    if name == "plain":
        return lambda s, lang: normalize_plain(s)
    if name == "whisper-en":
        return lambda s, lang: " ".join(_whisper("en")(s).split())
    if name == "whisper-basic":
        return lambda s, lang: " ".join(_whisper("basic")(s).split())
    if name == "whisper":
        def f(s, lang):
            kind = "en" if (lang or "English").strip().lower() in ("english", "en") else "basic"
            return " ".join(_whisper(kind)(s).split())
        return f
    die("unknown normaliser %r" % name)


# ----------------------------------------------------------------------------------------
# alignment

def edit_counts(ref, hyp):
    """Minimum-edit alignment of two sequences -> (substitutions, deletions, insertions).

    Among the alignments with the fewest edits, the backtrace prefers a match or
    substitution, then a deletion, then an insertion (so S/D/I split the same way on ties
    as the usual DP backtrace)."""
    n, m = len(ref), len(hyp)
    if n == 0:
        return 0, 0, m
    if m == 0:
        return 0, n, 0
    prev = list(range(m + 1))
    rows = [prev]
    for i in range(1, n + 1):
        cur = [i] + [0] * m
        r = ref[i - 1]
        for j in range(1, m + 1):
            cur[j] = min(prev[j - 1] + (r != hyp[j - 1]), prev[j] + 1, cur[j - 1] + 1)
        rows.append(cur)
        prev = cur
    s = d = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and rows[i][j] == rows[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            s += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and rows[i][j] == rows[i - 1][j] + 1:
            d += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return s, d, ins


# ----------------------------------------------------------------------------------------
# scoring

def score_entries(entries, norm):
    """entries: dicts with id, ref, hyp (None = error/missing), language, detected, status."""
    rows = []
    for e in entries:
        r = norm(e["ref"], e["language"])
        h = norm(e["hyp"], e["language"]) if e["hyp"] is not None else ""
        rw, hw = r.split(), h.split()
        s, d, i = edit_counts(rw, hw)
        cs, cd, ci = edit_counts(list(r), list(h))
        rows.append(dict(
            id=e["id"], status=e["status"], language=e["language"], detected=e["detected"],
            ref=r, hyp=h, words=len(rw), sub=s, dele=d, ins=i, errors=s + d + i,
            chars=len(r), char_errors=cs + cd + ci,
            wer=(s + d + i) / len(rw) if rw else float(bool(hw)),
            groups=e["groups"]))
    return rows


def totals(rows):
    w = sum(r["words"] for r in rows)
    c = sum(r["chars"] for r in rows)
    t = dict(utterances=len(rows), words=w, chars=c,
             substitutions=sum(r["sub"] for r in rows), deletions=sum(r["dele"] for r in rows),
             insertions=sum(r["ins"] for r in rows), errors=sum(r["errors"] for r in rows),
             char_errors=sum(r["char_errors"] for r in rows),
             failed=sum(r["status"] != "ok" for r in rows))
    t["wer"] = 100.0 * t["errors"] / w if w else 0.0
    t["cer"] = 100.0 * t["char_errors"] / c if c else 0.0
    t["exact"] = sum(r["errors"] == 0 for r in rows)
    langs = [r for r in rows if r["language"]]
    if langs:
        ok = sum(r["status"] == "ok" and (r["detected"] or "").lower() == r["language"].lower()
                 for r in langs)
        t["language_accuracy"] = 100.0 * ok / len(langs)
        t["language_checked"] = len(langs)
    return t


def fmt_totals(label, t):
    s = ("%-24s WER %6.2f%%  CER %6.2f%%  (%d utt, %d words: %d sub, %d del, %d ins; %d exact)"
         % (label, t["wer"], t["cer"], t["utterances"], t["words"], t["substitutions"],
            t["deletions"], t["insertions"], t["exact"]))
    if "language_accuracy" in t:
        s += "  language %.1f%%" % t["language_accuracy"]
    if t["failed"]:
        s += "  [%d failed or missing: counted as all deletions]" % t["failed"]
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("results", help="qasr-batch JSONL output")
    ap.add_argument("--manifest", help="manifest with the reference texts (default: the "
                    "results' reference fields)")
    ap.add_argument("--normalizer", default="whisper",
                    choices=["whisper", "whisper-en", "whisper-basic", "plain", "none"])
    ap.add_argument("--group-by", default="", help="manifest columns to report separately")
    ap.add_argument("--rows", type=int, default=20, help="worst utterances to list (default 20)")
    ap.add_argument("--json", help="write the full report as JSON to this file (- = stdout)")
    ap.add_argument("--max-wer", type=float, help="exit 1 if the corpus WER (%%) exceeds this")
    ap.add_argument("--min-language-accuracy", type=float,
                    help="exit 1 if the language accuracy (%%) is below this")
    args = ap.parse_args(argv)

    results = read_results(args.results)
    groups = [g for g in args.group_by.split(",") if g]
    entries, no_ref = [], 0
    if args.manifest:
        seen = set()
        for m in read_manifest(args.manifest):
            if m["id"] in seen:
                die("%s: duplicate id %r" % (args.manifest, m["id"]))
            seen.add(m["id"])
            if m.get("text") in (None, ""):
                no_ref += 1
                continue
            o = results.get(m["id"])
            status = "missing" if o is None else ("error" if o.get("error") else "ok")
            hyp = o.get("text") if status == "ok" else None
            entries.append(dict(id=m["id"], ref=m["text"], hyp=hyp if hyp is not None else None,
                                language=m.get("language", "") or "",
                                detected=(o or {}).get("language"), status=status,
                                groups={g: m.get(g, "") for g in groups}))
        extra = len(set(results) - seen)
    else:
        if groups:
            die("--group-by needs --manifest")
        extra = 0
        for key, o in results.items():
            if o.get("reference") in (None, ""):
                no_ref += 1
                continue
            status = "error" if o.get("error") else "ok"
            entries.append(dict(id=key, ref=o["reference"], hyp=o.get("text") if status == "ok" else None,
                                language="", detected=o.get("language"), status=status, groups={}))
    if not entries:
        die("no entry has a reference text")

    rows = score_entries(entries, normalizer(args.normalizer))
    tot = totals(rows)
    report = {"results": args.results, "manifest": args.manifest, "normalizer": args.normalizer,
              "total": tot, "groups": {}, "no_reference": no_ref, "not_in_manifest": extra}
    for g in groups:
        for v in sorted({r["groups"][g] for r in rows}):
            report["groups"]["%s=%s" % (g, v)] = totals([r for r in rows if r["groups"][g] == v])
    rows.sort(key=lambda r: (-r["wer"], -r["errors"], r["id"]))
    report["utterances"] = rows

    out = sys.stderr if args.json == "-" else sys.stdout
    print("normaliser %s; %s" % (args.normalizer, fmt_totals("corpus", tot)), file=out)
    for k, t in report["groups"].items():
        print("  " + fmt_totals(k, t), file=out)
    if no_ref:
        print("  (%d entries without a reference text left out)" % no_ref, file=out)
    if extra:
        print("  (%d result lines not in the manifest ignored)" % extra, file=out)
    worst = [r for r in rows if r["errors"] or r["status"] != "ok"][:args.rows]
    if worst:
        print("worst utterances (WER, errors/words, id):", file=out)
        for r in worst:
            note = {"ok": "", "error": "  [error line: all deletions]",
                    "missing": "  [no result line: all deletions]"}[r["status"]]
            lang = ""
            if r["language"] and (r["detected"] or "").lower() != r["language"].lower():
                lang = "  [language %s, detected %s]" % (r["language"], r["detected"] or "none")
            print("  %6.1f%%  %d/%d  %s%s%s\n      ref: %s\n      hyp: %s"
                  % (100 * r["wer"], r["errors"], r["words"], r["id"], note, lang, r["ref"], r["hyp"]),
                  file=out)
    if args.json:
        text = json.dumps(report, ensure_ascii=False, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    rc = 0
    if args.max_wer is not None and tot["wer"] > args.max_wer:
        print("FAIL: WER %.2f%% exceeds the bound %.2f%%" % (tot["wer"], args.max_wer), file=sys.stderr)
        rc = 1
    if args.min_language_accuracy is not None and \
            tot.get("language_accuracy", 0.0) < args.min_language_accuracy:
        print("FAIL: language accuracy %.1f%% is below %.1f%%"
              % (tot.get("language_accuracy", 0.0), args.min_language_accuracy), file=sys.stderr)
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
