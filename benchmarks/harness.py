"""Timing, rows and reporting shared by every bench_<family>.py.

A bench module exposes ``cases(device, quick) -> list[Case]``.  Each case is
run once by ``python -m benchmarks`` and returns a :class:`Row`: our number and
each baseline's, measured side by side in the same process.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Row:
    family: str
    op: str
    shape: str
    dtype: str
    ours: float
    baselines: dict[str, float] = field(default_factory=dict)
    unit: str = "ms"  # for every unit here lower is better (ms, MB, RTF)
    note: str = ""

    def ratios(self) -> dict[str, float]:
        """baseline / ours: > 1 means we are faster (or smaller)."""
        return {k: (v / self.ours if self.ours > 0 else math.nan) for k, v in self.baselines.items()}


@dataclass
class Case:
    label: str
    run: Callable[[], "Row | list[Row]"]


def time_ms(fn: Callable[[], object], device: torch.device, min_run_time: float = 0.5) -> float:
    """Wall time of fn() in milliseconds: the median on CPU (the best of three), do_bench's on GPU."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=100))
    from torch.utils import benchmark

    fn()  # warm-up (first-call allocations, lazy init)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    # these VMs stall for tens of milliseconds now and then: the best of three shorter medians shrugs
    # off a stall that would move a single median
    return min(timer.blocked_autorange(min_run_time=min_run_time / 3).median for _ in range(3)) * 1e3


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def format_table(rows: list[Row]) -> str:
    """A markdown table: one line per (row, baseline)."""
    lines = [
        "| family | op | shape | dtype | ours | baseline | baseline value | ratio (baseline/ours) |",
        "|---|---|---|---|---:|---|---:|---:|",
    ]
    for r in rows:
        items = list(r.ratios().items()) or [("-", math.nan)]
        for name, ratio in items:
            base = r.baselines.get(name, math.nan)
            lines.append(
                f"| {r.family} | {r.op} | {r.shape} | {r.dtype} | {r.ours:.4g} {r.unit} | {name} | "
                f"{base:.4g} {r.unit} | {ratio:.2f}x |"
            )
    return "\n".join(lines)


def write_csv(rows: list[Row], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["family", "op", "shape", "dtype", "unit", "ours", "baseline", "baseline_value", "ratio", "note"])
        for r in rows:
            for name, ratio in r.ratios().items():
                w.writerow([r.family, r.op, r.shape, r.dtype, r.unit, f"{r.ours:.6g}", name,
                            f"{r.baselines[name]:.6g}", f"{ratio:.4g}", r.note])


def write_plot(rows: list[Row], path: str, title: str) -> bool:
    """Horizontal bars of baseline/ours per (row, baseline), log scale. False if matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels, values = [], []
    for r in rows:
        for name, ratio in r.ratios().items():
            labels.append(f"{r.family}.{r.op} {r.shape} {r.dtype} vs {name}")
            values.append(ratio)
    if not values:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(values) + 1.5))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xlabel("baseline / ours  (> 1: ours faster or smaller)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def results_dir() -> str:
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(d, exist_ok=True)
    return d
