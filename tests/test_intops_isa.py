"""The intops CPU kernels under every instruction-set level this CPU supports (csrc/cpu/isa.h,
the cpu_isa fixture of conftest.py): each level's copy (AVX2 intrinsics, streaming stores for large
outputs, scalar tails and fallbacks; the AVX-512 level runs the AVX2 copies but for the int8 softmax's
register-table lookup) bit-exact against the int64 reference."""

import pytest
import torch
from helpers import assert_same, random_ints as _ints

from pyops.reference import intops as ref

ops = torch.ops.pyops

# row lengths: shorter than a vector, a vector, not a multiple of 8, a hidden size
LENGTHS = [1, 7, 8, 37, 768]
INT32 = torch.iinfo(torch.int32)


def _with_extremes(x: torch.Tensor) -> torch.Tensor:
    """x with its dtype's minimum and maximum planted in the first row."""
    info = torch.iinfo(x.dtype)
    x = x.clone()
    x.view(-1, x.shape[-1])[0, :2] = torch.tensor([info.min, info.max], dtype=x.dtype)[: x.shape[-1]]
    return x


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_softmax(cpu_isa, dtype):
    for n in LENGTHS:
        for scale in [0.5, 0.05, 1e-3]:
            hi = 127 if dtype == torch.int8 else int(8 / scale)
            x = _ints((5, n), dtype, -hi, hi, seed=n)
            for method in ("ibert", "shiftmax"):
                consts = ref.ibert_exp_constants(scale) if method == "ibert" else (ref.shift_x0(scale), 0, 0)
                for bits in (8, 16):
                    want = ref.softmax(x, *consts, bits, method)
                    assert_same(ops.intops_softmax(x, *consts, bits, method), want)
            x = _with_extremes(x)
            consts = ref.ibert_exp_constants(0.05)
            assert_same(ops.intops_softmax(x, *consts, 8, "ibert"), ref.softmax(x, *consts, 8, "ibert"))


def test_softmax_int8_long_row(cpu_isa):
    """A row past the AVX-512 copy's 2^14-step flush of its int32 partial sums, every difference
    0..255 present (the four register-table lookups and both blend bits), a 37-element tail."""
    x = _ints((1, (32 << 14) + 37), torch.int8, -128, 127, seed=5)
    x[0, :2] = torch.tensor([-128, 127], dtype=torch.int8)
    for method, consts in (("ibert", ref.ibert_exp_constants(0.05)), ("shiftmax", (ref.shift_x0(0.05), 0, 0))):
        assert_same(ops.intops_softmax(x, *consts, 8, method), ref.softmax(x, *consts, 8, method))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_gelu(cpu_isa, dtype):
    """Per-tensor and per-channel scales, with constants of the AVX2 copy's int32 form (scale 1e-3,
    0.05) and without (1e-5: b^2 > 2^31, the table or the int64 loop), and a per-channel mix."""
    for n in LENGTHS:
        lim = None if dtype == torch.int8 else 6000
        x = _with_extremes(_ints((4, n), dtype, None if lim is None else -lim, lim, seed=n))
        mixed = torch.where(torch.arange(n) % 3 == 0, 1e-5, 2e-3).double()
        for scale in [torch.tensor([1e-3]), torch.tensor([0.05]), torch.tensor([1e-5]),
                      torch.rand(n, dtype=torch.float64) * 0.05 + 1e-4, mixed]:
            b, c, one, _ = ref.ibert_gelu_constants(scale)
            assert_same(ops.intops_gelu(x, b, c, one), ref.gelu(x, b, c, one))
        # factors at the bounds check_gelu allows: +-2^31 (+2^31 has no int32 form: the int64 loop)
        for one in (2 ** 31, 1 - 2 ** 31):  # f = one or one - 1
            b, c, one = torch.tensor([-1]), torch.tensor([0]), torch.tensor([one])
            assert_same(ops.intops_gelu(x, b, c, one), ref.gelu(x, b, c, one))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_layernorm(cpu_isa, dtype):
    """Rows of every length with a constant row, a row of std 1 (factor 2^31, the int64 output
    loop), shifts 0 and 3, both square roots; int32 rows whose |x - mean| passes 2^31."""
    hi = 127 if dtype == torch.int8 else 20000
    for n in LENGTHS:
        x = _ints((6, n), dtype, -hi, hi, seed=n)
        x[1] = 5
        if n > 1:
            x[2] = 0
            x[2, 0] = 1  # variance 1 (n - 1 zeros and a one, mean 0)
        bias = _ints((n,), torch.int64, -(2 ** 40), 2 ** 40, seed=n + 1)
        for shift in (0, 3):
            for isqrt in ("exact", "newton"):
                assert_same(ops.intops_layernorm(x, bias, shift, isqrt), ref.layernorm(x, bias, shift, isqrt))
    wide = _ints((4, 37), torch.int32, seed=3)
    wide[0, :2] = torch.tensor([INT32.min, INT32.max])
    bias = _ints((37,), torch.int64, -1000, 1000)
    for isqrt in ("exact", "newton"):
        assert_same(ops.intops_layernorm(wide, bias, 0, isqrt), ref.layernorm(wide, bias, 0, isqrt))


def test_large_outputs_streamed(cpu_isa):
    """Outputs of 8 MiB and more (streaming stores where rows are 32-byte aligned) and one whose
    rows are not aligned (ordinary stores); the scalar level takes its own loops on the same data."""
    for cols in (512, 500):
        x8 = _ints((4096, cols), torch.int8, seed=cols)
        consts = ref.ibert_exp_constants(0.05)
        assert_same(ops.intops_softmax(x8, *consts, 8, "ibert"), ref.softmax(x8, *consts, 8, "ibert"))
        bias = _ints((cols,), torch.int64, -1000, 1000)
        assert_same(ops.intops_layernorm(x8, bias, 0, "exact"), ref.layernorm(x8, bias, 0, "exact"))
        x32 = _ints((2048, cols), torch.int32, -4000, 4000, seed=cols)
        b, c, one, _ = ref.ibert_gelu_constants(torch.tensor([1e-3]))
        assert_same(ops.intops_gelu(x32, b, c, one), ref.gelu(x32, b, c, one))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_requantize_shiftgelu_exp(cpu_isa, dtype):
    for n in LENGTHS:
        x = _with_extremes(_ints((3, n), dtype, seed=n))
        m, e = ref.dyadic(torch.tensor([0.0123, 3.7, 1e-6, 0.5]).repeat(n)[:n])
        for bits in (8, 32):
            assert_same(ops.intops_requantize(x, m, e, bits), ref.requantize(x, m, e, bits))
            assert_same(ops.intops_requantize(x, m[:1], e[:1], bits), ref.requantize(x, m[:1], e[:1], bits))
        lim = None if dtype == torch.int8 else 2000
        small = _ints((3, n), dtype, None if lim is None else -lim, lim)
        x0 = ref.shift_x0(ref.SHIFTGELU_ALPHA * 0.01)
        assert_same(ops.intops_shiftgelu(small, x0, 8), ref.shiftgelu(small, x0, 8))
        consts = ref.ibert_exp_constants(0.05)
        assert_same(ops.intops_exp(-small.abs(), *consts), ref.int_exp(-small.abs(), *consts))


def test_softmax_int16_table_every_difference(cpu_isa):
    """int16 rows holding every value and the maximum: every entry of the 2^16-entry table is read
    (I-BERT's e16 is left zero from d = 16 |x0| on), at 16 output bits, where small e count."""
    x = torch.arange(-32768, 32768, dtype=torch.int64).reshape(16, 4096).to(torch.int16)
    x[:, 0] = 32767
    for scale in [0.05, 1e-3, 3e-5]:
        for method in ("ibert", "shiftmax"):
            consts = ref.ibert_exp_constants(scale) if method == "ibert" else (ref.shift_x0(scale), 0, 0)
            assert_same(ops.intops_softmax(x, *consts, 16, method), ref.softmax(x, *consts, 16, method))


def test_shiftgelu_int8_every_row_max(cpu_isa):
    """int8 ShiftGELU tabulates sigma per row max, once per task: rows with every max (negative
    ones too, where e^(-rowmax) saturates), each max met again later, lengths on and off 8."""
    for n in (37, 64):
        x = _ints((600, n), torch.int8, seed=n)
        cap = torch.arange(600).remainder(256).sub(128).unsqueeze(1)
        x = torch.minimum(x.long(), cap).to(torch.int8)
        for scale, bits in ((0.05, 8), (0.0047, 16), (0.5, 2)):
            x0 = ref.shift_x0(ref.SHIFTGELU_ALPHA * scale)
            assert_same(ops.intops_shiftgelu(x, x0, bits), ref.shiftgelu(x, x0, bits))
