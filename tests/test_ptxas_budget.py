#!/usr/bin/env python3
"""Every CUDA kernel of the backend, as ptxas compiles it for sm_90 (the build's nvcc compile
check writes its report next to each object): registers, shared memory, stack frame (local
memory) and spills within the budget kept in cuda/kernels/ptxas_budget.tsv, so a change that makes
a kernel spill or grow is seen without a GPU. The budget allows no spill and no stack frame except
where a kernel had them when the budget was written (each such line says so). A kernel missing
from the budget fails too: add its line (`--write` prints the budget of the kernels as they are
now). The checker is first run on a planted report with a spill, a register overrun, a shared
memory overrun and an unknown kernel, which it must flag.

usage: test_ptxas_budget.py --reports DIR --budget FILE [--write]
"""
import argparse
import glob
import os
import re
import subprocess
import sys

from testlib import Checker

ENTRY = re.compile(r"Compiling entry function '([^']+)' for 'sm_90'")
PROPS = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")


def demangle(names):
    if not names:
        return {}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.split("\n")
    return dict(zip(names, out))


def parse(text, source):
    """{kernel: {source, registers, smem, stack, spill}} from one ptxas report."""
    kernels, cur, props = {}, None, None
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            cur = m.group(1)
            kernels[cur] = {"source": source, "registers": 0, "smem": 0, "stack": 0, "spill": 0}
            continue
        m = PROPS.search(line)
        if m:
            props = m.group(1)  # the frame line after it is that function's (the entry or a callee)
            continue
        if cur is None:
            continue
        m = FRAME.search(line)
        if m and props == cur:
            kernels[cur]["stack"] = int(m.group(1))
            kernels[cur]["spill"] = int(m.group(2)) + int(m.group(3))
        m = USED.search(line)
        if m:
            kernels[cur]["registers"] = int(m.group(1))
            s = SMEM.search(line)
            kernels[cur]["smem"] = int(s.group(1)) if s else 0
    names = demangle(list(kernels))
    return {names[k]: v for k, v in kernels.items()}


def read_budget(path):
    budget = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            source, kernel, regs, smem, stack, spill = line.rstrip("\n").split("\t")[:6]
            budget[kernel] = (int(regs), int(smem), int(stack), int(spill))
    return budget


def problems(kernels, budget):
    out = []
    for name, k in sorted(kernels.items()):
        if name not in budget:
            out.append(f"{k['source']}: {name}: not in the budget (add: {k['registers']} registers, {k['smem']} bytes "
                       f"smem, {k['stack']} bytes stack, {k['spill']} bytes spills)")
            continue
        regs, smem, stack, spill = budget[name]
        if k["spill"] > spill:
            out.append(f"{k['source']}: {name}: {k['spill']} bytes of spills, budget {spill}")
        if k["stack"] > stack:
            out.append(f"{k['source']}: {name}: {k['stack']} bytes of stack frame (local memory), budget {stack}")
        if k["registers"] > regs:
            out.append(f"{k['source']}: {name}: {k['registers']} registers, budget {regs}")
        if k["smem"] > smem:
            out.append(f"{k['source']}: {name}: {k['smem']} bytes of shared memory, budget {smem}")
    return out


PLANTED = """ptxas info    : Compiling entry function '_Z6spillyPf' for 'sm_90'
ptxas info    : Function properties for _Z6spillyPf
    16 bytes stack frame, 16 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers, 0 bytes smem
ptxas info    : Function properties for __internal_callee
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_Z3fatPf' for 'sm_90'
ptxas info    : Function properties for _Z3fatPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 96 registers, used 1 barriers, 49152 bytes smem
ptxas info    : Compiling entry function '_Z3newPf' for 'sm_90'
ptxas info    : Used 8 registers
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    chk = Checker()

    planted = parse(PLANTED, "planted.cu")
    found = problems(planted, {"spilly(float*)": (255, 0, 16, 0), "fat(float*)": (64, 32768, 0, 0)})
    chk.ok(any("spilly(float*): 32 bytes of spills" in p for p in found), f"a planted spill is not flagged: {found}")
    chk.ok(any("fat(float*): 96 registers, budget 64" in p for p in found), f"a register overrun is not flagged: {found}")
    chk.ok(any("fat(float*): 49152 bytes of shared memory" in p for p in found), f"an smem overrun is not flagged: {found}")
    chk.ok(any("new(float*): not in the budget" in p for p in found), f"an unknown kernel is not flagged: {found}")

    kernels = {}
    reports = sorted(glob.glob(os.path.join(a.reports, "*.sm_90.o.ptxas")))
    for path in reports:
        with open(path) as f:
            kernels.update(parse(f.read(), os.path.basename(path).split(".")[0] + ".cu"))
    if a.write:
        print("# sm_90 budget per kernel: source, kernel (demangled), max registers, max shared memory bytes,")
        print("# max stack frame bytes, max spill bytes (stores + loads)")
        for name, k in sorted(kernels.items(), key=lambda kv: (kv[1]["source"], kv[0])):
            print(f"{k['source']}\t{name}\t{k['registers']}\t{k['smem']}\t{k['stack']}\t{k['spill']}")
        return 0
    chk.ok(len(reports) > 0 and len(kernels) > 0, f"no ptxas reports in {a.reports}")
    budget = read_budget(a.budget)
    for p in problems(kernels, budget):
        chk.ok(False, p)
    print(f"{len(kernels)} kernels in {len(reports)} files checked against {len(budget)} budget lines")
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
