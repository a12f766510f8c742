import math

import pytest
import torch
from helpers import (
    HAS_CPP,
    assert_raises_naming,
    assert_same,
    family_backends,
    noncontig,
    opcheck,
    random_ints as _ints,
    run_backend,
    run_without_cpp,
    triton_device,
)
from torch import nn

import pyops
from pyops import intops
from pyops.reference import intops as ref

ops = torch.ops.pyops

BACKENDS, _triton, tk = family_backends("intops")


# Scales from coarse to the fine ones where i-exp's c 2^30 and GELU's products overflow int32.
SCALES = [0.5, 0.1, 0.02, 1e-3, 1e-4]


# --------------------------------------------------------------- bit-exactness
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["ibert", "shiftmax"])
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_softmax_bit_exact(backend, method, dtype):
    for scale in SCALES:
        hi = 127 if dtype == torch.int8 else int(8 / scale)  # real inputs within +-8
        x = _ints((6, 37), dtype, -hi, hi, seed=int(1 / scale))
        x0, b, c = ref.ibert_exp_constants(scale) if method == "ibert" else (ref.shift_x0(scale), 0, 0)
        want = ref.softmax(x, x0, b, c, 8, method)
        assert_same(run_backend(backend, ops.intops_softmax, _triton("softmax"), x, x0, b, c, 8, method), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_gelu_bit_exact_per_tensor_and_per_channel(backend, dtype):
    x = _ints((5, 24), dtype, -3000 if dtype != torch.int8 else None, 3000 if dtype != torch.int8 else None)
    for scale in [torch.tensor([0.05]), torch.tensor([1e-3]), torch.rand(24, dtype=torch.float64) * 0.05 + 1e-4]:
        b, c, one, _ = ref.ibert_gelu_constants(scale)
        want = ref.gelu(x, b, c, one)
        assert_same(run_backend(backend, ops.intops_gelu, _triton("gelu"), x, b, c, one), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shiftgelu_exp_requantize_isqrt_bit_exact(backend):
    x = _ints((4, 33), torch.int16, -2000, 2000)
    for scale in [0.05, 0.004]:
        x0 = ref.shift_x0(ref.SHIFTGELU_ALPHA * scale)
        assert_same(run_backend(backend, ops.intops_shiftgelu, _triton("shiftgelu"), x, x0, 8),
                    ref.shiftgelu(x, x0, 8))
        consts = ref.ibert_exp_constants(scale)
        xneg = -x.abs()
        assert_same(run_backend(backend, ops.intops_exp, _triton("int_exp"), xneg, *consts), ref.int_exp(xneg, *consts))
    negative_row = -_ints((3, 9), torch.int16, 1, 3000)  # ShiftGELU with a negative row max
    x0 = ref.shift_x0(ref.SHIFTGELU_ALPHA * 0.01)
    assert_same(run_backend(backend, ops.intops_shiftgelu, _triton("shiftgelu"), negative_row, x0, 8),
                ref.shiftgelu(negative_row, x0, 8))
    xi = _ints((3, 40), torch.int32)
    m, e = ref.dyadic(torch.tensor([0.0123, 3.7, 1e-6]).repeat(14)[:40])
    assert_same(run_backend(backend, ops.intops_requantize, _triton("requantize"), xi, m, e, 8),
                ref.requantize(xi, m, e, 8))
    v = torch.tensor([0, 1, 2, 3, 4, 15, 16, 17, 2 ** 62, 2 ** 62 - 1, 2 ** 63 - 1, 99980001, 99980000])
    assert_same(run_backend(backend, ops.intops_isqrt, _triton("isqrt"), v), ref.isqrt(v))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("isqrt", ["exact", "newton"])
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_layernorm_bit_exact(backend, isqrt, dtype):
    hi = 100 if dtype == torch.int8 else 20000
    x = _ints((5, 48), dtype, -hi, hi)
    x[1] = 7  # a constant row
    bias_int = _ints((48,), torch.int64, -1000, 1000)
    for shift in [0, 2]:
        want = ref.layernorm(x, bias_int, shift, isqrt)
        assert_same(run_backend(backend, ops.intops_layernorm, _triton("layernorm"), noncontig(x), bias_int, shift,
                                isqrt), want)


@pytest.mark.skipif(tk is None, reason="triton not installed")
@pytest.mark.parametrize("n,block", [(5000, 1024), (300, 64), (65, 64), (64, 64), (1, None)])
def test_row_kernels_tile_long_rows_bit_exact(n, block):
    """Rows longer than the tile (MAX_BLOCK by default, or a forced block) take the multi-pass path
    (max / sum / write over tiles): bit-exact like the one-tile path, tails and all."""
    dev = triton_device()
    if block is None:
        assert n <= tk.MAX_BLOCK
    else:
        assert block <= tk.MAX_BLOCK
    for dtype, hi in [(torch.int8, 127), (torch.int32, 20000)]:
        x = _ints((3, n), dtype, -hi, hi, seed=n)
        xd = x.to(dev)
        for method, consts in [("ibert", ref.ibert_exp_constants(0.05)), ("shiftmax", (ref.shift_x0(0.05), 0, 0))]:
            assert_same(tk.softmax(xd, *consts, 8, method, block).cpu(), ref.softmax(x, *consts, 8, method))
        x0 = ref.shift_x0(ref.SHIFTGELU_ALPHA * 0.01)
        assert_same(tk.shiftgelu(xd, x0, 8, block).cpu(), ref.shiftgelu(x, x0, 8))
        bias_int = _ints((n,), torch.int64, -1000, 1000)
        for isqrt, shift in [("exact", 0), ("newton", 1), ("exact", 2)]:
            assert_same(tk.layernorm(xd, bias_int.to(dev), shift, isqrt, block).cpu(),
                        ref.layernorm(x, bias_int, shift, isqrt))


@pytest.mark.skipif(tk is None, reason="triton not installed")
def test_row_kernels_default_tile_and_bad_block():
    """A row one longer than MAX_BLOCK loops with the default tile; the tile must be a power of two."""
    n = tk.MAX_BLOCK + 1
    x = _ints((2, n), torch.int16, -3000, 3000)
    consts = ref.ibert_exp_constants(0.02)
    assert_same(tk.softmax(x.to(triton_device()), *consts, 8, "ibert").cpu(), ref.softmax(x, *consts, 8, "ibert"))
    for bad in (0, 3, 1.5):
        assert_raises_naming(lambda: tk.softmax(x, *consts, 8, "ibert", bad), ValueError, "intops_softmax", "'block'")


@pytest.mark.skipif(tk is None, reason="triton not installed")
def test_triton_constants_equal_to_one():
    """I-BERT constants b = c = 1 (scale 1.5) and one-element rows: on a GPU Triton passes ints equal
    to 1 as constexprs (scripts/triton_aot.py compiles these); here the results stay exact."""
    dev = triton_device()
    consts = ref.ibert_exp_constants(1.5)
    assert consts[1:] == (1, 1)
    x = _ints((4, 9), torch.int8, -3, 3)
    assert_same(tk.softmax(x.to(dev), *consts, 8, "ibert").cpu(), ref.softmax(x, *consts, 8, "ibert"))
    assert_same(tk.int_exp((-x.abs()).to(dev), *consts).cpu(), ref.int_exp(-x.abs(), *consts))
    col = _ints((5, 1), torch.int16, -300, 300)
    assert_same(tk.layernorm(col.to(dev), torch.tensor([7]).to(dev), 1, "exact").cpu(),
                ref.layernorm(col, torch.tensor([7]), 1, "exact"))


def test_isqrt_exact_on_edges():
    ks = torch.tensor([1, 2, 3, 10, 12345, 2 ** 20 + 7, 3037000499])
    sq = ks * ks
    for x, want in [(sq, ks), (sq - 1, ks - 1), (sq + 1, ks), (torch.tensor([0, 1, 2 ** 62]), torch.tensor([0, 1, 2 ** 31]))]:
        assert_same(pyops.isqrt(x), want)
        assert_same(ref.isqrt(x), want)
    r = pyops.isqrt(torch.tensor([2 ** 63 - 1]))
    assert r.item() == math.isqrt(2 ** 63 - 1)


# --------------------------------------------------------------- accuracy
def test_softmax_error_vs_float_within_published_bound():
    """8-bit I-BERT softmax: max abs error about 0.01 for s in [0.01, 0.1] (the LSB is 1/256)."""
    for scale in [0.01, 0.03, 0.1]:
        x = _ints((64, 128), torch.int16, int(-6 / scale), int(6 / scale))
        out, out_scale = pyops.int_softmax(x, scale, 8, "ibert")
        err = (out * out_scale - torch.softmax(x.double() * scale, -1)).abs().max().item()
        assert err < 0.012, (scale, err)
        out, out_scale = pyops.int_softmax(x, scale, 8, "shiftmax")
        err = (out * out_scale - torch.softmax(x.double() * scale, -1)).abs().max().item()
        assert err < 0.03, (scale, err)


def test_gelu_error_vs_float():
    """I-BERT's GELU polynomial: L-inf about 0.02 on [-4, 4]; ShiftGELU is the coarser sigmoid form."""
    scale = 1e-3
    x = torch.arange(-4000, 4001, dtype=torch.int32).reshape(1, -1)
    out, out_scale = pyops.int_gelu(x, scale)
    gelu = nn.functional.gelu(x.double() * scale)
    assert (out * out_scale - gelu).abs().max() < 0.025
    # ShiftGELU (I-ViT) is designed for coarse scales (e = -x0 2^23 must stay below 2^31)
    # sigma is normalised per row by e^(-rowmax): rows with a positive max, as in a model
    scale = 0.01
    x = torch.arange(-400, 401, dtype=torch.int32).reshape(1, -1)
    out, out_scale = pyops.int_gelu(x, scale, method="shiftgelu")
    xr = x.double() * scale
    # I-ViT normalises with factor = floor((2^31 - 1) / sum) and sum ~ -x0 2^23 here, so the
    # factor (>= 4) quantises sigma by up to 1/4 relative: the method's own resolution.
    err = (out * out_scale - xr * torch.sigmoid(1.702 * xr)).abs()
    assert (err <= 0.25 * xr.abs() + 0.02).all()


def test_gelu_per_tensor_scale_as_float_tensor_or_channels_alike():
    """A per-tensor scale (float or 1-element tensor: constants kept per scale) gives the results of
    the same scale per channel; a caller changing the returned scale in place changes no later call."""
    x = _ints((3, 24), torch.int32, -5000, 5000)
    want, want_scale = pyops.int_gelu(x, torch.full((24,), 2e-3, dtype=torch.float64))
    f64 = torch.float64
    for scale in (2e-3, torch.tensor(2e-3, dtype=f64), torch.tensor([2e-3], dtype=f64), 2e-3):
        out, out_scale = pyops.int_gelu(x, scale)
        assert_same(out, want)
        assert out_scale.shape == (1,) and bool((out_scale == want_scale).all())
        out_scale.mul_(2)
    for bad in (float("nan"), float("inf"), 0.0, 11.0, torch.tensor(-1.0)):
        assert_raises_naming(lambda: pyops.int_gelu(x, bad), ValueError, "int_gelu", "'scale'")


def test_layernorm_error_and_constant_row():
    x = _ints((8, 64), torch.int16, -3000, 3000)
    w, b = torch.rand(64) + 0.5, torch.randn(64)
    out, out_scale = pyops.int_layernorm(x, w, b)
    want = nn.functional.layer_norm(x.double(), (64,), w.double(), b.double(), eps=0)
    assert (out * out_scale - want).abs().max() < 1e-3
    const = torch.full((2, 64), 17, dtype=torch.int16)
    out_c, scale_c = pyops.int_layernorm(const, w, b)
    torch.testing.assert_close((out_c * scale_c).float(), b.expand(2, 64), atol=1e-6, rtol=0)  # bias alone
    out_n, _ = pyops.int_layernorm(x, w, b, isqrt="newton")
    assert ((out_n - out).abs() <= (out.abs() >> 10) + 2).all()  # Newton sqrt is exact here up to rounding


def test_requantize_matches_float_rounding():
    x = _ints((1000,), torch.int32, -(2 ** 20), 2 ** 20)
    out, _ = pyops.requantize(x, 0.001, 0.37, bits=16)
    exact = x.double() * 0.001 / 0.37
    want = torch.round(exact).clamp(-32768, 32767)
    # m has 31 bits: results differ from float rounding only at (near-)ties, by one LSB
    differ = out.double() != want
    assert (out.double() - want).abs().max() <= 1
    assert ((exact[differ] - exact[differ].floor() - 0.5).abs() < 1e-6).all()


# --------------------------------------------------------------- op contract
@pytest.mark.parametrize("name,args", [
    ("intops_softmax", lambda: (_ints((3, 7), torch.int8), *ref.ibert_exp_constants(0.05), 8, "ibert")),
    ("intops_softmax", lambda: (_ints((3, 7), torch.int16), ref.shift_x0(0.05), 0, 0, 8, "shiftmax")),
    ("intops_exp", lambda: (-_ints((3, 7), torch.int8, 0, 100), *ref.ibert_exp_constants(0.05))),
    ("intops_gelu", lambda: (_ints((3, 7), torch.int32, -999, 999), *ref.ibert_gelu_constants(torch.tensor([0.01]))[:3])),
    ("intops_shiftgelu", lambda: (_ints((3, 7), torch.int8), ref.shift_x0(0.1), 8)),
    ("intops_layernorm", lambda: (_ints((3, 7), torch.int8), torch.zeros(7, dtype=torch.int64), 0, "exact")),
    ("intops_isqrt", lambda: (torch.tensor([0, 5, 99]),)),
    ("intops_requantize", lambda: (_ints((3, 7), torch.int32), *ref.dyadic(torch.tensor([0.01])), 8)),
])
def test_opcheck(name, args):
    opcheck(getattr(ops, name), args(), autograd=False)


def test_empty_inputs():
    e8 = torch.empty(0, 5, dtype=torch.int8)
    assert pyops.int_softmax(e8, 0.1)[0].shape == (0, 5)
    assert pyops.int_gelu(e8, 0.1)[0].shape == (0, 5)
    assert pyops.int_layernorm(e8, torch.ones(5), torch.zeros(5))[0].shape == (0, 5)
    assert pyops.requantize(e8, 0.1, 0.2)[0].shape == (0, 5)
    assert pyops.isqrt(torch.empty(0, dtype=torch.int64)).shape == (0,)
    if tk is not None:
        assert tk.softmax(e8, -2, 27, 279, 8, "ibert").shape == (0, 5)


def test_torch_compile_fullgraph():
    def f(x, w, b):
        s, _ = pyops.int_softmax(x, 0.05)
        m, _ = pyops.int_softmax(x, 0.05, method="shiftmax")
        g, _ = pyops.int_gelu(x, 0.05)
        sg, _ = pyops.int_gelu(x, 0.05, method="shiftgelu")
        ln, _ = pyops.int_layernorm(x, w, b)
        q, _ = pyops.requantize(x.int(), 0.05, 0.1)
        return s, m, g, sg, ln, q, pyops.isqrt(x.long().abs())

    x = _ints((4, 16), torch.int8)
    w, b = torch.ones(16), torch.zeros(16)
    eager = f(x, w, b)
    compiled = torch.compile(f, fullgraph=True)(x, w, b)
    for got, want in zip(compiled, eager):
        assert_same(got, want)


# --------------------------------------------------------------- bad input
def test_bad_inputs_name_op_and_argument():
    x = _ints((2, 8), torch.int8)
    assert_raises_naming(lambda: pyops.int_softmax(x.float(), 0.1), TypeError, "int_softmax", "'x'", "integer")
    assert_raises_naming(lambda: pyops.int_softmax(x, 0.0), ValueError, "int_softmax", "'scale'")
    assert_raises_naming(lambda: pyops.int_softmax(x, -0.1), ValueError, "int_softmax", "'scale'")
    assert_raises_naming(lambda: pyops.int_softmax(x, float("nan")), ValueError, "int_softmax", "'scale'")
    assert_raises_naming(lambda: pyops.int_softmax(x, 0.1, output_bits=40), ValueError, "int_softmax", "'output_bits'")
    assert_raises_naming(lambda: pyops.int_softmax(x, 0.1, method="fast"), ValueError, "int_softmax", "'method'")
    assert_raises_naming(lambda: pyops.int_gelu(x, torch.rand(3)), ValueError, "int_gelu", "'scale'")
    assert_raises_naming(lambda: pyops.int_gelu(x, 0.1, method="shiftgelu", output_bits=1), ValueError, "int_gelu",
                         "'output_bits'")
    assert_raises_naming(lambda: pyops.int_layernorm(x, torch.ones(7), torch.zeros(7)), ValueError, "int_layernorm",
                         "'weight'")
    assert_raises_naming(lambda: pyops.int_layernorm(x, torch.ones(8), torch.zeros(8), isqrt="float"), ValueError,
                         "int_layernorm", "'isqrt'")
    assert_raises_naming(lambda: pyops.requantize(x, 0.1, 0.2, bits=64), ValueError, "requantize", "'bits'")
    assert_raises_naming(lambda: pyops.requantize(x, 0.1, -1.0), ValueError, "requantize", "'scale_out'")
    assert_raises_naming(lambda: pyops.isqrt(torch.tensor([-4])), ValueError, "isqrt", "non-negative")
    assert_raises_naming(lambda: pyops.isqrt(torch.tensor([4.0])), TypeError, "isqrt", "'x'")
    if HAS_CPP:
        assert_raises_naming(lambda: ops.intops_softmax(x.float(), -1, 1, 1, 8, "ibert"), RuntimeError,
                             "intops_softmax", "'x'")
        assert_raises_naming(lambda: ops.intops_isqrt(torch.tensor([-1])), RuntimeError, "intops_isqrt")


# --------------------------------------------------------------- modules
def test_modules_follow_ibert_convention_and_train_straight_through():
    torch.manual_seed(0)
    scale = torch.tensor(1e-3)  # I-BERT's GELU needs fine scales (an int32 accumulator's)
    x = (torch.randint(-4000, 4000, (4, 16)) * scale).requires_grad_()
    for mod, ref_fn in [(intops.IntSoftmax(8, quant_mode=True), lambda t: torch.softmax(t, -1)),
                        (intops.IntGELU(), nn.functional.gelu),
                        (intops.IntLayerNorm(16, 1e-5, quant_mode=True), lambda t: nn.functional.layer_norm(t, (16,)))]:
        y, y_scale = mod(x, scale)
        assert y_scale is not None
        assert torch.allclose(y, ref_fn(x), atol=0.05)
        # y holds integer multiples of its scale
        mult = y.detach() / y_scale
        assert torch.allclose(mult, torch.round(mult), atol=1e-3)
        g = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, g)
        (want,) = torch.autograd.grad(ref_fn(x), x, g)
        torch.testing.assert_close(gx, want)  # straight-through: the float function's gradient
    qa = intops.QuantAct(8, quant_mode=True)
    y, s = qa(x, scale)
    assert torch.allclose(y.detach() / s, torch.round(y.detach() / s), atol=1e-3)
    assert (y - x).abs().max() <= s / 2 + 1e-6


def test_layernorm_module_learns_the_shift_for_int32_accumulators():
    """sum(y^2) over 32 values of |y| ~ 2^16 passes 2^32: I-BERT's shift keeps it below."""
    mod = intops.IntLayerNorm(32, 1e-5, quant_mode=True)
    scale = torch.tensor(1e-3)
    x = torch.randint(-(2 ** 17), 2 ** 17, (2, 32)) * scale
    y, _ = mod(x, scale)
    assert int(mod.shift) > 0
    assert torch.allclose(y, nn.functional.layer_norm(x, (32,)), atol=1e-2)


def test_reference_fallback_without_cpp():
    run_without_cpp(
        """
        import torch, pyops
        from pyops import _library
        assert _library.BACKENDS["intops_softmax"]["cpu"] == "reference"
        out, s = pyops.int_softmax(torch.tensor([[0, 10, 20]], dtype=torch.int8), 0.1)
        assert out.dtype == torch.int32 and abs(float(out.sum()) * s - 1) < 0.02
        """
    )


# ------------------------------------------------------------ regressions (issue 13)
@pytest.mark.parametrize("backend", BACKENDS)
def test_layernorm_int32_extremes_no_overflow(backend):
    """int32 rows near +-2^31 with shift 0: the variance shift is raised per row until it fits in
    int64 (was SIGFPE with isqrt="newton", or zeros on C++ and other garbage in the reference)."""
    x = torch.tensor([[1625437259, -1625437259, 1500780963, -1500780963, 2080620641, -2080620641, 33217, -33217],
                      [-1470458199, 2114968690, -1782406834, 5, 6, 7, 8, 9]], dtype=torch.int32)
    bias = torch.zeros(8, dtype=torch.int64)
    for isqrt in ("exact", "newton"):
        want = ref.layernorm(x, bias, 0, isqrt)
        assert_same(run_backend(backend, ops.intops_layernorm, _triton("layernorm"), x, bias, 0, isqrt), want)
    out, _ = pyops.int_layernorm(x, torch.ones(8), torch.zeros(8), isqrt="newton")  # no crash
    assert out.shape == x.shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_ops_reject_constants_outside_their_domain(backend):
    """Constants the wrappers never produce get a clear error naming the op (were SIGFPE)."""
    z = torch.zeros(1, 1, dtype=torch.int8)
    calls = [
        ("intops_softmax", ops.intops_softmax, _triton("softmax"), (z, -2 ** 17, 0, 0, 8, "shiftmax")),
        ("intops_softmax", ops.intops_softmax, _triton("softmax"), (z, -10, -(2 ** 40), 7, 8, "ibert")),
        ("intops_softmax", ops.intops_softmax, _triton("softmax"), (z, -10, 0, 0, 40, "shiftmax")),
        ("intops_shiftgelu", ops.intops_shiftgelu, _triton("shiftgelu"), (z, -2 ** 40, 8)),
        ("intops_shiftgelu", ops.intops_shiftgelu, _triton("shiftgelu"), (z, -10, 33)),
        ("intops_exp", ops.intops_exp, _triton("int_exp"), (z, -10, 2 ** 40, 7)),
        ("intops_exp", ops.intops_exp, _triton("int_exp"), (torch.ones(1, dtype=torch.int8), *ref.ibert_exp_constants(0.05))),
    ]
    for name, op, tfn, args in calls:
        assert_raises_naming(lambda: run_backend(backend, op, tfn, *args), RuntimeError, name)
    x = torch.ones(1, 3, dtype=torch.int32)
    m, e = torch.tensor([2 ** 40]), torch.tensor([0])
    assert_raises_naming(lambda: run_backend(backend, ops.intops_requantize, _triton("requantize"), x, m, e, 8),
                         RuntimeError, "intops_requantize", "'m'")
    x2 = x[:, :2]
    m, e = torch.tensor([5, 2 ** 30]), torch.tensor([0, 65])  # every m is valid, the second e is not
    rq = _triton("requantize")
    assert_raises_naming(lambda: run_backend(backend, ops.intops_requantize, rq, x2, m, e, 8), RuntimeError,
                         "intops_requantize", "'e'")
    for b, c, o, arg in [(0, -5, -100, "'b'"), (-2 ** 31, -5, -100, "'b'"), (-10, 2 ** 62, -100, "'c'"),
                         (-10, -5, -(2 ** 62), "'one'"), (-1, 0, 2 ** 31 + 1, "'one'")]:
        consts = torch.tensor([-10, b]), torch.tensor([-5, c]), torch.tensor([-100, o])  # channel 1 is bad
        assert_raises_naming(lambda: run_backend(backend, ops.intops_gelu, _triton("gelu"), x2, *consts),
                             RuntimeError, "intops_gelu", arg)
    assert_raises_naming(lambda: pyops.int_exp(torch.ones(3, dtype=torch.int8), 0.05), ValueError, "int_exp", "'x'")


@pytest.mark.parametrize("backend", BACKENDS)
def test_requantize_saturates(backend):
    """A left shift past int64 saturates to the output range instead of wrapping (was -2^31)."""
    x = torch.tensor([[2 ** 31 - 1, -(2 ** 31), 1, -1, 0]], dtype=torch.int32)
    m, e = ref.dyadic(torch.tensor([2.0 ** 40]))
    want = torch.tensor([[2 ** 31 - 1, -(2 ** 31), 2 ** 31 - 1, -(2 ** 31), 0]], dtype=torch.int32)
    assert_same(ref.requantize(x, m, e, 32), want)
    assert_same(run_backend(backend, ops.intops_requantize, _triton("requantize"), x, m, e, 32), want)
    out, _ = pyops.requantize(torch.tensor([2 ** 31 - 1], dtype=torch.int32), 1.0, 2.0 ** -40, bits=32)
    assert out.item() == 2 ** 31 - 1
    big_e = torch.tensor([64]), torch.tensor([-64])  # any e in range is exact: 0, or saturation
    assert_same(run_backend(backend, ops.intops_requantize, _triton("requantize"), x, torch.tensor([3]), big_e[0], 16),
                torch.zeros_like(x))
    assert_same(run_backend(backend, ops.intops_requantize, _triton("requantize"), x, torch.tensor([3]), big_e[1], 16),
                torch.tensor([[32767, -32768, 32767, -32768, 0]], dtype=torch.int32))


def test_modules_accept_empty_batches_in_training():
    ln, act = intops.IntLayerNorm(4, 1e-5, quant_mode=True), intops.QuantAct(8, quant_mode=True)
    ln.train(), act.train()
    x = torch.empty(0, 4)
    y, scale = act(x)
    assert y.shape == (0, 4)
    assert ln(x, torch.tensor(0.1))[0].shape == (0, 4)


def _requantize_edge_inputs(dtype, n):
    """dtype extremes, exact .5 ties of x m / 2^e (x = 2^t j, j odd, both parities of the quotient)
    and their neighbours, then random values; n elements, seeded."""
    info = torch.iinfo(dtype)
    vals = [info.min, info.min + 1, info.max, info.max - 1, 0, 1, -1]
    for t in range(info.bits):
        for j in range(-7, 8, 2):
            for d in (-1, 0, 1):
                v = j * 2 ** t + d
                if info.min <= v <= info.max:
                    vals.append(v)
    head = torch.tensor(vals[:n], dtype=torch.int64).to(dtype)
    return torch.cat([head, _ints((max(0, n - head.numel()),), dtype, seed=n)])


@pytest.mark.skipif(not HAS_CPP, reason="the C++ extension is not built")
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_requantize_cpu_vector_path_bit_exact(dtype):
    """The CPU kernel (AVX2 where available, scalar tails and fallbacks) against the reference:
    per-tensor and per-channel constants over e in {0, 1, 5, 31, 62, 63, -3} and m in {0, 1, 2^31,
    random}, rows of lengths that are and are not multiples of 8, every bits of {2, 8, 16, 32}."""
    g = torch.Generator().manual_seed(11)
    es = [0, 1, 5, 31, 62, 63, -3]
    ms = [0, 1, 2 ** 31, int(torch.randint(2, 2 ** 31, (1,), generator=g)), 2 ** 30 + 1, 3]
    x1 = _requantize_edge_inputs(dtype, 1003)  # a length that is not a multiple of 8
    for bits in (2, 8, 16, 32):
        for e in es:
            for m in ms:
                m_t, e_t = torch.tensor([m]), torch.tensor([e])
                assert_same(ops.intops_requantize(x1, m_t, e_t, bits), ref.requantize(x1, m_t, e_t, bits))
                x2 = x1[:1000].reshape(40, 25)
                assert_same(ops.intops_requantize(x2, m_t.repeat(25), e_t.repeat(25), bits),
                            ref.requantize(x2, m_t.repeat(25), e_t.repeat(25), bits))
    # per channel: C a multiple of 8 and not, constants all of the vector form or not (m = 2^31 at
    # e = 0, a large m at e = -3 stay scalar); enough rows that threads split rows mid-way
    for channels, rows in ((16, 7), (13, 9), (203, 300), (768, 50)):
        x = _requantize_edge_inputs(dtype, channels * rows).reshape(rows, channels)
        for trial in range(6):
            vector_form = trial % 2 == 0
            e = torch.tensor(es, dtype=torch.int64)[torch.randint(0, len(es), (channels,), generator=g)]
            m = torch.tensor(ms, dtype=torch.int64)[torch.randint(0, len(ms), (channels,), generator=g)]
            random_m = torch.randint(0, 2 ** 31 + 1, (channels,), generator=g)
            m = torch.where(torch.rand(channels, generator=g) < 0.5, m, random_m)
            if vector_form:
                m = torch.where((e == 0) & (m == 2 ** 31), m - 1, m)
                m = torch.where(e < 0, m >> 4, m)
            for bits in (2, 8, 16, 32):
                assert_same(ops.intops_requantize(x, m, e, bits), ref.requantize(x, m, e, bits))
        flat = x.reshape(-1)[: 8 * 1001 + 5]  # one channel over a long 1-D row
        for m, e in ((1234567891, 40), (2 ** 31, 31), (7, 0), (2 ** 31, 0), (5, -3)):
            m_t, e_t = torch.tensor([m]), torch.tensor([e])
            assert_same(ops.intops_requantize(flat, m_t, e_t, 8), ref.requantize(flat, m_t, e_t, 8))
