"""gaunt: Gaunt tensor product (method="auto") vs e3nn's FullTensorProduct restricted to the same
(natural-parity) outputs and vs a plain-PyTorch re-statement of the official Fourier pipeline
(benchmarks/baselines/gaunt_fourier.py, exact tables); and our own Fourier route vs that pipeline.
Forward and forward+backward."""

from __future__ import annotations

import math

import torch

from benchmarks.baselines.gaunt_fourier import GauntFourierOfficial
from benchmarks.harness import Case, Row, time_ms
from pyops import gaunt
from pyops.reference import gaunt as ref


# ---------------------------------------------------------------- arithmetic (flops, 2 per multiply-add)
def grid_product_flops(l1: int, l2: int, lo: int, nodes: int) -> int:
    """Flops of one channel of ``pyops::gaunt_grid_product`` (csrc/include/pyops/gaunt.h), counted from
    its loops: per node pair +-z, the two inputs' spectra (a multiply-add per coefficient, 4 ops per
    spectrum entry), two complex convolutions (8 per complex multiply-add) and the projection (a
    multiply-add per output, 4 ops per product entry)."""
    def spectra(L):
        return 2 * (L + 1) ** 2 + 4 * (2 * L + 1)

    pairs = sum(max(0, min(nu + l2, l1) - max(nu - l2, -l1) + 1) for nu in range(lo + 1))
    return nodes * (spectra(l1) + spectra(l2) + 2 * 8 * pairs + 2 * (lo + 1) ** 2 + 4 * (2 * lo + 1))


def dense_flops(l1: int, l2: int, lo: int) -> int:
    """Flops of one channel of method="dense": two matmuls onto the grid, the product, one matmul back."""
    deg = l1 + l2 + lo
    g = (deg // 2 + 1) * (deg + 1)
    return 2 * g * ((l1 + 1) ** 2 + (l2 + 1) ** 2 + (lo + 1) ** 2) + g


def ours_flops(lmax: int, n: int, backward: bool) -> int:
    """Flops of GauntTensorProduct(method="auto") on n channels of lmax x lmax -> 2 lmax; the backward
    is two more grid products (output gradient x the other input, projected onto the input's degrees)."""
    l1 = l2 = lmax
    lo = 2 * lmax
    if l1 + l2 + lo <= gaunt.AUTO_DENSE_MAX_DEGREE:
        return n * dense_flops(l1, l2, lo) * (3 if backward else 1)  # backward: ~2x the forward's matmuls
    nodes = len(ref.grid_nodes(l1 + l2 + lo)[0])
    f = grid_product_flops(l1, l2, lo, nodes)
    if backward:
        f += grid_product_flops(lo, l2, l1, nodes) + grid_product_flops(lo, l1, l2, nodes)
    return n * f


def official_fourier_flops(lmax: int, n: int) -> int:
    """Flops of the official Fourier pipeline's forward (benchmarks/baselines/gaunt_fourier.py) on n
    channels: complex einsums (8 per complex multiply-add) sh2f [D, 2L+1, 2L+1] twice and f2sh, three
    n_f x n_f complex FFTs at 5 N log2 N (N = n_f^2) and the pointwise complex product (6 per point)."""
    d, do = (lmax + 1) ** 2, (2 * lmax + 1) ** 2
    nf = 2 * (2 * lmax) + 1
    big_n = nf * nf
    sh2f, fft = 2 * 8 * d * (2 * lmax + 1) ** 2, 3 * 5 * big_n * math.log2(big_n)
    return n * (sh2f + fft + 6 * big_n + 8 * big_n * do)



def _e3nn_tp(lmax: int, device):
    from e3nn import o3

    irreps = o3.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])
    out = o3.Irreps([(1, (l, (-1) ** l)) for l in range(2 * lmax + 1)])
    return o3.FullTensorProduct(irreps, irreps, filter_ir_out=[ir for _, ir in out]).to(device)


def _case(lmax: int, device: torch.device, backward: bool) -> list[Row]:
    n = 1024  # batch * channels
    d = (lmax + 1) ** 2
    x1 = torch.randn(n, d, device=device, requires_grad=backward)
    x2 = torch.randn(n, d, device=device, requires_grad=backward)
    irreps = gaunt._irreps(lmax)
    tp = gaunt.GauntTensorProduct(irreps, irreps, learnable=False).to(device)
    tp_fourier = gaunt.GauntTensorProduct(irreps, irreps, learnable=False, method="fourier").to(device)
    official = GauntFourierOfficial(lmax, lmax, 2 * lmax).to(device)
    with torch.no_grad():  # the baseline must compute the same product
        want, got = tp(x1, x2), official(x1, x2)
        assert ((got - want).abs().max() / want.abs().max()).item() < 1e-4

    def run(fn):
        def step():
            out = fn(x1, x2)
            if backward:
                out.sum().backward()

        return step

    t_official = time_ms(run(official), device, min_run_time=0.2)
    baselines = {}
    try:
        baselines["e3nn FullTensorProduct"] = time_ms(run(_e3nn_tp(lmax, device)), device, min_run_time=0.2)
    except ImportError:
        pass
    baselines["official Fourier pipeline (PyTorch)"] = t_official
    op = "tensor product" + (" fwd+bwd" if backward else "")
    shape = f"lmax {lmax}, 1024 x {d}"
    # ours: the grid kernel's flops; the official pipeline: its own forward count (fwd+bwd not counted);
    # e3nn and our Fourier route: not counted
    work = {"e3nn FullTensorProduct": None,
            "official Fourier pipeline (PyTorch)": None if backward else official_fourier_flops(lmax, n)}
    note = "flops: ours from the grid kernel's loops, the official pipeline's forward from its einsums/FFTs"
    return [Row("gaunt", op, shape, "float32", time_ms(run(tp), device), baselines,
                flops=ours_flops(lmax, n, backward), baseline_work=work, size=lmax, size_unit="lmax",
                note=note),
            Row("gaunt", op + " (fourier route)", shape, "float32", time_ms(run(tp_fourier), device),
                {"official Fourier pipeline (PyTorch)": t_official}, size=lmax, size_unit="lmax")]


def _e3nn_power(lmax: int, nu: int, device):
    """x^nu with e3nn: FullTensorProducts chained (x (x) x, then (x) x, ...), each keeping the degrees the
    later products and the output need (natural parity), as a user without Gaunt products would."""
    from e3nn import o3

    def irreps(l):
        return o3.Irreps([(1, (k, (-1) ** k)) for k in range(l + 1)])

    x_irreps, cur, tps = irreps(lmax), irreps(lmax), []
    for n in range(2, nu + 1):
        keep = min(n * lmax, lmax + (nu - n) * lmax)  # what x^n must keep for an exact lmax output
        tp = o3.FullTensorProduct(cur, x_irreps, filter_ir_out=[ir for _, ir in irreps(keep)]).to(device)
        tps.append(tp)
        cur = tp.irreps_out

    def power(x):
        out = x
        for tp in tps:
            out = tp(out, x)
        return out

    return power


def _power_case(lmax: int, nu: int, device: torch.device) -> list[Row]:
    n, d = 1024, (lmax + 1) ** 2
    x = torch.randn(n, d, device=device)
    baselines = {}
    try:
        e3nn_power = _e3nn_power(lmax, nu, device)
        baselines["e3nn FullTensorProduct chained"] = time_ms(lambda: e3nn_power(x), device, min_run_time=0.2)
    except ImportError:
        pass
    return [Row("gaunt", f"gaunt_power nu={nu}", f"lmax {lmax}, 1024 x {d}", "float32",
                time_ms(lambda: gaunt.gaunt_power(x, nu, lmax), device), baselines, size=lmax, size_unit="lmax",
                note="ours: the fused grid product chained; e3nn: FullTensorProducts chained, degrees kept as needed")]


def cases(device: torch.device, quick: bool) -> list[Case]:
    lmaxes = {False: [2, 4, 6], True: [2, 4]} if quick else {b: [2, 4, 6, 8, 12, 16] for b in (False, True)}
    out = [Case(f"gaunt lmax {l}{' bwd' if b else ''}", lambda l=l, b=b: _case(l, device, b))
           for b in (False, True) for l in lmaxes[b]]
    return out + [Case(f"gaunt power lmax {l}", lambda l=l: _power_case(l, 3, device))
                  for l in ([2] if quick else [2, 4, 6])]
