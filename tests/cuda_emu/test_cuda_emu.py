"""csrc/cuda/*.cu run on the CPU (emu.py) against the CPU C++ ops and the references.

Bit-exact where the README promises it (pam, intops, fewbit codes and backward); the float
kernels within a stated tolerance (libm and summation order differ from the CPU kernels).
`make cuda-emu` runs this under AddressSanitizer + UndefinedBehaviorSanitizer.
"""

import math

import emu
import pytest
import torch
from helpers import random_ints as _ints

import pyops  # noqa: F401  (registers torch.ops.pyops)
from pyops.reference import fewbit as fewbit_ref
from pyops.reference import gaunt as gaunt_ref
from pyops.reference import intops as intops_ref
from pyops.reference import pam as pam_ref
from pyops.reference import wavehax as wavehax_ref

ops = torch.ops.pyops


def same(actual, expected):
    """Bit-exact: same dtype and shape, NaNs equal, signed zeros distinguished."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, (actual, expected)
    if actual.is_floating_point():
        bits = {torch.float64: torch.int64, torch.float32: torch.int32}.get(actual.dtype, torch.int16)
        a, e = actual.contiguous().view(bits), expected.contiguous().view(bits)
        both_nan = actual.isnan() & expected.isnan()
        assert torch.equal(a[~both_nan], e[~both_nan]), (actual, expected)
    else:
        assert torch.equal(actual, expected), (actual, expected)


def specials(dtype, n=257, seed=0):
    """Random values with NaN, +-inf, +-0, subnormals, the largest and smallest normals mixed in."""
    g = torch.Generator().manual_seed(seed)
    fi = torch.finfo(dtype)
    x = (torch.randn(n, generator=g, dtype=torch.float64) * torch.exp2(torch.randint(-30, 30, (n,), generator=g)))
    x = x.to(dtype)
    odd = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0, fi.tiny, -fi.tiny, fi.tiny / 8, fi.max, -fi.max,
                        fi.eps, 1.0, -1.0, 2.0 ** 60, 2.0 ** -60], dtype=torch.float64).to(dtype)
    idx = torch.randperm(n, generator=g)[: len(odd)]
    x[idx] = odd
    return x


# ------------------------------------------------------------------------------------ pam
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_pam_elementwise_bit_exact(dtype):
    a, b = specials(dtype, seed=1), specials(dtype, seed=2)
    for kind, op in [("mul", ops.pam_mul), ("div", ops.pam_div), ("mul_grad_factor", ops.pam_mul_grad_factor)]:
        args = (1.0,) if kind != "div" else ()
        got = emu.pam_binary(kind, a, b, *args)
        same(got, op(a, b, *args))
        same(got, getattr(pam_ref, kind)(a, b, *args))
    same(emu.pam_binary("mul", a, b, 0.75), ops.pam_mul(a, b, 0.75))
    same(emu.pam_binary("mul", a[:5, None], b[None, :7]), ops.pam_mul(a[:5, None], b[None, :7]))  # broadcast
    for kind in ("exp2", "log2"):
        same(emu.pam_unary(kind, a), getattr(ops, f"pam_{kind}")(a))


def test_pam_grid_stride_past_the_block_cap():
    """More elements than the launcher's 65535 blocks of 256 threads cover: the grid-stride loop."""
    big = torch.randn(65535 * 256 + 300, dtype=torch.float32)
    same(emu.pam_binary("mul", big, big.flip(0)), ops.pam_mul(big, big.flip(0)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 67, 19, 70), (2, 64, 16, 64), (1, 130, 33, 5), (2, 0, 4, 3),
                                   (2, 3, 0, 4)])
def test_pam_bmm_bit_exact(dtype, shape):
    batch, M, K, N = shape
    g = torch.Generator().manual_seed(M * 1000 + N)
    a = torch.randn(batch, M, K, generator=g, dtype=dtype)
    b = torch.randn(batch, K, N, generator=g, dtype=dtype)
    got = emu.pam_bmm(a, b)
    same(got, ops.pam_bmm(a, b))
    same(got, pam_ref.bmm(a, b))
    gr = torch.randn(batch, M, N, generator=g, dtype=dtype)
    ga, gb = emu.pam_bmm_exact_grad(gr, a, b)
    wa, wb = ops.pam_bmm_exact_grad(gr, a, b)
    same(ga, wa)
    same(gb, wb)


def test_pam_bmm_extremes_bit_exact():
    """Products that overflow, underflow and cancel: the kernel adds them in k order, as the reference does."""
    a = torch.tensor([[[2.0 ** 60, 1, 1], [math.inf, 0, 1], [math.nan, 1, 1]]])
    b = torch.tensor([[[2.0 ** -60, 2.0 ** 70], [2.0 ** 24, 1], [-(2.0 ** 24), 1]]])
    same(emu.pam_bmm(a, b), pam_ref.bmm(a, b))


@pytest.mark.parametrize("shape", [(65536, 1, 1, 1), (1, 4194305, 1, 1), (300, 2000, 1, 65)])
def test_pam_bmm_launches_within_cuda_limits(shape):
    """Batch past grid.z's 65535 and M past 65535 row tiles: the launch is accepted (dry run:
    the configuration is checked, nothing is computed; the index math is the one the
    bit-exact tests above run)."""
    batch, M, K, N = shape
    a, b = torch.zeros(batch, M, K), torch.zeros(batch, K, N)
    with emu.dry_run():
        emu.pam_bmm(a, b)
        emu.pam_bmm_exact_grad(torch.zeros(batch, M, N), a, b)


# ------------------------------------------------------------------------------------ fewbit
FEWBIT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", FEWBIT_DTYPES)
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8])
def test_fewbit_codes_and_backward_bit_exact(dtype, bits):
    from pyops import fewbit

    borders, levels = fewbit.table("gelu", bits)
    n = 523  # not a multiple of 8
    x = specials(torch.float32, n=n, seed=bits).clamp(-6, 6).to(dtype)
    x[:3] = torch.tensor([math.nan, 0.0, -0.0]).to(dtype)
    x[3:3 + len(borders)] = borders.to(dtype)  # values on the borders
    codes = emu.fewbit_encode(x, borders, bits)
    same(codes, ops.fewbit_encode(x, borders, bits))
    same(codes, fewbit_ref.encode(x, borders, bits))
    grad = torch.randn(n, dtype=torch.float64).to(dtype)
    same(emu.fewbit_backward(grad, codes, levels, bits), ops.fewbit_backward(grad, codes, levels, bits))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fn", emu.FEWBIT_FNS)
def test_fewbit_forward(dtype, fn):
    """Codes bit-exact; y is float32 libm on the GPU, so within a few float32 ulps of torch's
    activation (then rounded to the dtype: within one ulp of it)."""
    from pyops import fewbit

    borders, _ = fewbit.table("gelu", 3)
    x = (torch.randn(301, dtype=torch.float64) * 4).to(dtype)
    x[:4] = torch.tensor([math.nan, 0.0, 30.0, -30.0]).to(dtype)
    y, codes = emu.fewbit_forward(x, borders, 3, fn)
    wy, wcodes = ops.fewbit_forward(x, borders, 3, fn)
    same(codes, wcodes)
    tol = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    torch.testing.assert_close(y, wy, atol=tol, rtol=tol, equal_nan=True)


def test_fewbit_empty():
    from pyops import fewbit

    borders, levels = fewbit.table("gelu", 3)
    x = torch.empty(0)
    assert emu.fewbit_encode(x, borders, 3).numel() == 0
    assert emu.fewbit_forward(x, borders, 3, "gelu")[0].numel() == 0
    assert emu.fewbit_backward(x, torch.empty(0, dtype=torch.uint8), levels, 3).numel() == 0


# ------------------------------------------------------------------------------------ gaunt
def _gaunt_args(l1, l2, lo, n, dtype, seed=0):
    z, w = gaunt_ref.grid_nodes(l1 + l2 + lo)
    table = torch.tensor(gaunt_ref.grid_table(max(l1, l2, lo), z), dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, (l1 + 1) ** 2, generator=g, dtype=dtype),
            torch.randn(n, (l2 + 1) ** 2, generator=g, dtype=dtype), table, torch.tensor(w, dtype=dtype))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("l1, l2, lo, n", [(2, 3, 4, 37), (3, 2, 7, 5), (4, 4, 2, 300), (0, 0, 0, 1), (1, 2, 3, 130),
                                           (6, 5, 11, 3)])
def test_gaunt_grid_product(dtype, tol, l1, l2, lo, n):
    args = _gaunt_args(l1, l2, lo, n, dtype, seed=l1 * 100 + lo)
    assert emu.gaunt_splits(n, args[2].shape[0]) >= 1
    got = emu.gaunt_grid_product(*args, lo)
    torch.testing.assert_close(got, ops.gaunt_grid_product(*args, lo), atol=tol, rtol=tol)
    torch.testing.assert_close(got, gaunt_ref.grid_product(*args, lo), atol=tol, rtol=tol)


def test_gaunt_empty_and_extremes():
    x1, x2, table, w = _gaunt_args(2, 2, 4, 0, torch.float64)
    assert emu.gaunt_grid_product(x1, x2, table, w, 4).shape == (0, 25)
    x1, x2, table, w = _gaunt_args(2, 2, 4, 3, torch.float64)
    x1[0, 0], x2[1, 2] = math.nan, math.inf
    got, want = emu.gaunt_grid_product(x1, x2, table, w, 4), ops.gaunt_grid_product(x1, x2, table, w, 4)
    assert torch.equal(got.isnan(), want.isnan())
    torch.testing.assert_close(got[2], want[2], atol=1e-12, rtol=1e-12)


# ------------------------------------------------------------------------------------ intops
INT_DTYPES = [torch.int8, torch.int16, torch.int32]


def _with_extremes(x):
    info = torch.iinfo(x.dtype)
    x = x.clone()
    x.view(-1)[:4] = torch.tensor([info.min, info.max, 0, -1], dtype=x.dtype)
    return x


# rows shorter than, equal to and longer than a block of 256 threads; one row; odd widths
ROWS = [(1, 1), (3, 37), (2, 256), (2, 700), (5, 9)]


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("shape", ROWS)
def test_intops_softmax_bit_exact(dtype, shape):
    for method in ("ibert", "shiftmax"):
        for scale in (0.1, 1e-3):
            hi = 127 if dtype == torch.int8 else int(8 / scale)
            x = _ints(shape, dtype, -hi, hi, seed=shape[1])
            x0, b, c = intops_ref.ibert_exp_constants(scale) if method == "ibert" else (intops_ref.shift_x0(scale), 0, 0)
            got = emu.intops_softmax(x, x0, b, c, 8, method)
            same(got, ops.intops_softmax(x, x0, b, c, 8, method))
            same(got, intops_ref.softmax(x, x0, b, c, 8, method))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("shape", ROWS)
def test_intops_shiftgelu_exp_bit_exact(dtype, shape):
    hi = 127 if dtype == torch.int8 else 2000
    x = _ints(shape, dtype, -hi, hi, seed=shape[1] + 1)
    x0 = intops_ref.shift_x0(intops_ref.SHIFTGELU_ALPHA * 0.05)
    got = emu.intops_shiftgelu(x, x0, 8)
    same(got, ops.intops_shiftgelu(x, x0, 8))
    same(got, intops_ref.shiftgelu(x, x0, 8))
    consts = intops_ref.ibert_exp_constants(0.05)
    xneg = -x.abs()
    same(emu.intops_exp(xneg, *consts), ops.intops_exp(xneg, *consts))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("shape", ROWS)
def test_intops_layernorm_bit_exact(dtype, shape):
    hi = {torch.int8: 127, torch.int16: 30000, torch.int32: 1 << 20}[dtype]
    x = _ints(shape, dtype, -hi, hi, seed=shape[1] + 2)
    bias = _ints((shape[1],), torch.int32, -1000, 1000).long()
    for isqrt in ("exact", "newton"):
        for shift in (0, 3):
            got = emu.intops_layernorm(x, bias, shift, isqrt)
            same(got, ops.intops_layernorm(x, bias, shift, isqrt))
            same(got, intops_ref.layernorm(x, bias, shift, isqrt))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_intops_gelu_requantize_isqrt_bit_exact(dtype):
    x = _with_extremes(_ints((7, 24), dtype, seed=3) if dtype == torch.int8 else _ints((7, 24), dtype, -3000, 3000))
    for scale in (torch.tensor([0.05]), torch.rand(24, dtype=torch.float64) * 0.05 + 1e-4):
        b, c, one, _ = intops_ref.ibert_gelu_constants(scale)
        got = emu.intops_gelu(x, b, c, one)
        same(got, ops.intops_gelu(x, b, c, one))
        same(got, intops_ref.gelu(x, b, c, one))
    xi = _with_extremes(_ints((3, 40), dtype, seed=4))
    m, e = intops_ref.dyadic(torch.tensor([0.0123, 3.7, 1e-6]).repeat(14)[:40])
    for bits in (8, 16):
        same(emu.intops_requantize(xi, m, e, bits), ops.intops_requantize(xi, m, e, bits))
    v = torch.tensor([0, 1, 2, 3, 4, 15, 16, 17, 2 ** 62, 2 ** 62 - 1, 2 ** 63 - 1, 99980001, 99980000])
    same(emu.intops_isqrt(v), ops.intops_isqrt(v))


def test_intops_empty():
    x = torch.empty(0, 5, dtype=torch.int8)
    assert emu.intops_softmax(x, -10, 0, 0, 8, "shiftmax").shape == (0, 5)
    assert emu.intops_layernorm(x, torch.zeros(5, dtype=torch.long), 0, "exact").shape == (0, 5)
    assert emu.intops_exp(x, -10, 5, 7).shape == (0, 5)


# ------------------------------------------------------------------------------------ wavehax
def _block_params(C, H, K, dtype, seed=0):
    """K: square taps, or (frequency taps, time taps) as in the official v2 / fb kernels."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, std=1.0: (std * torch.randn(*s, generator=g)).to(dtype)  # noqa: E731
    kf, kt = (K, K) if isinstance(K, int) else K
    return [r(C, 1, kf, kt, std=0.2), 1 + r(C, std=0.1), r(C, std=0.1), r(H, C, std=C ** -0.5), r(H, std=0.1),
            r(C, H, std=H ** -0.5), r(C, std=0.1), r(C, std=0.5)]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("shape, H, K", [((2, 8, 9, 32), 64, 3), ((1, 5, 7, 3), 6, 5), ((1, 16, 4, 8), 16, 7),
                                         ((2, 3, 130, 4), 8, 3), ((1, 16, 9, 16), 48, (13, 7)),
                                         ((1, 9, 5, 4), 8, (3, 9))])
@pytest.mark.parametrize("framewise", [False, True])
def test_wavehax_block(dtype, tol, shape, H, K, framewise):
    x = torch.randn(*shape, dtype=dtype)
    params = _block_params(shape[3], H, K, dtype, seed=K if isinstance(K, int) else sum(K))
    got = emu.wavehax_convnext2d_block(x, *params, 1e-6, framewise)
    torch.testing.assert_close(got, ops.wavehax_convnext2d_block(x, *params, 1e-6, framewise), atol=tol, rtol=tol)
    torch.testing.assert_close(got, wavehax_ref.convnext2d_block(x, *params, 1e-6, framewise), atol=tol, rtol=tol)


def test_wavehax_harmonic_prior():
    g = torch.Generator().manual_seed(0)
    B, N, hop = 2, 9, 120
    f0 = torch.rand(B, 1, N, generator=g) * 400
    f0[0, 0, :3] = torch.tensor([0.0, 11990.0, 50.0])
    noise = 0.01 * torch.randn(B, 1, N * hop, generator=g)
    phase0 = torch.rand(B, generator=g, dtype=torch.float64)
    got = emu.wavehax_harmonic_prior(f0, noise, phase0, hop, 24000, 0.1)
    torch.testing.assert_close(got, ops.wavehax_harmonic_prior(f0, noise, phase0, hop, 24000, 0.1), atol=2e-5, rtol=0)
    torch.testing.assert_close(got, wavehax_ref.harmonic_prior(f0, noise, phase0, hop, 24000, 0.1), atol=2e-5, rtol=0)
    assert emu.wavehax_harmonic_prior(f0[:, :, :0], noise[:, :, :0], phase0, hop, 24000, 0.1).numel() == 0


@pytest.mark.parametrize("dtype, C", [(torch.float32, 192), (torch.float32, 200), (torch.float64, 100),
                                      (torch.float32, 6200)])
def test_wavehax_block_wide_channels(dtype, C):
    """Past 32 threads' worth of 48 KiB of shared memory (C > 192 in float) the scratch moves to
    global memory; C = 6200 asked for more than 48 KiB before."""
    x = torch.randn(1, 3, 2, C, dtype=dtype)
    params = _block_params(C, 4, 3, dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    got = emu.wavehax_convnext2d_block(x, *params, 1e-6, False)
    torch.testing.assert_close(got, ops.wavehax_convnext2d_block(x, *params, 1e-6, False), atol=tol, rtol=tol)


def test_intops_layernorm_int32_extremes_do_not_overflow():
    """int32 rows near +-2^31 with shift 0: the shift is raised per row until the variance fits
    in int64 (UBSan, on in `make cuda-emu`, flags a signed overflow); every backend agrees."""
    rows = torch.tensor([[1625437259, -1625437259, 1500780963, -1500780963, 2080620641, -2080620641, 33217, -33217],
                         [-2 ** 31, 2 ** 31 - 1, -2 ** 31, 2 ** 31 - 1, 0, 0, 1, -1],
                         [3, -4, 5, 100000, -7, 2 ** 30, 9, -2 ** 30]], dtype=torch.int32)
    bias = torch.zeros(8, dtype=torch.long)
    for isqrt in ("exact", "newton"):
        got = emu.intops_layernorm(rows, bias, 0, isqrt)
        same(got, ops.intops_layernorm(rows, bias, 0, isqrt))
        same(got, intops_ref.layernorm(rows, bias, 0, isqrt))
    long_row = _ints((2, 1000), torch.int32, seed=9)  # 1000 x 2^62: shift 0 would overflow a thousandfold
    same(emu.intops_layernorm(long_row, torch.zeros(1000, dtype=torch.long), 0, "exact"),
         intops_ref.layernorm(long_row, torch.zeros(1000, dtype=torch.long), 0, "exact"))


def test_intops_constant_domains_agree():
    """The torch-free domain checks that the CPU op and the CUDA binding share (intops.h) and the
    reference's restatement (used by the Triton launchers) accept exactly the same constants."""
    lib = emu.lib()
    L = emu.ctypes.c_int64
    for f in (lib.intops_ibert_constants_ok, lib.intops_requantize_constants_ok):
        f.restype = emu.ctypes.c_int
    edges = [-(2 ** 31), -(2 ** 31) + 1, -70000, -65536, -65535, -300, -256, -255, -69, -2, -1, 0, 1]
    for x0 in edges:
        for n in (15, 23):
            assert bool(lib.intops_shift_x0_ok(L(x0), n)) == (intops_ref.shift_x0_error(x0, n) is None), (x0, n)
    for scale in (3e-5, 1e-3, 0.05, 1.6):
        x0, b, c = intops_ref.ibert_exp_constants(scale)
        for db, dc in [(0, 0), (-x0, 0), (2 ** 17, 0), (0, -c), (0, 2 ** 32), (-b - 1, 0)]:
            args = (x0, b + db, c + dc)
            want = intops_ref.ibert_constants_error(*args) is None
            assert bool(lib.intops_ibert_constants_ok(*map(L, args))) == want, args
        assert intops_ref.ibert_constants_error(x0, b, c) is None  # every scale the wrappers allow
    for m in (-1, 0, 2 ** 31, 2 ** 31 + 1):
        for e in (-65, -64, 0, 64, 65):
            want = intops_ref.requantize_constants_error(torch.tensor([m]), torch.tensor([e]), 8) is None
            assert bool(lib.intops_requantize_constants_ok(L(m), L(e))) == want, (m, e)
    for dev, n, s in [(2 ** 32 - 1, 8, 0), (2 ** 20, 768, 0), (2 ** 31, 3, 2), (0, 1, 5)]:
        assert lib.intops_layernorm_shift(L(dev), L(n), s) == int(
            intops_ref.layernorm_shift(torch.tensor([dev]), n, s)), (dev, n, s)


def test_wavehax_harmonic_prior_tiny_f0():
    """F0 = 1e-6 Hz has 1.2e10 harmonics below Nyquist: the count is a double (an int overflowed
    and the count loop never ended); the kernel agrees with the float64 reference."""
    f0 = torch.tensor([[[1e-6, 1e-3, 0.0, 440.0]]])
    noise = torch.zeros(1, 1, 4 * 8)
    phase0 = torch.zeros(1, dtype=torch.float64)
    got = emu.wavehax_harmonic_prior(f0, noise, phase0, 8, 24000, 0.1)
    # near theta = 0 the sum is theta K (K + 1) / 2 ~ 1e10 times an amplitude ~ 1e-6: compare relatively
    torch.testing.assert_close(got, wavehax_ref.harmonic_prior(f0, noise, phase0, 8, 24000, 0.1), atol=2e-5, rtol=1e-6)
    torch.testing.assert_close(got, ops.wavehax_harmonic_prior(f0, noise, phase0, 8, 24000, 0.1), atol=2e-5, rtol=1e-6)
