import math

import pytest
import torch
from helpers import (
    HAS_CPP,
    assert_raises_naming,
    assert_same,
    family_backends,
    gradcheck,
    noncontig,
    opcheck,
    run_backend,
    run_without_cpp,
)
from torch import nn

from pyops import pam
from pyops.reference import pam as ref

ops = torch.ops.pyops
INF, NAN = float("inf"), float("nan")
TINY = 1e-40  # a float32 denormal

BACKENDS, _triton, tk = family_backends("pam")


# --------------------------------------------------------------- values
KNOWN = [(1.5, 1.5, 2.0), (4.5, 3.0, 13.0), (-6.0, 3.0, -16.0), (0.7, 1.0, 0.7), (0.7, 32.0, 0.7 * 32)]

# (a, b, PAM(a, b)) decided by pyops semantics; float32
EDGES = [
    (0.0, 5.0, 0.0), (-0.0, 5.0, -0.0), (0.0, -5.0, -0.0), (TINY, 3.0, 0.0), (-TINY, 3.0, -0.0),
    (1e-30, 1e-30, 0.0), (-1e-30, 1e-30, -0.0),  # underflow -> signed zero
    (3e38, 3e38, INF), (-3e38, 3e38, -INF),  # overflow -> signed inf
    (INF, 2.0, INF), (INF, -2.0, -INF), (-INF, -INF, INF), (INF, 0.0, NAN), (0.0, -INF, NAN), (INF, TINY, NAN),
    (NAN, 1.0, NAN), (1.0, NAN, NAN), (NAN, 0.0, NAN),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_values_and_edge_table(backend):
    a = torch.tensor([k[0] for k in KNOWN + EDGES])
    b = torch.tensor([k[1] for k in KNOWN + EDGES])
    want = torch.tensor([k[2] for k in KNOWN + EDGES])
    got = run_backend(backend, ops.pam_mul, _triton("mul"), a, b)
    assert_same(got, want)
    assert_same(ref.mul(a, b), want)


def test_edge_table_float64_matches_rule():
    a = torch.tensor([0.0, 1e-310, 1e-200, 1e308, INF, INF, NAN, 1.5], dtype=torch.float64)
    b = torch.tensor([-3.0, 2.0, 1e-200, -1e308, 0.0, -1.0, 1.0, 1.5], dtype=torch.float64)
    want = torch.tensor([-0.0, 0.0, 0.0, -INF, NAN, -INF, NAN, 2.0], dtype=torch.float64)
    assert_same(ref.mul(a, b), want)
    if HAS_CPP:
        assert_same(ops.pam_mul(a, b), want)


def test_division_and_exp_log_values():
    assert_same(pam.div(torch.tensor([13.0, 1.0, 0.0, -1.0, INF]), torch.tensor([3.0, 0.0, 0.0, INF, INF])),
                torch.tensor([4.5, INF, NAN, -0.0, NAN]))
    assert_same(pam.exp2(torch.tensor([2.5, -0.5, 0.0, -INF, INF, 200.0, -200.0])),
                torch.tensor([6.0, 0.75, 1.0, 0.0, INF, INF, 0.0]))
    assert_same(pam.log2(torch.tensor([6.0, 0.75, 1.0, 0.0, -1.0, INF])),
                torch.tensor([2.5, -0.5, 0.0, -INF, NAN, INF]))


def test_pam_bounds():
    """Never above |ab|, worst relative error 1/9 at ma = mb = 0.5, mean error about -4%."""
    a, b = torch.rand(100_000) + 1, torch.rand(100_000) + 1
    p = pam.mul(a, b)
    rel = (p - a * b) / (a * b)
    assert (p <= a * b).all()
    assert rel.min() >= -1 / 9 - 1e-6
    assert -0.05 < rel.mean() < -0.03
    assert pam.mul(torch.tensor(1.5), torch.tensor(1.5)) / 2.25 == pytest.approx(8 / 9)


def _random(shape, dtype, zeros=True):
    x = (torch.randn(shape) * torch.exp2(torch.randint(-8, 8, shape).float())).to(dtype)
    if zeros:
        x[torch.rand(shape) < 0.1] = 0
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["mul", "div", "mul_grad_factor"])
def test_binary_bit_exact(name, backend, dtype):
    a, b = _random((33, 17), dtype), _random((17,), dtype)  # broadcasting
    args = (a, b, 1.0625) if name != "div" else (a, b)
    want = getattr(ref, name)(*args)
    assert_same(run_backend(backend, getattr(ops, f"pam_{name}"), _triton(name), *args), want)
    # non-contiguous operands give the same values
    nc_args = (noncontig(a), b) + args[2:]
    assert_same(run_backend(backend, getattr(ops, f"pam_{name}"), _triton(name), *nc_args), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["exp2", "log2"])
def test_unary_bit_exact(name, backend, dtype):
    x = (torch.randn(40, 25) * 30).to(dtype)
    if name == "log2":
        x = x.abs() * torch.exp2(torch.randint(-60, 60, x.shape)).to(dtype)
    assert_same(run_backend(backend, getattr(ops, f"pam_{name}"), _triton(name), noncontig(x)), getattr(ref, name)(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_bmm_matches_reference(backend, dtype):
    a = torch.relu(_random((2, 19, 37), dtype))  # zeros exercise the masked fast path
    b = _random((2, 37, 21), dtype)
    want = ref.bmm(a, b, 1.0)
    got = run_backend(backend, ops.pam_bmm, _triton("bmm"), a, b)
    if backend == "cpu":  # same k order as the reference: bit-exact
        assert_same(got, want)
    else:
        assert_same(got, want, exact=False, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("backend", BACKENDS)
def test_bmm_extreme_and_nonfinite_values(backend):
    """Elements of A whose products could leave the normal range take the exact scalar path."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(1, 9, 11, generator=g)
    b = torch.randn(1, 11, 7, generator=g)
    a[0, 2, 3], a[0, 4, 5], b[0, 1, 1] = 1e37, 1e-37, 1e30
    want = ref.bmm(a, b)
    got = run_backend(backend, ops.pam_bmm, _triton("bmm"), a, b)
    if backend == "cpu":  # same k order as the reference: bit-exact
        assert_same(got, want)
    else:  # Triton sums k-slices as a tree: within the reordering bound K eps sum_k |PAM(a, b)|
        bound = ref.bmm(a.abs(), b.abs()) * (a.shape[-1] * 2.0 ** -24)
        assert ((got - want).abs() <= bound).all(), ((got - want).abs() - bound).max()
    b[0, 3, 0] = INF
    want = ref.bmm(a, b)
    got = run_backend(backend, ops.pam_bmm, _triton("bmm"), a, b)
    assert_same(got.isnan(), want.isnan())
    assert_same(got.isinf(), want.isinf())


@pytest.mark.parametrize("backend", BACKENDS)
def test_bmm_offset_and_exact_grad_kernel(backend):
    a, b, g = torch.randn(2, 5, 6), torch.randn(2, 6, 4), torch.randn(2, 5, 4)
    got = run_backend(backend, ops.pam_bmm, _triton("bmm"), a, b, 1.0625)
    assert_same(got, ref.bmm(a, b, 1.0625), exact=False, rtol=1e-5, atol=1e-6)
    want = ref.bmm_exact_grad(g, a, b, 1.0625)
    got = run_backend(backend, ops.pam_bmm_exact_grad, _triton("bmm_exact_grad"), g, a, b, 1.0625)
    if backend == "cpu":  # same j / i order as the reference: bit-exact
        assert_same(got, want)
    else:  # Triton sums slices as a tree
        assert_same(got, want, exact=False, rtol=1e-5, atol=1e-5 * max(w.abs().max().item() for w in want))


def test_matmul_shapes_follow_torch():
    for sa, sb in [((5,), (5,)), ((3, 5), (5,)), ((5,), (5, 4)), ((2, 1, 3, 5), (4, 5, 6)), ((3, 5), (2, 5, 4))]:
        a, b = torch.randn(sa), torch.randn(sb)
        a2 = a[None] if a.dim() == 1 else a
        b2 = b[:, None] if b.dim() == 1 else b
        want = ref.mul(a2[..., :, :, None], b2[..., None, :, :]).sum(-2)  # [..., n, k, m] -> [..., n, m]
        want = want.reshape(torch.matmul(a, b).shape)
        torch.testing.assert_close(pam.matmul(a, b), want, rtol=1e-5, atol=1e-5)


def test_power_of_two_operands_are_exact():
    """PAM is exact when an operand is a power of two: linear and conv then equal torch's."""
    w = torch.exp2(torch.randint(-3, 3, (8, 6)).float()) * torch.sign(torch.randn(8, 6))
    x = torch.randn(4, 6)
    torch.testing.assert_close(pam.linear(x, w), x @ w.t())
    conv = pam.PAMConv2d(3, 4, 3, padding=1, stride=2, groups=1)
    with torch.no_grad():
        conv.weight.copy_(torch.exp2(torch.randint(-3, 3, conv.weight.shape).float()))
    img = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(conv(img), nn.functional.conv2d(img, conv.weight, conv.bias, 2, 1))
    gconv = pam.PAMConv2d(4, 6, 3, padding=1, groups=2, bias=False)
    with torch.no_grad():
        gconv.weight.copy_(torch.exp2(torch.randint(-3, 3, gconv.weight.shape).float()))
    img = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(gconv(img), nn.functional.conv2d(img, gconv.weight, None, 1, 1, 1, 2))


def test_derived_functions_are_close_to_float():
    # exp(x) = pa_exp2(PAM(x, log2 e)): the PAM error (<= 1/9 relative) lands in the exponent,
    # and pa_exp2 itself is within 0.09 of log2-space.
    x = torch.linspace(-4, 4, 101)
    z = x * math.log2(math.e)
    assert ((torch.log2(pam.exp(x)) - z).abs() <= z.abs() / 9 + 0.09).all()
    assert_same(pam.exp(x), pam.exp2(pam.mul(x, math.log2(math.e))))
    p = torch.linspace(0.1, 50, 101)
    # PAD over-estimates by <= 12.5%; pa_log2 is within 0.09 of log2 (0.063 in natural log)
    assert ((pam.log(p) - torch.log(p)).abs() <= 0.125 * torch.log(p).abs() + 0.07).all()
    # pow(p, b) = pa_exp2(PAM(pa_log2 p, b)): in log2 space within |b log2 p| / 9 + 0.09 (|b| + 1)
    for b, got in [(1.5, pam.pow(p, 1.5)), (0.5, pam.sqrt(p)), (-2.0, pam.pow(p, -2.0))]:
        exact = b * torch.log2(p)
        assert ((torch.log2(got) - exact).abs() <= exact.abs() / 9 + 0.09 * (abs(b) + 1)).all(), b
    assert pam.pow(torch.tensor([0.0]), 2.0).item() == 0.0
    s = pam.softmax(torch.randn(4, 10) * 3)
    torch.testing.assert_close(s.sum(-1), torch.ones(4), rtol=0.13, atol=0)
    masked = pam.softmax(torch.tensor([[1.0, -INF, 2.0]]))
    assert masked[0, 1] == 0 and (masked[0, [0, 2]] > 0).all()
    y = pam.layer_norm(torch.randn(3, 16) * 5 + 2, 16)
    assert y.mean(-1).abs().max() < 0.1 and ((y.std(-1, unbiased=False) - 1).abs() < 0.15).all()


def test_empty_inputs():
    e = torch.empty(0, 3)
    assert pam.mul(e, torch.randn(3)).shape == (0, 3)
    assert pam.exp2(e).shape == (0, 3)
    assert pam.matmul(torch.empty(0, 4), torch.randn(4, 5)).shape == (0, 5)
    assert_same(pam.matmul(torch.empty(3, 0), torch.empty(0, 2)), torch.zeros(3, 2))
    if tk is not None:
        assert tk.mul(e, torch.randn(3)).shape == (0, 3)
        assert tk.bmm(torch.empty(1, 0, 4), torch.randn(1, 4, 5)).shape == (1, 0, 5)


# --------------------------------------------------------------- autograd
@pytest.mark.parametrize("fn,shape_b", [
    (lambda a, b: pam.mul(a, b, backward="exact"), (4, 6)),
    (lambda a, b: pam.matmul(a, b, backward="exact"), (6, 3)),
    (lambda a, b: pam.exp2(a) + pam.log2(b.abs() + 0.5), (4, 6)),
], ids=["mul", "matmul", "exp2_log2"])
def test_gradcheck_exact_mode_float64(fn, shape_b):
    """The exact mode is the true derivative of the piecewise-affine function."""
    a = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(shape_b, dtype=torch.float64, requires_grad=True)
    gradcheck(fn, (a, b), eps=1e-7, atol=1e-5)


def test_pam_mode_gradients_are_pam_products():
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    g = torch.randn(3, 4)
    pam.mul(a, b).backward(g)
    assert_same(a.grad, ref.mul(g, b.detach()))
    assert_same(b.grad, ref.mul(g, a.detach()).sum(0))
    A = torch.randn(5, 6, requires_grad=True)
    B = torch.randn(6, 3, requires_grad=True)
    G = torch.randn(5, 3)
    pam.matmul(A, B).backward(G)
    assert_same(A.grad, ref.bmm(G[None], B.detach().t()[None])[0])
    assert_same(B.grad, ref.bmm(A.detach().t()[None], G[None])[0])


def test_exact_mode_matmul_gradient_matches_reference_autograd():
    A = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    B = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    G = torch.randn(2, 5, 3, dtype=torch.float64)
    pam.bmm(A, B, backward="exact").backward(G)
    ga, gb = ref.bmm_exact_grad(G, A.detach(), B.detach())
    assert_same(A.grad, ga)
    assert_same(B.grad, gb)


def test_div_backward_is_pam_quotient_rule():
    a = torch.rand(6, requires_grad=True)
    b = torch.rand(6, requires_grad=True)
    g = torch.randn(6)
    pam.div(a + 0.5, b + 0.5).backward(g)
    a1, b1 = a.detach() + 0.5, b.detach() + 0.5
    assert_same(a.grad, ref.div(g, b1))
    assert_same(b.grad, -ref.div(ref.mul(g, ref.div(a1, b1)), b1))


@pytest.mark.parametrize("name,args", [
    ("pam_mul", lambda: (torch.randn(3, 4), torch.randn(4), 1.0, False)),
    ("pam_mul", lambda: (torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64), 1.0, True)),
    ("pam_div", lambda: (torch.rand(5) + 1, torch.rand(5) + 1)),
    ("pam_mul_grad_factor", lambda: (torch.randn(5), torch.randn(5), 1.0)),
    ("pam_exp2", lambda: (torch.randn(5),)),
    ("pam_log2", lambda: (torch.rand(5) + 0.1,)),
    ("pam_bmm", lambda: (torch.randn(2, 3, 4), torch.randn(2, 4, 5), 1.0, False)),
    ("pam_bmm", lambda: (torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 4, 5, dtype=torch.float64), 1.0,
                         True)),
    ("pam_bmm_exact_grad", lambda: (torch.randn(1, 3, 5), torch.randn(1, 3, 4), torch.randn(1, 4, 5), 1.0)),
])
def test_opcheck(name, args):
    a = args()
    differentiable = name not in ("pam_mul_grad_factor", "pam_bmm_exact_grad")
    if differentiable:
        a = tuple(t.requires_grad_() if isinstance(t, torch.Tensor) else t for t in a)
    opcheck(getattr(ops, name), a, autograd=differentiable)


def test_torch_compile_fullgraph():
    def f(x, w, y):
        h = pam.linear(x, w, backward="exact")
        h = pam.layer_norm(h, h.shape[-1])
        s = pam.softmax(h)
        return pam.div(pam.exp(s) + pam.sqrt(y.abs() + 1), pam.log2(y.abs() + 2)) + pam.log(y.abs() + 1)

    x, w, y = torch.randn(4, 8), torch.randn(6, 8), torch.randn(4, 6)
    compiled = torch.compile(f, fullgraph=True)
    assert_same(compiled(x, w, y), f(x, w, y), exact=False, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------- bad input
def test_bad_inputs_name_op_and_argument():
    x = torch.randn(3)
    assert_raises_naming(lambda: pam.mul(torch.ones(3, dtype=torch.int32), x), TypeError, "pam.mul", "'a'", "dtype")
    assert_raises_naming(lambda: pam.mul(x, x.double()), TypeError, "pam.mul", "'b'", "dtype")
    assert_raises_naming(lambda: pam.mul(x, torch.randn(4)), ValueError, "pam.mul", "'b'", "broadcast")
    assert_raises_naming(lambda: pam.mul(x, x.to("meta")), ValueError, "pam.mul", "device")
    assert_raises_naming(lambda: pam.mul(x, x, backward="fast"), ValueError, "pam.mul", "'backward'")
    assert_raises_naming(lambda: pam.mul(x, x, offset=3.0), ValueError, "pam.mul", "'offset'")
    assert_raises_naming(lambda: pam.exp2(torch.ones(3, dtype=torch.int64)), TypeError, "pam.exp2", "'x'")
    assert_raises_naming(lambda: pam.bmm(torch.randn(2, 3), torch.randn(2, 3, 4)), ValueError, "pam.bmm", "'a'",
                         "3-D")
    assert_raises_naming(lambda: pam.matmul(torch.randn(2, 3), torch.randn(4, 5)), ValueError, "pam.matmul", "'b'",
                         "multiply")
    assert_raises_naming(lambda: pam.layer_norm(torch.randn(2, 3), 4), ValueError, "pam.layer_norm",
                         "'normalized_shape'")
    if HAS_CPP:  # the kernels check too when called directly
        assert_raises_naming(lambda: ops.pam_bmm(torch.randn(2, 3, 4), torch.randn(2, 5, 4)), RuntimeError,
                             "pam_bmm", "multiply")
        assert_raises_naming(lambda: ops.pam_mul(torch.ones(2, dtype=torch.int32), torch.ones(2, dtype=torch.int32)),
                             RuntimeError, "pam_mul", "'a'")


# --------------------------------------------------------------- modules
def test_convert_replaces_linear_and_conv_keeping_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    x = torch.randn(2, 3, 6, 6)
    before = model(x)
    replaced = pam.convert(model, backward="exact")
    assert replaced == ["0", "3"]
    assert isinstance(model[0], pam.PAMConv2d) and isinstance(model[3], pam.PAMLinear)
    assert model[3].backward == "exact"
    after = model(x)
    assert after.shape == before.shape
    assert ((after - before).abs() / before.abs().clamp(min=1)).max() < 0.5  # approximate, not wild
    after.sum().backward()
    assert model[0].weight.grad is not None and model[3].weight.grad.abs().sum() > 0
    assert pam.convert(model) == []  # idempotent


def test_training_with_pam_linears_matches_float_loss():
    """A 2-layer MLP on a synthetic regression task: PAM loss within 10% of the float loss."""

    def train(use_pam: bool) -> float:
        torch.manual_seed(1)
        x = torch.randn(8192, 16)
        # label noise sets a loss floor (0.01); the held-out half measures what was learnt
        y = torch.sin(x[:, :4].sum(-1, keepdim=True)) + 0.5 * x[:, 4:5] + 0.1 * torch.randn(8192, 1)
        model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1))
        if use_pam:
            pam.convert(model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(600):
            opt.zero_grad()
            nn.functional.mse_loss(model(x[:4096]), y[:4096]).backward()
            opt.step()
        with torch.no_grad():
            return nn.functional.mse_loss(model(x[4096:]), y[4096:]).item()

    float_loss, pam_loss = train(False), train(True)
    assert pam_loss <= 1.10 * float_loss, (pam_loss, float_loss)


def test_reference_fallback_without_cpp():
    run_without_cpp(
        """
        import torch
        from pyops import pam, _library
        assert _library.BACKENDS["pam_bmm"]["cpu"] == "reference"
        assert pam.mul(torch.tensor([4.5]), torch.tensor([3.0])).item() == 13.0
        a, b = torch.randn(3, 4), torch.randn(4, 2)
        w = torch.exp2(torch.randint(-2, 2, (4, 2)).float())
        torch.testing.assert_close(pam.matmul(a, w), a @ w)
        a.requires_grad_()
        pam.matmul(a, b).sum().backward()
        assert a.grad.shape == a.shape
        """
    )


# ------------------------------------------------------------ regressions (issues 12, 13)
@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_gradient_at_a_zero_operand(backend):
    """d PAM(a, b)/da at a = 0 is sign(b) 2^E(b) (the spec's formula with ma = 0), not 0;
    at b = 0 (and both 0) it is 0."""
    a = torch.tensor([0.0, -0.0, 0.0, 0.0, 1e-40, 0.0])
    b = torch.tensor([3.0, -0.75, 5.0, 0.0, 3.0, 2.0 ** 127])
    want = torch.tensor([2.0, -0.5, 4.0, 0.0, 2.0, 2.0 ** 127])
    assert_same(ref.mul_grad_factor(a, b), want)
    assert_same(run_backend(backend, ops.pam_mul_grad_factor, _triton("mul_grad_factor"), a, b), want)
    x = torch.zeros(3, requires_grad=True)
    pam.mul(x, torch.tensor([3.0, -0.75, 5.0]), backward="exact").sum().backward()
    assert_same(x.grad, torch.tensor([2.0, -0.5, 4.0]))
    y = torch.tensor([3.0, -0.75, 0.0], requires_grad=True)  # b = 0: the gradient wrt b is 0 too
    pam.mul(torch.zeros(3), y, backward="exact").sum().backward()
    assert_same(y.grad, torch.zeros(3))


def test_zero_initialised_pam_linear_trains_in_exact_mode():
    torch.manual_seed(0)
    layer = pam.PAMLinear(4, 2, backward="exact")
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    x, target = torch.randn(16, 4), torch.randn(16, 2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert layer.weight.abs().sum() > 0 and losses[-1] < 0.8 * losses[0]


def test_matmul_extreme_magnitudes_bit_exact():
    """A row with a product outside the fast path's safe range is summed in k order, as the
    reference does: 2^60 * 2^-60 + 2^24 - 2^24 is 0 in float32, not 1."""
    A = torch.tensor([[2.0 ** 60, 1, 1], [1, 2, 3]])
    B = torch.tensor([[2.0 ** -60, 2.0 ** 70], [2.0 ** 24, 1], [-(2.0 ** 24), 1]])
    want = ref.bmm(A[None], B[None])[0]
    assert want[0, 0] == 0 and math.isinf(want[0, 1])
    assert_same(pam.matmul(A, B), want)
    big = torch.randn(40, 33)
    big[3, 5], big[17, 0] = 2.0 ** 100, 2.0 ** -120
    Bb = torch.randn(33, 19)
    assert_same(pam.matmul(big, Bb), ref.bmm(big[None], Bb[None])[0])


@pytest.mark.parametrize("zeros", [False, True])
def test_cpu_kernels_bit_exact_on_every_isa(cpu_isa, zeros):
    """Every instruction-set copy of the CPU matmul sums each output in k order, whatever its
    tile shape, k blocks (K > 512) and edge tiles: bit-exact with the reference; so are mul/div."""
    g = torch.Generator().manual_seed(3)
    for (m, k, n) in [(13, 600, 70), (70, 40, 300), (1, 5, 1)]:
        a = torch.randn(1, m, k, generator=g)
        b = torch.randn(1, k, n, generator=g)
        if zeros:  # the masked kernels: zero elements of A and of B
            a, b = torch.relu(a), torch.relu(b)
        assert_same(ops.pam_bmm(a, b, 1.0, False), ref.bmm(a, b, 1.0))
    a[0, 0, 1] = 2.0 ** 100  # an unsafe row, redone in k order
    assert_same(ops.pam_bmm(a, b, 1.0, False), ref.bmm(a, b, 1.0))
    x, y = torch.randn(1000, generator=g) * 1e3, torch.randn(1000, generator=g)
    assert_same(ops.pam_mul(x, y, 1.0), ref.mul(x, y, 1.0))
    assert_same(ops.pam_div(x, y), ref.div(x, y))


def test_softmax_and_layer_norm_empty_and_bad_dim():
    assert pam.softmax(torch.empty(3, 0)).shape == (3, 0)
    assert pam.softmax(torch.empty(0, 4)).shape == (0, 4)
    assert pam.layer_norm(torch.empty(3, 0), 0).shape == (3, 0)
    assert pam.layer_norm(torch.empty(0, 3, 4), (3, 4)).shape == (0, 3, 4)
    assert_raises_naming(lambda: pam.softmax(torch.randn(2, 3), dim=5), ValueError, "pam.softmax", "'dim'")


def test_convert_keeps_parameters_tied_and_frozen():
    """pam.convert reuses the Parameter objects: weight tying survives, frozen stays frozen."""
    emb = nn.Embedding(10, 6)
    head = nn.Linear(6, 10, bias=False)
    head.weight = emb.weight  # tied, as BERT's decoder and word embeddings
    frozen = nn.Linear(6, 6)
    frozen.requires_grad_(False)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    model = nn.ModuleDict({"emb": emb, "head": head, "frozen": frozen, "conv": conv})
    conv_w = conv.weight
    assert sorted(pam.convert(model)) == ["conv", "frozen", "head"]
    assert isinstance(model["head"], pam.PAMLinear) and model["head"].weight is model["emb"].weight
    assert not model["frozen"].weight.requires_grad and not model["frozen"].bias.requires_grad
    assert model["conv"].weight is conv_w and model["head"].bias is None
    out = model["head"](torch.randn(2, 6))
    out.sum().backward()
    assert model["emb"].weight.grad is not None


@pytest.mark.skipif(tk is None, reason="triton not installed")
def test_triton_launchers_check_their_arguments():
    """On a CUDA build without CUDA kernels the launchers are the raw ops: they validate like the C++ ops."""
    a, b = torch.randn(2, 3, 4), torch.randn(2, 5, 6)
    assert_raises_naming(lambda: tk.bmm(a, b), ValueError, "pam_bmm", "do not multiply")
    assert_raises_naming(lambda: tk.bmm_exact_grad(torch.randn(2, 3, 7), a, torch.randn(2, 4, 6)), ValueError,
                         "pam_bmm_exact_grad", "'grad'")
    assert_raises_naming(lambda: tk.mul(torch.randn(3), torch.randn(4)), ValueError, "pam_mul", "broadcast")
    assert_raises_naming(lambda: tk.mul(torch.randn(3), torch.randn(3, dtype=torch.float64)), TypeError, "pam_mul")
    assert_raises_naming(lambda: tk.exp2(torch.ones(3, dtype=torch.int32)), TypeError, "pam_exp2", "'x'")
