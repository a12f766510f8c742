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
