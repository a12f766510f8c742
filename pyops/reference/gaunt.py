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


# ------------------------------------------------------- the azimuthal product (pyops::gaunt_azimuthal)
def azimuthal_rule(lmax1: int, lmax2: int, lmax_out: int) -> tuple:
    """Triples (io, i1, i2, coef) with coef = int_0^2pi A_m1 A_m2 A_m3 d alpha != 0, io = m3 + lmax_out,
    i1 = m1 + lmax1, i2 = m2 + lmax2, sorted by io; float64.  A uniform rule with more points than
    the integrand's degree is exact; the nonzero values are >= pi / sqrt 2."""
    n = lmax1 + lmax2 + lmax_out + 1
    alpha = 2 * np.pi * np.arange(n) / n
    a1, a2, a3 = (alpha_part(l, alpha) for l in (lmax1, lmax2, lmax_out))
    c = np.einsum("aj,bj,cj->cab", a1, a2, a3) * (2 * np.pi / n)
    io, i1, i2 = np.nonzero(np.abs(c) > 1e-6)  # row-major: sorted by the output row
    return io, i1, i2, c[io, i1, i2]


def _check_index(t: torch.Tensor, name: str, n: int, bound: int) -> None:
    if t.dtype != torch.int64 or t.dim() != 1 or t.numel() != n:
        raise ValueError(f"pyops.gaunt_azimuthal: argument '{name}' must be a 1-D int64 tensor with one entry "
                         f"per triple ({n})")
    if n and (int(t.min()) < 0 or int(t.max()) >= bound):
        raise ValueError(f"pyops.gaunt_azimuthal: argument '{name}' has entries outside [0, {bound})")


def check_azimuthal(a, b, io, ia, ib, coef, n_out) -> None:
    """The argument checks of csrc/cpu/gaunt_args.h, for the reference and the Triton launcher."""
    if a.dtype not in (torch.float32, torch.float64) or b.dtype != a.dtype or coef.dtype != a.dtype:
        raise TypeError("pyops.gaunt_azimuthal: arguments 'a', 'b' and 'coef' must share a float32/float64 dtype")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"pyops.gaunt_azimuthal: arguments 'a' and 'b' must be 2-D with equal row lengths, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if n_out < 0:
        raise ValueError(f"pyops.gaunt_azimuthal: argument 'n_out' must be >= 0, got {n_out}")
    n = coef.numel()
    _check_index(io, "io", n, n_out)
    _check_index(ia, "ia", n, a.shape[0])
    _check_index(ib, "ib", n, b.shape[0])


def azimuthal(a: torch.Tensor, b: torch.Tensor, io: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor,
              coef: torch.Tensor, n_out: int) -> torch.Tensor:
    """out[io[t], r] += coef[t] a[ia[t], r] b[ib[t], r] over all triples t (pyops::gaunt_azimuthal)."""
    check_azimuthal(a, b, io, ia, ib, coef, n_out)
    out = a.new_zeros(n_out, a.shape[1])
    for s in range(0, io.numel(), 256):  # bounded temporaries
        t = slice(s, s + 256)
        out.index_add_(0, io[t], coef[t, None] * a[ia[t]] * b[ib[t]])
    return out
