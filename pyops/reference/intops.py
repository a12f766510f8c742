"""intops in pure PyTorch int64: the bit-level definition every backend matches.

Algorithms of I-BERT (Kim et al. 2021) and I-ViT (Li & Gu 2023) as in their
reference codes, but in real integers: floor semantics for negatives (``//``
and ``>>`` on int64 are floors in torch), no float anywhere past the integer
constants, which :func:`constants` derives from the float scale once per call.

Where our integers deliberately differ from the float simulations:
  * I-BERT softmax's 16-bit requantisation (QuantAct(16) before the sum) is the
    exact rational ``round(e (2^15 - 1) / max e)`` with ``max e = c 2^30``;
    the reference computes it in float64 and loses bits above 2^53.
  * LayerNorm's sqrt is an exact integer floor-sqrt (or I-ViT's Newton
    iteration), and a constant row (std 0) gives factor 0: the output is the
    bias alone, where the reference divides by zero.
"""

from __future__ import annotations

import math

import torch

# I-BERT constants (quant_modules.py): exp polynomial a(x + b)^2 + c on (-ln2, 0]
IBERT_LN2 = 0.6931
IBERT_EXP = (0.35815147, 0.96963238 / 0.35815147, 1.0 / 0.35815147)
IBERT_EXP_N = 30
# I-BERT GELU: erf(x) ~ sign(x) [a (min(|x|, -b) + b)^2 + 1], x scaled by 1/sqrt(2)
IBERT_GELU = (-0.2888, -1.769)
IBERT_GELU_K = 1.4142
IBERT_GELU_SHIFT = 14
# I-ViT
SHIFTMAX_N = 15
SHIFTGELU_N = 23
SHIFTGELU_ALPHA = 1.702


# ---- the raw ops' domains (the C++ checks of csrc/include/pyops/intops.h, stated again for the
# reference and the Triton launchers): None inside, else what is wrong.
def ibert_constants_error(x0: int, b: int, c: int):
    """z = (r + b) r + c over r in (x0, 0] stays in (0, c], so e = z 2^(30 - q) fits in int64."""
    if not -(2 ** 31) < x0 < 0:
        return "constant x0 must be in (-2^31, 0): the scale is out of range"
    if not 0 < c < 2 ** 32:
        return "constant c must be in (0, 2^32): the scale is out of range"
    if not -x0 - 1 <= b < 2 ** 32:
        return "constant b must be in [-x0 - 1, 2^32)"
    # z at its smallest: the integer r nearest the vertex -b/2 within [x0 + 1, 0]
    zmin = min((r + b) * r + c for r in (min(max(v, x0 + 1), 0) for v in (-(b // 2), -(b // 2) - 1, x0 + 1)))
    if zmin <= 0:
        return "constants b and c must keep i-exp's polynomial positive on (x0, 0]"
    return None


def shift_x0_error(x0: int, n: int):
    """Shift-exp with n fraction bits: e(0) = -x0 2^n below 2^31."""
    if not (x0 < 0 and -x0 < 2 ** (31 - n)):
        return f"constant x0 must be in (-2^{31 - n}, 0): the scale is out of range"
    return None


def output_bits_error(bits: int):
    return None if 2 <= bits <= 16 else "argument 'output_bits' must be in [2, 16]"


def requantize_constants_error(m: torch.Tensor, e: torch.Tensor, bits: int):
    if not 2 <= bits <= 32:
        return f"argument 'bits' must be in [2, 32], got {bits}"
    if m.numel() and not bool(((m >= 0) & (m <= 2 ** 31)).all()):
        return "argument 'm' must be in [0, 2^31]"
    if e.numel() and not bool(((e >= -64) & (e <= 64)).all()):
        return "argument 'e' must be in [-64, 64]"
    return None


def gelu_constants_error(b: torch.Tensor, c: torch.Tensor, one: torch.Tensor):
    """out = x ((y >> 14) + one), y = +-(m^2 + c), m in [b, 0]: b in (-2^31, 0), |c|, |one| < 2^62,
    and the factor's extremes within 2^31 keep every int32 x's product in int64 (check_gelu in C++)."""
    if b.numel() == 0:
        return None
    if not bool(((b > -2 ** 31) & (b < 0)).all()):
        return "argument 'b' must be in (-2^31, 0)"
    for name, t in (("c", c), ("one", one)):
        if not bool(((t > -2 ** 62) & (t < 2 ** 62)).all()):
            return f"argument '{name}' must be in (-2^62, 2^62)"
    top = b * b + c
    worst = torch.stack([(torch.div(y, 2 ** IBERT_GELU_SHIFT, rounding_mode="floor") + one).abs()
                         for y in (c, top, -c, -top)])
    if not bool((worst <= 2 ** 31).all()):
        return "constants 'b', 'c' and 'one' must keep |(y >> 14) + one| <= 2^31, so that x times it fits int64"
    return None


def raise_if(op: str, error) -> None:
    if error is not None:
        raise RuntimeError(f"pyops.{op}: {error}")


def ibert_exp_constants(scale: float) -> tuple[int, int, int]:
    """x0 = floor(-ln2 / s), b = floor(b / s), c = floor(c / s^2); e has scale a s^2 / 2^30."""
    a, b, c = IBERT_EXP
    return math.floor(-IBERT_LN2 / scale), math.floor(b / scale), math.floor(c / scale ** 2)


def ibert_exp_scale(scale: float) -> float:
    return IBERT_EXP[0] * scale ** 2 / 2 ** IBERT_EXP_N


def ibert_gelu_constants(scale: torch.Tensor):
    """Per-channel int64 (b, c, one) and the float output scale s * scale_erf / 2 (negative)."""
    s = scale.double() / IBERT_GELU_K
    a, b = IBERT_GELU
    b_int = torch.floor(b / s)
    c_int = torch.floor((1.0 / a) / s ** 2)
    scale_erf = a * s ** 2 * 2 ** IBERT_GELU_SHIFT
    one = torch.floor(1.0 / scale_erf)
    return b_int.long(), c_int.long(), one.long(), scale.double() * scale_erf / 2


def shift_x0(scale: float) -> int:
    return math.floor(-1.0 / scale)


def _floor_div(a: torch.Tensor, b) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def _round_div(a: torch.Tensor, n) -> torch.Tensor:
    """a / n rounded half to even (torch.round), n > 0, exactly."""
    q = _floor_div(a, n)
    twice_rem = 2 * (a - q * n)
    return torch.where((twice_rem > n) | ((twice_rem == n) & (q % 2 == 1)), q + 1, q)


def _round_shift(a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """a / 2^s rounded half to even, s >= 0 (elementwise)."""
    q = a >> s
    rem = a - (q << s)
    half = torch.where(s > 0, torch.ones_like(s) << (s - 1).clamp(min=0), torch.zeros_like(s))
    up = (s > 0) & ((rem > half) | ((rem == half) & (q % 2 == 1)))
    return torch.where(up, q + 1, q)


def isqrt(x: torch.Tensor) -> torch.Tensor:
    """Exact floor(sqrt(x)) for int64 0 <= x < 2^63, digit by digit."""
    v = x.long().clone()
    r = torch.zeros_like(v)
    for shift in range(62, -1, -2):
        bit = 1 << shift
        take = v >= r + bit
        v = torch.where(take, v - (r + bit), v)
        r = torch.where(take, (r >> 1) + bit, r >> 1)
    return r


def newton_sqrt(x: torch.Tensor) -> torch.Tensor:
    """I-ViT: 10 integer Newton steps k = floor((k + floor(x / k)) / 2) from 2^16."""
    k = torch.full_like(x, 1 << 16)
    for _ in range(10):
        k = (k + x // k) >> 1
    return k


def _ibert_exp_parts(x: torch.Tensor, x0: int, b: int, c: int):
    x = torch.maximum(x, torch.full_like(x, IBERT_EXP_N * x0))
    q = _floor_div(x, x0)
    r = x - x0 * q
    return (r + b) * r + c, q


def int_exp(x: torch.Tensor, x0: int, b: int, c: int) -> torch.Tensor:
    """I-BERT i-exp of x <= 0: max(z 2^(30 - q), 0), int64, scale a s^2 / 2^30."""
    z, q = _ibert_exp_parts(x.long(), x0, b, c)
    return torch.clamp(z * (torch.ones_like(q) << (IBERT_EXP_N - q)), min=0)


def shift_exp(x: torch.Tensor, x0: int, n: int) -> torch.Tensor:
    """I-ViT shift-exp: x log2 e by shifts, then floor((r/2 - x0) 2^(n - q)); saturates at 2^62."""
    x = x + (x >> 1) - (x >> 4)
    x = torch.maximum(x, torch.full_like(x, n * x0))
    q = _floor_div(x, x0)
    r = x - x0 * q
    shift = n - q
    e = ((r - 2 * x0) << shift.clamp(max=40)) >> 1
    return torch.where(shift > 40, torch.full_like(e, 1 << 62), e)


def softmax(x: torch.Tensor, x0: int, b: int, c: int, output_bits: int, method: str) -> torch.Tensor:
    """Row softmax over the last dim, int32 out at scale 2^-output_bits (ibert) or
    2^-(output_bits - 1) (shiftmax)."""
    x = x.long()
    if x.numel() == 0:
        return x.int()
    x = x - x.amax(dim=-1, keepdim=True)
    if method == "ibert":
        z, q = _ibert_exp_parts(x, x0, b, c)
        e16 = torch.where(z > 0, _round_div(z.clamp(min=0) * 32767, c << q), torch.zeros_like(z))
        factor = _floor_div(torch.full_like(e16[..., :1], 1 << 32), e16.sum(-1, keepdim=True))
        return ((e16 * factor) >> (32 - output_bits)).int()
    e = shift_exp(x, x0, SHIFTMAX_N)
    total = e.sum(-1, keepdim=True).clamp(max=2 ** 31 - 1)
    factor = _floor_div(torch.full_like(total, 2 ** 31 - 1), total)
    return ((e * factor) >> (32 - output_bits)).int()


def gelu(x: torch.Tensor, b: torch.Tensor, c: torch.Tensor, one: torch.Tensor) -> torch.Tensor:
    """I-BERT GELU, per-channel constants broadcast over the last dim; int64 out."""
    x = x.long()
    m = torch.minimum(x.abs(), -b) + b
    y = torch.sign(x) * (m * m + c)
    return x * ((y >> IBERT_GELU_SHIFT) + one)


def shiftgelu(x: torch.Tensor, x0: int, output_bits: int) -> torch.Tensor:
    """I-ViT ShiftGELU: x sigma(1.702 x) with sigma from two shift-exps per row; int64 out."""
    x = x.long()
    if x.numel() == 0:
        return x
    xmax = x.amax(dim=-1, keepdim=True)
    e = shift_exp(x - xmax, x0, SHIFTGELU_N)
    total = (e + shift_exp(-xmax, x0, SHIFTGELU_N)).clamp(max=2 ** 31 - 1)
    factor = _floor_div(torch.full_like(total, 2 ** 31 - 1), total)
    return x * ((e * factor) >> (32 - output_bits))


def layernorm_shift(maxdev: torch.Tensor, n: int, shift: int) -> torch.Tensor:
    """Per row: the given shift, raised until n ((x - mean) >> s)^2 fits in int64 for every x
    (|x - mean| <= maxdev). A larger shift only coarsens the variance; std = sqrt(var) << s keeps
    the scale, so rows of int32 accumulators near +-2^31 normalise instead of overflowing."""
    limit = math.isqrt((2 ** 63 - 1) // max(n, 1))
    s = torch.full_like(maxdev, shift)
    for _ in range(64):
        s = torch.where((maxdev >> s) > limit, s + 1, s)
    return s


def layernorm(x: torch.Tensor, bias_int: torch.Tensor, shift: int, sqrt: str) -> torch.Tensor:
    """I-BERT LayerNorm over the last dim (I-ViT's when sqrt="newton"); int32 out at
    scale sqrt(N) / 2^30 (times gamma, applied by the caller's scale)."""
    x = x.long()
    n = x.shape[-1]
    if x.numel() == 0:
        return x.int()
    mean = _round_div(x.sum(-1, keepdim=True), n)
    y = x - mean
    shifts = layernorm_shift(y.abs().amax(-1, keepdim=True), n, shift)  # per row
    var = ((y >> shifts) ** 2).sum(-1, keepdim=True)
    if sqrt == "exact":
        std = isqrt(var) << shifts
        factor = torch.where(std > 0, _floor_div(torch.full_like(std, 1 << 31), std.clamp(min=1)),
                             torch.zeros_like(std))
    else:
        std = newton_sqrt(var) << shifts
        factor = _floor_div(torch.full_like(std, 2 ** 31 - 1), std)
    return (((y * factor) >> 1) + bias_int.long()).int()


def requantize(x: torch.Tensor, m: torch.Tensor, e: torch.Tensor, bits: int) -> torch.Tensor:
    """round_half_even(x m / 2^e) saturated to the signed `bits` range; int32 out. |x m| <= 2^62,
    so past 62 bits right the result is 0, and a left shift that would leave int64 saturates."""
    v = x.long() * m
    e = e.expand_as(v) if e.dim() else e.expand(v.shape)
    right = torch.where(e > 62, torch.zeros_like(v), _round_shift(v, e.clamp(0, 62)))
    s = (-e).clamp(0, 62)
    over = (-e > 62) | (v.abs() > ((2 ** 63 - 1) >> s))
    left = torch.where(over, torch.sign(v) << 62, v << s)
    v = torch.where(e >= 0, right, left)
    return v.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1).int()


def dyadic(ratio: torch.Tensor, max_bit: int = 31):
    """(m, e) with ratio ~ m / 2^e, m rounded half up to `max_bit` bits (I-BERT's batch_frexp).
    frexp's exponent is read back as log2(ratio / mantissa), an exact power of two: torch.compile's
    CPU code generation fails on arithmetic with the int exponent of a float64 frexp (torch 2.13)."""
    ratio = ratio.double()
    mant, _ = torch.frexp(ratio)
    m = torch.floor(mant * 2 ** max_bit + 0.5).long()
    exp = torch.where(mant == 0, 0.0, torch.log2(ratio / torch.where(mant == 0, 1.0, mant)))
    return m, max_bit - torch.round(exp).long()


# ---- the tensor checks of csrc/cpu/intops_args.h, for the Triton launchers
_INTS = (torch.int8, torch.int16, torch.int32)


def check_rows(op: str, x: torch.Tensor) -> None:
    if x.dtype not in _INTS:
        raise RuntimeError(f"pyops.{op}: argument 'x' must be int8, int16 or int32, got {x.dtype}")
    if x.dim() < 1:
        raise RuntimeError(f"pyops.{op}: argument 'x' must have at least one dimension")


def check_channel_constant(op: str, arg: str, t: torch.Tensor, x: torch.Tensor) -> None:
    """Per-channel int64 constants of shape [C] or [1], on x's device."""
    channels = x.shape[-1]
    if t.dtype != torch.int64 or t.dim() != 1 or t.shape[0] not in (channels, 1):
        raise RuntimeError(f"pyops.{op}: argument '{arg}' must be int64 of shape [{channels}] or [1], got {t.dtype} "
                           f"{tuple(t.shape)}")
    if t.device != x.device:
        raise RuntimeError(f"pyops.{op}: argument '{arg}' must be on the device of 'x' ({x.device}), got {t.device}")


# ---- each raw op's whole argument check (its C++ kernel's), shared by the Triton launchers and
# the reference fallback (pyops._library.define runs it before the oracles above, which assume it)
def check_exp(x: torch.Tensor, x0: int, b: int, c: int) -> None:
    if x.dtype not in _INTS:
        raise RuntimeError(f"pyops.intops_exp: argument 'x' must be int8, int16 or int32, got {x.dtype}")
    raise_if("intops_exp", ibert_constants_error(x0, b, c))
    if x.numel() and not bool((x <= 0).all()):
        raise RuntimeError("pyops.intops_exp: argument 'x' must be <= 0 (x - rowmax)")


def check_softmax(x: torch.Tensor, x0: int, b: int, c: int, output_bits: int, method: str) -> None:
    check_rows("intops_softmax", x)
    if method not in ("ibert", "shiftmax"):
        raise RuntimeError(f"pyops.intops_softmax: argument 'method' must be 'ibert' or 'shiftmax', got {method!r}")
    raise_if("intops_softmax", output_bits_error(output_bits))
    raise_if("intops_softmax", ibert_constants_error(x0, b, c) if method == "ibert" else shift_x0_error(x0, SHIFTMAX_N))


def check_shiftgelu(x: torch.Tensor, x0: int, output_bits: int) -> None:
    check_rows("intops_shiftgelu", x)
    raise_if("intops_shiftgelu", output_bits_error(output_bits))
    raise_if("intops_shiftgelu", shift_x0_error(x0, SHIFTGELU_N))


def check_layernorm(x: torch.Tensor, bias_int: torch.Tensor, shift: int, isqrt: str) -> None:
    check_rows("intops_layernorm", x)
    if isqrt not in ("exact", "newton"):
        raise RuntimeError(f"pyops.intops_layernorm: argument 'isqrt' must be 'exact' or 'newton', got {isqrt!r}")
    if not 0 <= shift < 32:
        raise RuntimeError(f"pyops.intops_layernorm: argument 'shift' must be in [0, 32), got {shift}")
    check_channel_constant("intops_layernorm", "bias_int", bias_int, x)


def check_gelu(x: torch.Tensor, b: torch.Tensor, c: torch.Tensor, one: torch.Tensor) -> None:
    check_rows("intops_gelu", x)
    for name, t in (("b", b), ("c", c), ("one", one)):
        check_channel_constant("intops_gelu", name, t, x)
    raise_if("intops_gelu", gelu_constants_error(b, c, one))


def check_requantize(x: torch.Tensor, m: torch.Tensor, e: torch.Tensor, bits: int) -> None:
    check_rows("intops_requantize", x)
    for name, t in (("m", m), ("e", e)):
        check_channel_constant("intops_requantize", name, t, x)
    raise_if("intops_requantize", requantize_constants_error(m, e, bits))


def check_isqrt(x: torch.Tensor) -> None:
    if x.dtype not in (torch.int32, torch.int64):
        raise RuntimeError(f"pyops.intops_isqrt: argument 'x' must be int32 or int64, got {x.dtype}")
    if x.numel() and not bool((x >= 0).all()):
        raise RuntimeError("pyops.intops_isqrt: argument 'x' must be non-negative")
