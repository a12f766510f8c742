"""pyops.intops as a drop-in for HuggingFace's I-BERT quant modules.

Our own statement of what transformers' quant-module tests check (IBertModelIntegrationTest: symmetric
scales, quantisation error below one scale, integer outputs, force_dequant), HF's quantisation rules
(the [-127, 126] range, FixedPointMul), the integer paths, torch.compile, and convert_ibert against
transformers' own I-BERT (those tests skip when transformers is not installed).
"""

import copy
import inspect
import math
from fractions import Fraction

import pytest
import torch
from helpers import assert_raises_naming, opcheck
from torch import nn

from pyops import intops
from pyops.intops import IntGELU, IntLayerNorm, IntSoftmax, QuantAct, QuantEmbedding, QuantLinear, convert_ibert
from pyops.reference import intops as ref

try:
    from transformers import IBertConfig, IBertModel
    from transformers.models.ibert import quant_modules as hfq
except ImportError:  # pragma: no cover - the HF comparisons skip
    hfq = None

needs_hf = pytest.mark.skipif(hfq is None, reason="transformers is not installed")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: threads only contend (tens of ms per op on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ints_of(y, scale):
    """The integers a module output holds (y = q * scale), exactly."""
    q = y.detach().double() / torch.as_tensor(scale).double()
    assert torch.allclose(q, q.round(), atol=1e-3, rtol=1e-6), "not integer multiples of the scale"
    return q.round()


# ------------------------------------------------------------------ the HF tests' checks, ours
def test_quant_embedding_symmetric_scale_and_hf_range():
    emb = QuantEmbedding(2, 4, quant_mode=True)
    w = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [5.0, 6.0, 7.0, 8.0]])
    emb.weight = nn.Parameter(w)
    scale = w.abs().max() / 127
    x, x_scale = emb(torch.tensor(0))
    y, y_scale = emb(torch.tensor(1))
    torch.testing.assert_close(x_scale, scale.reshape(1))
    torch.testing.assert_close(y_scale, scale.reshape(1))
    assert ((x - w[0]).abs() <= scale).all() and ((y - w[1]).abs() <= scale).all()
    # HF's symmetric range tops out at 126: the largest weight (127 scales) is clipped one code down
    assert _ints_of(y, y_scale).tolist() == [79.0, 95.0, 111.0, 126.0]
    assert emb.weight_integer.dtype == torch.int8 and emb.weight_integer.tolist()[1] == [79, 95, 111, 126]
    full = QuantEmbedding(2, 4, quant_mode=True, full_range=True)
    full.weight = nn.Parameter(w)
    assert _ints_of(*full(torch.tensor([1]))).tolist() == [[79.0, 95.0, 111.0, 127.0]]
    # a new weight is quantised again (the cache follows the parameter and its in-place updates)
    with torch.no_grad():
        emb.weight.mul_(2)
    assert torch.equal(emb(torch.tensor(1))[1], 2 * y_scale)


def test_quant_act_tracks_its_range_like_hf():
    momentum = 0.95
    act = QuantAct(8, momentum, quant_mode=True)
    x = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [5.0, 6.0, 7.0, 8.0]])
    one = torch.tensor(1.0)
    y, s = act(x, one)
    # the first batch sets the range (on top of the +-1e-5 it starts from)
    torch.testing.assert_close(act.x_min, torch.tensor([-4.0 - 1e-5]))
    torch.testing.assert_close(act.x_max, torch.tensor([8.0 + 1e-5]))
    torch.testing.assert_close(s, act.x_max / 127)
    assert ((x - y).abs() <= s).all()
    _ints_of(y, s)
    lo, hi = act.x_min.clone(), act.x_max.clone()
    y, s = act(2 * x, one)  # then an exponential moving average
    torch.testing.assert_close(act.x_min, lo * momentum + (-8.0) * (1 - momentum))
    torch.testing.assert_close(act.x_max, hi * momentum + 16.0 * (1 - momentum))
    torch.testing.assert_close(s, act.x_max / 127)
    rng = act.x_max
    assert (((2 * x).clamp(-rng, rng) - y).abs() <= s).all()  # saturates beyond the range
    assert _ints_of(y, s).max() == 127  # requantised values use the full [-128, 127]
    act.eval()  # eval: the range and scale stay
    frozen = act.x_min.clone(), act.x_max.clone()
    y3, s3 = act(3 * x, one)
    assert torch.equal(act.x_min, frozen[0]) and torch.equal(act.x_max, frozen[1]) and torch.equal(s3, s)
    # momentum -1: a running min / max; an empty batch changes nothing
    run = QuantAct(8, -1, quant_mode=True)
    run(x, one), run(x / 4, one), run(torch.empty(0, 4), one)
    torch.testing.assert_close(run.x_min, torch.tensor([-4.0 - 1e-5]))
    torch.testing.assert_close(run.x_max, torch.tensor([8.0 + 1e-5]))
    # quant_mode=False: the input (plus identity) passes through, the range still tracked
    plain = QuantAct(8)
    out, none = plain(x, identity=x)
    assert none is None and torch.equal(out, 2 * x) and torch.allclose(plain.x_max, torch.tensor([16.0]))


def _fixed_point(z: int, ratio: Fraction) -> int:
    """round(z * ratio) half to even, exactly."""
    v = z * ratio
    f = math.floor(v)
    return f + 1 if v - f > Fraction(1, 2) or (v - f == Fraction(1, 2) and f % 2) else f


def _dyadic_fraction(ratio: float) -> Fraction:
    m, e = ref.dyadic(torch.tensor([ratio], dtype=torch.float64))
    return Fraction(int(m), 2 ** int(e))


def test_quant_act_residual_add_is_hf_fixed_point_mul():
    """HF's identity test (the sum is close and on the grid), and the values exactly: each term
    requantised as round(z m / 2^e) with HF's 31-bit m, added, then clamped to 8 bits."""
    act = QuantAct(8, quant_mode=True)
    x = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [5.0, 6.0, 7.0, 8.0]])
    res = torch.tensor([[6.0, -7.0, 1.0, -2.0], [3.0, -4.0, -8.0, 5.0]])
    z, zs = act(x, torch.tensor(1.0), res, torch.tensor(0.5))
    assert torch.allclose(x + res, z, atol=0.1)
    got = _ints_of(z, zs)
    s_out = float(zs)
    rx, rr = _dyadic_fraction(1.0 / s_out), _dyadic_fraction(0.5 / s_out)
    want = [[max(-128, min(127, _fixed_point(int(a), rx) + _fixed_point(int(b / 0.5), rr))) for a, b in zip(ra, rb)]
            for ra, rb in zip(x.tolist(), res.tolist())]
    assert got.tolist() == want


def test_hf_symmetric_range_is_minus_127_to_126():
    """Quantising (no input scale) clamps to [-(2^(b-1) - 1), 2^(b-1) - 2] as HF; full_range to the whole
    signed range; requantising always to [-2^(b-1), 2^(b-1) - 1] (HF's FixedPointMul)."""
    x = torch.linspace(-3, 3, 61)
    for full, lo, hi in ((False, -127, 126), (True, -128, 127)):
        act = QuantAct(8, quant_mode=True, full_range=full).eval()
        act.x_min.fill_(-1.0), act.x_max.fill_(1.0)
        q = _ints_of(*act(x))
        assert (q.min(), q.max()) == (lo, hi)
        q = _ints_of(*act(torch.round(x / 0.1) * 0.1, torch.tensor(0.1)))
        assert (q.min(), q.max()) == (-128, 127)
    lin = QuantLinear(3, 2, quant_mode=True, per_channel=True)
    lin.weight = nn.Parameter(torch.tensor([[-1.0, 0.5, 1.0], [2.0, -2.0, 0.0]]))
    lin(torch.zeros(1, 3), torch.tensor([1.0]))
    assert lin.weight_integer.tolist() == [[-127, 64, 126], [126, -127, 0]]


@pytest.mark.parametrize("per_channel", [True, False])
def test_quant_linear_is_an_exact_integer_gemm(per_channel):
    w = torch.tensor([[-1.0, 2.0, 3.0, -4.0], [5.0, -6.0, -7.0, 8.0]]).T
    x = torch.tensor([[2.0, -5.0], [-3.0, 4.0]])
    s_in = torch.tensor([1.0])
    lin_q, lin_f = QuantLinear(2, 4, quant_mode=True, per_channel=per_channel), QuantLinear(2, 4, per_channel=per_channel)
    lin_q.weight = lin_f.weight = nn.Parameter(w)
    q, q_scale = lin_q(x, s_in)
    f, none = lin_f(x, s_in)
    assert none is None and torch.equal(f, x @ w.T)
    wmax = w.abs().max(dim=1).values if per_channel else w.abs().max().reshape(1)
    torch.testing.assert_close(lin_q.fc_scaling_factor, wmax / 127)
    assert torch.allclose(q, f, atol=0.5)
    w_int = lin_q.weight_integer
    assert w_int.dtype == torch.int8 and w_int.min() >= -127 and w_int.max() <= 126
    want = x.long() @ w_int.long().T + lin_q.bias_integer.long()
    assert torch.equal(_ints_of(q, q_scale), want.double())
    torch.testing.assert_close(q_scale, lin_q.fc_scaling_factor * s_in)
    with pytest.raises(ValueError, match="prev_act_scaling_factor"):
        lin_q(x, torch.ones(2))  # HF accepts a per-tensor input scale only


def test_int_addmm_every_route_is_exact():
    """The exact integer GEMM behind QuantLinear: the fp32 route while its bound holds, torch._int_mm
    (forced here; CUDA and AVX512-VNNI CPUs pick it), fp64, int64, and fp64 again when fp32 matmuls may use bf16."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 128, (19, 40), generator=g).float()
    w = torch.randint(-127, 127, (24, 40), generator=g, dtype=torch.int8)
    b = torch.randint(-(2 ** 20), 2 ** 20, (24,), generator=g).float()
    rowsum = float(w.long().abs().sum(1).max())
    want = x.long() @ w.long().T + b.long()
    assert torch.equal(intops._int_addmm(x, w, w.float(), rowsum, b).long(), want)
    assert torch.equal(intops._int_addmm(x, w, w.float(), rowsum, b, int_mm=True).long(), want)
    assert torch.equal(intops._int_addmm(x, w, w.float(), rowsum, b, int_mm=False).long(), want)
    # int8's extremes through torch._int_mm (oneDNN's VNNI kernel shifts x to uint8 and corrects)
    lo = torch.full((19, 40), -128.0)
    wlo = torch.full((24, 40), -128, dtype=torch.int8)
    assert torch.equal(intops._int_addmm(lo, wlo, wlo.float(), 128.0 * 40, None, int_mm=True).long(),
                       torch.full((19, 24), 128 * 128 * 40))
    assert torch.equal(intops._int_addmm(x, w, w.float(), rowsum, None).long(), want - b.long())
    # past the fp32 bound (|x| sum |w| + |b| >= 2^24) fp64, past 2^53 int64: the exact integers, rounded
    # once to x's dtype (the interface's), where an fp32 GEMM would accumulate rounding errors
    big = x * 2 ** 15
    assert torch.equal(intops._int_addmm(big, w, w.float(), rowsum, b),
                       (big.long() @ w.long().T + b.long()).float())
    huge = x.double() * 2 ** 45
    assert torch.equal(intops._int_addmm(huge, w, w.float(), rowsum, None), (huge.long() @ w.long().T).double())
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        assert not intops._exact_fp32_matmul()
        assert torch.equal(intops._int_addmm(x, w, w.float(), rowsum, b).long(), want)
    finally:
        torch.set_float32_matmul_precision(before)


def test_int_gelu_is_the_integer_kernel_and_close_to_gelu():
    gelu = IntGELU(quant_mode=True)
    x_int = torch.arange(-10000, 10001, dtype=torch.float32)
    s = torch.tensor(0.001)
    q, q_scale = gelu(x_int * s, s)
    assert (q - nn.functional.gelu(x_int * s)).abs().max() < 0.025
    assert float(q_scale) < 0  # I-BERT's GELU scale is negative
    b, c, one, _ = ref.ibert_gelu_constants(s.reshape(1))
    assert torch.equal(_ints_of(q, q_scale), ref.gelu(x_int.int(), b, c, one).double())


@pytest.mark.parametrize("kind", ["gelu", "softmax", "layernorm"])
def test_force_dequant(kind):
    x = torch.tensor([[[i * j * j + j for j in range(5, 15)]] for i in range(-10, 10)]) * 0.1
    s = torch.tensor(0.1)

    def make(quant_mode, force="none"):
        if kind == "gelu":
            return IntGELU(quant_mode, force)
        if kind == "softmax":
            return IntSoftmax(8, quant_mode, force)
        return IntLayerNorm((1, 10), 1e-5, 8, quant_mode, force)

    plain, _ = make(False)(x, s)
    for force in ("nonlinear", kind):
        y, scale = make(True, force)(x, s)
        assert scale is None and torch.allclose(y, plain, atol=1e-6)
    for force in {"none", "gelu", "softmax", "layernorm"} - {kind}:
        y, scale = make(True, force)(x, s)
        assert scale is not None and not torch.allclose(y, plain, atol=1e-4)
    assert_raises_naming(lambda: make(True, "everything"), ValueError, "force_dequant")


@pytest.mark.parametrize("rows", [[[i + j for j in range(10)] for i in range(-10, 10)],
                                  [[i + j for j in range(50)] for i in range(-10, 10)],
                                  [[i + 100 * j for j in range(2)] for i in range(-10, 10)]])
def test_int_softmax_close_integer_and_within_output_bits(rows):
    sm = IntSoftmax(8, quant_mode=True).eval()
    sm.act.x_max.fill_(ref.ibert_exp_constants(0.1)[2] * 2.0 ** 30)  # the exponentials' exact range
    x = torch.tensor(rows) * torch.tensor(0.1)
    q, q_scale = sm(x, torch.tensor(0.1))
    assert q_scale == 2 ** -8
    assert (q - torch.softmax(x, -1)).abs().max() < 0.005
    p = _ints_of(q, q_scale)
    assert p.max() < 2 ** 8
    # the fused kernel requantises against the same exact range: the same integers
    assert torch.equal(p, pyops_int_softmax(x, 0.1).double())


def pyops_int_softmax(x, scale):
    return intops.int_softmax(torch.round(x / scale).int(), scale)[0]


@pytest.mark.parametrize("scale", [4.6e-6, 2.0 ** -15, 0.05, 3.0])
def test_int_softmax_any_scale(scale):
    """Scores at a scale outside i-exp's [3e-5, 1.6] (a fresh I-BERT's: ~5e-6) are requantised inside
    the kernel's domain first: the result stays a softmax."""
    g = torch.Generator().manual_seed(1)
    x = torch.round(torch.randn(3, 5, 40, generator=g) * 3 / scale) * scale
    sm = IntSoftmax(8, quant_mode=True).train()
    sm(x, torch.tensor(scale))  # calibrates the 16-bit exponentials' range
    y, _ = sm.eval()(x, torch.tensor(scale))
    err = (y - torch.softmax(x.double(), -1)).abs().max()
    assert err < 0.01, err


def test_int_softmax_masked_scores():
    """HF adds the attention mask's float32 minimum to the scores: those saturate to -2^31 and get 0."""
    g = torch.Generator().manual_seed(2)
    s = torch.tensor(1e-3)
    x = torch.round(torch.randn(2, 3, 16, generator=g) * 2 / s) * s
    mask = torch.zeros(2, 1, 16)
    mask[..., 10:] = torch.finfo(torch.float32).min
    sm = IntSoftmax(8, quant_mode=True).train()
    sm(x, s)
    y, _ = sm.eval()(x + mask, s)
    assert (y[..., 10:] == 0).all()
    assert (y - torch.softmax(x + mask, -1)).abs().max() < 0.01


def test_int_layernorm_like_torch_layernorm():
    x = torch.tensor([[[i * j * j + j for j in range(5, 15)]] for i in range(-10, 10)]) * torch.tensor(0.1)
    ln = IntLayerNorm(x.shape[1:], 1e-5, quant_mode=True, output_bit=8)
    ref_ln = nn.LayerNorm(x.shape[1:], 1e-5)
    ln.weight = ref_ln.weight = nn.Parameter(torch.ones(x.shape[1:]))
    ln.bias = ref_ln.bias = nn.Parameter(torch.ones(x.shape[1:]))
    q, q_scale = ln(x, torch.tensor(0.1))
    # the rounded integer mean (I-BERT's) costs up to 0.5 / std: 0.17 on the row of std 2.9
    assert (q - ref_ln(x)).abs().max() < 0.2
    _ints_of(q, q_scale)
    # a two-dimensional normalized shape normalises over both, as torch's LayerNorm: the integer
    # kernel on the flattened rows (to the integer mean's and floor-sqrt's resolution of float)
    y_int = torch.randint(-300, 300, (3, 4, 8), generator=torch.Generator().manual_seed(0))
    ln2 = IntLayerNorm((4, 8), 1e-5, quant_mode=True)
    nn.init.uniform_(ln2.bias, -1, 1)
    out, out_scale = ln2(y_int * 0.01, torch.tensor(0.01))
    scale = float(torch.tensor(32.0).sqrt()) / 2 ** 30  # HF's float32 sqrt(N) / 2^30
    assert torch.equal(out_scale, scale * ln2.weight)
    bias_int = torch.floor(ln2.bias.detach().double().reshape(-1) / scale).long()
    want = ref.layernorm(y_int.reshape(3, 32), bias_int, 0, "exact").reshape(3, 4, 8)
    assert torch.equal(out, want.float() * out_scale)  # ~2^28 integers: as exact as the float32 interface
    assert (out - nn.functional.layer_norm(y_int * 0.01, (4, 8), bias=ln2.bias, eps=0.0)).abs().max() < 0.01


def test_straight_through_gradients():
    torch.manual_seed(0)
    x = (torch.randint(-100, 100, (3, 6)) * 0.01).requires_grad_()
    s = torch.tensor([0.01])
    lin = QuantLinear(6, 4, quant_mode=True)
    nn.init.normal_(lin.weight)
    y, _ = lin(x, s)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, lin.weight), g)
    fx, fw = torch.autograd.grad(nn.functional.linear(x, lin.weight, lin.bias), (x, lin.weight), g)
    torch.testing.assert_close(gx, fx), torch.testing.assert_close(gw, fw)
    act = QuantAct(8, quant_mode=True)
    y, _ = act(x, s)
    (gx,) = torch.autograd.grad(y, x, g[:, :1].expand(3, 6))
    assert torch.equal(gx, g[:, :1].expand(3, 6))
    emb = QuantEmbedding(5, 3, quant_mode=True)
    nn.init.normal_(emb.weight)
    y, _ = emb(torch.tensor([1, 1, 4]))
    y.sum().backward()
    assert emb.weight.grad[1].tolist() == [2.0] * 3 and emb.weight.grad[0].tolist() == [0.0] * 3


def test_bad_inputs_name_the_module_and_argument():
    assert_raises_naming(lambda: QuantAct(8, per_channel=True), NotImplementedError, "per-channel")
    assert_raises_naming(lambda: IntSoftmax(8, True)(torch.ones(2, 3), torch.tensor(0.0)), ValueError, "IntSoftmax",
                         "scaling_factor")
    assert_raises_naming(lambda: IntSoftmax(8, True)(torch.ones(2, 3), torch.ones(3)), ValueError, "IntSoftmax",
                         "scaling_factor")
    ln = IntLayerNorm(3, 1e-5, quant_mode=True)
    assert_raises_naming(lambda: ln(torch.ones(2, 4), torch.tensor(1.0)), ValueError, "IntLayerNorm", "'x'")
    with torch.no_grad():
        ln.weight[1] = 0
    assert_raises_naming(lambda: ln(torch.ones(2, 3), torch.tensor(1.0)), ValueError, "IntLayerNorm", "'weight'")
    act = QuantAct(8, quant_mode=True)
    assert_raises_naming(lambda: act(torch.ones(2, 3), torch.tensor(0.0)), ValueError, "QuantAct",
                         "pre_act_scaling_factor")
    assert_raises_naming(lambda: act(torch.ones(2, 3), torch.tensor(1.0), torch.ones(2, 3)), ValueError, "QuantAct",
                         "identity_scaling_factor")
    assert_raises_naming(lambda: IntGELU()(torch.ones(2, 3), torch.tensor(1e-9)), ValueError, "IntGELU",
                         "scaling_factor")
    assert_raises_naming(lambda: QuantEmbedding(3, 2, max_norm=1.0, quant_mode=True)(torch.tensor([0])), ValueError,
                         "QuantEmbedding", "max_norm")


def test_composite_ops_opcheck():
    x = torch.randint(-3000, 3000, (3, 2, 9), dtype=torch.int32)
    a = ref.ibert_exp_constants(1e-3)[2] * 2.0 ** 30 / 32767
    opcheck(torch.ops.pyops.intops_ibert_softmax, (x, torch.tensor([1e-3]), torch.tensor([a]), 8), autograd=False)
    opcheck(torch.ops.pyops.intops_ibert_layernorm,
            (x, torch.zeros(9, dtype=torch.int64), torch.tensor([1.0]), "exact"), autograd=False)


_COMPILED = ["IntSoftmax", "IntGELU", "QuantAct", "IntLayerNorm"]


@pytest.fixture(scope="module")
def compiled_and_eager():
    """The four modules in eval / quant mode, each on its own input, run eagerly and through one
    torch.compile(fullgraph=True) of a function calling all four (one compile instead of four)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-3000, 3000, (2, 3, 8), generator=g) * 1e-3
    gs = torch.rand(8, generator=g) * 1e-3 + 1e-4  # per-channel, as after a QuantLinear
    sm = IntSoftmax(8, quant_mode=True)
    sm.act.x_max.fill_(3e12)
    act = QuantAct(8, quant_mode=True)
    act.x_min.fill_(-2.0), act.x_max.fill_(3.0)
    ln = IntLayerNorm(8, 1e-5, quant_mode=True)
    ln.shift.fill_(1)
    cases = {"IntSoftmax": (sm, (x, torch.tensor([1e-3]))),
             "IntGELU": (IntGELU(), (torch.round(x / gs) * gs, gs)),
             "QuantAct": (act, (torch.round(x / gs) * -gs, -gs)),  # a negative (GELU output) input scale
             "IntLayerNorm": (ln, (x, torch.tensor([1e-3])))}
    for mod, _ in cases.values():
        mod.eval()

    def run_all():
        return {name: mod(*args) for name, (mod, args) in cases.items()}

    with torch.no_grad():
        return torch.compile(run_all, fullgraph=True)(), run_all()


@pytest.mark.parametrize("name", _COMPILED)
def test_torch_compile_fullgraph_equals_eager(name, compiled_and_eager):
    compiled, eager = compiled_and_eager
    (y, s), (y_want, s_want) = compiled[name], eager[name]
    assert torch.equal(y, y_want)
    assert torch.equal(torch.as_tensor(s), torch.as_tensor(s_want))


# ------------------------------------------------------------------------- against transformers
_KINDS = ["QuantEmbedding", "QuantAct", "QuantLinear", "IntGELU", "IntSoftmax", "IntLayerNorm"]


@needs_hf
@pytest.mark.parametrize("kind", _KINDS)
def test_signatures_and_state_match_hf(kind):
    ours, theirs = getattr(intops, kind), getattr(hfq, kind)
    ps, ph = (list(inspect.signature(c.__init__).parameters.values()) for c in (ours, theirs))
    assert [(p.name, p.default, p.kind) for p in ps[:len(ph)]] == [(p.name, p.default, p.kind) for p in ph]
    assert all(p.kind is p.KEYWORD_ONLY for p in ps[len(ph):])  # our extras are keyword-only
    assert inspect.signature(ours.forward) == inspect.signature(theirs.forward)
    args = {"QuantEmbedding": (5, 4), "QuantAct": (8,), "QuantLinear": (4, 3), "IntGELU": (), "IntSoftmax": (8,),
            "IntLayerNorm": (6, 1e-5)}[kind]
    a, b = ours(*args).state_dict(), theirs(*args).state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


def _tiny_ibert(seed, init=0.2, layers=2, steps=3):
    """A calibrated (a few train-mode passes), then eval, tiny I-BERT: 2 heads of 16 (sqrt = 4)."""
    torch.manual_seed(seed)
    config = IBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=40, quant_mode=True, initializer_range=init,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = IBertModel(config).train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randint(3, 99, (2, 12)))
    return model.eval()


def _power_of_two_ranges(model):
    """Every QuantAct's range widened to n 2^k: power-of-two scales, where HF's float arithmetic is exact."""
    for m in model.modules():
        if type(m).__name__ == "QuantAct":
            n = 2 ** (m.activation_bit - 1) - 1
            top = max(float(m.x_min.abs()), float(m.x_max.abs()))
            m.x_max.fill_(2.0 ** math.ceil(math.log2(top / n)) * n)
            m.x_min.fill_(-float(m.x_max))


def _layer_lsb(hf_model, ours, ids):
    """Each encoder layer of ours run on the input HF's layer got (with its true scale): the largest
    difference from HF's layer output in output LSBs, and the share of elements that differ."""
    inputs = []
    hooks = [layer.register_forward_pre_hook(lambda m, a: inputs.append(a)) for layer in hf_model.encoder.layer]
    with torch.no_grad():
        hf_model(ids)
        for h in hooks:
            h.remove()
        result = []
        for i, (theirs, mine) in enumerate(zip(hf_model.encoder.layer, ours.encoder.layer)):
            hidden, scale, *rest = inputs[i]
            if i:
                scale = hf_model.encoder.layer[i - 1].output.output_activation.act_scaling_factor
            d = (theirs(hidden, scale, *rest)[0] - mine(hidden, scale, *rest)[0]).abs()
            d = torch.round(d / mine.output.output_activation.act_scaling_factor)
            result.append((float(d.max()), float((d > 0).double().mean())))
    return result


@needs_hf
@pytest.mark.parametrize("init", [0.2, 0.02])  # attention-score scales ~4e-4 (in i-exp's domain), ~5e-6 (not)
def test_convert_ibert_matches_hf(init):
    hf_model = _tiny_ibert(0, init)
    ours = copy.deepcopy(hf_model)
    report = convert_ibert(ours)
    assert report["counts"] == {"QuantEmbedding": 3, "QuantAct": 3 + 2 * 11, "IntLayerNorm": 1 + 2 * 2,
                                "QuantLinear": 2 * 6, "IntSoftmax": 2, "IntGELU": 2}
    assert report["total"] == 49 and report["layer_scale_hooks"] == 1
    assert not any(type(m).__module__.startswith("transformers.models.ibert.quant") for m in ours.modules())
    ours.load_state_dict(hf_model.state_dict(), strict=True)  # HF's state loads as is
    assert set(ours.state_dict()) == set(hf_model.state_dict())
    ids = torch.randint(3, 99, (2, 12), generator=torch.Generator().manual_seed(1))
    for worst, share in _layer_lsb(hf_model, ours, ids):
        assert worst <= 1 and share <= 0.02, (worst, share)
    with torch.no_grad():
        theirs, mine = hf_model(ids).last_hidden_state, ours(ids).last_hidden_state
    # end to end, HF's layer 1 also rounds at the embeddings' scale (its encoder's): a few LSB apart
    lsb = ours.encoder.layer[-1].output.output_activation.act_scaling_factor
    assert torch.round((theirs - mine).abs() / lsb).max() <= 4


@needs_hf
def test_convert_ibert_bit_exact_at_power_of_two_scales():
    hf_model = _tiny_ibert(1, 0.2)
    _power_of_two_ranges(hf_model)
    ours = copy.deepcopy(hf_model)
    convert_ibert(ours)
    ids = torch.randint(3, 99, (2, 12), generator=torch.Generator().manual_seed(2))
    assert _layer_lsb(hf_model, ours, ids) == [(0.0, 0.0), (0.0, 0.0)]
    with torch.no_grad():
        assert torch.equal(hf_model(ids).last_hidden_state, ours(ids).last_hidden_state)


@needs_hf
def test_modules_match_hf_call_by_call():
    """Every quant module of a one-layer I-BERT fed exactly what HF's got: the same integers (QuantLinear:
    HF never rounds x / scale, so within its float noise), GELU and LayerNorm within HF's float32."""
    hf_model = _tiny_ibert(2, 0.2, layers=1)
    ours = copy.deepcopy(hf_model)
    report = convert_ibert(ours)
    calls = []
    hooks = [m.register_forward_hook(lambda m, a, kw, out, name=name: calls.append((name, a, kw, out)), with_kwargs=True)
             for name, m in hf_model.named_modules() if name in report["converted"]]
    with torch.no_grad():
        hf_model(torch.randint(3, 99, (2, 12), generator=torch.Generator().manual_seed(3)))
        for h in hooks:
            h.remove()
        mine = dict(ours.named_modules())
        seen = set()
        for name, args, kwargs, (y_hf, s_hf) in calls:
            kind = report["converted"][name]
            y, s = mine[name](*args, **kwargs)
            torch.testing.assert_close(torch.as_tensor(s).float(), torch.as_tensor(s_hf).float(), rtol=1e-6, atol=0)
            q_hf = y_hf.double() / torch.as_tensor(s_hf).double()
            q = _ints_of(y, s)
            if kind in ("QuantAct", "QuantEmbedding", "IntSoftmax"):
                assert torch.equal(q, q_hf.round()), name
            elif kind == "QuantLinear":
                assert (q - q_hf).abs().max() < 0.01, name
            else:  # GELU: HF's float32 products; LayerNorm: HF's float32 variance
                assert (q - q_hf).abs().max() <= 1e-4 * q_hf.abs().max(), name
            seen.add(kind)
    assert seen == set(_KINDS)


@needs_hf
def test_quant_act_after_int_gelu_matches_hf():
    """I-BERT's GELU output has a negative scale and ~2^37 integers; the next QuantAct requantises
    them (pyops' kernel takes int32, QuantAct shifts them into range first): HF's values exactly."""
    g = torch.Generator().manual_seed(4)
    s = torch.rand(16, generator=g) * 2e-5 + 1e-5  # a QuantLinear's per-channel output scale
    x = torch.randint(-(2 ** 18), 2 ** 18, (64, 16), generator=g) * s
    y_hf, gs_hf = hfq.IntGELU()(x, s)
    y, gs = IntGELU()(x, s)
    assert (gs < 0).all() and _ints_of(y, gs).abs().max() > 2 ** 31
    acts = []
    for cls in (hfq.QuantAct, QuantAct):
        act = cls(8, quant_mode=True)
        act(y_hf, gs_hf)  # calibrate on HF's GELU output
        acts.append(act.eval())
    q_hf, qs_hf = acts[0](y_hf, gs_hf)
    q, qs = acts[1](y_hf, gs_hf)
    assert torch.equal(qs, qs_hf) and torch.equal(q, q_hf.reshape(q.shape))  # HF's is [1, 64, 16]


@needs_hf
def test_converted_model_calibrates_like_hf():
    """Train-mode passes of the converted model track the same ranges as HF's (a one-layer model: no
    mislabelled layer input), and leave the same LayerNorm shift."""
    torch.manual_seed(5)
    config = IBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=40, quant_mode=True, initializer_range=0.2,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    hf_model = IBertModel(config).train()
    ours = copy.deepcopy(hf_model)
    convert_ibert(ours)
    with torch.no_grad():
        for step in range(3):
            ids = torch.randint(3, 99, (2, 12), generator=torch.Generator().manual_seed(10 + step))
            hf_model(ids), ours(ids)
    a, b = hf_model.state_dict(), ours.state_dict()
    for key in a:
        if key.endswith(("x_min", "x_max", "act_scaling_factor", "shift")):
            torch.testing.assert_close(b[key].double(), a[key].double(), rtol=1e-3, atol=0, msg=key)


def test_quantlinear_cpu_int_mm_route_is_chosen_by_vnni(monkeypatch):
    """On the CPU QuantLinear takes torch._int_mm exactly where it is oneDNN's VNNI kernel (torch's own
    condition), the exact fp32 GEMM elsewhere; both give the same integers."""
    vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)()
    assert intops._fast_cpu_int_mm() == (vnni and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
    calls = []
    real = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: calls.append(a.shape) or real(a, b))
    g = torch.Generator().manual_seed(3)
    lin = intops.QuantLinear(32, 24, quant_mode=True, per_channel=True)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(24, 32, generator=g))
        lin.bias.copy_(torch.randn(24, generator=g))
    s_in = torch.tensor([0.05])
    x = torch.randint(-127, 127, (5, 7, 32), generator=g).float() * s_in
    outs = {}
    for fast in (True, False):
        monkeypatch.setattr(intops, "_fast_cpu_int_mm", lambda fast=fast: fast)
        calls.clear()
        outs[fast] = lin(x, s_in)[0]
        assert bool(calls) == fast
    assert torch.equal(outs[True], outs[False])
