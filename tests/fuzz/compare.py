"""Judging a case from its paths' results: the properties, the tolerances, the error-message rule.

Tolerances (what the README promises, and why where it promises none):
  * bit-exact (NaNs equal, signed zeros distinguished) between C++, Triton and the reference:
    pam elementwise ops and their compositions (mul, div, grad factor, exp2, log2, softmax,
    layer_norm); pam bmm / matmul / exact-grad on the C++ path; every intops op; fewbit codes and
    backward; the C++ fused fewbit forward's activation (torch's own kernel, one thread).
  * pam bmm / matmul / exact-grad on Triton ("sums k-slices as a tree and agrees to float
    rounding"): |t - r| <= 4 k eps S + one output ulp, S = sum_k |PAM(a_ik, b_kj)| (in float64);
    where S overflows the compute dtype the sum depends on the order and is not compared.
  * the Triton fused fewbit forward's activation ("evaluated in float32, matches torch to
    rounding"): |t - r| <= 64 eps_out (|r| + |x|) + 4 ulp(0); the same NaN/inf positions.
  * gaunt_grid_product (any path) vs the float64 reference: |p - o| <= 40 eps (D1 + D2 + 2L + K + 8) B,
    B = sum_k |w_k| |T_ki| A1_k A2_k (A_k = sum_j |T_kj| |x_j|), a bound of the rounding of any
    evaluation order; rows with non-finite inputs only need the oracle's non-finite positions.
  * gaunt.gaunt_tensor_product (every route) vs the float64 direct contraction with the exact Gaunt
    tensor: the README's 1e-5 (fp32) / 1e-12 (fp64) relative, relative to the row's scale
    max(max_k sum |G| |x1| |x2|, |x1| |x2| / sqrt(4 pi)) (outputs whose Gaunt coefficients vanish
    are still rounding noise of that size on the grid and Fourier routes).
  * wavehax_harmonic_prior vs the reference: |p - r| <= amp min(K (K+1)/2 dtheta, 2 (K+1)) + 4 eps32 |r|,
    dtheta = 2 pi 4 (T + 8) eps64 (1 + |cycles|): the closed form's sensitivity to a float64 phase
    carried over T samples (|dS/dtheta| <= K (K+1)/2).
  * wavehax_convnext2d_block vs the float64 reference: 16x a first-order rounding-error bound
    (not compared in a norm group whose squared activations can overflow the dtype)
    propagated through conv, norm (amplified by max|h| / sqrt(var + eps)), PW1, GELU, PW2 (the C++
    and Triton kernels stay within 4x of it on ~200 random blocks).
"""

from __future__ import annotations

import math
import re

import torch

PATHS = ("cpp", "triton", "reference")
EPS = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}

# the op names an error message may use, by op
OP_NAMES = {
    "pam_mul": ["pam_mul", "pam.mul"], "pam_div": ["pam_div", "pam.div"],
    "pam_mul_grad_factor": ["pam_mul_grad_factor"], "pam_exp2": ["pam_exp2", "pam.exp2"],
    "pam_log2": ["pam_log2", "pam.log2"], "pam_bmm": ["pam_bmm", "pam.bmm"],
    "pam_bmm_exact_grad": ["pam_bmm_exact_grad"],
    "fewbit_encode": ["fewbit_encode"], "fewbit_forward": ["fewbit_forward"], "fewbit_backward": ["fewbit_backward"],
    "intops_exp": ["intops_exp", "int_exp"], "intops_softmax": ["intops_softmax", "int_softmax"],
    "intops_gelu": ["intops_gelu", "int_gelu"], "intops_shiftgelu": ["intops_shiftgelu", "int_gelu"],
    "intops_layernorm": ["intops_layernorm", "int_layernorm"], "intops_isqrt": ["intops_isqrt", "isqrt"],
    "intops_requantize": ["intops_requantize", "requantize"],
    "gaunt_grid_product": ["gaunt_grid_product"],
    "wavehax_harmonic_prior": ["wavehax_harmonic_prior", "harmonic_prior"],
    "wavehax_convnext2d_block": ["wavehax_convnext2d_block", "convnext2d_block"],
    "pam.mul": ["pam.mul", "pam_mul"], "pam.matmul": ["pam.matmul", "pam_bmm"],
    "pam.softmax": ["pam.softmax"], "pam.layer_norm": ["pam.layer_norm"],
    "fewbit.fn": ["fewbit.", "fewbit_"],
    "intops.int_softmax": ["int_softmax", "intops_softmax"], "intops.int_gelu": ["int_gelu", "intops_gelu",
                                                                                 "intops_shiftgelu"],
    "intops.int_layernorm": ["int_layernorm", "intops_layernorm"], "intops.requantize": ["requantize"],
    "intops.int_exp": ["int_exp", "intops_exp"],
    "gaunt.gaunt_tensor_product": ["gaunt_tensor_product", "gaunt_grid_product"],
    "wavehax.harmonic_prior": ["harmonic_prior"],
}
# ops whose comparison needs the worker's "oracle" job (float64 results, error bounds)
ORACLE_REQUIRED = {"pam_bmm", "pam_bmm_exact_grad", "pam.matmul", "gaunt_grid_product", "gaunt.gaunt_tensor_product",
                   "wavehax_harmonic_prior", "wavehax.harmonic_prior", "wavehax_convnext2d_block"}
ORACLE_OPS = ORACLE_REQUIRED | {"fewbit_forward", "fewbit.fn"}  # fewbit: torch's activation on x.contiguous()


def names_arg(msg: str, name: str) -> bool:
    """The message names the argument: quoted, as "argument/constant <name>", or (two letters or
    more) as a word."""
    if f"'{name}'" in msg or f"`{name}`" in msg or f'"{name}"' in msg:
        return True
    if re.search(rf"(argument|constant|parameter)s? {re.escape(name)}(?!\w)", msg):
        return True
    return len(name) > 1 and re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", msg) is not None


def clear_error(op: str, case: dict, msg: str) -> bool:
    return any(n in msg for n in OP_NAMES[op]) and any(names_arg(msg, a) for a in case["names"])


# ------------------------------------------------------------------ comparisons
def _bits_equal(a: torch.Tensor, b: torch.Tensor):
    """None if bit-identical (NaNs equal, signed zeros distinguished), else a description."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape/dtype {tuple(a.shape)} {a.dtype} vs reference {tuple(b.shape)} {b.dtype}"
    if a.is_floating_point():
        ity = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        diff = (a.view(ity) != b.view(ity)) & ~(a.isnan() & b.isnan())
    else:
        diff = a != b
    n = int(diff.sum())
    if not n:
        return None
    idx = tuple(diff.nonzero()[0].tolist())
    return (f"{n}/{a.numel()} elements differ; first at {list(idx)}: got {a[idx].item()!r}, "
            f"reference {b[idx].item()!r}")


def _scalar_equal(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    return None if a == b and type(a) is type(b) else f"got {a!r}, reference {b!r}"


def exact(out, ref):
    if len(out) != len(ref):
        return f"{len(out)} outputs, reference {len(ref)}"
    for i, (a, b) in enumerate(zip(out, ref)):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            d = _bits_equal(a, b)
        elif isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            d = f"output types {type(a).__name__} vs reference {type(b).__name__}"
        else:
            d = _scalar_equal(a, b)
        if d:
            return f"output {i}: {d}" if len(out) > 1 else d
    return None


def within(got: torch.Tensor, want: torch.Tensor, tol: torch.Tensor, what: str = "", skip=None):
    """|got - want| <= tol where want is finite (and skip is False); equal non-finite positions."""
    if got.shape != want.shape:
        return f"{what}shape {tuple(got.shape)} vs {tuple(want.shape)}"
    g, w = got.double(), want.double()
    tol = torch.as_tensor(tol, dtype=torch.float64).expand_as(w)
    skip = torch.zeros_like(w, dtype=torch.bool) if skip is None else skip.expand_as(w)
    skip = skip | torch.isinf(tol)  # no bound: the computation may overflow there
    finite = torch.isfinite(w)
    bad = finite & ~skip & ~((g - w).abs() <= tol)
    nonfin = ~finite & ~skip & ~((g.isnan() & w.isnan()) | (g == w))
    bad = bad | nonfin
    n = int(bad.sum())
    if not n:
        return None
    idx = tuple(bad.nonzero()[0].tolist())
    return (f"{what}{n}/{w.numel()} elements outside tolerance; first at {list(idx)}: got {g[idx].item()!r}, "
            f"expected {w[idx].item()!r} +- {tol[idx].item():.3g}")


def _ulp(x: torch.Tensor, dtype) -> torch.Tensor:
    return x.abs() * EPS[dtype] * 2 + torch.finfo(dtype).tiny * EPS[dtype]


def bmm_tolerance(out, ref, mag, k: int, dtype):
    """The Triton matmul (tree sum) against the sequential one."""
    ct = torch.float64 if dtype == torch.float64 else torch.float32
    tol = 4 * max(k, 1) * EPS[ct] * mag + _ulp(ref.double(), dtype) + 2 * _ulp(out.double(), dtype)
    skip = mag >= torch.finfo(ct).max / 2  # the sum may overflow, or not, depending on the order
    return within(out, ref, tol, skip=skip)


# activations that torch itself evaluates with a cancellation (1 + erf(x) for x << 0, x - tanh(x),
# x + 3 near -3, x - 0.5 near 0.5): two float32 evaluations may differ by ~eps |x|, not eps |y|
CANCELLING = {"gelu", "gelu_tanh", "tanhshrink", "hardswish", "hardsigmoid", "softshrink", "hardshrink"}


def fewbit_y_tolerance(out: torch.Tensor, ref: torch.Tensor, x: torch.Tensor, fn: str):
    """The Triton fused forward's activation (float32 in the kernel) against torch's: 64 ulps of
    the output, plus 64 float32 ulps of |x| for the functions torch computes with a cancellation."""
    xe = x.detach().double().reshape(ref.shape)
    tol = 64 * EPS[ref.dtype] * ref.double().abs() + 4 * torch.finfo(ref.dtype).tiny
    if fn in CANCELLING:
        tol = tol + 64 * EPS[torch.float32] * xe.abs()
    tol = torch.where(torch.isfinite(tol), tol, torch.full_like(tol, math.inf))
    return within(out, ref, tol, "y: ")


BF16_TINY = 2.0 ** -126


def interpreter_bf16_only(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Every difference of bf16 ``a`` from ``b`` is what the Triton interpreter's float32 <-> bfloat16
    conversions do (triton 3.9, TRITON_INTERPRET=1): one ulp toward zero (truncation instead of
    round-to-nearest), or a value in the subnormal range (which those conversions mangle)."""
    if a.dtype != torch.bfloat16 or b.dtype != torch.bfloat16 or a.shape != b.shape:
        return False
    ai, bi = a.view(torch.int16).int(), b.view(torch.int16).int()
    diff = (ai != bi) & ~(a.isnan() & b.isnan())
    if not bool(diff.any()):
        return False
    same_sign = (ai < 0) == (bi < 0)
    one_down = (bi & 0x7FFF) - (ai & 0x7FFF) == 1
    subnormal = (a.float().abs() < BF16_TINY) | (b.float().abs() < BF16_TINY)
    return bool(((same_sign & one_down) | subnormal)[diff].all())


def _has_bf16_subnormal(tensors) -> bool:
    return any(isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 and t.numel()
               and bool(((t.float().abs() < BF16_TINY) & (t != 0)).any()) for t in tensors)


def _strided_activation(out, ref, oracle):
    """y bit-exact with torch's activation of x.contiguous(), as the README promises: torch's own
    float64 kernels round differently on strided inputs, and the C++ forward runs on a contiguous copy."""
    d = exact(out[:1], ref[:1])
    if d and oracle is not None and exact(out[:1], oracle[:1]) is None:
        return None
    return "y: " + d if d else None


def _interp_bf16(path, out, ref, d, bf16_inputs=()):
    """Label a Triton-path difference the interpreter's bf16 conversions explain (known issue)."""
    if not d or path != "triton":
        return d
    pairs = [(o, r) for o, r in zip(out, ref) if isinstance(o, torch.Tensor) and isinstance(r, torch.Tensor)]
    diffs = [(o, r) for o, r in pairs if _bits_equal(o, r)]
    if diffs and all(interpreter_bf16_only(o, r) for o, r in diffs):
        return "[interpreter bf16 truncation] " + d
    if _has_bf16_subnormal(bf16_inputs):
        return "[interpreter bf16 truncation] (bfloat16 subnormal inputs) " + d
    return d


def compare(op: str, case: dict, path: str, out, ref, oracle, inputs):
    """None if ``out`` (path) agrees with ``ref`` (the reference path) by the op's rule."""
    if op in ("pam_bmm", "pam.matmul"):
        if path == "cpp" or inputs is None:
            return exact(out, ref)
        a = inputs[0][0]
        if isinstance(a, torch.Tensor) and a.dtype == torch.float64:
            return exact(out, ref)
        return bmm_tolerance(out[0], ref[0], oracle[0], a.shape[-1], ref[0].dtype) if oracle else exact(out, ref)
    if op == "pam_bmm_exact_grad":
        if path == "cpp" or oracle is None:
            return exact(out, ref)
        g, a, b = inputs[0][:3]
        if a.dtype == torch.float64:
            return exact(out, ref)
        d = bmm_tolerance(out[0], ref[0], oracle[0], b.shape[2], ref[0].dtype)
        return ("grad_a: " + d) if d else (lambda e: "grad_b: " + e if e else None)(
            bmm_tolerance(out[1], ref[1], oracle[1], a.shape[1], ref[1].dtype))
    if op == "fewbit_encode":
        return _interp_bf16(path, out, ref, exact(out, ref), inputs[0][:1])
    if op == "fewbit_forward":
        d = _interp_bf16(path, out[1:], ref[1:], exact(out[1:], ref[1:]), inputs[0][:1])
        if d:
            return "codes: " + d
        if path == "triton":
            return fewbit_y_tolerance(out[0], ref[0], inputs[0][0], inputs[0][3])
        return _strided_activation(out, ref, oracle)
    if op == "fewbit.fn":
        if len(out) > 1 and len(ref) > 1:
            d = _interp_bf16(path, out[1:], ref[1:], exact(out[1:], ref[1:]), [inputs[0][0], inputs[2]])
            if d:
                return "grad: " + d
        if path == "triton":
            return fewbit_y_tolerance(out[0], ref[0], inputs[0][0], case["fn"])
        return _strided_activation(out, ref, oracle)
    if op == "fewbit_backward":
        return _interp_bf16(path, out, ref, exact(out, ref), inputs[0][:1])
    if op in ("gaunt_grid_product",):
        x1, x2, table = inputs[0][:3]
        o, bound, operand_peak, product_peak = oracle
        l1, l2 = math.isqrt(x1.shape[1]) - 1, math.isqrt(x2.shape[1]) - 1
        terms = x1.shape[1] + x2.shape[1] + 2 * max(l1, l2) + table.shape[0] + 8
        # plus the underflow floor: an operand grid value that underflows is off by up to ulp(0) (the
        # smallest subnormal), and the other operand's grid values (<= the operand peak) scale that
        ulp0 = torch.finfo(out[0].dtype).tiny * EPS[out[0].dtype]
        tol = 40 * EPS[out[0].dtype] * terms * bound + 64 * terms * ulp0 * (1 + operand_peak[:, None])
        rows_bad = ~(torch.isfinite(x1).all(1) & torch.isfinite(x2).all(1))
        # where the result or an intermediate (one operand's grid, a grid product) reaches the dtype's
        # range an evaluation may overflow (inf/nan) or not
        big = torch.finfo(out[0].dtype).max / (64 * 2 * math.pi)
        overflow = (bound >= big) | (torch.maximum(operand_peak, product_peak) >= big)[:, None]
        return within(out[0], o, tol, skip=rows_bad[:, None] | overflow)
    if op == "gaunt.gaunt_tensor_product":
        o, scale = oracle
        rel = 1e-5 if out[0].dtype == torch.float32 else 1e-12
        return within(out[0], o, rel * scale + 1e-300)
    if op in ("wavehax_harmonic_prior", "wavehax.harmonic_prior"):
        o, bound = oracle
        return within(out[0], ref[0], bound)
    if op == "wavehax_convnext2d_block":
        o, bound = oracle
        return within(out[0], o, 16 * bound + 1e-300)
    return exact(out, ref)


def summarize(out) -> str:
    parts = []
    for o in out:
        if isinstance(o, torch.Tensor):
            parts.append(f"{str(o.dtype).replace('torch.', '')}{list(o.shape)}")
        else:
            parts.append(repr(o))
    return "(" + ", ".join(parts) + ")"


def judge(case: dict, results: dict, inputs=None) -> dict:
    """{path: (category, detail)}; category in ok, crash, hang, wrong, unclear, unchecked."""
    op, expect = case["op"], case["expect"]
    verdict = {}
    for p in PATHS:
        r = results[p]
        if r[0] == "builderr":
            raise RuntimeError(f"fuzz suite bug building {case}: {r[1]}")
        if r[0] == "crash":
            verdict[p] = ("crash", f"{r[1]}\n{r[2]}")
        elif r[0] == "hang":
            verdict[p] = ("hang", f"no result after {r[1]:g} s\n{r[2]}")
    oracle_r = results.get("oracle")
    oracle = oracle_r[1] if oracle_r and oracle_r[0] == "ok" else None
    ref = results["reference"]
    if expect == "valid":
        for p in PATHS:
            if p in verdict:
                continue
            r = results[p]
            if r[0] == "error":
                verdict[p] = ("wrong", f"raised on valid input: {r[1]}: {r[2]}")
                continue
            if op in ORACLE_REQUIRED and oracle is None and oracle_r is not None and oracle_r[0] != "ok":
                verdict[p] = ("ok", "oracle unavailable")
                continue
            if p == "reference":
                d = compare(op, case, p, r[1], r[1], oracle, inputs) if op in (
                    "gaunt_grid_product", "gaunt.gaunt_tensor_product", "wavehax_convnext2d_block") else None
            elif ref[0] != "ok":
                d = None  # the reference is judged on its own; nothing to compare with
            else:
                d = compare(op, case, p, r[1], ref[1], oracle, inputs)
            verdict[p] = ("wrong", d) if d else ("ok", "")
    elif expect == "invalid":
        for p in PATHS:
            if p in verdict:
                continue
            r = results[p]
            if r[0] == "ok":
                verdict[p] = ("unchecked", f"returned {summarize(r[1])} without an error")
            elif clear_error(op, case, r[2]):
                verdict[p] = ("ok", "")
            else:
                verdict[p] = ("unclear", f"{r[1]}: {r[2]}")
    else:  # either
        returned = [p for p in PATHS if p not in verdict and results[p][0] == "ok"]
        raised = [p for p in PATHS if p not in verdict and results[p][0] == "error"]
        for p in raised:
            r = results[p]
            verdict[p] = ("ok", "") if clear_error(op, case, r[2]) else ("unclear", f"{r[1]}: {r[2]}")
        if raised and returned:
            first = results[raised[0]]
            for p in returned:
                verdict[p] = ("unchecked", f"returned {summarize(results[p][1])}; {raised[0]} rejects it: "
                                           f"{first[1]}: {first[2][:300]}")
        elif returned:
            base = "reference" if "reference" in returned else returned[0]
            for p in returned:
                d = None if p == base else compare(op, case, p, results[p][1], results[base][1], oracle, inputs)
                verdict[p] = ("wrong", f"(vs {base}) {d}") if d else ("ok", "")
    return verdict
