"""gaunt Triton kernel: the grid product (pyops::gaunt_grid_product), the Gaunt product
of x1 and x2 by quadrature over the node pairs +-z_k of ``table``.

One program owns BLOCK_N rows and walks the table rows k.  At each node the azimuthal spectra
c_mu (mu = -lmax..lmax, c_-mu = conj c_mu) are built as [BLOCK_N, mu] register tiles, for +z and
-z at once (they differ only in the sign of the odd-(l+m) terms).  The product spectrum
d_nu = sum_mu c1_mu c2_(nu-mu) needs c2 shifted by nu, which registers cannot index, so c2 is
parked in a per-program global scratch and gathered back per nu; each d_nu is then projected
onto the outputs (l3, +-nu), l3 = nu..lmax_out, as one vector over l3.  Every loop is dynamic
(no unrolling in lmax), and a program touches only its own rows of ``out``, so it accumulates
the node sum there without atomics."""

import math

import torch
import triton
import triton.language as tl

from pyops.reference.gaunt import check_grid_product

# Register budget (scripts/triton_aot.py, sm_80 and sm_90): eight [BLOCK_N, P] spectrum tiles and the
# [BLOCK_N, PO] projections live in registers, so BLOCK_N * max(P1, P2, PO) <= _TILE_ELEMENTS; and an
# explicit register cap, without which ptxas trades a few bytes of spills for occupancy (4-12 B at 64-168
# registers, e.g. float64 at lmax 4, 4 -> 8 on sm_90).  With both, lmax 0..16 (and lmax_out up to
# 2 lmax + 2) allocate at most 128 registers and spill nothing.
_TILE_ELEMENTS = {torch.float32: 512, torch.float64: 256}
_MAXNREG = 128

_R = tl.constexpr(1 / math.sqrt(2))  # kernels may read only constexpr globals
_TWO_PI = tl.constexpr(2 * math.pi)
_TWO_SQRT2_PI = tl.constexpr(2 * math.sqrt(2) * math.pi)


@triton.jit
def _spectra(x_ptr, sn, sd, t_ptr, td, rows, L, P: tl.constexpr):
    """(Re, Im) of c_mu at +z and at -z as [BLOCK_N, P] tiles over mu = j - L (zero for j > 2L),
    from the table row t_ptr: c_mu = s_mu (a_mu - i a_-mu), a_m = sum_l x_lm p_l^|m|.  ``rows`` are
    clamped to the last row: no row mask (fewer predicates live across the loops)."""
    j = tl.arange(0, P)
    mu = tl.abs(j - L)
    zero = tl.zeros([rows.shape[0], P], dtype=x_ptr.dtype.element_ty)
    pr, pi, mr, mi = zero, zero, zero, zero
    xrow = x_ptr + rows[:, None] * sn
    for l in range(0, L + 1):
        ok = mu <= l
        ok_im = ok & (mu > 0)  # m = -mu exists only for mu > 0
        i_re, i_im = l * l + l + mu, l * l + l - mu  # positions of m = +mu, -mu
        a_re = tl.load(xrow + i_re[None, :] * sd, mask=ok[None, :], other=0.0) * \
            tl.load(t_ptr + i_re * td, mask=ok, other=0.0)[None, :]
        a_im = tl.load(xrow + i_im[None, :] * sd, mask=ok_im[None, :], other=0.0) * \
            tl.load(t_ptr + i_im * td, mask=ok_im, other=0.0)[None, :]
        odd = ((l + mu) % 2 == 1)[None, :]  # p_l^m(-z) = (-1)^(l+m) p_l^m(z)
        pr += a_re
        pi += a_im
        mr += tl.where(odd, -a_re, a_re)
        mi += tl.where(odd, -a_im, a_im)
    # constants multiply tensors (never where(c, scalar, scalar), which would round them to fp32)
    s = (mu > 0)[None, :]
    conj = (j < L)[None, :]  # mu < 0: c_mu = conj c_|mu|
    pr, mr = tl.where(s, pr * _R, pr), tl.where(s, mr * _R, mr)
    pi, mi = tl.where(conj, pi, -pi) * _R, tl.where(conj, mi, -mi) * _R  # zero at mu = 0 anyway
    return pr, pi, mr, mi


@triton.jit
def _project(out_ptr, rows, rmask, DO, t_ptr, td, m3, scale, v_even, v_odd, LO, PO: tl.constexpr):
    """out[rows, (l3, m3)] += scale * p_(l3, m3) * (v_even if l3 + m3 is even else v_odd), l3 = |m3|..LO;
    ``rows`` clamped to the last row, ``rmask`` the rows that exist (stored)."""
    l3 = tl.arange(0, PO)
    ok = (l3 >= tl.abs(m3)) & (l3 <= LO)
    pos = l3 * l3 + l3 + m3
    p = tl.load(t_ptr + pos * td, mask=ok, other=0.0) * scale
    v = tl.where(((l3 + m3) % 2 == 1)[None, :], v_odd[:, None], v_even[:, None]) * p[None, :]
    ptr = out_ptr + rows[:, None] * DO + pos[None, :]
    tl.store(ptr, tl.load(ptr, mask=ok[None, :], other=0.0) + v, mask=rmask[:, None] & ok[None, :])


# sizes and degrees stay runtime ints when equal to 1: a constexpr 1 would add compiled variants
# (loops of fixed trip count unrolled) for every degree-1 combination
@triton.jit(do_not_specialize=["N", "K", "L1", "L2", "LO", "NU", "DO"])
def _grid_product_kernel(x1_ptr, s1n, s1d, x2_ptr, s2n, s2d, t_ptr, tk, td, w_ptr, wk, out_ptr, scratch_ptr,
                         N, K, L1, L2, LO, NU, DO, BLOCK_N: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr,
                         PO: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    r = tl.arange(0, BLOCK_N)
    rows = pid * BLOCK_N + r
    rmask = rows < N
    rows_in = tl.minimum(rows, N - 1)  # rows past the end read the last row; their outputs are masked
    j1 = tl.arange(0, P1)
    # this program's scratch [4, P2, BLOCK_N] (rows fastest: coalesced): c2 re/im at +z, -z
    sc = scratch_ptr + pid * (4 * P2 * BLOCK_N) + r[:, None]
    sc_tile = sc + tl.arange(0, P2)[None, :] * BLOCK_N
    for k in range(K):
        tr = t_ptr + k * tk
        ap_r, ap_i, am_r, am_i = _spectra(x1_ptr, s1n, s1d, tr, td, rows_in, L1, P1)
        bp_r, bp_i, bm_r, bm_i = _spectra(x2_ptr, s2n, s2d, tr, td, rows_in, L2, P2)
        tl.debug_barrier()  # the previous node's gathers are done before the overwrite
        tl.store(sc_tile, bp_r)
        tl.store(sc_tile + P2 * BLOCK_N, bp_i)
        tl.store(sc_tile + 2 * P2 * BLOCK_N, bm_r)
        tl.store(sc_tile + 3 * P2 * BLOCK_N, bm_i)
        tl.debug_barrier()  # the gathers read other threads' stores
        w = tl.load(w_ptr + k * wk)
        for nu in range(NU + 1):
            j2 = nu - j1 + L1 + L2  # c2 at mu2 = nu - mu1, mu1 = j1 - L1
            ok = ((j2 >= 0) & (j2 <= 2 * L2))[None, :]
            g = sc + j2[None, :] * BLOCK_N
            cp_r = tl.load(g, mask=ok, other=0.0)
            cp_i = tl.load(g + P2 * BLOCK_N, mask=ok, other=0.0)
            cm_r = tl.load(g + 2 * P2 * BLOCK_N, mask=ok, other=0.0)
            cm_i = tl.load(g + 3 * P2 * BLOCK_N, mask=ok, other=0.0)
            dp_r = tl.sum(ap_r * cp_r - ap_i * cp_i, axis=1)
            dp_i = tl.sum(ap_r * cp_i + ap_i * cp_r, axis=1)
            dm_r = tl.sum(am_r * cm_r - am_i * cm_i, axis=1)
            dm_i = tl.sum(am_r * cm_i + am_i * cm_r, axis=1)
            # even-(l3+m3) outputs take H(+z) + H(-z), odd ones H(+z) - H(-z)
            _project(out_ptr, rows_in, rmask, DO, tr, td, nu, tl.where(nu > 0, w * _TWO_SQRT2_PI, w * _TWO_PI),
                     dp_r + dm_r, dp_r - dm_r, LO, PO)
            if nu > 0:
                _project(out_ptr, rows_in, rmask, DO, tr, td, -nu, -w * _TWO_SQRT2_PI, dp_i + dm_i, dp_i - dm_i, LO,
                         PO)


def grid_product(x1, x2, table, weights, lmax_out):
    l1, l2 = check_grid_product(x1, x2, table, weights, lmax_out)
    n, d_out = x1.shape[0], (lmax_out + 1) ** 2
    out = torch.zeros(n, d_out, dtype=x1.dtype, device=x1.device)
    if n == 0:
        return out
    p1, p2, po = (triton.next_power_of_2(v) for v in (2 * l1 + 1, 2 * l2 + 1, lmax_out + 1))
    block_n = max(1, min(32, _TILE_ELEMENTS[x1.dtype] // max(p1, p2, po)))
    grid = triton.cdiv(n, block_n)
    scratch = torch.empty(grid * 4 * p2 * block_n, dtype=x1.dtype, device=x1.device)
    _grid_product_kernel[(grid,)](x1, x1.stride(0), x1.stride(1), x2, x2.stride(0), x2.stride(1), table,
                                  table.stride(0), table.stride(1), weights, weights.stride(0), out, scratch, n,
                                  table.shape[0], l1, l2, lmax_out, min(lmax_out, l1 + l2), d_out, BLOCK_N=block_n,
                                  P1=p1, P2=p2, PO=po, maxnreg=_MAXNREG)
    return out
