#!/usr/bin/env python3
"""The layer map holds, and breaking it fails: scripts/check_layers.py passes on the sources, then
fails, naming the file, on copies with one breach planted each (an upward include, a sideways
one between the backends, one through a relative path, a header name in two layers, a library
layer that exits or jumps). The build refuses an upward include too: host/model/encoder.c with
`#include "engine.h"` added, compiled with the exact command the build uses for it
(compile_commands.json), must fail to find the header.

usage: test_layers.py --root SRC --build BUILD --work DIR
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

from testlib import Checker


def run_check(root):
    return subprocess.run([sys.executable, os.path.join(root, "scripts", "check_layers.py"), root],
                          capture_output=True, text=True)


def planted(src, work, name, path, text, where="start"):
    """A copy of the sources with text added to path (at its start, or after its first #include)."""
    dst = os.path.join(work, name)
    shutil.rmtree(dst, ignore_errors=True)
    for top in ("host", "cuda", "scripts"):
        shutil.copytree(os.path.join(src, top), os.path.join(dst, top))
    p = os.path.join(dst, path)
    if where == "new":
        with open(p, "w") as f:
            f.write(text)
        return dst
    with open(p) as f:
        body = f.read()
    if where == "after_includes":
        i = body.index("#include")
        i = body.index("\n", i) + 1
        body = body[:i] + text + body[i:]
    else:
        body = text + body
    with open(p, "w") as f:
        f.write(body)
    return dst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    chk = Checker()

    p = run_check(a.root)
    chk.ok(p.returncode == 0, f"the sources break the layer map:\n{p.stderr}")

    cases = [
        ("model_up", "host/model/encoder.c", '#include "engine.h"\n', "after_includes",
         "host/model/encoder.c:", "model may not include engine"),
        ("engine_up", "host/engine/engine.c", '#include "results.h"\n', "after_includes",
         "host/engine/engine.c:", "engine may not include batch"),
        ("batch_to_cpu", "host/batch/workers.c", '#include "backend_cpu.h"\n', "after_includes",
         "host/batch/workers.c:", "batch may not include cpu"),
        ("cuda_to_cpu", "cuda/backend_cuda.cu", '#include "cpu_math.h"\n', "after_includes",
         "cuda/backend_cuda.cu:", "cuda may not include cpu"),
        ("relative", "host/model/decoder.c", '#include "../engine/qasr.h"\n', "after_includes",
         "host/model/decoder.c:", "model may not include engine"),
        ("same_name", "host/model/utf8.h", "/* a second utf8.h */\n", "new",
         "host/model/utf8.h", "one header name in two layers"),
        ("exit", "host/engine/engine.c", "static void bye(void) { exit(3); }\n", "after_includes",
         "host/engine/engine.c:", "exit() in the library"),
        ("longjmp", "host/model/model.c", "#include <setjmp.h>\nstatic void jump(jmp_buf b) { longjmp(b, 1); }\n",
         "after_includes", "host/model/model.c:", "longjmp() in the library"),
    ]
    for name, path, text, where, file_msg, why in cases:
        root = planted(a.root, a.work, name, path, text, where)
        p = run_check(root)
        chk.ok(p.returncode == 1 and file_msg in p.stderr and why in p.stderr,
               f"{name}: expected exit 1 naming {file_msg} ({why}), got {p.returncode}:\n{p.stderr}")
        print(f"  planted {name}: {p.stderr.strip().splitlines()[0] if p.stderr.strip() else '(nothing reported)'}")

    # the build: the compile command of host/model/encoder.c on a copy with an upward include
    with open(os.path.join(a.build, "compile_commands.json")) as f:
        commands = json.load(f)
    src = os.path.realpath(os.path.join(a.root, "host", "model", "encoder.c"))
    entry = next((c for c in commands if os.path.realpath(c["file"]) == src), None)
    chk.ok(entry is not None, "host/model/encoder.c is not in compile_commands.json")
    if entry:
        copy = os.path.join(a.work, "encoder_planted.c")
        with open(src) as f:
            body = f.read()
        with open(copy, "w") as f:
            f.write('#include "engine.h"\n' + body)
        args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
        args = [x for x in args if x != src]
        if "-o" in args:
            i = args.index("-o")
            del args[i:i + 2]
        args = [x for x in args if x != "-c"] + ["-fsyntax-only", copy]
        p = subprocess.run(args, cwd=entry["directory"], capture_output=True, text=True)
        chk.ok(p.returncode != 0 and "engine.h" in p.stderr,
               f"the model layer's compile command found engine.h (rc {p.returncode}):\n{p.stderr[-2000:]}")
        # the same command without the breach compiles: the failure is the include, nothing else
        q = subprocess.run(args[:-1] + [src], cwd=entry["directory"], capture_output=True, text=True)
        chk.ok(q.returncode == 0, f"encoder.c itself does not compile with its command:\n{q.stderr[-2000:]}")
        print(f"  build: an upward include in the model layer fails: {p.stderr.strip().splitlines()[0]}")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
