"""Every family's raw torch.ops.pyops CUDA ops, once each on small CUDA tensors, for compute-sanitizer.

    compute-sanitizer --tool memcheck  python scripts/gpu_sanitize.py --big
    compute-sanitizer --tool racecheck python scripts/gpu_sanitize.py

`make gpu-check` (scripts/gpu_check.sh) runs both.  The shapes are the ones the CUDA-on-CPU
tests (tests/cuda_emu) use: partial tiles (pam_bmm's 64x64x16 tiles), rows shorter than, equal to
and longer than a block of 256 threads (intops), widths that are not a multiple of 8 (fewbit's
code groups), both of wavehax's shared-memory and global-memory paths, empty and non-contiguous
inputs; ``--big`` adds the grid-stride and launch-limit shapes.  Inputs are made on the CPU and
copied over, so the only kernels that run are the ops' own (and the few torch calls inside their
bindings).  Each result is also compared with the CPU op: bit-exact where the README promises it,
else within the tolerances tests/cuda_emu uses.  Run it with PYTORCH_NO_CUDA_MEMORY_CACHING=1
(gpu_check.sh does) so that every tensor is its own allocation and memcheck sees an overrun of it.
Exit status: 0 every call ran and matched; 3 some call raised or differed from the CPU (listed
at the end); 2 no CUDA device / no CUDA kernels (compute-sanitizer's own findings: its
--error-exitcode, 86 in gpu_check.sh).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's pyops


def _need_cuda() -> str | None:
    """None when CUDA and pyops' CUDA kernels are usable, else why not."""
    import torch

    if not torch.cuda.is_available():
        return ("no CUDA device: torch.cuda.is_available() is False (torch "
                f"{torch.__version__}, built with CUDA {torch.version.cuda})")
    from pyops import _library

    if _library._C is None:
        return f"pyops._C is not built ({_library._C_ERROR}); run `make gpu-check` or build with a CUDA torch"
    if not _library._C.with_cuda():
        return "pyops._C was built without its CUDA kernels (torch without CUDA, or no nvcc at build time)"
    missing = [n for n, chosen in _library.BACKENDS.items() if chosen["cuda"] not in ("cuda", "composite")]
    if missing:
        return f"these ops have no CUDA kernel registered: {', '.join(sorted(missing))}"
    return None


class Runner:
    def __init__(self, compare: bool, device: str = "cuda"):
        import torch

        self.torch = torch
        self.device = device
        self.ops = torch.ops.pyops
        self.compare = compare
        self.calls = 0
        self.failures: list[str] = []

    def cuda(self, tree):
        torch = self.torch
        if isinstance(tree, torch.Tensor):
            return tree.to(self.device)
        if isinstance(tree, (list, tuple)):
            return type(tree)(self.cuda(t) for t in tree)
        return tree

    def cpu(self, tree):
        torch = self.torch
        if isinstance(tree, torch.Tensor):
            return tree.cpu()
        if isinstance(tree, (list, tuple)):
            return type(tree)(self.cpu(t) for t in tree)
        return tree

    def same(self, got, want, tol: float | None) -> str | None:
        torch = self.torch
        if isinstance(want, (tuple, list)):
            if len(got) != len(want):
                return f"{len(got)} outputs, expected {len(want)}"
            for g, w in zip(got, want):
                err = self.same(g, w, tol)
                if err:
                    return err
            return None
        if got.shape != want.shape or got.dtype != want.dtype:
            return f"shape/dtype {tuple(got.shape)} {got.dtype} != {tuple(want.shape)} {want.dtype}"
        if tol is None or not want.is_floating_point():
            if want.is_floating_point():
                bits = {torch.float64: torch.int64, torch.float32: torch.int32}.get(want.dtype, torch.int16)
                nan = got.isnan() & want.isnan()
                diff = (got.contiguous().view(bits) != want.contiguous().view(bits)) & ~nan
            else:
                diff = got != want
            n = int(diff.sum())
            return f"{n}/{want.numel()} elements differ (bit-exact)" if n else None
        try:
            torch.testing.assert_close(got, want, atol=tol, rtol=tol, equal_nan=True)
        except AssertionError as e:
            return str(e).splitlines()[0] + " " + " ".join(str(e).splitlines()[1:3])
        return None

    def call(self, label: str, op, *args, tol: float | None = None, device_args=None):
        """op(*args) on the device (device_args if given, else args copied over), checked against
        op(*args) on the CPU."""
        self.calls += 1
        try:
            got = op(*(device_args if device_args is not None else self.cuda(args)))
            if self.device == "cuda":
                self.torch.cuda.synchronize()
            if self.compare:
                err = self.same(self.cpu(got), op(*args), tol)
                if err:
                    self.failures.append(f"{label}: {err}")
        except Exception as e:  # noqa: BLE001 - report every op, not just the first
            self.failures.append(f"{label}: {type(e).__name__}: {e}")
            traceback.print_exc()


# ----------------------------------------------------------------------------- inputs (CPU)
def specials(torch, dtype, n, seed):
    """Random values with NaN, +-inf, +-0, subnormals and the extremes mixed in."""
    g = torch.Generator().manual_seed(seed)
    fi = torch.finfo(dtype)
    scale = torch.exp2(torch.randint(-30, 30, (n,), generator=g))
    x = torch.randn(n, generator=g, dtype=torch.float64) * scale
    x = x.to(dtype)
    odd = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0, fi.tiny, -fi.tiny, fi.tiny / 8, fi.max,
                        -fi.max, 1.0, -1.0], dtype=torch.float64).to(dtype)
    if n >= len(odd):
        x[torch.randperm(n, generator=g)[: len(odd)]] = odd
    return x


def ints(torch, shape, dtype, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(dtype)


# ----------------------------------------------------------------------------- families
def run_pam(r: Runner, big: bool) -> None:
    torch, ops = r.torch, r.ops
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        a, b = specials(torch, dtype, 1003, 1), specials(torch, dtype, 1003, 2)
        for name in ("mul", "mul_grad_factor"):
            r.call(f"pam_{name} {dtype}", getattr(ops, f"pam_{name}"), a, b, 0.75)
        r.call(f"pam_div {dtype}", ops.pam_div, a, b)
        r.call(f"pam_exp2 {dtype}", ops.pam_exp2, a)
        r.call(f"pam_log2 {dtype}", ops.pam_log2, a)
        r.call(f"pam_mul broadcast {dtype}", ops.pam_mul, a[:5, None], b[None, :7])
        ac, bc = r.cuda(a), r.cuda(b)
        r.call(f"pam_mul non-contiguous {dtype}", ops.pam_mul, a[::3], b[::3], device_args=(ac[::3], bc[::3]))
        r.call(f"pam_mul empty {dtype}", ops.pam_mul, a[:0], b[:0])
    # partial 64x64x16 tiles, one element, empty M and K
    shapes = [(1, 1, 1, 1), (3, 67, 19, 70), (2, 64, 16, 64), (1, 130, 33, 5), (2, 0, 4, 3), (2, 3, 0, 4)]
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        for batch, M, K, N in shapes:
            g = torch.Generator().manual_seed(M * 1000 + N)
            a = torch.randn(batch, M, K, generator=g).to(dtype)
            b = torch.randn(batch, K, N, generator=g).to(dtype)
            grad = torch.randn(batch, M, N, generator=g).to(dtype)
            tag = f"{batch}x{M}x{K}x{N} {dtype}"
            r.call(f"pam_bmm {tag}", ops.pam_bmm, a, b)
            r.call(f"pam_bmm_exact_grad {tag}", ops.pam_bmm_exact_grad, grad, a, b, 1.0625)
    if big:  # past 65535 blocks of 256 threads (grid-stride), batch and row tiles past 65535
        n = 65535 * 256 + 300
        a = torch.randn(n)
        r.call("pam_mul grid-stride", ops.pam_mul, a, a.flip(0))
        for batch, M, K, N in [(65536, 1, 1, 1), (1, 4194305, 1, 1), (300, 2000, 1, 65)]:
            a, b, grad = torch.randn(batch, M, K), torch.randn(batch, K, N), torch.randn(batch, M, N)
            r.call(f"pam_bmm {batch}x{M}x{K}x{N}", ops.pam_bmm, a, b)
            r.call(f"pam_bmm_exact_grad {batch}x{M}x{K}x{N}", ops.pam_bmm_exact_grad, grad, a, b)


def run_fewbit(r: Runner, big: bool) -> None:
    torch, ops = r.torch, r.ops
    from pyops import fewbit

    n = 523  # not a multiple of 8 (one code group)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        for bits in (1, 2, 3, 4, 5, 8):
            borders, levels = fewbit.table("gelu", bits)
            x = specials(torch, torch.float32, n, bits).clamp(-6, 6).to(dtype)
            x[3:3 + len(borders)] = borders.to(dtype)  # values on the borders
            r.call(f"fewbit_encode {bits}-bit {dtype}", ops.fewbit_encode, x, borders, bits)
            codes = ops.fewbit_encode(x, borders, bits)
            grad = torch.randn(n, dtype=torch.float64).to(dtype)
            r.call(f"fewbit_backward {bits}-bit {dtype}", ops.fewbit_backward, grad, codes, levels, bits)
    borders, levels = fewbit.table("gelu", 3)
    tol = {torch.float32: 1e-6, torch.float64: 1e-9, torch.float16: 1e-3, torch.bfloat16: 8e-3}
    fns = sorted(fewbit.FUNCTIONS)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        x = (torch.randn(301, dtype=torch.float64) * 4).to(dtype)
        x[:4] = torch.tensor([math.nan, 0.0, 30.0, -30.0]).to(dtype)
        for fn in fns if dtype == torch.float32 else fns[:3]:
            r.call(f"fewbit_forward {fn} {dtype}", ops.fewbit_forward, x, borders, 3, fn, tol=tol[dtype])
    x = torch.randn(4, 77)
    xc = r.cuda(x)
    r.call("fewbit_forward non-contiguous", ops.fewbit_forward, x[:, ::2], borders, 3, "gelu", tol=1e-6,
           device_args=(xc[:, ::2], r.cuda(borders), 3, "gelu"))
    r.call("fewbit_apply", ops.fewbit_apply, x, borders, levels, 3, "gelu", tol=1e-6)
    r.call("fewbit_encode empty", ops.fewbit_encode, x[:0], borders, 3)
    if big:
        x = torch.randn(2 ** 24 + 5)
        r.call("fewbit_forward 16M", ops.fewbit_forward, x, borders, 3, "silu", tol=1e-6)


def run_gaunt(r: Runner, big: bool) -> None:
    torch, ops = r.torch, r.ops
    from pyops.reference import gaunt as ref

    cases = [(2, 3, 4, 37), (3, 2, 7, 5), (4, 4, 2, 300), (0, 0, 0, 1), (1, 2, 3, 130), (6, 5, 11, 3),
             (8, 8, 16, 1)]
    if big:
        cases.append((4, 4, 8, 70000))
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        for l1, l2, lo, n in cases:
            z, w = ref.grid_nodes(l1 + l2 + lo)
            table = torch.tensor(ref.grid_table(max(l1, l2, lo), z), dtype=dtype)
            g = torch.Generator().manual_seed(l1 * 100 + lo)
            x1 = torch.randn(n, (l1 + 1) ** 2, generator=g, dtype=dtype)
            x2 = torch.randn(n, (l2 + 1) ** 2, generator=g, dtype=dtype)
            weights = torch.tensor(w, dtype=dtype)
            r.call(f"gaunt_grid_product l{l1},{l2}->{lo} n{n} {dtype}", ops.gaunt_grid_product, x1, x2, table,
                   weights, lo, tol=tol)
    r.call("gaunt_grid_product empty", ops.gaunt_grid_product, x1[:0], x2[:0], table, weights, lo)


def run_intops(r: Runner, big: bool) -> None:
    torch, ops = r.torch, r.ops
    from pyops.reference import intops as ref

    # rows shorter than, equal to and longer than a block of 256 threads; one row; odd widths
    rows = [(1, 1), (3, 37), (2, 256), (2, 700), (5, 9), (2, 1025)]
    if big:
        rows += [(70000, 3), (1, 100000)]
    for dtype in (torch.int8, torch.int16, torch.int32):
        for shape in rows:
            tag = f"{shape[0]}x{shape[1]} {dtype}"
            for method, scale in (("ibert", 0.1), ("shiftmax", 1e-3)):
                hi = 127 if dtype == torch.int8 else int(8 / scale)
                x = ints(torch, shape, dtype, -hi, hi, shape[1])
                if method == "ibert":
                    x0, b, c = ref.ibert_exp_constants(scale)
                else:
                    x0, b, c = ref.shift_x0(scale), 0, 0
                r.call(f"intops_softmax {method} {tag}", ops.intops_softmax, x, x0, b, c, 8, method)
            hi = 127 if dtype == torch.int8 else 2000
            x = ints(torch, shape, dtype, -hi, hi, shape[1] + 1)
            x0 = ref.shift_x0(ref.SHIFTGELU_ALPHA * 0.05)
            r.call(f"intops_shiftgelu {tag}", ops.intops_shiftgelu, x, x0, 8)
            r.call(f"intops_exp {tag}", ops.intops_exp, -x.abs(), *ref.ibert_exp_constants(0.05))
            hi = {torch.int8: 127, torch.int16: 30000, torch.int32: 1 << 20}[dtype]
            x = ints(torch, shape, dtype, -hi, hi, shape[1] + 2)
            bias = ints(torch, (shape[1],), torch.int64, -1000, 1000, 0)
            for isqrt, shift in (("exact", 0), ("newton", 3)):
                r.call(f"intops_layernorm {isqrt} {tag}", ops.intops_layernorm, x, bias, shift, isqrt)
        info = torch.iinfo(dtype)
        x = ints(torch, (7, 24), dtype, info.min if dtype == torch.int8 else -3000,
                 info.max if dtype == torch.int8 else 3000, 3)
        b, c, one, _ = ref.ibert_gelu_constants(torch.rand(24, dtype=torch.float64) * 0.05 + 1e-4)
        r.call(f"intops_gelu {dtype}", ops.intops_gelu, x, b, c, one)
        xi = ints(torch, (3, 40), dtype, info.min, info.max, 4)
        m, e = ref.dyadic(torch.tensor([0.0123, 3.7, 1e-6]).repeat(14)[:40])
        for bits in (8, 16):
            r.call(f"intops_requantize {bits}-bit {dtype}", ops.intops_requantize, xi, m, e, bits)
        xc = r.cuda(x)
        r.call(f"intops_softmax non-contiguous {dtype}", ops.intops_softmax, x[:, ::2], -10, 0, 0, 8,
               "shiftmax", device_args=(xc[:, ::2], -10, 0, 0, 8, "shiftmax"))
    v = torch.tensor([0, 1, 2, 3, 4, 15, 16, 17, 2 ** 62, 2 ** 62 - 1, 2 ** 63 - 1, 99980001, 99980000])
    r.call("intops_isqrt", ops.intops_isqrt, v)
    e8 = torch.empty(0, 5, dtype=torch.int8)
    r.call("intops_softmax empty", ops.intops_softmax, e8, -10, 0, 0, 8, "shiftmax")
    r.call("intops_layernorm empty", ops.intops_layernorm, e8, torch.zeros(5, dtype=torch.long), 0, "exact")


def run_wavehax(r: Runner, big: bool) -> None:
    torch, ops = r.torch, r.ops

    def params(C, H, K, dtype, seed=0):
        g = torch.Generator().manual_seed(seed)

        def rnd(*s, std=1.0):
            return (std * torch.randn(*s, generator=g)).to(dtype)

        return [rnd(C, 1, K, K, std=0.2), 1 + rnd(C, std=0.1), rnd(C, std=0.1), rnd(H, C, std=C ** -0.5),
                rnd(H, std=0.1), rnd(C, H, std=H ** -0.5), rnd(C, std=0.1), rnd(C, std=0.5)]

    blocks = [((2, 8, 9, 32), 64, 3), ((1, 5, 7, 3), 6, 5), ((1, 16, 4, 8), 16, 7), ((2, 3, 130, 4), 8, 3)]
    for dtype, tol in ((torch.float32, 2e-5), (torch.float64, 1e-12)):
        for shape, H, K in blocks:
            x = torch.randn(*shape, dtype=dtype)
            p = params(shape[3], H, K, dtype, K)
            for framewise in (False, True):
                r.call(f"wavehax_convnext2d_block {shape} H{H} K{K} fw={framewise} {dtype}",
                       ops.wavehax_convnext2d_block, x, *p, 1e-6, framewise, tol=tol)
    # C > 192 in float moves the scratch from shared to global memory; 6200 once asked for > 48 KiB
    for dtype, C in ((torch.float32, 192), (torch.float32, 200), (torch.float64, 100), (torch.float32, 6200)):
        x = torch.randn(1, 3, 2, C, dtype=dtype)
        tol = 1e-4 if dtype == torch.float32 else 1e-12
        r.call(f"wavehax_convnext2d_block C{C} {dtype}", ops.wavehax_convnext2d_block, x,
               *params(C, 4, 3, dtype), 1e-6, False, tol=tol)
    x = torch.randn(2, 8, 9, 32)
    p = params(32, 64, 3, torch.float32)
    xc = r.cuda(x)
    r.call("wavehax_convnext2d_block non-contiguous", ops.wavehax_convnext2d_block, x[:, ::2], *p, 1e-6,
           False, tol=2e-5, device_args=(xc[:, ::2], *r.cuda(p), 1e-6, False))
    g = torch.Generator().manual_seed(0)
    B, N, hop = 2, 9, 120
    f0 = torch.rand(B, 1, N, generator=g) * 400
    f0[0, 0, :3] = torch.tensor([0.0, 11990.0, 50.0])
    noise = 0.01 * torch.randn(B, 1, N * hop, generator=g)
    phase0 = torch.rand(B, generator=g, dtype=torch.float64)
    r.call("wavehax_harmonic_prior", ops.wavehax_harmonic_prior, f0, noise, phase0, hop, 24000, 0.1, tol=2e-5)
    r.call("wavehax_harmonic_prior empty", ops.wavehax_harmonic_prior, f0[:, :, :0], noise[:, :, :0], phase0,
           hop, 24000, 0.1)
    if big:
        B, N, hop = 3, 4000, 300
        f0 = torch.rand(B, 1, N, generator=g) * 400
        noise = 0.01 * torch.randn(B, 1, N * hop, generator=g)
        r.call("wavehax_harmonic_prior 3.6M", ops.wavehax_harmonic_prior, f0, noise, phase0[:1].repeat(B),
               hop, 24000, 0.1, tol=2e-4)


FAMILIES = {"pam": run_pam, "fewbit": run_fewbit, "gaunt": run_gaunt, "intops": run_intops,
            "wavehax": run_wavehax}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated families (default: all)")
    p.add_argument("--big", action="store_true", help="add the grid-stride and launch-limit shapes")
    p.add_argument("--no-compare", action="store_true",
                   help="only run the ops, skip the comparison with the CPU")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="cpu: make every call on the CPU (checks this script's arguments, not the kernels)")
    args = p.parse_args(argv)
    only = [f for f in args.only.split(",") if f] or list(FAMILIES)
    unknown = sorted(set(only) - set(FAMILIES))
    if unknown:
        p.error(f"unknown families {unknown}; choose from {sorted(FAMILIES)}")

    why = _need_cuda() if args.device == "cuda" else None
    if why:
        print(f"gpu_sanitize.py: needs a CUDA GPU and pyops' CUDA kernels: {why}", file=sys.stderr)
        return 2
    import torch

    import pyops  # noqa: F401  (registers torch.ops.pyops)

    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (argument check only)"
    print(f"gpu_sanitize.py: {name}, torch {torch.__version__}", flush=True)
    r = Runner(compare=not args.no_compare, device=args.device)
    for fam in only:
        t0, before, failed = time.time(), r.calls, len(r.failures)
        FAMILIES[fam](r, args.big)
        print(f"  {fam:<8} {r.calls - before:4d} calls, {len(r.failures) - failed} failed, "
              f"{time.time() - t0:.1f}s", flush=True)
    for f in r.failures:
        print(f"FAILED {f}", file=sys.stderr)
    print(f"gpu_sanitize.py: {r.calls} op calls, {len(r.failures)} failed", flush=True)
    return 3 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
