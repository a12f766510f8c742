"""gaunt Triton kernel: the azimuthal product of the grid route,
``out[io[t], r] += coef[t] * a[ia[t], r] * b[ib[t], r]``.  One program per block of columns r
walks every triple; runs of triples with one output row accumulate in registers (the lists come
sorted by output row), so each output block is read and written once per run."""

import torch
import triton
import triton.language as tl

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


def _check_index(t: torch.Tensor, name: str, n: int, bound: int) -> None:
    if t.dtype != torch.int64 or t.dim() != 1 or t.numel() != n:
        raise ValueError(f"pyops.gaunt_azimuthal: argument '{name}' must be a 1-D int64 tensor with one entry "
                         f"per triple ({n})")
    if n and (int(t.min()) < 0 or int(t.max()) >= bound):
        raise ValueError(f"pyops.gaunt_azimuthal: argument '{name}' has entries outside [0, {bound})")


def azimuthal(a, b, io, ia, ib, coef, n_out):
    if a.dtype not in (torch.float32, torch.float64) or b.dtype != a.dtype or coef.dtype != a.dtype:
        raise TypeError("pyops.gaunt_azimuthal: arguments 'a', 'b' and 'coef' must share a float32/float64 dtype")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"pyops.gaunt_azimuthal: arguments 'a' and 'b' must be 2-D with equal row lengths, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if n_out < 0:
        raise ValueError(f"pyops.gaunt_azimuthal: argument 'n_out' must be >= 0, got {n_out}")
    n = coef.numel()
    _check_index(io, "io", n, n_out)
    _check_index(ia, "ia", n, a.shape[0])
    _check_index(ib, "ib", n, b.shape[0])
    R = a.shape[1]
    out = torch.zeros(n_out, R, dtype=a.dtype, device=a.device)
    if n == 0 or R == 0:
        return out
    a, b, io, ia, ib, coef = (t.contiguous() for t in (a, b, io, ia, ib, coef))
    _azimuthal_kernel[(triton.cdiv(R, BLOCK),)](a, b, io, ia, ib, coef, out, n, R, BLOCK=BLOCK)
    return out
