"""Explicit cases every run includes (regressions of fixed bugs, empty inputs of every op) and the
registry of known open issues.

A known issue turns a failure of a matching (op, path, case kind, category[, detail]) into
"known": counted and listed, not failing the run; test_fuzz.py turns each issue into an xfail test
that XPASSes once no case fails for it any more.  Remove an entry when its fix lands.
"""

from __future__ import annotations

import re

from .cases import F, case
from .values import list_tensor

RAW = "torch.ops.pyops."


def _i32(shape, values):
    return list_tensor("int32", shape, values)


def _f(dtype, shape, values):
    return list_tensor(dtype, shape, values)


# ------------------------------------------------------------------ regressions of fixed bugs
def _regressions():
    out = []
    top, bot = 2 ** 31 - 1, -(2 ** 31)
    rows = [top, bot, top, bot, top, top, top, bot, bot, bot, top, bot]
    for method in ("exact", "newton"):
        for shift in (0, 5):
            out.append(case("intops.int_layernorm", "pyops.int_layernorm", f"valid:known-layernorm-2^31-{method}",
                            [_i32([3, 4], rows), _f("float32", [4], [1.0] * 4), _f("float32", [4], [0.0] * 4), shift,
                             method]))
            out.append(case("intops_layernorm", RAW + "intops_layernorm", f"valid:known-layernorm-2^31-{method}",
                            [_i32([3, 4], rows), list_tensor("int64", [4], [0, 1, -1, 2 ** 33]), shift, method]))
    out.append(case("intops.int_layernorm", "pyops.int_layernorm", "valid:known-layernorm-2^31-exact",
                    [_i32([1, 2], [top, bot]), _f("float32", [2], [1.0, 1.0]), _f("float32", [2], [0.0, 0.0])]))
    # a tiny F0 once asked for ~10^10 explicit harmonics (a hang)
    for f0, kind in ((1e-6, "valid:known-tiny-f0"), (1e-30, "valid:tiny-f0")):
        out.append(case("wavehax.harmonic_prior", "pyops.wavehax.harmonic_prior", kind,
                        [_f("float32", [1, 1, 4], [f0, f0, 0.0, 220.0]), 240, 24000,
                         _f("float32", [1, 1, 960], [0.0] * 960), _f("float64", [1], [0.25])]))
        out.append(case("wavehax_harmonic_prior", RAW + "wavehax_harmonic_prior", kind,
                        [_f("float32", [1, 1, 4], [f0] * 4), _f("float32", [1, 1, 960], [0.0] * 960),
                         _f("float64", [1], [0.0]), 240, 24000, F(0.1)]))
    # raw constants outside the kernels' domain: a clear error, not a SIGFPE or a wrong result
    x = list_tensor("int8", [2, 5], [1, -3, 7, 0, 127, -128, 5, 5, 2, -1])
    out.append(case("intops_softmax", RAW + "intops_softmax", "invalid:known-raw-constants",
                    [x, -(2 ** 17), 0, 0, 8, "shiftmax"], names=["x0"]))
    out.append(case("intops_shiftgelu", RAW + "intops_shiftgelu", "invalid:known-raw-constants",
                    [x, -(2 ** 40), 8], names=["x0"]))
    out.append(case("intops_shiftgelu", RAW + "intops_shiftgelu", "invalid:constants-int64-min",
                    [x, -(2 ** 63), 8], names=["x0"]))
    out.append(case("intops_softmax", RAW + "intops_softmax", "invalid:constants-int64-min",
                    [x, -(2 ** 63), 0, 0, 8, "shiftmax"], names=["x0"]))
    # pam matmul: rows with unsafe products summed in k order, bit-identical to the reference
    a = [2.0 ** 60, 1.0, 1.0]
    b = [2.0 ** -60, 2.0 ** 70, 2.0 ** 24, 1.0, -(2.0 ** 24), 1.0]
    for dt in ("float32", "float64", "bfloat16"):
        out.append(case("pam.matmul", "pyops.pam.matmul", "valid:known-matmul-unsafe-rows",
                        [_f(dt, [1, 3], a), _f(dt, [3, 2], b)]))
        out.append(case("pam_bmm", RAW + "pam_bmm", "valid:known-matmul-unsafe-rows",
                        [_f(dt, [1, 1, 3], a), _f(dt, [1, 3, 2], b), 1.0, False]))
    # requantize saturates instead of wrapping
    out.append(case("intops.requantize", "pyops.requantize", "valid:known-requantize-saturates",
                    [_i32([1], [2 ** 31 - 1]), 1.0, F(2.0 ** -40)], {"bits": 32}))
    out.append(case("intops.requantize", "pyops.requantize", "valid:known-requantize-saturates",
                    [_i32([2], [-(2 ** 31), 2 ** 31 - 1]), 1.0, F(2.0 ** -40)], {"bits": 8}))
    out.append(case("intops_requantize", RAW + "intops_requantize", "valid:known-requantize-saturates",
                    [_i32([3], [2 ** 31 - 1, -(2 ** 31), 7]), list_tensor("int64", [1], [2 ** 30]),
                     list_tensor("int64", [1], [-10]), 32]))
    out.append(case("intops_requantize", RAW + "intops_requantize", "valid:known-requantize-saturates",
                    [_i32([2], [2 ** 31 - 1, -(2 ** 31)]), list_tensor("int64", [1], [2 ** 31]),
                     list_tensor("int64", [1], [-64]), 16]))
    # fewbit: bits=True is not an int here
    xg = _f("float32", [4], [0.5, -1.0, 2.0, 0.0])
    out.append(case("fewbit.fn", "pyops.fewbit.gelu", "invalid:known-bits-bool", [xg], {"bits": True},
                    names=["bits"], fn="gelu", grad=_f("float32", [4], [1.0] * 4)))
    out.append(case("fewbit.fn", "pyops.fewbit.relu", "invalid:known-bits-bool", [xg], {"bits": False},
                    names=["bits"], fn="relu", grad=_f("float32", [4], [1.0] * 4)))
    return out


# ------------------------------------------------------------------ empty inputs everywhere
def _empties():
    e = []
    f32 = lambda shape: list_tensor("float32", shape, [])  # noqa: E731
    i8 = lambda shape: list_tensor("int8", shape, [])  # noqa: E731
    i64 = lambda vals: list_tensor("int64", [len(vals)], vals)  # noqa: E731
    K = "valid:known-empty"
    for op in ("pam_mul", "pam_div"):
        e.append(case(op, RAW + op, K, [f32([0, 3]), list_tensor("float32", [1, 3], [1.0, -2.0, 0.5])]))
    e.append(case("pam_mul_grad_factor", RAW + "pam_mul_grad_factor", K, [f32([2, 0]), f32([2, 0]), 1.0]))
    for op in ("pam_exp2", "pam_log2"):
        e.append(case(op, RAW + op, K, [f32([0])]))
    e.append(case("pam_bmm", RAW + "pam_bmm", K, [f32([2, 3, 0]), f32([2, 0, 4]), 1.0, False]))
    e.append(case("pam_bmm", RAW + "pam_bmm", K, [f32([0, 3, 2]), f32([0, 2, 4]), 1.0, False]))
    e.append(case("pam_bmm_exact_grad", RAW + "pam_bmm_exact_grad", K,
                  [f32([1, 0, 4]), f32([1, 0, 2]), list_tensor("float32", [1, 2, 4], [1.5] * 8), 1.0]))
    e.append(case("fewbit_encode", RAW + "fewbit_encode", K,
                  [f32([0, 5]), {"table": ["gelu", 3, "uniform", "borders"]}, 3]))
    e.append(case("fewbit_forward", RAW + "fewbit_forward", K,
                  [f32([3, 0]), {"table": ["silu", 2, "normal", "borders"]}, 2, "silu"]))
    e.append(case("fewbit_backward", RAW + "fewbit_backward", K,
                  [f32([0]), list_tensor("uint8", [0], []), {"table": ["gelu", 3, "uniform", "levels"]}, 3]))
    e.append(case("intops_exp", RAW + "intops_exp", K, [i8([0, 4]), -14, 54, 7785]))
    for method in ("ibert", "shiftmax"):
        e.append(case("intops_softmax", RAW + "intops_softmax", K, [i8([4, 0]), -14, 54, 7785, 8, method]))
        e.append(case("intops_softmax", RAW + "intops_softmax", K, [i8([0, 7]), -14, 54, 7785, 8, method]))
    e.append(case("intops_gelu", RAW + "intops_gelu", K, [i8([0, 3]), i64([-35]), i64([-1216]), i64([-1])]))
    e.append(case("intops_shiftgelu", RAW + "intops_shiftgelu", K, [i8([2, 0]), -5, 8]))
    e.append(case("intops_layernorm", RAW + "intops_layernorm", K, [i8([0, 6]), i64([0] * 6), 0, "exact"]))
    e.append(case("intops_layernorm", RAW + "intops_layernorm", K, [i8([3, 0]), i64([]), 0, "newton"]))
    e.append(case("intops_isqrt", RAW + "intops_isqrt", K, [list_tensor("int64", [0], [])]))
    e.append(case("intops_requantize", RAW + "intops_requantize", K, [i8([0, 2]), i64([2 ** 30]), i64([31]), 8]))
    e.append(case("gaunt_grid_product", RAW + "gaunt_grid_product", K,
                  [f32([0, 4]), f32([0, 9]), {"gaunt_table": [1, 2, 3, "float32"]},
                   {"gaunt_weights": [1, 2, 3, "float32"]}, 3]))
    e.append(case("wavehax_harmonic_prior", RAW + "wavehax_harmonic_prior", K,
                  [f32([0, 1, 5]), f32([0, 1, 1200]), list_tensor("float64", [0], []), 240, 24000, F(0.1)]))
    e.append(case("wavehax_harmonic_prior", RAW + "wavehax_harmonic_prior", K,
                  [f32([2, 1, 0]), f32([2, 1, 0]), list_tensor("float64", [2], [0.0, 0.5]), 240, 24000, F(0.1)]))
    c, h = 3, 6
    block = [f32([c, 1, 3, 3]), f32([c]), f32([c]), f32([h, c]), f32([h]), f32([c, h]), f32([c]), f32([c])]
    block = [list_tensor("float32", t["T"]["shape"], [0.5] * (1 if not t["T"]["shape"] else
                                                              __import__("math").prod(t["T"]["shape"])))
             for t in block]
    e.append(case("wavehax_convnext2d_block", RAW + "wavehax_convnext2d_block", K,
                  [f32([0, 4, 5, c])] + block + [F(1e-6), False]))
    e.append(case("pam.mul", "pyops.pam.mul", K, [f32([0, 2]), list_tensor("float32", [2], [3.0, 1.5])]))
    e.append(case("pam.matmul", "pyops.pam.matmul", K, [f32([0, 3]), list_tensor("float32", [3, 2], [1.0] * 6)]))
    e.append(case("pam.matmul", "pyops.pam.matmul", K, [f32([2, 0]), f32([0, 2])]))
    e.append(case("pam.softmax", "pyops.pam.softmax", K, [f32([0, 4])], {"dim": -1}))
    e.append(case("pam.softmax", "pyops.pam.softmax", K, [f32([3, 0])], {"dim": 0}))
    e.append(case("pam.layer_norm", "pyops.pam.layer_norm", K,
                  [f32([0, 4]), [4], list_tensor("float32", [4], [1.0, 2.0, 0.5, -1.0]),
                   list_tensor("float32", [4], [0.0, 1.0, 0.0, 0.0])]))
    e.append(case("fewbit.fn", "pyops.fewbit.gelu", K, [f32([0, 3])], {"bits": 3}, fn="gelu", grad=f32([0, 3])))
    e.append(case("intops.int_softmax", "pyops.int_softmax", K, [i8([0, 5]), 0.05]))
    e.append(case("intops.int_gelu", "pyops.int_gelu", K, [i8([0, 5]), 0.01]))
    e.append(case("intops.int_gelu", "pyops.int_gelu", K, [i8([2, 0]), 0.05, "shiftgelu"]))
    e.append(case("intops.int_layernorm", "pyops.int_layernorm", K,
                  [i8([0, 3]), list_tensor("float32", [3], [1.0, 2.0, 0.5]), list_tensor("float32", [3], [0.0] * 3)]))
    e.append(case("intops.requantize", "pyops.requantize", K, [i8([0, 3]), 0.1, 0.02]))
    e.append(case("intops.int_exp", "pyops.int_exp", K, [i8([0]), 0.1]))
    e.append(case("gaunt.gaunt_tensor_product", "pyops.gaunt.gaunt_tensor_product", K, [f32([0, 4]), f32([0, 9])],
                  {"method": "grid"}))
    e.append(case("gaunt.gaunt_tensor_product", "pyops.gaunt.gaunt_tensor_product", K,
                  [f32([2, 0, 4]), list_tensor("float32", [1, 9], [0.5] * 9)]))
    e.append(case("wavehax.harmonic_prior", "pyops.wavehax.harmonic_prior", K,
                  [f32([1, 1, 0]), 240, 24000, f32([1, 1, 0]), list_tensor("float64", [1], [0.0])]))
    return e


# ------------------------------------------------------------------ reproductions of the suite's own findings
def _findings():
    """A fixed reproduction of each finding of this suite (all fixed; kept as regressions)."""
    out = []
    x8 = list_tensor("int8", [2, 3], [-5, 0, -100, -1, -7, -128])
    for scale in (1.2, 1.25, 1.35):  # documented I-BERT scales whose constants the raw ops rejected
        out.append(case("intops.int_exp", "pyops.int_exp", "valid:ibert-scale", [x8, F(scale)]))
        out.append(case("intops.int_softmax", "pyops.int_softmax", "valid:ibert-scale", [x8, F(scale)]))
    # torch's float64 activations on a strided x vs the C++ forward's contiguous copy
    x64 = {"T": {"dtype": "float64", "shape": [64, 32], "fill": {"rand": 7, "dist": "normal", "scale": 2.0},
                 "layout": "strided"}}
    for fn in ("mish", "softplus", "gelu"):
        out.append(case("fewbit_forward", RAW + "fewbit_forward", "valid:strided-float64",
                        [x64, {"table": [fn, 3, "uniform", "borders"]}, 3, fn]))
    # the Triton fused forward's tails and near-zero values
    xt = _f("float32", [8], [-1e-4, -1e-6, -3e-8, 1e-4, -1e-5, -20.0, 25.0, 0.5])
    for fn in ("elu", "selu", "softplus", "tanh", "mish", "logsigmoid"):
        out.append(case("fewbit_forward", RAW + "fewbit_forward", "valid:activation-tails",
                        [xt, {"table": [fn, 3, "uniform", "borders"]}, 3, fn]))
    # the interpreter's float32 -> bfloat16 conversion (grad / 6 rounded)
    gb = {"T": {"dtype": "bfloat16", "shape": [64], "fill": {"rand": 0, "dist": "normal", "scale": 1.0},
                "layout": "contig"}}
    out.append(case("fewbit_backward", RAW + "fewbit_backward", "valid:bf16-rounding",
                    [gb, list_tensor("uint8", [16], [0x55] * 16), {"table": ["hardsigmoid", 2, "uniform", "levels"]},
                     2]))
    # raw-op inputs no check rejected, where the backends then disagreed
    a = _f("float32", [4], [1.5, 3.0, -2.5, 1e30])
    b = _f("float32", [4], [2.5, 0.75, 4.0, 1e10])
    out.append(case("pam_mul", RAW + "pam_mul", "either:offset", [a, b, F(float("nan")), False], names=["offset"]))
    out.append(case("fewbit_encode", RAW + "fewbit_encode", "either:borders",
                    [_f("float32", [3], [1.5, -0.5, 0.2]), _f("float32", [3], [2.0, 0.0, 1.0]), 2], names=["borders"]))
    out.append(case("fewbit_backward", RAW + "fewbit_backward", "either:levels-dtype",
                    [_f("float64", [3], [1.0, 3.0, -7.0]), list_tensor("uint8", [1], [2]),
                     _f("float64", [2], [0.1, 0.2]), 1], names=["levels"]))
    xg = list_tensor("int16", [2, 3], [5, -7, 300, 0, 1, -2])
    out.append(case("intops_gelu", RAW + "intops_gelu", "either:constants",
                    [xg, list_tensor("int64", [1], [1]), list_tensor("int64", [1], [0]),
                     list_tensor("int64", [1], [2 ** 31])], names=["b", "c", "one"]))
    # the prior's former small-angle branch with K ~ 5e7 harmonics (F0 = 2e-4 Hz), a large start phase
    out.append(case("wavehax_harmonic_prior", RAW + "wavehax_harmonic_prior", "valid:small-angle-f0",
                    [_f("float32", [1, 1, 4], [2e-4, 4e-4, 2e-4, 5e-4]), _f("float32", [1, 1, 40], [0.0] * 40),
                     _f("float64", [1], [1e10]), 10, 22050, F(1.0)]))
    # messages that did not name the argument
    out.append(case("pam_mul", RAW + "pam_mul", "invalid:shape", [_f("float32", [2], [1.0, 2.0]),
                                                                  _f("float32", [3], [1.0, 2.0, 3.0]), 1.0, False],
                    names=["a", "b", "shapes"]))
    out.append(case("wavehax.harmonic_prior", "pyops.wavehax.harmonic_prior", "invalid:hop",
                    [_f("float32", [1, 1, 4], [100.0] * 4), -240, 24000, list_tensor("float32", [1, 1, 0], []),
                     _f("float64", [1], [0.0])], names=["hop_length"]))
    out.append(case("pam.layer_norm", "pyops.pam.layer_norm", "invalid:weight-dtype",
                    [_f("float32", [2, 4], [1.0, 2.0, 3.0, 5.0] * 2), [4], _f("float64", [4], [1.0] * 4), None,
                     F(1e-5)], names=["weight"]))
    return out


def explicit_cases() -> list:
    return _regressions() + _empties() + _findings()


# ------------------------------------------------------------------ known open issues
# ops: names or "*"; paths; kind: a regex searched in case["kind"]; categories: verdicts matched;
# detail: an optional regex searched in the verdict's detail.
def _k(id_, ops, paths, kind, categories, reason, detail=None):
    return {"id": id_, "ops": ops, "paths": set(paths), "kind": kind, "categories": set(categories),
            "reason": reason, "detail": detail}


KNOWN: list = [
    # ---- not pyops: the Triton interpreter (triton 3.9) converts float32 -> bfloat16 by truncation
    _k("interpreter-bf16-truncation", "*", ["triton"], r"^(valid|either)", ["wrong"],
       "not pyops: TRITON_INTERPRET=1 (triton 3.9) converts float32 -> bfloat16 toward zero instead of to "
       "nearest, and mangles bfloat16 subnormals both ways (9.2e-41 loads as 0); fewbit's kernels convert "
       "inside the kernel, so their bf16 results differ on the interpreter only (rule 4)",
       detail=r"\[interpreter bf16 truncation\]"),
]


def match(case: dict, path: str, category: str, detail: str = ""):
    """The known issue covering this failure, or None."""
    for k in KNOWN:
        if _covers(k, case, path) and category in k["categories"] and (
                k["detail"] is None or re.search(k["detail"], detail or "")):
            return k
    return None


def _covers(k, case, path) -> bool:
    return ((k["ops"] == "*" or case["op"] in k["ops"]) and path in k["paths"]
            and re.search(k["kind"], case["kind"]) is not None)
