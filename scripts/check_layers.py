#!/usr/bin/env python3
"""The layer map of host/ and cuda/, checked from the sources (README "Which file owns what").

    base <- model <- cpu, cuda <- engine <- batch <- cli, py

A folder's files may include their own folder's headers and those of the layers it uses, nothing
above or beside it. The build enforces the same map (one CMake library per folder, include paths
per layer); this check also catches what a build might let through: a header found through a
relative path, the same header name in two folders, and a library layer that exits the process
(only the commands, batch and cli, may) or jumps across frames.

usage: scripts/check_layers.py [ROOT]      exit 0 when the map holds, 1 with one line per breach
"""
import os
import re
import sys

# layer -> the layers its files may include (besides their own)
USES = {
    "base": [],
    "model": ["base"],
    "cpu": ["model", "base"],
    "cuda": ["model", "base"],
    "engine": ["cpu", "model", "base"],
    "batch": ["engine", "model", "base"],
    "cli": ["batch", "engine", "model", "base"],
    "py": ["batch", "engine", "model", "base"],  # libqasr.so for python/: beside cli
}
HOST_LAYERS = ["base", "model", "cpu", "engine", "batch", "cli", "py"]
LIBRARY = {"base", "model", "cpu", "cuda", "engine", "py"}  # the library: never exits the process
SOURCE = re.compile(r"\.(c|h|cu|cuh)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
EXITS = re.compile(r"\b(exit|_exit|quick_exit|qasr_die|longjmp|siglongjmp|setjmp)\s*\(")
# The one place that may name them: qasr_die's own declaration and definition, for the commands.
ALLOWED_EXITS = {("host/base/util.h", "void qasr_die("), ("host/base/util.c", "void qasr_die("),
                 ("host/base/util.c", "exit(code);")}


def layer_of(rel):
    """The layer of a path relative to ROOT, or None outside the map (cuda/emu is its own world)."""
    parts = rel.split("/")
    if parts[0] == "host" and len(parts) > 2 and parts[1] in HOST_LAYERS:
        return parts[1]
    if parts[0] == "cuda" and (len(parts) < 3 or parts[1] != "emu"):
        return "cuda"
    return None


def sources(root):
    for top in ("host", "cuda"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if SOURCE.search(f):
                    yield os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def check(root):
    problems = []
    by_name = {}  # header name -> its paths under host/<layer>/
    for rel in sources(root):
        if rel.startswith("host/") and rel.endswith(".h"):
            by_name.setdefault(os.path.basename(rel), []).append(rel)
    for name, paths in sorted(by_name.items()):
        if len(paths) > 1:
            problems.append(f"{', '.join(paths)}: one header name in two layers ({name}): includes are by name")
    for rel in sources(root):
        layer = layer_of(rel)
        if layer is None:
            continue
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()
        code = strip_comments(text)
        for m in INCLUDE.finditer(code):
            inc = m.group(1)
            line = code.count("\n", 0, m.start()) + 1
            near = os.path.normpath(os.path.join(os.path.dirname(rel), inc)).replace(os.sep, "/")
            if os.path.exists(os.path.join(root, near)):
                target = near
            elif "/" not in inc and inc in by_name:
                target = by_name[inc][0]
            else:
                problems.append(f"{rel}:{line}: #include \"{inc}\" is not a header of the project's layers")
                continue
            if target.startswith("cuda/emu/"):
                if layer != "cuda":
                    problems.append(f"{rel}:{line}: {layer} includes the CUDA emulation ({target})")
                continue
            to = layer_of(target)
            if to is None:
                problems.append(f"{rel}:{line}: #include \"{inc}\" ({target}) is outside the layer map")
            elif to != layer and to not in USES[layer]:
                problems.append(f"{rel}:{line}: {layer} may not include {to} ({target}): "
                                f"{layer} uses {', '.join(USES[layer]) or 'nothing'}")
        if layer in LIBRARY:
            for i, src in enumerate(code.split("\n"), 1):
                m = EXITS.search(src)
                if m and not any(rel == f and a in src for f, a in ALLOWED_EXITS):
                    problems.append(f"{rel}:{i}: {m.group(1)}() in the library ({layer}): return an error "
                                    "instead (only host/batch and host/cli may end the process)")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    problems = check(root)
    for p in problems:
        print(f"check_layers: {p}", file=sys.stderr)
    if not problems:
        print(f"check_layers: {sum(1 for r in sources(root) if layer_of(r))} files keep the layer map")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
