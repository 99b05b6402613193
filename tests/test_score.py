#!/usr/bin/python3
"""scripts/score.py and scripts/librispeech_manifest.py on hand-made cases with known results.

usage: test_score.py WORK_DIR
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCORE = os.path.join(ROOT, "scripts", "score.py")
LIBRI = os.path.join(ROOT, "scripts", "librispeech_manifest.py")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import score  # noqa: E402

checks = failures = 0


def ok(cond, msg):
    global checks, failures
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", msg)


def close(a, b, msg):
    ok(abs(a - b) < 1e-9, "%s: got %r, want %r" % (msg, a, b))


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def jsonl(path, objs):
    write(path, "".join(json.dumps(o) + "\n" for o in objs))


def run_score(*args):
    p = subprocess.run([sys.executable, SCORE, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)

    # --- alignment counts (S, D, I) ---
    E = score.edit_counts
    ok(E("a b c".split(), "a b c".split()) == (0, 0, 0), "identical")
    ok(E("the cat sat on the mat".split(), "the cat sit on mat".split()) == (1, 1, 0),
       "one substitution and one deletion: %r" % (E("the cat sat on the mat".split(),
                                                     "the cat sit on mat".split()),))
    ok(E("a b".split(), "x a b y".split()) == (0, 0, 2), "two insertions")
    ok(E("a b c d".split(), []) == (0, 4, 0), "empty hypothesis = all deletions")
    ok(E([], "a b".split()) == (0, 0, 2), "empty reference = all insertions")
    ok(E("a b c".split(), "c b a".split())[0] + sum(E("a b c".split(), "c b a".split())[1:]) == 2,
       "reversal costs 2 edits")
    ok(E(list("kitten"), list("sitting")) == (2, 0, 1), "kitten/sitting characters")

    # --- normalisers ---
    P = score.normalize_plain
    ok(P("Hello, World!  It's twenty-three.") == "hello world it's twenty three",
       "plain: %r" % P("Hello, World!  It's twenty-three."))
    ok(P("'quoted' Äpfel—Birnen") == "quoted äpfel birnen", "plain: %r" % P("'quoted' Äpfel—Birnen"))
    wn = score.normalizer("whisper")
    ok(wn("Emma bought twenty-three apples.", "English") == "emma bought 23 apples",
       "whisper English: %r" % wn("Emma bought twenty-three apples.", "English"))
    ok(wn("Anna kauft dreiundzwanzig Äpfel.", "German") == "anna kauft dreiundzwanzig äpfel",
       "whisper basic for German: %r" % wn("Anna kauft dreiundzwanzig Äpfel.", "German"))
    ok(wn("Mr. Smith", "") == wn("mister smith", ""), "whisper English standardises titles")

    # --- corpus-level scoring through the command ---
    man = os.path.join(work, "m.tsv")
    write(man, "# comment line\n"
               "path\tid\tref_language\tsubset\ttext\n"
               "a.wav\tu1\tEnglish\tx\tThe cat sat on the mat.\n"         # 6 words, 2 errors
               "b.wav\tu2\tEnglish\tx\tOne two three four\n"              # 4 words, 0 errors
               "c.wav\tu3\tGerman\ty\tDer Hund ist klein.\n"              # 4 words, error line
               "d.wav\t\tEnglish\ty\tA b\n"                               # id = path, missing
               "e.wav\tu5\tEnglish\ty\t\n")                               # no reference
    res = os.path.join(work, "r.jsonl")
    jsonl(res, [
        {"id": "u1", "text": "the cat sit on mat", "language": "English", "error": None},
        {"id": "u2", "text": "one, two, three, four!", "language": "German", "error": None},
        {"id": "u3", "text": None, "language": None, "error": "c.wav: cannot decode"},
        {"id": "u5", "text": "hello", "language": "English", "error": None},
        {"id": "zz", "text": "extra", "language": "English", "error": None},
    ])
    rep_path = os.path.join(work, "rep.json")
    rc, out, err = run_score(res, "--manifest", man, "--normalizer", "plain", "--group-by",
                             "subset", "--json", rep_path)
    ok(rc == 0, "score exit %d: %s" % (rc, err))
    rep = json.load(open(rep_path))
    t = rep["total"]
    # words 6 + 4 + 4 + 2 = 16; errors 2 + 0 + 4 (error line) + 2 (missing) = 8
    ok(t["words"] == 16 and t["errors"] == 8, "totals %r" % t)
    close(t["wer"], 50.0, "corpus WER = total errors / total words")
    ok((t["substitutions"], t["deletions"], t["insertions"]) == (1, 7, 0), "S/D/I %r" % t)
    ok(t["failed"] == 2, "failed + missing = 2")
    close(t["language_accuracy"], 25.0, "language accuracy (u1 right; u2 wrong; u3/d.wav failed)")
    ok(rep["no_reference"] == 1 and rep["not_in_manifest"] == 1, "no_reference / not_in_manifest")
    close(rep["groups"]["subset=x"]["wer"], 20.0, "group x: 2/10")
    close(rep["groups"]["subset=y"]["wer"], 100.0, "group y: 6/6")
    ok(rep["utterances"][0]["status"] in ("error", "missing"), "worst first")
    ok("error line: all deletions" in out and "no result line: all deletions" in out,
       "failed entries are named: " + out)
    # CER on u1: "the cat sat on the mat" vs "the cat sit on mat": 1 sub + 4 del = 5 of 22
    u1 = [u for u in rep["utterances"] if u["id"] == "u1"][0]
    ok(u1["chars"] == 22 and u1["char_errors"] == 5, "u1 CER counts %r" % u1)

    # bounds -> exit status
    rc, _, err = run_score(res, "--manifest", man, "--normalizer", "plain", "--max-wer", "49.9")
    ok(rc == 1 and "exceeds" in err, "--max-wer failing: %d %s" % (rc, err))
    rc, _, _ = run_score(res, "--manifest", man, "--normalizer", "plain", "--max-wer", "50")
    ok(rc == 0, "--max-wer at the bound passes")
    rc, _, err = run_score(res, "--manifest", man, "--normalizer", "plain",
                           "--min-language-accuracy", "30")
    ok(rc == 1, "--min-language-accuracy failing")

    # references from the results' own `reference` fields (qasr-batch writes them)
    res2 = os.path.join(work, "r2.jsonl")
    jsonl(res2, [
        {"id": "a", "text": "Twenty three apples", "reference": "twenty-three apples.", "error": None},
        {"id": "b", "text": None, "reference": "x y z", "error": "broken"},
        {"id": "c", "text": "no reference", "error": None},
    ])
    rc, out, err = run_score(res2, "--normalizer", "whisper", "--json", "-")
    ok(rc == 0, "whisper run: %s" % err)
    rep = json.loads(out)
    ok(rep["total"]["words"] == 5 and rep["total"]["errors"] == 3, "reference fields: %r" % rep["total"])
    ok(rep["no_reference"] == 1, "entry without reference left out")

    # NeMo JSONL manifest
    nemo = os.path.join(work, "m.jsonl")
    jsonl(nemo, [{"audio_filepath": "a.wav", "id": "a", "text": "twenty three apples",
                  "lang": "English"}])
    rc, out, err = run_score(res2, "--manifest", nemo, "--normalizer", "whisper", "--json", "-")
    ok(rc == 0 and json.loads(out)["total"]["errors"] == 0, "NeMo manifest: %s %s" % (out[:200], err))

    # --- librispeech_manifest.py on a fake LibriSpeech tree ---
    root = os.path.join(work, "LibriSpeech")
    for spk, ch, utts in (("84", "121123", ["0000", "0001"]), ("174", "50561", ["0002"])):
        d = os.path.join(root, "test-clean", spk, ch)
        os.makedirs(d, exist_ok=True)
        lines = []
        for u in utts:
            uid = "%s-%s-%s" % (spk, ch, u)
            write(os.path.join(d, uid + ".flac"), "")
            lines.append("%s GO DO YOU HEAR %s" % (uid, u))
        write(os.path.join(d, "%s-%s.trans.txt" % (spk, ch)), "\n".join(lines) + "\n")
    out_tsv = os.path.join(work, "ls.tsv")
    p = subprocess.run([sys.executable, LIBRI, os.path.join(root, "test-clean"), "-o", out_tsv],
                       capture_output=True, text=True)
    ok(p.returncode == 0, "librispeech_manifest: %s" % p.stderr)
    rows = [l.rstrip("\n").split("\t") for l in open(out_tsv) if not l.startswith("#")]
    ok(rows[0] == ["path", "id", "text"], "header %r" % rows[0])
    ok([r[1] for r in rows[1:]] == ["84-121123-0000", "84-121123-0001", "174-50561-0002"],
       "ids sorted by number: %r" % [r[1] for r in rows[1:]])
    ok(rows[1] == ["LibriSpeech/test-clean/84/121123/84-121123-0000.flac", "84-121123-0000",
                   "GO DO YOU HEAR 0000"], "row %r" % rows[1])
    ok(all(os.path.exists(os.path.join(work, r[0])) for r in rows[1:]), "paths resolve from the manifest")
    p = subprocess.run([sys.executable, LIBRI, root, "-o", "-", "--language", "English", "--limit", "1"],
                       capture_output=True, text=True)
    ok(p.returncode == 0 and p.stdout.splitlines()[0] == "path\tid\tlanguage\ttext" and
       len(p.stdout.splitlines()) == 2 and p.stdout.splitlines()[1].split("\t")[2] == "English",
       "--language/--limit: %r" % p.stdout)
    os.remove(os.path.join(root, "test-clean", "84", "121123", "84-121123-0001.flac"))
    p = subprocess.run([sys.executable, LIBRI, root, "-o", out_tsv], capture_output=True, text=True)
    ok(p.returncode == 1 and "84-121123-0001.flac" in p.stderr, "missing audio named: %s" % p.stderr)

    print("%d passed, %d failed" % (checks - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
