"""Run every benchmarks/bench_*.py on the best device present.

    python -m benchmarks [--quick] [--only pam,fewbit] [--device cpu|cuda] [--out DIR]

Prints one table (ours vs each baseline, with the ratio; for rows that count their
bytes or flops also ours in GB/s or GFLOP/s and, on a GPU, the share of its peak
memory bandwidth) and writes benchmarks/results/<device>.csv, .md and .png (or under DIR;
--quick writes build/bench/<device>-quick.*, leaving the tracked results alone).
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
    p.add_argument("--quick", action="store_true", help="small shapes, about a minute in all")
    p.add_argument("--only", default="", help="comma-separated families (default: all)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
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

    rows, t0 = [], time.time()
    for i, case in enumerate(cases, 1):
        done = int(30 * (i - 1) / max(len(cases), 1))
        print(f"\r[{'#' * done}{'.' * (30 - done)}] {i}/{len(cases)} {case.label:<48}", end="", file=sys.stderr, flush=True)
        result = case.run()  # a Row, or several measured together
        rows.extend(result if isinstance(result, list) else [result])
    print(f"\r[{'#' * 30}] {len(cases)}/{len(cases)} done in {time.time() - t0:.0f}s{' ' * 40}", file=sys.stderr)

    # the peak that "% of peak BW" divides by: on a GPU from its memory clock and bus width
    show_peak = device.type == "cuda" or bool(os.environ.get("PYOPS_PEAK_GBPS"))
    peak = harness.peak_bandwidth(device) if show_peak else harness.Peak(None, "")
    table = harness.format_table(rows, peak.gbps)
    print(table)
    if show_peak:
        print("\n" + peak.describe())
    name = harness.device_name(device) + ("-quick" if args.quick else "")
    if _library._C is None:
        name += "-reference"
    # --quick and reference runs never overwrite the tracked full results
    out = args.out or (os.path.join("build", "bench") if args.quick or _library._C is None else harness.results_dir())
    os.makedirs(out, exist_ok=True)
    harness.write_csv(rows, os.path.join(out, f"{name}.csv"), peak.gbps)
    threads = "1 (torch.utils.benchmark's default)" if device.type == "cpu" else torch.get_num_threads()
    header = f"device: {name}, torch {torch.__version__}, timing threads {threads}\n\n"
    if show_peak:
        header = header[:-1] + peak.describe() + "\n\n"
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(header + table + "\n")
    plotted = harness.write_plot(rows, os.path.join(out, f"{name}.png"), f"pyops on {name}")
    print(f"\nwrote {out}/{name}.csv, .md" + (", .png" if plotted else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
