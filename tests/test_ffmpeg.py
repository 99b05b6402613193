#!/usr/bin/python3
"""FFmpeg decoding end to end: files libsndfile cannot open, made at test time with the ffmpeg
command-line tool from the demo clips, through `qasr --json` and one `qasr-batch` run, with the
demo model (tests/models/qasr-demo). Exit 77 (skipped) without the ffmpeg command or in a build
without FFmpeg.

  file            made from (tests/audio)           judged
  podcast.m4a     heldout-00001 as AAC 128k         lossy (below)
  lecture.mp4     heldout-00001 as AAC, stereo,     lossy
                  beside an H.264 video stream
  clip.webm       heldout-00001 as Opus, stereo     lossy
  talk.wma        heldout-00003 as WMA v2           lossy
  raw.aac         heldout-00001 as raw AAC (ADTS),  lossy; no header gives its duration
                  44.1 kHz
  phone.wav       heldout-00001 as G.722 in WAV     lossy (libsndfile refuses this WAV)
  two.mkv         heldout-00001, heldout-00002 as   stream 0 (default): the first clip's text;
                  two Vorbis streams                --audio-stream 1: the second's
  alac.m4a        heldout-00002 as ALAC             lossless: the WAV's text, exactly
  flac.mkv        heldout-00003 as FLAC in MKV      lossless: the WAV's text, exactly
  AMR-NB          not made: Debian's ffmpeg has no AMR encoder (decoders only); reported
                  "SKIP amr-nb" (G.722 in WAV stands in for a phone codec libsndfile lacks)
  trunc.mp4       lecture with the moov box at the  error "moov atom not found"
                  end, cut at 60%
  cutshort.mp4    lecture with moov first, cut at   transcribed, warning "cut short"
                  half
  corrupt.m4a     podcast (moov first) with 2000    error "decode error at X s"
                  bytes of its audio data garbled
  noaudio.mp4     a video stream only               error "no audio stream"
  mixed.aac       raw.aac, then heldout-00002 as    error "the audio changes from 44100 Hz, 1
                  ADTS at 22.05 kHz stereo          channels to 22050 Hz, 2 channels at ..."
  unknown_codec.wav  heldout-00001 with format tag  error "codec not supported: unknown codec tag
                  0x1234 (libsndfile refuses it)    0x1234"
  one.mkv         one stream, --audio-stream 1      error "no audio stream 1 (the file has 1)"

Lossy files are judged twice. Exactly: the text equals that of the same file decoded by the
ffmpeg command to float32 WAV (same decoder, same samples: any conversion, channel or trimming
mistake of ours shows). Loosely: the character error rate against the original clip's text is at
most CER_BOUND. Measured when this test was written (ffmpeg 5.1, demo model): 0 on these clips
for every codec here; the bound leaves room for another FFmpeg's encoders. Other clips are not
used: the demo model, trained on a few hundred synthetic sentences, gives a different sentence
for demo.flac and speech10s.aiff after AAC at 128k (1.6% relative sample error), so the text of
those is no measure of decoding.

Also: --audio-decoder sndfile refuses every FFmpeg file (so auto really used FFmpeg); stdin (a
file piped in, and ffmpeg's Matroska output piped straight in); FFmpeg's log lines shown with -v
and not without it nor with -q -v; qasr-batch writes one line per entry, exit 1, one bad file
stopping nothing; no sanitizer report.

usage: test_ffmpeg.py --bin BUILD_DIR --model DIR --work DIR
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, ROOT, bin_model_work_args, result_lines  # noqa: E402

HANG = 600  # seconds: a run this long has hung (the runs take a few seconds, a minute under ASan)
CER_BOUND = 0.10
AUDIO = os.path.join(ROOT, "tests", "audio")
SANITIZER = ("runtime error:", "AddressSanitizer", "LeakSanitizer")
CLIP = {k: os.path.join(AUDIO, f) for k, f in
        (("en", "heldout-00001.wav"), ("de2", "heldout-00002.flac"), ("de3", "heldout-00003.flac"))}


def cer(hyp, ref):
    """Character error rate of hyp against ref (Levenshtein distance / len(ref))."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1] / max(1, len(ref))


def main():
    args = bin_model_work_args(__doc__)
    qasr, batch = os.path.join(args.bin, "qasr"), os.path.join(args.bin, "qasr-batch")
    if not shutil.which("ffmpeg"):
        print("SKIP: no ffmpeg command (apt install ffmpeg)")
        return 77
    helptext = subprocess.run([qasr, "--help"], capture_output=True, text=True).stdout
    if "without FFmpeg" in helptext:
        print("SKIP: this build has no FFmpeg")
        return 77
    chk = Checker()
    work = args.work
    common = ["--model", args.model, "-t", "2"]
    stderrs = []

    def ffmpeg(out, *a, stdout=None):
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", *a] + ([out] if out else [])
        p = subprocess.run(cmd, capture_output=stdout is None, stdout=stdout)
        if p.returncode != 0:
            sys.exit(f"command failed: {' '.join(cmd)}\n{p.stderr}")
        return out

    def path(name):
        return os.path.join(work, name)

    def video(*a):
        return ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", *a]

    # reference WAVs: the clips as 16-bit WAV (FLAC -> WAV is lossless)
    ref = {k: ffmpeg(path(f"{k}.wav"), "-i", c, "-c:a", "pcm_s16le") for k, c in CLIP.items()}
    lossy = {  # name -> (file, clip it is made from)
        "podcast.m4a": (ffmpeg(path("podcast.m4a"), "-i", CLIP["en"], "-c:a", "aac", "-b:a", "128k"), "en"),
        "lecture.mp4": (ffmpeg(path("lecture.mp4"), *video("-i", CLIP["en"], "-shortest", "-c:v", "libx264",
                                                           "-c:a", "aac", "-b:a", "128k", "-ac", "2")), "en"),
        "clip.webm": (ffmpeg(path("clip.webm"), "-i", CLIP["en"], "-c:a", "libopus", "-b:a", "64k", "-ac", "2"), "en"),
        "talk.wma": (ffmpeg(path("talk.wma"), "-i", CLIP["de3"], "-c:a", "wmav2", "-b:a", "128k"), "de3"),
        "phone.wav": (ffmpeg(path("phone.wav"), "-i", CLIP["en"], "-ar", "16000", "-c:a", "g722"), "en"),
        "raw.aac": (ffmpeg(path("raw.aac"), "-i", CLIP["en"], "-ar", "44100", "-c:a", "aac", "-b:a", "128k", "-f", "adts"),
                    "en"),  # no duration in any header: qasr-batch decodes it to learn its length
        "two.mkv": (ffmpeg(path("two.mkv"), "-i", CLIP["en"], "-i", CLIP["de2"], "-map", "0:a", "-map", "1:a",
                           "-c:a", "libvorbis"), "en"),
    }
    lossless = {
        "alac.m4a": (ffmpeg(path("alac.m4a"), "-i", CLIP["de2"], "-c:a", "alac"), "de2"),
        "flac.mkv": (ffmpeg(path("flac.mkv"), "-i", CLIP["de3"], "-c:a", "flac"), "de3"),
    }
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    if re.search(r"\b(libopencore_amrnb|amr_nb)\b", encoders):
        lossy["phone.amr"] = (ffmpeg(path("phone.amr"), "-i", CLIP["en"], "-ar", "8000", "-ac", "1",
                                     "-b:a", "12.2k"), "en")
    else:
        print("SKIP amr-nb: this ffmpeg has no AMR-NB encoder (Debian builds only the decoders); "
              "G.722 in WAV stands in")
    # the same audio as the ffmpeg command decodes it, float32 WAV (libsndfile reads it)
    decoded = {n: ffmpeg(path(n + ".decoded.wav"), "-i", f, "-map", "0:a:0", "-c:a", "pcm_f32le")
               for n, (f, _) in lossy.items()}
    decoded["two.mkv#1"] = ffmpeg(path("two.mkv.1.decoded.wav"), "-i", lossy["two.mkv"][0], "-map", "0:a:1",
                                  "-c:a", "pcm_f32le")

    # broken ones
    ffmpeg(path("moov_last.mp4"), *video("-i", CLIP["en"], "-shortest", "-c:v", "libx264", "-c:a", "aac"))
    ffmpeg(path("moov_first.mp4"), *video("-i", CLIP["en"], "-shortest", "-c:v", "libx264", "-c:a", "aac",
                                          "-movflags", "+faststart"))
    ffmpeg(path("moov_first.m4a"), "-i", CLIP["en"], "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart")
    with open(path("moov_last.mp4"), "rb") as f:
        data = f.read()
    with open(path("trunc.mp4"), "wb") as f:
        f.write(data[:len(data) * 6 // 10])
    with open(path("moov_first.mp4"), "rb") as f:
        data = f.read()
    with open(path("cutshort.mp4"), "wb") as f:
        f.write(data[:len(data) // 2])
    with open(path("moov_first.m4a"), "rb") as f:
        data = bytearray(f.read())
    start = data.index(b"mdat") + 4
    third = start + (len(data) - start) // 3
    data[third:third + 2000] = bytes((k * 149 + 71) % 256 for k in range(2000))  # fixed garbage
    with open(path("corrupt.m4a"), "wb") as f:
        f.write(data)
    with open(ref["en"], "rb") as f:  # a WAV whose format tag no decoder knows
        data = bytearray(f.read())
    assert data[12:16] == b"fmt " and data[20:22] == b"\x01\x00"
    data[20:22] = (0x1234).to_bytes(2, "little")
    with open(path("unknown_codec.wav"), "wb") as f:
        f.write(data)
    # raw AAC (ADTS) streams one after the other: 44.1 kHz mono, then 22.05 kHz stereo
    ffmpeg(path("b22.aac"), "-i", CLIP["de2"], "-ar", "22050", "-ac", "2", "-c:a", "aac", "-f", "adts")
    with open(path("mixed.aac"), "wb") as f:
        for part in ("raw.aac", "b22.aac"):
            with open(path(part), "rb") as g:
                f.write(g.read())
    ffmpeg(path("noaudio.mp4"), *video("-t", "2", "-c:v", "libx264"))
    ffmpeg(path("one.mkv"), "-i", CLIP["en"], "-c:a", "libvorbis")
    errors = {  # name -> (what the error says, --audio-stream)
        "trunc.mp4": ("moov atom not found", 0),
        "corrupt.m4a": ("decode error at ", 0),
        "noaudio.mp4": ("no audio stream (", 0),
        "mixed.aac": ("the audio changes from 44100 Hz, 1 channels to 22050 Hz, 2 channels at", 0),
        "unknown_codec.wav": ("codec not supported: unknown codec tag 0x1234", 0),
        "one.mkv": ("no audio stream 1 (the file has 1)", 1),
    }

    def qasr_json(files, *extra, stdin=None):
        try:
            p = subprocess.run([qasr, *common, "--json", *extra, *files], capture_output=True, text=True,
                               timeout=HANG, stdin=stdin)
        except subprocess.TimeoutExpired:
            chk.ok(False, f"qasr {' '.join(files)}: still running after {HANG} s (hung)")
            return None, {}
        stderrs.append(p.stderr)
        lines = [__import__("json").loads(line) for line in p.stdout.splitlines()]
        return p, {os.path.basename(o["path"]) if o["path"] != "-" else "-": o for o in lines}

    # --- the reference texts: the WAVs and the ffmpeg command's decodings
    _, wav = qasr_json(list(ref.values()))
    want = {k: wav.get(f"{k}.wav", {}).get("text") for k in ref}
    chk.ok(all(want.values()), f"reference WAVs transcribed: {want}")
    _, dec = qasr_json(list(decoded.values()))
    dec_text = {n: dec.get(os.path.basename(p), {}).get("text") for n, p in decoded.items()}

    def judge(how, name, text, clip, exact=None):
        """A transcript of name: lossless equals the clip's WAV text; lossy equals the ffmpeg
        command's decoding's text (exact) and is within CER_BOUND of the clip's WAV text."""
        if text is None:
            chk.ok(False, f"{how} {name}: no text")
            return
        if exact is None:
            chk.ok(text == want[clip], f"{how} {name} (lossless): {text!r}, the WAV gives {want[clip]!r}")
            return
        chk.ok(text == exact, f"{how} {name}: {text!r}, the ffmpeg command's decoding gives {exact!r}")
        e = cer(text, want[clip])
        print(f"{how} {name}: CER {e:.3f} against the WAV")
        chk.ok(e <= CER_BOUND, f"{how} {name}: CER {e:.3f} > {CER_BOUND} against the WAV ({text!r} vs {want[clip]!r})")

    # --- qasr: every good file in one call, the bad ones beside them
    good = {**{n: f for n, (f, _) in lossy.items()}, **{n: f for n, (f, _) in lossless.items()}}
    bad = [path(n) for n, (_, s) in errors.items() if s == 0]
    p, res = qasr_json([*good.values(), path("cutshort.mp4"), *bad])
    if p is not None:
        chk.ok(p.returncode == 1, f"qasr with bad files among good ones: exit {p.returncode}, want 1")
        for n, (f, clip) in lossy.items():
            judge("qasr", n, res.get(n, {}).get("text"), clip, dec_text[n])
        for n, (f, clip) in lossless.items():
            judge("qasr", n, res.get(n, {}).get("text"), clip)
        for n, (what, s) in errors.items():
            if s == 0:
                err = res.get(n, {}).get("error") or ""
                chk.ok(what in err and n in err, f"qasr {n}: error {err!r}, want one naming the file and {what!r}")
        cut = res.get("cutshort.mp4", {})
        chk.ok(cut.get("text") is not None and "cut short" in p.stderr and "cutshort.mp4" in p.stderr,
               f"qasr cutshort.mp4: transcribed with a cut-short warning ({cut}, stderr {p.stderr[-400:]!r})")

    # --- qasr --audio-stream 1: the second stream of two.mkv; one.mkv and a WAV have none
    p, res = qasr_json([path("two.mkv"), path("one.mkv"), ref["en"]], "--audio-stream", "1")
    if p is not None:
        judge("qasr --audio-stream 1", "two.mkv", res.get("two.mkv", {}).get("text"), "de2", dec_text["two.mkv#1"])
        for n in ("one.mkv", "en.wav"):
            err = res.get(n, {}).get("error") or ""
            chk.ok("no audio stream 1 (the file has 1)" in err, f"qasr --audio-stream 1 {n}: error {err!r}")

    # --- FFmpeg's libraries unavailable at run time (QASR_FFMPEG=0 stands for a machine without
    # them): the commands still start, libsndfile's formats still work, the rest say why
    q = subprocess.run([qasr, *common, "--json", next(iter(ref.values())), *list(good.values())[:2]],
                       capture_output=True, text=True, timeout=HANG, env=dict(os.environ, QASR_FFMPEG="0"))
    res = [__import__("json").loads(line) for line in q.stdout.splitlines()]
    chk.ok(q.returncode == 1 and len(res) == 3 and res[0]["error"] is None, f"QASR_FFMPEG=0: exit {q.returncode}: {res}")
    chk.ok(all("FFmpeg is turned off" in (r["error"] or "") and "QASR_FFMPEG=0" in (r["error"] or "") for r in res[1:]),
           f"QASR_FFMPEG=0: the FFmpeg files do not say why: {[r['error'] for r in res[1:]]}")

    # --- libsndfile alone refuses every one of them (auto used FFmpeg), FFmpeg alone reads the WAVs
    p, res = qasr_json(list(good.values()), "--audio-decoder", "sndfile")
    if p is not None:
        for n in good:
            err = res.get(n, {}).get("error") or ""
            chk.ok(bool(err) and "FFmpeg" not in err, f"qasr --audio-decoder sndfile {n}: {err!r}, want libsndfile's refusal")
    p, res = qasr_json(list(ref.values()), "--audio-decoder", "ffmpeg")
    if p is not None:
        for k in ref:
            judge("qasr --audio-decoder ffmpeg", f"{k}.wav", res.get(f"{k}.wav", {}).get("text"), k)

    # --- stdin: a file piped in, and the ffmpeg command's Matroska output straight in
    with open(lossless["alac.m4a"][0], "rb") as f:
        p, res = qasr_json(["-"], stdin=f)
    judge("cat alac.m4a | qasr -", "alac.m4a", res.get("-", {}).get("text"), "de2")
    pipe = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", CLIP["de3"], "-c:a", "flac", "-f", "matroska", "-"],
                            stdout=subprocess.PIPE)
    p, res = qasr_json(["-"], stdin=pipe.stdout)
    pipe.stdout.close()
    pipe.wait()
    judge("ffmpeg -f matroska - | qasr -", "flac.mkv", res.get("-", {}).get("text"), "de3")

    # --- qasr-batch: one manifest, good and bad files, no durations (the reader probes them)
    manifest = path("all.tsv")
    rows = [(f, n) for n, f in good.items()] + [(path("cutshort.mp4"), "cutshort.mp4")] + [(b, os.path.basename(b)) for b in bad]
    with open(manifest, "w") as f:
        f.write("path\tid\n" + "".join(f"{a}\t{i}\n" for a, i in rows))

    def run_batch(m, out, *extra):
        try:
            p = subprocess.run([batch, m, "-o", out, *common, "--overwrite", *extra], capture_output=True, text=True,
                               timeout=HANG)
        except subprocess.TimeoutExpired:
            chk.ok(False, f"qasr-batch {m}: still running after {HANG} s (hung)")
            return None, {}
        stderrs.append(p.stderr)
        lines = result_lines(out)
        ids = [o["id"] for o in lines]
        chk.ok(len(ids) == len(set(ids)), f"qasr-batch {m}: an id twice in {out}")
        return p, {o["id"]: o for o in lines}

    p, res = run_batch(manifest, path("all.jsonl"), "-v")
    if p is not None:
        chk.ok(p.returncode == 1, f"qasr-batch: exit {p.returncode}, want 1 (some entries failed)")
        chk.ok(sorted(res) == sorted(i for _, i in rows), f"qasr-batch: one line per entry, got {sorted(res)}")
        for n, (f, clip) in lossy.items():
            judge("qasr-batch", n, res.get(n, {}).get("text"), clip, dec_text[n])
        for n, (f, clip) in lossless.items():
            judge("qasr-batch", n, res.get(n, {}).get("text"), clip)
        for n, (what, s) in errors.items():
            if s == 0:
                err = res.get(n, {}).get("error") or ""
                chk.ok(what in err and n in err, f"qasr-batch {n}: error {err!r}, want one naming the file and {what!r}")
        cut = res.get("cutshort.mp4", {})
        chk.ok(cut.get("text") is not None and "cut short" in (cut.get("warning") or ""),
               f"qasr-batch cutshort.mp4: a text and a cut-short warning, got {cut}")
        chk.ok(re.search(r"^qasr-batch: FFmpeg [^\n]*moov atom not found", p.stderr, re.M) is not None,
               f"qasr-batch -v: FFmpeg's own lines shown, stderr: {p.stderr[-600:]!r}")
    for extra in ([], ["-q", "-v"]):
        p, _ = run_batch(manifest, path("quiet.jsonl"), *extra)
        if p is not None:
            chk.ok(re.search(r"^qasr-batch: FFmpeg ", p.stderr, re.M) is None,
                   f"qasr-batch {' '.join(extra)}: FFmpeg's lines hidden, stderr: {p.stderr[-600:]!r}")
    stream1 = path("stream1.tsv")
    with open(stream1, "w") as f:
        f.write(f"path\tid\n{path('two.mkv')}\ttwo\n{path('one.mkv')}\tone\n")
    p, res = run_batch(stream1, path("stream1.jsonl"), "--audio-stream", "1")
    if p is not None:
        judge("qasr-batch --audio-stream 1", "two.mkv", res.get("two", {}).get("text"), "de2", dec_text["two.mkv#1"])
        err = res.get("one", {}).get("error") or ""
        chk.ok("no audio stream 1 (the file has 1)" in err, f"qasr-batch --audio-stream 1 one.mkv: error {err!r}")

    for s in stderrs:
        found = [w for w in SANITIZER if w in s]
        chk.ok(not found, f"sanitizer report: {found}\n{s[-3000:]}")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
