#!/usr/bin/python3
"""The performance model's constants for one GPU with the measured rows in place of the assumed
ones: reads what bench/gpu_constants printed on that GPU and bench/gpu_constants.tsv, writes a
complete table that bench/gpu_model.py takes with --constants (scripts/gpu-check.sh, step
"constants").

    measured_constants.py MEASURED --gpu h100 [--table bench/gpu_constants.tsv] > measured.tsv

Rates become fractions of the table's datasheet peaks (hbm_bw / hbm_bw_peak -> hbm_bw_fraction;
the 8192^3 and 64-row cuBLAS GEMMs -> tc_fraction_large and _small); latencies and PCIe rates
replace theirs as they are. fp32_fraction stays an assumption: it stands for the hand-written
attention kernels, which a bare FMA loop (printed as the comment fp32_fma_fraction) only bounds
from above. Exit 1 when a row the model needs was not measured (named on stderr).
"""
import argparse
import sys

AS_MEASURED = ["kernel_overhead", "launch_host", "library_host", "sync_latency", "copy_latency", "pcie_bw",
               "pcie_bw_pinned"]
AS_FRACTION = {"hbm_bw_fraction": ("hbm_bw", "hbm_bw_peak"), "tc_fraction_large": ("tc_bf16_large", "tc_bf16_peak"),
               "tc_fraction_small": ("tc_bf16_small", "tc_bf16_peak")}


def rows(path):
    """(gpu, name) -> the row's fields, comments skipped."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                p = line.rstrip("\n").split("\t")
                out[(p[0], p[1])] = p
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("measured")
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--table", default=__file__.rsplit("/", 1)[0] + "/gpu_constants.tsv")
    a = ap.parse_args()
    table = {name: p for (g, name), p in rows(a.table).items() if g == a.gpu}
    if not table:
        sys.exit(f"measured_constants: no constants for gpu {a.gpu!r} in {a.table}")
    got = {name: p for (g, name), p in rows(a.measured).items()}
    missing = [m for m in AS_MEASURED + [src for src, _ in AS_FRACTION.values()] if m not in got]
    if missing:
        sys.exit(f"measured_constants: {a.measured}: not measured: {', '.join(missing)}")
    print("# gpu\tname\tvalue\tunit\tkind\tsource")
    for name, p in table.items():
        if name in AS_MEASURED:
            m = got[name]
            print(f"{a.gpu}\t{name}\t{m[2]}\t{m[3]}\tmeasured\t{m[5]}")
        elif name in AS_FRACTION:
            src, peak = AS_FRACTION[name]
            m = got[src]
            frac = float(m[2]) / float(table[peak][2])
            print(f"{a.gpu}\t{name}\t{frac:.4g}\t1\tmeasured\t{src} {m[2]} {m[3]} / {peak} ({m[5]})")
        else:
            print("\t".join(p))
    if "fp32_fma" in got:
        print(f"# fp32_fma_fraction {float(got['fp32_fma'][2]) / float(table['fp32_peak'][2]):.4g} "
              f"(an upper bound of fp32_fraction, which stays assumed)")


if __name__ == "__main__":
    main()
