#!/usr/bin/env python
"""`make triton-aot`: compile every Triton kernel of pyops for sm_80 and sm_90 without a GPU.

The tests run the Triton kernels in the interpreter, which never runs Triton's compiler, its
argument specialisation or ptxas.  This script does, on any machine:

1. Record: call the launchers of kernels/<family>.py with small CPU tensors while
   ``JITFunction.run`` is swapped for a recorder.  The recorder binds the arguments exactly as
   the runtime would (pointer dtypes and 16-byte alignment, an int equal to 1 becomes a
   constexpr, ints divisible by 16 get a divisibility hint, ints >= 2^31 become i64) and keeps
   the launch instead of running it.
2. Compile each distinct configuration once per target with ``triton.compile(ASTSource(...),
   target=GPUTarget("cuda", 80 | 90, 32))``; registers, spills and stack come from the bundled
   ptxas' ``-v`` log, shared memory from the kernel's metadata.  Results are cached in
   build/triton-aot/ keyed by kernel source hash (with its callees), signature, constexprs,
   attributes, options, target and Triton version, so a re-run only compiles what changed.
3. Write the resource table to benchmarks/results/triton-resources.md (and print it); exit 1 on
   any compile error, any spill, or shared memory above the target's per-block limit.

The default selection (CI) covers every kernel, each dtype and constexpr family, ints equal to
1, divisibility hints, edge shapes (size-1 rows, one element) and the largest block sizes each
launcher can choose; ``--full`` adds the cross products.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import io
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Optional

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / "build" / "triton-aot"
TABLE = REPO / "benchmarks" / "results" / "triton-resources.md"
FAMILIES = ("pam", "fewbit", "intops", "gaunt", "wavehax")
# name -> (compute capability, shared memory a block may use, bytes)
TARGETS = {"sm_80": (80, 163 * 1024), "sm_90": (90, 227 * 1024)}


# ---------------------------------------------------------------------------------------- triton
def _setup_triton() -> None:
    """Import triton compiling for real (never the interpreter), its cache under build/."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") and "triton" in sys.modules:
        raise RuntimeError("triton_aot: triton was imported with TRITON_INTERPRET=1; run this in its own process")
    os.environ.pop("TRITON_INTERPRET", None)
    os.environ.setdefault("TRITON_CACHE_DIR", str(CACHE_DIR / "triton-cache"))
    warnings.filterwarnings("ignore", message=".*TRITON_DEFAULT_FP_FUSION.*")
    import triton  # noqa: F401


def load_families(names: Iterable[str] = FAMILIES) -> dict:
    """The kernel modules of this checkout (``pyops.kernels.<family>`` is kernels/<family>.py)."""
    _setup_triton()
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "compiled kernels unavailable": not needed here
        import pyops
    try:
        pkg = importlib.import_module("pyops.kernels")
    except ImportError:  # pyops imported from the source tree, not installed: map kernels/ as installed
        spec = importlib.util.spec_from_file_location("pyops.kernels", REPO / "kernels" / "__init__.py",
                                                      submodule_search_locations=[str(REPO / "kernels")])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["pyops.kernels"] = pkg
        spec.loader.exec_module(pkg)
        pyops.kernels = pkg
    return {name: importlib.import_module(f"pyops.kernels.{name}") for name in names}


@dataclasses.dataclass
class Launch:
    """One recorded launch: what ``triton.compile`` needs, plus where it came from."""

    fn: object  # the JITFunction
    signature: dict
    constexprs: dict
    attrs: dict
    options: dict  # launch options passed as keywords (num_warps, ...)
    case: str

    @property
    def kernel(self) -> str:
        return f"{self.fn.module.rsplit('.', 1)[-1]}.{self.fn.__name__}"

    def key(self) -> str:
        """Identity of the compiled configuration (not of the case that produced it)."""
        import triton

        try:  # environment variables that change what Triton compiles (as in Triton's own cache key)
            from triton._C.libtriton import get_cache_invalidating_env_vars
            env = sorted(get_cache_invalidating_env_vars().items())
        except ImportError:
            env = []
        blob = json.dumps([self.fn.cache_key, triton.__version__, env, self.signature,
                           sorted((str(k), repr(v)) for k, v in self.constexprs.items()),
                           sorted((str(k), repr(v)) for k, v in self.attrs.items()),
                           sorted((k, repr(v)) for k, v in self.options.items())])
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def describe(self) -> str:
        """Compact config: pointer dtypes, constexprs (ints specialised to 1 included), 16-divisible ints."""
        names = self.fn.arg_names
        ptrs = [self.signature[n].lstrip("*") for n in names if str(self.signature[n]).startswith("*")]
        parts = [f"ptr {','.join(ptrs)}"] if ptrs else []
        for (i,), v in sorted(self.constexprs.items()):
            v = getattr(v, "value", v)
            parts.append(f"{names[i]}={v}")
        wide = [names[i] for i, n in enumerate(names) if self.signature[n] in ("i64", "u64")]
        if wide:
            parts.append("i64: " + ",".join(wide))
        div = [names[i] for (i,), a in sorted(self.attrs.items())
               if a and not str(self.signature[names[i]]).startswith("*") and ["tt.divisibility", 16] in
               [list(x) for x in a]]
        if div:
            parts.append("div16:" + ",".join(div))
        unaligned = [names[i] for (i,), a in sorted(self.attrs.items())
                     if str(self.signature[names[i]]).startswith("*") and not a]
        if unaligned:
            parts.append("unaligned " + ",".join(unaligned))
        parts += [f"{k}={v}" for k, v in sorted(self.options.items())]
        return " ".join(parts)


class Recorder:
    """Swaps ``JITFunction.run`` for a recorder while active; ``launches`` collects what ran."""

    def __init__(self):
        from triton.backends.compiler import GPUTarget
        from triton.compiler import make_backend

        self.backend = make_backend(GPUTarget("cuda", TARGETS["sm_80"][0], 32))
        self.launches: list[Launch] = []
        self.case = ""
        self._binders = {}

    def _run(self, fn, *args, grid, warmup, **kwargs):
        from triton.runtime.jit import create_function_from_signature

        if fn not in self._binders:
            self._binders[fn] = create_function_from_signature(fn.signature, fn.params, self.backend)
        bound, specialization, options = self._binders[fn](*args, **kwargs)
        # checks the keywords and packs signature / constexprs / attrs exactly as JITFunction.run does
        _, signature, constexprs, attrs = fn._pack_args(self.backend, dict(kwargs), bound, specialization, options)
        launch_options = {k: v for k, v in kwargs.items() if k not in fn.arg_names}
        self.launches.append(Launch(fn, signature, constexprs, attrs, launch_options, self.case))
        return None

    @contextlib.contextmanager
    def active(self):
        from triton.runtime.jit import JITFunction

        saved = JITFunction.run
        recorder = self

        def run(self, *args, grid, warmup, **kwargs):
            return recorder._run(self, *args, grid=grid, warmup=warmup, **kwargs)

        JITFunction.run = run
        try:
            yield self
        finally:
            JITFunction.run = saved

    def record(self, case: str, call: Callable[[], object]) -> int:
        """Run ``call`` (which calls launchers) recording its launches; returns how many it made."""
        before = len(self.launches)
        self.case = case
        with self.active():
            call()
        return len(self.launches) - before


def distinct(launches: Iterable[Launch]) -> list[Launch]:
    seen, out = set(), []
    for launch in launches:
        k = launch.key()
        if k not in seen:
            seen.add(k)
            out.append(launch)
    return out


# ------------------------------------------------------------------------------------- compiling
@dataclasses.dataclass
class Result:
    regs: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    stack: int = 0
    shared: int = 0
    error: Optional[str] = None
    seconds: float = 0.0


_PTXAS_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_REGS = re.compile(r"Used (\d+) registers")


def parse_ptxas(log: str) -> dict:
    """Registers, spills and stack from a ``ptxas -v`` log (the largest over its functions)."""
    frames = [tuple(map(int, m)) for m in _PTXAS_FRAME.findall(log)]
    regs = [int(m) for m in _PTXAS_REGS.findall(log)]
    if not regs:
        raise ValueError("no 'Used N registers' line in the ptxas log")
    return {"regs": max(regs), "stack": max((f[0] for f in frames), default=0),
            "spill_stores": max((f[1] for f in frames), default=0),
            "spill_loads": max((f[2] for f in frames), default=0)}


def _short_error(e: BaseException) -> str:
    lines = [ln.rstrip() for ln in f"{type(e).__name__}: {e}".splitlines() if ln.strip()]
    if len(lines) > 12:
        lines = lines[:6] + ["..."] + lines[-5:]
    return "\n".join(lines)


def compile_launch(launch: Launch, target: str) -> Result:
    """Compile one recorded launch for ``target`` ("sm_80" / "sm_90") with ptxas -v; never raises."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend

    arch = TARGETS[target][0]
    gpu = GPUTarget("cuda", arch, 32)
    t0 = time.perf_counter()
    log = io.StringIO()
    saved = knobs.nvidia.dump_ptxas_log, knobs.compilation.always_compile
    knobs.nvidia.dump_ptxas_log = True  # ptxas -v log printed to stdout: captured below
    knobs.compilation.always_compile = True  # a Triton cache hit would skip ptxas and its log
    try:
        options = make_backend(gpu).parse_options(dict(launch.options))
        src = ASTSource(launch.fn, launch.signature, launch.constexprs, launch.attrs)
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(src, target=gpu, options=options.__dict__)
        res = Result(shared=int(kernel.metadata.shared), **parse_ptxas(log.getvalue()))
    except Exception as e:  # noqa: BLE001 - every failure is a finding to report
        res = Result(error=_short_error(e))
    finally:
        knobs.nvidia.dump_ptxas_log, knobs.compilation.always_compile = saved
    res.seconds = round(time.perf_counter() - t0, 2)
    return res


def _cache_path(launch: Launch, target: str, cache_dir) -> Path:
    return Path(cache_dir) / "results" / f"{launch.key()}-{target}.json"


def cache_lookup(launch: Launch, target: str, cache_dir) -> Optional[Result]:
    path = _cache_path(launch, target, cache_dir)
    if path.exists():
        try:
            return Result(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None
    return None


def cache_store(launch: Launch, target: str, cache_dir, res: Result) -> None:
    path = _cache_path(launch, target, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(res)))
    tmp.replace(path)


def cached_compile(launch: Launch, target: str, cache_dir, force: bool = False) -> tuple[Result, bool]:
    """(result, from_cache); ``force`` recompiles (and refreshes the cache entry)."""
    if not force:
        res = cache_lookup(launch, target, cache_dir)
        if res is not None:
            return res, True
    res = compile_launch(launch, target)
    cache_store(launch, target, cache_dir, res)
    return res, False


_PAIRS: list = []  # (launch, target) to compile, read by forked workers


def _compile_index(i: int) -> tuple[int, Result]:
    lc, target = _PAIRS[i]
    return i, compile_launch(lc, target)


def compile_all(pairs: list, jobs: int):
    """Yield (index, result) for every (launch, target) of ``pairs``, in ``jobs`` forked processes."""
    if jobs <= 1 or len(pairs) <= 1:
        for i, (lc, target) in enumerate(pairs):
            yield i, compile_launch(lc, target)
        return
    import multiprocessing

    global _PAIRS
    _PAIRS = pairs
    with multiprocessing.get_context("fork").Pool(min(jobs, len(pairs))) as pool:
        yield from pool.imap_unordered(_compile_index, range(len(pairs)))


def problems(launch: Launch, target: str, res: Result) -> list[str]:
    """Why this configuration fails the check (empty: it passes)."""
    where = f"{target} {launch.kernel} [{launch.describe()}] (case: {launch.case})"
    if res.error:
        return [f"{where}: compile error:\n      " + res.error.replace("\n", "\n      ")]
    out = []
    if res.spill_stores or res.spill_loads:
        out.append(f"{where}: spills {res.spill_stores} B stores / {res.spill_loads} B loads per thread "
                   f"({res.regs} registers)")
    limit = TARGETS[target][1]
    if res.shared > limit:
        out.append(f"{where}: {res.shared} B shared memory, above the {limit} B ({limit // 1024} KiB) per block "
                   f"of {target}")
    return out


# ------------------------------------------------------------------------------------------ table
def markdown(rows: list[tuple[Launch, str, Result]], title_note: str = "") -> str:
    import triton

    lines = [
        "# Triton kernels: registers, spills and shared memory per launch configuration",
        "",
        f"Generated by `make triton-aot` (scripts/triton_aot.py{title_note}) with Triton {triton.__version__}: "
        "each configuration the launchers in kernels/*.py pick for the selected cases, compiled for "
        "sm_80 and sm_90 without a GPU; registers, spills and stack per thread from `ptxas -v`, shared "
        "memory per block from the compiled kernel (limits: sm_80 163 KiB, sm_90 227 KiB).",
        "",
    ]
    for target in TARGETS:
        rs = [(lc, r) for lc, t, r in rows if t == target and not r.error]
        if rs:
            lc, worst = max(rs, key=lambda x: x[1].regs)
            lines.append(f"- {target}: {len(rs)} configurations, max {worst.regs} registers ({lc.kernel} "
                         f"[{lc.describe()}]), max shared {max(r.shared for _, r in rs)} B, "
                         f"{sum(1 for _, r in rs if r.spill_stores or r.spill_loads)} spilling")
    errors = sum(1 for _, _, r in rows if r.error)
    lines += [f"- compile errors: {errors}", "",
              "| kernel | config | case | target | regs | spills st/ld (B) | stack (B) | shared (B) | ok |",
              "|---|---|---|---|---:|---:|---:|---:|---|"]
    for launch, target, r in rows:
        bad = problems(launch, target, r)
        if r.error:
            vals = ["-", "-", "-", "-"]
        else:
            vals = [str(r.regs), f"{r.spill_stores}/{r.spill_loads}", str(r.stack), str(r.shared)]
        cells = [launch.kernel, launch.describe(), launch.case, target, *vals,
                 "ok" if not bad else ("**error**" if r.error else "**FAIL**")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ cases
# Each family lists (case label, call) pairs; a call runs launchers on small CPU tensors.  The
# selection names the configurations worth compiling: every kernel, each dtype and constexpr
# value family, ints equal to 1 (constexpr) and divisible by 16, edge shapes and the largest
# block sizes the launcher can choose.  full=True adds the cross products.
def _dt(dtype) -> str:
    return str(dtype).replace("torch.", "")


def cases_pam(k, full: bool):
    import torch

    cases = []
    # n: plain, divisible by 16, 1 (constexpr); bias: offset 1.0 gives 0x3F800000 (divisible by 16), 1.1 not
    for n in (37, 64, 1) + ((1000, 4096) if full else ()):
        a, b = torch.randn(n), torch.randn(n)
        for off in (1.0, 1.1) if (full or n == 37) else (1.0,):
            cases += [(f"pam.mul n={n} offset={off}", lambda a=a, b=b, o=off: k.mul(a, b, o)),
                      (f"pam.mul_grad_factor n={n} offset={off}", lambda a=a, b=b, o=off: k.mul_grad_factor(a, b, o))]
        cases += [(f"pam.div n={n}", lambda a=a, b=b: k.div(a, b)),
                  (f"pam.exp2 n={n}", lambda a=a: k.exp2(a)),
                  (f"pam.log2 n={n}", lambda a=a: k.log2(a.abs()))]
    # (batch, M, K, N): plain, all divisible by 16, all 1 (unit sizes and strides become constexprs)
    shapes = [(2, 33, 17, 20), (2, 64, 32, 48), (1, 1, 1, 1)]
    if full:
        shapes += [(3, 5, 1, 7), (1, 16, 16, 16), (4, 100, 3, 2), (2, 200, 150, 70)]
    for dt in (torch.float32, torch.bfloat16) if full else (torch.float32,):
        for bt, m, kk, n in shapes:
            a, b = torch.randn(bt, m, kk, dtype=dt), torch.randn(bt, kk, n, dtype=dt)
            g = torch.randn(bt, m, n, dtype=dt)
            tag = f"{bt}x{m}x{kk}x{n} {_dt(dt)}"
            cases += [(f"pam.bmm {tag}", lambda a=a, b=b: k.bmm(a, b)),
                      (f"pam.bmm_exact_grad {tag}", lambda g=g, a=a, b=b: k.bmm_exact_grad(g, a, b))]
        a = torch.randn(2, 24, 33, dtype=dt).transpose(1, 2)  # A strided: no unit stride along K
        b, g = torch.randn(2, 24, 20, dtype=dt), torch.randn(2, 33, 20, dtype=dt)
        cases += [(f"pam.bmm transposed A {_dt(dt)}", lambda a=a, b=b: k.bmm(a, b)),
                  (f"pam.bmm_exact_grad transposed A {_dt(dt)}", lambda g=g, a=a, b=b: k.bmm_exact_grad(g, a, b))]
    return cases


def cases_fewbit(k, full: bool):
    import torch
    from pyops import fewbit as pf

    cases = []
    dtypes = [torch.float32, torch.float16, torch.bfloat16]
    x = torch.randn(1000)
    fns = sorted(pf.FUNCTIONS)
    if full:
        combos = [(fn, bits, dt) for fn in fns for bits in range(1, 9) for dt in dtypes]
    else:  # every function once, the bit widths and dtypes in rotation, the widest (8 bits) for every dtype
        combos = [(fn, (i % 8) + 1, dtypes[i % 3]) for i, fn in enumerate(fns)]
        combos += [("gelu", 8, dt) for dt in dtypes]
    for fn, bits, dt in combos:
        borders, _ = pf.table(fn, bits)
        cases.append((f"fewbit.forward {fn} bits={bits} {_dt(dt)}",
                      lambda fn=fn, b=borders, bits=bits, dt=dt: k.forward(x.to(dt), b, bits, fn)))
    for dt in dtypes + [torch.float64]:
        for bits in range(1, 9) if full else ((1, 3, 8) if dt == torch.float32 else (8,)):
            borders, levels = pf.table("gelu", bits)
            cases.append((f"fewbit.encode bits={bits} {_dt(dt)}",
                          lambda b=borders, bits=bits, dt=dt: k.encode(x.to(dt), b, bits)))
            if dt != torch.float64:  # float64 gradients take the reference
                codes = torch.randint(0, 255, ((1000 * bits + 7) // 8,), dtype=torch.uint8)
                cases.append((f"fewbit.backward bits={bits} {_dt(dt)}",
                              lambda c=codes, lv=levels, bits=bits, dt=dt: k.backward(x.to(dt), c, lv, bits)))
    one = torch.randn(1)  # n = n_bytes = 1: both constexpr
    borders, levels = pf.table("relu", 1)
    cases += [("fewbit.forward one element", lambda: k.forward(one, borders, 1, "relu")),
              ("fewbit.encode one element", lambda: k.encode(one, borders, 1)),
              ("fewbit.backward one element", lambda: k.backward(one, torch.zeros(1, dtype=torch.uint8), levels, 1))]
    return cases


def cases_intops(k, full: bool):
    import torch
    from pyops.reference import intops as ref

    def ints(shape, dtype):
        return torch.randint(-100, 101, shape, dtype=torch.int64).to(dtype)

    ib = ref.ibert_exp_constants(0.1)
    sx, gx = ref.shift_x0(0.1), ref.shift_x0(ref.SHIFTGELU_ALPHA * 0.1)

    def rows(x, tag, block=None):
        n = x.shape[-1]
        return [(f"intops.softmax ibert {tag}", lambda: k.softmax(x, *ib, 8, "ibert", block)),
                (f"intops.softmax shiftmax {tag}", lambda: k.softmax(x, sx, 0, 0, 8, "shiftmax", block)),
                (f"intops.shiftgelu {tag}", lambda: k.shiftgelu(x, gx, 8, block)),
                (f"intops.layernorm exact {tag}", lambda: k.layernorm(x, torch.zeros(n, dtype=torch.int64), 2, "exact",
                                                                      block)),
                (f"intops.layernorm newton shift=1 {tag}",
                 lambda: k.layernorm(x, torch.zeros(n, dtype=torch.int64), 1, "newton", block))]

    dtypes = [torch.int8, torch.int16, torch.int32]
    big = k.MAX_BLOCK
    cases = []
    for dt in dtypes:
        cases += rows(ints((3, 37), dt), f"{_dt(dt)} n=37")
    # a row of 1 (n constexpr), divisible by 16, the widest one-tile row, longer rows in tiles
    lengths = [1, 64, big, 5000] + ([2, 16, 100, 1000, big + 1, 4 * big, 1 << 20] if full else [])
    for n in lengths:
        cases += rows(ints((2 if n < 4096 else 1, n), torch.int8), f"int8 n={n}")
    if not full:  # tiled rows divisible by 16 (vector loads in the loops)
        cases += [c for c in rows(ints((1, 4 * big), torch.int8), f"int8 n={4 * big}")
                  if "softmax ibert" in c[0] or "layernorm exact" in c[0]]
    if full:
        for dt in dtypes[1:]:
            for n in (1, big, 5000):
                cases += rows(ints((2, n), dt), f"{_dt(dt)} n={n}")
        cases += rows(ints((2, 300), torch.int8), "int8 n=300 block=64", block=64)
    # I-BERT constants b = c = 1 (scale 1.5, legal): constexprs
    c15 = ref.ibert_exp_constants(1.5)
    x = ints((2, 37), torch.int8)
    cases += [("intops.softmax ibert scale=1.5 (b=c=1)", lambda: k.softmax(x, *c15, 8, "ibert")),
              ("intops.int_exp scale=1.5 (b=c=1)", lambda: k.int_exp(-x.abs(), *c15))]
    b, c, one, _ = ref.ibert_gelu_constants(torch.tensor([0.05]))
    m, e = ref.dyadic(torch.tensor([0.0123]))
    for dt in dtypes:
        x = ints((5, 24), dt)
        cases += [(f"intops.gelu {_dt(dt)}", lambda x=x: k.gelu(x, b, c, one)),
                  (f"intops.int_exp {_dt(dt)}", lambda x=x: k.int_exp(-x.abs(), *ib)),
                  (f"intops.requantize {_dt(dt)}", lambda x=x: k.requantize(x, m, e, 8))]
    x1 = ints((1, 1), torch.int8)  # numel = channels = 1: constexprs
    cases += [("intops.gelu one element", lambda: k.gelu(x1, b, c, one)),
              ("intops.requantize one element", lambda: k.requantize(x1, m, e, 8)),
              ("intops.requantize bits=16 n=128", lambda: k.requantize(ints((4, 32), torch.int32), m, e, 16)),
              ("intops.int_exp one element", lambda: k.int_exp(-x1.abs(), *ib)),
              ("intops.isqrt n=37", lambda: k.isqrt(torch.arange(37))),
              ("intops.isqrt one element", lambda: k.isqrt(torch.arange(1))),
              ("intops.isqrt n=64", lambda: k.isqrt(torch.arange(64)))]
    return cases


def cases_gaunt(k, full: bool):
    import torch
    from pyops.reference import gaunt as ref

    # (lmax1, lmax2, lmax_out, rows): all 0 and one row (constexprs everywhere), lmax 1 (ints = 1),
    # the tests' shapes, the spilling fp64 one of the design note, the largest a model uses, an output
    # degree far above lmax1 + lmax2 (the projection tile dominates), one input of degree 0
    shapes = [(0, 0, 0, 1), (1, 1, 1, 37), (2, 3, 4, 37), (4, 4, 8, 37), (16, 16, 16, 37), (2, 2, 32, 37),
              (8, 0, 8, 37)]
    if full:
        shapes += [(0, 0, 0, 37), (2, 3, 4, 1), (1, 1, 8, 37), (8, 8, 8, 37), (0, 0, 64, 37), (1, 1, 16, 37),
                   (3, 3, 24, 37), (0, 4, 2, 37), (32, 32, 32, 5), (64, 64, 64, 3)] + \
            [(l, l, l, 37) for l in (3, 5, 6, 7, 10, 12)]
    cases = []
    for dt in (torch.float32, torch.float64):
        for l1, l2, lo, n in shapes:
            z, w = ref.grid_nodes(l1 + l2 + lo)
            t = torch.tensor(ref.grid_table(max(l1, l2, lo), z), dtype=dt)
            x1, x2 = torch.randn(n, (l1 + 1) ** 2, dtype=dt), torch.randn(n, (l2 + 1) ** 2, dtype=dt)
            cases.append((f"gaunt.grid_product l={l1},{l2},{lo} n={n} {_dt(dt)}",
                          lambda x1=x1, x2=x2, t=t, w=torch.tensor(w, dtype=dt), lo=lo: k.grid_product(x1, x2, t, w, lo)))
        if full or dt == torch.float32:  # a broadcast (stride-0) x2, as gaunt_tensor_product passes it
            z, w = ref.grid_nodes(3 + 2 + 5)
            t = torch.tensor(ref.grid_table(5, z), dtype=dt)
            x1, x2 = torch.randn(37, 16, dtype=dt), torch.randn(1, 9, dtype=dt).expand(37, 9)
            cases.append((f"gaunt.grid_product broadcast x2 {_dt(dt)}",
                          lambda x1=x1, x2=x2, t=t, w=torch.tensor(w, dtype=dt): k.grid_product(x1, x2, t, w, 5)))
    return cases


def cases_wavehax(k, full: bool):
    import torch

    cases = []
    for hop in (240, 4, 1) + ((16, 256, 300, 480, 120) if full else ()):  # official, small, constexpr 1
        f0, noise = torch.rand(2, 1, 5) * 300, torch.randn(2, 1, 5 * hop)
        cases.append((f"wavehax.harmonic_prior hop={hop}",
                      lambda f0=f0, noise=noise, hop=hop: k.harmonic_prior(f0, noise, torch.zeros(2, dtype=torch.float64),
                                                                           hop, 24000, 0.1)))

    def block(c, hidden, framewise, shape=(1, 8, 9), ksize=7):
        args = (torch.randn(*shape, c), torch.randn(c, 1, ksize, ksize) * 0.1, torch.ones(c), torch.zeros(c),
                torch.randn(hidden, c) * 0.1, torch.zeros(hidden), torch.randn(c, hidden) * 0.1, torch.zeros(c),
                torch.full((c,), 0.125))
        return (f"wavehax.convnext2d_block C={c} H={hidden} framewise={framewise}",
                lambda: k.convnext2d_block(*args, 1e-6, framewise))

    # official (32, 64); small, odd and unit sizes; the widest one-channel-tile block; channels and
    # hidden beyond the widest tiles (every larger C, H compiles to the same tiles)
    sizes = [(32, 64, False), (3, 5, False), (1, 1, False), (64, 128, False), (128, 512, False), (128, 512, True),
             (100, 200, False)]
    if full:
        sizes += [(32, 64, True), (8, 16, False), (16, 32, False), (48, 96, True), (64, 256, True),
                  (256, 1024, False), (1024, 4096, False), (36, 80, False), (60, 120, False), (128, 200, False),
                  (2000, 4000, False)]
    cases += [block(*sz) for sz in sizes]
    return cases


CASES = {"pam": cases_pam, "fewbit": cases_fewbit, "intops": cases_intops, "gaunt": cases_gaunt,
         "wavehax": cases_wavehax}


def record_all(modules: dict, full: bool, only: Optional[str] = None) -> tuple[list[Launch], list[str]]:
    """(launches, errors) of every case of every family (filtered by substring ``only``)."""
    rec = Recorder()
    errors = []
    for family, module in modules.items():
        for label, call in CASES[family](module, full):
            if only and not any(part in label for part in only.split(",")):
                continue
            try:
                if rec.record(label, call) == 0:
                    errors.append(f"case '{label}' launched no kernel")
            except Exception as e:  # noqa: BLE001
                errors.append(f"case '{label}' failed while recording: {_short_error(e)}")
    return rec.launches, errors


# ------------------------------------------------------------------------------------------- main
def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="compile the cross products too (slow)")
    p.add_argument("--only", help="only the cases whose label contains one of these comma-separated strings "
                   "(does not write the table)")
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated, of " + ", ".join(TARGETS))
    p.add_argument("--no-cache", action="store_true", help="recompile everything (results still saved)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="compile in this many processes (default 1)")
    p.add_argument("--list", action="store_true", help="record and list the configurations, compile nothing")
    p.add_argument("--out", type=Path, default=None, help=f"table path (default {TABLE.relative_to(REPO)})")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                   help=f"results cache (default {CACHE_DIR.relative_to(REPO)})")
    args = p.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t not in TARGETS:
            p.error(f"unknown target {t!r}; known: {', '.join(TARGETS)}")

    t_start = time.perf_counter()
    modules = load_families()
    launches, errors = record_all(modules, args.full, args.only)
    configs = distinct(launches)
    print(f"triton-aot: {len(launches)} launches from the cases, {len(configs)} distinct configurations x "
          f"{len(targets)} targets", file=sys.stderr, flush=True)
    if args.list:
        for lc in configs:
            print(f"{lc.kernel:36s} {lc.describe()}   <- {lc.case}")
        for e in errors:
            print("ERROR", e)
        return 1 if errors else 0

    pairs = [(lc, t) for lc in configs for t in targets]
    results = {}
    for i, (lc, t) in enumerate(pairs):
        res = None if args.no_cache else cache_lookup(lc, t, args.cache_dir)
        if res is not None:
            results[i] = res
    todo = [i for i in range(len(pairs)) if i not in results]
    print(f"triton-aot: {len(results)} from the cache ({args.cache_dir}), {len(todo)} to compile"
          + (f" in {args.jobs} processes" if args.jobs > 1 and len(todo) > 1 else ""), file=sys.stderr, flush=True)
    width = len(str(len(todo)))
    for done, (j, res) in enumerate(compile_all([pairs[i] for i in todo], args.jobs), 1):
        lc, target = pairs[todo[j]]
        cache_store(lc, target, args.cache_dir, res)
        results[todo[j]] = res
        what = ("compile error" if res.error else
                f"{res.regs} regs, spills {res.spill_stores}/{res.spill_loads} B, shared {res.shared} B")
        print(f"[{done:{width}d}/{len(todo)}] {target} {lc.kernel} [{lc.describe()}]: {what} ({res.seconds:.1f} s)",
              file=sys.stderr, flush=True)
    rows = [(lc, t, results[i]) for i, (lc, t) in enumerate(pairs)]
    print(f"triton-aot: {len(todo)} compiled, {len(pairs) - len(todo)} from the cache, "
          f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)

    rows.sort(key=lambda r: (FAMILIES.index(r[0].kernel.split(".")[0]), r[0].kernel, r[0].describe(), r[1]))
    table = markdown(rows, " --full" if args.full else "")
    print(table)
    if args.out or not args.only:
        out = args.out or TABLE
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        print(f"triton-aot: wrote {out}", file=sys.stderr)

    bad = list(errors)
    for lc, target, res in rows:
        bad += problems(lc, target, res)
    if bad:
        print(f"\ntriton-aot: FAILED, {len(bad)} problem(s):", file=sys.stderr)
        for b in bad:
            print("  - " + b, file=sys.stderr)
        return 1
    print(f"triton-aot: OK, {len(configs)} configurations x {len(targets)} targets: no compile error, no spill, "
          "shared memory within every target's limit", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
