"""pam in pure PyTorch, through integer views of the float bit patterns.

The executable form of specs/pam.md and the oracle every backend is compared
with bit for bit.  float32 and float64 use their own layouts; bfloat16 runs the
float32 rule on widened values with a bf16-rounded offset (every PAM/PAD result
then has zero low 16 bits, so narrowing back is exact).
"""

from __future__ import annotations

import math

import torch

# dtype -> (int view, mantissa bits, max exponent field, bits of 1.0)
_LAYOUT = {
    torch.float32: (torch.int32, 23, 0xFF, 0x3F800000),
    torch.float64: (torch.int64, 52, 0x7FF, 0x3FF0000000000000),
}


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype == torch.bfloat16 else dtype


def _bits(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bit pattern as int64 magnitude and sign (int64 so float32 sums never overflow)."""
    ity = _LAYOUT[x.dtype][0]
    b = x.contiguous().view(ity).to(torch.int64)
    if ity == torch.int32:
        sign = b < 0
        mag = b & 0x7FFFFFFF
    else:
        sign = b < 0
        mag = b & 0x7FFFFFFFFFFFFFFF
    return mag, sign


def _from_bits(mag: torch.Tensor, sign: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    ity, mant, _, _ = _LAYOUT[dtype]
    top = 1 << (31 if ity == torch.int32 else 63)
    bits = torch.where(sign, mag - top if ity == torch.int32 else mag | torch.iinfo(torch.int64).min, mag)
    return bits.to(ity).view(dtype)


def _bias(offset: float, dtype: torch.dtype) -> int:
    """bits(1) - (bits(offset) - bits(1))."""
    ity, _, _, one = _LAYOUT[dtype]
    off = int(torch.tensor(offset, dtype=dtype).view(ity).item())
    return one - (off - one)


def _saturating(t: torch.Tensor, add: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """t + add as a magnitude: 0 below the normal range, inf above (no int64 overflow)."""
    _, mant, emax, _ = _LAYOUT[dtype]
    inf, min_normal = emax << mant, 1 << mant
    r = torch.where(t >= inf - add, torch.full_like(t, inf), t + add)
    return torch.where(t < min_normal - add, torch.zeros_like(t), r)


def _prepare(a: torch.Tensor, b: torch.Tensor):
    out_dtype = a.dtype
    ct = _compute_dtype(a.dtype)
    a, b = torch.broadcast_tensors(a.to(ct), b.to(ct))
    return a, b, ct, out_dtype


def _fields(mag: torch.Tensor, dtype: torch.dtype):
    _, mant, emax, _ = _LAYOUT[dtype]
    e = mag >> mant
    return e, e == 0, e == emax, mag > (emax << mant)


def _round_offset(offset: float, dtype: torch.dtype) -> float:
    return float(torch.tensor(offset, dtype=torch.bfloat16)) if dtype == torch.bfloat16 else offset


def mul(a: torch.Tensor, b: torch.Tensor, offset: float = 1.0, exact_grad: bool = False) -> torch.Tensor:
    a, b, ct, out_dtype = _prepare(a, b)
    _, mant, emax, _ = _LAYOUT[ct]
    ma, sa = _bits(a)
    mb, sb = _bits(b)
    _, za, ia, na = _fields(ma, ct)
    _, zb, ib, nb = _fields(mb, ct)
    sign = sa ^ sb
    mag = _saturating(ma - _bias(_round_offset(offset, out_dtype), ct), mb, ct)
    zero = za | zb
    mag = torch.where(zero, torch.zeros_like(mag), mag)
    nan_bits = (emax << mant) | (1 << (mant - 1))
    mag = torch.where(ia | ib, torch.full_like(mag, emax << mant), mag)
    nan = na | nb | ((ia | ib) & zero)
    mag = torch.where(nan, torch.full_like(mag, nan_bits), mag)
    return _from_bits(mag, sign & ~nan, ct).to(out_dtype)


def div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b, ct, out_dtype = _prepare(a, b)
    _, mant, emax, one = _LAYOUT[ct]
    inf, nan_bits = emax << mant, (emax << mant) | (1 << (mant - 1))
    ma, sa = _bits(a)
    mb, sb = _bits(b)
    _, za, ia, na = _fields(ma, ct)
    _, zb, ib, nb = _fields(mb, ct)
    mag = _saturating(ma - mb, torch.full_like(ma, one), ct)
    full = lambda v: torch.full_like(mag, v)  # noqa: E731
    mag = torch.where(za, torch.zeros_like(mag), mag)
    mag = torch.where(zb, torch.where(za, full(nan_bits), full(inf)), mag)
    mag = torch.where(ib, torch.zeros_like(mag), mag)
    mag = torch.where(ia, torch.where(ib, full(nan_bits), full(inf)), mag)
    nan = na | nb | (za & zb) | (ia & ib)
    mag = torch.where(nan, full(nan_bits), mag)
    return _from_bits(mag, (sa ^ sb) & ~nan, ct).to(out_dtype)


def exp2(x: torch.Tensor) -> torch.Tensor:
    out_dtype, ct = x.dtype, _compute_dtype(x.dtype)
    x = x.to(ct)
    _, mant, emax, one = _LAYOUT[ct]
    max_exp = emax - 1 - (one >> mant)  # 127 / 1023
    n = torch.floor(x)
    frac_bits, _ = _bits(1 + (x - n))
    safe_n = torch.where(torch.isfinite(n), n, torch.zeros_like(n)).clamp(-max_exp, max_exp).to(torch.int64)
    mag = _saturating(safe_n << mant, frac_bits, ct)  # this order cannot overflow int64
    out = _from_bits(mag, torch.zeros_like(mag, dtype=torch.bool), ct)
    out = torch.where(x >= max_exp + 1, torch.full_like(out, float("inf")), out)
    out = torch.where(x < -max_exp + 1, torch.zeros_like(out), out)
    return torch.where(torch.isnan(x), x, out).to(out_dtype).contiguous()  # as the kernels (and the fake)


def log2(x: torch.Tensor) -> torch.Tensor:
    out_dtype, ct = x.dtype, _compute_dtype(x.dtype)
    x = x.to(ct)
    _, mant, emax, one = _LAYOUT[ct]
    mag, sign = _bits(x)
    e, zero, _, _ = _fields(mag, ct)
    one_plus_frac = _from_bits((mag & ((1 << mant) - 1)) | one, torch.zeros_like(sign), ct)
    out = (one_plus_frac - 1) + (e - (one >> mant)).to(ct)
    out = torch.where(sign, torch.full_like(out, float("nan")), out)
    out = torch.where(zero, torch.full_like(out, float("-inf")), out)
    out = torch.where(torch.isinf(x) & ~sign, x, out)
    return torch.where(torch.isnan(x), x, out).to(out_dtype).contiguous()  # as the kernels (and the fake)


def mul_grad_factor(a: torch.Tensor, b: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """d PAM(a, b) / da = sign(b) 2^(E(PAM(a, b)) - E(a)); at a zero (or denormal) a, the factor of
    a power-of-two a (the spec's sign(b) 2^(Eb + [ma + mb >= 1]) with ma = 0); 0 where b is
    zero/denormal or the result saturates; NaN where an input is not finite."""
    a, b, ct, out_dtype = _prepare(a, b)
    _, mant, emax, one = _LAYOUT[ct]
    mb, sb = _bits(b)
    _, zb, ib, _ = _fields(mb, ct)
    _, za, ia, _ = _fields(_bits(a)[0], ct)
    a = torch.where(za & ~zb & ~ia, torch.ones_like(a), a)
    out = mul(a, b, _round_offset(offset, out_dtype))
    ma, _ = _bits(a)
    mo, _ = _bits(out)
    ea, za, _, _ = _fields(ma, ct)
    eo, zo, io, _ = _fields(mo, ct)
    e = eo - ea + (one >> mant)
    mag = _saturating(e.clamp(min=-1) << mant, torch.zeros_like(e), ct)
    flat = za | zb | zo | io
    mag = torch.where(flat, torch.zeros_like(mag), mag)
    f = _from_bits(mag, sb & ~flat, ct)
    return torch.where(ia | ib, torch.full_like(f, float("nan")), f).to(out_dtype)


def bmm(a: torch.Tensor, b: torch.Tensor, offset: float = 1.0, exact_grad: bool = False) -> torch.Tensor:
    """Every product a PAM; accumulation in the compute dtype, sequentially over k
    (the order of the CPU kernel), one [batch, n, m] slice of products at a time."""
    out_dtype, ct = a.dtype, _compute_dtype(a.dtype)
    a, b = a.to(ct), b.to(ct)
    acc = torch.zeros(a.shape[0], a.shape[1], b.shape[2], dtype=ct, device=a.device)
    for k in range(a.shape[2]):
        acc = acc + mul(a[:, :, k, None], b[:, None, k, :], _round_offset(offset, out_dtype))
    return acc.to(out_dtype)


def bmm_exact_grad(grad: torch.Tensor, a: torch.Tensor, b: torch.Tensor, offset: float = 1.0):
    out_dtype, ct = a.dtype, _compute_dtype(a.dtype)
    g, a, b = grad.to(ct), a.to(ct), b.to(ct)
    offset = _round_offset(offset, out_dtype)
    ga = torch.zeros_like(a)
    for j in range(b.shape[2]):  # dA[s,i,k] += g[s,i,j] * dPAM(A[s,i,k], B[s,k,j])/dA
        ga = ga + mul(g[:, :, j, None], mul_grad_factor(a, b[:, None, :, j], offset))
    gb = torch.zeros_like(b)
    for i in range(a.shape[1]):  # dB[s,k,j] += g[s,i,j] * dPAM(A[s,i,k], B[s,k,j])/dB
        gb = gb + mul(g[:, i, None, :], mul_grad_factor(b, a[:, i, :, None], offset))
    return ga.to(out_dtype).contiguous(), gb.to(out_dtype).contiguous()


# ---- the argument checks of csrc/cpu/pam_args.h: check_<op> takes the raw op's arguments, for the Triton
# launchers and the reference fallback (pyops._library.define); raw ops skip the Python wrappers
_FLOATS = (torch.float32, torch.float64, torch.bfloat16)


def _check_dtype(op: str, arg: str, t: torch.Tensor) -> None:
    if t.dtype not in _FLOATS:
        raise TypeError(f"pyops.{op}: argument '{arg}' must be float32, float64 or bfloat16, got {t.dtype}")


def _check_operands(op: str, a: torch.Tensor, b: torch.Tensor) -> None:
    _check_dtype(op, "a", a)
    _check_dtype(op, "b", b)
    if a.dtype != b.dtype:
        raise TypeError(f"pyops.{op}: arguments 'a' and 'b' must share a dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"pyops.{op}: arguments 'a' and 'b' must be on one device, got {a.device} and {b.device}")


def _check_pair(op: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """Elementwise operands: dtypes, device, broadcastable shapes."""
    _check_operands(op, a, b)
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"pyops.{op}: arguments 'a' and 'b' have shapes {tuple(a.shape)} and {tuple(b.shape)}, "
                         "which do not broadcast") from None


def _check_offset(op: str, offset: float) -> None:
    if not (math.isfinite(offset) and 0.5 < offset < 2.0):
        raise RuntimeError(f"pyops.{op}: argument 'offset' must be in (0.5, 2), got {offset}")


def _check_bmm_operands(op: str, a: torch.Tensor, b: torch.Tensor) -> None:
    _check_operands(op, a, b)
    if a.dim() != 3 or b.dim() != 3:
        raise ValueError(f"pyops.{op}: arguments 'a' and 'b' must be 3-D [batch, n, k] and [batch, k, m], got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"pyops.{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not multiply")


def _check_grad(op: str, g: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    want = (a.shape[0], a.shape[1], b.shape[2])
    if tuple(g.shape) != want:
        raise ValueError(f"pyops.{op}: argument 'grad' must have shape {list(want)}, got {tuple(g.shape)}")
    if g.device != a.device:
        raise ValueError(f"pyops.{op}: argument 'grad' must be on the device of 'a' ({a.device}), got {g.device}")


def check_mul(a: torch.Tensor, b: torch.Tensor, offset: float = 1.0, exact_grad: bool = False) -> None:
    _check_pair("pam_mul", a, b)
    _check_offset("pam_mul", offset)


def check_div(a: torch.Tensor, b: torch.Tensor) -> None:
    _check_pair("pam_div", a, b)


def check_mul_grad_factor(a: torch.Tensor, b: torch.Tensor, offset: float = 1.0) -> None:
    _check_pair("pam_mul_grad_factor", a, b)
    _check_offset("pam_mul_grad_factor", offset)


def check_exp2(x: torch.Tensor) -> None:
    _check_dtype("pam_exp2", "x", x)


def check_log2(x: torch.Tensor) -> None:
    _check_dtype("pam_log2", "x", x)


def check_bmm(a: torch.Tensor, b: torch.Tensor, offset: float = 1.0, exact_grad: bool = False) -> None:
    _check_bmm_operands("pam_bmm", a, b)
    _check_offset("pam_bmm", offset)


def check_bmm_exact_grad(grad: torch.Tensor, a: torch.Tensor, b: torch.Tensor, offset: float = 1.0) -> None:
    _check_bmm_operands("pam_bmm_exact_grad", a, b)
    _check_grad("pam_bmm_exact_grad", grad, a, b)
    _check_offset("pam_bmm_exact_grad", offset)
