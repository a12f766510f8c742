"""pam: multiplication-free piecewise-affine arithmetic (Kosson & Jaggi 2023).

``PAM(a, b) = bits^-1(bits(a) + bits(b) - bits(1))``: a float multiply replaced
by one integer add.  Primitive ops (``torch.ops.pyops.pam_*``) have C++, CUDA
and Triton kernels; exp, log, pow, sqrt, softmax and layer_norm are built from
them, so their backward passes are multiplication-free too.

Backward modes (``backward=`` on every differentiable function):
  * ``"pam"`` (default, what the paper trains with): grad products are PAMs,
    e.g. dA = PAM-matmul(dY, B^T);
  * ``"exact"``: the exact derivative of the piecewise-affine function, a power
    of two per product applied by exponent addition.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from pyops import _library
from pyops._library import check, check_float, check_same_device, define, triton_launcher
from pyops.reference import pam as ref

_triton = functools.partial(triton_launcher, "pam")  # pyops.kernels.pam.<name>, imported on first use

__all__ = [
    "mul", "div", "exp2", "log2", "exp", "log", "pow", "sqrt", "matmul", "bmm", "linear", "softmax",
    "layer_norm", "PAMLinear", "PAMConv2d", "convert",
]

DTYPES = (torch.float32, torch.bfloat16, torch.float64)
BACKWARD_MODES = ("pam", "exact")
Operand = Union[torch.Tensor, float]  # a tensor, or a Python number taking the other's dtype
LOG2E = math.log2(math.e)


def _broadcast_fake(a, b, *rest):
    return a.new_empty(torch.broadcast_shapes(a.shape, b.shape))


def _bmm_fake(a, b, offset=1.0, exact_grad=False):
    return a.new_empty(a.shape[0], a.shape[1], b.shape[2])


_mul = define("pam_mul", "(Tensor a, Tensor b, float offset=1.0, bool exact_grad=False) -> Tensor",
              reference=ref.mul, fake=_broadcast_fake, triton=_triton("mul"), check=ref.check_mul)
_div = define("pam_div", "(Tensor a, Tensor b) -> Tensor", reference=ref.div, fake=_broadcast_fake,
              triton=_triton("div"), check=ref.check_div)
_grad_factor = define("pam_mul_grad_factor", "(Tensor a, Tensor b, float offset=1.0) -> Tensor",
                      reference=ref.mul_grad_factor, fake=_broadcast_fake, triton=_triton("mul_grad_factor"),
                      check=ref.check_mul_grad_factor)
# fakes return contiguous outputs, as the C++, CUDA and Triton kernels do (empty_like would keep a
# transposed input's strides, and inductor asserts the kernel's strides against the fake's)
_exp2 = define("pam_exp2", "(Tensor x) -> Tensor", reference=ref.exp2, fake=lambda x: x.new_empty(x.shape),
               triton=_triton("exp2"), check=ref.check_exp2)
_log2 = define("pam_log2", "(Tensor x) -> Tensor", reference=ref.log2, fake=lambda x: x.new_empty(x.shape),
               triton=_triton("log2"), check=ref.check_log2)
_bmm = define("pam_bmm", "(Tensor a, Tensor b, float offset=1.0, bool exact_grad=False) -> Tensor",
              reference=ref.bmm, fake=_bmm_fake, triton=_triton("bmm"), check=ref.check_bmm)
_bmm_exact_grad = define(
    "pam_bmm_exact_grad", "(Tensor grad, Tensor a, Tensor b, float offset=1.0) -> (Tensor, Tensor)",
    reference=ref.bmm_exact_grad,
    fake=lambda g, a, b, offset=1.0: (a.new_empty(a.shape), b.new_empty(b.shape)),
    triton=_triton("bmm_exact_grad"), check=ref.check_bmm_exact_grad,
)


# ------------------------------------------------------------------ autograd
def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*[t for t in inputs if isinstance(t, torch.Tensor)])
    ctx.args = [t for t in inputs if not isinstance(t, torch.Tensor)]


def _mul_backward(ctx, g):
    a, b = ctx.saved_tensors
    offset, exact = ctx.args
    if exact:
        ga = _mul(g, _grad_factor(a, b, offset))
        gb = _mul(g, _grad_factor(b, a, offset))
    else:
        ga, gb = _mul(g, b, offset), _mul(g, a, offset)
    return ga.sum_to_size(a.shape), gb.sum_to_size(b.shape), None, None


def _div_backward(ctx, g):
    # Quotient rule in PAD/PAM: d(a/b)/da = 1/b, d(a/b)/db = -(a/b)/b.
    a, b = ctx.saved_tensors
    ga = _div(g, b)
    gb = -_div(_mul(g, _div(a, b)), b)
    return ga.sum_to_size(a.shape), gb.sum_to_size(b.shape)


def _exp2_backward(ctx, g):
    # d pa_exp2/dx = 2^floor(x), itself a pa_exp2 of an integer: an exact PAM factor.
    (x,) = ctx.saved_tensors
    factor = _exp2(torch.floor(x))
    return torch.where(torch.isinf(factor), torch.zeros_like(g), _mul(g, factor))


def _log2_backward(ctx, g):
    # d pa_log2/dx = 2^-E(x), and E(x) = floor(pa_log2(x)).
    (x,) = ctx.saved_tensors
    return _mul(g, _exp2(-torch.floor(_log2(x))))


def _bmm_backward(ctx, g):
    a, b = ctx.saved_tensors
    offset, exact = ctx.args
    if exact:
        ga, gb = _bmm_exact_grad(g, a, b, offset)
    else:
        ga, gb = _bmm(g, b.transpose(1, 2), offset), _bmm(a.transpose(1, 2), g, offset)
    return ga, gb, None, None


for _name, _bw in [("pam_mul", _mul_backward), ("pam_div", _div_backward), ("pam_exp2", _exp2_backward),
                   ("pam_log2", _log2_backward), ("pam_bmm", _bmm_backward)]:
    torch.library.register_autograd(f"pyops::{_name}", _bw, setup_context=_save_inputs, lib=_library._lib)


# ---------------------------------------------------------------- public API
def _mode(op: str, backward: str) -> bool:
    check(backward in BACKWARD_MODES, op, "backward", f"must be one of {BACKWARD_MODES}, got {backward!r}")
    return backward == "exact"


def _check_offset(op: str, offset: float) -> None:
    check(0.5 < offset < 2.0 and math.isfinite(offset), op, "offset", f"must be in (0.5, 2), got {offset}")


def _pair(op: str, a, b, broadcast: bool = True):
    """Validate two operands; a Python number becomes a tensor of the other's dtype."""
    if not isinstance(b, torch.Tensor):
        check(isinstance(b, (int, float)), op, "b", f"must be a Tensor or a number, got {type(b).__name__}", TypeError)
        check_float(op, "a", a, DTYPES)
        b = torch.tensor(float(b), dtype=a.dtype, device=a.device)
    if not isinstance(a, torch.Tensor):
        check(isinstance(a, (int, float)), op, "a", f"must be a Tensor or a number, got {type(a).__name__}", TypeError)
        check_float(op, "b", b, DTYPES)
        a = torch.tensor(float(a), dtype=b.dtype, device=b.device)
    check_float(op, "a", a, DTYPES)
    check_float(op, "b", b, DTYPES)
    check(a.dtype == b.dtype, op, "b", f"must have the dtype of 'a' ({a.dtype}), got {b.dtype}", TypeError)
    check_same_device(op, a=a, b=b)
    if not broadcast:
        return a, b
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        check(False, op, "b", f"shape {tuple(b.shape)} does not broadcast with a's {tuple(a.shape)}")
    return a, b


def mul(a: Operand, b: Operand, *, offset: float = 1.0, backward: str = "pam") -> torch.Tensor:
    """Elementwise PAM product, broadcasting like ``torch.mul``."""
    a, b = _pair("pam.mul", a, b)
    _check_offset("pam.mul", offset)
    return _mul(a, b, offset, _mode("pam.mul", backward))


def div(a: Operand, b: Operand) -> torch.Tensor:
    """Elementwise PAD quotient ``bits^-1(A - B + bits(1))`` (over-estimates by at most 12.5%)."""
    a, b = _pair("pam.div", a, b)
    return _div(a, b)


def exp2(x: torch.Tensor) -> torch.Tensor:
    """``2^floor(x) * (1 + frac(x))``, built from the bit pattern."""
    check_float("pam.exp2", "x", x, DTYPES)
    return _exp2(x)


def log2(x: torch.Tensor) -> torch.Tensor:
    """Exponent plus mantissa fraction: the inverse of :func:`exp2`."""
    check_float("pam.log2", "x", x, DTYPES)
    return _log2(x)


def exp(x: torch.Tensor, *, backward: str = "pam") -> torch.Tensor:
    return exp2(mul(x, LOG2E, backward=backward))


def log(x: torch.Tensor) -> torch.Tensor:
    return div(log2(x), LOG2E)


def pow(a: torch.Tensor, b: Operand, *, backward: str = "pam") -> torch.Tensor:
    """``pa_exp2(PAM(pa_log2 a, b))``, with ``0 ** b = 0``."""
    check_float("pam.pow", "a", a, DTYPES)
    out = exp2(mul(log2(a), b, backward=backward))
    return torch.where(a == 0, torch.zeros_like(out), out)


def sqrt(x: torch.Tensor, *, backward: str = "pam") -> torch.Tensor:
    return pow(x, 0.5, backward=backward)


def bmm(a: torch.Tensor, b: torch.Tensor, *, offset: float = 1.0, backward: str = "pam") -> torch.Tensor:
    """[B, n, k] x [B, k, m] with every product a PAM and float accumulation."""
    op = "pam.bmm"
    a, b = _pair(op, a, b, broadcast=False)
    check(a.dim() == 3, op, "a", f"must be 3-D [batch, n, k], got shape {tuple(a.shape)}")
    check(b.dim() == 3, op, "b", f"must be 3-D [batch, k, m], got shape {tuple(b.shape)}")
    check(a.shape[0] == b.shape[0] and a.shape[2] == b.shape[1], op, "b",
          f"shape {tuple(b.shape)} does not multiply a's {tuple(a.shape)}")
    _check_offset(op, offset)
    return _bmm(a, b, offset, _mode(op, backward))


def matmul(a: torch.Tensor, b: torch.Tensor, *, offset: float = 1.0, backward: str = "pam") -> torch.Tensor:
    """``torch.matmul`` semantics (1-D, 2-D, batched with broadcasting) with PAM products."""
    op = "pam.matmul"
    a, b = _pair(op, a, b, broadcast=False)
    check(a.dim() >= 1, op, "a", "must have at least one dimension")
    check(b.dim() >= 1, op, "b", "must have at least one dimension")
    _check_offset(op, offset)
    a2 = a.unsqueeze(0) if a.dim() == 1 else a
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b
    check(a2.shape[-1] == b2.shape[-2], op, "b", f"shape {tuple(b.shape)} does not multiply a's {tuple(a.shape)}")
    try:
        batch = torch.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except RuntimeError:
        check(False, op, "b", f"batch dims of shape {tuple(b.shape)} do not broadcast with a's {tuple(a.shape)}")
    n, k, m = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    a3 = a2.expand(*batch, n, k).reshape(math.prod(batch), n, k)
    b3 = b2.expand(*batch, k, m).reshape(math.prod(batch), k, m)
    out = _bmm(a3, b3, offset, _mode(op, backward)).reshape(*batch, n, m)
    if a.dim() == 1:
        out = out.squeeze(-2)
    if b.dim() == 1:
        out = out.squeeze(-1)
    return out


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, *,
           offset: float = 1.0, backward: str = "pam") -> torch.Tensor:
    """``x @ weight.T + bias`` with PAM products (the bias add is an ordinary add)."""
    check(weight.dim() == 2, "pam.linear", "weight", f"must be 2-D [out, in], got shape {tuple(weight.shape)}")
    # weight [1, in]: a reshape, not .t(), so that its gradient comes back with the parameter's
    # strides (DDP warns about, and copies, gradients whose strides differ from the bucket's)
    wt = weight.reshape(weight.shape[1], 1) if weight.shape[0] == 1 else weight.t()
    out = matmul(x, wt, offset=offset, backward=backward)
    return out if bias is None else out + bias


def softmax(x: torch.Tensor, dim: int = -1, *, backward: str = "pam") -> torch.Tensor:
    """Base-2 piecewise-affine softmax: shift by floor(max) (exact: a power of two),
    pa_exp2, PAD by the sum.  -inf entries get probability 0; an all -inf row gives NaN
    like ``torch.softmax``."""
    check_float("pam.softmax", "x", x, DTYPES)
    check(isinstance(dim, int) and -max(x.dim(), 1) <= dim < max(x.dim(), 1), "pam.softmax", "dim",
          f"must be an int in [{-max(x.dim(), 1)}, {max(x.dim(), 1)}), got {dim!r}")
    if x.numel() == 0:  # empty in, empty out (amax has nothing to reduce)
        return x.clone()
    z = mul(x, LOG2E, backward=backward)
    shift = torch.floor(z.amax(dim=dim, keepdim=True)).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    e = exp2(z - shift)
    return div(e, e.sum(dim=dim, keepdim=True))


def layer_norm(x: torch.Tensor, normalized_shape: Union[int, Sequence[int]], weight: Optional[torch.Tensor] = None,
               bias: Optional[torch.Tensor] = None, eps: float = 1e-5, *, backward: str = "pam") -> torch.Tensor:
    """LayerNorm whose every product, square, reciprocal and square root is piecewise affine."""
    op = "pam.layer_norm"
    check_float(op, "x", x, DTYPES)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    check(tuple(x.shape[x.dim() - len(shape):]) == shape, op, "normalized_shape",
          f"{shape} must match the trailing dims of x {tuple(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            check_float(op, name, t, (x.dtype,))
            check(tuple(t.shape) == shape, op, name, f"must have shape {shape}, got {tuple(t.shape)}")
            check_same_device(op, x=x, **{name: t})
    if x.numel() == 0:  # empty in, empty out
        return x.clone()
    dims = tuple(range(-len(shape), 0))
    inv_n = 1.0 / math.prod(shape)
    xc = x - mul(x.sum(dim=dims, keepdim=True), inv_n, backward=backward)
    var = mul(mul(xc, xc, backward=backward).sum(dim=dims, keepdim=True), inv_n, backward=backward)
    y = mul(xc, div(1.0, sqrt(var + eps, backward=backward)), backward=backward)
    if weight is not None:
        y = mul(y, weight, backward=backward)
    return y if bias is None else y + bias


# ------------------------------------------------------------------- modules
class PAMLinear(nn.Linear):
    """``nn.Linear`` whose matmul is a PAM matmul; loads nn.Linear state dicts unchanged."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Optional[Union[torch.device, str]] = None, dtype: Optional[torch.dtype] = None, *,
                 offset: float = 1.0, backward: str = "pam") -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        _mode("PAMLinear", backward)
        self.offset, self.backward = offset, backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, offset=self.offset, backward=self.backward)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, offset={self.offset}, backward={self.backward!r}"


class PAMConv2d(nn.Conv2d):
    """``nn.Conv2d`` (zeros padding) computed as unfold + PAM matmul."""

    padding: tuple[int, ...]  # numeric (checked in __init__); nn.Conv2d also allows a str

    def __init__(self, *args: Any, offset: float = 1.0, backward: str = "pam", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _mode("PAMConv2d", backward)
        check(self.padding_mode == "zeros", "PAMConv2d", "padding_mode", f"must be 'zeros', got {self.padding_mode!r}")
        check(isinstance(self.padding, tuple), "PAMConv2d", "padding", f"must be numeric, got {self.padding!r}")
        self.offset, self.backward = offset, backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        cols = nn.functional.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        g = self.groups
        cols = cols.reshape(n, g, -1, cols.shape[-1])  # [n, g, (c/g) kh kw, L]
        wt = self.weight.reshape(g, self.out_channels // g, -1)  # [g, o/g, (c/g) kh kw]
        out = matmul(wt, cols, offset=self.offset, backward=self.backward)  # [n, g, o/g, L]
        oh = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        out = out.reshape(n, self.out_channels, oh, ow)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def convert(model: nn.Module, *, offset: float = 1.0, backward: str = "pam") -> list[str]:
    """Replace every nn.Linear / nn.Conv2d in ``model`` (in place) by its PAM twin, keeping the
    very Parameter objects (so tied weights stay tied and frozen ones frozen).  Returns the
    qualified names replaced."""
    _mode("pam.convert", backward)
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (PAMLinear, PAMConv2d)):
                continue
            new: Union[PAMLinear, PAMConv2d]
            if isinstance(child, nn.Linear):
                new = PAMLinear(child.in_features, child.out_features, child.bias is not None, device="meta",
                                offset=offset, backward=backward)
            elif isinstance(child, nn.Conv2d) and child.padding_mode == "zeros" and not isinstance(child.padding, str):
                new = PAMConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, child.groups, child.bias is not None, offset=offset, backward=backward,
                                device="meta")
            else:
                continue
            new.weight, new.bias = child.weight, child.bias  # the same Parameters (meta placeholders dropped)
            new.train(child.training)
            setattr(module, child_name, new)
            replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced
