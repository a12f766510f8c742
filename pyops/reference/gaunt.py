"""gaunt in float64 PyTorch: real spherical harmonics in e3nn's convention and
the direct Gaunt contraction that every route is tested against.

e3nn's real SH (integral normalisation): polar axis y, beta = acos(y),
alpha = atan2(x, z);  Y_lm = p_l^|m|(cos beta) * A_m(alpha) with
A_m = sqrt2 sin(|m| alpha) (m < 0), 1 (m = 0), sqrt2 cos(m alpha) (m > 0), and
p the fully normalised associated Legendre functions (2 pi int p^2 dz = 1).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def legendre(lmax: int, z: np.ndarray) -> np.ndarray:
    """p[l, m, k] = normalised associated Legendre p_l^m(z_k), 0 <= m <= l <= lmax, float64,
    by the standard stable recurrences (no Condon-Shortley phase: e3nn's sign)."""
    z = np.asarray(z, dtype=np.float64)
    s = np.sqrt(np.clip(1 - z * z, 0, None))
    p = np.zeros((lmax + 1, lmax + 1, z.size))
    p[0, 0] = math.sqrt(1 / (4 * math.pi))
    for m in range(1, lmax + 1):
        p[m, m] = math.sqrt((2 * m + 1) / (2 * m)) * s * p[m - 1, m - 1]
    for m in range(0, lmax):
        p[m + 1, m] = math.sqrt(2 * m + 3) * z * p[m, m]
    for m in range(0, lmax + 1):
        for l in range(m + 2, lmax + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            p[l, m] = a * (z * p[l - 1, m] - b * p[l - 2, m])
    return p


def alpha_part(lmax: int, alpha: np.ndarray) -> np.ndarray:
    """A[m + lmax, j] for m in -lmax..lmax."""
    m = np.arange(-lmax, lmax + 1)[:, None]
    a = np.asarray(alpha, dtype=np.float64)[None, :]
    return np.where(m < 0, math.sqrt(2) * np.sin(-m * a), np.where(m == 0, 1.0, math.sqrt(2) * np.cos(m * a)))


def spherical_harmonics(lmax: int, xyz: torch.Tensor) -> torch.Tensor:
    """[..., (lmax+1)^2] real SH of unit vectors in e3nn's order and integral normalisation."""
    v = xyz.double().reshape(-1, 3).numpy()
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    beta = np.arccos(np.clip(v[:, 1], -1, 1))
    alpha = np.arctan2(v[:, 0], v[:, 2])
    p = legendre(lmax, np.cos(beta))
    a = alpha_part(lmax, alpha)
    cols = [p[l, abs(m)] * a[m + lmax] for l in range(lmax + 1) for m in range(-l, l + 1)]
    return torch.from_numpy(np.stack(cols, -1)).reshape(*xyz.shape[:-1], (lmax + 1) ** 2)


@functools.lru_cache(maxsize=None)
def gaunt_tensor(lmax1: int, lmax2: int, lmax_out: int) -> torch.Tensor:
    """G[i, j, k] = integral Y_i Y_j Y_k over the sphere, by exact quadrature (float64)."""
    n_beta = (lmax1 + lmax2 + lmax_out) // 2 + 1
    n_alpha = lmax1 + lmax2 + lmax_out + 1
    z, w = np.polynomial.legendre.leggauss(n_beta)
    alpha = 2 * math.pi * np.arange(n_alpha) / n_alpha
    beta = np.arccos(z)
    bb, aa = np.meshgrid(beta, alpha, indexing="ij")
    xyz = np.stack([np.sin(bb) * np.sin(aa), np.cos(bb), np.sin(bb) * np.cos(aa)], -1).reshape(-1, 3)
    lmax = max(lmax1, lmax2, lmax_out)
    y = spherical_harmonics(lmax, torch.from_numpy(xyz))  # [grid, D]
    weights = torch.from_numpy(np.repeat(w, n_alpha) * 2 * math.pi / n_alpha)
    d1, d2, d3 = (lmax1 + 1) ** 2, (lmax2 + 1) ** 2, (lmax_out + 1) ** 2
    return torch.einsum("g,gi,gj,gk->ijk", weights, y[:, :d1], y[:, :d2], y[:, :d3])


def direct(x1: torch.Tensor, x2: torch.Tensor, lmax_out: int) -> torch.Tensor:
    """out[..., k] = sum_ij G[i, j, k] x1[..., i] x2[..., j] in float64."""
    l1, l2 = int(math.isqrt(x1.shape[-1])) - 1, int(math.isqrt(x2.shape[-1])) - 1
    g = gaunt_tensor(l1, l2, lmax_out)
    return torch.einsum("...i,...j,ijk->...k", x1.double(), x2.double(), g)


# ----------------------------------------------------------------- Fourier route tables
# With theta extended to [0, 2 pi) through the signed sin(theta) (p_l^m = sin^m * poly(cos)),
# p_l^m(cos theta) is a trig polynomial of degree l, and A_m(alpha) has frequencies +-m only,
# so Y_lm = sum_{|u|<=l, v=+-m} y^{lm}_{uv} e^{i(u theta + v alpha)}.


def legendre_fourier(lmax: int) -> np.ndarray:
    """c[l, m, u + lmax] (complex128) with p_l^m(cos t) = sum_u c e^{iut} on t in [0, 2 pi),
    0 <= m <= l <= lmax.  The DFT of n >= 2 lmax + 1 uniform samples of a degree-lmax trig
    polynomial is exactly its coefficient vector, so this is exact up to float64 rounding.
    Real and even in u for even m, imaginary and odd for odd m; zero unless u = l (mod 2)."""
    n = 2 * lmax + 2
    t = 2 * np.pi * np.arange(n) / n
    p = legendre(lmax, np.cos(t))  # |sin t| inside: restore the sign of sin^m on (pi, 2 pi)
    m = np.arange(lmax + 1)[None, :, None]
    p = p * np.where((np.sin(t) < 0)[None, None, :] & (m % 2 == 1), -1.0, 1.0)
    c = np.fft.fft(p, axis=-1) / n  # c[..., u mod n]
    u = np.arange(-lmax, lmax + 1)
    c = c[..., u % n]
    # the structure is exact (p(t + pi) = (-1)^l p(t); p even/odd in t for even/odd m): drop the DFT's
    # ~1e-17 rounding where it must vanish
    l = np.arange(lmax + 1)[:, None, None]
    c = np.where((u[None, None, :] - l) % 2 == 0, c, 0)
    return np.where(m % 2 == 0, c.real, 1j * c.imag)


def sin_integral(n: np.ndarray) -> np.ndarray:
    """I(n) = int_0^pi e^{i n t} sin t dt = (1 + e^{i pi n}) / (1 - n^2), I(+-1) = +-i pi / 2."""
    n = np.asarray(n)
    out = np.where(n % 2 == 0, 2.0 / (1.0 - n.astype(np.float64) ** 2 + (n % 2)), 0.0).astype(np.complex128)
    return np.where(np.abs(n) == 1, 1j * np.pi / 2 * np.sign(n), out)


def theta_projection(lmax: int, umax: int) -> np.ndarray:
    """J[l, m, u + umax] = sum_u' c[l, m, u'] I(u + u'): int_0^pi e^{iut} p_l^m(cos t) sin t dt,
    for |u| <= umax, the theta half of the f2sh projection."""
    c = legendre_fourier(lmax)
    u = np.arange(-umax, umax + 1)[:, None] + np.arange(-lmax, lmax + 1)[None, :]
    return np.einsum("lmw,uw->lmu", c, sin_integral(u))


def alpha_fourier(lmax: int) -> np.ndarray:
    """a[m + lmax, v + lmax] (complex128): A_m(alpha) = sum_v a e^{iv alpha}, nonzero for v = +-m."""
    a = np.zeros((2 * lmax + 1, 2 * lmax + 1), dtype=np.complex128)
    r = math.sqrt(2) / 2
    a[lmax, lmax] = 1
    for m in range(1, lmax + 1):
        a[lmax + m, lmax + m] = a[lmax + m, lmax - m] = r  # sqrt2 cos(m alpha)
        a[lmax - m, lmax + m], a[lmax - m, lmax - m] = -1j * r, 1j * r  # sqrt2 sin(m alpha)
    return a


def sh2f_table(lmax: int) -> np.ndarray:
    """Y[(l, m) in e3nn order, u + lmax, v + lmax] = y^{lm}_{uv} (complex128), dense."""
    c, a = legendre_fourier(lmax), alpha_fourier(lmax)
    return np.stack([np.outer(c[l, abs(m)], a[m + lmax]) for l in range(lmax + 1) for m in range(-l, l + 1)])


def f2sh_table(lmax: int, umax: int, vmax: int) -> np.ndarray:
    """P[(l, m), u + umax, v + vmax] = 2 pi sum_u' y^{lm}_{u', -v} I(u + u') (complex128):
    out[lm] = Re sum_uv F[u, v] P[lm, u, v] is the projection of sum F e^{i(ut + va)} onto Y_lm."""
    J, a = theta_projection(lmax, umax), alpha_fourier(max(lmax, vmax))
    L = max(lmax, vmax)
    v = np.arange(-vmax, vmax + 1)
    return np.stack([2 * np.pi * np.outer(J[l, abs(m)], a[m + L, L - v]) for l in range(lmax + 1)
                     for m in range(-l, l + 1)])


def fourier(x1: torch.Tensor, x2: torch.Tensor, lmax_out: int) -> torch.Tensor:
    """The Fourier route in plain float64/complex128 (dense tables, full 2D FFTs): sh2f,
    linear 2D convolution by zero-padded FFT, f2sh.  The oracle of the fast "fourier" method."""
    l1, l2 = int(math.isqrt(x1.shape[-1])) - 1, int(math.isqrt(x2.shape[-1])) - 1
    U = l1 + l2
    n = 2 * U + 1
    f1 = torch.einsum("...i,iuv->...uv", x1.double().to(torch.complex128), torch.from_numpy(sh2f_table(l1)))
    f2 = torch.einsum("...i,iuv->...uv", x2.double().to(torch.complex128), torch.from_numpy(sh2f_table(l2)))
    prod = torch.fft.ifft2(torch.fft.fft2(f1, s=(n, n)) * torch.fft.fft2(f2, s=(n, n)))  # index u + l1 + l2
    P = torch.from_numpy(f2sh_table(lmax_out, U, U))
    return torch.einsum("...uv,iuv->...i", prod, P).real


# ------------------------------------------------ the grid product (pyops::gaunt_grid_product)
# At a node z the degree-lmax feature is f(alpha) = sum_m a_m A_m(alpha), a_m = sum_l x_lm p_l^|m|(z),
# i.e. the real trig polynomial sum_{|mu| <= lmax} c_mu e^{i mu alpha} with c_0 = a_0,
# c_mu = (a_mu - i a_-mu) / sqrt2 and c_-mu = conj c_mu.  A product's spectrum is the convolution
# d_nu = sum_mu c1_mu c2_(nu - mu); projecting it onto A_m3 integrates to 2 pi d_0 (m3 = 0),
# 2 sqrt2 pi Re d_nu (m3 = nu > 0) and -2 sqrt2 pi Im d_nu (m3 = -nu).  p_l^m(-z) = (-1)^(l+m) p_l^m(z),
# so each table row serves the node pair +-z: the even-(l+m) and odd-(l+m) partial sums give both.


def grid_nodes(degree: int) -> tuple:
    """(z, w): the Gauss-Legendre nodes z >= 0 of the rule exact for polynomials of ``degree``
    (ascending) and their weights, the node z = 0 (odd node counts) at half weight because every
    node stands for the pair +-z."""
    n = degree // 2 + 1
    z, w = np.polynomial.legendre.leggauss(n)
    z, w = z[n // 2:].copy(), w[n // 2:].copy()
    if n % 2:
        z[0], w[0] = 0.0, w[0] / 2
    return z, w


def grid_table(lmax: int, z: np.ndarray) -> np.ndarray:
    """T[k, i] = p_l^|m|(z_k) for e3nn position i = (l, m) (float64), the table of gaunt_grid_product."""
    p = legendre(lmax, z)
    return np.stack([p[l, abs(m)] for l in range(lmax + 1) for m in range(-l, l + 1)], -1)


def _positions(lmax: int) -> tuple:
    l = torch.tensor([l for l in range(lmax + 1) for m in range(-l, l + 1)])
    m = torch.tensor([m for l in range(lmax + 1) for m in range(-l, l + 1)])
    return l, m


def check_grid_product(x1, x2, table, weights, lmax_out) -> tuple:
    """The argument checks of csrc/cpu/gaunt_args.h, for the reference and the Triton launcher;
    returns (lmax1, lmax2)."""
    op = "pyops.gaunt_grid_product"
    if x1.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{op}: argument 'x1' must be float32 or float64, got {x1.dtype}")
    for name, t in (("x2", x2), ("table", table), ("weights", weights)):
        if t.dtype != x1.dtype:
            raise TypeError(f"{op}: argument '{name}' must have the dtype of 'x1' ({x1.dtype}), got {t.dtype}")
        if t.device != x1.device:
            raise ValueError(f"{op}: argument '{name}' must be on the device of 'x1' ({x1.device}), got {t.device}")
    lmax = []
    for name, t in (("x1", x1), ("x2", x2)):
        r = math.isqrt(t.shape[-1]) if t.dim() == 2 else 0
        if t.dim() != 2 or r * r != t.shape[1] or r == 0:
            raise ValueError(f"{op}: argument '{name}' must be [N, (lmax + 1)^2], got {tuple(t.shape)}")
        lmax.append(r - 1)
    if x2.shape[0] != x1.shape[0]:
        raise ValueError(f"{op}: argument 'x2' must have the rows of 'x1' ({x1.shape[0]}), got {x2.shape[0]}")
    if lmax_out < 0:
        raise ValueError(f"{op}: argument 'lmax_out' must be >= 0, got {lmax_out}")
    need = (max(lmax[0], lmax[1], lmax_out) + 1) ** 2
    if table.dim() != 2 or table.shape[1] < need:
        raise ValueError(f"{op}: argument 'table' must be [nodes, >= {need}], got {tuple(table.shape)}")
    if weights.dim() != 1 or weights.shape[0] != table.shape[0]:
        raise ValueError(f"{op}: argument 'weights' must be [nodes] = [{table.shape[0]}], got {tuple(weights.shape)}")
    return lmax[0], lmax[1]


def _spectra(x: torch.Tensor, table: torch.Tensor) -> tuple:
    """c(+z), c(-z) [N, nodes, 2 lmax + 1] complex, index mu + lmax."""
    lmax = math.isqrt(x.shape[-1]) - 1
    l, m = _positions(lmax)
    t = x[:, None, :] * table[None, :, : x.shape[-1]]  # [N, nodes, D]
    odd = ((l + m.abs()) % 2 == 1).to(x.device)
    s = torch.tensor([1 if v == 0 else (-1j if v < 0 else 1) * math.sqrt(0.5) for v in m.tolist()], dtype=torch.complex128)
    S = torch.zeros(x.shape[-1], lmax + 1, dtype=torch.complex128)
    S[torch.arange(x.shape[-1]), m.abs()] = s
    S = S.to(device=x.device, dtype=torch.complex64 if x.dtype == torch.float32 else torch.complex128)
    even_part, odd_part = (torch.where(odd, 0, t) + 0j) @ S, (torch.where(odd, t, 0) + 0j) @ S
    full = lambda c: torch.cat([c[..., 1:].conj().flip(-1), c], -1)  # noqa: E731  c_-mu = conj c_mu
    return full(even_part + odd_part), full(even_part - odd_part)


def grid_product(x1: torch.Tensor, x2: torch.Tensor, table: torch.Tensor, weights: torch.Tensor,
                 lmax_out: int) -> torch.Tensor:
    """out[n, i] = sum_k weights[k] sum_(z = +-z_k) table[k, i] * (x1 x2 at z projected on A_m3),
    i = (l3, m3) up to lmax_out: the Gaunt product by quadrature over the nodes of ``table``
    (exact when the rule is exact for degree lmax1 + lmax2 + lmax_out).  pyops::gaunt_grid_product."""
    l1, l2 = check_grid_product(x1, x2, table, weights, lmax_out)
    n, d_out = x1.shape[0], (lmax_out + 1) ** 2
    if n == 0:
        return x1.new_zeros(0, d_out)
    d = []
    for c1, c2 in zip(_spectra(x1, table), _spectra(x2, table)):
        acc = c1.new_zeros(n, table.shape[0], max(lmax_out + 1, l1 + l2 + 1))
        for j in range(2 * l1 + 1):  # d_nu for nu = mu1 + mu2 >= 0
            mu1 = j - l1
            lo_, hi = max(0, mu1 - l2), mu1 + l2 + 1  # nu range with mu2 = nu - mu1 in [-l2, l2]
            if hi > lo_:
                acc[..., lo_:hi] += c1[..., j, None] * c2[..., lo_ - mu1 + l2: hi - mu1 + l2]
        d.append(acc[..., : lmax_out + 1])
    l, m = _positions(lmax_out)
    g = torch.tensor([2 * math.pi if v == 0 else (1j if v < 0 else 1) * 2 * math.sqrt(2) * math.pi for v in m.tolist()],
                     dtype=torch.complex128)
    g = g.to(device=x1.device, dtype=d[0].dtype)
    odd = ((l + m.abs()) % 2 == 1).to(x1.device)
    dp, dm = d[0][..., m.abs()], d[1][..., m.abs()]  # [N, nodes, d_out]
    h = (torch.where(odd, dp - dm, dp + dm) * g).real
    return torch.einsum("nki,ki,k->ni", h, table[:, :d_out], weights)
