"""Timing, rows and reporting shared by every bench_<family>.py.

A bench module exposes ``cases(device, quick) -> list[Case]``.  Each case is
run once by ``python -m benchmarks`` and returns a :class:`Row`: our number and
each baseline's, measured side by side in the same process.

A timed row (unit "ms") may also say how much work one call of ours does:
``bytes`` (the least memory traffic it needs: inputs read once, outputs written once)
and/or ``flops`` (arithmetic operations, 2 per multiply-add).  The table then shows
our achieved GB/s or GFLOP/s, and for bytes the share of the device's peak memory
bandwidth (:func:`peak_bandwidth`; on a GPU from its memory clock and bus width).
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
    bytes: float = 0.0  # optional: least bytes one call of ours moves (inputs read + outputs written)
    flops: float = 0.0  # optional: arithmetic operations of one call of ours (2 per multiply-add)

    def ratios(self) -> dict[str, float]:
        """baseline / ours: > 1 means we are faster (or smaller)."""
        return {k: (v / self.ours if self.ours > 0 else math.nan) for k, v in self.baselines.items()}

    def throughput(self) -> tuple[float, str]:
        """Ours as (GFLOP/s, "GFLOP/s") when flops is set, else (GB/s, "GB/s") when bytes is set,
        else (nan, "")."""
        if self.unit != "ms" or not self.ours > 0:
            return math.nan, ""
        if self.flops:
            return self.flops / (self.ours * 1e6), "GFLOP/s"
        if self.bytes:
            return self.bytes / (self.ours * 1e6), "GB/s"
        return math.nan, ""

    def percent_of_peak(self, peak_gbps: float | None) -> float:
        """Achieved bandwidth (bytes / time) as a percentage of peak_gbps (nan without bytes or a peak)."""
        if self.unit != "ms" or not self.ours > 0 or not self.bytes or not peak_gbps:
            return math.nan
        return 100.0 * self.bytes / (self.ours * 1e6) / peak_gbps


def io_bytes(*objs) -> int:
    """Bytes of every tensor in objs (nested tuples, lists and dicts too; anything else counts 0)."""
    total = 0
    for o in objs:
        if isinstance(o, torch.Tensor):
            total += o.numel() * o.element_size()
        elif isinstance(o, (tuple, list)):
            total += io_bytes(*o)
        elif isinstance(o, dict):
            total += io_bytes(*o.values())
    return total


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


@dataclass
class Peak:
    """The memory bandwidth the table's "% of peak" divides by, where it came from, and the
    measured device-to-device copy rate (bytes read + written) for comparison."""

    gbps: float | None
    source: str
    copy_gbps: float | None = None

    def describe(self) -> str:
        if self.gbps is None:
            return f"peak memory bandwidth: unknown ({self.source})"
        text = f"peak memory bandwidth: {self.gbps:.0f} GB/s ({self.source})"
        if self.copy_gbps:
            text += f"; measured device-to-device copy: {self.copy_gbps:.0f} GB/s (read + write)"
        return text


def _copy_gbps(device: torch.device) -> float:
    """Device-to-device copy bandwidth (bytes read + written), timed with do_bench."""
    import triton.testing

    free, _ = torch.cuda.mem_get_info(device)
    n = int(min(2 ** 29, free // 8)) // 4 * 4  # at most 512 MiB per buffer
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = float(triton.testing.do_bench(lambda: dst.copy_(src), warmup=25, rep=100))
    return 2 * n / (ms * 1e6)


def _spec_gbps(device: torch.device) -> tuple[float | None, str]:
    """Peak DRAM bandwidth from the memory clock (kHz) and bus width (bits): torch's device
    properties, else Triton's driver query, else NVML."""
    props = torch.cuda.get_device_properties(device)
    clock, width = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if clock and width:
        return 2 * clock * 1e3 * width / 8 / 1e9, "memory clock x bus width, torch device properties"
    try:
        from triton.testing import get_dram_gbps

        gbps = float(get_dram_gbps(device.index if device.index is not None else torch.cuda.current_device()))
        if gbps > 0:
            return gbps, "memory clock x bus width, triton.testing.get_dram_gbps"
    except Exception:  # noqa: BLE001 - any failure: try the next source
        pass
    try:
        import pynvml

        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        mhz = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
        bits = pynvml.nvmlDeviceGetMemoryBusWidth(handle)
        if mhz and bits:
            return 2 * mhz * 1e6 * bits / 8 / 1e9, "memory clock x bus width, NVML"
    except Exception:  # noqa: BLE001
        pass
    return None, "no memory clock or bus width from torch, triton or NVML"


_PEAKS: dict[str, Peak] = {}


def peak_bandwidth(device: torch.device) -> Peak:
    """The device's peak memory bandwidth for "% of peak": $PYOPS_PEAK_GBPS if set; on CUDA the
    memory clock x bus width (the datasheet figure), else the measured copy rate; on the CPU unknown."""
    key = str(device)
    if key in _PEAKS:
        return _PEAKS[key]
    env = os.environ.get("PYOPS_PEAK_GBPS")
    copy = None
    if device.type == "cuda":
        try:
            copy = _copy_gbps(device)
        except Exception:  # noqa: BLE001 - a missing figure must not stop the benchmarks
            copy = None
        torch.cuda.empty_cache()  # the copy's two buffers
    if env:
        peak = Peak(float(env), "$PYOPS_PEAK_GBPS", copy)
    elif device.type == "cuda":
        gbps, source = _spec_gbps(device)
        if gbps is None and copy:
            gbps, source = copy, "measured device-to-device copy (" + source + ")"
        peak = Peak(gbps, source, copy)
    else:
        peak = Peak(None, "not known on the CPU; set PYOPS_PEAK_GBPS")
    _PEAKS[key] = peak
    return peak


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def _has_work(rows: list[Row]) -> bool:
    return any(r.bytes or r.flops for r in rows)


def format_table(rows: list[Row], peak_gbps: float | None = None) -> str:
    """A markdown table: one line per (row, baseline).  When some row carries bytes or flops, two
    columns follow: ours in GB/s or GFLOP/s, and the GB/s as a share of peak_gbps."""
    work = _has_work(rows)
    head = "| family | op | shape | dtype | ours | baseline | baseline value | ratio (baseline/ours) |"
    rule = "|---|---|---|---|---:|---|---:|---:|"
    if work:
        head += " ours throughput | % of peak BW |"
        rule += "---:|---:|"
    lines = [head, rule]
    for r in rows:
        items = list(r.ratios().items()) or [("-", math.nan)]
        value, unit = r.throughput()
        pct = r.percent_of_peak(peak_gbps)
        extra = f" {value:.4g} {unit} |" if unit else " - |"
        extra += f" {pct:.1f}% |" if not math.isnan(pct) else " - |"
        for name, ratio in items:
            base = r.baselines.get(name, math.nan)
            lines.append(
                f"| {r.family} | {r.op} | {r.shape} | {r.dtype} | {r.ours:.4g} {r.unit} | {name} | "
                f"{base:.4g} {r.unit} | {ratio:.2f}x |" + (extra if work else "")
            )
    return "\n".join(lines)


def write_csv(rows: list[Row], path: str, peak_gbps: float | None = None) -> None:
    """One line per (row, baseline); when some row carries bytes or flops, three columns follow
    the note: throughput, its unit, and % of peak_gbps (empty where unknown)."""
    work = _has_work(rows)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["family", "op", "shape", "dtype", "unit", "ours", "baseline", "baseline_value", "ratio",
                "note"]
        w.writerow(head + (["throughput", "throughput_unit", "pct_of_peak_bw"] if work else []))
        for r in rows:
            value, unit = r.throughput()
            pct = r.percent_of_peak(peak_gbps)
            extra = [f"{value:.6g}" if unit else "", unit, "" if math.isnan(pct) else f"{pct:.4g}"]
            for name, ratio in r.ratios().items():
                w.writerow([r.family, r.op, r.shape, r.dtype, r.unit, f"{r.ours:.6g}", name,
                            f"{r.baselines[name]:.6g}", f"{ratio:.4g}", r.note] + (extra if work else []))


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
