"""Loading libqasr.so and declaring its calls (host/py/qasr_py.h, host/engine/qasr.h).

ctypes.CDLL (unlike ctypes.PyDLL) releases the GIL for the length of every foreign call, so
other Python threads run while the library decodes audio and runs the model.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

_ENV_LIBRARY = "QASR_LIBRARY"  # a libqasr.so to use instead of the package's own (tests, builds)


class InputStruct(ctypes.Structure):
    """qasr_py_input_t."""

    _fields_ = [
        ("path", ctypes.c_char_p),
        ("samples", ctypes.POINTER(ctypes.c_float)),
        ("frames", ctypes.c_int64),
        ("channels", ctypes.c_int),
        ("sample_rate", ctypes.c_double),
        ("language", ctypes.c_char_p),
        ("context", ctypes.c_char_p),
    ]


def library_path() -> Path:
    """The libqasr.so this package uses: $QASR_LIBRARY, else the one installed beside it."""
    env = os.environ.get(_ENV_LIBRARY)
    return Path(env) if env else Path(__file__).resolve().parent / "libqasr.so"


def _load() -> ctypes.CDLL:
    path = library_path()
    if not path.exists():
        raise ImportError(f"qasr: {path} does not exist: install the package with `pip install ./python` "
                          f"from a qasr checkout (it builds the library), or set {_ENV_LIBRARY}")
    # libgomp reads OMP_WAIT_POLICY once, when it is loaded (with this library, unless something
    # loaded it before): threads that sleep at barriers rather than spin, as the qasr commands
    # choose (host/cli/omp_passive.c); the user's own setting stays.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # RTLD_GLOBAL: the library stands in for two libmpg123 calls that libsndfile makes
    # (host/model/mpg123_hooks.c), which needs its definitions in the global scope.
    lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    c_char_pp = ctypes.POINTER(ctypes.c_char_p)
    sigs = {
        "qasr_py_load": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                           ctypes.c_char_p, ctypes.c_int, ctypes.c_double, ctypes.c_int]),
        "qasr_py_load_aligner": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                                   ctypes.c_char_p, ctypes.c_int, ctypes.c_double, ctypes.c_int]),
        "qasr_py_transcribe": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(InputStruct),
                                                 ctypes.c_int, ctypes.c_int, ctypes.c_double]),
        "qasr_py_batch": (ctypes.c_int, [c_char_pp, c_char_pp, ctypes.c_int]),
        "qasr_py_free": (None, [ctypes.c_void_p]),
        "qasr_free": (None, [ctypes.c_void_p]),
        "qasr_last_error": (ctypes.c_char_p, []),
        "qasr_backend_describe": (ctypes.c_char_p, [ctypes.c_void_p]),
        "qasr_n_languages": (ctypes.c_int, [ctypes.c_void_p]),
        "qasr_language": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
        "qasr_load_seconds": (ctypes.c_double, [ctypes.c_void_p]),
        "qasr_precision_known": (ctypes.c_int, [ctypes.c_char_p]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _load()


def last_error() -> str:
    """The library's message for the last failed call on this thread (qasr_last_error)."""
    msg = lib.qasr_last_error()
    return msg.decode("utf-8", "replace") if msg else "unknown error"


def encode(s: str | os.PathLike[str] | None) -> bytes | None:
    """A string or path for a char * argument (paths as the file system spells them)."""
    if s is None:
        return None
    return os.fsencode(s) if isinstance(s, os.PathLike) else s.encode("utf-8", "surrogateescape")
