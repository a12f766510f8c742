"""intops: integer-only softmax, GELU and LayerNorm (I-BERT, I-ViT), for real.

The papers' codes simulate integers in float32; these ops take integer tensors
(int8 / int16 / int32 with real value ``x * scale``) and compute in integers
only. Floats appear once per call, to derive the integer constants from the
scale (``pyops.reference.intops``). Every function returns ``(out, out_scale)``.

Modules ``IntSoftmax``, ``IntGELU``, ``IntLayerNorm``, ``QuantAct`` follow the
HuggingFace I-BERT call convention ``forward(x, scaling_factor) -> (x, scaling_factor)``
(x a float tensor of integer multiples of the scale) and train with
straight-through gradients: the backward is that of the float function approximated.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Union

import torch
from torch import nn

from pyops._library import check, define, eager, triton_launcher
from pyops.reference import intops as ref

_triton = functools.partial(triton_launcher, "intops")  # pyops.kernels.intops.<name>, imported on first use

__all__ = [
    "int_exp", "int_softmax", "int_gelu", "int_layernorm", "requantize", "isqrt",
    "IntSoftmax", "IntGELU", "IntLayerNorm", "QuantAct",
]

INT_DTYPES = (torch.int8, torch.int16, torch.int32)


def _like(dtype):
    return lambda x, *rest: torch.empty(x.shape, dtype=dtype, device=x.device)


_exp = define("intops_exp", "(Tensor x, int x0, int b, int c) -> Tensor", reference=ref.int_exp,
              fake=_like(torch.int64), triton=_triton("int_exp"))
_softmax = define("intops_softmax", "(Tensor x, int x0, int b, int c, int output_bits, str method) -> Tensor",
                  reference=ref.softmax, fake=_like(torch.int32), triton=_triton("softmax"))
_gelu = define("intops_gelu", "(Tensor x, Tensor b, Tensor c, Tensor one) -> Tensor", reference=ref.gelu,
               fake=_like(torch.int64), triton=_triton("gelu"))
_shiftgelu = define("intops_shiftgelu", "(Tensor x, int x0, int output_bits) -> Tensor", reference=ref.shiftgelu,
                    fake=_like(torch.int64), triton=_triton("shiftgelu"))
_layernorm = define("intops_layernorm", "(Tensor x, Tensor bias_int, int shift, str isqrt) -> Tensor",
                    reference=ref.layernorm, fake=_like(torch.int32), triton=_triton("layernorm"))
_isqrt = define("intops_isqrt", "(Tensor x) -> Tensor", reference=ref.isqrt, fake=_like(torch.int64),
                triton=_triton("isqrt"))
_requantize = define("intops_requantize", "(Tensor x, Tensor m, Tensor e, int bits) -> Tensor",
                     reference=ref.requantize, fake=_like(torch.int32), triton=_triton("requantize"))


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


def int_softmax(x: torch.Tensor, scale: float, output_bits: int = 8, method: str = "ibert"):
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
    st = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
    check(st.numel() in (1, x.shape[-1]), op, "scale",
          f"must be per-tensor or per-channel with {x.shape[-1]} entries, got {st.numel()}")
    check(bool(torch.isfinite(st).all()) and bool((st >= 1e-6).all()) and bool((st <= 10).all()), op, "scale",
          "must be finite and in [1e-6, 10]")
    b, c, one, out_scale = ref.ibert_gelu_constants(st)
    dev = x.device
    return _gelu(x, b.to(dev), c.to(dev), one.to(dev)), out_scale.to(dev)


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
def _to_int(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (integer multiples of scale) -> int32 tensor of the multiples."""
    return torch.round(x.detach() / scale.detach()).to(torch.int32)


def _straight_through(y_int_real: torch.Tensor, y_float: torch.Tensor) -> torch.Tensor:
    """Forward value from the integer kernel, gradient of the float function."""
    return y_float + (y_int_real.to(y_float.dtype) - y_float).detach()


class IntSoftmax(nn.Module):
    """I-BERT ``IntSoftmax(output_bit)`` (or I-ViT Shiftmax with ``method="shiftmax"``)."""

    def __init__(self, output_bit: int = 8, quant_mode: bool = True, method: str = "ibert"):
        super().__init__()
        self.output_bit, self.quant_mode, self.method = output_bit, quant_mode, method

    def forward(self, x: torch.Tensor, scaling_factor: torch.Tensor):
        if not self.quant_mode:
            return torch.softmax(x, dim=-1), None
        out, out_scale = int_softmax(_to_int(x, scaling_factor), scaling_factor, self.output_bit, self.method)
        scale = torch.tensor(out_scale, dtype=x.dtype, device=x.device)
        return _straight_through(out * scale, torch.softmax(x, dim=-1)), scale


class IntGELU(nn.Module):
    """I-BERT ``IntGELU`` (or I-ViT ShiftGELU with ``method="shiftgelu"``)."""

    def __init__(self, quant_mode: bool = True, method: str = "ibert", output_bit: int = 8):
        super().__init__()
        self.quant_mode, self.method, self.output_bit = quant_mode, method, output_bit

    def forward(self, x: torch.Tensor, scaling_factor: Optional[torch.Tensor] = None):
        if not self.quant_mode:
            return nn.functional.gelu(x), None
        out, out_scale = int_gelu(_to_int(x, scaling_factor), scaling_factor, self.method, self.output_bit)
        scale = torch.as_tensor(out_scale, dtype=x.dtype, device=x.device)
        return _straight_through(out * scale, nn.functional.gelu(x)), scale


class IntLayerNorm(nn.Module):
    """I-BERT ``IntLayerNorm`` with an exact integer sqrt (``isqrt="newton"``: I-ViT's).
    The shift that keeps the variance below 2^32 is learnt in training like I-BERT's."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, output_bit: int = 8, quant_mode: bool = True,
                 isqrt: str = "exact"):
        super().__init__()
        self.normalized_shape, self.eps, self.output_bit = normalized_shape, eps, output_bit
        self.quant_mode, self.isqrt = quant_mode, isqrt
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.register_buffer("shift", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor, scaling_factor: Optional[torch.Tensor] = None):
        y_float = nn.functional.layer_norm(x, (self.normalized_shape,), self.weight, self.bias, self.eps)
        if not self.quant_mode:
            return y_float, None
        x_int = _to_int(x, scaling_factor)
        if self.training and x_int.numel():  # I-BERT's set_shift: keep sum((y >> shift)^2) below 2^32
            y = x_int.double() - x_int.double().mean(-1, keepdim=True)
            var = (y * y).sum(-1).max()
            need = math.ceil(math.log2(math.sqrt(float(var) / 2 ** 32))) if var > 2 ** 32 else 0
            self.shift.fill_(max(int(self.shift), need))
        out, out_scale = int_layernorm(x_int, self.weight, self.bias, int(self.shift), self.isqrt)
        return _straight_through(out * out_scale, y_float), out_scale


class QuantAct(nn.Module):
    """I-BERT ``QuantAct``: symmetric ``activation_bit`` quantisation with a running range
    (momentum 0.95); given the input's scale, requantises with the dyadic integer kernel.
    Straight-through gradient inside the range."""

    def __init__(self, activation_bit: int = 8, act_range_momentum: float = 0.95, quant_mode: bool = True):
        super().__init__()
        self.activation_bit, self.momentum, self.quant_mode = activation_bit, act_range_momentum, quant_mode
        self.register_buffer("x_min", torch.zeros(()))
        self.register_buffer("x_max", torch.zeros(()))

    def forward(self, x: torch.Tensor, pre_act_scaling_factor: Optional[torch.Tensor] = None):
        if not self.quant_mode:
            return x, None
        if self.training and x.numel():  # an empty batch leaves the running range as it is
            lo, hi = x.detach().min(), x.detach().max()
            first = bool(self.x_min == self.x_max)
            self.x_min.copy_(lo if first else self.momentum * self.x_min + (1 - self.momentum) * lo)
            self.x_max.copy_(hi if first else self.momentum * self.x_max + (1 - self.momentum) * hi)
        n = 2 ** (self.activation_bit - 1) - 1
        scale = (torch.maximum(self.x_min.abs(), self.x_max.abs()).clamp(min=1e-8) / n).to(x.dtype)
        if pre_act_scaling_factor is None:
            q = torch.clamp(torch.round(x.detach() / scale), -n - 1, n)
        else:
            q, _ = requantize(_to_int(x, pre_act_scaling_factor), pre_act_scaling_factor, scale, self.activation_bit)
        return _straight_through(q * scale, x), scale

