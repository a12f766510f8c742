"""fewbit Triton kernels: encode (bucketize + pack) and backward (unpack +
gather + multiply), each program owning BLOCK groups of 8 elements = BLOCK * b
bytes of the code stream (eight b-bit codes fill exactly b bytes)."""

import torch
import triton
import triton.language as tl

_GROUPS = 128


@triton.jit
def _encode_kernel(x_ptr, borders_ptr, out_ptr, n, n_bytes, BITS: tl.constexpr, NB: tl.constexpr,
                   GROUPS: tl.constexpr):
    g = tl.program_id(0).to(tl.int64) * GROUPS + tl.arange(0, GROUPS)
    j = tl.arange(0, 8)
    idx = g[:, None] * 8 + j[None, :]
    x = tl.load(x_ptr + idx, mask=idx < n, other=0.0).to(tl.float32)
    code = tl.zeros((GROUPS, 8), dtype=tl.int64)
    for k in range(NB):
        code += (x > tl.load(borders_ptr + k)).to(tl.int64)
    code = tl.where(idx < n, code, 0)
    word = tl.sum(code << (BITS * j[None, :]).to(tl.int64), axis=1)
    for k in range(BITS):
        pos = g * BITS + k
        tl.store(out_ptr + pos, ((word >> (8 * k)) & 255).to(tl.uint8), mask=pos < n_bytes)


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
    x = x.contiguous().reshape(-1)
    n = x.numel()
    n_bytes = (n * bits + 7) // 8
    out = torch.empty(n_bytes, dtype=torch.uint8, device=x.device)
    if n:
        grid = (triton.cdiv(triton.cdiv(n, 8), _GROUPS),)
        _encode_kernel[grid](x, borders.float().contiguous(), out, n, n_bytes, BITS=bits, NB=borders.numel(),
                             GROUPS=_GROUPS)
    return out


def backward(grad, codes, levels, bits):
    if grad.dtype == torch.float64:  # the fp32 kernel would round; the reference keeps fp64
        from pyops.reference import fewbit as ref

        return ref.backward(grad, codes, levels, bits)
    g = grad.contiguous()
    out = torch.empty_like(g)
    n = g.numel()
    if n:
        grid = (triton.cdiv(triton.cdiv(n, 8), _GROUPS),)
        _backward_kernel[grid](g, codes.contiguous(), levels.float().contiguous(), out, n, codes.numel(), BITS=bits,
                               GROUPS=_GROUPS)
    return out
