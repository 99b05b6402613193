"""qasr: Qwen3-ASR transcription in Python, on the qasr C library (CPU backend).

    import qasr
    model = qasr.Model("tests/models/qasr-demo")
    for r in model.transcribe(["a.flac", "b.wav", (samples, 44100)]):
        print(r.text if r.ok else r.error)
    qasr.batch("manifest.tsv", "tests/models/qasr-demo", "results.jsonl")  # as qasr-batch

Model.transcribe returns Result objects with the fields of the qasr commands' JSON lines;
qasr.batch writes qasr-batch's resumable JSONL. The library works with the GIL released.
"""
from .batch import batch
from .model import DEFAULT_MAX_SEGMENT_SECONDS, Input, Model, QasrError, Result, Segment, Word

__all__ = ["Model", "Result", "Segment", "Word", "QasrError", "Input", "batch", "DEFAULT_MAX_SEGMENT_SECONDS"]
__version__ = "0.1.0"
