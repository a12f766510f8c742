"""Run every benchmarks/bench_*.py on the best device present.

    python -m benchmarks [--quick] [--only pam,fewbit] [--device cpu|cuda] [--threads 1,2] [--isa avx512,avx2]
                         [--out DIR]

First measures the machine's own limits (STREAM-style copy and triad bandwidth, an fp32 matmul, and on
the CPU the FMA peak of each instruction set pyops' kernels have; on the CPU at 1 thread and at all
cores) and prints them; then times every row, on the CPU once per thread count with ours and the
baselines at the same count, and once per instruction set of pyops' CPU kernels that --isa names
(default: the widest this CPU has; levels it lacks are skipped), printing each row as it comes (ratio
to each baseline, roofline fraction); then prints one table (also: which side scales better from 1 to
N threads) and writes benchmarks/results/<device>.csv, .md, .png (ratios) and <device>-<family>.png
(time and roofline fraction vs problem size), or under DIR; --quick writes build/bench/<device>-quick.*,
leaving the tracked results alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time

import torch

from benchmarks import harness


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes, a few minutes in all")
    p.add_argument("--only", default="", help="comma-separated families (default: all)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", default="",
                   help=f"comma-separated CPU thread counts (default: 1 and all cores, here 1,{harness.all_cores()})")
    p.add_argument("--isa", default="",
                   help="comma-separated instruction sets of pyops' CPU kernels to time (avx512, avx2, scalar; "
                        "default: the one in use, e.g. from PYOPS_CPU_ISA)")
    p.add_argument("--out", default="", help="directory for the .csv/.md/.png (default: benchmarks/results)")
    p.add_argument("--allow-reference", action="store_true",
                   help="run even when the compiled kernels are missing (rows are labelled 'reference')")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    from pyops import _library

    if _library._C is None and not args.allow_reference:
        print(f"benchmarks: pyops' compiled kernels are unavailable ({_library._C_ERROR}), so every op would "
              "time its pure-PyTorch reference; refusing to report that as pyops (--allow-reference runs it "
              "labelled, and writes nothing under benchmarks/results)", file=sys.stderr)
        return 2
    only = {f for f in args.only.split(",") if f}
    if args.quick:
        harness.TIME_SCALE = 0.5  # shorter medians (still the best of three) for a run that checks the suite
    counts = harness.thread_counts(device)
    if args.threads and device.type == "cpu":
        counts = sorted({int(t) for t in args.threads.split(",") if t.strip()})
        if not counts or min(counts) < 1:
            p.error("--threads takes positive integers")

    pkg_dir = os.path.dirname(os.path.abspath(__file__))
    families = sorted(
        m.name[len("bench_"):] for m in pkgutil.iter_modules([pkg_dir]) if m.name.startswith("bench_")
    )
    cases = []
    for fam in families:
        if only and fam not in only:
            continue
        mod = importlib.import_module(f"benchmarks.bench_{fam}")
        cases += mod.cases(device, args.quick)

    t0 = time.time()
    limits = harness.measure_limits(device, counts)
    print("\n".join(limits.lines()), flush=True)
    print(flush=True)
    rows = []
    if device.type == "cpu" and _library._C is not None:
        detected = _library._C.cpu_isa_detected()
        isas = [i for i in args.isa.split(",") if i] or [_library.cpu_isa()]
        for isa in isas:
            if isa not in _library.CPU_ISAS:
                p.error(f"--isa takes {', '.join(_library.CPU_ISAS)}")
        runnable = [i for i in isas if _library.CPU_ISAS.index(i) <= _library.CPU_ISAS.index(detected)]
        for isa in set(isas) - set(runnable):
            print(f"benchmarks: skipping --isa {isa}: this CPU supports at most {detected}", file=sys.stderr)
        before = _library.cpu_isa()
        for k, isa in enumerate(runnable):
            _library.set_cpu_isa(isa)
            # sizes and memory rows do not depend on the instruction set: the first pass only
            rows += harness.run_cases(cases if k == 0 else [c for c in cases if c.timed], device, limits, counts,
                                      isa=isa)
        _library.set_cpu_isa(before)
    else:
        rows = harness.run_cases(cases, device, limits, counts)

    table = harness.format_table(rows, limits)
    print("\n" + table)
    name = harness.device_name(device) + ("-quick" if args.quick else "")
    if _library._C is None:
        name += "-reference"
    # --quick and reference runs never overwrite the tracked full results
    out = args.out or (os.path.join("build", "bench") if args.quick or _library._C is None else harness.results_dir())
    os.makedirs(out, exist_ok=True)
    harness.write_csv(rows, os.path.join(out, f"{name}.csv"), limits)
    thr = ", ".join(map(str, counts)) if device.type == "cpu" else "-"
    header = (f"device: {name}, torch {torch.__version__}, CPU thread counts {thr} (ours and every baseline "
              f"at the same count), run took {time.time() - t0:.0f} s\n\n"
              + "\n".join(limits.lines()) + "\n\n")
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(header + table + "\n")
    plotted = harness.write_plot(rows, os.path.join(out, f"{name}.png"), f"pyops on {name}")
    family_plots = harness.write_family_plots(rows, out, name, limits)
    print(f"\n{limits.lines()[0]}")
    print(f"wrote {out}/{name}.csv, .md" + (", .png" if plotted else " (no matplotlib: no plot)")
          + "".join(f", {os.path.basename(f)}" for f in family_plots) + f" in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
