"""pam Triton kernels: elementwise PAM ops and a tiled PAM matmul.

Bit patterns are handled as int64 holding the unsigned 32-bit value, so every
compare is a plain signed compare with no overflow (the same rule as
csrc/include/pyops/pam.h, written with selects).  float32 runs natively;
bfloat16 is widened to float32 (exact, see pyops/reference/pam.py); float64
goes through the PyTorch reference.
"""

import torch
import triton
import triton.language as tl

from pyops.reference import pam as ref

_BLOCK = 1024


@triton.jit
def _bits(x):
    return x.to(tl.int32, bitcast=True).to(tl.int64) & 0xFFFFFFFF


@triton.jit
def _value(u):
    return u.to(tl.int32).to(tl.float32, bitcast=True)


@triton.jit
def _saturating_sub(s, sub, sign):
    sub = sub.to(tl.int64)  # a 32-bit scalar argument would overflow below
    r = tl.where(s >= sub + 0x7F800000, 0x7F800000, s - sub)
    return sign | tl.where(s < sub + 0x00800000, 0, r)


@triton.jit
def _mul_bits(ua, ub, bias):
    sign = (ua ^ ub) & 0x80000000
    ma = ua & 0x7FFFFFFF
    mb = ub & 0x7FFFFFFF
    zero = ((ma >> 23) == 0) | ((mb >> 23) == 0)
    special = ((ma >> 23) == 0xFF) | ((mb >> 23) == 0xFF)
    r = _saturating_sub(ma + mb, bias, sign)
    r = tl.where(zero, sign, r)
    r = tl.where(special, tl.where(zero, 0x7FC00000, sign | 0x7F800000), r)
    return tl.where((ma > 0x7F800000) | (mb > 0x7F800000), 0x7FC00000, r)


@triton.jit
def _mul_kernel(a_ptr, b_ptr, o_ptr, n, bias, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # int64: n may pass 2^31
    m = offs < n
    ua = _bits(tl.load(a_ptr + offs, mask=m, other=0.0))
    ub = _bits(tl.load(b_ptr + offs, mask=m, other=0.0))
    tl.store(o_ptr + offs, _value(_mul_bits(ua, ub, bias)), mask=m)


@triton.jit
def _div_kernel(a_ptr, b_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # int64: n may pass 2^31
    m = offs < n
    ua = _bits(tl.load(a_ptr + offs, mask=m, other=0.0))
    ub = _bits(tl.load(b_ptr + offs, mask=m, other=1.0))
    sign = (ua ^ ub) & 0x80000000
    ma = ua & 0x7FFFFFFF
    mb = ub & 0x7FFFFFFF
    ea = ma >> 23
    eb = mb >> 23
    r = _saturating_sub(ma + 0x3F800000, mb, sign)
    r = tl.where(ea == 0, sign, r)
    r = tl.where(eb == 0, tl.where(ea == 0, 0x7FC00000, sign | 0x7F800000), r)
    r = tl.where(eb == 0xFF, sign, r)
    r = tl.where(ea == 0xFF, tl.where(eb == 0xFF, 0x7FC00000, sign | 0x7F800000), r)
    r = tl.where((ma > 0x7F800000) | (mb > 0x7F800000), 0x7FC00000, r)
    tl.store(o_ptr + offs, _value(r), mask=m)


@triton.jit
def _exp2_kernel(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # int64: n may pass 2^31
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    nf = tl.floor(x)
    nf = tl.where((nf >= -126.0) & (nf <= 127.0), nf, 0.0)  # out-of-range x is decided below
    s = _bits(1.0 + (x - nf)) + (nf.to(tl.int64) << 23)
    s = tl.where(s < 0x00800000, 0, tl.where(s >= 0x7F800000, 0x7F800000, s))
    out = _value(s)
    out = tl.where(x >= 128.0, float("inf"), out)
    out = tl.where(x < -126.0, 0.0, out)
    tl.store(o_ptr + offs, tl.where(x != x, x, out), mask=m)


@triton.jit
def _log2_kernel(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # int64: n may pass 2^31
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=1.0).to(tl.float32)
    u = _bits(x)
    mag = u & 0x7FFFFFFF
    e = mag >> 23
    one_plus_frac = _value((mag & 0x7FFFFF) | 0x3F800000)
    out = (one_plus_frac - 1.0) + (e - 127).to(tl.float32)
    neg = (u >> 31) != 0
    out = tl.where(neg, float("nan"), out)
    out = tl.where(e == 0, float("-inf"), out)
    out = tl.where((mag == 0x7F800000) & ~neg, x, out)
    tl.store(o_ptr + offs, tl.where(x != x, x, out), mask=m)


@triton.jit
def _grad_factor_bits(ua, ub, bias):
    """d PAM(a, b) / da = sign(b) 2^(E(PAM(a, b)) - E(a)), as bits (see pam.h); a zero or denormal a
    stands in as 1.0 (the factor of any power-of-two a) when b is normal."""
    ea = (ua >> 23) & 0xFF
    eb = (ub >> 23) & 0xFF
    one = (ea == 0) & (eb != 0)
    ua = tl.where(one, 0x3F800000, ua)
    ea = tl.where(one, 127, ea)
    eo = (_mul_bits(ua, ub, bias) >> 23) & 0xFF
    e = eo - ea + 127
    mag = tl.where(e < 1, 0, tl.where(e >= 255, 0x7F800000, e << 23))
    r = (ub & 0x80000000) | mag
    r = tl.where((ea == 0) | (eb == 0) | (eo == 0) | (eo == 0xFF), 0, r)
    return tl.where((ea == 0xFF) | (eb == 0xFF), 0x7FC00000, r)


@triton.jit
def _grad_factor_kernel(a_ptr, b_ptr, o_ptr, n, bias, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # int64: n may pass 2^31
    m = offs < n
    ua = _bits(tl.load(a_ptr + offs, mask=m, other=0.0))
    ub = _bits(tl.load(b_ptr + offs, mask=m, other=0.0))
    tl.store(o_ptr + offs, _value(_grad_factor_bits(ua, ub, bias)), mask=m)


@triton.jit
def _exact_grad_kernel(g_ptr, p_ptr, q_ptr, out_ptr, R, P, Q, bias,
                       sgb, sgr, sgq, spb, spr, spp, sqb, sqp, sqq, sob, sor, sop,
                       BR: tl.constexpr, BP: tl.constexpr, BQ: tl.constexpr):
    """out[r, p] = sum_q PAM(g[r, q], d PAM(pv[r, p], qv[p, q]) / d pv), one batch per program row.
    dA: (r, p, q) = (i, k, j), pv = A, qv = B.  dB: (r, p, q) = (j, k, i), pv = B^T, qv = A^T,
    every operand read transposed through its strides."""
    pid_r, pid_p, batch = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rr = pid_r * BR + tl.arange(0, BR)
    rp = pid_p * BP + tl.arange(0, BP)
    rq = tl.arange(0, BQ)
    pv = tl.load(p_ptr + batch * spb + rr[:, None] * spr + rp[None, :] * spp,
                 mask=(rr[:, None] < R) & (rp[None, :] < P), other=0.0)
    acc = tl.zeros((BR, BP), dtype=tl.float32)
    for q0 in range(0, Q, BQ):
        qs = q0 + rq
        qv = tl.load(q_ptr + batch * sqb + rp[:, None] * sqp + qs[None, :] * sqq,
                     mask=(rp[:, None] < P) & (qs[None, :] < Q), other=0.0)
        g = tl.load(g_ptr + batch * sgb + rr[:, None] * sgr + qs[None, :] * sgq,
                    mask=(rr[:, None] < R) & (qs[None, :] < Q), other=0.0)
        factor = _grad_factor_bits(_bits(pv)[:, :, None], _bits(qv)[None, :, :], bias)  # [BR, BP, BQ]
        # the factor is a power of two: PAM with it (bias of 1.0) is an exact scaling
        one = tl.full([], 0x3F800000, tl.int64)
        acc += tl.sum(_value(_mul_bits(_bits(g)[:, None, :], factor, one)), axis=2)
    tl.store(out_ptr + batch * sob + rr[:, None] * sor + rp[None, :] * sop, acc,
             mask=(rr[:, None] < R) & (rp[None, :] < P))


@triton.jit
def _bmm_kernel(a_ptr, b_ptr, c_ptr, M, N, K, bias,
                sab, sam, sak, sbb, sbk, sbn, scb, scm, scn,
                BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid_m, pid_n, batch = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        ks = k0 + rk
        a = tl.load(a_ptr + batch * sab + rm[:, None] * sam + ks[None, :] * sak,
                    mask=(rm[:, None] < M) & (ks[None, :] < K), other=0.0)
        b = tl.load(b_ptr + batch * sbb + ks[:, None] * sbk + rn[None, :] * sbn,
                    mask=(ks[:, None] < K) & (rn[None, :] < N), other=0.0)
        # zero padding contributes +0: PAM with a zero operand is a signed zero
        p = _mul_bits(_bits(a)[:, :, None], _bits(b)[None, :, :], bias)
        acc += tl.sum(_value(p), axis=1)
    tl.store(c_ptr + batch * scb + rm[:, None] * scm + rn[None, :] * scn, acc,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


def _bias(offset: float, dtype: torch.dtype) -> int:
    return ref._bias(ref._round_offset(offset, dtype), torch.float32)


def _binary(kernel, a, b, *extra):
    shape = torch.broadcast_shapes(a.shape, b.shape)
    a32 = a.to(torch.float32).expand(shape).contiguous()
    b32 = b.to(torch.float32).expand(shape).contiguous()
    out = torch.empty(shape, dtype=torch.float32, device=a.device)
    n = out.numel()
    if n:
        kernel[(triton.cdiv(n, _BLOCK),)](a32, b32, out, n, *extra, BLOCK=_BLOCK)
    return out.to(a.dtype)


def _unary(kernel, x):
    x32 = x.to(torch.float32).contiguous()
    out = torch.empty_like(x32)
    n = out.numel()
    if n:
        kernel[(triton.cdiv(n, _BLOCK),)](x32, out, n, BLOCK=_BLOCK)
    return out.to(x.dtype)


def mul(a, b, offset=1.0, exact_grad=False):
    ref.check_mul(a, b, offset)
    if a.dtype == torch.float64:
        return ref.mul(a, b, offset)
    return _binary(_mul_kernel, a, b, _bias(offset, a.dtype))


def div(a, b):
    ref.check_div(a, b)
    if a.dtype == torch.float64:
        return ref.div(a, b)
    return _binary(_div_kernel, a, b)


def mul_grad_factor(a, b, offset=1.0):
    ref.check_mul_grad_factor(a, b, offset)
    if a.dtype == torch.float64:
        return ref.mul_grad_factor(a, b, offset)
    return _binary(_grad_factor_kernel, a, b, _bias(offset, a.dtype))


def exp2(x):
    ref.check_exp2(x)
    return ref.exp2(x) if x.dtype == torch.float64 else _unary(_exp2_kernel, x)


def log2(x):
    ref.check_log2(x)
    return ref.log2(x) if x.dtype == torch.float64 else _unary(_log2_kernel, x)


def bmm_exact_grad(grad, a, b, offset=1.0, BR=8, BP=16, BQ=8):
    # [BR, BP, BQ] int64 factor tiles: BR = 16 spills on sm_90 (scripts/triton_aot.py); 8 does not
    ref.check_bmm_exact_grad(grad, a, b, offset)
    if a.dtype == torch.float64:
        return ref.bmm_exact_grad(grad, a, b, offset)
    g32, a32, b32 = grad.to(torch.float32), a.to(torch.float32), b.to(torch.float32)
    batch, M, K = a32.shape
    N = b32.shape[2]
    ga = torch.zeros_like(a32)
    gb = torch.zeros_like(b32)
    bias = _bias(offset, a.dtype)
    if ga.numel() and N:  # dA[i, k] = sum_j PAM(g[i, j], dPAM(A[i, k], B[k, j]) / dA)
        _exact_grad_kernel[(triton.cdiv(M, BR), triton.cdiv(K, BP), batch)](
            g32, a32, b32, ga, M, K, N, bias, *g32.stride(), *a32.stride(), *b32.stride(), *ga.stride(),
            BR=BR, BP=BP, BQ=BQ)
    if gb.numel() and M:  # dB^T[j, k] = sum_i PAM(g^T[j, i], dPAM(B^T[j, k], A^T[k, i]) / dB)
        gbt = gb.transpose(1, 2)
        gt, bt, at = g32.transpose(1, 2), b32.transpose(1, 2), a32.transpose(1, 2)
        _exact_grad_kernel[(triton.cdiv(N, BR), triton.cdiv(K, BP), batch)](
            gt, bt, at, gbt, N, K, M, bias, *gt.stride(), *bt.stride(), *at.stride(), *gbt.stride(),
            BR=BR, BP=BP, BQ=BQ)
    return ga.to(a.dtype), gb.to(b.dtype)


def bmm(a, b, offset=1.0, exact_grad=False, BM=32, BN=32, BK=8):
    ref.check_bmm(a, b, offset)
    if a.dtype == torch.float64:
        return ref.bmm(a, b, offset)
    a32, b32 = a.to(torch.float32), b.to(torch.float32)
    batch, M, K = a32.shape
    N = b32.shape[2]
    c = torch.zeros(batch, M, N, dtype=torch.float32, device=a.device)
    if c.numel() and K:
        grid = (triton.cdiv(M, BM), triton.cdiv(N, BN), batch)
        _bmm_kernel[grid](a32, b32, c, M, N, K, _bias(offset, a.dtype), *a32.stride(), *b32.stride(), *c.stride(),
                          BM=BM, BN=BN, BK=BK)
    return c.to(a.dtype)
