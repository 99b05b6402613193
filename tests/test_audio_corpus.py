#!/usr/bin/python3
"""Broken audio in every format qasr decodes, and a small file system that fills up; everything
made at test time. A hang is a failure (each run has a generous time limit, for hangs only).

Corpus: a 3 s good file per format (WAV PCM16, PCM24, float32, u-law and IMA ADPCM, W64, RF64,
AIFF, AU, CAF, FLAC, Ogg Vorbis, Ogg Opus, MP3; 22.05, 44.1 or 48 kHz, mono and stereo; made
with sox, or with libsndfile's own encoder for the formats sox cannot write; a format neither can
make is reported as "SKIP format") and its damaged variants, all in one manifest and one
qasr-batch run. Outcomes: "ok" transcribed whole (3 s), "warn" transcribed with a `warning`,
"short" transcribed shorter than the file without a warning, "error" an error line.

  variant    damage                                  expected
  good       none                                    ok
  wrong_ext  the good file, another extension        ok (libsndfile reads the content)
  hdr_cut    cut inside the header                   error
  hdr_only   cut where the audio data starts         error
  no_header  the audio data without its header       error; MP3 (frames need no header): ok
  hdr_ff     16 header bytes after the magic -> 0xFF error; MP3 (bytes of the Info frame,
                                                     which holds no audio): ok
  data25/50/90  cut at 25/50/90% of the audio data   PCM containers: warn (as a WAV cut short);
                                                     FLAC, Ogg, MP3: error or warn, never silent
  zeroed     the audio data zero-filled              PCM containers: ok (silence is audio);
                                                     FLAC, Ogg, MP3: error (no stream left)
  flip97, flip4099  one random byte changed in every 97 / 4099 data bytes (seeded): any outcome

For every entry: exactly one complete JSON line; an error names the file and is none of
libsndfile's misleading texts; a success has a text and a duration > 0; a warning names the
file; the exit code is 1 if a line has an error, else 0; no sanitizer report on stderr. What is
wrong today is listed in KNOWN_FAILURES (cases: a failure once they pass), KNOWN_MESSAGES and
KNOWN_LEAKS, and reported as "KNOWN FAILURE".

Small full file system (a 256 KiB tmpfs; needs mount, else "SKIP small full filesystem"): 40
entries with -o on it and 8 KiB left: exit 2, "qasr-batch: FILE: writing a result: No space
left on device", only complete lines; with the filler gone the same command resumes, exit 0,
one line per id. Subtitles (12 entries, --format srt --output-dir on it, room for 3 files):
each entry whose file does not fit gets an error line naming that file, every success line's
subtitle file is there and whole; --retry-errors after freeing space finishes them all.

usage: test_audio_corpus.py --bin BUILD_DIR --model DIR --work DIR
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, ROOT, bin_model_work_args, result_lines  # noqa: E402

HANG = 600  # seconds: a run this long has hung (the corpus takes a few seconds, 20 under ASan)
SECONDS = 3.0
CUTS = ("data25", "data50", "data90")

# Wrong today; the test keeps what a careful tool does. A case listed here that passes fails the
# test (take it off the list). Reproductions: the corpus files under the work directory.
KNOWN_FAILURES = {}
# libsndfile's texts in error lines, by whichever entry shows them (reported, never a failure).
KNOWN_MESSAGES = {}
# Leaks inside the libraries (allocated under these functions): libsndfile 1.2.0 does not free
# the vorbis_info of an Ogg Vorbis file whose header packets are cut (vorbis.hdr_cut).
KNOWN_LEAKS = {"vorbis_info_init": "libsndfile leaks vorbis_info opening a Vorbis file cut in its header"}
MISLEADING = ("possibly a pipe", "SF_INFO struct incomplete", "No Error.")  # libsndfile's, off the mark
SANITIZER = ("runtime error:", "AddressSanitizer", "LeakSanitizer")

# name, extension, rate, channels, maker: ("sox", sox output options) or ("sndfile", SF_FORMAT)
FORMATS = [
    ("wav16", "wav", 44100, 2, ("sox", ["-e", "signed", "-b", "16"])),
    ("wav24", "wav", 22050, 1, ("sox", ["-e", "signed", "-b", "24"])),
    ("wavf32", "wav", 44100, 2, ("sox", ["-e", "floating-point", "-b", "32"])),
    ("wavulaw", "wav", 22050, 1, ("sox", ["-e", "u-law"])),
    ("wavima", "wav", 22050, 2, ("sox", ["-e", "ima-adpcm"])),
    ("w64", "w64", 44100, 2, ("sox", ["-b", "16"])),
    ("rf64", "rf64", 22050, 1, ("sndfile", 0x220000 | 0x0002)),  # SF_FORMAT_RF64 | PCM_16
    ("aiff", "aiff", 44100, 2, ("sox", ["-b", "16"])),
    ("au", "au", 22050, 1, ("sox", ["-b", "16"])),
    ("caf", "caf", 44100, 2, ("sox", ["-b", "16"])),
    ("flac", "flac", 44100, 2, ("sox", ["-b", "16"])),
    ("vorbis", "ogg", 44100, 2, ("sox", [])),
    ("opus", "opus", 48000, 2, ("sndfile", 0x200000 | 0x0064)),  # SF_FORMAT_OGG | OPUS (48 kHz)
    ("mp3", "mp3", 44100, 1, ("sndfile", 0x230000 | 0x0082)),  # SF_FORMAT_MPEG | LAYER_III (VBR)
]
FAMILY = {"flac": "flac", "vorbis": "ogg", "opus": "ogg", "mp3": "mp3"}  # the others: "pcm"
VARIANTS = ["good", "wrong_ext", "hdr_cut", "hdr_only", "no_header", "hdr_ff", *CUTS, "zeroed", "flip97",
            "flip4099"]
NEVER_SILENT = {"error", "warn"}
EXPECT = {  # family -> variant -> allowed outcomes (flips: any)
    "pcm": {"good": {"ok"}, "wrong_ext": {"ok"}, "hdr_cut": {"error"}, "hdr_only": {"error"},
            "no_header": {"error"}, "hdr_ff": {"error"}, **{v: {"warn"} for v in CUTS}, "zeroed": {"ok"}},
    "flac": {"good": {"ok"}, "wrong_ext": {"ok"}, "hdr_cut": {"error"}, "hdr_only": {"error"},
             "no_header": {"error"}, "hdr_ff": {"error"}, **{v: NEVER_SILENT for v in CUTS}, "zeroed": {"error"}},
    "ogg": {"good": {"ok"}, "wrong_ext": {"ok"}, "hdr_cut": {"error"}, "hdr_only": {"error"},
            "no_header": {"error"}, "hdr_ff": {"error"}, **{v: NEVER_SILENT for v in CUTS}, "zeroed": {"error"}},
    "mp3": {"good": {"ok"}, "wrong_ext": {"ok"}, "hdr_cut": {"error"}, "hdr_only": {"error"},
            "no_header": {"ok"}, "hdr_ff": {"ok"}, **{v: NEVER_SILENT for v in CUTS}, "zeroed": {"error"}},
}


def signal(rate, channels, seed):
    """A voiced-speech-like tone with vibrato and a little noise, in [-0.5, 0.5]; frames x channels."""
    rng = np.random.default_rng(seed)
    n = int(rate * SECONDS)
    t = np.arange(n) / rate
    phase = 2 * np.pi * np.cumsum(130 + 30 * np.sin(2 * np.pi * 0.9 * t)) / rate
    x = sum(0.25 / k * np.sin(k * phase) for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.7 * t))
    return np.clip(np.stack([x + 0.02 * rng.standard_normal(n) for _ in range(channels)], axis=1), -0.5, 0.5)


def write_wav16(path, x, rate):
    with wave.open(path, "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.round(x * 32767).astype("<i2").tobytes())


class SfInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def sndfile_write(path, x, rate, fmt):
    """Encodes x with the system's libsndfile; None, or why it could not."""
    try:
        sf = ctypes.CDLL("libsndfile.so.1")
    except OSError as e:
        return str(e)
    sf.sf_open.restype = ctypes.c_void_p
    sf.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SfInfo)]
    sf.sf_strerror.restype = ctypes.c_char_p
    sf.sf_strerror.argtypes = [ctypes.c_void_p]
    sf.sf_writef_float.restype = ctypes.c_int64
    sf.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    sf.sf_close.argtypes = [ctypes.c_void_p]
    x = np.ascontiguousarray(x, dtype=np.float32)
    info = SfInfo(0, rate, x.shape[1], fmt, 0, 0)
    h = sf.sf_open(path.encode(), 0x20, ctypes.byref(info))  # SFM_WRITE
    if not h:
        return "libsndfile cannot write it: " + sf.sf_strerror(None).decode(errors="replace")
    n = sf.sf_writef_float(h, x.ctypes.data, x.shape[0])
    sf.sf_close(h)
    return None if n == x.shape[0] else f"libsndfile wrote {n} of {x.shape[0]} frames"


def make_good(work, name, ext, rate, channels, maker, seed):
    """The undamaged file: (path, None), or (None, why it cannot be made here)."""
    path = os.path.join(work, f"{name}.good.{ext}")
    x = signal(rate, channels, seed)
    kind, how = maker
    if kind == "sox":
        if not shutil.which("sox"):
            return None, "sox is not installed"
        src = os.path.join(work, f"{name}.src.wav")
        write_wav16(src, x, rate)
        p = subprocess.run(["sox", "-R", src, *how, path], capture_output=True, text=True)
        os.remove(src)
        why = None if p.returncode == 0 else "sox: " + p.stderr.strip()
    else:
        why = sndfile_write(path, x, rate, how)
    if why is None and os.path.getsize(path) == 0:
        why = "the encoder wrote an empty file"
    if why is not None:
        if os.path.exists(path):
            os.remove(path)
        return None, why
    return path, None


def ogg_header_end(data, n_header_packets):
    """Offset of the first Ogg page after the codec's header packets (3 for Vorbis, 2 for Opus)."""
    off = packets = 0
    while packets < n_header_packets:
        assert data[off:off + 4] == b"OggS", f"no Ogg page at {off}"
        nseg = data[off + 26]
        segs = data[off + 27:off + 27 + nseg]
        packets += sum(1 for s in segs if s < 255)
        off += 27 + nseg + sum(segs)
    return off


def mp3_frame_len(h):
    """Bytes of the MPEG-1 layer III frame whose 4-byte header is h."""
    assert h[0] == 0xFF and (h[1] & 0xFE) == 0xFA, f"not an MPEG-1 layer III frame header: {h.hex()}"
    kbps = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320][h[2] >> 4]
    rate = [44100, 48000, 32000][(h[2] >> 2) & 3]
    return 144 * kbps * 1000 // rate + ((h[2] >> 1) & 1)


def data_span(data, name):
    """(start, end) of the coded audio in a file of format name: what precedes start is header."""
    u32le = lambda o: int.from_bytes(data[o:o + 4], "little")  # noqa: E731
    u32be = lambda o: int.from_bytes(data[o:o + 4], "big")  # noqa: E731
    if name.startswith("wav") or name == "rf64":
        off, ds64 = 12, None
        while off + 8 <= len(data):
            cid, size = data[off:off + 4], u32le(off + 4)
            if cid == b"ds64":
                ds64 = int.from_bytes(data[off + 16:off + 24], "little")
            if cid == b"data":
                return off + 8, off + 8 + (ds64 if size == 0xFFFFFFFF else size)
            off += 8 + size + (size & 1)
    elif name == "w64":
        off = 40
        while off + 24 <= len(data):
            size = int.from_bytes(data[off + 16:off + 24], "little")  # with the 24-byte chunk header
            if data[off:off + 4] == b"data":
                return off + 24, off + size
            off += (size + 7) & ~7
    elif name == "aiff":
        off = 12
        while off + 8 <= len(data):
            cid, size = data[off:off + 4], u32be(off + 4)
            if cid == b"SSND":
                return off + 16 + u32be(off + 8), off + 8 + size
            off += 8 + size + (size & 1)
    elif name == "au":
        return u32be(4), u32be(4) + u32be(8)
    elif name == "caf":
        off = 8
        while off + 12 <= len(data):
            cid, size = data[off:off + 4], int.from_bytes(data[off + 4:off + 12], "big", signed=True)
            if cid == b"data":
                return off + 16, len(data) if size < 0 else off + 12 + size
            off += 12 + size
    elif name == "flac":
        off = 4
        while True:
            last, size = data[off] & 0x80, int.from_bytes(data[off + 1:off + 4], "big")
            off += 4 + size
            if last:
                return off, len(data)
    elif name in ("vorbis", "opus"):
        return ogg_header_end(data, 3 if name == "vorbis" else 2), len(data)
    elif name == "mp3":  # the header is the first frame when it is the Xing/Info (length) frame
        n = mp3_frame_len(data[:4])
        return (n if b"Xing" in data[:n] or b"Info" in data[:n] else 0), len(data)
    raise AssertionError(f"{name}: no audio data found")


def damage(data, name, variant):
    """The bytes of one damaged variant of a good file of format name."""
    start, end = data_span(data, name)
    b = bytearray(data)
    if variant == "hdr_cut":
        return bytes(b[:start // 2])
    if variant == "hdr_only":
        return bytes(b[:start])
    if variant == "no_header":
        return bytes(b[start:end])
    if variant == "hdr_ff":
        b[4:min(20, start)] = b"\xff" * (min(20, start) - 4)
        return bytes(b)
    if variant in CUTS:
        return bytes(b[:start + (end - start) * int(variant[4:]) // 100])
    if variant == "zeroed":
        b[start:end] = bytes(end - start)
        return bytes(b)
    if variant.startswith("flip"):
        every = int(variant[4:])
        rng = np.random.default_rng(every)
        for block in range(start, end, every):
            b[block + int(rng.integers(0, min(every, end - block)))] ^= int(rng.integers(1, 256))
        return bytes(b)
    raise AssertionError(variant)


def sanitizer_findings(stderr):
    """(unknown, known): sanitizer reports on stderr that are not, and that are, KNOWN_LEAKS."""
    known = []
    for report in re.findall(r"=+\n==\d+==ERROR: LeakSanitizer.*?\nSUMMARY: [^\n]*\n?", stderr, re.S):
        leaks = re.findall(r"(?:Direct|Indirect) leak of .*?(?=\n\n|\nSUMMARY)", report, re.S)
        why = {KNOWN_LEAKS[f] for leak in leaks for f in KNOWN_LEAKS if f in leak}
        if leaks and all(any(f in leak for f in KNOWN_LEAKS) for leak in leaks):
            known += sorted(why)
            stderr = stderr.replace(report, "")
    return [s for s in SANITIZER if s in stderr], known


def outcome(line, family):
    if line["error"] is not None:
        return "error"
    if line.get("warning"):
        return "warn"
    # an MP3 without its Info frame keeps the encoder's delay and padding (no gapless trim): ~50 ms
    over = line["duration"] - SECONDS
    return "ok" if -0.05 < over < (0.1 if family == "mp3" else 0.05) else "short" if over < 0 else "long"


def check_line(line, path, family, variant, rate):
    """What is wrong with one corpus entry's line: a list of problems."""
    bad = []
    if line["error"] is not None:
        if path not in line["error"]:
            bad.append("the error does not name the file")
        bad += [f"the error says libsndfile's {m!r}" for m in MISLEADING if m in line["error"]]
    else:
        if not isinstance(line.get("text"), str) or not line.get("duration", 0) > 0:
            bad.append(f"success without a text or a duration: {line.get('text')!r}, {line.get('duration')}")
        warn = line.get("warning")
        if warn is not None and path not in warn:
            bad.append("the warning does not name the file")
    if variant.startswith("flip"):
        return bad
    got, want = outcome(line, family), EXPECT[family][variant]
    if got not in want:
        bad.append(f"{got}, wanted {' or '.join(sorted(want))}")
    if got == "warn":  # "the header promises 3.00 s of audio, the file holds 0.75 s"
        m = re.search(r"promises ([0-9.]+) s of audio, the file holds ([0-9.]+) s", line["warning"])
        # an Ogg stream has no length in its header: "ends without its end-of-stream mark after 0.62 s"
        e = re.search(r"without its end-of-stream mark after ([0-9.]+) s", line["warning"])
        if e and family == "ogg":
            if abs(float(e.group(1)) - line["duration"]) > 0.01:
                bad.append(f"warning with a wrong duration: {line['warning']!r}")
        elif not m or abs(float(m.group(1)) - SECONDS) > 0.05 or abs(float(m.group(2)) - line["duration"]) > 0.01:
            bad.append(f"warning with wrong durations: {line['warning']!r}")
    if variant in CUTS:
        there = SECONDS * int(variant[4:]) / 100  # about, for the compressed formats
        if got == "warn" and family == "pcm" and abs(line["duration"] - there) > 0.03:
            bad.append(f"duration {line['duration']}, wanted {there} (what is there)")
        m = re.search(r"decode error at [0-9.]+ s, after (\d+) frames", line["error"] or "")
        if m and int(m.group(1)) < (there - 0.25) * rate:
            bad.append(f"'after {m.group(1)} frames' where about {round(there * rate)} frames are there")
    return bad


def judge(chk, case, bad, what):
    """One case's verdict: KNOWN_MESSAGES and KNOWN_FAILURES are reported, the rest must pass."""
    for b in bad:
        for m, why in KNOWN_MESSAGES.items():
            if m in b:
                print(f"KNOWN FAILURE {what}: {b} ({why})")
    bad = [b for b in bad if not any(m in b for m in KNOWN_MESSAGES)]
    if case in KNOWN_FAILURES:
        if bad:
            print(f"KNOWN FAILURE {what}: {'; '.join(bad)} ({KNOWN_FAILURES[case]})")
        else:
            chk.ok(False, f"{what} passes now: remove {case} from KNOWN_FAILURES")
    else:
        chk.ok(not bad, f"{what}: {'; '.join(bad)}")


def lines_checked(chk, path, what):
    """The lines of a results file, [] after a failed check if it is torn or not JSON."""
    try:
        return result_lines(path)
    except (AssertionError, ValueError, OSError) as e:
        chk.ok(False, f"{what}: {e}")
        return []


def corpus(chk, batch, common, work):
    """The corpus of damaged files, one qasr-batch run."""
    cdir = os.path.join(work, "corpus")
    os.makedirs(cdir)
    entries = []  # (id, path, format, variant, rate)
    for seed, (name, ext, rate, channels, maker) in enumerate(FORMATS):
        good, why = make_good(cdir, name, ext, rate, channels, maker, seed)
        if good is None:
            print(f"SKIP format {name} (.{ext}): cannot make a good file here: {why}")
            continue
        with open(good, "rb") as f:
            data = f.read()
        for variant in VARIANTS:
            if variant == "good":
                path = good
            elif variant == "wrong_ext":
                path = os.path.join(cdir, f"{name}.{variant}." + ("flac" if ext == "wav" else "wav"))
                shutil.copy(good, path)
            else:
                path = os.path.join(cdir, f"{name}.{variant}.{ext}")
                with open(path, "wb") as f:
                    f.write(damage(data, name, variant))
            entries.append((f"{name}.{variant}", path, name, variant, rate))

    manifest = os.path.join(work, "corpus.tsv")
    with open(manifest, "w") as f:
        f.write("path\tid\n" + "".join(f"{path}\t{id_}\n" for id_, path, *_ in entries))
    out = os.path.join(work, "corpus.jsonl")
    try:
        p = subprocess.run([batch, manifest, "-o", out, *common], capture_output=True, text=True, timeout=HANG)
    except subprocess.TimeoutExpired:
        chk.ok(False, f"corpus: qasr-batch still running after {HANG} s (hung)")
        return
    lines = lines_checked(chk, out, "corpus")
    ids = [o["id"] for o in lines]
    chk.ok(sorted(ids) == sorted(e[0] for e in entries), f"corpus: {len(ids)} lines ({len(set(ids))} ids) for "
           f"{len(entries)} entries\n{p.stderr[-3000:]}")
    by = {o["id"]: o for o in lines}
    failed = any(o["error"] is not None for o in lines)
    chk.ok(p.returncode == (1 if failed else 0), f"corpus: exit {p.returncode}, wanted {1 if failed else 0}\n"
           f"{p.stderr[-3000:]}")
    unknown, known = sanitizer_findings(p.stderr)
    chk.ok(not unknown, f"corpus: sanitizer report on stderr ({', '.join(unknown)}):\n{p.stderr[-6000:]}")
    for why in known:
        print(f"KNOWN FAILURE corpus: LeakSanitizer: {why}")

    print(f"{'entry':20} {'expected':14} {'outcome':7} {'seconds':>7}  message")
    for id_, path, name, variant, rate in entries:
        line, family = by.get(id_), FAMILY.get(name, "pcm")
        if line is None:
            continue  # counted above
        want = "any" if variant.startswith("flip") else "|".join(sorted(EXPECT[family][variant]))
        msg = line["error"] or line.get("warning") or ""
        print(f"{id_:20} {want:14} {outcome(line, family):7} {line['duration'] or 0:7.3f}  {msg.replace(path, '<file>')}")
        judge(chk, (name, variant), check_line(line, path, family, variant, rate), id_)


def fill(fs, leave):
    """Fills the file system fs with one file but `leave` bytes; returns its path."""
    filler = os.path.join(fs, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            os.write(fd, bytes(65536))
    except OSError:
        pass
    os.close(fd)
    os.truncate(filler, max(0, os.path.getsize(filler) - leave))
    return filler


def full_filesystem(chk, batch, common, work):
    """-o and --output-dir on a 256 KiB tmpfs that fills up mid-run."""
    fs = os.path.join(work, "smallfs")
    os.makedirs(fs)
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", fs], capture_output=True, text=True)
        why = None if p.returncode == 0 else (p.stderr or p.stdout).strip() or f"exit {p.returncode}"
    except OSError as e:
        why = str(e)
    if why is not None:
        print(f"SKIP small full filesystem: mount -t tmpfs: {why}")
        return
    try:
        run_full(chk, batch, common, work, fs)
    finally:
        if subprocess.run(["umount", fs]).returncode != 0:
            subprocess.run(["umount", "-l", fs])


def run_full(chk, batch, common, work, fs):
    """The full file system cases, fs mounted."""
    good = os.path.join(ROOT, "tests", "audio", "demo.flac")
    ids = [f"demo-{i:02d}" for i in range(40)]

    def manifest(n):
        path = os.path.join(work, f"demo{n}.tsv")
        with open(path, "w") as f:
            f.write("path\tid\n" + "".join(f"{good}\t{id_}\n" for id_ in ids[:n]))
        return path

    def run(m, *extra):
        try:
            return subprocess.run([batch, m, *common, *extra], capture_output=True, text=True, timeout=HANG)
        except subprocess.TimeoutExpired:
            chk.ok(False, f"full file system {extra}: qasr-batch still running after {HANG} s (hung)")
            return None

    # --- results: the disk fills after some lines; complete lines only; a rerun resumes ---
    out = os.path.join(fs, "out.jsonl")
    filler = fill(fs, 8192)
    p = run(manifest(40), "-o", out)
    if p is None:
        return
    chk.ok(p.returncode == 2 and f"qasr-batch: {out}: writing a result: No space left on device" in p.stderr,
           f"full disk: exit {p.returncode}, wanted 2 and the message\n{p.stderr[-2000:]}")
    got = lines_checked(chk, out, "full disk")
    chk.ok(0 < len(got) < len(ids) and len({o["id"] for o in got}) == len(got),
           f"full disk: {len(got)} lines of {len(ids)}: the disk did not fill mid-run, or ids repeat")
    chk.ok(not any(s in p.stderr for s in SANITIZER), f"full disk: sanitizer report:\n{p.stderr[-6000:]}")
    os.remove(filler)
    p = run(manifest(40), "-o", out)
    if p is None:
        return
    got = lines_checked(chk, out, "full disk, rerun")
    chk.ok(p.returncode == 0 and sorted(o["id"] for o in got) == ids and all(o["error"] is None for o in got),
           f"full disk, rerun with room: exit {p.returncode}, {len(got)} lines\n{p.stderr[-2000:]}")
    os.remove(out)

    # --- subtitles (12 entries, room for 3 files): the ones that do not fit get error lines, never
    # a success without its file ---
    ids = ids[:12]
    subs = os.path.join(fs, "subs")
    out = os.path.join(work, "subs.jsonl")
    filler = fill(fs, 3 * 4096)
    p = run(manifest(12), "-o", out, "--format", "srt", "--output-dir", subs)
    if p is None:
        return
    got = {o["id"]: o for o in lines_checked(chk, out, "full subtitles")}
    errors = [i for i in ids if got.get(i, {}).get("error")]
    chk.ok(sorted(got) == ids and p.returncode == (1 if errors else 0),
           f"full subtitles: exit {p.returncode}, {len(got)} lines\n{p.stderr[-2000:]}")
    chk.ok(0 < len(errors) < len(ids), f"full subtitles: {len(errors)} errors: the disk did not fill mid-run")
    for id_, o in sorted(got.items()):
        srt = os.path.join(subs, id_ + ".srt")
        if o["error"] is None:
            with open(srt) if os.path.exists(srt) else open(os.devnull) as f:
                body = f.read()
            chk.ok(body.startswith("1\n00:00:00,000 --> ") and body.endswith(f"\n{o['text']}\n\n"),
                   f"full subtitles: {id_} succeeded, its subtitle file holds {body!r}")
        else:
            chk.ok(srt in o["error"] and "No space left on device" in o["error"] and good in o["error"],
                   f"full subtitles: {id_}: {o['error']}")
    tmp = sorted(n for n in os.listdir(subs) if n.endswith(".tmp")) if os.path.isdir(subs) else []
    judge(chk, ("subtitles", "tmp_left"), [f"{len(tmp)} temporary files left: {tmp[:3]}..."] if tmp else [],
          "full subtitles")
    chk.ok(not any(s in p.stderr for s in SANITIZER), f"full subtitles: sanitizer report:\n{p.stderr[-6000:]}")
    os.remove(filler)
    p = run(manifest(12), "-o", out, "--format", "srt", "--output-dir", subs, "--retry-errors")
    if p is None:
        return
    got = lines_checked(chk, out, "full subtitles, --retry-errors")
    made = sorted(os.listdir(subs))
    chk.ok(p.returncode == 0 and sorted(o["id"] for o in got) == ids and all(o["error"] is None for o in got)
           and made == [i + ".srt" for i in ids], f"full subtitles, --retry-errors with room: exit {p.returncode}, "
           f"{len(got)} lines, files {made[:3]}...\n{p.stderr[-2000:]}")


def unmount_stale():
    """Unmounts what a killed earlier run left mounted under --work, so that it can be emptied."""
    work = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--work"), None)
    if work is None:
        return
    work = os.path.abspath(work) + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in reversed(points):
        if point.startswith(work):
            subprocess.run(["umount", "-l", point])


def main():
    unmount_stale()
    args = bin_model_work_args(__doc__)
    batch = os.path.join(args.bin, "qasr-batch")
    common = ["--model", args.model, "-n", "4", "--ignore-eos", "-t", "2"]
    chk = Checker()
    corpus(chk, batch, common, args.work)
    full_filesystem(chk, batch, common, args.work)
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
