#!/usr/bin/python3
"""Predicted GPU time of a cuemu trace (CUEMU_TRACE, cuda/emu/trace.cpp) on a named GPU.

Per operation (bench/ROOFLINE.md explains every term):
  kernel   max(bytes / (hbm_bw_peak * hbm_bw_fraction), flops / (fp32_peak * fp32_fraction)
               + tc_flops / (tc_bf16_peak * tc_fraction_small)) + kernel_overhead;
           bytes = unique bytes read + written (measured by the emulator's instrumentation when
           the kernel ran, else the launcher's CUEMU_COST declaration); tc_flops: the MMA flops of
           a CUEMU_COST_TC declaration (wmma kernels: 16x16x16 tiles between shared-memory round
           trips, the small-GEMM regime, hence tc_fraction_small)
  GEMM     max(bytes / bw, flops / tensor rate) + kernel_overhead; tensor rate = tc_bf16_peak *
           tc_fraction_large (tc_fraction_small when a side has < 128 rows); tf32 at half the
           bf16 rate, plain fp32 on CUDA cores (fp32_peak * fp32_fraction)
  FFT      as a kernel (fp32 CUDA-core rate)
  h2d/d2h  copy_latency + bytes / pcie_bw (pageable host memory, staged by the driver), or
           bytes / pcie_bw_pinned when the trace marks the host side pinned (cudaMallocHost);
           d2d, memset: as a kernel of those bytes
The host issues operations one after another (launch_host per launch, library_host per library
call, launch_host per copy; a CUDA graph's launch costs graph_launch_host once, and its nodes, the
operations recorded when it was captured, are issued with it at no further host cost); each stream runs its operations in order, an operation starting when
the host has issued it and the stream's previous one has ended (stream 0, the legacy stream, also
waits for every other stream). The host waits at synchronisations (sync_latency after the work it
waits for) and blocking copies. Events order streams. The predicted time is the host's clock at
the end. Host work between CUDA calls (the engine's own CPU time) is not in the trace: 0 here.

Streams running at once share the GPU (class Device): each operation is its fixed part
(kernel_overhead; a host copy's latency and PCIe transfer), which shares nothing, then its work,
of alone time T = max(tb, tc) (tb = bytes / bw, tc = the compute terms above), demanding tb / T
of the HBM bandwidth and tc / T of the SMs. All operations in their work part advance at one rate
s = min(1, 1 / sum of bandwidth demands, 1 / sum of SM demands), recomputed at every start and
end: two bandwidth-bound kernels take the sum of their times, a bandwidth-bound kernel beside a
compute-bound GEMM about the longer one. h2d/d2h copies use the copy engines: free beside kernels.
One stream alone never shares: its numbers are exactly the serial calculator's.

Stages: each stream's operations are cut into pieces where the host waits for that stream (a
device sync or a wait on stream 0: for all of them); a piece with mel/conv/window-attention
kernels is an encoder call, one with a paged prefill kernel a prefill step, one with a paged decode kernel a
decode step. Inside: mel = mel_* kernels, FFTs and fp32 GEMMs; conv = mel_chunks and
conv3x3s2_gelu .. conv_flatten; lm_head = a GEMM with a side >= 32768 (the
vocabulary); argmax = argmax kernels; the rest goes to the piece's kind. A stage's busy time is
the time its operations took (under sharing); idle = total - the union of all operations' busy
intervals (busy summed over stages, less the time counted twice: "overlap").
"""
import argparse
import json
import os
import sys
from collections import deque

STAGES = ["mel", "conv", "encoder", "prefill", "decode", "lm_head", "argmax", "other"]


def load_constants(path, gpu):
    c = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            g, name, value = line.rstrip("\n").split("\t")[:3]
            if g == gpu:
                c[name] = float(value)
    if not c:
        sys.exit(f"gpu_model: no constants for gpu {gpu!r} in {path}")
    return c


def parse(path):
    """The trace as a list of dicts, launches with their measured bytes joined in. Operations
    recorded into a capture (graph field > 0) do not run then: each G line (a graph launch) is
    followed by a copy of them, marked in_graph, whose kernels take the M lines that follow."""
    ops, by_id, graphs = [], {}, {}

    def add(op, graph):
        (graphs.setdefault(graph, []) if graph else ops).append(op)

    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            k = p[0]
            if k == "K":
                op = dict(kind="K", id=int(p[1]), dev=int(p[2]), stream=int(p[3]), name=p[4], grid=p[5], block=p[6],
                          smem=int(p[7]), decl=(float(p[8]), float(p[9]), float(p[10])), meas=None,
                          tc_flops=float(p[12]) if len(p) > 12 else 0.0)
                by_id[op["id"]] = op
                add(op, int(p[11]))
            elif k == "M":
                by_id[int(p[1])]["meas"] = (float(p[2]), float(p[3]))
            elif k == "L":
                shape = dict(kv.split("=") for kv in p[7].split())
                add(dict(kind="L", dev=int(p[1]), stream=int(p[2]), name=p[3], flops=float(p[4]), rd=float(p[5]),
                         wr=float(p[6]), shape={a: int(b) for a, b in shape.items()}), int(p[8]) if len(p) > 8 else 0)
            elif k == "C":
                # traces before the pinned field (7th) count as pageable
                add(dict(kind="C", dev=int(p[1]), stream=int(p[2]), name=p[3], bytes=float(p[4]), blocking=p[5] == "1",
                         pinned=len(p) > 6 and p[6] == "1"), int(p[7]) if len(p) > 7 else 0)
            elif k == "G":
                g = dict(kind="G", dev=int(p[1]), stream=int(p[2]), graph=int(p[3]))
                ops.append(g)
                for node in graphs[g["graph"]]:
                    op = dict(node, stream=g["stream"], in_graph=True)
                    if op["kind"] == "K":
                        by_id[op["id"]] = op
                    ops.append(op)
            elif k == "S":
                ops.append(dict(kind="S", dev=int(p[1]), stream=int(p[2]), name=p[3]))
            elif k == "E":
                ops.append(dict(kind="E", dev=int(p[1]), stream=int(p[2]), name=p[3], event=int(p[4])))
    return ops


def kernel_bytes(op):
    if op["meas"] is not None:
        return op["meas"][0] + op["meas"][1], op["decl"][2]
    rd, wr, fl = op["decl"]
    if rd < 0:
        raise ValueError(f"kernel {op['name']} has neither measured bytes nor a CUEMU_COST declaration")
    return rd + wr, fl


def op_parts(op, c):
    """One operation's time in parts: (fixed, tb, tc, bytes, flops). fixed: the part that shares
    nothing with other streams (launch latency and ramp; a host copy's latency and PCIe transfer);
    tb: its time streaming its bytes at the achievable HBM bandwidth; tc: its time on the SMs
    (CUDA cores and tensor cores). Alone it takes max(tb, tc) + fixed (op_time)."""
    bw = c["hbm_bw_peak"] * c["hbm_bw_fraction"]
    fp32 = c["fp32_peak"] * c["fp32_fraction"]
    if op["kind"] == "K":
        b, fl = kernel_bytes(op)
        tc = op["tc_flops"]
        t = max(fl, 0) / fp32 + tc / (c["tc_bf16_peak"] * c["tc_fraction_small"])
        return c["kernel_overhead"], b / bw, t, b, max(fl, 0) + tc
    if op["kind"] == "L":
        b, fl = op["rd"] + op["wr"], op["flops"]
        if op["name"].startswith("gemm_"):
            t = op["name"][5:]
            small = min(op["shape"]["m"], op["shape"]["n"]) < 128
            tc = c["tc_bf16_peak"] * (c["tc_fraction_small"] if small else c["tc_fraction_large"])
            rate = tc if t in ("bf16", "f16") else tc / 2 if t == "tf32" else fp32
        else:
            rate = fp32
        return c["kernel_overhead"], b / bw, fl / rate, b, fl
    if op["kind"] == "C":
        if op["name"] in ("h2d", "d2h", "h2h"):
            # the copy engine and PCIe: neither HBM bandwidth nor SMs worth counting
            bw = c["pcie_bw_pinned"] if op["pinned"] else c["pcie_bw"]
            return c["copy_latency"] + op["bytes"] / bw, 0.0, 0.0, op["bytes"], 0
        b = op["bytes"] * (2 if op["name"] == "d2d" else 1)
        return c["kernel_overhead"], b / bw, 0.0, b, 0
    return 0.0, 0.0, 0.0, 0, 0


def op_time(op, c):
    """GPU time of one operation alone, and its bytes and flops."""
    fixed, tb, tc, b, fl = op_parts(op, c)
    return max(tb, tc) + fixed, b, fl


def is_wait(op):
    return op["kind"] == "S" or (op["kind"] == "C" and op["blocking"]) or (op["kind"] == "E" and op["name"] == "sync")


def assign_stages(ops):
    """Sets op['stage'] for every GPU operation (see the module comment)."""

    def label(group, streams):
        """Stages of the operations of group on one of streams, from the kinds of group's kernels."""
        names = [o["name"] for o in group if o["kind"] == "K"]
        if any(n.startswith(("mel_", "conv3x3s2", "window_attention", "conv_flatten")) for n in names):
            kind = "encoder"
        elif any(n.startswith("paged_prefill") for n in names):
            kind = "prefill"
        elif any(n.startswith("paged_decode") for n in names):
            kind = "decode"
        else:
            kind = "other"
        in_conv = False
        for o in group:
            n = o["name"]
            if o["kind"] == "K" and n.startswith("conv3x3s2"):
                in_conv = True
            if o["kind"] == "K" and n.startswith("mel_") and not n.startswith("mel_chunks"):
                st = "mel"
            elif o["kind"] == "L" and (n.startswith("fft_") or n in ("gemm_f32", "gemm_tf32", "gemm_f32r")):
                st = "mel"
            elif o["kind"] == "K" and n.startswith("mel_chunks"):
                st = "conv"
            elif in_conv:
                st = "conv"
            elif o["kind"] == "L" and max(o["shape"]["m"], o["shape"]["n"]) >= 32768:
                st = "lm_head"
            elif o["kind"] == "K" and n.startswith("argmax"):
                st = "argmax"
            else:
                st = kind
            if o["kind"] == "K" and n.startswith("conv_flatten"):
                in_conv = False
            if o["stream"] in streams:
                o["stage"] = st

    def cut(streams):
        if 0 in streams and 0 in pieces:
            # stream 0 (the legacy stream; copies here) with all streams' operations since their last cut
            label(sorted((o for ops in pieces.values() for o in ops), key=lambda o: o["seq"]), (0,))
            del pieces[0]
        for s in streams - {0}:
            label(pieces.pop(s, []), (s,))

    pieces = {}     # stream -> its GPU operations since the host last waited for it
    recorded = {}   # event -> stream it was recorded on
    for i, op in enumerate(ops):
        k, s = op["kind"], op["stream"]
        if k in ("K", "L", "C"):
            op["seq"] = i
            pieces.setdefault(s, []).append(op)
        if k == "E" and op["name"] == "record":
            recorded[op["event"]] = s
        if is_wait(op):
            # the streams the host waited for (stream 0 or the device: all of them)
            w = recorded.get(op["event"], -1) if k == "E" else s
            cut(set(pieces) | {0} if w <= 0 else {w})
    cut(set(pieces) | {0})


class Device:
    """The GPU as a fluid (processor-sharing) system of two resources, HBM bandwidth and the SMs.

    An operation starts when it is issued and what it waits for (its stream's previous operation,
    waited events) has ended. It first runs its fixed part (latency: shares nothing), then its work
    of alone time T = max(tb, tc), demanding a fraction tb / T of the bandwidth and tc / T of the
    SMs. While several operations are in their work part, all of them advance at the same rate
    s = min(1, 1 / sum of bandwidth fractions, 1 / sum of SM fractions), recomputed at every start
    and end. One operation alone runs at rate 1: its time is exactly op_time's."""

    def __init__(self):
        self.now = 0.0
        self.queued = {}   # stream -> issued operations not started yet, in order
        self.running = []

    def submit(self, op, issue, deps, fixed, tb, tc):
        work = max(tb, tc)
        op.update(issue=issue, deps=deps, fixed=fixed, work=work, t=work + fixed, fb=tb / work if work else 0.0,
                  fc=tc / work if work else 0.0, start=None, end=None, slowed=False)
        self.queued.setdefault(op["stream"], deque()).append(op)

    def finish(self, ops):
        """Runs the device until every operation of ops has ended; returns the last end (0 for none)."""
        while any(o["end"] is None for o in ops):
            self.step()
        return max((o["end"] for o in ops), default=0.0)

    def rate(self):
        fb = sum(o["fb"] for o in self.running if o["phase"] == "work")
        fc = sum(o["fc"] for o in self.running if o["phase"] == "work")
        return min(1.0, 1.0 / fb if fb > 1 else 1.0, 1.0 / fc if fc > 1 else 1.0)

    def when(self, op, s):
        """When op's current part ends if the rate stays s. An operation never slowed ends at
        start + t, with op_time's t (the same number to the last bit, whatever the steps)."""
        if op["phase"] == "fixed":
            return op["start"] + op["fixed"] if op["work"] else op["start"] + op["t"]
        if not op["slowed"] and s == 1.0:
            return op["start"] + op["t"]
        return self.now + max(op["left"], 0.0) / s

    def step(self):
        """Advances to the next start or end of a part."""
        starts = []
        for q in self.queued.values():
            if q and all(d["end"] is not None for d in q[0]["deps"]):
                starts.append((max([q[0]["issue"]] + [d["end"] for d in q[0]["deps"]]), q))
        if len(self.running) == 1 and not starts:
            # one operation and nothing else can start before it ends (one stream): runs at rate 1
            o = self.running[0]
            self.now = o["start"] + o["t"] if not o["slowed"] else self.now + max(o["left"], 0.0)
            self.end(o, self.now)
            return
        s = self.rate()
        ends = [(self.when(o, s), o) for o in self.running]
        nxt = min([t for t, _ in ends] + [t for t, _ in starts])
        dt = nxt - self.now
        for o in self.running:
            if o["phase"] == "work":
                o["left"] -= dt * s
                o["slowed"] = o["slowed"] or (s < 1.0 and dt > 0)
            else:
                o["left"] -= dt
        self.now = nxt
        for t, o in ends:
            if t > nxt:
                continue
            if o["phase"] == "fixed" and o["work"]:
                o["phase"], o["left"] = "work", o["work"]
            else:
                self.end(o, t)
        for t, q in starts:
            if t > nxt:
                continue
            o = q.popleft()
            o["start"] = t
            if o["fixed"] or not o["work"]:
                o["phase"], o["left"] = "fixed", o["fixed"]
            else:
                o["phase"], o["left"] = "work", o["work"]
            self.running.append(o)

    def end(self, op, t):
        op["end"] = t
        op["took"] = op["t"] if not op["slowed"] else t - op["start"]
        self.running.remove(op)


def simulate(ops, c):
    """Predicted seconds, GPU busy seconds per stage, and totals."""
    assign_stages(ops)
    dev = Device()
    host = 0.0
    tail = {}   # stream -> the operations its next one waits for (its last one, waited events')
    events = {}  # event -> the operations it waits for
    gpu_ops = []
    tot = dict(bytes=0.0, flops=0.0, launches=0, library=0, copies=0, syncs=0, graph_launches=0)
    for op in ops:
        k, s = op["kind"], op["stream"]
        if k == "G":
            host += c["graph_launch_host"]
            tot["graph_launches"] += 1
        if k in ("K", "L", "C"):
            if not op.get("in_graph"):
                host += c["library_host"] if k == "L" else c["launch_host"]
            fixed, tb, tc, b, fl = op_parts(op, c)
            # stream 0, the legacy stream, also waits for every other stream
            deps = [d for ds in tail.values() for d in ds] if s == 0 else tail.get(s, [])
            dev.submit(op, host, deps, fixed, tb, tc)
            tail[s] = [op]
            gpu_ops.append(op)
            op["bytes_flops"] = (b, max(fl, 0))
            tot["bytes"] += b
            tot["flops"] += max(fl, 0)
            tot[{"K": "launches", "L": "library", "C": "copies"}[k]] += 1
            if k == "C" and op["blocking"]:
                host = dev.finish([op]) + c["sync_latency"]
                tot["syncs"] += 1
        elif k == "S":
            done = dev.finish([d for ds in tail.values() for d in ds] if s < 0 else tail.get(s, []))
            host = max(host, done) + c["sync_latency"]
            tot["syncs"] += 1
        elif k == "E":
            if op["name"] == "record":
                events[op["event"]] = list(tail.get(s, []))
            elif op["name"] == "wait":
                tail[s] = tail.get(s, []) + events.get(op["event"], [])
            else:
                host = max(host, dev.finish(events.get(op["event"], []))) + c["sync_latency"]
                tot["syncs"] += 1
    total = max(host, dev.finish([d for ds in tail.values() for d in ds]))
    # busy: the time each operation took (under sharing); overlap: the time counted twice or
    # more in it (operations of several streams at once), so that busy - overlap is the union
    busy = {s: 0.0 for s in STAGES}
    by_name = {}  # (stage, name) -> [seconds, bytes, flops, count]
    for op in gpu_ops:
        busy[op.get("stage", "other")] += op["took"]
        row = by_name.setdefault((op.get("stage", "other"), op["name"]), [0.0, 0.0, 0.0, 0])
        row[0] += op["took"]
        row[1] += op["bytes_flops"][0]
        row[2] += op["bytes_flops"][1]
        row[3] += 1
    overlap, covered = 0.0, 0.0
    for op in sorted(gpu_ops, key=lambda o: o["start"]):
        if op["start"] < covered:
            overlap += min(op["end"], covered) - op["start"]
        covered = max(covered, op["end"])
    tot["overlap"] = overlap
    tot["by_name"] = by_name
    return total, busy, tot


def simulate_devices(ops, c):
    """{device: simulate() of its operations}. Each device of a run has its own worker thread in
    qasr-batch (--gpus), so each is simulated with its own host clock; they share nothing here
    (the readers that feed them are measured apart: bench/bench_readers.sh)."""
    by_dev = {}
    for op in ops:
        by_dev.setdefault(op["dev"], []).append(op)
    return {d: simulate(o, c) for d, o in sorted(by_dev.items())}


def minus(run, base):
    """run's (total, busy, tot) less base's: the load and warm-up both traces share."""
    total, busy, tot = run
    t0, b0, n0 = base
    busy = {s: busy[s] - b0[s] for s in STAGES}
    names = dict(tot["by_name"])
    for key, row in n0["by_name"].items():
        names[key] = [x - y for x, y in zip(names.get(key, [0.0, 0.0, 0.0, 0]), row)]
    tot = {k: tot[k] - n0[k] for k in tot if k != "by_name"}
    tot["by_name"] = names
    return total - t0, busy, tot


def combine(per_dev):
    """The run's (total, busy, tot) over devices: it ends when the last device ends; work adds up."""
    runs = list(per_dev.values())
    total = max(r[0] for r in runs)
    busy = {s: sum(r[1][s] for r in runs) for s in STAGES}
    tot = {k: sum(r[2][k] for r in runs) for k in runs[0][2] if k != "by_name"}
    names = {}
    for r in runs:
        for key, row in r[2]["by_name"].items():
            names[key] = [x + y for x, y in zip(names.get(key, [0.0, 0.0, 0.0, 0]), row)]
    tot["by_name"] = names
    return total, busy, tot


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--gpu", default="h100")
    ap.add_argument("--constants", default=__file__.rsplit("/", 1)[0] + "/gpu_constants.tsv")
    ap.add_argument("--audio-seconds", type=float, default=0.0)
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ap.add_argument("--top", type=int, default=0, metavar="N",
                    help="also the N operations (stage, kernel or library call) with the most GPU time")
    ap.add_argument("--minus", metavar="TRACE",
                    help="subtract this trace's prediction (a run of the same model and options on one "
                         "short clip: the load and warm-up, which both traces share)")
    a = ap.parse_args()
    c = load_constants(a.constants, a.gpu)
    per_dev = simulate_devices(parse(a.trace), c)
    if a.minus:
        base = simulate_devices(parse(a.minus), c)
        per_dev = {d: minus(r, base[d]) if d in base else r for d, r in per_dev.items()}
    total, busy, tot = combine(per_dev)
    by_name = tot.pop("by_name")
    device_seconds = {d: r[0] for d, r in per_dev.items()}
    res = dict(gpu=a.gpu, seconds=total, devices=len(per_dev), device_seconds=list(device_seconds.values()), stages=busy, idle=max(0.0, total - (sum(busy.values()) - tot["overlap"])), **tot)
    if a.audio_seconds:
        res["audio_seconds"] = a.audio_seconds
        res["rtfx"] = a.audio_seconds / total
    if a.json:
        print(json.dumps(res))
        return
    published = os.path.abspath(a.constants) == os.path.abspath(ap.get_default("constants"))
    source = "published constants" if published else f"the constants of {a.constants}"
    print(f"prediction for {a.gpu} (model with {source}, not a measurement): {total * 1e3:.3f} ms")
    if len(per_dev) > 1:
        print(f"  {len(per_dev)} devices, each with its own worker thread; the run ends with the last: "
              + ", ".join(f"{d}: {t * 1e3:.1f}" for d, t in device_seconds.items()) + " ms; below, their sums")
    for s in STAGES:
        print(f"  {s:8s} {busy[s] * 1e3:10.3f} ms")
    print(f"  {'idle':8s} {res['idle'] * 1e3:10.3f} ms  (GPU waiting for the host: launches, syncs)")
    if tot["overlap"]:  # several streams at once: the stages' busy times add up to more than the GPU's
        print(f"  {'overlap':8s} {tot['overlap'] * 1e3:10.3f} ms  (counted in two or more stages' busy time at once)")
    print(f"  {tot['launches']} launches, {tot['library']} library calls, {tot['copies']} copies "
          f"({tot['graph_launches']} graph launches ran some of them), "
          f"{tot['syncs']} host waits, {tot['bytes'] / 1e9:.3f} GB, {tot['flops'] / 1e12:.3f} TFLOP")
    if a.audio_seconds:
        print(f"  RTFx {res['rtfx']:.0f}")
    if a.top:
        print(f"  {'stage':8s} {'operation':34s} {'ms':>10s} {'GB':>9s} {'TFLOP':>8s} {'count':>7s}")
        for (st, name), (t, b, fl, n) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[:a.top]:
            print(f"  {st:8s} {name[:34]:34s} {t * 1e3:10.3f} {b / 1e9:9.3f} {fl / 1e12:8.3f} {n:7d}")


if __name__ == "__main__":
    main()
