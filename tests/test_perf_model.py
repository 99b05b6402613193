#!/usr/bin/python3
"""The GPU performance model (bench/gpu_model.py) and its trace (cuda/emu/trace.cpp).

usage: test_perf_model.py [--kernels DIR] [--cublas EXE]... [--constants-exe EXE]

1. The calculator on hand-made traces: a bandwidth-bound kernel, a compute-bound GEMM, a sync,
   a blocking copy; streams sharing the GPU (two bandwidth-bound kernels, one beside a GEMM,
   partial overlap, an event wait, copies beside a kernel): times computed by hand from the
   constants; one stream: exactly the serial calculator's numbers.
2. With --kernels (the directory of the emulated test_kernels_* binaries): they run under
   CUEMU_TRACE; every launch must carry a CUEMU_COST declaration, and the bytes the
   instrumentation counted must equal the declaration (exactly up to 1% + 64 bytes), except
   where the declaration is an upper bound by design (see KNOWN). A layernorm launch's bytes are
   also checked against the hand formula from its launch configuration (grid = rows, shared
   memory = D floats): (rows + 2) D 2 bytes read, rows D 2 written; with the residual
   (add_layernorm) (2 rows + 2) D 2 read, 2 rows D 2 written.
3. With --cublas (test_emu_cublas, test_emu_cublaslt): every GEMM line has 2mnk flops for its shape.
4. The trace marks copies from page-locked memory: a cudaMallocHost buffer is pinned, a malloc one
   is not (--kernels: test_kernels_front's log_mel_batch stages its samples in pinned memory).
5. CUDA graphs: operations recorded into a capture (graph field > 0) run at each G line (a
   graph launch), which costs the host graph_launch_host once instead of a launch per node; the
   M lines after a launch measure that replay.
6. With --constants-exe (bench/gpu_constants built against the emulation): it prints every
   quantity the model's assumed rows need, as table rows; bench/measured_constants.py turns them
   into a complete table for gpu_model.py (every constant of the published one, the measured rows
   marked so), and refuses a measurement with a row missing, naming it.
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import gpu_model  # noqa: E402

FAILS = []


def check(ok, what):
    if not ok:
        FAILS.append(what)
        print("FAIL:", what)


def close(a, b, what, rel=1e-9):
    check(abs(a - b) <= rel * max(abs(a), abs(b), 1e-30), f"{what}: {a!r} != {b!r}")


C = dict(hbm_bw_peak=2e12, hbm_bw_fraction=0.5, tc_bf16_peak=1e15, tc_fraction_large=0.5, tc_fraction_small=0.25,
         fp32_peak=6e13, fp32_fraction=0.5, kernel_overhead=2e-6, launch_host=3e-6, library_host=5e-6,
         sync_latency=1e-5, copy_latency=4e-6, pcie_bw=2e10, pcie_bw_pinned=5e10, graph_launch_host=7e-6)


def parse(lines):
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        f.write("".join("\t".join(str(x) for x in l) + "\n" for l in lines))
    try:
        return gpu_model.parse(f.name)
    finally:
        os.unlink(f.name)


def predict(lines):
    return gpu_model.simulate(parse(lines), C)


def serial(ops, c):
    """The calculator before streams shared the GPU (one stream: each operation alone, in order),
    as a reference: a single-stream trace must give exactly its numbers."""
    gpu_model.assign_stages(ops)
    host, end, events = 0.0, {}, {}
    busy = {s: 0.0 for s in gpu_model.STAGES}
    by_name = {}
    for op in ops:
        k, s = op["kind"], op["stream"]
        if k in ("K", "L", "C"):
            host += c["library_host"] if k == "L" else c["launch_host"]
            t, b, fl = gpu_model.op_time(op, c)
            start = max(host, max(end.values()) if s == 0 and end else end.get(s, 0.0))
            end[s] = start + t
            busy[op["stage"]] += t
            row = by_name.setdefault((op["stage"], op["name"]), [0.0, 0.0, 0.0, 0])
            row[0] += t
            row[1] += b
            row[2] += max(fl, 0)
            row[3] += 1
            if k == "C" and op["blocking"]:
                host = end[s] + c["sync_latency"]
        elif k == "S":
            host = max(host, max(end.values(), default=0.0) if s < 0 else end.get(s, 0.0)) + c["sync_latency"]
        elif k == "E" and op["name"] == "record":
            events[op["event"]] = end.get(s, 0.0)
        elif k == "E" and op["name"] == "wait":
            end[s] = max(end.get(s, 0.0), events.get(op["event"], 0.0))
        elif k == "E":
            host = max(host, events.get(op["event"], 0.0)) + c["sync_latency"]
    return max([host] + list(end.values())), busy, by_name


def K(i, stream, rd, wr, fl, name="rmsnorm_kernel<2>", tc=None, graph=0):
    # the 13th field (tensor-core flops, CUEMU_COST_TC) is optional: traces without it still parse
    return ["K", i, 0, stream, name, "1,1,1", "32,1,1", 0, rd, wr, fl, graph] + ([] if tc is None else [tc])


def calculator():
    bw = 2e12 * 0.5
    # bandwidth-bound: 1 GB through 1 TB/s = 1 ms (its 1e9 flops take 33 us)
    t, busy, _ = predict([K(1, 1, 6e8, 4e8, 1e9), ["S", 0, 1, "cudaStreamSynchronize"]])
    close(t, 3e-6 + 1e9 / bw + 2e-6 + 1e-5, "bandwidth-bound kernel")
    # compute-bound bf16 GEMM 4096^3: 2 * 4096^3 flops at 0.5 PFLOP/s
    m = 4096
    fl, b = 2.0 * m ** 3, 3.0 * m * m * 2
    t, busy, _ = predict([["L", 0, 1, "gemm_bf16", fl, 2 * m * m * 2, m * m * 2, f"m={m} n={m} k={m} batch=1"],
                          ["S", 0, -1, "cudaDeviceSynchronize"]])
    close(t, 5e-6 + fl / 5e14 + 2e-6 + 1e-5, "compute-bound GEMM")
    check(fl / 5e14 > b / bw, "the GEMM case is compute-bound")
    # a decode-sized GEMM (m < 128 rows): small-M tensor rate, still bandwidth-bound
    t, _, _ = predict([["L", 0, 1, "gemm_bf16", 2.0 * 32 * 1024 * 3072, 6.5e6, 2e5, "m=3072 n=32 k=1024 batch=1"]])
    close(t, 5e-6 + max(6.7e6 / bw, 2.0 * 32 * 1024 * 3072 / 2.5e14) + 2e-6, "small-M GEMM")
    # a tensor-core kernel (CUEMU_COST_TC): its fp32 flops at the CUDA-core rate plus its MMA
    # flops at the small-tile tensor rate, 1e9 / 3e13 + 1e12 / (1e15 * 0.25) = 33 us + 4 ms,
    # compute-bound (its 1 MB take 1 us); the same work declared as fp32 flops would take 33 ms
    t, _, _ = predict([K(1, 1, 1e6, 0, 1e9, "window_attention_kernel<64>", tc=1e12),
                       ["S", 0, 1, "cudaStreamSynchronize"]])
    close(t, 3e-6 + 1e9 / 3e13 + 1e12 / 2.5e14 + 2e-6 + 1e-5, "tensor-core kernel")
    t, _, _ = predict([K(1, 1, 1e6, 0, 1e9, "window_attention_kernel<64>", tc=0),
                       ["S", 0, 1, "cudaStreamSynchronize"]])
    close(t, 3e-6 + 1e9 / 3e13 + 2e-6 + 1e-5, "tensor-core field 0")
    # the same on one stream: in sequence
    t, _, _ = predict([K(1, 1, 1e9, 0, 0), K(2, 1, 1e9, 0, 0), ["S", 0, 1, "cudaStreamSynchronize"]])
    close(t, 3e-6 + 2 * (1e9 / bw + 2e-6) + 1e-5, "one stream in order")
    # a sync makes the host wait: the next launch starts after it
    t, _, _ = predict([K(1, 1, 1e9, 0, 0), ["S", 0, 1, "cudaStreamSynchronize"], K(2, 1, 1e3, 0, 0)])
    close(t, 3e-6 + 1e9 / bw + 2e-6 + 1e-5 + 3e-6 + 1e3 / bw + 2e-6, "sync then launch")
    # an event orders stream 2 after stream 1's kernel
    t, _, _ = predict([K(1, 1, 1e9, 0, 0), ["E", 0, 1, "record", 1], ["E", 0, 2, "wait", 1], K(2, 2, 1e9, 0, 0),
                       ["S", 0, -1, "cudaDeviceSynchronize"]])
    close(t, 3e-6 + 2 * (1e9 / bw + 2e-6) + 1e-5, "event wait")
    # a blocking d2h copy: latency + bytes over PCIe, then the host's wake-up (a trace line
    # without the pinned field, as before it existed: pageable)
    t, _, _ = predict([["C", 0, 1, "d2h", 2e6, 1]])
    close(t, 3e-6 + 4e-6 + 2e6 / 2e10 + 1e-5, "blocking copy")
    # an h2d copy from pageable memory, then one from pinned memory, in order on one stream
    t, _, _ = predict([["C", 0, 1, "h2d", 4e6, 0, 0], ["C", 0, 1, "h2d", 4e6, 0, 1],
                       ["S", 0, 1, "cudaStreamSynchronize"]])
    close(t, 3e-6 + 4e-6 + 4e6 / 2e10 + 4e-6 + 4e6 / 5e10 + 1e-5, "pageable then pinned copy")
    # measured bytes win over the declaration
    t, _, _ = predict([K(1, 1, 1e9, 0, 0), ["M", 1, 5e8, 0]])
    close(t, 3e-6 + 5e8 / bw + 2e-6, "measured bytes")


def graphs():
    """A captured step (an h2d copy of its inputs, two kernels, a GEMM), launched twice."""
    bw = 2e12 * 0.5
    g = C["graph_launch_host"]
    step = [["C", 0, 1, "h2d", 4e4, 0, 1, 1], K(1, 1, 1e9, 0, 0, graph=1), K(2, 1, 1e9, 0, 0, graph=1),
            ["L", 0, 1, "gemm_bf16", 2.0 * 8 * 1024 * 1024, 2e6, 2e4, "m=1024 n=8 k=1024 batch=1", 1]]
    t_copy = 4e-6 + 4e4 / 5e10
    t_gemm = 2e-6 + max(2.02e6 / bw, 2.0 * 8 * 1024 * 1024 / 2.5e14)
    # nothing runs at capture; each launch: the host pays g, the nodes run in capture order
    ops = parse(step + [["G", 0, 1, 1, 4], ["M", 1, 5e8, 0], ["S", 0, 1, "sync"], ["G", 0, 1, 1, 4],
                        ["S", 0, 1, "sync"]])
    check([o["kind"] for o in ops] == ["G", "C", "K", "K", "L", "S", "G", "C", "K", "K", "L", "S"],
          f"graph launches expand: {[o['kind'] for o in ops]}")
    t, _, tot = gpu_model.simulate(ops, C)
    first = g + t_copy + (5e8 / bw + 2e-6) + (1e9 / bw + 2e-6) + t_gemm + 1e-5  # measured bytes of replay 1
    second = g + t_copy + 2 * (1e9 / bw + 2e-6) + t_gemm + 1e-5                  # declared ones for replay 2
    close(t, first + second, "two graph launches")
    check(tot["graph_launches"] == 2 and tot["launches"] == 4 and tot["library"] == 2 and tot["copies"] == 2,
          f"graph counts: {tot}")
    # the host's side: 300 short kernels cost the host 300 launches, as a graph one graph launch
    many = [K(i, 1, 1e3, 0, 0, graph=1) for i in range(1, 301)]
    t_graph, _, _ = predict(many + [["G", 0, 1, 1, 300], ["S", 0, 1, "sync"]])
    t_direct, _, _ = predict([K(i, 1, 1e3, 0, 0) for i in range(1, 301)] + [["S", 0, 1, "sync"]])
    close(t_graph, g + 300 * (1e3 / bw + 2e-6) + 1e-5, "300 short kernels in a graph: GPU-bound")
    close(t_direct, 300 * 3e-6 + 1e3 / bw + 2e-6 + 1e-5, "300 short kernels launched: host-bound")
    # a capture that is never launched costs nothing
    t, _, tot = predict(step + [["S", 0, 1, "sync"]])
    close(t, 1e-5, "a capture alone")


def streams():
    """Operations of several streams at once share HBM bandwidth and the SMs (a fluid model: all
    running operations slowed by one factor until the next start or end); fixed parts (launch
    overhead 2 us here) and host copies share nothing. Times in us below, by hand."""
    us = 1e-6
    sync = ["S", 0, -1, "cudaDeviceSynchronize"]
    # two bandwidth-bound kernels (1 ms alone each) on two streams, issued 3 us apart: the first's
    # work starts at 5 us, and HBM is then busy until 2 ms of traffic have gone through: the sum
    ops = parse([K(1, 1, 1e9, 0, 0), K(2, 2, 1e9, 0, 0), sync])
    t, busy, tot = gpu_model.simulate(ops, C)
    close(t, (5 + 2000 + 10) * us, "two bandwidth-bound streams: the sum")
    # the first runs alone 3 us, then both at half speed: it ends at 8 + 2 x 997 = 2002 us, the
    # second (issued at 6) at 2005; busy 1999 us each, 1996 us of it at once: the union is 2002
    close(ops[0]["end"], 2002 * us, "two bandwidth-bound streams: first end")
    close(sum(busy.values()), 2 * 1999 * us, "two bandwidth-bound streams: busy, each its own time")
    close(tot["overlap"], 1996 * us, "two bandwidth-bound streams: time counted twice")
    # a bandwidth-bound kernel (fraction 1 of HBM) beside a compute-bound GEMM of equal alone time
    # (1 ms on tensor cores, 1 % of HBM: 1e7 bytes): about one alone time, not the sum. The kernel's
    # work starts at 5 us, the GEMM's (library_host 5 us later) at 10 us; then both at rate 1 / 1.01:
    # the kernel's last 995 us end at 10 + 995 x 1.01, then the GEMM's last 5 us alone
    gemm = ["L", 0, 2, "gemm_bf16", 5e11, 1e7, 0, "m=4096 n=4096 k=14901 batch=1"]
    t, _, _ = predict([K(1, 1, 1e9, 0, 0), gemm, sync])
    close(t, (10 + 995 * 1.01 + 5 + 10) * us, "bandwidth-bound kernel beside a compute-bound GEMM")
    check(t < 1.1e-3, "bandwidth-bound kernel beside a compute-bound GEMM: about one alone time")
    # partial overlap: the host waits for a blocking 10 MB h2d copy (pageable: 4 + 500 us, issued at
    # 6 us; sharing nothing) before launching the second kernel, issued at 523 us, its work at 525:
    # the first has 480 us left, both at half speed until 525 + 960, then the second's 520 us alone
    ops = parse([K(1, 1, 1e9, 0, 0), ["C", 0, 3, "h2d", 1e7, 1, 0], K(2, 2, 1e9, 0, 0), sync])
    t, _, _ = gpu_model.simulate(ops, C)
    close(ops[0]["end"], 1485 * us, "partial overlap: first end")
    close(ops[1]["took"], 504 * us, "partial overlap: the copy beside a kernel at full speed")
    close(t, (1485 + 520 + 10) * us, "partial overlap")
    # an event orders stream 2 after stream 1: no overlap between them; a third stream's kernel
    # (issued at 9 us, work at 11) shares with each in turn. HBM is busy from 5 us to the end, but
    # for nothing: 3 ms of traffic. Stream 2's kernel starts when stream 1's ends.
    ops = parse([K(1, 1, 1e9, 0, 0), ["E", 0, 1, "record", 1], ["E", 0, 2, "wait", 1], K(2, 2, 1e9, 0, 0),
                 K(3, 3, 1e9, 0, 0), sync])
    t, _, _ = gpu_model.simulate(ops, C)
    close(ops[3]["start"], ops[0]["end"], "event wait: stream 2 starts when stream 1 ends")
    close(ops[0]["end"], (11 + 2 * 994) * us, "event wait: stream 1 shares with stream 3")
    close(t, (5 + 3000 + 10) * us, "event wait beside a third stream")
    # a pinned h2d copy (4 + 500 us) overlaps a kernel for free (copy engine, PCIe); a d2d copy of
    # 250 MB (500 MB of HBM traffic: 500 us) shares HBM with it like a kernel: 5 + 1500 us
    ops = parse([K(1, 1, 1e9, 0, 0), ["C", 0, 2, "h2d", 2.5e7, 0, 1], ["C", 0, 3, "d2d", 2.5e8, 0, 0], sync])
    t, _, _ = gpu_model.simulate(ops, C)
    close(ops[1]["took"], 504 * us, "h2d copy beside kernels: alone time")
    close(ops[2]["end"], (11 + 1000) * us, "d2d copy beside a kernel: half the bandwidth")
    close(t, (5 + 1500 + 10) * us, "h2d copy free, d2d copy shares HBM")
    # stages per stream: an encoder call on stream 2 (joined to stream 1 by an event) across two
    # decode steps on stream 1, each ended by a sync on stream 1: the decode kernels stay decode,
    # the encoder stream's GEMM is encoder, though they share pieces of the trace between waits
    gemm = ["L", 0, 2, "gemm_bf16", 1e9, 1e6, 1e6, "m=1024 n=1024 k=512 batch=1"]
    ops = parse([K(1, 2, 1e6, 0, 0, "mel_power_kernel"), K(2, 1, 1e6, 0, 0, "paged_decode_kernel<DH, GT>"),
                 ["S", 0, 1, "cudaStreamSynchronize"], gemm, K(3, 2, 1e6, 0, 0, "window_attention_kernel<64>"),
                 ["E", 0, 2, "record", 1], K(4, 1, 1e6, 0, 0, "paged_decode_kernel<DH, GT>"),
                 ["S", 0, 1, "cudaStreamSynchronize"], ["E", 0, 1, "wait", 1], K(5, 1, 1e6, 0, 0, "paged_prefill_kernel<DH>"),
                 sync])
    gpu_model.simulate(ops, C)
    g = [o for o in ops if o["kind"] in ("K", "L")]
    check([o["stage"] for o in g] == ["mel", "decode", "encoder", "encoder", "decode", "prefill"],
          f"stages per stream: {[o['stage'] for o in g]}")
    # one stream (and its events, and stream 0 waiting for it): exactly the numbers of the serial
    # calculator, bit for bit, however many operations
    lines = [K(1, 1, 6e8, 4e8, 1e9), ["L", 0, 1, "gemm_bf16", 2.0 * 4096 ** 3, 6.7e7, 3.4e7, "m=4096 n=4096 k=4096 batch=1"],
             K(2, 1, 1e6, 0, 1e9, "window_attention_kernel<64>", tc=1e12), ["C", 0, 1, "d2d", 3e6, 0, 0],
             ["C", 0, 1, "memset", 1e5, 0, 0], ["E", 0, 1, "record", 7], ["E", 0, 1, "wait", 7],
             ["L", 0, 1, "gemm_bf16", 2.0 * 32 * 1024 * 3072, 6.5e6, 2e5, "m=3072 n=32 k=1024 batch=1"],
             ["S", 0, 1, "cudaStreamSynchronize"], ["C", 0, 1, "h2d", 4e6, 0, 1], K(3, 1, 1e3, 0, 0),
             ["C", 0, 1, "d2h", 2e6, 1, 1], K(4, 1, 3e7, 3e7, 0, "paged_decode_kernel<DH, GT>"),
             ["L", 0, 1, "gemm_bf16", 2.0 * 32 * 1024 * 151936, 3.1e8, 1e7, "m=151936 n=32 k=1024 batch=1"],
             K(5, 1, 1e4, 1e2, 1e5, "argmax_kernel"), ["C", 0, 0, "h2d", 1e8, 1, 0], K(6, 1, 1e5, 0, 0),
             ["E", 0, -1, "sync", 7]]
    t, busy, tot = predict(lines)
    t0, busy0, names0 = serial(parse(lines), C)
    check(t == t0 and busy == busy0 and tot["by_name"] == names0 and tot["overlap"] == 0.0,
          f"one stream: {t!r} {busy} != serial {t0!r} {busy0}")


# Launches whose declaration is an upper bound of what the instrumentation sees, and why.
KNOWN = {
    # 16-byte struct copies (uint4) are lowered to memcpy, which the instrumentation does not see
    "copy_rows_kernel<uint4>": "uint4 copies not instrumented",
    # repeated ids read one row (the declaration counts n rows)
    "copy_rows_kernel<unsigned>": "repeated ids",
    "copy_rows_kernel<unsigned short>": "repeated ids",
    # the launcher does not see win_len / len: as if every window / chunk were full
    "window_attention_kernel": "windows shorter than max_len",
    "mel_chunks_kernel": "last chunk of an item shorter",
}


def kernels(d):
    n = 0
    for t in ("rows", "front", "attention"):
        exe = os.path.join(d, "test_kernels_" + t)
        with tempfile.TemporaryDirectory() as tmp:
            tr = os.path.join(tmp, "trace.tsv")
            env = dict(os.environ, CUEMU_TRACE=tr, CUEMU_RACECHECK="0")
            r = subprocess.run([exe], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            check(r.returncode == 0, f"{exe} failed: {r.stderr[-500:]}")
            hand = 0
            ops = gpu_model.parse(tr)
            if t == "front":  # the backend's log-mel stages in cudaMallocHost memory, the test in malloc's
                h2d = [o["pinned"] for o in ops if o["kind"] == "C" and o["name"] == "h2d"]
                check(True in h2d and False in h2d, f"pinned and pageable h2d copies in test_kernels_front: {set(h2d)}")
            for op in ops:
                # a graph's replays measure the inputs of the replay, its declaration those of the capture
                if op["kind"] != "K" or op["meas"] is None or op.get("in_graph"):
                    continue
                n += 1
                name, (drd, dwr, _), (mrd, mwr) = op["name"], op["decl"], op["meas"]
                check(drd >= 0, f"{name}: no CUEMU_COST declaration")
                tol = lambda x: 0.01 * x + 64
                base = name.split("<")[0]
                known = KNOWN.get(name) or KNOWN.get(base)
                if known:
                    check(mrd <= drd + tol(drd) and mwr <= dwr + tol(dwr),
                          f"{name} ({known}): measured {mrd:.0f}/{mwr:.0f} above declared {drd:.0f}/{dwr:.0f}")
                else:
                    check(abs(mrd - drd) <= tol(mrd) and abs(mwr - dwr) <= tol(mwr),
                          f"{name} grid {op['grid']}: declared {drd:.0f} read / {dwr:.0f} written, "
                          f"instrumentation {mrd:.0f} / {mwr:.0f}")
                if base == "layernorm_kernel":  # plain, or with the residual (add_layernorm): a = 1
                    rows = int(op["grid"].split(",")[0])
                    D = op["smem"] // 4
                    by_hand = [(((1 + a) * rows + 2) * D * 2, (1 + a) * rows * D * 2) for a in (0, 1)]
                    check((mrd, mwr) in by_hand,
                          f"layernorm rows {rows} D {D}: measured {mrd:.0f}/{mwr:.0f}, by hand {by_hand}")
                    hand += (mrd, mwr) == by_hand[0]
            if t == "rows":
                check(hand > 0, "no plain layernorm launch in test_kernels_rows")
    check(n > 50, f"only {n} executed launches traced")


def cublas(exe):
    with tempfile.TemporaryDirectory() as tmp:
        tr = os.path.join(tmp, "trace.tsv")
        r = subprocess.run([exe], env=dict(os.environ, CUEMU_TRACE=tr), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        check(r.returncode == 0, f"{exe} failed")
        g = [o for o in gpu_model.parse(tr) if o["kind"] == "L" and o["name"].startswith("gemm_")]
        check(len(g) > 5, "no GEMM traced")
        for o in g:
            s = o["shape"]
            if o["flops"]:
                close(o["flops"], 2.0 * s["m"] * s["n"] * s["k"] * s["batch"], f"GEMM flops {s}")
            if o["name"] == "gemm_bf16" and s["batch"] == 1 and o["flops"]:
                check(o["wr"] in (2.0 * s["m"] * s["n"], 4.0 * s["m"] * s["n"]), f"GEMM C bytes {s}")  # bf16 or fp32 C
                check(o["rd"] >= 2.0 * (s["m"] * s["k"] + s["k"] * s["n"]), f"GEMM A, B bytes {s}")


def measured_constants(exe):
    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench")
    p = subprocess.run([exe, "--quick", "--gpu", "h100"], capture_output=True, text=True)
    check(p.returncode == 0, f"gpu_constants --quick: exit {p.returncode}: {p.stderr[-500:]}")
    units = {"hbm_bw": "B/s", "tc_bf16_large": "FLOP/s", "tc_bf16_small": "FLOP/s", "fp32_fma": "FLOP/s",
             "kernel_overhead": "s", "launch_host": "s", "library_host": "s", "sync_latency": "s",
             "copy_latency": "s", "pcie_bw": "B/s", "pcie_bw_pinned": "B/s"}
    got = {}
    for line in p.stdout.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        check(len(f) == 6 and f[0] == "h100" and f[4] == "measured", f"gpu_constants row: {line!r}")
        if len(f) == 6:
            got[f[1]] = (float(f[2]), f[3])
    for name, unit in units.items():
        v = got.get(name)
        check(v is not None and v[1] == unit and v[0] >= 0 and v[0] < float("inf") and (v[0] > 0 or name == "copy_latency"),
              f"gpu_constants: {name}: {v} (expected a finite positive value in {unit})")
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "raw.tsv")
        with open(raw, "w") as f:
            f.write(p.stdout)
        q = subprocess.run([sys.executable, os.path.join(bench, "measured_constants.py"), raw, "--gpu", "h100"],
                           capture_output=True, text=True)
        check(q.returncode == 0, f"measured_constants.py: exit {q.returncode}: {q.stderr}")
        table = os.path.join(d, "table.tsv")
        with open(table, "w") as f:
            f.write(q.stdout)
        published = gpu_model.load_constants(os.path.join(bench, "gpu_constants.tsv"), "h100")
        measured = gpu_model.load_constants(table, "h100")
        check(set(measured) == set(published), f"measured table's names: {sorted(set(measured) ^ set(published))} differ")
        kinds = {ln.split("\t")[1]: ln.split("\t")[4] for ln in q.stdout.splitlines() if not ln.startswith("#")}
        for name in ["hbm_bw_fraction", "tc_fraction_large", "tc_fraction_small", "kernel_overhead", "sync_latency",
                     "pcie_bw_pinned"]:
            check(kinds.get(name) == "measured", f"measured table: {name} is {kinds.get(name)}, expected measured")
        close(measured["hbm_bw_fraction"], got["hbm_bw"][0] / published["hbm_bw_peak"], "hbm_bw_fraction", rel=1e-3)
        close(measured["sync_latency"], got["sync_latency"][0], "sync_latency", rel=1e-3)
        check(kinds.get("fp32_fraction") == "assumption", "fp32_fraction stays an assumption")
        with open(raw, "w") as f:  # a measurement with a row missing is refused, by name
            f.write("".join(ln + "\n" for ln in p.stdout.splitlines() if "\tpcie_bw_pinned\t" not in ln))
        q = subprocess.run([sys.executable, os.path.join(bench, "measured_constants.py"), raw, "--gpu", "h100"],
                           capture_output=True, text=True)
        check(q.returncode != 0 and "pcie_bw_pinned" in q.stderr, f"a missing row: exit {q.returncode}, {q.stderr!r}")


def devices():
    """--gpus: each device is simulated with its own host clock (its worker thread); the run ends
    with the last; --minus subtracts per device."""
    def on(dev, line):
        line = list(line)
        line[2 if line[0] == "K" else 1] = dev
        return line
    run = [on(0, K(1, 1, 6e8, 4e8, 1e9)), on(1, K(2, 2, 6e8, 4e8, 1e9)), on(1, K(3, 2, 6e8, 4e8, 1e9)),
           on(0, ["S", 0, 1, "cudaStreamSynchronize"]), on(1, ["S", 1, 2, "cudaStreamSynchronize"])]
    per = gpu_model.simulate_devices(parse(run), C)
    check(sorted(per) == [0, 1], f"devices: {sorted(per)}")
    one = 3e-6 + 1e-3 + 2e-6 + 1e-5  # a kernel of 1 ms on its own host: launch, run, overhead, sync
    close(per[0][0], one, "device 0 alone")
    close(per[1][0], 3e-6 + 2 * (1e-3 + 2e-6) + 1e-5, "device 1: two kernels in a row")
    total, _, tot = gpu_model.combine(per)
    close(total, per[1][0], "the run ends with the last device (not the sum: no shared host)")
    check(tot["launches"] == 3, f"launches over devices: {tot['launches']}")
    base = gpu_model.simulate_devices(parse([on(1, K(9, 2, 6e8, 4e8, 1e9)), on(1, ["S", 1, 2, "x"])]), C)
    less = {d: gpu_model.minus(r, base[d]) if d in base else r for d, r in per.items()}
    close(less[1][0], per[1][0] - (3e-6 + 1e-3 + 2e-6 + 1e-5), "--minus per device")
    close(less[0][0], per[0][0], "--minus: a device the base lacks keeps its time")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels")
    ap.add_argument("--cublas", action="append", default=[])
    ap.add_argument("--constants-exe")
    a = ap.parse_args()
    calculator()
    graphs()
    streams()
    devices()
    if a.kernels:
        kernels(a.kernels)
    for exe in a.cublas:
        cublas(exe)
    if a.constants_exe:
        measured_constants(a.constants_exe)
    print(f"{len(FAILS)} failures")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
