"""qasr.batch: a qasr-batch run from Python (manifest in, resumable JSONL out)."""
from __future__ import annotations

import ctypes
import os
from typing import Optional, Union

from . import _lib
from .model import Model, QasrError, check_counts

PathLike = Union[str, "os.PathLike[str]"]

# qasr-batch's exit codes (README, `qasr-batch --help`)
OK, SOME_FAILED, USAGE, MODEL, INTERRUPTED, DEVICE_FAILED = range(6)


def batch(manifest: PathLike, model: Union[PathLike, Model, None], output: PathLike = "results.jsonl", *,
          aligner: Optional[PathLike] = None, align_reference: bool = False,
          language: Optional[str] = None, context: Optional[str] = None, max_new_tokens: int = 0,
          max_segment_seconds: float = 300.0, retry_errors: bool = False, overwrite: bool = False,
          quiet: bool = False, format: Optional[str] = None, output_dir: Optional[PathLike] = None,
          manifest_format: str = "auto", precision: Optional[str] = None, threads: int = 0,
          max_batch: int = 0, kv_gb: float = 0.0, readers: int = 0, fsync_seconds: float = 10.0,
          shard: Optional[str] = None) -> int:
    """Run qasr-batch's pipeline: the same resumable JSONL, the same options and exit codes.

    manifest: TSV, JSONL or a list of paths (README, "qasr-batch"); output: the results file,
    resumed if it exists (ids with a line are skipped; retry_errors re-runs the failed ones,
    overwrite starts afresh). model: a checkpoint directory, or a Model whose directory and
    options (its aligner too) are used (the run loads its own copy). aligner: a
    Qwen3-ForcedAligner directory: word times and subtitle cues, as `qasr-batch --aligner`;
    align_reference: align each entry's text column instead of transcribing (model None). Progress and messages go to stderr unless
    quiet. Returns 0 (every entry transcribed) or 1 (some entries failed; their lines say why).
    Raises QasrError for a bad invocation or a model that cannot be loaded, and
    KeyboardInterrupt when SIGINT/SIGTERM stopped the run (the files in progress are finished
    and written first; run again to resume). The GIL is released during the run.
    """
    check_counts(max_new_tokens=max_new_tokens, threads=threads, max_batch=max_batch, kv_gb=kv_gb, readers=readers)
    opts = {}
    if isinstance(model, Model):
        opts.update({k: v for k, v in model.options.items() if v})
        opts["model"] = model.model_dir
    else:
        if model is not None:
            opts["model"] = model
        opts["backend"] = "cpu"  # this package's library has no CUDA backend (see Model)
    if aligner is not None:
        opts["aligner"] = aligner
    if align_reference:
        opts["align_reference"] = 1
    if precision is not None:
        opts["precision"] = precision
    if threads:
        opts["threads"] = threads
    if max_batch:
        opts["batch"] = max_batch
    if kv_gb:
        opts["kv_gb"] = kv_gb
    if max_segment_seconds <= 6:
        raise QasrError("max_segment_seconds must be more than 6 (the cut is searched in the 5 s before it)")
    if retry_errors and overwrite:
        raise QasrError("retry_errors and overwrite exclude each other")
    if format not in (None, "srt", "vtt", "txt"):
        raise QasrError(f"format {format!r}: expected 'srt', 'vtt' or 'txt'")
    opts.update(manifest=manifest, output=output, manifest_format=manifest_format,
                max_new_tokens=max_new_tokens, max_segment_seconds=max_segment_seconds,
                retry_errors=int(retry_errors), overwrite=int(overwrite), quiet=int(quiet),
                readers=readers, fsync_seconds=fsync_seconds)
    for key, value in (("language", language), ("context", context), ("format", format),
                       ("output_dir", output_dir), ("shard", shard)):
        if value is not None:
            opts[key] = value
    if "max_batch" in opts:
        opts["batch"] = opts.pop("max_batch")
    keys = [k.encode() for k in opts]
    values = [os.fsencode(v) if isinstance(v, os.PathLike) else str(v).encode("utf-8", "surrogateescape")
              for v in opts.values()]
    k_arr = (ctypes.c_char_p * len(keys))(*keys)
    v_arr = (ctypes.c_char_p * len(values))(*values)
    code = _lib.lib.qasr_py_batch(k_arr, v_arr, len(keys))
    if code < 0:
        raise QasrError(_lib.last_error())
    if code == INTERRUPTED:
        raise KeyboardInterrupt("qasr.batch: interrupted; run again to resume")
    if code in (USAGE, MODEL):
        raise QasrError(f"qasr.batch failed (qasr-batch exit code {code}): {_lib.last_error()}")
    if code == DEVICE_FAILED:
        raise QasrError("qasr.batch: the device failed; run again to resume")
    return code
