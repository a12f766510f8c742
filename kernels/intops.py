"""intops Triton kernels: one program per row (a row of up to MAX_BLOCK elements in one tile padded
to a power of two, longer rows in MAX_BLOCK-wide tiles over several passes), int64 arithmetic with
floor semantics made explicit (Triton's ``//`` truncates on a GPU and floors in the interpreter;
``_floor_div`` is right for both)."""

import math

import torch
import triton
import triton.language as tl

from pyops.reference import intops as ref


@triton.jit
def _floor_div(a, b):
    q = a // b
    r = a - q * b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), q - 1, q)


@triton.jit
def _round_div(a, n):  # half to even, n > 0
    q = _floor_div(a, n)
    twice = 2 * (a - q * n)
    return tl.where((twice > n) | ((twice == n) & ((q & 1) == 1)), q + 1, q)


@triton.jit
def _shift_exp(x, x0, N: tl.constexpr):
    x = x + (x >> 1) - (x >> 4)
    x = tl.maximum(x, N * x0)
    q = _floor_div(x, x0)
    r = x - x0 * q
    shift = N - q
    e = ((r - 2 * x0) << tl.minimum(shift, 40)) >> 1
    return tl.where(shift > 40, 1 << 62, e)


@triton.jit
def _isqrt(v):
    """floor(sqrt(v)) for 0 <= v < 2^63, digit by digit."""
    r = v * 0
    for i in range(32):
        bit = tl.full([], 1, tl.int64) << (62 - 2 * i)
        take = v >= r + bit
        v = tl.where(take, v - (r + bit), v)
        r = tl.where(take, (r >> 1) + bit, r >> 1)
    return r


@triton.jit
def _ibert_parts(x, x0, b, c):
    x = tl.maximum(x, 30 * x0)
    q = _floor_div(x, x0)
    r = x - x0 * q
    return (r + b) * r + c, q


@triton.jit
def _i64(v):
    """v widened to int64 without ``.to``: Triton passes an int argument equal to 1 as a Python int."""
    return v + tl.zeros([], tl.int64)


@triton.jit
def _load_row(x_row, start, n, BLOCK: tl.constexpr):
    """(cols, mask, int64 values) of the row's tile [start, start + BLOCK); padding lanes get the
    int64 minimum after widening (an ``other`` would be cast to the input's dtype)."""
    cols = start + tl.arange(0, BLOCK)
    m = cols < n
    return cols, m, tl.where(m, tl.load(x_row + cols, mask=m, other=0).to(tl.int64), -(2 ** 62))


@triton.jit
def _softmax_exp(x, m, x0, b, c, IBERT: tl.constexpr):
    """Exponentials of x - rowmax (zero in the padding lanes)."""
    if IBERT:
        z, q = _ibert_parts(x, x0, b, c)
        e = tl.where(z > 0, _round_div(tl.maximum(z, 0) * 32767, c << q), 0)
    else:
        e = _shift_exp(x, x0, 15)
    return tl.where(m, e, 0)


@triton.jit
def _softmax_kernel(x_ptr, o_ptr, n, x0, b, c, out_shift, IBERT: tl.constexpr, BLOCK: tl.constexpr,
                    ONE_PASS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row, o_row = x_ptr + row * n, o_ptr + row * n
    x0, b, c = _i64(x0), _i64(b), _i64(c)
    if ONE_PASS:  # the row fits one tile: read once, kept in registers
        cols, m, x = _load_row(x_row, 0, n, BLOCK)
        x = x - tl.max(x, axis=0)
        e = _softmax_exp(x, m, x0, b, c, IBERT)
        total = tl.sum(e, axis=0)
    else:  # longer rows: max, sum and write passes over BLOCK-wide tiles (integer sums: same result)
        mx = tl.full([], -(2 ** 62), tl.int64)
        for start in range(0, n, BLOCK):
            cols, m, x = _load_row(x_row, start, n, BLOCK)
            mx = tl.maximum(mx, tl.max(x, axis=0))
        total = tl.zeros([], tl.int64)
        for start in range(0, n, BLOCK):
            cols, m, x = _load_row(x_row, start, n, BLOCK)
            total += tl.sum(_softmax_exp(x - mx, m, x0, b, c, IBERT), axis=0)
    if IBERT:
        factor = (1 << 32) // total
    else:
        factor = 2147483647 // tl.minimum(total, 2147483647)
    if ONE_PASS:
        tl.store(o_row + cols, ((e * factor) >> out_shift).to(tl.int32), mask=m)
    else:
        for start in range(0, n, BLOCK):
            cols, m, x = _load_row(x_row, start, n, BLOCK)
            e = _softmax_exp(x - mx, m, x0, b, c, IBERT)
            tl.store(o_row + cols, ((e * factor) >> out_shift).to(tl.int32), mask=m)


@triton.jit
def _shiftgelu_tile(x, mx, x0, out_shift):
    e = _shift_exp(x - mx, x0, 23)
    total = tl.minimum(e + _shift_exp(-mx + tl.zeros_like(x), x0, 23), 2147483647)
    return x * ((e * (2147483647 // total)) >> out_shift)


@triton.jit
def _shiftgelu_kernel(x_ptr, o_ptr, n, x0, out_shift, BLOCK: tl.constexpr, ONE_PASS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row, o_row = x_ptr + row * n, o_ptr + row * n
    x0 = _i64(x0)
    if ONE_PASS:
        cols, m, x = _load_row(x_row, 0, n, BLOCK)
        tl.store(o_row + cols, _shiftgelu_tile(x, tl.max(x, axis=0), x0, out_shift), mask=m)
    else:  # max pass, then write pass
        mx = tl.full([], -(2 ** 62), tl.int64)
        for start in range(0, n, BLOCK):
            cols, m, x = _load_row(x_row, start, n, BLOCK)
            mx = tl.maximum(mx, tl.max(x, axis=0))
        for start in range(0, n, BLOCK):
            cols, m, x = _load_row(x_row, start, n, BLOCK)
            tl.store(o_row + cols, _shiftgelu_tile(x, mx, x0, out_shift), mask=m)


@triton.jit
def _layernorm_factor(var, shift, EXACT: tl.constexpr):
    if EXACT:
        std = _isqrt(var) << shift
        factor = tl.where(std > 0, (1 << 31) // tl.maximum(std, 1), 0)
    else:
        k = tl.full([], 1 << 16, tl.int64)
        for i in range(10):
            k = (k + var // k) >> 1
        factor = 2147483647 // (k << shift)
    return factor


@triton.jit
def _variance_shift(hi, lo, mean, shift, limit):
    """intops.h's layernorm_shift: the shift raised until n ((x - mean) >> s)^2 fits in int64."""
    maxdev = tl.maximum(hi - mean, mean - lo)
    s = _i64(shift)
    for _ in range(33):  # maxdev < 2^32
        s = tl.where((maxdev >> s) > limit, s + 1, s)
    return s


@triton.jit
def _layernorm_kernel(x_ptr, bias_ptr, o_ptr, n, shift, limit, EXACT: tl.constexpr, BLOCK: tl.constexpr,
                      ONE_PASS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row, o_row = x_ptr + row * n, o_ptr + row * n
    if ONE_PASS:
        cols = tl.arange(0, BLOCK)
        m = cols < n
        x = tl.load(x_row + cols, mask=m, other=0).to(tl.int64)
        mean = _round_div(tl.sum(x, axis=0), _i64(n))
        s = _variance_shift(tl.max(tl.where(m, x, -(2 ** 62)), axis=0), tl.min(tl.where(m, x, 2 ** 62), axis=0),
                            mean, shift, limit)
        y = tl.where(m, x - mean, 0)
        ys = y >> s
        var = tl.sum(ys * ys, axis=0)
    else:  # sum and range, variance and write passes
        total = tl.zeros([], tl.int64)
        hi = tl.full([], -(2 ** 62), tl.int64)
        lo = tl.full([], 2 ** 62, tl.int64)
        for start in range(0, n, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            m = cols < n
            x = tl.load(x_row + cols, mask=m, other=0).to(tl.int64)
            total += tl.sum(x, axis=0)
            hi = tl.maximum(hi, tl.max(tl.where(m, x, -(2 ** 62)), axis=0))
            lo = tl.minimum(lo, tl.min(tl.where(m, x, 2 ** 62), axis=0))
        mean = _round_div(total, _i64(n))
        s = _variance_shift(hi, lo, mean, shift, limit)
        var = tl.zeros([], tl.int64)
        for start in range(0, n, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            m = cols < n
            ys = tl.where(m, tl.load(x_row + cols, mask=m, other=0).to(tl.int64) - mean, 0) >> s
            var += tl.sum(ys * ys, axis=0)
    factor = _layernorm_factor(var, s, EXACT)
    if ONE_PASS:
        bias = tl.load(bias_ptr + cols, mask=m, other=0)
        tl.store(o_row + cols, (((y * factor) >> 1) + bias).to(tl.int32), mask=m)
    else:
        for start in range(0, n, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            m = cols < n
            y = tl.where(m, tl.load(x_row + cols, mask=m, other=0).to(tl.int64) - mean, 0)
            bias = tl.load(bias_ptr + cols, mask=m, other=0)
            tl.store(o_row + cols, (((y * factor) >> 1) + bias).to(tl.int32), mask=m)


@triton.jit
def _gelu_kernel(x_ptr, b_ptr, c_ptr, one_ptr, o_ptr, numel, channels, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < numel
    x = tl.load(x_ptr + offs, mask=m, other=0).to(tl.int64)
    ch = offs % channels
    b = tl.load(b_ptr + ch, mask=m, other=0)
    c = tl.load(c_ptr + ch, mask=m, other=0)
    one = tl.load(one_ptr + ch, mask=m, other=0)
    mm = tl.minimum(tl.abs(x), -b) + b
    y = mm * mm + c
    y = tl.where(x > 0, y, tl.where(x < 0, -y, 0))
    tl.store(o_ptr + offs, x * ((y >> 14) + one), mask=m)


@triton.jit
def _exp_kernel(x_ptr, o_ptr, numel, x0, b, c, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < numel
    x = tl.load(x_ptr + offs, mask=m, other=0).to(tl.int64)
    z, q = _ibert_parts(x, _i64(x0), _i64(b), _i64(c))
    tl.store(o_ptr + offs, tl.maximum(z * (tl.full([], 1, tl.int64) << (30 - q)), 0), mask=m)


@triton.jit
def _isqrt_kernel(x_ptr, o_ptr, numel, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < numel
    tl.store(o_ptr + offs, _isqrt(tl.load(x_ptr + offs, mask=m, other=0).to(tl.int64)), mask=m)


@triton.jit
def _requantize_kernel(x_ptr, m_ptr, e_ptr, o_ptr, numel, channels, lo, hi, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    msk = offs < numel
    x = tl.load(x_ptr + offs, mask=msk, other=0).to(tl.int64)
    ch = offs % channels
    v = x * tl.load(m_ptr + ch, mask=msk, other=0)  # |x m| <= 2^62 (m checked by the launcher)
    e = tl.load(e_ptr + ch, mask=msk, other=0)
    es = tl.minimum(tl.maximum(e, 0), 62)
    q = v >> es
    rem = v - (q << es)
    half = tl.where(es > 0, tl.full([], 1, tl.int64) << tl.maximum(es - 1, 0), 0)
    up = (es > 0) & ((rem > half) | ((rem == half) & ((q & 1) == 1)))
    right = tl.where(e > 62, 0, tl.where(up, q + 1, q))  # past 62 bits |x m| / 2^e < 1/2
    # a left shift that would leave int64 saturates (as intops.h's requantize)
    sl = tl.minimum(tl.maximum(-e, 0), 62)
    room = 9223372036854775807 >> sl
    over = (-e > 62) | (v > room) | (v < -room)
    left = tl.where(v == 0, 0, tl.where(over, tl.where(v > 0, hi, lo), v << sl))
    v = tl.where(e >= 0, right, left)
    tl.store(o_ptr + offs, tl.minimum(tl.maximum(v, lo), hi).to(tl.int32), mask=msk)


# The widest tile of a row kernel: one tile holds the row in registers (one read); longer rows
# loop over tiles of this width (max / sum / write passes), so every row length compiles and none
# spills (scripts/triton_aot.py checks both paths for sm_80 and sm_90).
MAX_BLOCK = 1024


def _rows(op, x, block):
    """(x contiguous, row length, rows, tile width, whether one tile holds the row)."""
    cap = MAX_BLOCK if block is None else block
    if not (isinstance(cap, int) and 1 <= cap <= 2 ** 16 and cap & (cap - 1) == 0):
        raise ValueError(f"pyops.{op}: argument 'block' must be a power of two in [1, 65536], got {block!r}")
    x = x.contiguous()
    n = x.shape[-1]
    width = min(triton.next_power_of_2(max(n, 1)), cap)
    return x, n, (x.numel() // n if n else 0), width, n <= width


def softmax(x, x0, b, c, output_bits, method, block=None):
    """``block``: the widest row tile (a power of two, default MAX_BLOCK); longer rows take several."""
    ref.check_softmax(x, x0, b, c, output_bits, method)
    x, n, rows, width, one_pass = _rows("intops_softmax", x, block)
    out = torch.empty(x.shape, dtype=torch.int32, device=x.device)
    if rows:
        _softmax_kernel[(rows,)](x, out, n, x0, b, c, 32 - output_bits, IBERT=method == "ibert", BLOCK=width,
                                 ONE_PASS=one_pass)
    return out


def shiftgelu(x, x0, output_bits, block=None):
    ref.check_shiftgelu(x, x0, output_bits)
    x, n, rows, width, one_pass = _rows("intops_shiftgelu", x, block)
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    if rows:
        _shiftgelu_kernel[(rows,)](x, out, n, x0, 32 - output_bits, BLOCK=width, ONE_PASS=one_pass)
    return out


def layernorm(x, bias_int, shift, isqrt, block=None):
    ref.check_layernorm(x, bias_int, shift, isqrt)
    x, n, rows, width, one_pass = _rows("intops_layernorm", x, block)
    out = torch.empty(x.shape, dtype=torch.int32, device=x.device)
    if rows:
        bias = bias_int.long().expand(n).contiguous()
        limit = math.isqrt((2 ** 63 - 1) // n)  # |(x - mean) >> s| <= limit keeps the variance in int64
        _layernorm_kernel[(rows,)](x, bias, out, n, shift, limit, EXACT=isqrt == "exact", BLOCK=width,
                                   ONE_PASS=one_pass)
    return out


def gelu(x, b, c, one):
    ref.check_gelu(x, b, c, one)
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    if x.numel():
        ch = x.shape[-1]
        b, c, one = (t.long().expand(ch).contiguous() for t in (b, c, one))
        _gelu_kernel[(triton.cdiv(x.numel(), 1024),)](x, b, c, one, out, x.numel(), ch, BLOCK=1024)
    return out


def int_exp(x, x0, b, c):
    ref.check_exp(x, x0, b, c)
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    if x.numel():
        _exp_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), x0, b, c, BLOCK=1024)
    return out


def requantize(x, m, e, bits):
    ref.check_requantize(x, m, e, bits)
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.int32, device=x.device)
    if x.numel():
        ch = x.shape[-1]
        m, e = (t.long().expand(ch).contiguous() for t in (m, e))
        _requantize_kernel[(triton.cdiv(x.numel(), 1024),)](x, m, e, out, x.numel(), ch, -(2 ** (bits - 1)),
                                                              2 ** (bits - 1) - 1, BLOCK=1024)
    return out


def isqrt(x):
    ref.check_isqrt(x)
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    if x.numel():
        _isqrt_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    return out
