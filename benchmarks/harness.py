"""Timing, machine limits, rows and reporting shared by every bench_<family>.py.

A bench module exposes ``cases(device, quick) -> list[Case]``.  ``python -m benchmarks`` first
measures the machine's own limits (:func:`measure_limits`: STREAM-style copy and triad bandwidth,
an fp32 matmul and, on the CPU, the FMA peak per instruction set, at 1 thread and at all cores),
then runs every case, on the CPU once per thread count (the harness sets ``torch.set_num_threads``
before the case builds and times its calls, ours and the baselines alike), and turns each into one or more :class:`Row`: our number and
each baseline's, measured side by side in the same process.

A timed row (unit "ms") says how much work one call does, so the table can show it against the
roofline:
  * ``bytes``: the least memory traffic the problem needs (inputs read once, outputs written once):
    a memory-bound row, whose fraction is (bytes / time) / measured bandwidth;
  * ``flops``: arithmetic operations, 2 per multiply-add (for PAM one integer add + one float add
    per multiply-accumulate): a compute-bound row, whose fraction is (flops / time) / measured peak
    (on the CPU the FMA peak of the ISA the row's kernels ran; a baseline's, the widest ISA's).
A baseline doing the same work gets the same fraction; ``baseline_work`` overrides the count for a
baseline whose algorithm does other work (None: not counted).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from pyops import _library

# the roofline fraction that format/CSV/test treat as sane: a memory-bound problem whose working set
# fits in the last-level cache can beat the DRAM bandwidth several times over
SANE_FRACTION = 50.0


@dataclass
class Row:
    family: str
    op: str
    shape: str
    dtype: str
    ours: float
    baselines: dict[str, float] = field(default_factory=dict)
    unit: str = "ms"  # for every unit here lower is better (ms, MiB, M, GMAC/s of audio)
    note: str = ""
    bytes: float = 0.0  # least bytes one call moves (inputs read + outputs written): memory-bound
    flops: float = 0.0  # arithmetic operations of one call (2 per multiply-add): compute-bound
    baseline_work: dict[str, Optional[float]] = field(default_factory=dict)  # a baseline's own bytes/flops
    size: float = 0.0  # the problem size the family's plot puts on its x axis
    size_unit: str = ""  # what size counts ("n", "lmax", "row length", "elements", "seconds of audio")
    threads: int = 0  # set by the harness: CPU threads of ours and the baselines alike (0: not timed / GPU)
    isa: str = ""  # set by the harness: the instruction set pyops' CPU kernels used ("" on a GPU / not timed)

    def ratios(self) -> dict[str, float]:
        """baseline / ours: > 1 means we are faster (or smaller)."""
        return {k: (v / self.ours if self.ours > 0 else math.nan) for k, v in self.baselines.items()}

    @property
    def bound(self) -> str:
        """"compute" (flops counted), "memory" (bytes counted) or "" (no work counted, or not a time)."""
        if self.unit != "ms":
            return ""
        return "compute" if self.flops else "memory" if self.bytes else ""

    def work(self, baseline: Optional[str] = None) -> Optional[float]:
        """Flops (compute-bound) or bytes (memory-bound) of one call of ours or of ``baseline``."""
        if not self.bound:
            return None
        if baseline is not None and baseline in self.baseline_work:
            return self.baseline_work[baseline]
        return self.flops if self.bound == "compute" else self.bytes

    def throughput(self, baseline: Optional[str] = None) -> tuple[float, str]:
        """(GFLOP/s, "GFLOP/s") or (GB/s, "GB/s") of ours (or of ``baseline``); (nan, "") when unknown."""
        work = self.work(baseline)
        t = self.ours if baseline is None else self.baselines.get(baseline, math.nan)
        if not work or not t > 0:
            return math.nan, ""
        return work / (t * 1e6), ("GFLOP/s" if self.bound == "compute" else "GB/s")

    def roofline(self, limits: Optional["Limits"], baseline: Optional[str] = None) -> float:
        """Achieved throughput / the machine's measured limit at this row's thread count (nan if unknown)."""
        value, _ = self.throughput(baseline)
        if limits is None or math.isnan(value):
            return math.nan
        roof = (limits.peak_gflops(self.threads, self.isa if baseline is None else "") if self.bound == "compute"
                else limits.bandwidth(self.threads))
        return value / roof if roof else math.nan

    @property
    def key(self) -> tuple:
        return (self.family, self.op, self.shape, self.dtype, self.isa)


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
    timed: bool = True  # False: sizes or counts, run once (not per thread count)


# ---------------------------------------------------------------- memory
def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def forked_peak_rss(setup: Callable[[], object], step: Callable[[object], None]) -> int:
    """Bytes by which the RSS high-water mark rises over ``step(setup())``, measured in a forked child
    (Linux): the child runs ``setup``, resets the kernel's mark (/proc/self/clear_refs) and runs the
    step, so no measurement inherits another's heap.  Run it in an interpreter started with
    MALLOC_MMAP_THRESHOLD_=65536: glibc then serves every allocation of 64 KiB or more by mmap, so
    freed tensors leave the RSS at once."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports through the pipe and never returns into the caller's code
        code = 1
        try:
            state = setup()
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # VmHWM := VmRSS
            before = _status_bytes("VmRSS")
            step(state)
            os.write(w, json.dumps(_status_bytes("VmHWM") - before).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not out:
        raise RuntimeError(f"forked_peak_rss: the child failed (wait status {status})")
    return int(json.loads(out))


# ---------------------------------------------------------------- timing
def progress(msg: str) -> None:
    """A progress line on stderr (long cases say what they are timing)."""
    print(f"    .. {msg}", file=sys.stderr, flush=True)


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Milliseconds: the fastest of ``repeats`` (>= 3) timed calls after one warm-up call, at the
    current torch thread count.  For calls long enough that a median of many is not affordable."""
    fn()
    best = math.inf
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


# --quick scales every min_run_time by this (python -m benchmarks sets it): shorter medians, still
# the best of three
TIME_SCALE = 1.0


def time_ms(fn: Callable[[], object], device: torch.device, min_run_time: float = 0.5,
            repeats: int = 3) -> float:
    """Wall time of fn() in milliseconds at the current ``torch.get_num_threads()`` (the harness sets it
    per pass): on the CPU the best of ``repeats`` (>= 3) ``torch.utils.benchmark`` medians, or for a call
    slower than min_run_time / repeats the best of ``repeats`` single warm calls; on a GPU do_bench's."""
    repeats = max(3, repeats)
    min_run_time *= TIME_SCALE
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=100))
    from torch.utils import benchmark

    t0 = time.perf_counter()
    fn()  # warm-up (first-call allocations, lazy init)
    if time.perf_counter() - t0 > min_run_time / repeats:
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best * 1e3
    # Timer runs at num_threads (its default is 1, whatever torch is set to): pass the pass's count
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    # these VMs stall for tens of milliseconds now and then: the best of three shorter medians shrugs
    # off a stall that would move a single median
    per = min_run_time / repeats
    return min(timer.blocked_autorange(min_run_time=per).median for _ in range(repeats)) * 1e3


class threads:
    """Context manager: ``torch.set_num_threads(n)`` inside, the previous count restored after."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n > 0:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)
        return False


def all_cores() -> int:
    """The thread count that "all cores" means: torch's default (one per physical core it may use)."""
    return max(1, ALL_CORES)


ALL_CORES = torch.get_num_threads()  # captured at import, before anyone changes it


# ---------------------------------------------------------------- machine limits
def cpu_isa() -> str:
    """The vector ISA the CPU has (from /proc/cpuinfo flags) and the one torch's kernels dispatch to."""
    flags: set[str] = set()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wanted = ["avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "avx2", "fma", "avx_vnni", "asimd", "sve"]
    have = [f for f in wanted if f in flags]
    cap = ""
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - informational only
        pass
    text = (model + ": " if model else "") + (" ".join(have) if have else "no AVX2/AVX-512 flags")
    if flags and "avx512f" not in flags and "avx2" in flags:
        text += " (no avx512f)"
    return text + (f"; torch dispatches {cap}" if cap else "")


@dataclass
class Limits:
    """What the machine itself reaches, measured in this run, per thread count (0 = the GPU)."""

    device: str
    isa: str
    copy: dict[int, float]  # GB/s, bytes read + written (STREAM copy: 2 words per element)
    triad: dict[int, float]  # GB/s (STREAM triad a = b + s c: 3 words per element)
    peak: dict[int, float]  # GFLOP/s of a large fp32 torch.matmul (2 n^3 flops)
    method: str
    seconds: float
    spec_gbps: Optional[float] = None  # GPU: memory clock x bus width, when known
    # CPU: GFLOP/s of fp32 multiply-add chains in registers per (pyops ISA level, threads); the compute roof
    fma: dict[tuple[str, int], float] = field(default_factory=dict)

    def bandwidth(self, threads: int) -> float:
        """The bandwidth memory-bound rows divide by: the better of copy and triad at that count."""
        return max(self.copy.get(threads, 0.0), self.triad.get(threads, 0.0))

    def peak_gflops(self, threads: int, isa: str = "") -> float:
        """The compute roof: the FMA peak of ``isa`` (the widest measured when "", as for baselines, whose
        ISA is their library's) at that thread count; without FMA peaks (GPU) the fp32 matmul's."""
        if self.fma:
            if (isa, threads) not in self.fma:
                isa = next((i for i in _ISA_ORDER if (i, threads) in self.fma), "")
            return self.fma.get((isa, threads), 0.0)
        return self.peak.get(threads, 0.0)

    def lines(self) -> list[str]:
        out = [f"machine limits, measured in this run ({self.seconds:.1f} s): {self.device}; ISA {self.isa}"]
        for t in sorted(self.copy):
            who = "GPU" if t == 0 else f"{t} thread{'s' if t > 1 else ''}"
            fma = ", ".join(f"{i} {self.fma[(i, t)]:.1f}" for i in _ISA_ORDER if (i, t) in self.fma)
            out.append(f"  {who:>10}: copy {self.copy[t]:.1f} GB/s, triad {self.triad[t]:.1f} GB/s, "
                       f"fp32 matmul {self.peak[t]:.1f} GFLOP/s" + (f"; FMA peak (GFLOP/s) {fma}" if fma else ""))
        if self.spec_gbps:
            out.append(f"  GPU memory clock x bus width: {self.spec_gbps:.0f} GB/s")
        out.append(f"  ({self.method})")
        return out

    def describe(self) -> str:
        return "\n".join(self.lines())


_ISA_ORDER = tuple(reversed(_library.CPU_ISAS))  # widest first


def _fma_peaks(counts: list[int], seconds: float) -> dict[tuple[str, int], float]:
    """GFLOP/s of pyops' FMA chains (``_C.fma_flops``) per ISA level the CPU has and thread count."""
    C = _library._C
    if C is None or not hasattr(C, "fma_flops"):
        return {}
    top = _ISA_ORDER.index(C.cpu_isa_detected())
    out = {}
    for isa in _ISA_ORDER[top:]:
        for t in counts:
            iterations = 1_000_000  # ~1-10 ms a call
            flops = C.fma_flops(isa, t, iterations)
            out[(isa, t)] = flops / (time_ms(lambda: C.fma_flops(isa, t, iterations), torch.device("cpu"),
                                             seconds, repeats=5) * 1e6)
    return out


def _cpu_limits(counts: list[int], stream_mib: int, matmul_n: int) -> tuple[dict, dict, dict]:
    n = stream_mib * 2 ** 20 // 4
    a, b, c = (torch.empty(n).fill_(1.0) for _ in range(3))  # touched: no page faults while timed
    s = 3.0
    cpu = torch.device("cpu")
    copy, triad, peak = {}, {}, {}
    x, y = torch.randn(matmul_n, matmul_n), torch.randn(matmul_n, matmul_n)
    z = torch.empty(matmul_n, matmul_n)
    for t in counts:
        with threads(t):
            # the best of 5 medians over a longer window: a machine shared with other work has quiet moments,
            # and the limit is what it reaches in them
            copy[t] = 2 * 4 * n / (time_ms(lambda: a.copy_(b), cpu, 1.0, repeats=5) * 1e6)
            triad[t] = 3 * 4 * n / (time_ms(lambda: torch.add(b, c, alpha=s, out=a), cpu, 1.0, 5) * 1e6)
            peak[t] = 2 * matmul_n ** 3 / (time_ms(lambda: torch.mm(x, y, out=z), cpu, 2.0, repeats=5) * 1e6)
    return copy, triad, peak


def measure_limits(device: torch.device, counts: Optional[list[int]] = None, stream_mib: int = 128,
                   matmul_n: int = 1024) -> Limits:
    """The machine's own limits for the roofline, measured now (a few seconds on the CPU).

    CPU, at each thread count in ``counts`` (default 1 and all cores): STREAM-style copy (b -> a) and
    triad (a = b + 3 c, ``torch.add(out=)``) over float32 arrays of ``stream_mib`` MiB each (4x a
    32 MiB L3), counted as STREAM counts them (2 and 3 words per element, no write-allocate); and the
    fp32 peak as ``torch.mm`` of two ``matmul_n``-square fp32 matrices (2 n^3 flops: oneDNN/MKL's
    FMA kernels, the best this machine's software does).  Each is the best of 5 medians (of 5 runs if slow).
    GPU: the same copy, triad and matmul (TF32 off) timed with do_bench."""
    t0 = time.perf_counter()
    if device.type == "cuda":
        import triton.testing

        n = 2 ** 28  # 1 GiB per fp32 array
        a, b, c = (torch.ones(n, device=device) for _ in range(3))
        m = 8192
        x, y = torch.randn(m, m, device=device), torch.randn(m, m, device=device)
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            bench = lambda f: float(triton.testing.do_bench(f, warmup=25, rep=100))  # noqa: E731
            copy = {0: 2 * 4 * n / (bench(lambda: a.copy_(b)) * 1e6)}
            triad = {0: 3 * 4 * n / (bench(lambda: torch.add(b, c, alpha=3.0, out=a)) * 1e6)}
            peak = {0: 2 * m ** 3 / (bench(lambda: torch.mm(x, y)) * 1e6)}
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        del a, b, c, x, y
        torch.cuda.empty_cache()
        spec = peak_bandwidth(device).gbps
        return Limits(torch.cuda.get_device_name(device), "-", copy, triad, peak,
                      "copy/triad over 1 GiB fp32 arrays and an 8192^3 fp32 matmul (TF32 off), do_bench",
                      time.perf_counter() - t0, spec)
    counts = counts or thread_counts(device)
    copy, triad, peak = _cpu_limits(counts, stream_mib, matmul_n)
    fma = _fma_peaks(counts, 0.25 if matmul_n < 1024 else 1.0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    method = (f"copy/triad: {stream_mib} MiB fp32 arrays, STREAM byte counts; "
              f"fp32 matmul: torch.mm {matmul_n}^3; FMA peak, the compute roof (of each row's ISA; the widest "
              "for baselines): 12 independent multiply-add chains in registers per thread (SSE2 multiply + "
              "add at scalar), 2 flops per multiply-add; each the best of 5 medians")
    return Limits(f"cpu, {cores} cores usable, torch threads {all_cores()}", cpu_isa(), copy, triad, peak,
                  method, time.perf_counter() - t0, fma=fma)


def thread_counts(device: torch.device) -> list[int]:
    """The thread counts every CPU row is timed at: 1 and all cores (just [0] on a GPU)."""
    if device.type != "cpu":
        return [0]
    return sorted({1, all_cores()})


# ---------------------------------------------------------------- GPU datasheet bandwidth
@dataclass
class Peak:
    """A GPU's datasheet memory bandwidth, where it came from, and the measured copy rate."""

    gbps: Optional[float]
    source: str
    copy_gbps: Optional[float] = None

    def describe(self) -> str:
        if self.gbps is None:
            return f"peak memory bandwidth: unknown ({self.source})"
        text = f"peak memory bandwidth: {self.gbps:.0f} GB/s ({self.source})"
        if self.copy_gbps:
            text += f"; measured device-to-device copy: {self.copy_gbps:.0f} GB/s (read + write)"
        return text


def _spec_gbps(device: torch.device) -> tuple[Optional[float], str]:
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


def peak_bandwidth(device: torch.device) -> Peak:
    """A GPU's datasheet bandwidth ($PYOPS_PEAK_GBPS overrides); on the CPU unknown (measure_limits
    measures what the CPU reaches instead)."""
    env = os.environ.get("PYOPS_PEAK_GBPS")
    if env:
        return Peak(float(env), "$PYOPS_PEAK_GBPS")
    if device.type == "cuda":
        gbps, source = _spec_gbps(device)
        return Peak(gbps, source)
    return Peak(None, "not known on the CPU")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


# ---------------------------------------------------------------- scaling 1 -> N threads
def scaling(rows: list[Row]) -> dict[int, tuple[float, dict[str, float]]]:
    """For every row timed at more than one thread: id(row) -> (ours' speed-up from 1 thread to its
    count, {baseline: its speed-up}), each the 1-thread time over this count's time."""
    one = {r.key: r for r in rows if r.threads == 1 and r.unit == "ms"}
    out = {}
    for r in rows:
        base = one.get(r.key)
        if r.threads > 1 and r.unit == "ms" and base is not None:
            ours = base.ours / r.ours if r.ours > 0 else math.nan
            theirs = {k: base.baselines[k] / v for k, v in r.baselines.items()
                      if k in base.baselines and v > 0}
            out[id(r)] = (ours, theirs)
    return out


def scales_better(ours: float, theirs: float) -> str:
    """"ours" / "baseline" when one speed-up beats the other by more than 5 %, else "same"."""
    if math.isnan(ours) or math.isnan(theirs):
        return ""
    if ours > 1.05 * theirs:
        return "ours"
    if theirs > 1.05 * ours:
        return "baseline"
    return "same"


def _fmt(v: float, spec: str = ".4g", suffix: str = "") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{spec}}{suffix}"


def _pct(frac: float) -> str:
    return "-" if math.isnan(frac) else f"{100 * frac:.3g}%"


def row_line(r: Row, limits: Optional[Limits]) -> str:
    """One progress line for a measured row: ours, each baseline with its ratio, the roofline fraction."""
    who = f"{r.threads} thr" if r.threads else ("gpu" if limits and 0 in limits.copy else "-")
    value, unit = r.throughput()
    parts = [f"{r.family} {r.op} {r.shape} {r.dtype} [{who}]: ours {r.ours:.4g} {r.unit}"]
    if unit:
        parts[0] += f" ({value:.3g} {unit}, {_pct(r.roofline(limits))} of {r.bound} roof)"
    for name, ratio in r.ratios().items():
        parts.append(f"{name} {r.baselines[name]:.4g} ({ratio:.2f}x)")
    return "; ".join(parts)


def format_table(rows: list[Row], limits: Optional[Limits] = None) -> str:
    """A markdown table: one line per (row, baseline), with the thread count, ours' throughput and
    roofline fraction, the baseline's roofline fraction, and on the N-thread line each side's speed-up
    from 1 thread and which scales better."""
    scale = scaling(rows)
    n = max([r.threads for r in rows] + [1])
    head = ("| family | op | shape | dtype | isa | threads | ours | baseline | baseline value "
            "| ratio (baseline/ours) | ours throughput | ours % of roof | baseline % of roof "
            f"| speed-up 1->{n} threads (ours / baseline) | scales better |")
    rule = "|---|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
    lines = [head, rule]
    for r in rows:
        items = list(r.ratios().items()) or [("-", math.nan)]
        value, unit = r.throughput()
        ours_su, theirs_su = scale.get(id(r), (math.nan, {}))
        for name, ratio in items:
            base = r.baselines.get(name, math.nan)
            su_b = theirs_su.get(name, math.nan)
            su = "-" if math.isnan(ours_su) else f"{ours_su:.2f}x / {_fmt(su_b, '.2f', 'x')}"
            lines.append(
                f"| {r.family} | {r.op} | {r.shape} | {r.dtype} | {r.isa or '-'} | {r.threads or '-'} "
                f"| {r.ours:.4g} {r.unit} "
                f"| {name} | "
                f"{_fmt(base)} {r.unit if name != '-' else ''} | {_fmt(ratio, '.2f', 'x')} | "
                f"{_fmt(value, '.4g', ' ' + unit) if unit else '-'} | {_pct(r.roofline(limits))} | "
                f"{_pct(r.roofline(limits, name)) if name != '-' else '-'} | {su} | "
                f"{scales_better(ours_su, su_b) or '-'} |"
            )
    return "\n".join(lines)


CSV_COLUMNS = ["family", "op", "shape", "dtype", "size", "size_unit", "isa", "threads", "unit", "ours", "baseline",
               "baseline_value", "ratio", "bound", "work", "baseline_work", "ours_throughput",
               "throughput_unit", "ours_roofline", "baseline_roofline", "roof", "ours_speedup",
               "baseline_speedup", "scales_better", "note"]


def write_csv(rows: list[Row], path: str, limits: Optional[Limits] = None) -> None:
    """One line per (row, baseline) (one with an empty baseline for a row without any), CSV_COLUMNS.
    ``roof`` is the limit ours' roofline fraction divides by (GB/s, or the FMA peak GFLOP/s of the row's ISA,
    at the row's thread count; a baseline's compute fraction divides by the widest ISA's)."""
    scale = scaling(rows)
    g = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}"  # noqa: E731
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            value, unit = r.throughput()
            ours_su, theirs_su = scale.get(id(r), (math.nan, {}))
            roof = math.nan
            if limits is not None and r.bound:
                roof = limits.peak_gflops(r.threads, r.isa) if r.bound == "compute" else limits.bandwidth(r.threads)
            for name in list(r.baselines) or [""]:
                su_b = theirs_su.get(name, math.nan)
                w.writerow([r.family, r.op, r.shape, r.dtype, g(r.size), r.size_unit, r.isa, r.threads, r.unit,
                            g(r.ours), name, g(r.baselines.get(name, math.nan)),
                            g(r.ratios().get(name, math.nan)), r.bound, g(r.work()),
                            g(r.work(name)) if name else "", g(value), unit, g(r.roofline(limits)),
                            g(r.roofline(limits, name)) if name else "", g(roof), g(ours_su), g(su_b),
                            scales_better(ours_su, su_b), r.note])


# ---------------------------------------------------------------- plots
def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(fig, path: str, dpi: int) -> None:
    """Save and close fig as a 64-colour PNG: the plots are a few flat colours and text, and the
    ratio plot of a two-ISA run is ~16000 pixels tall (3 MB as RGBA, under 1 MB quantised)."""
    from PIL import Image  # matplotlib's own dependency

    fig.savefig(path, dpi=dpi)
    _matplotlib().close(fig)
    with Image.open(path) as im:
        quantised = im.convert("RGB").quantize(colors=64)
    quantised.save(path, optimize=True)


def write_plot(rows: list[Row], path: str, title: str) -> bool:
    """Horizontal bars of baseline/ours per (row, baseline, threads), log scale. False without matplotlib."""
    plt = _matplotlib()
    if plt is None:
        return False
    labels, values = [], []
    for r in rows:
        for name, ratio in r.ratios().items():
            if math.isnan(ratio) or ratio <= 0:
                continue
            thr = f" @{r.threads}t" if r.threads else ""
            isa = f" {r.isa}" if r.isa else ""
            labels.append(f"{r.family}.{r.op} {r.shape} {r.dtype}{isa}{thr} vs {name}")
            values.append(ratio)
    if not values:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.3 * len(values) + 1.5))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xlabel("baseline / ours  (> 1: ours faster or smaller)")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path, 110)
    return True


def _human(v: float, _pos=None) -> str:
    """1048576 -> "1M", 262144 -> "256K", else %g."""
    for div, suffix in ((2 ** 30, "G"), (2 ** 20, "M"), (2 ** 10, "K")):
        if v >= div and v % (div // 4) == 0:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def write_family_plots(rows: list[Row], out_dir: str, name: str,
                       limits: Optional[Limits] = None) -> list[str]:
    """Per family, ``<name>-<family>.png``: for each op a column of two log-log panels, time vs problem
    size (ours solid, each baseline dashed in its own colour; circles 1 thread, squares all cores) and
    the roofline fraction (%) of the same lines.  Returns the files written ([] without matplotlib)."""
    plt = _matplotlib()
    if plt is None:
        return []
    from matplotlib import ticker

    class _PlainLog(ticker.LogFormatter):  # log labels as 0.6, 2, 300 (which: LogFormatter's choice)
        def _num_to_string(self, x, vmin, vmax):
            return f"{x:g}"

    written = []
    timed = [r for r in rows if r.unit == "ms" and r.size > 0]
    for family in sorted({r.family for r in timed}):
        fam = [r for r in timed if r.family == family]
        ops = list(dict.fromkeys((r.op, r.dtype) for r in fam))
        # one colour per implementation across the family's panels: ours first, then each baseline
        names = ["ours"] + list(dict.fromkeys(b for r in fam for b in r.baselines))
        colors = {nm: f"C{i % 10}" for i, nm in enumerate(names)}
        fig, axes = plt.subplots(2, len(ops), figsize=(4.4 * len(ops), 7.4), squeeze=False, sharex="col")
        for j, (op, dtype) in enumerate(ops):
            sel = sorted((r for r in fam if (r.op, r.dtype) == (op, dtype)), key=lambda r: r.size)
            top, bottom = axes[0][j], axes[1][j]
            several_isas = len({r.isa for r in sel}) > 1
            for isa, thr in sorted({(r.isa, r.threads) for r in sel}):
                pts = [r for r in sel if (r.isa, r.threads) == (isa, thr)]
                marker = ("o" if thr <= 1 else "s") if isa != "avx2" or not several_isas else ("^" if thr <= 1 else "D")
                lab = f" ({isa + ', ' if several_isas else ''}{thr} thr)" if thr else ""
                for nm in names:
                    xs, ts, fs = [], [], []
                    for r in pts:
                        t = r.ours if nm == "ours" else r.baselines.get(nm)
                        if t is None or not t > 0:
                            continue
                        xs.append(r.size)
                        ts.append(t)
                        fs.append(100 * r.roofline(limits, None if nm == "ours" else nm))
                    if not xs:
                        continue
                    style = dict(color=colors[nm], marker=marker, ls="-" if nm == "ours" else "--",
                                 lw=2 if nm == "ours" else 1.2, alpha=1.0 if thr <= 1 else 0.55, ms=4)
                    top.plot(xs, ts, label=nm + lab, **style)
                    good = [(x, f) for x, f in zip(xs, fs) if f > 0]
                    if good:
                        bottom.plot(*zip(*good), **style)
            sizes = sorted({r.size for r in sel})
            top.set_title(f"{family} {op} ({dtype})", fontsize=9)
            top.set_ylabel("time per call (ms)")
            bottom.set_xlabel(sel[0].size_unit or "size")
            if bottom.has_data():
                bottom.set_ylabel(f"% of {sel[0].bound} roof (measured limit)")
            else:
                bottom.set_ylabel("% of roof")
                bottom.text(0.5, 0.5, "work not counted for this op", ha="center", va="center",
                            transform=bottom.transAxes, fontsize=8, color="gray")
                bottom.set_yticks([])
            plain = ticker.FuncFormatter(_human if sel[0].size_unit == "elements" else lambda v, _: f"{v:g}")
            for ax in (top, bottom):
                ax.set_xscale("log")
                ax.grid(True, which="both", alpha=0.3)
                if ax.has_data():
                    ax.set_yscale("log")
                    ax.yaxis.set_major_formatter(_PlainLog())
                    ax.yaxis.set_minor_formatter(_PlainLog(minor_thresholds=(1, 0.5)))
                ax.set_xticks(sizes)
                ax.xaxis.set_major_formatter(plain)
                ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            top.legend(fontsize=6, loc="best", framealpha=0.6)
        fig.suptitle(f"pyops {family} on {name}: time (top) and roofline fraction (bottom) vs problem size; "
                     "solid ours, dashed baselines, circles 1 thread, squares all cores (triangles/diamonds: "
                     "the AVX2 copy, when several ISAs ran)", fontsize=9)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{name}-{family}.png")
        _save(fig, path, 100)
        written.append(path)
    return written


def results_dir() -> str:
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(d, exist_ok=True)
    return d


# ---------------------------------------------------------------- running cases
def run_cases(cases: list[Case], device: torch.device, limits: Optional[Limits] = None,
              counts: Optional[list[int]] = None, echo: bool = True, isa: str = "") -> list[Row]:
    """Run every case: a timed CPU case once per thread count (torch's thread count set around the
    whole case, so ours and its baselines share it), others once.  Prints each row as it is measured."""
    counts = counts or thread_counts(device)
    rows: list[Row] = []
    t0 = time.time()
    jobs = [(c, t) for c in cases for t in (counts if c.timed else [0])]
    for i, (case, t) in enumerate(jobs, 1):
        tag = (f" @{t} thread{'s' if t > 1 else ''}" if t else "") + (f" [{isa}]" if isa and case.timed else "")
        if echo:
            print(f"[{i}/{len(jobs)} {time.time() - t0:.0f}s] {case.label}{tag}", file=sys.stderr, flush=True)
        with threads(t):
            result = case.run()  # a Row, or several measured together
        for r in result if isinstance(result, list) else [result]:
            if case.timed and r.unit == "ms" and not r.threads:
                r.threads = t
            if case.timed and r.unit == "ms" and device.type == "cpu":
                r.isa = isa
            rows.append(r)
            if echo:
                print(row_line(r, limits), flush=True)
    if echo:
        print(f"[{len(jobs)}/{len(jobs)}] done in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return rows
