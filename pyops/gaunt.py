"""gaunt: Gaunt tensor products of spherical-harmonic features (Luo et al. 2024).

``out[l3 m3] = sum G(l1 m1, l2 m2, l3 m3) x1[l1 m1] x2[l2 m2]`` with
``G = int Y Y Y dOmega``: the pointwise product of the two spherical functions,
projected back.  Computed in O(L^3) per channel (L = lmax + 1) by ``pyops::gaunt_grid_product``
(C++/CUDA/Triton kernels): at each Gauss-Legendre node pair +-z the Legendre sums give the two
azimuthal spectra, their product is a convolution of the spectra, and the weighted projection
goes straight into the output; the nodes are just enough for the quadrature to be exact.
``gaunt_power`` chains that kernel.  The paper's 2D Fourier route (sh2f, linear convolution
by FFT, f2sh) is offered too (``method="fourier"``), with its tables generated exactly in float64.
Features use e3nn's order and integral normalisation.  Only natural-parity
outputs exist (G vanishes for odd l1 + l2 + l3).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from pyops import _library
from pyops._library import check, define, triton_launcher
from pyops.reference import gaunt as ref

_triton = functools.partial(triton_launcher, "gaunt")  # pyops.kernels.gaunt.<name>, imported on first use

__all__ = ["gaunt_tensor_product", "gaunt_power", "GauntTensorProduct", "lmax_of"]

DTYPES = (torch.float32, torch.float64)
METHODS = ("auto", "grid", "dense", "fourier")
# method="auto": the dense transforms (one matmul each, O(L^4)) up to this lmax1 + lmax2 + lmax_out, the fused
# grid kernel above; calibrated on CPU (fp32, 1024 channels, fwd and fwd+bwd): dense is faster to degree 6,
# level at 8, the grid 1.3-1.5x faster at 10-12 and 20x at lmax 16.  The Fourier route is never faster on CPU
# (its 2D FFTs cover the doubled torus) and is not picked.
AUTO_DENSE_MAX_DEGREE = 6


_grid_product = define(
    "gaunt_grid_product", "(Tensor x1, Tensor x2, Tensor table, Tensor weights, int lmax_out) -> Tensor",
    reference=ref.grid_product,
    fake=lambda x1, x2, table, weights, lmax_out: x1.new_empty(x1.shape[0], (lmax_out + 1) ** 2),
    triton=_triton("grid_product"), check=ref.check_grid_product)


def _grid_product_setup(ctx, inputs, output):
    x1, x2, table, weights, _ = inputs
    ctx.save_for_backward(x1, x2, table, weights)


def _grid_product_backward(ctx, g):
    # The quadrature's G[i, j, k] = sum_nodes w Y_i Y_j Y_k is symmetric in i, j, k, so each input's
    # gradient is the same product of the output gradient with the other input, projected onto the
    # input's degrees (the table covers max(lmax1, lmax2, lmax_out) for this).
    x1, x2, table, weights = ctx.saved_tensors
    ga = gb = None
    if ctx.needs_input_grad[0]:
        ga = _grid_product(g, x2, table, weights, lmax_of(x1.shape[1]))
    if ctx.needs_input_grad[1]:
        gb = _grid_product(g, x1, table, weights, lmax_of(x2.shape[1]))
    return ga, gb, None, None, None


torch.library.register_autograd("pyops::gaunt_grid_product", _grid_product_backward,
                                setup_context=_grid_product_setup, lib=_library._lib)


def lmax_of(dim: int) -> Optional[int]:
    r = math.isqrt(dim)
    return r - 1 if r * r == dim and r > 0 else None


class _Grid:
    """The transforms between (lmax+1)^2 coefficients and a [n_beta, n_alpha] Gauss-Legendre x
    uniform grid as dense [D, grid] matrices: O(L^4) per channel, but one BLAS call each, which
    beats the O(L^3) grid route for small L (see ``AUTO_DENSE_MAX_DEGREE``)."""

    def __init__(self, lmax: int, n_beta: int, n_alpha: int, dtype, device):
        z, w = np.polynomial.legendre.leggauss(n_beta)
        alpha = 2 * math.pi * np.arange(n_alpha) / n_alpha
        p = ref.legendre(lmax, z)  # [l, m, k]
        L = lmax + 1
        # P[m, l, k] = p_l^|m|(z_k) (zero for l < |m|), A[m, j] = the azimuthal factor
        P = np.stack([p[:, abs(m), :] for m in range(-lmax, lmax + 1)])
        A = ref.alpha_part(lmax, alpha)
        Y = np.einsum("mlk,mj->mlkj", P, A).reshape(2 * lmax + 1, L, -1)  # Y[m, l, (k, j)]
        # the quadrature weights folded into the inverse
        Yw = np.einsum("mlk,mj->mlkj", P * w[None, None, :], A * (2 * math.pi / n_alpha)).reshape(2 * lmax + 1, L, -1)
        pos = [(m + lmax) * L + l for l in range(L) for m in range(-l, l + 1)]  # (l, m) -> row m L + l
        flat = lambda a: a.reshape(-1, a.shape[-1])[pos]  # noqa: E731  rows in e3nn order
        t = functools.partial(torch.tensor, dtype=dtype, device=device)
        self.Y, self.Yw = t(flat(Y)), t(flat(Yw).T.copy())

    def to_grid_dense(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.Y  # [..., n_beta * n_alpha]

    def from_grid_dense(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.Yw


class _GridProduct:
    """The grid route for one product: ``pyops::gaunt_grid_product`` on the Gauss-Legendre nodes of
    the rule exact for degree l1 + l2 + lo.  Per channel and node pair +-z it is O(L^2): the Legendre
    sums, the azimuthal product as a convolution of the two spectra (c_mu, |mu| <= lmax) and the
    weighted projection, all in registers/L1, fused in one kernel (O(L^3) per channel in all)."""

    def __init__(self, l1: int, l2: int, lo: int, dtype, device):
        z, w = ref.grid_nodes(l1 + l2 + lo)
        t = functools.partial(torch.tensor, dtype=dtype, device=device)
        self.table, self.weights, self.lo = t(ref.grid_table(max(l1, l2, lo), z)), t(w), lo

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
        # broadcast dims stay stride-0 views: the kernels read x2 once per row, never a copy
        x1f, x2f = (x.expand(*batch, x.shape[-1]).reshape(-1, x.shape[-1]) for x in (x1, x2))
        return _grid_product(x1f, x2f, self.table, self.weights, self.lo).reshape(*batch, -1)


class _Fourier:
    """The 2D Fourier route (Luo et al.): sh2f, linear 2D convolution by zero-padded real FFT, f2sh.

    A degree-l feature is a trig polynomial sum y_uv e^{i(u theta + v alpha)} on the torus
    (theta extended to [0, 2 pi)), real, so only v >= 0 is stored: S[..., v, u] with u in FFT
    order.  sh2f and f2sh are batched over v and use the v = +-m sparsity: for each v only the
    2(L - v) coefficients with |m| = v meet it.  irfft2 of the zero-padded half-spectra samples
    both functions on a uniform n_v x n_u torus grid, their product's rfft2 is the linear
    convolution of the spectra (no aliasing into the kept bins: n_u >= 2(l1 + l2) + 1 covers every
    theta frequency the projection needs, n_v > l1 + l2 + lmax_out every kept azimuthal one)."""

    def __init__(self, l1: int, l2: int, lo: int, dtype, device):
        U = l1 + l2
        self.n_u, self.n_v, self.lo = 2 * U + 1, max(U + lo + 1, 2 * max(l1, l2) + 1), lo
        t = functools.partial(torch.tensor, dtype=dtype, device=device)
        self.sh2f = [(t(T), torch.tensor(i, device=device)) for T, i in (self._sh2f(l1), self._sh2f(l2))]
        T, i = self._f2sh(lo, U)
        self.f2sh, self.out_pos = t(T), torch.tensor(i, device=device)

    @staticmethod
    def _gather(lmax: int) -> np.ndarray:
        """idx[v, s, l]: e3nn position of x[l, m = +-v] (s = 0: +v, 1: -v), or D (a zero slot)."""
        L, D = lmax + 1, (lmax + 1) ** 2
        idx = np.full((L, 2, L), D)
        for v in range(L):
            for l in range(v, L):
                idx[v, 0, l] = l * l + l + v
                if v:
                    idx[v, 1, l] = l * l + l - v
        return idx

    def _sh2f(self, lmax: int):
        """T[v, (s, l), (u mod n_u, re/im)] and the gather that builds the [v, (s, l)] input."""
        c, a, L, n = ref.legendre_fourier(lmax), ref.alpha_fourier(lmax), lmax + 1, self.n_u
        T: np.ndarray = np.zeros((L, 2, L, n), dtype=np.complex128)
        u = np.arange(-lmax, lmax + 1) % n
        for v in range(L):
            for s, m in enumerate((v, -v) if v else (0,)):
                T[v, s, v:, u] = (a[m + lmax, v + lmax] * c[v:, v]).T  # y^{lm}_{uv}, l >= v
        T = np.stack([T.real, T.imag], -1).reshape(L, 2 * L, 2 * n)
        return T, self._gather(lmax).reshape(L, 2 * L)

    def _f2sh(self, lo: int, U: int):
        """T[v, (u mod n_u, re/im), (s, l)] with out[l, m = +-v] = sum T * (Re F[v, u], Im F[v, u]),
        F[u, -v] = conj F[-u, v] folded in: Q(u) = P(u, v) + conj P(-u, -v), P = 2 pi a_{m,-v} J_u."""
        J, a, L, n = ref.theta_projection(lo, U), ref.alpha_fourier(lo), lo + 1, self.n_u
        u = np.arange(-U, U + 1)
        T = np.zeros((L, n, 2, 2, L))
        for v in range(L):
            for s, m in enumerate((v, -v) if v else (0,)):
                P = 2 * np.pi * a[m + lo, lo - v] * J[v:, v]  # [l, u]
                if v:
                    P = P + np.conj(2 * np.pi * a[m + lo, lo + v] * J[v:, v, ::-1])
                T[v, u % n, 0, s, v:] = P.real.T
                T[v, u % n, 1, s, v:] = -P.imag.T
        pos = self._gather(lo).reshape(-1)
        inv = np.zeros((L * L,), dtype=np.int64)
        inv[pos[pos < L * L]] = np.nonzero(pos < L * L)[0]
        return T.reshape(L, 2 * n, 2 * L), inv

    def to_fourier(self, x: torch.Tensor, which: int) -> torch.Tensor:
        T, idx = self.sh2f[which]
        xz = torch.cat([x, x.new_zeros(*x.shape[:-1], 1)], -1)
        S = torch.einsum("...vk,vkc->...vc", xz[..., idx], T)  # [..., v, 2 n_u]
        return torch.view_as_complex(S.unflatten(-1, (self.n_u, 2)))

    def product(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        s = (self.n_u, self.n_v)  # dims (u, v): v is the halved (real-FFT) one
        f1 = torch.fft.irfft2(self.to_fourier(x1, 0), s=s, dim=(-1, -2), norm="forward")
        f2 = torch.fft.irfft2(self.to_fourier(x2, 1), s=s, dim=(-1, -2), norm="forward")
        F = torch.fft.rfft2(f1 * f2, dim=(-1, -2), norm="forward")[..., : self.lo + 1, :]
        out = torch.einsum("...vk,vkc->...vc", torch.view_as_real(F).flatten(-2), self.f2sh)
        return out.flatten(-2)[..., self.out_pos]


@functools.lru_cache(maxsize=64)
def _fourier(l1: int, l2: int, lo: int, dtype, device) -> _Fourier:
    return _Fourier(l1, l2, lo, dtype, device)


@functools.lru_cache(maxsize=64)
def _grids(lmaxes: tuple, degree: int, dtype, device) -> tuple:
    """Grids for each lmax in ``lmaxes`` sharing one quadrature exact for integrands of ``degree``."""
    n_beta, n_alpha = degree // 2 + 1, degree + 1
    return tuple(_Grid(l, n_beta, n_alpha, dtype, device) for l in lmaxes)


@functools.lru_cache(maxsize=64)
def _plan(l1: int, l2: int, lo: int, method: str, dtype, device) -> Callable:
    """``(x1, x2) -> out`` for one shape and route, tables built once."""
    if method == "auto":
        method = "dense" if l1 + l2 + lo <= AUTO_DENSE_MAX_DEGREE else "grid"
    if method == "fourier":
        return _fourier(l1, l2, lo, dtype, device).product
    if method == "grid":
        return _GridProduct(l1, l2, lo, dtype, device)
    g1, g2, go = _grids((l1, l2, lo), l1 + l2 + lo, dtype, device)
    return lambda x1, x2: go.from_grid_dense(g1.to_grid_dense(x1) * g2.to_grid_dense(x2))


def _degree_weights(op: str, name: str, w: Optional[torch.Tensor], lmax: int, x: torch.Tensor):
    if w is None:
        return None
    check(isinstance(w, torch.Tensor) and w.shape[-1] == lmax + 1, op, name,
          f"must be a tensor whose last dim is lmax + 1 = {lmax + 1} (one weight per degree)")
    reps = torch.tensor([2 * l + 1 for l in range(lmax + 1)], device=w.device)
    return w.to(x.dtype).repeat_interleave(reps, dim=-1)


def _check_features(op: str, name: str, x) -> int:
    check(isinstance(x, torch.Tensor), op, name, f"must be a Tensor, got {type(x).__name__}", TypeError)
    check(x.dtype in DTYPES, op, name, f"must be float32 or float64, got {x.dtype}", TypeError)
    check(x.dim() >= 1, op, name, "must have a last dim of (lmax + 1)^2")
    lmax = lmax_of(x.shape[-1])
    check(lmax is not None, op, name, f"last dim must be (lmax + 1)^2 for some lmax, got {x.shape[-1]}")
    assert lmax is not None  # for the type checker: check() raised
    return lmax


def gaunt_tensor_product(x1: torch.Tensor, x2: torch.Tensor, lmax_out: Optional[int] = None, *,
                         weight1: Optional[torch.Tensor] = None, weight2: Optional[torch.Tensor] = None,
                         weight_out: Optional[torch.Tensor] = None, method: str = "auto",
                         plan: Optional[Callable] = None) -> torch.Tensor:
    """Gaunt tensor product of e3nn-ordered real SH features.

    x1 ``[..., C, (lmax1+1)^2]``, x2 ``[..., C or 1, (lmax2+1)^2]`` (broadcast like torch);
    ``lmax_out`` defaults to lmax1 + lmax2.  ``weight1``/``weight2``/``weight_out`` are
    per-degree weights ``[..., lmax + 1]`` broadcast over m (equivariant).  ``method``: "grid"
    (the fused kernel ``pyops::gaunt_grid_product``: Legendre sums, azimuthal convolution and
    projection per Gauss-Legendre node pair, O(L^3) per channel), "dense" (transforms to the full
    grid as one matmul each, O(L^4) but BLAS-bound), "fourier" (the paper's 2D Fourier route:
    sh2f, FFT convolution, f2sh, O(L^3)) or "auto": dense while lmax1 + lmax2 + lmax_out <=
    ``AUTO_DENSE_MAX_DEGREE`` (6), grid above (measured on CPU).  All are exact (float64 tables
    from closed forms).
    ``plan``: the route with its tables prepared ahead by ``_plan`` (what :class:`GauntTensorProduct`
    passes, so that ``torch.compile`` never traces the table construction).
    """
    op = "gaunt.gaunt_tensor_product"
    l1 = _check_features(op, "x1", x1)
    l2 = _check_features(op, "x2", x2)
    check(x1.dtype == x2.dtype, op, "x2", f"must have the dtype of x1 ({x1.dtype}), got {x2.dtype}", TypeError)
    check(x1.device == x2.device, op, "x2", f"must be on x1's device ({x1.device}), got {x2.device}")
    check(method in METHODS, op, "method", f"must be one of {METHODS}, got {method!r}")
    try:
        torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    except RuntimeError:
        check(False, op, "x2", f"batch/channel dims {tuple(x2.shape[:-1])} do not broadcast with x1's "
              f"{tuple(x1.shape[:-1])}")
    lo = l1 + l2 if lmax_out is None else lmax_out
    check(isinstance(lo, int) and 0 <= lo <= l1 + l2, op, "lmax_out", f"must be in [0, {l1 + l2}], got {lmax_out}")
    w1 = _degree_weights(op, "weight1", weight1, l1, x1)
    w2 = _degree_weights(op, "weight2", weight2, l2, x2)
    wo = _degree_weights(op, "weight_out", weight_out, lo, x1)
    if w1 is not None:
        x1 = x1 * w1
    if w2 is not None:
        x2 = x2 * w2
    batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    if math.prod(batch) == 0:  # empty in, empty out (the routes' reshapes and FFTs need rows); kept in the graph
        return x1.new_zeros(*batch, (lo + 1) ** 2) + 0 * (x1.sum() + x2.sum())
    if plan is None:
        plan = _plan(l1, l2, lo, method, x1.dtype, x1.device)
    out = plan(x1, x2)
    return out if wo is None else out * wo


def gaunt_power(x: torch.Tensor, nu: int, lmax_out: Optional[int] = None, *,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Many-body products ``sum_{n=1..nu} weights[..., n-1, l] * (x^n)_l`` (MACE-style), x^n being
    the n-fold Gaunt product (exact, not truncated between products), each x^n = x^(n-1) x one
    call of the fused grid kernel ``pyops::gaunt_grid_product``.
    ``weights`` ``[..., nu, lmax_out + 1]`` (default: all ones)."""
    op = "gaunt.gaunt_power"
    l1 = _check_features(op, "x", x)
    check(isinstance(nu, int) and 1 <= nu <= 8, op, "nu", f"must be an int in [1, 8], got {nu}")
    lo = l1 if lmax_out is None else lmax_out
    check(isinstance(lo, int) and 0 <= lo <= nu * l1, op, "lmax_out", f"must be in [0, {nu * l1}], got {lmax_out}")
    if weights is not None:
        check(isinstance(weights, torch.Tensor) and weights.shape[-2:] == (nu, lo + 1), op, "weights",
              f"must have trailing shape ({nu}, {lo + 1})")
    # x^n = x^(n-1) x by the fused grid kernel, each power kept exactly to the degree the later
    # products and the output still need: deg[n] = min(n l1, max(lo, deg[n + 1] + l1)).
    deg = [lo] * (nu + 1)
    for n in range(nu - 1, 0, -1):
        deg[n] = min(n * l1, max(lo, deg[n + 1] + l1))
    deg[1] = l1
    power, out = x, None
    for n in range(1, nu + 1):
        if n > 1:
            power = _plan(deg[n - 1], l1, deg[n], "grid", x.dtype, x.device)(power, x)
        d = power.shape[-1]  # the projection onto degrees <= lo: truncate or zero-pad
        term = power[..., : (lo + 1) ** 2] if d >= (lo + 1) ** 2 else \
            torch.nn.functional.pad(power, (0, (lo + 1) ** 2 - d))
        if weights is not None:
            term = term * _degree_weights(op, "weights", weights[..., n - 1, :], lo, x)
        out = term if out is None else out + term
    assert out is not None  # nu >= 1
    return out


_IRREP = re.compile(r"^\s*(?:(\d+)x)?(\d+)([eo])\s*$")


def _parse_irreps(op: str, name: str, irreps: str) -> int:
    """lmax of an SH-like irreps string "0e + 1o + 2e" (multiplicity 1, parity (-1)^l, consecutive l)."""
    ls = []
    for part in irreps.split("+"):
        m = _IRREP.match(part)
        check(m is not None, op, name, f"cannot parse {part!r} in {irreps!r}")
        assert m is not None  # for the type checker: check() raised
        mul, l, p = int(m.group(1) or 1), int(m.group(2)), m.group(3)
        check(mul == 1, op, name, f"multiplicities must be 1 (channels go in a separate dim), got {part!r}")
        check(p == ("e" if l % 2 == 0 else "o"), op, name,
              f"{part!r}: Gaunt products act on spherical-harmonic-like irreps with parity (-1)^l")
        ls.append(l)
    check(ls == list(range(len(ls))), op, name, f"degrees must be 0, 1, ..., lmax in order, got {irreps!r}")
    return len(ls) - 1


def _irreps(lmax: int) -> str:
    return "+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1))


class GauntTensorProduct(nn.Module):
    """e3nn-style module: ``GauntTensorProduct("0e+1o+2e", "0e+1o", "0e+1o+2e+3o")``, features
    ``[..., C, dim]``, learnable per-degree weights on inputs and output (initialised to 1);
    ``method`` as in :func:`gaunt_tensor_product`."""

    def __init__(self, irreps_in1: str, irreps_in2: str, irreps_out: Optional[str] = None, channels: int = 1,
                 learnable: bool = True, method: str = "auto"):
        super().__init__()
        op = "GauntTensorProduct"
        check(method in METHODS, op, "method", f"must be one of {METHODS}, got {method!r}")
        self.lmax1 = _parse_irreps(op, "irreps_in1", irreps_in1)
        self.lmax2 = _parse_irreps(op, "irreps_in2", irreps_in2)
        self.lmax_out = (self.lmax1 + self.lmax2) if irreps_out is None else _parse_irreps(op, "irreps_out", irreps_out)
        check(self.lmax_out <= self.lmax1 + self.lmax2, op, "irreps_out", "degrees above lmax1 + lmax2 are zero")
        self.irreps_in1, self.irreps_in2, self.irreps_out = (_irreps(self.lmax1), _irreps(self.lmax2),
                                                             _irreps(self.lmax_out))
        make = (lambda n: nn.Parameter(torch.ones(channels, n))) if learnable else (lambda n: None)
        self.weight1, self.weight2, self.weight_out = make(self.lmax1 + 1), make(self.lmax2 + 1), make(self.lmax_out + 1)
        self.method = method
        self._key = (self.lmax1, self.lmax2, self.lmax_out, method)
        self._plans = {(torch.get_default_dtype(), torch.device("cpu")): _plan(*self._key, torch.get_default_dtype(),
                                                                                torch.device("cpu"))}

    def __getstate__(self):
        # the plans hold closures (not picklable); they are rebuilt on the first forward per dtype/device
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        return {**state, "_plans": {}}

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        key = (x1.dtype, x1.device)
        if key not in self._plans:  # built eagerly once per dtype/device, outside any compiled region
            self._plans[key] = _plan(*self._key, *key)
        return gaunt_tensor_product(x1, x2, self.lmax_out, weight1=self.weight1, weight2=self.weight2,
                                    weight_out=self.weight_out, plan=self._plans[key])

    def extra_repr(self) -> str:
        return f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}"
