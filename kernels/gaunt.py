"""gaunt Triton kernel: the azimuthal product of the grid route,
``out[io[t], r] += coef[t] * a[ia[t], r] * b[ib[t], r]``.  One program per block of columns r
walks every triple; runs of triples with one output row accumulate in registers (the lists come
sorted by output row), so each output block is read and written once per run."""

import torch
import triton
import triton.language as tl

from pyops.reference.gaunt import check_azimuthal

BLOCK = 128


@triton.jit
def _azimuthal_kernel(a_ptr, b_ptr, io_ptr, ia_ptr, ib_ptr, c_ptr, o_ptr, n, R, BLOCK: tl.constexpr):
    cols = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < R
    cur = tl.load(io_ptr)
    acc = tl.zeros([BLOCK], dtype=o_ptr.dtype.element_ty)
    for t in range(n):
        row = tl.load(io_ptr + t)
        if row != cur:
            p = o_ptr + cur * R + cols
            tl.store(p, tl.load(p, mask=mask, other=0.0) + acc, mask=mask)
            acc = tl.zeros([BLOCK], dtype=o_ptr.dtype.element_ty)
            cur = row
        va = tl.load(a_ptr + tl.load(ia_ptr + t) * R + cols, mask=mask, other=0.0)
        vb = tl.load(b_ptr + tl.load(ib_ptr + t) * R + cols, mask=mask, other=0.0)
        acc += tl.load(c_ptr + t) * va * vb
    p = o_ptr + cur * R + cols
    tl.store(p, tl.load(p, mask=mask, other=0.0) + acc, mask=mask)


def azimuthal(a, b, io, ia, ib, coef, n_out):
    check_azimuthal(a, b, io, ia, ib, coef, n_out)
    R, n = a.shape[1], coef.numel()
    out = torch.zeros(n_out, R, dtype=a.dtype, device=a.device)
    if n == 0 or R == 0:
        return out
    a, b, io, ia, ib, coef = (t.contiguous() for t in (a, b, io, ia, ib, coef))
    _azimuthal_kernel[(triton.cdiv(R, BLOCK),)](a, b, io, ia, ib, coef, out, n, R, BLOCK=BLOCK)
    return out
