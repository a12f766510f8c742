"""Optimal piecewise-constant approximations of activation derivatives (few-bit backward).

For K = 2^bits pieces, find inner borders t_1 < ... < t_{K-1} and levels v_k
minimising  integral (f'(x) - q(x))^2 w(x) dx.  Exact dynamic programming over
candidate borders on a grid (interval costs in O(1) from cumulative sums), then
Lloyd-style continuous refinement: each level is the weighted mean of f' on its
piece, each border sits where f' crosses the midpoint of its neighbours' levels;
a last bisection on f' itself puts borders at f''s jumps exactly.

Weights: "uniform" on [-100, 100] (the official tables' setting: it reproduces
their GELU values) or "normal" (standard normal density).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

SPAN = 100.0  # the uniform weight's half-width
DENSE = 10.0  # borders are searched densely in [-DENSE, DENSE], where derivatives vary


def _grid() -> np.ndarray:
    dense = np.linspace(-DENSE, DENSE, 40001)
    tail = np.linspace(DENSE, SPAN, 9001)[1:]
    return np.concatenate([-tail[::-1], dense, tail])


def derivative(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(t).sum(), t)
    return g.numpy()


def _weights(x: np.ndarray, weight: str) -> np.ndarray:
    if weight == "uniform":
        return np.ones_like(x)
    if weight == "normal":
        return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    raise ValueError(f"pyops.fewbit: argument 'weight' must be 'uniform' or 'normal', got {weight!r}")


class _Integrals:
    """Cumulative trapezoid integrals of w, w f', w f'^2 on the fine grid, evaluable at any t."""

    def __init__(self, x, d, w):
        self.x = x
        dx = np.diff(x)
        self.cum = [np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * dx)]) for v in (w, w * d, w * d * d)]

    def at(self, t):
        return [np.interp(t, self.x, c) for c in self.cum]


def _dp(ints: _Integrals, cand: np.ndarray, pieces: int) -> np.ndarray:
    """Borders (a subset of cand, ends included) minimising the summed interval costs."""
    W, S1, S2 = ints.at(cand)
    n = len(cand)
    i, j = np.triu_indices(n, 1)
    cost = np.full((n, n), np.inf)
    w = W[j] - W[i]
    cost[i, j] = (S2[j] - S2[i]) - np.where(w > 0, (S1[j] - S1[i]) ** 2 / np.where(w > 0, w, 1), 0.0)
    best = cost[0].copy()  # best[j]: cost of covering [cand0, cand_j] with k pieces
    arg = np.zeros((pieces, n), dtype=np.int64)
    for k in range(1, pieces):
        total = best[:, None] + cost  # previous pieces end at i, new piece (i, j]
        arg[k] = np.argmin(total, axis=0)
        best = total[arg[k], np.arange(n)]
    ends = [n - 1]
    for k in range(pieces - 1, 0, -1):
        ends.append(arg[k][ends[-1]])
    return cand[np.array([0] + ends[::-1])]


def _levels(ints: _Integrals, edges: np.ndarray) -> np.ndarray:
    W, S1, _ = ints.at(edges)
    w = np.diff(W)
    return np.diff(S1) / np.where(w > 0, w, 1)


def _refine(x, d, ints, edges, iters: int = 60) -> np.ndarray:
    edges = edges.copy()
    for _ in range(iters):
        v = _levels(ints, edges)
        for k in range(1, len(edges) - 1):
            lo, hi = np.searchsorted(x, [edges[k - 1], edges[k + 1]])
            seg = d[lo:hi] - 0.5 * (v[k - 1] + v[k])
            cross = np.nonzero(np.diff(np.sign(seg)))[0]
            if len(cross):  # the crossing nearest the current border
                c = cross[np.argmin(np.abs(x[lo + cross] - edges[k]))]
                x0, x1, y0, y1 = x[lo + c], x[lo + c + 1], seg[c], seg[c + 1]
                edges[k] = x0 - y0 * (x1 - x0) / (y1 - y0) if y1 != y0 else x0
    return edges


def _polish(x, d_at, ints, edges, steps: int = 64) -> np.ndarray:
    """Each inner border bisected to where f' crosses the midpoint of its neighbours' levels, f'
    evaluated exactly (not interpolated between grid points): a border at a jump of f' (hardswish at
    +-3, relu6 at 0 and 6) lands on the jump, not up to a grid step inside it."""
    edges = edges.copy()
    v = _levels(ints, edges)
    mid = 0.5 * (v[:-1] + v[1:])
    inner = edges[1:-1]
    i = np.clip(np.searchsorted(x, inner), 2, len(x) - 3)
    lo, hi = x[i - 2], x[i + 2]  # the crossing lies within two grid steps of the refined border
    s_lo = np.sign(d_at(lo) - mid)
    ok = s_lo * np.sign(d_at(hi) - mid) < 0
    for _ in range(steps):
        m = 0.5 * (lo + hi)
        left = np.sign(d_at(m) - mid) == s_lo
        lo, hi = np.where(left, m, lo), np.where(left, hi, m)
    edges[1:-1] = np.where(ok, 0.5 * (lo + hi), inner)
    return edges


def compute(fn: Callable[[torch.Tensor], torch.Tensor], bits: int, weight: str = "uniform",
            derivative_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
    """(inner borders [2^bits - 1], levels [2^bits]) as float64 numpy arrays.
    f' comes from ``derivative_fn`` when given, else from autograd through ``fn``."""
    x = _grid()

    def d_at(t: np.ndarray) -> np.ndarray:
        if derivative_fn is not None:
            return derivative_fn(torch.tensor(t, dtype=torch.float64)).numpy()
        return derivative(fn, t)

    d = d_at(x)
    ints = _Integrals(x, d, _weights(x, weight))
    pieces = 2 ** bits
    # candidate borders: 0.025 apart, denser for many pieces (Lloyd refinement alone converges slowly)
    cand = np.concatenate([[-SPAN], np.linspace(-DENSE, DENSE, max(801, 8 * pieces + 1)), [SPAN]])
    edges = _dp(ints, cand, min(pieces, len(cand) - 1))
    if len(edges) - 1 < pieces:  # more pieces than candidates: split the widest ones
        while len(edges) - 1 < pieces:
            k = np.argmax(np.diff(edges))
            edges = np.insert(edges, k + 1, 0.5 * (edges[k] + edges[k + 1]))
    edges = _polish(x, d_at, ints, _refine(x, d, ints, edges))
    # again with each border on the grid from both sides, so that the integrals see a jump of f' there
    # exactly (the trapezoid rule smeared it over a grid step and shifted the levels next to it)
    inner = edges[1:-1]
    x = np.unique(np.concatenate([x, np.nextafter(inner, -np.inf), np.nextafter(inner, np.inf)]))
    d = d_at(x)
    ints = _Integrals(x, d, _weights(x, weight))
    edges = _polish(x, d_at, ints, _refine(x, d, ints, edges))
    return edges[1:-1], _levels(ints, edges)
