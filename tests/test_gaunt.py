import math

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming, family_backends, gradcheck, noncontig, opcheck, requires_cpp, run_backend

import pyops
from pyops import _library, gaunt
from pyops.reference import gaunt as ref

e3nn = pytest.importorskip("e3nn")
from e3nn import o3  # noqa: E402

BACKENDS, _triton, _ = family_backends("gaunt")


def _sl(l):
    return slice(l * l, (l + 1) ** 2)


def test_spherical_harmonics_match_e3nn():
    x = torch.randn(50, 3, dtype=torch.float64)
    for lmax in [0, 1, 4, 11]:
        want = o3.spherical_harmonics(list(range(lmax + 1)), x, normalize=True, normalization="integral")
        torch.testing.assert_close(ref.spherical_harmonics(lmax, x), want, atol=1e-12, rtol=0)


def test_gaunt_coefficients_are_wigner_3j_times_c():
    """Independent oracles: e3nn's wigner_3j and sympy's 3j symbol (l1 l2 l3; 0 0 0)."""
    from sympy.physics.wigner import wigner_3j

    G = ref.gaunt_tensor(4, 4, 4)
    for l1, l2, l3 in [(1, 1, 2), (2, 2, 2), (1, 2, 3), (3, 4, 3), (4, 4, 4), (2, 3, 1)]:
        c = abs(math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi)) * float(wigner_3j(l1, l2, l3, 0, 0, 0)))
        w = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
        g = G[_sl(l1), _sl(l2), _sl(l3)]
        if (l1 + l2 + l3) % 2:  # odd paths vanish
            assert g.abs().max() < 1e-14
            continue
        sign = torch.sign((g * w).sum())
        torch.testing.assert_close(g, sign * c * w, atol=1e-13, rtol=0)


@pytest.mark.parametrize("method", ["grid", "dense", "fourier"])
@pytest.mark.parametrize("lmax", range(0, 7))
def test_matches_direct_contraction_fp64_and_fp32(lmax, method):
    x1 = torch.randn(3, 4, (lmax + 1) ** 2, dtype=torch.float64)
    x2 = torch.randn(3, 4, (lmax + 1) ** 2, dtype=torch.float64)
    want = ref.direct(x1, x2, 2 * lmax)
    got = gaunt.gaunt_tensor_product(x1, x2, method=method)
    assert (got - want).abs().max() / want.abs().max() < 1e-12
    got32 = gaunt.gaunt_tensor_product(x1.float(), x2.float(), method=method)
    assert ((got32.double() - want).abs().max() / want.abs().max()).item() < 1e-5


@pytest.mark.parametrize("lmax", [8, 12, 16])
def test_high_degrees_against_quadrature_of_selected_outputs(lmax):
    """For large lmax the full G is too big: check output components one by one,
    each from its own quadrature slice G[:, :, k]."""
    x1 = torch.randn(2, (lmax + 1) ** 2, dtype=torch.float64)
    x2 = torch.randn(2, (lmax + 1) ** 2, dtype=torch.float64)
    got = gaunt.gaunt_tensor_product(x1, x2, lmax, method="grid")
    got32 = gaunt.gaunt_tensor_product(x1.float(), x2.float(), lmax, method="dense")
    fourier = gaunt.gaunt_tensor_product(x1, x2, lmax, method="fourier")
    fourier32 = gaunt.gaunt_tensor_product(x1.float(), x2.float(), lmax, method="fourier")
    assert ((fourier - got).abs().max() / got.abs().max()).item() < 1e-12
    assert ((fourier32.double() - got).abs().max() / got.abs().max()).item() < 1e-5
    nb, na = (3 * lmax) // 2 + 1, 3 * lmax + 1
    zz, ww = np.polynomial.legendre.leggauss(nb)
    alpha = 2 * math.pi * np.arange(na) / na
    beta = np.arccos(zz)
    bb, aa = np.meshgrid(beta, alpha, indexing="ij")
    xyz = torch.from_numpy(np.stack([np.sin(bb) * np.sin(aa), np.cos(bb), np.sin(bb) * np.cos(aa)], -1).reshape(-1, 3))
    y = ref.spherical_harmonics(lmax, xyz)
    weights = torch.from_numpy(np.repeat(ww, na) * 2 * math.pi / na)
    f = (x1 @ y.T) * (x2 @ y.T)  # the pointwise product on the grid
    for k in [0, 5, lmax * lmax, (lmax + 1) ** 2 - 1]:
        want = (f * weights * y[:, k]).sum(-1)
        scale = got.abs().max()
        assert ((got[:, k] - want).abs().max() / scale).item() < 1e-12
        assert ((got32[:, k].double() - want).abs().max() / scale).item() < 1e-5


def test_fourier_tables_are_exact_to_lmax_32():
    """sh2f: the tabulated trig polynomials reproduce p_l^m(cos t) (signed sin on (pi, 2 pi)) and,
    for m = l, the binomial expansion of the closed form c_l sin^l t; I(n) by quadrature."""
    L = 32
    c = ref.legendre_fourier(L)
    t = np.random.default_rng(0).uniform(0, 2 * np.pi, 40)
    u = np.arange(-L, L + 1)
    want = ref.legendre(L, np.cos(t)) * np.where((np.sin(t) < 0) & (np.arange(L + 1)[None, :, None] % 2 == 1), -1, 1)
    # relative to max |p| ~ 2: the recurrence behind both sides rounds at ~l eps
    assert np.abs(np.einsum("lmu,uk->lmk", c, np.exp(1j * np.outer(u, t))) - want).max() / np.abs(want).max() < 1e-13
    for l in (7, 32):  # p_l^l = sqrt(1/4pi) prod_k sqrt((2k+1)/2k) sin^l, sin^l = (2i)^-l sum binom(l, j) (-1)^j e^{i(l-2j)t}
        norm = math.sqrt(1 / (4 * math.pi)) * math.prod(math.sqrt((2 * k + 1) / (2 * k)) for k in range(1, l + 1))
        closed = np.zeros(2 * L + 1, dtype=np.complex128)
        for j in range(l + 1):
            closed[L + l - 2 * j] = norm * math.comb(l, j) * (-1) ** j / (2j) ** l
        assert np.abs(c[l, l] - closed).max() < 1e-15
    assert np.all(c[:, :, (u % 2 == 1)][0::2] == 0) and np.all(c[:, :, (u % 2 == 0)][1::2] == 0)  # u = l mod 2
    z, w = np.polynomial.legendre.leggauss(200)
    th = (z + 1) * np.pi / 2
    n = np.arange(-70, 71)
    quad = (np.exp(1j * np.outer(n, th)) * np.sin(th) * w).sum(-1) * np.pi / 2
    assert np.abs(ref.sin_integral(n) - quad).max() < 1e-13


@pytest.mark.parametrize("method", ["fourier", "grid"])
def test_product_with_the_constant_is_identity_to_lmax_32(method):
    """x * (Y_00-constant 1) = x exercises every sh2f and f2sh row up to degree 32."""
    x = torch.randn(3, 33 * 33, dtype=torch.float64)
    one = torch.full((1, 1), math.sqrt(4 * math.pi), dtype=torch.float64)
    got = gaunt.gaunt_tensor_product(x, one, method=method)
    assert ((got - x).abs().max() / x.abs().max()).item() < 1e-12


def test_fourier_route_tables_and_mixed_degrees():
    """The dense Fourier pipeline of the spec (tables P, y as written there) and the fast route
    (real FFTs, v-batched contractions) against the direct contraction, lmax1 != lmax2."""
    for l1, l2, lo in [(3, 1, 4), (1, 4, 3), (5, 2, 2), (4, 0, 4), (2, 6, 8)]:
        x1 = torch.randn(2, 3, (l1 + 1) ** 2, dtype=torch.float64)
        x2 = torch.randn(2, 1, (l2 + 1) ** 2, dtype=torch.float64)
        want = ref.direct(x1, x2.expand(2, 3, -1), lo)
        scale = want.abs().max()
        assert ((ref.fourier(x1, x2, lo) - want).abs().max() / scale).item() < 1e-12
        got = gaunt.gaunt_tensor_product(x1, x2, lo, method="fourier")
        assert ((got - want).abs().max() / scale).item() < 1e-12
        assert ((gaunt.gaunt_tensor_product(x1, x2, lo, method="grid") - got).abs().max() / scale).item() < 1e-12
        got32 = gaunt.gaunt_tensor_product(x1.float(), x2.float(), lo, method="fourier")
        assert ((got32.double() - want).abs().max() / scale).item() < 1e-5


def _grid_args(l1=2, l2=3, lo=4, n=37, dtype=torch.float64):
    z, w = ref.grid_nodes(l1 + l2 + lo)
    table = torch.tensor(ref.grid_table(max(l1, l2, lo), z), dtype=dtype)
    return (torch.randn(n, (l1 + 1) ** 2, dtype=dtype), torch.randn(n, (l2 + 1) ** 2, dtype=dtype), table,
            torch.tensor(w, dtype=dtype))


def test_grid_nodes_integrate_pairs_exactly():
    """Every node stands for the pair +-z (z = 0 at half weight): sum_k w_k (f(z_k) + f(-z_k)) is the
    integral over [-1, 1] of every polynomial up to the rule's degree."""
    for degree in (0, 3, 8, 9, 64):
        z, w = ref.grid_nodes(degree)
        assert np.all(z >= 0) and len(z) == (degree // 2 + 2) // 2
        for d in range(degree + 1):
            assert abs((w * (z ** d + (-z) ** d)).sum() - (1 - (-1) ** (d + 1)) / (d + 1)) < 1e-13


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grid_product_backends_match_reference(backend, dtype):
    """Output degrees above, at and below l1 + l2; 37 rows = two CPU lanes of 16 + a tail;
    a strided x1 and a stride-0 (broadcast) x2; no rows."""
    op, tol = torch.ops.pyops.gaunt_grid_product, (1e-12 if dtype == torch.float64 else 1e-5)
    for l1, l2, lo in [(2, 3, 4), (3, 2, 7), (4, 4, 2), (0, 0, 0), (1, 2, 3)]:
        x1, x2, t, w = _grid_args(l1, l2, lo, dtype=dtype)
        want = ref.grid_product(x1.double(), x2.double(), t.double(), w.double(), lo)
        if dtype == torch.float64:  # the reference itself is the exact product
            assert ((want - ref.direct(x1, x2, lo)).abs().max() / want.abs().max()).item() < 1e-12
        got = run_backend(backend, op, _triton("grid_product"), x1, x2, t, w, lo)
        assert ((got.double() - want).abs().max() / want.abs().max()).item() < tol
    x1, x2, t, w = _grid_args(3, 2, 5, dtype=dtype)
    x2 = x2[:1].expand(37, -1)
    want = ref.grid_product(x1.double(), x2.double(), t.double(), w.double(), 5)
    got = run_backend(backend, op, _triton("grid_product"), noncontig(x1), x2, t, w, 5)
    assert ((got.double() - want).abs().max() / want.abs().max()).item() < tol
    empty = run_backend(backend, op, _triton("grid_product"), x1[:0], x2[:0], t, w, 5)
    assert empty.shape == (0, 36)


@requires_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grid_product_every_cpu_isa(cpu_isa, dtype):
    """The public grid route on each ISA level's kernel vs the float64 reference, forward and
    backward: node-pair counts 1..17 (every group size), output degrees at and below l1 + l2 (and
    above it through the raw op), 69 rows (two blocks and a tail at every lane width: AVX-512's fp32
    block is 32 rows), a strided x1 and a broadcast x2."""
    torch.manual_seed(0)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    x1, x2, t, w = _grid_args(3, 2, 7, dtype=dtype)
    want = ref.grid_product(x1.double(), x2.double(), t.double(), w.double(), 7)
    got = torch.ops.pyops.gaunt_grid_product(x1, x2, t, w, 7)
    assert ((got.double() - want).abs().max() / want.abs().max()).item() < tol
    for l1, l2, lo in [(0, 0, 0), (1, 2, 3), (2, 3, 4), (3, 2, 5), (4, 4, 2), (5, 1, 6), (8, 8, 16), (16, 3, 12)]:
        x1 = noncontig(torch.randn(69, (l1 + 1) ** 2, dtype=torch.float64))
        x2 = torch.randn(1, (l2 + 1) ** 2, dtype=torch.float64)
        want = ref.direct(x1, x2.expand(69, -1), lo) if max(l1, l2, lo) <= 6 else \
            gaunt.gaunt_tensor_product(x1, x2, lo, method="fourier")
        a, b = x1.to(dtype).requires_grad_(), x2.to(dtype).requires_grad_()
        got = gaunt.gaunt_tensor_product(a, b, lo, method="grid")
        assert ((got.double() - want).abs().max() / want.abs().max()).item() < tol
        g = torch.randn_like(want)
        ga, gb = torch.autograd.grad(got, (a, b), g.to(dtype))
        xa, xb = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        wa, wb = torch.autograd.grad(gaunt.gaunt_tensor_product(xa, xb, lo, method="fourier"), (xa, xb), g)
        for got_g, want_g in ((ga, wa), (gb, wb)):
            assert ((got_g.double() - want_g).abs().max() / want_g.abs().max()).item() < tol


def test_grid_product_opcheck_gradcheck_and_bad_input():
    x1, x2, t, w = _grid_args(2, 1, 3, n=5)
    op = torch.ops.pyops.gaunt_grid_product
    opcheck(op, (x1, x2, t, w, 3))
    gradcheck(lambda a, b: op(a, b, t, w, 3), (x1.requires_grad_(), x2.requires_grad_()))
    x1, x2 = x1.detach(), x2.detach()
    errors = (RuntimeError, ValueError, TypeError)
    launchers = [op] + ([_triton("grid_product")] if "triton" in BACKENDS else [])
    for f in launchers:
        assert_raises_naming(lambda: f(x1[:, :8], x2, t, w, 3), errors, "gaunt_grid_product", "'x1'")
        assert_raises_naming(lambda: f(x1, x2[:4], t, w, 3), errors, "gaunt_grid_product", "'x2'")
        assert_raises_naming(lambda: f(x1, x2.float(), t, w, 3), errors, "gaunt_grid_product", "'x2'")
        assert_raises_naming(lambda: f(x1, x2, t[:, :9], w, 3), errors, "gaunt_grid_product", "'table'")
        assert_raises_naming(lambda: f(x1, x2, t, w[:-1], 3), errors, "gaunt_grid_product", "'weights'")
        assert_raises_naming(lambda: f(x1, x2, t, w, -1), errors, "gaunt_grid_product", "'lmax_out'")


def test_equivariance_under_e3nn_rotations():
    """fp32 products of rotated inputs vs rotated fp32 products: 1e-5 relative.  The Wigner D
    matrices are built in float64 (e3nn's fp32 D_from_matrix alone is off by ~5e-6 per entry)."""
    torch.manual_seed(0)
    l1, l2, lo = 3, 2, 4
    x1 = torch.randn(8, (l1 + 1) ** 2, dtype=torch.float64)
    x2 = torch.randn(8, (l2 + 1) ** 2, dtype=torch.float64)
    for _ in range(3):
        R = o3.rand_matrix(dtype=torch.float64)
        D = lambda lmax: o3.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)]).D_from_matrix(R)  # noqa: E731
        out_rot = gaunt.gaunt_tensor_product((x1 @ D(l1).T).float(), (x2 @ D(l2).T).float(), lo)
        rot_out = gaunt.gaunt_tensor_product(x1.float(), x2.float(), lo).double() @ D(lo).T
        assert ((out_rot.double() - rot_out).abs().max() / rot_out.abs().max()).item() < 1e-5
        exact = gaunt.gaunt_tensor_product(x1 @ D(l1).T, x2 @ D(l2).T, lo)
        want = gaunt.gaunt_tensor_product(x1, x2, lo) @ D(lo).T
        # e3nn extracts Euler angles with acos: its float64 D is good to ~1e-8, not to eps
        assert ((exact - want).abs().max() / want.abs().max()).item() < 1e-6


def test_odd_paths_are_zero_and_broadcast_mixed_lmax():
    # a pure l=1 input times a pure l=1 input has no l=1 output (1 + 1 + 1 is odd)
    x1 = torch.zeros(4, 4, dtype=torch.float64)
    x1[:, 1:4] = torch.randn(4, 3, dtype=torch.float64)
    x2 = x1.clone()
    out = gaunt.gaunt_tensor_product(x1, x2)
    assert out[:, 1:4].abs().max() < 1e-15
    a = torch.randn(2, 5, 9, dtype=torch.float64)  # lmax 2, 5 channels
    b = torch.randn(2, 1, 16, dtype=torch.float64)  # lmax 3, broadcast over channels
    out = gaunt.gaunt_tensor_product(a, b, 4)
    assert out.shape == (2, 5, 25)
    torch.testing.assert_close(out, ref.direct(a, b.expand(2, 5, 16), 4), atol=1e-12, rtol=0)


def test_per_degree_weights_and_power():
    x1 = torch.randn(3, 9, dtype=torch.float64)
    x2 = torch.randn(3, 4, dtype=torch.float64)
    w1, w2, wo = torch.rand(3), torch.rand(2), torch.rand(4)
    rep = lambda w, L: w.double().repeat_interleave(torch.tensor([2 * l + 1 for l in range(L)]))  # noqa: E731
    got = gaunt.gaunt_tensor_product(x1, x2, 3, weight1=w1, weight2=w2, weight_out=wo)
    want = ref.direct(x1 * rep(w1, 3), x2 * rep(w2, 2), 3) * rep(wo, 4)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    x = torch.randn(2, 9, dtype=torch.float64)
    weights = torch.rand(3, 5, dtype=torch.float64)
    x2_ = gaunt.gaunt_tensor_product(x, x)  # lmax 4
    x3_ = gaunt.gaunt_tensor_product(x2_, x, 4)
    want = sum(weights[n].repeat_interleave(torch.tensor([1, 3, 5, 7, 9])) * t[..., :25]
               for n, t in enumerate([torch.nn.functional.pad(x, (0, 16)), x2_, x3_]))
    torch.testing.assert_close(gaunt.gaunt_power(x, 3, 4, weights=weights), want, atol=1e-11, rtol=0)


def _power_by_quadrature(x, nu, lo, weights):
    """sum_n weights[n] (x^n projected onto degrees <= lo): x^n sampled on a Gauss-Legendre x uniform
    grid exact for degree nu l1 + lo, projected back by quadrature (float64)."""
    l1 = math.isqrt(x.shape[-1]) - 1
    degree = nu * l1 + lo
    zz, ww = np.polynomial.legendre.leggauss(degree // 2 + 1)
    na = degree + 1
    alpha, beta = 2 * math.pi * np.arange(na) / na, np.arccos(zz)
    bb, aa = np.meshgrid(beta, alpha, indexing="ij")
    xyz = torch.from_numpy(np.stack([np.sin(bb) * np.sin(aa), np.cos(bb), np.sin(bb) * np.cos(aa)], -1).reshape(-1, 3))
    y = ref.spherical_harmonics(max(l1, lo), xyz)
    f = x @ y[:, : x.shape[-1]].T
    yw = y[:, : (lo + 1) ** 2] * torch.from_numpy(np.repeat(ww, na) * 2 * math.pi / na)[:, None]
    reps = torch.tensor([2 * l + 1 for l in range(lo + 1)])
    return sum((f ** n @ yw) * weights[..., n - 1, :].repeat_interleave(reps, -1) for n in range(1, nu + 1))


@pytest.mark.parametrize("l1, nu, lo", [(2, 3, 4), (3, 2, 2), (1, 4, 4), (2, 4, 7), (0, 3, 0)])
def test_power_against_quadrature(l1, nu, lo):
    """Output degrees below, at and above l1 and below nu l1 (no truncation between products),
    batch dims and weights broadcast over them."""
    x = torch.randn(2, 3, (l1 + 1) ** 2, dtype=torch.float64)
    weights = torch.rand(3, nu, lo + 1, dtype=torch.float64)
    want = _power_by_quadrature(x, nu, lo, weights)
    got = gaunt.gaunt_power(x, nu, lo, weights=weights)
    assert ((got - want).abs().max() / want.abs().max()).item() < 1e-12
    got32 = gaunt.gaunt_power(x.float(), nu, lo, weights=weights.float())
    assert ((got32.double() - want).abs().max() / want.abs().max()).item() < 1e-5


def test_power_gradcheck_float64():
    x = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    gradcheck(lambda a, w: gaunt.gaunt_power(a, 3, 3, weights=w), (x, weights))


@pytest.mark.parametrize("method", gaunt.METHODS)
def test_gradcheck_float64(method):
    x1 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, dtype=torch.float64, requires_grad=True)
    gradcheck(lambda a, b, c: gaunt.gaunt_tensor_product(a, b, weight_out=torch.cat([c, c[:1]]), method=method),
              (x1, x2, w))


def test_module_compile_empty_noncontig():
    tp = gaunt.GauntTensorProduct("0e+1o+2e", "0e + 1o", "0e+1o+2e+3o", channels=4, method="grid")
    assert tp.irreps_out == "1x0e+1x1o+1x2e+1x3o"
    x1, x2 = torch.randn(5, 4, 9), torch.randn(5, 1, 4)
    eager = tp(x1, x2)
    compiled = torch.compile(tp, fullgraph=True)(x1, x2)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    eager.sum().backward()
    assert tp.weight1.grad is not None and tp.weight_out.grad.shape == (4, 4)
    assert gaunt.gaunt_tensor_product(torch.empty(0, 9), torch.empty(0, 4)).shape == (0, 16)
    a = torch.randn(3, 9)
    torch.testing.assert_close(gaunt.gaunt_tensor_product(noncontig(a), x2[0]), gaunt.gaunt_tensor_product(a, x2[0]))


def test_bad_inputs_name_op_and_argument():
    a, b = torch.randn(2, 9), torch.randn(2, 4)
    assert_raises_naming(lambda: gaunt.gaunt_tensor_product(torch.randn(2, 8), b), ValueError, "gaunt_tensor_product",
                         "'x1'", "(lmax + 1)^2")
    assert_raises_naming(lambda: gaunt.gaunt_tensor_product(a, torch.randn(3, 4)), ValueError, "gaunt_tensor_product",
                         "'x2'", "broadcast")
    assert_raises_naming(lambda: gaunt.gaunt_tensor_product(a.int(), b), TypeError, "gaunt_tensor_product", "'x1'")
    assert_raises_naming(lambda: gaunt.gaunt_tensor_product(a, b.double()), TypeError, "gaunt_tensor_product", "'x2'")
    assert_raises_naming(lambda: gaunt.gaunt_tensor_product(a, b, 5), ValueError, "gaunt_tensor_product",
                         "'lmax_out'")
    assert_raises_naming(lambda: gaunt.gaunt_tensor_product(a, b, method="fft"), ValueError, "gaunt_tensor_product",
                         "'method'")
    assert_raises_naming(lambda: gaunt.gaunt_tensor_product(a, b, weight1=torch.ones(2)), ValueError,
                         "gaunt_tensor_product", "'weight1'")
    assert_raises_naming(lambda: gaunt.GauntTensorProduct("0e+1e", "0e"), ValueError, "GauntTensorProduct",
                         "'irreps_in1'")
    assert_raises_naming(lambda: gaunt.gaunt_power(a, 9), ValueError, "gaunt_power", "'nu'")
    assert pyops.gaunt is gaunt


@pytest.mark.parametrize("method", ["dense", "grid", "fourier", "auto"])
def test_empty_batch_every_route(method):
    """Empty in, empty out on every route, and the result stays in the autograd graph."""
    for shape in [(0, 9), (2, 0, 9)]:
        x1 = torch.empty(*shape, dtype=torch.float64, requires_grad=True)
        out = gaunt.gaunt_tensor_product(x1, torch.empty(*shape, dtype=torch.float64), 4, method=method)
        assert out.shape == (*shape[:-1], 25)
        out.sum().backward()
        assert x1.grad.shape == x1.shape


@pytest.mark.parametrize("method", ["dense", "grid", "fourier"])
def test_module_pickles_and_copies(method):
    import copy
    import pickle

    mod = gaunt.GauntTensorProduct("0e+1o+2e", "0e+1o", method=method)
    x1, x2 = torch.randn(3, 1, 9), torch.randn(3, 1, 4)
    want = mod(x1, x2)
    for clone in (pickle.loads(pickle.dumps(mod)), copy.deepcopy(mod)):
        torch.testing.assert_close(clone(x1, x2), want)
