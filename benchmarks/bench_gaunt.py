"""gaunt: Gaunt tensor product (method="auto") vs e3nn's FullTensorProduct restricted to the same
(natural-parity) outputs and vs a plain-PyTorch re-statement of the official Fourier pipeline
(benchmarks/baselines/gaunt_fourier.py, exact tables); and our own Fourier route vs that pipeline.
Forward and forward+backward."""

from __future__ import annotations

import torch

from benchmarks.baselines.gaunt_fourier import GauntFourierOfficial
from benchmarks.harness import Case, Row, time_ms
from pyops import gaunt


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
    return [Row("gaunt", op, shape, "float32", time_ms(run(tp), device), baselines),
            Row("gaunt", op + " (fourier route)", shape, "float32", time_ms(run(tp_fourier), device),
                {"official Fourier pipeline (PyTorch)": t_official})]


def cases(device: torch.device, quick: bool) -> list[Case]:
    lmaxes = [2, 4, 8] if quick else [2, 4, 6, 8, 12, 16]
    return [Case(f"gaunt lmax {l}{' bwd' if b else ''}", lambda l=l, b=b: _case(l, device, b))
            for b in (False, True) for l in lmaxes]
