"""qasr.Model: a loaded checkpoint and its transcribe()."""
from __future__ import annotations

import ctypes
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union, overload

import numpy as np

from . import _lib

AudioArray = np.ndarray
"""float samples, mono (n,) or interleaved frames (n, channels); converted to float32."""

Input = Union[str, "os.PathLike[str]", Tuple[AudioArray, float]]
"""One input: an audio file's path, or (samples, sample_rate) for audio in memory."""

DEFAULT_MAX_SEGMENT_SECONDS = 300.0  # as qasr-batch --max-segment-seconds


def check_counts(**values: Any) -> None:
    """Integer options (0: the default) and kv_gb as the commands check theirs: a negative, NaN or
    non-integer value raises QasrError naming it, never a silent default."""
    for name, v in values.items():
        number = name == "kv_gb"
        kinds = (int, float) if number else (int,)
        if not (isinstance(v, kinds) and not isinstance(v, bool) and 0 <= v <= 1_000_000):
            raise QasrError(f"{name}={v!r}: expected {'a number' if number else 'an integer'} from 0 "
                            "(the default) to 1000000")


class QasrError(RuntimeError):
    """A call that failed as a whole (the model could not be loaded, a bad option). A bad input
    never raises: its Result carries the error."""


@dataclass(frozen=True)
class Segment:
    """A piece of a long input cut at a quiet point (as qasr-batch's "segments"), in seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Word:
    """A word with its start and end in seconds from the start of the input (the aligner's:
    the word as its splitter cleaned it, letters, digits and ' only)."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Result:
    """One input's transcript: the fields of a `qasr --json` / `qasr-batch` line.

    text, language: the transcript and the detected (or forced) language; for an input cut into
    segments, the segments' texts joined and their languages joined with ",". None on error.
    error: None for a success, else why this input has no transcript (the file, the decoder or
    the engine's message).
    words: with an aligner (Model(..., aligner=DIR)), each word's start and end, in seconds from
    the input's start; segments are then subtitle cues cut from them. None without an aligner,
    and when the transcript could not be aligned (words_error says why; the text is kept).
    """

    text: Optional[str]
    language: Optional[str]
    error: Optional[str]
    path: Optional[str] = None          # the input's path; None for an array
    duration: Optional[float] = None    # seconds of audio (`qasr --json`: audio_seconds)
    segments: List[Segment] = field(default_factory=list)
    n_tokens: int = 0
    token_ids: List[int] = field(default_factory=list)  # generated ids, all segments in order
    raw: Optional[str] = None           # the decoded output before parsing, segments concatenated
    truncated: bool = False             # stopped at max_new_tokens without an end token
    warning: Optional[str] = None       # e.g. a file cut short (its samples were used)
    words: Optional[List[Word]] = None  # with an aligner: word times
    words_error: Optional[str] = None   # why an aligner gave no words for this transcript

    @property
    def ok(self) -> bool:
        """True when the input has a transcript."""
        return self.error is None

    @classmethod
    def from_json(cls, d: dict) -> "Result":
        """A Result from one of the library's JSON lines (host/py/qasr_py.h)."""
        return cls(text=d["text"], language=d["language"], error=d["error"], path=d["path"],
                   duration=d["duration"], segments=[Segment(**s) for s in d["segments"]],
                   n_tokens=d["n_tokens"], token_ids=list(d["token_ids"]), raw=d["raw"],
                   truncated=d["truncated"], warning=d["warning"],
                   words=None if d.get("words") is None else [Word(**w) for w in d["words"]],
                   words_error=d.get("words_error"))


def _is_single(x: Any) -> bool:
    """Whether x is one input rather than a sequence of them."""
    return (isinstance(x, (str, bytes, os.PathLike, np.ndarray))
            or (isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], (int, float, np.number))))


class Model:
    """A Qwen3-ASR checkpoint directory loaded for transcription.

    >>> model = qasr.Model("tests/models/qasr-demo")
    >>> model.transcribe("tests/audio/demo.flac").text

    aligner: a Qwen3-ForcedAligner checkpoint directory: every transcript then gets word times
    (Result.words), as `qasr-batch --aligner`. backend: "cpu" (this package's library is built
    for the CPU only; the qasr commands built with the CUDA toolkit run on GPUs). precision: "fp32", "bf16" or "auto" (bf16 where the CPU
    has native bf16, else fp32), as `qasr --precision`. threads: 0 for every CPU this process may
    use. max_batch, kv_gb: as `qasr --batch`, `--kv-gb` (0: defaults). A negative, NaN or
    non-integer count raises QasrError, as the commands refuse one.

    A model serves one transcribe() at a time: calls from several threads take turns. The work
    runs with the GIL released, so other Python threads go on meanwhile.
    """

    def __init__(self, model_dir: Union[str, "os.PathLike[str]"], backend: Optional[str] = None,
                 precision: Optional[str] = None, threads: int = 0, max_batch: int = 0,
                 kv_gb: float = 0.0, device: int = 0, verbose: bool = False,
                 aligner: Optional[Union[str, "os.PathLike[str]"]] = None) -> None:
        if backend not in (None, "cpu"):
            raise QasrError(f"backend {backend!r}: this qasr package is built for the CPU only "
                            "(use backend='cpu'; the qasr commands run on GPUs)")
        if precision is not None and not _lib.lib.qasr_precision_known(_lib.encode(precision)):
            raise QasrError(f"precision {precision!r}: expected 'fp32', 'bf16' or 'auto'")
        check_counts(threads=threads, max_batch=max_batch, kv_gb=kv_gb, device=device)
        self.model_dir = os.fspath(model_dir)
        self.options = dict(backend="cpu", precision=precision, threads=threads, max_batch=max_batch,
                            kv_gb=kv_gb, device=device, aligner=None if aligner is None else os.fspath(aligner))
        self._lock = threading.Lock()
        self._aligner: Optional[int] = None
        self._q: Optional[int] = _lib.lib.qasr_py_load(
            _lib.encode(model_dir), b"cpu", device, threads, _lib.encode(precision), max_batch, kv_gb,
            int(verbose))
        if not self._q:
            raise QasrError(_lib.last_error())
        if aligner is not None:
            self._aligner = _lib.lib.qasr_py_load_aligner(
                _lib.encode(aligner), b"cpu", device, threads, _lib.encode(precision), max_batch, kv_gb,
                int(verbose))
            if not self._aligner:
                error = _lib.last_error()
                self.close()
                raise QasrError(error)

    def _handle(self) -> int:
        if not self._q:
            raise QasrError("the model was closed")
        return self._q

    @property
    def languages(self) -> List[str]:
        """The languages the model supports (names that `language=` accepts)."""
        q = self._handle()
        return [_lib.lib.qasr_language(q, i).decode() for i in range(_lib.lib.qasr_n_languages(q))]

    @property
    def backend(self) -> str:
        """The backend and its arithmetic, e.g. "cpu, 2 threads, fp32 matrix products"."""
        return _lib.lib.qasr_backend_describe(self._handle()).decode()

    @property
    def load_seconds(self) -> float:
        """How long loading the checkpoint took."""
        return float(_lib.lib.qasr_load_seconds(self._handle()))

    @overload
    def transcribe(self, inputs: Input, *, language: Optional[str] = ..., context: Optional[str] = ...,
                   max_new_tokens: int = ..., max_segment_seconds: float = ...) -> Result: ...

    @overload
    def transcribe(self, inputs: Iterable[Input], *, language: Optional[str] = ...,
                   context: Optional[str] = ..., max_new_tokens: int = ...,
                   max_segment_seconds: float = ...) -> List[Result]: ...

    def transcribe(self, inputs: Union[Input, Iterable[Input]], *, language: Optional[str] = None,
                   context: Optional[str] = None, max_new_tokens: int = 0,
                   max_segment_seconds: float = DEFAULT_MAX_SEGMENT_SECONDS) -> Union[Result, List[Result]]:
        """Transcribe one input (returns a Result) or a list of them (returns a list, in order).

        An input is a path (any format the qasr commands read) or a tuple (samples, sample_rate)
        with samples a float array, mono (n,) or frames (n, channels), at any rate: downmixed,
        resampled to 16 kHz and conditioned exactly as a file is. All inputs are decoded together
        with continuous batching; inputs longer than max_segment_seconds (0: never) are cut at
        quiet points and their texts joined, as qasr-batch does. language forces the language
        (default: detected), context is background text (names, terms); max_new_tokens 0 scales
        the limit to the audio length.

        A bad input (missing file, undecodable, empty array, unsupported language) gives a Result
        with error set; no exception is raised for it. The GIL is released while the library
        works.
        """
        single = _is_single(inputs)
        items: Sequence[Any] = [inputs] if single else list(inputs)  # type: ignore[arg-type]
        check_counts(max_new_tokens=max_new_tokens)
        if max_segment_seconds and max_segment_seconds <= 6:
            raise QasrError("max_segment_seconds must be more than 6 (the cut is searched in the 5 s "
                            "before it), or 0")
        structs = (_lib.InputStruct * max(1, len(items)))()
        keep: List[Any] = []  # the buffers and strings the structs point to, alive for the call
        lang, ctx = _lib.encode(language), _lib.encode(context)
        keep += [lang, ctx]
        for s, item in zip(structs, items):
            s.language, s.context = lang, ctx
            if isinstance(item, tuple):
                samples, rate = item
                a = np.ascontiguousarray(np.asarray(samples, dtype=np.float32))
                if a.ndim == 1:
                    a = a.reshape(-1, 1)
                if a.ndim != 2 or a.size == 0:
                    a = np.zeros((0, 1), np.float32)  # reported as an input without samples
                keep.append(a)
                s.samples = a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                s.frames, s.channels, s.sample_rate = a.shape[0], a.shape[1], float(rate)
            elif isinstance(item, np.ndarray):
                raise TypeError("an array input needs its sample rate: pass (samples, sample_rate)")
            else:
                p = os.fsencode(item)
                keep.append(p)
                s.path = p
        with self._lock:
            out = _lib.lib.qasr_py_transcribe(self._handle(), self._aligner, structs, len(items),
                                              max_new_tokens, float(max_segment_seconds or 0))
            if not out:
                raise QasrError(_lib.last_error())
        try:
            text = ctypes.string_at(out).decode("utf-8")
        finally:
            _lib.lib.qasr_py_free(out)
        results = [Result.from_json(json.loads(line)) for line in text.splitlines()]
        return results[0] if single else results

    def close(self) -> None:
        """Free the model now (also done when the object is collected)."""
        with self._lock:
            self._free()

    def _free(self) -> None:
        for name in ("_q", "_aligner"):
            if getattr(self, name, None):
                _lib.lib.qasr_free(getattr(self, name))
                setattr(self, name, None)

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:  # at interpreter exit the module may be half torn down: the process frees it all
            self._free()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"qasr.Model({self.model_dir!r}, {self.backend if self._q else 'closed'})"
