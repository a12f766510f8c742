"""fewbit Triton kernels: encode (bucketize + pack), the fused forward
(activation + encode) and backward (unpack + gather + multiply), each program
owning GROUPS groups of 8 elements = GROUPS * b bytes of the code stream
(eight b-bit codes fill exactly b bytes)."""

import torch
import triton
import triton.language as tl

from pyops.reference import fewbit as ref

_GROUPS = 128


@triton.jit
def _store_codes(x, g, borders_ptr, out_ptr, n_bytes, BITS: tl.constexpr, NB: tl.constexpr):
    """Bucketize x [GROUPS, 8] (groups g) and store the groups' BITS bytes each.  Lanes past the end
    hold -inf, whose code is 0 for every border: no mask (and no predicate per lane) lives across the
    border loop, which made ptxas spill."""
    code = tl.zeros(x.shape, dtype=tl.int32)  # < 2^8: 32 bits halve the accumulators' registers
    for k in range(NB):
        code += (x > tl.load(borders_ptr + k)).to(tl.int32)
    j = tl.arange(0, 8)
    word = tl.sum(code.to(tl.int64) << (BITS * j[None, :]).to(tl.int64), axis=1)
    for k in range(BITS):
        pos = g * BITS + k
        tl.store(out_ptr + pos, ((word >> (8 * k)) & 255).to(tl.uint8), mask=pos < n_bytes)


@triton.jit
def _encode_kernel(x_ptr, borders_ptr, out_ptr, n, n_bytes, BITS: tl.constexpr, NB: tl.constexpr,
                   GROUPS: tl.constexpr):
    g = tl.program_id(0).to(tl.int64) * GROUPS + tl.arange(0, GROUPS)
    idx = g[:, None] * 8 + tl.arange(0, 8)[None, :]
    x = tl.load(x_ptr + idx, mask=idx < n, other=float("-inf")).to(tl.float32)
    _store_codes(x, g, borders_ptr, out_ptr, n_bytes, BITS, NB)


@triton.jit
def _expm1(x):
    """exp(x) - 1 to a few float32 ulps: Taylor to x^8 where exp(x) - 1 would cancel (|x| < 0.35: the
    next term is < 2^-25 relative), exp(x) - 1 elsewhere (its rounding grows at most 3.4x).  No
    libdevice: the interpreter has none, and GPU log/exp approximations rule out Kahan's trick."""
    p = 1.0 / 40320.0
    p = p * x + 1.0 / 5040.0
    p = p * x + 1.0 / 720.0
    p = p * x + 1.0 / 120.0
    p = p * x + 1.0 / 24.0
    p = p * x + 1.0 / 6.0
    p = p * x + 0.5
    p = p * x + 1.0
    return tl.where(tl.abs(x) < 0.35, p * x, tl.exp(x) - 1.0)


@triton.jit
def _log1p(x):
    """log(1 + x) to a few float32 ulps: 2 atanh(s), s = x / (2 + x), as an odd series where 1 + x
    would round away x (|x| < 0.4: |s| <= 1/4, terms to s^13 leave < 2^-26), log(1 + x) elsewhere."""
    s = x / (2.0 + x)
    s2 = s * s
    p = 1.0 / 13.0
    p = p * s2 + 1.0 / 11.0
    p = p * s2 + 1.0 / 9.0
    p = p * s2 + 1.0 / 7.0
    p = p * s2 + 1.0 / 5.0
    p = p * s2 + 1.0 / 3.0
    p = p * s2 + 1.0
    return tl.where(tl.abs(x) < 0.4, 2.0 * s * p, tl.log(1.0 + x))


@triton.jit
def _tanh(x):
    e = _expm1(-2.0 * tl.abs(x))  # in (-1, 0]: no overflow, no cancellation near 0
    r = -e / (2.0 + e)
    return tl.where(x < 0, -r, r)


@triton.jit
def _clamp(x, lo, hi):
    return tl.where(x < lo, lo, tl.where(x > hi, hi, x))  # NaN passes, as in torch (tl.minimum may drop it)


@triton.jit
def _softplus(x):
    return tl.where(x > 20.0, x, _log1p(tl.exp(tl.where(x > 20.0, 20.0, x))))  # torch's threshold 20


@triton.jit
def _activate(x, FN: tl.constexpr):
    """Every built-in of pyops.fewbit.FUNCTIONS with torch's default arguments, in float32."""
    if FN == "gelu":
        y = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    elif FN == "gelu_tanh":
        y = 0.5 * x * (1.0 + _tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    elif FN == "silu":
        y = x * tl.sigmoid(x)
    elif FN == "elu" or FN == "celu":
        y = tl.where(x > 0, x, _expm1(x))
    elif FN == "selu":
        y = 1.0507009873554805 * tl.where(x > 0, x, 1.6732632423543772 * _expm1(x))
    elif FN == "mish":
        y = x * _tanh(_softplus(x))
    elif FN == "softplus":
        y = _softplus(x)
    elif FN == "tanh":
        y = _tanh(x)
    elif FN == "sigmoid":
        y = tl.sigmoid(x)
    elif FN == "logsigmoid":
        y = tl.where(x < 0, x, 0.0) - _log1p(tl.exp(-tl.abs(x)))
    elif FN == "softsign":
        y = x / (1.0 + tl.abs(x))
    elif FN == "tanhshrink":
        y = x - _tanh(x)
    elif FN == "hardswish":
        y = x * _clamp(x + 3.0, 0.0, 6.0) / 6.0
    elif FN == "relu" or FN == "threshold":
        y = tl.where(x <= 0, 0.0, x)  # NaN passes, as in torch
    elif FN == "leaky_relu":
        y = tl.where(x > 0, x, 0.01 * x)
    elif FN == "relu6":
        y = _clamp(x, 0.0, 6.0)
    elif FN == "hardtanh":
        y = _clamp(x, -1.0, 1.0)
    elif FN == "hardsigmoid":
        y = _clamp(x + 3.0, 0.0, 6.0) / 6.0
    elif FN == "hardshrink":
        y = tl.where((x >= -0.5) & (x <= 0.5), 0.0, x)
    else:  # softshrink
        y = tl.where(x > 0.5, x - 0.5, tl.where(x < -0.5, x + 0.5, x * 0.0))
    return y


@triton.jit
def _forward_kernel(x_ptr, y_ptr, borders_ptr, out_ptr, n, n_bytes, FN: tl.constexpr, BITS: tl.constexpr,
                    NB: tl.constexpr, GROUPS: tl.constexpr):
    g = tl.program_id(0).to(tl.int64) * GROUPS + tl.arange(0, GROUPS)
    idx = g[:, None] * 8 + tl.arange(0, 8)[None, :]
    x = tl.load(x_ptr + idx, mask=idx < n, other=float("-inf")).to(tl.float32)
    tl.store(y_ptr + idx, _activate(x, FN).to(y_ptr.dtype.element_ty), mask=idx < n)
    _store_codes(x, g, borders_ptr, out_ptr, n_bytes, BITS, NB)


@triton.jit
def _backward_kernel(grad_ptr, codes_ptr, levels_ptr, out_ptr, n, n_bytes, BITS: tl.constexpr,
                     GROUPS: tl.constexpr):
    g = tl.program_id(0).to(tl.int64) * GROUPS + tl.arange(0, GROUPS)
    word = tl.zeros((GROUPS,), dtype=tl.int64)
    for k in range(BITS):
        pos = g * BITS + k
        word |= tl.load(codes_ptr + pos, mask=pos < n_bytes, other=0).to(tl.int64) << (8 * k)
    j = tl.arange(0, 8)
    code = (word[:, None] >> (BITS * j[None, :]).to(tl.int64)) & ((1 << BITS) - 1)
    idx = g[:, None] * 8 + j[None, :]
    m = idx < n
    grad = tl.load(grad_ptr + idx, mask=m, other=0.0)
    level = tl.load(levels_ptr + code, mask=m, other=0.0)
    tl.store(out_ptr + idx, (level * grad.to(tl.float32)).to(out_ptr.dtype.element_ty), mask=m)


def encode(x, borders, bits):
    ref.check_encode("fewbit_encode", x, borders, bits)
    x = x.contiguous().reshape(-1)
    n = x.numel()
    n_bytes = (n * bits + 7) // 8
    out = torch.empty(n_bytes, dtype=torch.uint8, device=x.device)
    if n:
        grid = (triton.cdiv(triton.cdiv(n, 8), _GROUPS),)
        _encode_kernel[grid](x, borders.float().contiguous(), out, n, n_bytes, BITS=bits, NB=borders.numel(),
                             GROUPS=_GROUPS)
    return out


def forward(x, borders, bits, fn):
    """(f(x), codes) in one kernel; float64 keeps torch's activation (the kernel computes in float32)."""
    ref.check_encode("fewbit_forward", x, borders, bits)
    from pyops.fewbit import FUNCTIONS

    if fn not in FUNCTIONS:
        raise RuntimeError(f"pyops.fewbit_forward: argument 'fn' must be a built-in activation name, got {fn!r}")
    if x.dtype == torch.float64:
        return FUNCTIONS[fn](x).contiguous(), encode(x, borders, bits)
    x = x.contiguous()
    n = x.numel()
    n_bytes = (n * bits + 7) // 8
    y = torch.empty_like(x)
    out = torch.empty(n_bytes, dtype=torch.uint8, device=x.device)
    if n:
        grid = (triton.cdiv(triton.cdiv(n, 8), _GROUPS),)
        _forward_kernel[grid](x, y, borders.float().contiguous(), out, n, n_bytes, FN=fn, BITS=bits,
                              NB=borders.numel(), GROUPS=_GROUPS)
    return y, out


def backward(grad, codes, levels, bits):
    ref.check_backward("fewbit_backward", grad, codes, levels, bits)
    if grad.dtype == torch.float64:  # the fp32 kernel would round; the reference keeps fp64
        return ref.backward(grad, codes, levels, bits)
    g = grad.contiguous()
    out = torch.empty_like(g)
    n = g.numel()
    if n:
        grid = (triton.cdiv(triton.cdiv(n, 8), _GROUPS),)
        _backward_kernel[grid](g, codes.contiguous(), levels.float().contiguous(), out, n, codes.numel(), BITS=bits,
                               GROUPS=_GROUPS)
    return out
