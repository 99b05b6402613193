"""The Python package (python/qasr) on the demo model against the qasr commands' own output.

Run by ctest (python_package) with QASR_LIBRARY=<build>/libqasr.so, QASR_BIN=<build> (qasr,
qasr-batch), QASR_TEST_WORK=<scratch dir> and python/ on PYTHONPATH. Every expected value comes
from running the C commands at test time, none is written here.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

import qasr

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "tests" / "models" / "qasr-demo"
AUDIO = ROOT / "tests" / "audio"
BIN = Path(os.environ.get("QASR_BIN", ROOT / "build"))
WORK = Path(os.environ.get("QASR_TEST_WORK", ROOT / "build" / "tests" / "work" / "python"))
CLIPS = [AUDIO / "demo.flac"] + sorted(AUDIO.glob("heldout-*"))
ALIGNER = Path(os.environ.get("QASR_TEST_ALIGNER", ROOT / "build" / "tests" / "models" / "tiny_aligner"))
BAD = [AUDIO / "broken-empty.wav", AUDIO / "broken-text.wav", AUDIO / "missing.flac"]


@pytest.fixture(scope="module")
def model() -> qasr.Model:
    return qasr.Model(MODEL, threads=2)


@pytest.fixture(scope="module")
def work() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    return WORK


def qasr_json(*paths: Path, args: tuple = ()) -> list:
    """`qasr --json` lines for paths."""
    out = subprocess.run([str(BIN / "qasr"), "--model", str(MODEL), "--json", "-t", "2", *args,
                          *map(str, paths)], capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def read_wav(path: Path) -> tuple:
    """16-bit PCM WAV as float32 frames (n, channels) scaled by 1/32768, as libsndfile reads it."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        return x.reshape(-1, w.getnchannels()), w.getframerate()


def same_transcript(r: qasr.Result, ref: qasr.Result) -> None:
    assert (r.text, r.language, r.token_ids, r.raw, r.duration, r.error) == \
           (ref.text, ref.language, ref.token_ids, ref.raw, ref.duration, ref.error)


def test_paths_equal_qasr_json(model: qasr.Model) -> None:
    inputs = CLIPS + BAD
    expected = qasr_json(*inputs)
    got = model.transcribe(inputs)
    assert len(got) == len(expected) == len(inputs)
    for r, e, p in zip(got, expected, inputs):
        assert r.path == e["path"] == str(p)
        assert r.error == e["error"]
        if e["error"] is None:
            assert r.ok and r.text
            assert (r.text, r.language, r.raw, r.token_ids, r.n_tokens, r.truncated, r.duration) == \
                   (e["text"], e["language"], e["raw"], e["token_ids"], e["n_tokens"], e["truncated"],
                    e["audio_seconds"])
            assert [s.text for s in r.segments] == [r.text] and r.words is None
        else:
            assert not r.ok and r.text is None and r.language is None
    assert sum(r.ok for r in got) == len(CLIPS)


def test_single_input_and_forced_language(model: qasr.Model) -> None:
    clip = CLIPS[1]
    r = model.transcribe(str(clip), language="German")
    assert isinstance(r, qasr.Result)
    e = qasr_json(clip, args=("--language", "German"))[0]
    assert (r.text, r.language, r.token_ids) == (e["text"], e["language"], e["token_ids"])
    bad = model.transcribe([clip], language="Klingon")[0]  # the engine's per-input error
    assert bad.error and bad.error == qasr_json(clip, args=("--language", "Klingon"))[0]["error"]


def test_arrays_equal_paths(model: qasr.Model) -> None:
    wavs = [p for p in CLIPS if p.suffix == ".wav"] + [AUDIO / "phone8k.wav"]
    by_path = model.transcribe(wavs)
    for path, ref in zip(wavs, by_path):
        x, rate = read_wav(path)
        assert rate != 16000 and x.shape[1] == 1
        mono, stereo = x[:, 0], np.repeat(x, 2, axis=1)  # equal channels downmix to the same samples
        got = model.transcribe([(mono, rate), (x, rate), (stereo, rate), (mono.astype(np.float64), rate)])
        for r in got:
            assert r.path is None
            same_transcript(r, ref)


def test_bad_inputs_never_raise(model: qasr.Model) -> None:
    x, rate = read_wav(AUDIO / "heldout-00001.wav")
    nan = x[:, 0].copy()
    nan[100] = np.nan
    inputs = [(np.zeros(0, np.float32), 16000), (x, 0), (nan, rate), AUDIO / "missing.flac", (x, rate),
              (np.zeros((10, 0), np.float32), 16000), (np.zeros((2, 2, 2), np.float32), 16000)]
    got = model.transcribe(inputs)
    assert [r.ok for r in got] == [False, False, False, False, True, False, False]
    assert "no audio samples" in got[0].error and "sample rate" in got[1].error
    assert "non-finite" in got[2].error and "missing.flac" in got[3].error
    with pytest.raises(TypeError):
        model.transcribe(x)  # an array without its rate is a programming error, not a bad input


def test_long_input_cut_like_qasr_batch(model: qasr.Model, work: Path) -> None:
    x, rate = read_wav(AUDIO / "heldout-00001.wav")
    long = work / "long.wav"
    with wave.open(str(long), "wb") as w:  # the clip three times, cut at most 7 s apart
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((np.tile(x[:, 0], 3) * 32768).astype("<i2").tobytes())
    manifest, out = work / "long.txt", work / "long.jsonl"
    manifest.write_text(f"{long}\n")
    subprocess.run([str(BIN / "qasr-batch"), str(manifest), "--model", str(MODEL), "-o", str(out), "-q",
                    "--overwrite", "-t", "2", "--max-segment-seconds", "7"], check=True)
    e = json.loads(out.read_text())
    r = model.transcribe(long, max_segment_seconds=7)
    assert len(r.segments) == len(e["segments"]) >= 2
    assert [(round(s.start, 3), round(s.end, 3), s.text) for s in r.segments] == \
           [(s["start"], s["end"], s["text"]) for s in e["segments"]]
    assert (r.text, r.language, r.n_tokens, r.truncated, r.error) == \
           (e["text"], e["language"], e["n_tokens"], e["truncated"], e["error"])
    assert r.duration == pytest.approx(e["duration"], abs=1e-3)  # qasr-batch rounds to ms
    whole = model.transcribe(long, max_segment_seconds=0)
    assert len(whole.segments) == 1


def read_lines(path: Path) -> list:
    """The lines of a results file by id, without their timings (which differ from run to run;
    so does the order in which files finish)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for d in lines:
        d.pop("timings")
    return sorted(lines, key=lambda d: d["id"])


def test_batch_writes_qasr_batch_jsonl_and_resumes(model: qasr.Model, work: Path) -> None:
    manifest = ROOT / "manifests" / "demo.tsv"
    c_out, py_out = work / "c.jsonl", work / "py.jsonl"
    subprocess.run([str(BIN / "qasr-batch"), str(manifest), "--model", str(MODEL), "-o", str(c_out), "-q",
                    "--overwrite", "-t", "2"], check=True)
    py_out.unlink(missing_ok=True)
    assert qasr.batch(manifest, MODEL, py_out, quiet=True, threads=2) == 0
    assert read_lines(py_out) == read_lines(c_out)
    # the same texts as Model.transcribe of the manifest's paths
    by_id = {d["id"]: d for d in read_lines(py_out)}
    assert len(by_id) == 6
    for d, r in zip(by_id.values(), model.transcribe([d["path"] for d in by_id.values()])):
        assert (d["text"], d["language"]) == (r.text, r.language)
    # resume: nothing to do; then a lost last line is redone, and only it
    before = py_out.read_text()
    assert qasr.batch(manifest, model, py_out, quiet=True) == 0
    assert py_out.read_text() == before
    kept = before.splitlines(keepends=True)
    py_out.write_text("".join(kept[:-1]))
    assert qasr.batch(manifest, model, py_out, quiet=True) == 0
    assert py_out.read_text().splitlines(keepends=True)[:-1] == kept[:-1]  # untouched
    assert read_lines(py_out) == read_lines(c_out)


def test_aligner_words_equal_qasr_batch(work: Path) -> None:
    """Word times and cues from Model(aligner=...) and qasr.batch(aligner=...) against qasr-batch
    --aligner's lines (a synthetic aligner: the times are random, the agreement is the point)."""
    manifest = ROOT / "manifests" / "demo.tsv"
    c_out, py_out = work / "c_aligned.jsonl", work / "py_aligned.jsonl"
    subprocess.run([str(BIN / "qasr-batch"), str(manifest), "--model", str(MODEL), "--aligner", str(ALIGNER),
                    "-o", str(c_out), "-q", "--overwrite", "-t", "2"], check=True)
    lines = read_lines(c_out)
    aligned = qasr.Model(MODEL, threads=2, aligner=ALIGNER)
    results = aligned.transcribe([d["path"] for d in lines])
    for d, r in zip(lines, results):
        assert r.ok and r.words, d["id"]
        assert (r.text, r.language) == (d["text"], d["language"])
        assert [(w.word, w.start, w.end) for w in r.words] == [(w["word"], w["start"], w["end"]) for w in d["words"]]
        assert [(round(s.start, 3), round(s.end, 3), s.text) for s in r.segments] == \
               [(s["start"], s["end"], s["text"]) for s in d["segments"]]
    py_out.unlink(missing_ok=True)
    assert qasr.batch(manifest, aligned, py_out, quiet=True) == 0  # the Model's aligner goes along
    assert read_lines(py_out) == lines
    # known text: align the manifest's text column, no speech model
    ref_c, ref_py = work / "c_ref.jsonl", work / "py_ref.jsonl"
    subprocess.run([str(BIN / "qasr-batch"), str(manifest), "--aligner", str(ALIGNER), "--align-reference",
                    "-o", str(ref_c), "-q", "--overwrite", "-t", "2"], check=True)
    ref_py.unlink(missing_ok=True)
    assert qasr.batch(manifest, None, ref_py, aligner=ALIGNER, align_reference=True, quiet=True, threads=2) == 0
    assert read_lines(ref_py) == read_lines(ref_c)
    with pytest.raises(qasr.QasrError, match="not a Qwen3-ForcedAligner"):
        qasr.Model(MODEL, aligner=MODEL)
    aligned.close()


def test_batch_errors(work: Path) -> None:
    with pytest.raises(qasr.QasrError):
        qasr.batch(work / "no-such-manifest.tsv", MODEL, work / "x.jsonl", quiet=True)
    with pytest.raises(qasr.QasrError):
        qasr.batch(ROOT / "manifests" / "demo.tsv", MODEL, work / "x.jsonl", retry_errors=True, overwrite=True)


def test_model_errors() -> None:
    with pytest.raises(qasr.QasrError, match="no-such-model"):
        qasr.Model(ROOT / "no-such-model")
    with pytest.raises(qasr.QasrError, match="CPU only"):
        qasr.Model(MODEL, backend="cuda")
    with pytest.raises(qasr.QasrError, match="precision"):
        qasr.Model(MODEL, precision="fp8")
    # numbers as the commands check theirs: never a silent default
    for bad in (dict(threads=-1), dict(max_batch=2.5), dict(kv_gb=float("nan")), dict(kv_gb=-1.0),
                dict(device=True)):
        with pytest.raises(qasr.QasrError, match=f"{next(iter(bad))}="):
            qasr.Model(MODEL, **bad)  # type: ignore[arg-type]
    with pytest.raises(qasr.QasrError, match="max_new_tokens=-5"):
        qasr.batch(ROOT / "manifests" / "demo.tsv", MODEL, "unused.jsonl", max_new_tokens=-5)
    with qasr.Model(MODEL, precision="fp32", threads=1) as m:
        assert "English" in m.languages and m.backend.startswith("cpu")
    with qasr.Model(MODEL, threads=1) as m:
        with pytest.raises(qasr.QasrError, match="max_new_tokens=-1"):
            m.transcribe(CLIPS[0], max_new_tokens=-1)
    with pytest.raises(qasr.QasrError, match="closed"):
        m.transcribe(CLIPS[0])


def test_gil_released_during_transcribe(model: qasr.Model) -> None:
    """Another Python thread keeps running while transcribe works (ctypes.CDLL drops the GIL)."""
    ticks: list = []
    done = threading.Event()

    def tick() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    results = model.transcribe(CLIPS * 4)
    t1 = time.monotonic()
    done.set()
    t.join()
    assert all(r.ok for r in results)
    inside = [x for x in ticks if t0 + 0.02 < x < t1 - 0.02]
    # a held GIL would leave no tick inside the call; allow for a busy 2-core machine
    assert t1 - t0 > 0.1 and len(inside) > 0.1 * (t1 - t0) / 0.001, (len(inside), t1 - t0)


def test_batch_interrupted_resumes_and_gives_signals_back(work: Path) -> None:
    """SIGINT mid-run: KeyboardInterrupt after the files in progress are written; Python's own
    SIGINT handling is back afterwards; a second call resumes and completes the manifest."""
    clip = AUDIO / "heldout-00001.wav"
    manifest, out = work / "many.tsv", work / "many.jsonl"
    manifest.write_text("path\tid\n" + "".join(f"{clip}\tu{i:03d}\n" for i in range(120)))
    out.unlink(missing_ok=True)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        qasr.batch(manifest, MODEL, out, quiet=True, threads=2)
    timer.join()
    done = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(done) < 120
    with pytest.raises(KeyboardInterrupt):  # Python's handler again, not qasr-batch's
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert qasr.batch(manifest, MODEL, out, quiet=True, threads=2) == 0
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [f"u{i:03d}" for i in range(120)] and ids[:len(done)] == done
