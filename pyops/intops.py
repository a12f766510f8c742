"""intops: integer-only softmax, GELU and LayerNorm (I-BERT, I-ViT), for real.

The papers' codes simulate integers in float32; these ops take integer tensors
(int8 / int16 / int32 with real value ``x * scale``) and compute in integers
only. Floats appear once per call, to derive the integer constants from the
scale (``pyops.reference.intops``). Every function returns ``(out, out_scale)``.

Modules ``QuantEmbedding``, ``QuantAct``, ``QuantLinear``, ``IntGELU``, ``IntSoftmax``,
``IntLayerNorm`` are drop-in replacements of HuggingFace's I-BERT quant modules (same
signatures, buffers and quantisation rules, ``forward(x, scaling_factor) -> (x, scaling_factor)``
with x a float tensor of integer multiples of the scale) that run the integer kernels;
:func:`convert_ibert` swaps them into an HF I-BERT model. They train with straight-through
gradients: the backward is that of the float function approximated.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Union, cast

import torch
from torch import nn

from pyops._library import check, define, eager, triton_launcher
from pyops.reference import intops as ref

_triton = functools.partial(triton_launcher, "intops")  # pyops.kernels.intops.<name>, imported on first use

__all__ = [
    "int_exp", "int_softmax", "int_gelu", "int_layernorm", "requantize", "isqrt",
    "IntSoftmax", "IntGELU", "IntLayerNorm", "QuantAct", "QuantLinear", "QuantEmbedding", "convert_ibert",
]

INT_DTYPES = (torch.int8, torch.int16, torch.int32)


def _like(dtype):
    return lambda x, *rest: torch.empty(x.shape, dtype=dtype, device=x.device)


_exp = define("intops_exp", "(Tensor x, int x0, int b, int c) -> Tensor", reference=ref.int_exp,
              fake=_like(torch.int64), triton=_triton("int_exp"), check=ref.check_exp)
_softmax = define("intops_softmax", "(Tensor x, int x0, int b, int c, int output_bits, str method) -> Tensor",
                  reference=ref.softmax, fake=_like(torch.int32), triton=_triton("softmax"), check=ref.check_softmax)
_gelu = define("intops_gelu", "(Tensor x, Tensor b, Tensor c, Tensor one) -> Tensor", reference=ref.gelu,
               fake=_like(torch.int64), triton=_triton("gelu"), check=ref.check_gelu)
_shiftgelu = define("intops_shiftgelu", "(Tensor x, int x0, int output_bits) -> Tensor", reference=ref.shiftgelu,
                    fake=_like(torch.int64), triton=_triton("shiftgelu"), check=ref.check_shiftgelu)
_layernorm = define("intops_layernorm", "(Tensor x, Tensor bias_int, int shift, str isqrt) -> Tensor",
                    reference=ref.layernorm, fake=_like(torch.int32), triton=_triton("layernorm"),
                    check=ref.check_layernorm)
_isqrt = define("intops_isqrt", "(Tensor x) -> Tensor", reference=ref.isqrt, fake=_like(torch.int64),
                triton=_triton("isqrt"), check=ref.check_isqrt)
_requantize = define("intops_requantize", "(Tensor x, Tensor m, Tensor e, int bits) -> Tensor",
                     reference=ref.requantize, fake=_like(torch.int32), triton=_triton("requantize"),
                     check=ref.check_requantize)


# ---------------------------------------------------------------- validation
def _check_x(op: str, x) -> None:
    check(isinstance(x, torch.Tensor), op, "x", f"must be a Tensor, got {type(x).__name__}", TypeError)
    check(x.dtype in INT_DTYPES, op, "x",
          f"must be an integer tensor (int8, int16, int32) holding x_real / scale, got {x.dtype}", TypeError)
    check(x.dim() >= 1, op, "x", "must have at least one dimension")


def _scalar_scale(op: str, scale, lo: float, hi: float) -> float:
    if isinstance(scale, torch.Tensor):
        check(scale.numel() == 1, op, "scale", f"must be a single per-tensor scale here, got shape {tuple(scale.shape)}")
        scale = float(scale)
    check(isinstance(scale, (int, float)), op, "scale", f"must be a float, got {type(scale).__name__}", TypeError)
    check(math.isfinite(scale) and lo <= scale <= hi, op, "scale", f"must be finite and in [{lo:g}, {hi:g}], got {scale}")
    return float(scale)


def _check_bits(op: str, bits: int, lo: int = 2, hi: int = 16) -> None:
    check(isinstance(bits, int) and lo <= bits <= hi, op, "output_bits", f"must be an int in [{lo}, {hi}], got {bits}")


# ---------------------------------------------------------------- functions
# I-BERT i-exp needs c = floor(2.79 / s^2) in [1, 2^32): s in [3e-5, 1.6].
_IBERT_SCALES = (3e-5, 1.6)
# Shiftmax: |x0| = |floor(-1 / s)| <= 2^16 keeps e = (r - 2 x0) 2^14 below 2^31: s in [2e-5, 1];
# row sums past 2^31 - 1 saturate as in I-ViT (coarser output, never overflow).
_SHIFT_SCALES = (2e-5, 1.0)
# ShiftGELU (n = 23): e(0) = -x0 2^23 must stay below 2^30, so 1.702 s >= 1/127.
_SHIFTGELU_SCALES = (1 / (127 * ref.SHIFTGELU_ALPHA), 1.0)


def int_exp(x: torch.Tensor, scale: float):
    """I-BERT integer exp of x <= 0 (typically x - rowmax). Returns (int64 e, scale a s^2 / 2^30)."""
    _check_x("intops.int_exp", x)
    if x.numel() and eager():  # data-dependent: the kernels check too
        check(bool((x <= 0).all()), "intops.int_exp", "x", "must be <= 0 (x - rowmax)")
    s = _scalar_scale("intops.int_exp", scale, *_IBERT_SCALES)
    return _exp(x, *ref.ibert_exp_constants(s)), ref.ibert_exp_scale(s)


def int_softmax(x: torch.Tensor, scale: Union[float, torch.Tensor], output_bits: int = 8,
                method: str = "ibert"):
    """Softmax over the last dim. ``method="ibert"`` (I-BERT, out scale 2^-bits) or
    ``"shiftmax"`` (I-ViT, out scale 2^-(bits-1)). Returns (int32 out, out_scale)."""
    op = "intops.int_softmax"
    _check_x(op, x)
    _check_bits(op, output_bits)
    check(method in ("ibert", "shiftmax"), op, "method", f"must be 'ibert' or 'shiftmax', got {method!r}")
    if method == "ibert":
        s = _scalar_scale(op, scale, *_IBERT_SCALES)
        out = _softmax(x, *ref.ibert_exp_constants(s), output_bits, method)
        return out, 2.0 ** -output_bits
    s = _scalar_scale(op, scale, *_SHIFT_SCALES)
    return _softmax(x, ref.shift_x0(s), 0, 0, output_bits, method), 2.0 ** -(output_bits - 1)


def int_gelu(x: torch.Tensor, scale: Union[float, torch.Tensor], method: str = "ibert", output_bits: int = 8):
    """GELU. ``method="ibert"``: elementwise, per-tensor or per-channel (last dim) scale,
    out scale ``s * scale_erf / 2`` (negative, as in I-BERT). ``"shiftgelu"`` (I-ViT):
    per-tensor scale, sigma normalised per row, out scale ``s 2^-(bits-1)``.
    Returns (int64 out, out_scale)."""
    op = "intops.int_gelu"
    _check_x(op, x)
    check(method in ("ibert", "shiftgelu"), op, "method", f"must be 'ibert' or 'shiftgelu', got {method!r}")
    if method == "shiftgelu":
        _check_bits(op, output_bits)
        s = _scalar_scale(op, scale, *_SHIFTGELU_SCALES)
        return _shiftgelu(x, ref.shift_x0(ref.SHIFTGELU_ALPHA * s), output_bits), s * 2.0 ** -(output_bits - 1)
    dev = x.device
    per_tensor = isinstance(scale, (int, float)) or (isinstance(scale, torch.Tensor) and scale.numel() == 1)
    if per_tensor and eager():
        s = float(scale)
        check(math.isfinite(s) and 1e-6 <= s <= 10, op, "scale", "must be finite and in [1e-6, 10]")
        b, c, one, out_scale = _ibert_gelu_constants(s)
        return _gelu(x, b.to(dev), c.to(dev), one.to(dev)), out_scale.to(dev, copy=True)  # the cache's stays
    st = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
    check(st.numel() in (1, x.shape[-1]), op, "scale",
          f"must be per-tensor or per-channel with {x.shape[-1]} entries, got {st.numel()}")
    check(bool(torch.isfinite(st).all()) and bool((st >= 1e-6).all()) and bool((st <= 10).all()), op, "scale",
          "must be finite and in [1e-6, 10]")
    b, c, one, out_scale = ref.ibert_gelu_constants(st)
    return _gelu(x, b.to(dev), c.to(dev), one.to(dev)), out_scale.to(dev)


@functools.lru_cache(maxsize=64)
def _ibert_gelu_constants(scale: float):
    """ref.ibert_gelu_constants of one per-tensor scale, kept: deriving them (a dozen float64 tensor
    ops, ~70 us with the checks) cost more than the GELU of a 1024 x 128 tensor."""
    return ref.ibert_gelu_constants(torch.tensor([scale], dtype=torch.float64))


def int_layernorm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, shift: int = 0,
                  isqrt: str = "exact"):
    """I-BERT LayerNorm over the last dim (``isqrt="newton"``: I-ViT's 10-step Newton sqrt).
    The input scale cancels. Returns (int32 out, out_scale = sqrt(N) / 2^30 * weight)."""
    op = "intops.int_layernorm"
    _check_x(op, x)
    n = x.shape[-1]
    check(isqrt in ("exact", "newton"), op, "isqrt", f"must be 'exact' or 'newton', got {isqrt!r}")
    check(isinstance(shift, int) and 0 <= shift < 32, op, "shift", f"must be an int in [0, 32), got {shift}")
    for name, t in (("weight", weight), ("bias", bias)):
        check(isinstance(t, torch.Tensor) and t.shape == (n,), op, name, f"must be a tensor of shape ({n},)")
    if eager():  # a data-dependent check: skipped while torch.compile traces
        check(bool((weight != 0).all()), op, "weight", "must be non-zero (the bias is folded as bias / weight)")
    scale = math.sqrt(n) / 2 ** 30
    bias_int = torch.floor((bias.detach().double() / weight.detach().double()) / scale).long()
    out = _layernorm(x, bias_int.to(x.device), shift, isqrt)
    return out, scale * weight


def requantize(x: torch.Tensor, scale_in: Union[float, torch.Tensor], scale_out: Union[float, torch.Tensor],
               bits: int = 8):
    """Dyadic requantisation: round(x * m / 2^e) with m / 2^e ~ scale_in / scale_out
    (31-bit m, I-BERT's FixedPointMul), clamped to signed ``bits``. Per-tensor or per-channel
    scales. Returns (int32 out, scale_out)."""
    op = "intops.requantize"
    _check_x(op, x)
    check(isinstance(bits, int) and 2 <= bits <= 32, op, "bits", f"must be an int in [2, 32], got {bits}")
    sin = torch.as_tensor(scale_in, dtype=torch.float64).reshape(-1)
    sout = torch.as_tensor(scale_out, dtype=torch.float64).reshape(-1)
    for name, s in (("scale_in", sin), ("scale_out", sout)):
        check(s.numel() in (1, x.shape[-1]), op, name, f"must be per-tensor or per-channel ({x.shape[-1]})")
        check(bool(torch.isfinite(s).all()) and bool((s > 0).all()), op, name, "must be finite and positive")
    m, e = ref.dyadic(sin / sout)
    if eager():  # data-dependent: skipped while compiling (the kernels check their e domain too)
        check(bool((e > -32).all()) and bool((e < 63).all()), op, "scale_out", "gives a scale ratio out of range")
    return _requantize(x, m.to(x.device), e.to(x.device), bits), scale_out


def isqrt(x: torch.Tensor) -> torch.Tensor:
    """Exact floor(sqrt(x)) of a non-negative int32/int64 tensor, as int64."""
    check(isinstance(x, torch.Tensor) and x.dtype in (torch.int32, torch.int64), "intops.isqrt", "x",
          f"must be an int32 or int64 tensor, got {getattr(x, 'dtype', type(x).__name__)}", TypeError)
    if x.numel() and eager():  # data-dependent: skipped while compiling (the kernels check too)
        check(bool((x >= 0).all()), "intops.isqrt", "x", "must be non-negative")
    return _isqrt(x)


# ------------------------------------------------------------------- modules
# Drop-in replacements of HuggingFace's I-BERT quant modules (transformers.models.ibert.quant_modules):
# the same constructor signatures, forward arguments and return values, the same parameter and buffer
# names (an HF I-BERT state_dict loads with strict=True) and the same quantisation rules, with every
# integer step on pyops' integer kernels instead of float simulation. As in HF, the tensors passed
# between modules are float, x = integer * scale: HF's modelling code does reshapes and the attention
# matmuls on them. Each module turns its input back into exact integers (round(x / scale), HF's rounding)
# and its integer result into x * scale. Gradients are straight-through: the derivative of the float
# function approximated (identity for the quantisers).

_FORCE_DEQUANT = ("none", "nonlinear", "gelu", "softmax", "layernorm")
_F32_BELOW_2_31 = 2.0 ** 31 - 128  # the largest float32 below 2^31


def _as_ints(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x holding integer multiples of scale -> those integers as int32: round(x / scale), half to even as
    HF rounds; values past int32 (an attention mask's -3.4e38 / s) saturate."""
    return torch.div(x.detach(), scale.detach()).round_().clamp_(-(2.0 ** 31), _F32_BELOW_2_31).to(torch.int32)


def _straight_through(q: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The value q exactly (the integer kernel's), the gradient of f (the float function)."""
    return q + (f - f.detach())


def _wants_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _quant_mode(op: str, quant_mode: bool, force_dequant: str, names: tuple) -> bool:
    """HF's force_dequant: "nonlinear" or the module's own name turns quant_mode off."""
    check(force_dequant in _FORCE_DEQUANT, op, "force_dequant", f"must be one of {_FORCE_DEQUANT}, got {force_dequant!r}")
    return bool(quant_mode) and force_dequant not in ("nonlinear",) + names


def _one_scale(op: str, arg: str, scale) -> torch.Tensor:
    check(isinstance(scale, torch.Tensor) and scale.numel() == 1, op, arg,
          f"must be a one-element tensor (a per-tensor scale), got {getattr(scale, 'shape', type(scale).__name__)}")
    return scale.detach().reshape(1)


def _int_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits <= 8 else torch.int16 if bits <= 16 else torch.int32 if bits <= 32 else torch.int64


def _set_buffer(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """HF reassigns its scale buffers on every quantised forward; in place when the shape allows."""
    buf = getattr(module, name)
    if buf.shape == value.shape and buf.dtype == value.dtype and buf.device == value.device:
        buf.copy_(value)
    else:
        setattr(module, name, value)


def _symmetric_quantize(w: torch.Tensor, bits: int, per_channel: bool, full_range: bool):
    """HF's weight rule: scale = max(|min|, |max|) / (2^(bits-1) - 1) per row or per tensor (at least
    1e-8 / n), q = round(w / scale) clamped to [-n, n - 1] (HF's) or [-n - 1, n] (full_range)."""
    n = 2 ** (bits - 1) - 1
    w = w.detach()
    if per_channel:
        lo, hi = torch.aminmax(w, dim=1)
        scale = torch.maximum(lo.abs(), hi.abs())
    else:
        scale = torch.maximum(w.min().abs(), w.max().abs()).reshape(1) if w.numel() else w.new_zeros(1)
    scale = scale.clamp(min=1e-8) / n
    q = torch.round((1.0 / scale.view(-1, 1)) * w).clamp_(*((-n - 1, n) if full_range else (-n, n - 1)))
    return q.to(_int_dtype(bits)), scale


def _requantize_from(x: torch.Tensor, scale_in: torch.Tensor, scale_out: torch.Tensor, bits: int) -> torch.Tensor:
    """HF's FixedPointMul on the dyadic integer kernel: x (integer multiples of scale_in, per tensor or per
    last-dim channel) requantised to scale_out, clamped to signed ``bits``; int32.

    z = round(x / |scale_in|), exactly HF's round(x / scale_in) but for the sign: a negative scale (I-BERT's
    GELU output has one) flips z, and HF's negative m (ties rounded away from zero) flips it back, so the
    result is HF's. m / 2^e = |scale_in| / scale_out in float64 of the float32 scales, m rounded half up to
    31 bits (HF's batch_frexp). The kernel takes int32: where a channel's largest |z| reaches 2^30 (a GELU
    output, ~2^37 at I-BERT's scales) z is rounded to a multiple of 2^t with t the least that brings it
    below 2^30 (t from max |x| / min |scale_in|), and e lowered by t. That moves the result by at most
    2^(t-1) m / 2^e < 2^(bits - 31) output LSB (ties aside), less than HF's own float32 z is off by; t = 0
    (bit-exact HF) everywhere else.
    """
    if x.numel() == 0:
        return torch.empty(x.shape, dtype=torch.int32, device=x.device)
    s_in = scale_in.detach().reshape(-1).abs()
    s_out = scale_out.detach().reshape(-1)
    m, e = ref.dyadic(s_in.double() / s_out.float().double())
    x = x.detach()
    lo, hi = torch.aminmax(x)
    zmax = torch.maximum(-lo, hi).double() / s_in.double().min()  # a bound on every channel's max |z|
    t = (torch.log2(zmax + 1).ceil() - 30).clamp(min=0)
    z = torch.div(x, s_in * torch.exp2(t).to(s_in.dtype)).round_()  # exactly round(x / s_in) when t = 0
    # e past [-64, 64] changes nothing: |z m| < 2^61 rounds to 0 at 2^-64, and to saturation at 2^64
    e = (e - t.long()).clamp(-64, 64)
    return _requantize(z.to(torch.int32), m.to(x.device), e.to(x.device), bits)


# I-BERT's softmax and LayerNorm take constants that I-BERT's modules hold as tensors (scales, the shift):
# these two composite ops take the tensors, so that torch.compile traces no .item() (the conversion to
# Python numbers runs inside the op, past tracing), and check the values at run time.
def _softmax_domain(x: torch.Tensor, s: float):
    """x at a scale inside i-exp's domain [3e-5, 1.6]: outside it (a freshly initialised I-BERT's attention
    scores have s ~ 5e-6) x is requantised by the dyadic kernel, x s / s' rounded half to even and
    saturating in int32 (a ratio below 2^-33 leaves every |x| < 2^31 at 0), to s' = 2^-15 when s is too
    small (an exp resolution of 3e-5, far below the 8-bit output's 2^-8) and to 2^-8 when too large (at
    s near the top of the domain i-exp's ln 2 step floor(-ln 2 / s) s is already ~1: HF's softmax there is
    far from exp; a 2^-8 grid is accurate, and the integers stay small)."""
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"pyops.intops.IntSoftmax: argument 'scaling_factor' must be finite and positive, got {s}")
    lo, hi = _IBERT_SCALES
    if lo <= s <= hi:
        return x, s
    target = 2.0 ** math.ceil(math.log2(lo)) if s < lo else 2.0 ** -8
    m, e = ref.dyadic(torch.tensor([s / target], dtype=torch.float64))
    return _requantize(x, m.to(x.device), e.clamp(-64, 64).to(x.device), 32), target


def _ibert_softmax_impl(x: torch.Tensor, scale: torch.Tensor, exp_scale: torch.Tensor, output_bits: int) -> torch.Tensor:
    """HF I-BERT's IntSoftmax in integers. x: int32 scores at ``scale``; ``exp_scale``: the scale of HF's
    16-bit QuantAct that requantises the exponentials (from its calibrated range).

    e = i-exp(x - rowmax) (pyops' intops_exp), e16 = clamp(round(e / exp_scale), 32767) (pyops'
    intops_requantize), out = floor(e16 floor(2^32 / sum e16) / 2^(32 - output_bits)): HF's steps, so the
    result is HF's to the LSB whatever its calibrated range (pyops' fused intops_softmax requantises against
    the exponentials' exact maximum c 2^30 instead, which equals HF only when the range does). e16 depends on
    d = rowmax - x alone, so it is tabulated over the d present, up to where it is 0 for good (e <= c 2^(30-q)
    <= exp_scale / 4 at q = floor(-d / x0) >= Q; HF clamps at q = 30): one i-exp and requantisation per
    distinct d, then a gather.
    """
    if x.numel() == 0:
        return torch.empty(x.shape, dtype=torch.int32, device=x.device)
    s0 = float(scale.reshape(-1)[0])
    x, s = _softmax_domain(x, s0)
    a = float(exp_scale.reshape(-1)[0])
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"pyops.intops.IntSoftmax: the 16-bit exponentials' scale must be finite and positive, got {a}")
    a *= (s0 / s) ** 2  # exp_scale counts exponentials in units of a s0^2 / 2^30; i-exp's here are a s^2 / 2^30
    x0, b, c = ref.ibert_exp_constants(s)
    top = c << ref.IBERT_EXP_N  # e at the row maximum, the largest
    q_max = min(ref.IBERT_EXP_N, max(0, math.ceil(math.log2(4 * top / a))))
    x = x.to(torch.int32)
    rowmax = x.amax(-1, keepdim=True)
    floor_ = (rowmax.long() + q_max * x0).clamp(min=-(2 ** 31)).to(torch.int32)  # d beyond q_max x0: e16 of q_max
    d = rowmax - torch.maximum(x, floor_)
    table_d = -torch.arange(int(d.max()) + 1, dtype=torch.int32, device=x.device)
    e = _exp(table_d, x0, b, c)
    t = max(0, top.bit_length() - 31)  # e / 2^t fits int32 for the requantize kernel; moves e16 by < 2^-15 LSB
    m, k = ref.dyadic(torch.tensor([1.0 / a], dtype=torch.float64))
    table = _requantize((e >> t).to(torch.int32), m.to(x.device), (k - t).clamp(-64, 64).to(x.device), 16)
    e16 = table.index_select(0, d.reshape(-1)).reshape(d.shape)
    wide = torch.int32 if x.shape[-1] <= 2 ** 16 else torch.int64  # sum e16 < 2^15 * row length
    total = e16.sum(-1, keepdim=True, dtype=wide).long()
    factor = torch.where(total > 0, torch.div(2 ** 32, total.clamp(min=1), rounding_mode="floor"), 0)
    # e16 factor <= 2^32 (e16 <= total) leaves int32: with factor = 2^8 fh + fl, floor(e16 factor / 2^S) is
    # (e16 fh + floor(e16 fl / 2^8)) >> (S - 8), every term within int32
    fh, fl = (factor >> 8).to(torch.int32), (factor & 255).to(torch.int32)
    out = e16 * fh
    out += (e16 * fl) >> 8
    return out >> (32 - output_bits - 8)


def _ibert_layernorm_impl(x: torch.Tensor, bias_int: torch.Tensor, shift: torch.Tensor, isqrt: str) -> torch.Tensor:
    """intops_layernorm with the variance shift given as HF's float buffer, checked here at run time."""
    sh = float(shift.reshape(-1)[0])
    if not (sh == int(sh) and 0 <= sh < 32):
        raise ValueError(f"pyops.intops.IntLayerNorm: buffer 'shift' must be an integer in [0, 32), got {sh}")
    return _layernorm(x, bias_int, int(sh), isqrt)


_ibert_softmax = define(
    "intops_ibert_softmax", "(Tensor x, Tensor scale, Tensor exp_scale, int output_bits) -> Tensor",
    reference=_ibert_softmax_impl, fake=_like(torch.int32), composite=True)
_ibert_layernorm = define(
    "intops_ibert_layernorm", "(Tensor x, Tensor bias_int, Tensor shift, str isqrt) -> Tensor",
    reference=_ibert_layernorm_impl, fake=_like(torch.int32), composite=True)


def _exact_fp32_matmul() -> bool:
    """fp32 matmuls are IEEE fp32 (no bf16 / tf32 shortcut), which the exact-integer GEMM relies on."""
    mkldnn = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    return torch.get_float32_matmul_precision() == "highest" and getattr(mkldnn, "fp32_precision", "none") in ("none", "ieee")


def _fast_cpu_int_mm() -> bool:
    """This torch's CPU ``_int_mm`` runs oneDNN's int8 GEMM (VNNI: ~9x the fp32 GEMM at BERT's shapes)
    only when the CPU has AVX512-VNNI and oneDNN is enabled; otherwise it is a scalar loop (~50x slower
    than the fp32 GEMM). The same condition as torch's own dispatch."""
    vnni = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(vnni is not None and vnni() and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def _int_addmm(x: torch.Tensor, w_q: torch.Tensor, w_f: torch.Tensor, w_abs_rowsum: float,
               b: Optional[torch.Tensor], int_mm: Optional[bool] = None) -> torch.Tensor:
    """x w^T + b exactly, for x (M, K) float32 of integers, w_q (N, K) integer weights (w_f: the same as
    float32), b (N,) float32 of integers; returned as float32 (x's dtype), the interface's.

    * ``torch._int_mm`` (int8 x int8 -> int32 accumulator) when x fits int8 and the sums fit int32, on CUDA
      where its shape rules hold (M > 16, K and N multiples of 8) and on CPUs with AVX512-VNNI (see
      ``_fast_cpu_int_mm``); ``int_mm=True`` forces it (any device), ``False`` forbids it.
    * else an fp32 GEMM when max|x| max_n sum_k |w_nk| + max|b| < 2^24: every partial sum is then an integer
      that fp32 holds exactly, in any summation order, so the result is the integer GEMM's to the bit at
      fp32 GEMM speed;
    * else fp64 (exact below 2^53), else int64.
    """
    if x.numel():
        x_lo, x_hi = torch.aminmax(x)
        lo, hi = float(x_lo), float(x_hi)
    else:
        lo = hi = 0.0
    bmax = float(b.abs().max()) if b is not None and b.numel() else 0.0
    bound = max(-lo, hi) * w_abs_rowsum + bmax
    m_rows, k = x.shape
    if int_mm is None:
        int_mm = (m_rows > 16 and k % 8 == 0 and w_q.shape[0] % 8 == 0) if x.is_cuda else (
            x.device.type == "cpu" and _fast_cpu_int_mm())
    if int_mm and w_q.dtype == torch.int8 and lo >= -128 and hi <= 127 and bound < 2 ** 31:
        acc = torch._int_mm(x.to(torch.int8), w_q.t())
        if b is not None:
            acc += b.to(torch.int32)
        return acc.to(x.dtype)
    if bound < 2 ** 24 and _exact_fp32_matmul() and x.dtype == torch.float32:
        return torch.addmm(b, x, w_f.t()) if b is not None else x @ w_f.t()
    if bound < 2 ** 53:
        wd = w_q.t().double()
        acc = torch.addmm(b.double(), x.double(), wd) if b is not None else x.double() @ wd
        return acc.to(x.dtype)
    acc = x.long() @ w_q.t().long()
    return (acc if b is None else acc + b.long()).to(x.dtype)


class QuantAct(nn.Module):
    """HF I-BERT ``QuantAct``: symmetric ``activation_bit`` quantisation with a running range.

    Training tracks the range of ``x`` (+ ``identity``) as HF does: the first batch sets it (added to the
    +-1e-5 initial values), later ones move it as an exponential moving average with ``act_range_momentum``
    (-1: running min / max); an empty batch leaves it. The scale is max(|x_min|, |x_max|) / (2^(bits-1) - 1)
    (``specified_min`` / ``specified_max`` override the range), stored in ``act_scaling_factor``.

    With ``pre_act_scaling_factor`` (x holds integer multiples of it, per tensor or per channel, negative
    allowed) x is requantised by pyops' dyadic integer kernel (HF's FixedPointMul) and clamped to
    [-2^(bits-1), 2^(bits-1) - 1]; with ``identity`` (and ``identity_scaling_factor``) both are requantised
    and added before the clamp: the residual add. Without it x is quantised directly, round(x / scale)
    clamped to [-(2^(bits-1) - 1), 2^(bits-1) - 2], **[-127, 126] at 8 bits: HF's range (I-BERT's), one
    code short of symmetric at the top**; ``full_range=True`` clamps to [-2^(bits-1), 2^(bits-1) - 1].
    (HF quantises ``x`` alone there even when an ``identity`` is given; this quantises the sum it tracked.)
    Returns ``(q * scale, scale)``.
    """

    x_min: torch.Tensor  # buffers (registered in __init__)
    x_max: torch.Tensor
    act_scaling_factor: torch.Tensor

    def __init__(self, activation_bit, act_range_momentum=0.95, per_channel=False, channel_len=None,
                 quant_mode=False, *, full_range: bool = False):
        super().__init__()
        if per_channel:
            raise NotImplementedError("pyops.intops.QuantAct: per-channel activation ranges are not supported (nor in HF)")
        self.activation_bit = activation_bit
        self.act_range_momentum = act_range_momentum
        self.per_channel = per_channel
        self.quant_mode = quant_mode
        self.full_range = full_range
        self.register_buffer("x_min", torch.full((1,), -1e-5))
        self.register_buffer("x_max", torch.full((1,), 1e-5))
        self.register_buffer("act_scaling_factor", torch.zeros(1))

    def extra_repr(self) -> str:
        return f"activation_bit={self.activation_bit}, quant_mode={self.quant_mode}"

    @torch.no_grad()
    def _track(self, x: torch.Tensor) -> None:
        if x.numel() == 0:
            return
        lo, hi = torch.aminmax(x.detach())
        if eager():
            check(not bool(torch.isnan(lo) | torch.isnan(hi)), "intops.QuantAct", "x", "has NaNs: no range to track")
        fresh = (self.x_min.min() > -1.1e-5) & (self.x_max.max() < 1.1e-5)
        if self.act_range_momentum == -1:
            new_min, new_max = torch.minimum(self.x_min, lo), torch.maximum(self.x_max, hi)
        else:
            m = self.act_range_momentum
            new_min, new_max = self.x_min * m + lo * (1 - m), self.x_max * m + hi * (1 - m)
        self.x_min.copy_(torch.where(fresh, self.x_min + lo, new_min))
        self.x_max.copy_(torch.where(fresh, self.x_max + hi, new_max))

    def forward(self, x, pre_act_scaling_factor=None, identity=None, identity_scaling_factor=None,
                specified_min=None, specified_max=None):
        op = "intops.QuantAct"
        x_act = x if identity is None else identity + x
        if self.training:
            self._track(x_act)
        if not self.quant_mode:
            return x_act, None
        n = 2 ** (self.activation_bit - 1) - 1
        with torch.no_grad():
            x_min = self.x_min if specified_min is None else torch.as_tensor(specified_min, device=x.device)
            x_max = self.x_max if specified_max is None else torch.as_tensor(specified_max, device=x.device)
            scale = torch.maximum(x_min.abs(), x_max.abs()).clamp(min=1e-8) / n
            _set_buffer(self, "act_scaling_factor", scale.reshape(self.act_scaling_factor.shape)
                        if scale.numel() == self.act_scaling_factor.numel() else scale)
        if pre_act_scaling_factor is None:
            lo, hi = (-n - 1, n) if self.full_range else (-n, n - 1)
            q = torch.round((1.0 / scale) * x_act.detach()).clamp_(lo, hi)
        else:
            scales = [("pre_act_scaling_factor", pre_act_scaling_factor)]
            if identity is not None:
                check(identity_scaling_factor is not None, op, "identity_scaling_factor",
                      "is needed with an identity (the residual's scale)")
                scales.append(("identity_scaling_factor", identity_scaling_factor))
            for name, s in scales:
                check(isinstance(s, torch.Tensor) and s.numel() in (1, x.shape[-1]), op, name,
                      f"must be a per-tensor or per-channel ({x.shape[-1]}) scale tensor")
                if eager():
                    check(bool(torch.isfinite(s).all() & (s != 0).all()), op, name, "must be finite and non-zero")
            if identity is None:
                q = _requantize_from(x, pre_act_scaling_factor, scale, self.activation_bit)
            else:
                q = (_requantize_from(x, pre_act_scaling_factor, scale, 32).long()
                     + _requantize_from(identity, identity_scaling_factor, scale, 32).long()).clamp_(-n - 1, n)
        y = torch.mul(q, scale.view(-1))
        if _wants_grad(x, identity):
            y = _straight_through(y, x_act)
        return y, self.act_scaling_factor


class QuantLinear(nn.Module):
    """HF I-BERT ``QuantLinear``: int8 weights (``weight_bit``) per channel or per tensor, an exact integer
    GEMM (int32 accumulator; see ``_int_addmm`` for how it is computed where), a ``bias_bit`` integer bias
    at the scale fc_scaling_factor * prev_act_scaling_factor, which the output has.

    Weights are quantised as HF does, round(w / scale) clamped to [-127, 126] at 8 bits (HF's range;
    ``full_range=True``: [-128, 127]), again whenever ``weight`` changes (cached in between) into the
    buffers ``weight_integer`` (int8 here, float in HF) and ``fc_scaling_factor``; the bias into
    ``bias_integer`` on every call, as it depends on the input's scale. Returns ``(acc * scale, scale)``.
    """

    bias: Optional[nn.Parameter]
    weight_integer: torch.Tensor  # buffers (registered in __init__; bias_integer only with a bias)
    fc_scaling_factor: torch.Tensor
    bias_integer: torch.Tensor
    # (weight, (its _version, device, dtype, per_channel, weight_bit, full_range), float ints, max row |sum|)
    _cache: Optional[tuple[nn.Parameter, tuple[int, torch.device, torch.dtype, bool, int, bool],
                           torch.Tensor, float]]

    def __init__(self, in_features, out_features, bias=True, weight_bit=8, bias_bit=32, per_channel=False,
                 quant_mode=False, *, full_range: bool = False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.register_buffer("weight_integer", torch.zeros(out_features, in_features, dtype=_int_dtype(weight_bit)))
        self.register_buffer("fc_scaling_factor", torch.zeros(out_features))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features))
            self.register_buffer("bias_integer", torch.zeros(out_features, dtype=_int_dtype(bias_bit)))
        else:
            self.register_parameter("bias", None)
        self.weight_bit = weight_bit
        self.bias_bit = bias_bit
        self.per_channel = per_channel
        self.quant_mode = quant_mode
        self.full_range = full_range
        self._cache = None  # (weight, its version/device/dtype and the rule, float32 integers, max row |sum|)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"weight_bit={self.weight_bit}, per_channel={self.per_channel}, quant_mode={self.quant_mode}")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # HF's per-tensor fc_scaling_factor becomes shape (1,) after a forward: take the stored shape
        key = prefix + "fc_scaling_factor"
        if key in state_dict and state_dict[key].shape != self.fc_scaling_factor.shape:
            self.fc_scaling_factor = torch.empty_like(state_dict[key], device=self.fc_scaling_factor.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def _quantized_weight(self):
        w = self.weight
        key = (w._version, w.device, w.dtype, self.per_channel, self.weight_bit, self.full_range)
        if self._cache is None or self._cache[0] is not w or self._cache[1] != key:
            q, scale = _symmetric_quantize(w, self.weight_bit, self.per_channel, self.full_range)
            self.weight_integer, self.fc_scaling_factor = q, scale
            rowsum = float(q.abs().sum(1, dtype=torch.int64).max()) if q.numel() else 0.0
            self._cache = (w, key, q.to(w.dtype), rowsum)
        return self.weight_integer, self.fc_scaling_factor, self._cache[2], self._cache[3]

    def forward(self, x, prev_act_scaling_factor=None):
        if not self.quant_mode:
            return nn.functional.linear(x, self.weight, self.bias), None
        op = "intops.QuantLinear"
        s_in = _one_scale(op, "prev_act_scaling_factor", prev_act_scaling_factor)
        w_q, w_scale, w_f, rowsum = self._quantized_weight()
        bias_scale = w_scale * s_in
        b = None
        if self.bias is not None:
            with torch.no_grad():
                nb = 2 ** (self.bias_bit - 1) - 1
                b = torch.round((1.0 / bias_scale) * self.bias.detach()).clamp_(-nb, nb - 1)
                self.bias_integer = b.clamp(-_F32_BELOW_2_31, _F32_BELOW_2_31).to(self.bias_integer.dtype)
        x_q = torch.div(x.detach(), s_in).round_().reshape(-1, self.in_features)
        out = _int_addmm(x_q, w_q, w_f, rowsum, b).mul_(bias_scale)
        out = out.reshape(*x.shape[:-1], self.out_features)
        if _wants_grad(x, self.weight, self.bias):
            out = _straight_through(out, nn.functional.linear(x, self.weight, self.bias))
        return out, bias_scale


class QuantEmbedding(nn.Module):
    """HF I-BERT ``QuantEmbedding``: int8 (``weight_bit``) per-tensor weights, quantised as HF does
    (round(w / scale) in [-127, 126] at 8 bits; ``full_range=True``: [-128, 127]) whenever ``weight``
    changes, into ``weight_integer`` (int8 here) and ``weight_scaling_factor``; a lookup of integer rows.
    ``max_norm`` works in float mode only (HF would renormalise the integer weights)."""

    weight_scaling_factor: torch.Tensor  # buffers (registered in __init__)
    weight_integer: torch.Tensor
    # (weight, (its _version, device, dtype, weight_bit, full_range))
    _cache: Optional[tuple[nn.Parameter, tuple[int, torch.device, torch.dtype, int, bool]]]

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, weight_bit=8, momentum=0.95,
                 quant_mode=False, *, full_range: bool = False):
        super().__init__()
        self.num_ = num_embeddings
        self.dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        self.weight = nn.Parameter(torch.zeros(num_embeddings, embedding_dim) if _weight is None else _weight)
        self.register_buffer("weight_scaling_factor", torch.zeros(1))
        self.register_buffer("weight_integer", torch.zeros(num_embeddings, embedding_dim, dtype=_int_dtype(weight_bit)))
        self.weight_bit = weight_bit
        self.momentum = momentum
        self.quant_mode = quant_mode
        self.full_range = full_range
        self._cache = None

    def extra_repr(self) -> str:
        return f"{self.num_}, {self.dim}, weight_bit={self.weight_bit}, quant_mode={self.quant_mode}"

    def forward(self, x, positions=None, incremental_state=None):
        float_args = (self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse)
        if not self.quant_mode:
            return nn.functional.embedding(x, self.weight, *float_args), None
        check(self.max_norm is None, "intops.QuantEmbedding", "max_norm", "is not supported in quant_mode")
        w = self.weight
        key = (w._version, w.device, w.dtype, self.weight_bit, self.full_range)
        if self._cache is None or self._cache[0] is not w or self._cache[1] != key:
            with torch.no_grad():
                self.weight_integer, self.weight_scaling_factor = _symmetric_quantize(
                    w, self.weight_bit, False, self.full_range)
            self._cache = (w, key)
        y = nn.functional.embedding(x, self.weight_integer, self.padding_idx).to(w.dtype) * self.weight_scaling_factor
        if _wants_grad(w):
            y = _straight_through(y, nn.functional.embedding(x, w, *float_args))
        return y, self.weight_scaling_factor


class IntGELU(nn.Module):
    """HF I-BERT ``IntGELU`` on pyops' integer GELU (I-BERT's second-order erf polynomial): input scale
    per tensor or per channel (the preceding QuantLinear's), output at s * scale_erf / 2, which is negative
    as in I-BERT (QuantAct folds the sign). ``method="shiftgelu"``: I-ViT's ShiftGELU (per-tensor scale,
    ``output_bit``; not traceable by torch.compile, its constants need the scale as a Python float)."""

    def __init__(self, quant_mode=True, force_dequant="none", *, method: str = "ibert", output_bit: int = 8):
        super().__init__()
        check(method in ("ibert", "shiftgelu"), "intops.IntGELU", "method", f"must be 'ibert' or 'shiftgelu', got {method!r}")
        self.quant_mode = _quant_mode("intops.IntGELU", quant_mode, force_dequant, ("gelu",))
        self.method, self.output_bit = method, output_bit

    def extra_repr(self) -> str:
        return f"quant_mode={self.quant_mode}, method={self.method!r}"

    def forward(self, x, scaling_factor=None):
        if not self.quant_mode:
            return nn.functional.gelu(x), None
        op = "intops.IntGELU"
        check(isinstance(scaling_factor, torch.Tensor), op, "scaling_factor", "must be a tensor in quant_mode")
        s = scaling_factor.detach()
        x_int = _as_ints(x, s)
        if self.method == "shiftgelu":
            out, out_scale = int_gelu(x_int, _one_scale(op, "scaling_factor", s), "shiftgelu", self.output_bit)
            out_scale = torch.tensor(out_scale, dtype=x.dtype, device=x.device)
        else:
            st = s.reshape(-1)
            check(st.numel() in (1, x.shape[-1]), op, "scaling_factor",
                  f"must be per-tensor or per-channel with {x.shape[-1]} entries, got {st.numel()}")
            if eager():
                check(bool(torch.isfinite(st).all() & (st >= 1e-6).all() & (st <= 10).all()), op, "scaling_factor",
                      "must be finite and in [1e-6, 10]")
            b, c, one, out_scale = ref.ibert_gelu_constants(st)
            out = _gelu(x_int, b.to(x.device), c.to(x.device), one.to(x.device))
            out_scale = out_scale.to(x.dtype).reshape(s.shape)
        y = torch.mul(out, out_scale)
        if _wants_grad(x):
            y = _straight_through(y, nn.functional.gelu(x))
        return y, out_scale


class IntSoftmax(nn.Module):
    """HF I-BERT ``IntSoftmax``: I-BERT's integer softmax, HF's steps (see ``_ibert_softmax_impl``) on pyops'
    integer exp and requantisation, the exponentials requantised to 16 bits at the scale of the child
    QuantAct ``act`` (its range tracked in training, from the integer exponentials, as HF does).

    Any positive input scale: outside i-exp's domain [3e-5, 1.6] (a freshly initialised I-BERT's scores
    have ~5e-6) the scores are first requantised by the dyadic kernel to 2^-15 or 2^-8. ``method="shiftmax"``:
    I-ViT's Shiftmax on pyops' fused kernel (no 16-bit stage; its scale must lie in [2e-5, 1] and, being
    turned into the kernel's constants as a Python float, is not traceable by torch.compile).
    Returns ``(p * 2^-bits, 2^-bits)``, the scale a Python float as in HF.
    """

    act: QuantAct

    def __init__(self, output_bit, quant_mode=False, force_dequant="none", *, method: str = "ibert"):
        super().__init__()
        check(method in ("ibert", "shiftmax"), "intops.IntSoftmax", "method", f"must be 'ibert' or 'shiftmax', got {method!r}")
        _check_bits("intops.IntSoftmax", output_bit)
        self.output_bit = output_bit
        self.quant_mode = _quant_mode("intops.IntSoftmax", quant_mode, force_dequant, ("softmax",))
        self.method = method
        self.act = QuantAct(16, quant_mode=self.quant_mode)

    def extra_repr(self) -> str:
        return f"output_bit={self.output_bit}, quant_mode={self.quant_mode}, method={self.method!r}"

    @torch.no_grad()
    def _track_exponentials(self, x_int: torch.Tensor, s: float) -> None:
        """HF's training pass feeds the integer exponentials to ``act``, which tracks their range."""
        if x_int.numel() == 0:
            return
        x_k, s_k = _softmax_domain(x_int, s)
        d = x_k.long() - x_k.long().amax(-1, keepdim=True)
        e = _exp(d.clamp_(min=-(2 ** 31)).to(torch.int32), *ref.ibert_exp_constants(s_k))
        self.act._track(e.double().mul_((s_k / s) ** 2).to(torch.float32))  # in HF's units, a s^2 / 2^30

    def forward(self, x, scaling_factor):
        if not self.quant_mode:
            return nn.functional.softmax(x, dim=-1), None
        op = "intops.IntSoftmax"
        s = _one_scale(op, "scaling_factor", scaling_factor)
        x_int = _as_ints(x, s)
        if self.method == "shiftmax":
            out, out_scale = int_softmax(x_int, s, self.output_bit, "shiftmax")
        else:
            if self.training:
                self._track_exponentials(x_int, float(s))
            act = self.act
            with torch.no_grad():
                exp_scale = torch.maximum(act.x_min.abs(), act.x_max.abs()).clamp(min=1e-8) / (2 ** (act.activation_bit - 1) - 1)
                _set_buffer(act, "act_scaling_factor", exp_scale)
            out = _ibert_softmax(x_int, s, exp_scale, self.output_bit)
            out_scale = 2.0 ** -self.output_bit
        y = torch.mul(out, out_scale)
        if _wants_grad(x):
            y = _straight_through(y, nn.functional.softmax(x, dim=-1))
        return y, out_scale


class IntLayerNorm(nn.Module):
    """HF I-BERT ``IntLayerNorm`` on pyops' integer LayerNorm, over the trailing ``normalized_shape`` (an
    int or a shape, as torch's LayerNorm), with an exact integer sqrt (``isqrt="newton"``: I-ViT's).

    As HF: the variance sums floor((x - mean) / 2^shift)^2, ``shift`` learnt in training (raised when the
    sum reaches 2^32); output scale sqrt(N) / 2^30 * weight (sqrt in float32, as HF). Unlike HF, a constant
    row gives the bias alone (HF divides by zero), the kernel raises the shift further per row where the
    variance would leave int64, and ``weight`` starts at ones (HF's zeros rely on its model's init).
    The child ``activation`` is HF's (part of its state, unused by its forward, as here).
    """

    shift: torch.Tensor  # buffer (registered in __init__)

    def __init__(self, normalized_shape, eps, output_bit=8, quant_mode=False, force_dequant="none", *,
                 isqrt: str = "exact"):
        super().__init__()
        check(isqrt in ("exact", "newton"), "intops.IntLayerNorm", "isqrt", f"must be 'exact' or 'newton', got {isqrt!r}")
        self.normalized_shape = normalized_shape
        self._shape = (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self._shape))
        self.bias = nn.Parameter(torch.zeros(self._shape))
        self.quant_mode = _quant_mode("intops.IntLayerNorm", quant_mode, force_dequant, ("layernorm",))
        self.register_buffer("shift", torch.zeros(1))
        self.output_bit = output_bit
        self.isqrt = isqrt
        self.activation = QuantAct(self.output_bit, quant_mode=self.quant_mode)
        self._n = math.prod(self._shape)
        self._scale = float(torch.tensor(float(self._n)).sqrt()) / 2 ** 30  # HF's float32 sqrt

    def extra_repr(self) -> str:
        return f"{self._shape}, eps={self.eps}, quant_mode={self.quant_mode}, isqrt={self.isqrt!r}"

    @torch.no_grad()
    def _learn_shift(self, x_int: torch.Tensor) -> None:
        """HF's overflow fallback: when sum(floor(y / 2^shift)^2) reaches 2^32 in some row, raise the shift to
        ceil(log2(sqrt(max sum(y^2) / 2^32)))."""
        if x_int.numel() == 0:
            return
        xl = x_int.long()
        y = (xl - ref._round_div(xl.sum(-1, keepdim=True), self._n)).double()
        shift = int(self.shift.max())
        if float((torch.floor(y / 2 ** shift) ** 2).sum(-1).max()) >= 2 ** 32:
            need = math.ceil(math.log2(math.sqrt(float((y * y).sum(-1).max()) / 2 ** 32)))
            self.shift.fill_(max(shift, need))

    def forward(self, x, scaling_factor=None):
        if not self.quant_mode:
            return nn.functional.layer_norm(x, self._shape, self.weight, self.bias, self.eps), None
        op = "intops.IntLayerNorm"
        check(isinstance(scaling_factor, torch.Tensor), op, "scaling_factor", "must be a tensor in quant_mode")
        check(tuple(x.shape[x.dim() - len(self._shape):]) == self._shape, op, "x",
              f"must end in the normalized shape {self._shape}, got {tuple(x.shape)}")
        x_int = _as_ints(x, scaling_factor).flatten(x.dim() - len(self._shape))
        if self.training:
            self._learn_shift(x_int)
        w, b = self.weight.detach().reshape(-1), self.bias.detach().reshape(-1)
        if eager():
            check(bool((w != 0).all()), op, "weight", "must be non-zero (the bias is folded in as bias / weight)")
        bias_int = torch.floor((b.double() / w.double()) / self._scale).long()
        out = _ibert_layernorm(x_int, bias_int, self.shift, self.isqrt).reshape(x.shape)
        scale = self._scale * self.weight
        y = torch.mul(out, scale.detach())
        if _wants_grad(x, self.weight, self.bias):
            y = _straight_through(y, nn.functional.layer_norm(x, self._shape, self.weight, self.bias, self.eps))
        return y, scale


# ------------------------------------------------------------ HF I-BERT conversion
_HF_QUANT_MODULES = "transformers.models.ibert.quant_modules"
_FROM_HF = {
    "QuantEmbedding": lambda m: QuantEmbedding(
        m.num_, m.dim, m.padding_idx, m.max_norm, m.norm_type, m.scale_grad_by_freq, m.sparse,
        weight_bit=m.weight_bit, momentum=m.momentum, quant_mode=m.quant_mode),
    "QuantAct": lambda m: QuantAct(m.activation_bit, m.act_range_momentum, m.per_channel, None, m.quant_mode),
    "QuantLinear": lambda m: QuantLinear(m.in_features, m.out_features, getattr(m, "bias", None) is not None,
                                         m.weight_bit, m.bias_bit, m.per_channel, m.quant_mode),
    "IntGELU": lambda m: IntGELU(m.quant_mode),
    "IntSoftmax": lambda m: IntSoftmax(m.output_bit, m.quant_mode),
    "IntLayerNorm": lambda m: IntLayerNorm(m.normalized_shape, m.eps, m.output_bit, m.quant_mode),
}


class _PreviousLayerScale:
    """Forward pre-hook of HF I-BERT encoder layer i > 0: the scale of its input is layer i - 1's output
    QuantAct's, not the embeddings' that HF's IBertEncoder hands every layer. A callable object, not a
    closure, so that deepcopy maps it onto the copied model."""

    def __init__(self, previous_layer: nn.Module):
        self.previous_layer = previous_layer

    def __call__(self, module, args, kwargs):
        # HF's IBertOutput and its QuantAct, reached through nn.Module.__getattr__ (typed Tensor | Module)
        output = cast(nn.Module, self.previous_layer.output)
        act = cast(nn.Module, output.output_activation)
        if len(args) >= 2 and args[1] is not None and getattr(act, "quant_mode", False):
            args = (args[0], act.act_scaling_factor, *args[2:])
        return args, kwargs


def convert_ibert(model: nn.Module) -> dict:
    """Swap, in place, every HuggingFace I-BERT quant module in ``model`` (``transformers.models.ibert.
    quant_modules``: QuantEmbedding, QuantAct, QuantLinear, IntGELU, IntSoftmax, IntLayerNorm) for the pyops
    module of the same name, carrying over its quant_mode, bit widths, train/eval state and whole state
    (weights, learnt ranges, scales, LayerNorm shifts), so that the model's state_dict keys are unchanged.
    transformers itself is not imported.

    HF's ``IBertEncoder`` passes the embeddings' scale to every layer, where I-BERT passes each layer's
    output scale on: layer i > 0 gets x at layer i - 1's output scale with the embeddings' scale as its
    label. HF's float-simulated QuantLinear never rounds x / scale and so does not notice; the integer GEMM
    needs the true grid. Every encoder layer after the first gets a forward pre-hook that hands it its
    input's true scale (layer i - 1's output QuantAct's). Each layer then matches HF's layer given the same
    input and scale to the LSB (bit-exact where HF's float arithmetic is exact). End to end, HF's layers
    i > 0 also round their residual and their query / key / value requantisation at the mislabelled grid,
    which the converted model does not, so the outputs differ from HF's by a few LSB.

    Returns ``{"converted": {module name: class name}, "counts": {class name: count}, "total": n,
    "layer_scale_hooks": number of encoder layers given the pre-hook}``.
    """
    check(isinstance(model, nn.Module), "intops.convert_ibert", "model", "must be an nn.Module", TypeError)
    converted: dict[str, str] = {}
    for name, module in list(model.named_modules()):
        kind = type(module).__name__
        if type(module).__module__ != _HF_QUANT_MODULES or kind not in _FROM_HF:
            continue
        check(bool(name), "intops.convert_ibert", "model", f"is itself an HF {kind}: pass the model that holds it")
        if any(name.startswith(done + ".") for done in converted):
            continue  # a child of a converted module (IntSoftmax.act, IntLayerNorm.activation): came along
        new = _FROM_HF[kind](module)
        new.load_state_dict(module.state_dict(), strict=True)
        first = next(iter(module.state_dict().values()), None)
        if first is not None:
            new.to(first.device)
        old_subs = dict(module.named_modules())
        for sub_name, new_sub in new.named_modules():
            new_sub.training = old_subs[sub_name].training if sub_name in old_subs else module.training
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, new)
        converted[name] = kind
    hooked = 0
    for module in model.modules():
        if type(module).__name__ == "IBertEncoder" and type(module).__module__.startswith("transformers."):
            layers = cast(nn.ModuleList, module.layer)  # HF's IBertEncoder.layer
            for previous, layer in zip(layers, layers[1:]):
                if not any(isinstance(h, _PreviousLayerScale) for h in layer._forward_pre_hooks.values()):
                    layer.register_forward_pre_hook(_PreviousLayerScale(previous), with_kwargs=True)
                    hooked += 1
    counts: dict[str, int] = {}
    for kind in converted.values():
        counts[kind] = counts.get(kind, 0) + 1
    return {"converted": converted, "counts": counts, "total": len(converted), "layer_scale_hooks": hooked}
