"""gaunt: Gaunt tensor product (grid route, O(L^3)) vs e3nn's FullTensorProduct
restricted to the same (natural-parity) outputs, forward and forward+backward."""

from __future__ import annotations

import torch

from benchmarks.harness import Case, Row, time_ms
from pyops import gaunt


def _e3nn_tp(lmax: int, device):
    from e3nn import o3

    irreps = o3.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])
    out = o3.Irreps([(1, (l, (-1) ** l)) for l in range(2 * lmax + 1)])
    return o3.FullTensorProduct(irreps, irreps, filter_ir_out=[ir for _, ir in out]).to(device)


def _case(lmax: int, device: torch.device, backward: bool) -> Row:
    n = 1024  # batch * channels
    d = (lmax + 1) ** 2
    x1 = torch.randn(n, d, device=device, requires_grad=backward)
    x2 = torch.randn(n, d, device=device, requires_grad=backward)
    tp = gaunt.GauntTensorProduct(gaunt._irreps(lmax), gaunt._irreps(lmax), learnable=False).to(device)

    def run(fn):
        def step():
            out = fn(x1, x2)
            if backward:
                out.sum().backward()

        return step

    baselines = {}
    try:
        e3 = _e3nn_tp(lmax, device)
        baselines["e3nn FullTensorProduct"] = time_ms(run(e3), device, min_run_time=0.2)
    except ImportError:
        pass
    return Row("gaunt", "tensor product" + (" fwd+bwd" if backward else ""), f"lmax {lmax}, 1024 x {d}", "float32",
               time_ms(run(tp), device), baselines)


def cases(device: torch.device, quick: bool) -> list[Case]:
    lmaxes = [2, 4, 8] if quick else [2, 4, 6, 8, 12, 16]
    return [Case(f"gaunt lmax {l}{' bwd' if b else ''}", lambda l=l, b=b: _case(l, device, b))
            for b in (False, True) for l in lmaxes]
