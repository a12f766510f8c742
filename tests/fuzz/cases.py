"""Per-op case strategies: each op's valid domain and each kind of bad input.

A case's ``expect`` says what every path must do:
  * "valid":   return, and agree with the reference (bit-exact or the op's stated tolerance);
  * "invalid": raise a Python exception whose message names the op and one of ``names``;
  * "either":  outside the documented domain but not rejected by any documented check (e.g. a raw
               op's constants that no scale produces): raise clearly as for "invalid", or return
               and agree with the other paths that returned.
``kind`` tags what the case exercises ("valid", "valid:empty", "invalid:dtype", ...); the known
issues in ``known.py`` match on it.
"""

from __future__ import annotations

import hypothesis.strategies as st

from pyops.fewbit import FUNCTIONS as FEWBIT_FUNCTIONS
from pyops.reference import gaunt as gref
from pyops.reference import intops as iref

from .spec import numel
from .values import (
    Domain, float_any, float_finite, int_range, ints, list_tensor, log_uniform, pick, shapes, tensor,
)

RAW = "torch.ops.pyops."
# a mismatch between two arguments' shapes: "shapes (2,) and (3,) do not broadcast" names both
SHAPE_NAMES = ("a", "b", "shapes")
FEWBIT_FNS = sorted(FEWBIT_FUNCTIONS)
INT_DT = ["int8", "int16", "int32"]
BAD_INT_DT = ["int64", "uint8", "float32", "bool"]
PAM_DT = ["float32", "bfloat16", "float64"]
BAD_PAM_DT = ["float16", "int32", "int64", "bool", "uint8"]
FEW_DT = ["float32", "float16", "bfloat16", "float64"]


def case(op, call, kind, args, kwargs=None, names=(), **extra):
    expect = kind.split(":")[0]
    c = {"op": op, "call": call, "kind": kind, "expect": expect, "args": list(args), "kwargs": dict(kwargs or {}),
         "names": list(names)}
    c.update(extra)
    return c


def F(v):
    """A float argument that may be non-finite (JSON-safe)."""
    from .spec import encode_scalar

    return {"float": encode_scalar(float(v))}


# ====================================================================== pam
def _broadcast_partner(draw, shape):
    """A shape that broadcasts with ``shape`` (same, some dims 1, fewer leading dims, or 0-d)."""
    mode = draw(pick("same", "ones", "fewer", "scalar", "same"))
    if mode == "same" or not shape:
        return list(shape)
    if mode == "scalar":
        return []
    if mode == "fewer":
        return list(shape[draw(st.integers(1, len(shape))):])
    return [1 if draw(st.booleans()) else s for s in shape]


def _non_broadcast_partner(draw, shape):
    """A shape that does not broadcast with ``shape`` (which must have a dim)."""
    dims = [i for i, s in enumerate(shape) if s not in (1,)]
    if not dims:
        return [s + 2 for s in shape]
    i = draw(st.sampled_from(dims))
    other = list(shape)
    other[i] = shape[i] + draw(st.integers(1, 3)) + (1 if shape[i] == 0 else 0)  # never 1 (which broadcasts)
    return other


def _offset(draw):
    return draw(st.one_of(pick(1.0, 1.0, 1.25, 0.75, 1.5, 1.999, 0.501),
                          st.floats(0.5, 2.0, exclude_min=True, exclude_max=True)))


def _bad_offset(draw):
    return draw(pick(0.5, 2.0, 0.0, -1.0, 3.0, 1e30, float("nan"), float("inf"), -0.0))


@st.composite
def pam_binary(draw, op, with_offset, mode="valid"):
    call = RAW + op
    dt = draw(st.sampled_from(PAM_DT))
    sa = draw(shapes(0, 4, 5))
    sb = _broadcast_partner(draw, sa)
    if draw(st.booleans()):
        sa, sb = sb, sa
    extra = []
    if with_offset:
        extra = [F(_offset(draw))]
        if op == "pam_mul":
            extra.append(draw(st.booleans()))
    kind = "valid:empty" if numel(sa) == 0 or numel(sb) == 0 else "valid"
    names = ()
    da = db = dt
    if mode == "dtype":
        bad = draw(st.sampled_from(BAD_PAM_DT))
        if draw(st.booleans()):
            da = db = bad
            names = ("a",)
        else:
            db = bad
            names = ("b",)
        kind = "invalid:dtype"
    elif mode == "mixed":
        db = draw(st.sampled_from([d for d in PAM_DT if d != dt]))
        kind, names = "invalid:dtype-mismatch", ("a", "b")
    elif mode == "shape":
        if all(v == 1 for v in sa):
            sa = [draw(st.integers(2, 4))] + sa
        sb = _non_broadcast_partner(draw, sa)
        kind, names = "invalid:shape", SHAPE_NAMES
    elif mode == "offset":
        extra[0] = F(_bad_offset(draw))
        kind, names = "either:offset", ("offset",)
    a = draw(tensor(da, sa, _dom(da)))
    b = draw(tensor(db, sb, _dom(db)))
    return case(op, call, kind, [a, b] + extra, names=names)


def _dom(dt):
    if dt in ("float16", "bfloat16", "float32", "float64"):
        return float_any(dt)
    if dt in ("int8", "int16", "int32", "int64", "uint8"):
        return ints(*int_range(dt))
    return ints(0, 1)


@st.composite
def pam_unary(draw, op, mode="valid"):
    dt = draw(st.sampled_from(PAM_DT)) if mode == "valid" else draw(st.sampled_from(BAD_PAM_DT))
    s = draw(shapes(0, 4, 6))
    kind = ("valid:empty" if numel(s) == 0 else "valid") if mode == "valid" else "invalid:dtype"
    return case(op, RAW + op, kind, [draw(tensor(dt, s, _dom(dt)))], names=("x",))


def _bmm_dims(draw, big=False):
    if big or draw(st.integers(0, 5)) == 0:  # past the Triton 32x32 tile and the C++ 16-column panels
        return draw(st.integers(1, 2)), draw(st.integers(1, 40)), draw(st.integers(1, 20)), draw(st.integers(1, 40))
    dims = [draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 9)), draw(st.integers(1, 6))]
    if draw(st.integers(0, 5)) == 0:
        dims[draw(st.integers(0, 3))] = 0
    return tuple(dims)


@st.composite
def pam_bmm(draw, op, mode="valid"):
    exact_grad_op = op == "pam_bmm_exact_grad"
    dt = draw(st.sampled_from(PAM_DT))
    bsz, n, k, m = _bmm_dims(draw)
    sa, sb, sg = [bsz, n, k], [bsz, k, m], [bsz, n, m]
    da = db = dg = dt
    off = F(_offset(draw))
    kind = "valid:empty" if 0 in (bsz, n, k, m) else "valid"
    names = ()
    if mode == "dtype":
        da = db = draw(st.sampled_from(BAD_PAM_DT))
        kind, names = "invalid:dtype", ("a",)
    elif mode == "dims":
        which = draw(pick("a", "b"))
        bad = draw(pick([n, k], [bsz, n, k, 1], [k]))
        if which == "a":
            sa = bad
        else:
            sb = draw(pick([k, m], [bsz, k, m, 1], [m]))
        kind, names = "invalid:dims", (which,)
    elif mode == "mismatch":
        if draw(st.booleans()):
            sb = [bsz + draw(st.integers(1, 2)), k, m]
        else:
            sb = [bsz, k + draw(st.integers(1, 2)), m]
        kind, names = "invalid:shape", SHAPE_NAMES
    elif mode == "offset":
        off = F(_bad_offset(draw))
        kind, names = "either:offset", ("offset",)
    elif mode == "grad":
        sg = draw(pick([bsz, n, m + 1], [bsz, n + 1, m], [n, m], [bsz + 1, n, m]))
        kind, names = "invalid:grad-shape", ("grad",)
    elif mode == "graddtype":
        dg = draw(st.sampled_from([d for d in PAM_DT if d != dt]))
        kind, names = "either:grad-dtype", ("grad",)
    a = draw(tensor(da, sa, _dom(da), allow_expand=True))
    b = draw(tensor(db, sb, _dom(db)))
    if exact_grad_op:
        g = draw(tensor(dg, sg, _dom(dg)))
        return case(op, RAW + op, kind, [g, a, b, off], names=names)
    return case(op, RAW + op, kind, [a, b, off, draw(st.booleans())], names=names)


# ====================================================================== fewbit
@st.composite
def borders_for(draw, bits, dtype="float32"):
    """The shipped table of a built-in (as the public functions pass it), or random sorted borders."""
    n = 2 ** bits - 1
    if draw(st.booleans()):
        fn = draw(st.sampled_from(FEWBIT_FNS))
        w = draw(pick("uniform", "normal"))
        return {"table": [fn, bits, w, "borders"]}, fn
    vals = sorted(draw(st.lists(st.one_of(st.floats(-8, 8), pick(0.0, -0.5, 0.5, float("-inf"), float("inf"))),
                                min_size=n, max_size=n)))
    return list_tensor(dtype, [n], vals), None


@st.composite
def fewbit_encode(draw, op, mode="valid"):
    forward = op == "fewbit_forward"
    dt = draw(st.sampled_from(FEW_DT))
    bits = draw(st.integers(1, 8))
    s = draw(shapes(0, 4, 6))
    bd, fn = draw(borders_for(bits))
    fn = fn or draw(st.sampled_from(FEWBIT_FNS))
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "bits":
        bits_arg = draw(pick(0, 9, -1, 64, 2 ** 40))
        kind, names = "invalid:bits", ("bits",)
        bits = bits_arg
    elif mode == "borders":
        n = 2 ** bits - 1
        bad_n = draw(pick(n + 1, n - 1, 0, 2 ** bits)) if n > 1 else draw(pick(2, 0))
        vals = sorted(draw(st.lists(st.floats(-4, 4), min_size=bad_n, max_size=bad_n)))
        bd = list_tensor("float32", [bad_n], vals)
        if draw(st.booleans()) and bad_n:
            bd = list_tensor("float32", [1, bad_n], [0.0] * bad_n)
        kind, names = "invalid:borders", ("borders",)
    elif mode == "dtype":
        dt = draw(st.sampled_from(["int32", "int8", "bool", "uint8", "int64"]))
        kind, names = "invalid:dtype", ("x",)
    elif mode == "unsorted":
        n = 2 ** bits - 1
        vals = draw(st.lists(st.one_of(st.floats(-4, 4), pick(float("nan"), 0.0)), min_size=n, max_size=n))
        bdt = draw(pick("float32", "float32", "float64", "int32", "float16"))
        if bdt == "int32":
            vals = [int(v) if v == v else 0 for v in vals]
        bd = list_tensor(bdt, [n], vals)
        kind, names = "either:borders", ("borders",)
    elif mode == "fn":
        fn = draw(pick("GELU", "relu ", "", "swish", "softmax"))
        kind, names = "invalid:fn", ("fn",)
    x = draw(tensor(dt, s, _dom(dt)))
    args = [x, bd, bits] + ([fn] if forward else [])
    return case(op, RAW + op, kind, args, names=names)


@st.composite
def fewbit_backward(draw, op, mode="valid"):
    dt = draw(st.sampled_from(FEW_DT))
    bits = draw(st.integers(1, 8))
    s = draw(shapes(0, 4, 6))
    n = numel(s)
    nbytes = (n * bits + 7) // 8
    codes = draw(tensor("uint8", [nbytes], ints(0, 255), allow_expand=False))
    if draw(st.booleans()):
        levels = {"table": [draw(st.sampled_from(FEWBIT_FNS)), bits, draw(pick("uniform", "normal")), "levels"]}
    else:
        levels = draw(tensor("float32", [2 ** bits], float_any("float32"), allow_expand=False))
    kind = "valid:empty" if n == 0 else "valid"
    names = ()
    if mode == "codes":
        bad = draw(pick("long", "short", "dtype", "2d"))
        if bad == "long":
            codes = draw(tensor("uint8", [nbytes + draw(st.integers(1, 3))], ints(0, 255)))
        elif bad == "short" and nbytes:
            codes = draw(tensor("uint8", [nbytes - 1], ints(0, 255)))
        elif bad == "2d" and nbytes:
            codes = draw(tensor("uint8", [1, nbytes], ints(0, 255)))
        else:
            codes = draw(tensor(draw(pick("int8", "int32", "int64")), [nbytes], ints(0, 127)))
        kind, names = "invalid:codes", ("codes",)
    elif mode == "levels":
        levels = draw(tensor("float32", [draw(pick(2 ** bits - 1, 2 ** bits + 1, 1, 0))], float_any("float32")))
        kind, names = "invalid:levels", ("levels",)
    elif mode == "bits":
        bits = draw(pick(0, 9, -3))
        kind, names = "invalid:bits", ("bits",)
    elif mode == "dtype":
        dt = draw(st.sampled_from(["int32", "int64", "uint8", "bool"]))
        kind, names = "invalid:dtype", ("grad",)
    elif mode == "levelsdtype":
        ldt = draw(pick("float64", "float16", "int32"))
        levels = draw(tensor(ldt, [2 ** bits], _dom(ldt) if ldt != "float64" else float_finite(-10, 10)))
        kind, names = "either:levels-dtype", ("levels",)
    grad = draw(tensor(dt, s, _dom(dt)))
    return case(op, RAW + op, kind, [grad, codes, levels, bits], names=names)


# ====================================================================== intops
def _int_x(draw, dt, shape, lo=None, hi=None):
    a, b = int_range(dt)
    lo = a if lo is None else max(lo, a)
    hi = b if hi is None else min(hi, b)
    return draw(tensor(dt, shape, ints(lo, hi)))


def _row_shape(draw, min_dims=1):
    s = draw(shapes(min_dims, 3, 6))
    if s and draw(st.integers(0, 9)) == 0:  # rows past the Triton MAX_BLOCK tile (multi-pass kernels)
        s[-1] = draw(st.integers(1025, 1100))
        s[:-1] = [min(v, 2) for v in s[:-1]]
    elif s and draw(st.integers(0, 3)) == 0:
        s[-1] = draw(st.integers(7, 70))
    return s


def ibert_constants_ok(x0, b, c):
    return iref.ibert_constants_error(x0, b, c) is None


@st.composite
def ibert_constants(draw):
    """(x0, b, c): from a scale in the public range, or raw constants inside the C++ domain."""
    if draw(st.booleans()):
        return iref.ibert_exp_constants(draw(log_uniform(3e-5, 1.6)))
    x0 = -draw(st.integers(1, 2 ** 17))
    b = draw(st.integers(-x0 - 1, 2 ** 17 - 1))
    c = draw(st.integers(b * b // 4 + 1, 2 ** 32 - 1))
    return x0, b, c


def _bad_ibert_constants(draw):
    x0, b, c = iref.ibert_exp_constants(draw(log_uniform(3e-5, 1.6)))
    which = draw(pick("x0", "b", "c"))
    if which == "x0":
        x0 = draw(pick(0, 1, 5, -(2 ** 31), -(2 ** 40), 2 ** 40))
    elif which == "c":
        c = draw(pick(0, -1, 2 ** 32, 2 ** 62, -(2 ** 62)))
    else:
        b = draw(pick(-x0 - 2, 2 ** 17, 2 ** 40, -(2 ** 40)))
    err = iref.ibert_constants_error(x0, b, c)
    names = [n for n in ("x0", "b", "c") if err and f"constant {n} " in err] or [which]
    return (x0, b, c), names, err is not None


@st.composite
def intops_exp(draw, op, mode="valid"):
    dt = draw(st.sampled_from(INT_DT))
    s = draw(shapes(0, 3, 6))
    x0, b, c = draw(ibert_constants())
    names = ()
    lo, _ = int_range(dt)
    x = _int_x(draw, dt, s, lo, 0)
    kind = "valid:empty" if numel(s) == 0 else "valid"
    if mode == "positive" and numel(s):
        x = _with_special(x, draw(st.integers(0, numel(s) - 1)), draw(st.one_of(pick(1, int_range(dt)[1]),
                                                                           st.integers(1, int_range(dt)[1]))))
        kind, names = "invalid:x-positive", ("x",)
    elif mode == "constants":
        (x0, b, c), names, bad = _bad_ibert_constants(draw)
        kind = "invalid:constants" if bad else kind
    elif mode == "dtype":
        dt = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(dt, s, _dom(dt) if dt != "float32" else float_finite(-100, 0)))
        kind, names = "invalid:dtype", ("x",)
    return case(op, RAW + op, kind, [x, x0, b, c], names=names)


def _with_special(x, idx, value):
    """x with element ``idx`` (flat, of the values before the layout) set to ``value``."""
    f = dict(x["T"]["fill"])
    if "list" in f:
        f["list"] = list(f["list"])
        if f["list"]:
            f["list"][idx % len(f["list"])] = value
    else:
        f["specials"] = list(f.get("specials", [])) + [[idx, value]]
    return {"T": {**x["T"], "fill": f}}


@st.composite
def intops_softmax(draw, op, mode="valid"):
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    method = draw(pick("ibert", "shiftmax"))
    bits = draw(st.integers(2, 16))
    if method == "ibert":
        x0, b, c = draw(ibert_constants())
    else:
        if draw(st.booleans()):
            x0 = iref.shift_x0(draw(log_uniform(2e-5, 1.0)))
        else:
            x0 = -draw(st.integers(1, 2 ** 16 - 1))
        b, c = draw(pick((0, 0), (123, -5), (2 ** 40, 2 ** 62)))  # unused by shiftmax
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    x = _int_x(draw, dt, s)
    if mode == "bits":
        bits = draw(pick(1, 0, 17, 32, -1))
        kind, names = "invalid:bits", ("output_bits",)
    elif mode == "constants":
        if method == "ibert":
            (x0, b, c), names, bad = _bad_ibert_constants(draw)
            kind = "invalid:constants" if bad else kind
        else:
            x0 = draw(pick(-(2 ** 17), -(2 ** 16), 0, 3, -(2 ** 40), -(2 ** 63)))
            kind, names = "invalid:constants" + ("-int64-min" if x0 == -(2 ** 63) else ""), ("x0",)
    elif mode == "method":
        method = draw(pick("IBERT", "shift", "", "softmax"))
        kind, names = "invalid:method", ("method",)
    elif mode == "dtype":
        dt = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(dt, s, _dom(dt) if dt != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    elif mode == "scalar":
        x = draw(tensor(dt, [], ints(*int_range(dt))))
        kind, names = "invalid:x-dims", ("x",)
    return case(op, RAW + op, kind, [x, x0, b, c, bits, method], names=names)


@st.composite
def gelu_constants(draw, channels):
    """int64 (b, c, one) of shape [1] or [C] from per-tensor / per-channel scales in [1e-6, 10]."""
    per_channel = channels > 1 and draw(st.booleans())
    n = channels if per_channel else 1
    scales = [draw(log_uniform(1e-6, 10.0)) for _ in range(n)]
    import torch

    b, c, one, _ = iref.ibert_gelu_constants(torch.tensor(scales, dtype=torch.float64))
    return [list_tensor("int64", [n], t.tolist()) for t in (b, c, one)]


@st.composite
def intops_gelu(draw, op, mode="valid"):
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    ch = s[-1] if s else 1
    b, c, one = draw(gelu_constants(ch))
    x = _int_x(draw, dt, s)
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "constdtype":
        which = draw(pick(0, 1, 2))
        t = [b, c, one][which]["T"]
        bad = list_tensor(draw(pick("int32", "float64", "float32")), t["shape"], t["fill"]["list"])
        b, c, one = [bad if i == which else v for i, v in enumerate((b, c, one))]
        kind, names = "invalid:constants", (["b", "c", "one"][which],)
    elif mode == "constshape":
        which = draw(pick(0, 1, 2))
        n_bad = ch + 1 if ch + 1 != 1 else 2
        bad = list_tensor("int64", [n_bad], [-5] * n_bad)
        if draw(st.booleans()):
            bad = list_tensor("int64", [1, 1], [-5])
        b, c, one = [bad if i == which else v for i, v in enumerate((b, c, one))]
        kind, names = "invalid:constants", (["b", "c", "one"][which],)
    elif mode == "dtype":
        dt = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(dt, s, _dom(dt) if dt != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    elif mode == "arbitrary":
        vals = pick(0, 1, -1, 5, -(2 ** 31), 2 ** 31, 2 ** 62, -(2 ** 62), -(2 ** 63), 2 ** 63 - 1, -123456)
        b, c, one = (list_tensor("int64", [1], [draw(vals)]) for _ in range(3))
        kind, names = "either:constants", ("b", "c", "one")
    elif mode == "scalar":
        x = draw(tensor(dt, [], ints(*int_range(dt))))
        kind, names = "invalid:x-dims", ("x",)
    return case(op, RAW + op, kind, [x, b, c, one], names=names)


@st.composite
def intops_shiftgelu(draw, op, mode="valid"):
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    if draw(st.booleans()):
        x0 = iref.shift_x0(iref.SHIFTGELU_ALPHA * draw(log_uniform(1 / (127 * iref.SHIFTGELU_ALPHA), 1.0)))
    else:
        x0 = -draw(st.integers(1, 255))
    bits = draw(st.integers(2, 16))
    x = _int_x(draw, dt, s)
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "x0":
        x0 = draw(pick(-(2 ** 40), -256, 0, 1, -(2 ** 63), 2 ** 20))
        kind, names = "invalid:constants" + ("-int64-min" if x0 == -(2 ** 63) else ""), ("x0",)
    elif mode == "bits":
        bits = draw(pick(1, 17, 0, 64))
        kind, names = "invalid:bits", ("output_bits",)
    elif mode == "dtype":
        dt = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(dt, s, _dom(dt) if dt != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    return case(op, RAW + op, kind, [x, x0, bits], names=names)


def _layernorm_kind(x_spec, shift) -> str:
    """"valid", tagged "shift-raised" when some row needs a larger variance shift than ``shift``
    for n ((x - mean) >> s)^2 to fit in int64 (reference layernorm_shift: rows near +-2^31)."""
    import torch

    x = _plain(x_spec).long()
    if x.numel() == 0 or not isinstance(shift, int) or not 0 <= shift < 32:
        return "valid"
    n = x.shape[-1]
    y = x - iref._round_div(x.sum(-1, keepdim=True), n)
    s = iref.layernorm_shift(y.abs().amax(-1, keepdim=True), n, shift)
    return "valid:shift-raised" if bool((s > shift).any()) else "valid"


@st.composite
def intops_layernorm(draw, op, mode="valid"):
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    n = s[-1] if s else 1
    if dt == "int32" and draw(st.integers(0, 3)) == 0:  # accumulators near +-2^31
        edges = [-(2 ** 31), 2 ** 31 - 1, -(2 ** 31) + 1, 2 ** 31 - 2, 2 ** 30, -(2 ** 30), 0]
        x = draw(tensor(dt, s, Domain(st.sampled_from(edges), [{"dist": "pick", "values": edges}], edges)))
    else:
        x = _int_x(draw, dt, s)
    blen = n if draw(st.integers(0, 3)) else 1
    bias = draw(tensor("int64", [blen], ints(-(2 ** 40), 2 ** 40) if draw(st.booleans()) else ints(-1000, 1000),
                       allow_expand=False))
    shift = draw(st.integers(0, 31)) if draw(st.booleans()) else 0
    method = draw(pick("exact", "newton"))
    kind = "valid:empty" if numel(s) == 0 else _layernorm_kind(x, shift)
    names = ()
    if mode == "shift":
        shift = draw(pick(-1, 32, 64, -(2 ** 40)))
        kind, names = "invalid:shift", ("shift",)
    elif mode == "isqrt":
        method = draw(pick("Exact", "newton2", "", "sqrt"))
        kind, names = "invalid:isqrt", ("isqrt",)
    elif mode == "bias":
        bad = draw(pick("dtype", "len", "2d"))
        if bad == "dtype":
            bias = list_tensor(draw(pick("int32", "float64")), [blen], [0] * blen)
        elif bad == "len":
            bias = list_tensor("int64", [n + 1 if n != 0 else 2], [0] * (n + 1 if n != 0 else 2))
        else:
            bias = list_tensor("int64", [1, n], [0] * n) if n > 1 else list_tensor("int64", [2, 2], [0] * 4)
        kind, names = "invalid:bias", ("bias_int",)
    elif mode == "dtype":
        dt = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(dt, s, _dom(dt) if dt != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    return case(op, RAW + op, kind, [x, bias, shift, method], names=names)


@st.composite
def intops_isqrt(draw, op, mode="valid"):
    dt = draw(pick("int32", "int64"))
    s = draw(shapes(0, 3, 6))
    hi = int_range(dt)[1]
    sq = [v * v + d for v in (2 ** 15, 46340, 3037000499, 2 ** 31, 7) for d in (-1, 0, 1) if 0 <= v * v + d <= hi]
    dom = ints(0, hi)
    dom.specials = sorted(set(dom.specials + sq))
    dom.element = st.one_of(st.sampled_from(dom.specials), st.integers(0, hi))
    x = draw(tensor(dt, s, dom))
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "negative" and numel(s):
        x = draw(tensor(dt, s, ints(int_range(dt)[0], -1)))
        kind, names = "invalid:negative", ("x",)
    elif mode == "dtype":
        dt = draw(pick("int8", "int16", "float32", "uint8", "float64"))
        x = draw(tensor(dt, s, _dom(dt) if not dt.startswith("float") else float_finite(0, 100)))
        kind, names = "invalid:dtype", ("x",)
    return case(op, RAW + op, kind, [x], names=names)


@st.composite
def requant_constants(draw, channels):
    import torch

    n = channels if channels > 1 and draw(st.booleans()) else 1
    if draw(st.booleans()):
        ratio = torch.tensor([2.0 ** draw(st.floats(-60, 40)) for _ in range(n)], dtype=torch.float64)
        m, e = iref.dyadic(ratio)
        m, e = m.tolist(), e.tolist()
    else:
        m = [draw(st.one_of(pick(0, 1, 2 ** 31, 2 ** 31 - 1, 2 ** 30), st.integers(0, 2 ** 31))) for _ in range(n)]
        e = [draw(st.one_of(pick(-64, 64, 0, -1, 62, 63, -62, -63, 31), st.integers(-64, 64))) for _ in range(n)]
    return m, e, n


def _requant_kind(dt, m, e):
    """"valid", tagged "saturating" when some x of the dtype times m shifted left by -e leaves
    int64, "shift-past-62" when some right shift is by more than 62 bits."""
    top = max(abs(v) for v in int_range(dt))
    tags = []
    if any(ev < 0 and (-ev > 62 or top * mv > (2 ** 63 - 1) >> -ev) and mv for mv, ev in zip(m, e)):
        tags.append("saturating")
    if any(ev > 62 for ev in e):
        tags.append("shift-past-62")
    return "valid:" + "+".join(tags) if tags else "valid"


@st.composite
def intops_requantize(draw, op, mode="valid"):
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    ch = s[-1] if s else 1
    m, e, n = draw(requant_constants(ch))
    bits = draw(st.one_of(pick(2, 8, 16, 31, 32), st.integers(2, 32)))
    ok = all(0 <= v <= 2 ** 31 for v in m) and all(-64 <= v <= 64 for v in e)
    kind = ("valid:empty" if numel(s) == 0 else _requant_kind(dt, m, e)) if ok else "invalid:constants"
    names = () if ok else ("m", "e")
    mt, et = "int64", "int64"
    x = _int_x(draw, dt, s)
    if mode in ("m", "e") and numel(s) == 0:  # constants of an empty x are never used: not checked
        s = [2, max(ch, 1)]
        x = _int_x(draw, dt, s)
    if mode == "m":
        m = [draw(pick(-1, 2 ** 31 + 1, 2 ** 62, -(2 ** 62)))] * n
        kind, names = "invalid:m", ("m",)
    elif mode == "e":
        e = [draw(pick(-65, 65, 2 ** 40, -(2 ** 40)))] * n
        kind, names = "invalid:e", ("e",)
    elif mode == "bits":
        bits = draw(pick(1, 33, 0, 64, -1))
        kind, names = "invalid:bits", ("bits",)
    elif mode == "constdtype":
        if draw(st.booleans()):
            mt = draw(pick("int32", "float64"))
            names = ("m",)
        else:
            et = draw(pick("int32", "float64"))
            names = ("e",)
        kind = "invalid:constants"
    elif mode == "dtype":
        dt = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(dt, s, _dom(dt) if dt != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    return case(op, RAW + op, kind, [x, list_tensor(mt, [n], m), list_tensor(et, [n], e), bits], names=names)


# ====================================================================== gaunt
@st.composite
def gaunt_grid_product(draw, op, mode="valid"):
    dt = draw(pick("float32", "float64"))
    l1, l2 = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    lo = draw(st.integers(0, l1 + l2 + (2 if draw(st.integers(0, 5)) == 0 else 0)))
    n = draw(st.one_of(st.integers(1, 12), pick(0, 33, 40)))
    d1, d2 = (l1 + 1) ** 2, (l2 + 1) ** 2
    dom = float_finite(-10, 10, scale=draw(pick(1.0, 1e-3, 1e3)))
    if mode == "nonfinite":
        dom = float_any(dt)
    x1 = draw(tensor(dt, [n, d1], dom))
    x2 = draw(tensor(dt, [n, d2], dom))
    table = {"gaunt_table": [l1, l2, lo, dt]}
    weights = {"gaunt_weights": [l1, l2, lo, dt]}
    if draw(st.integers(0, 5)) == 0:  # any table and weights of the right shape: the quadrature they define
        k = draw(st.integers(1, 6))
        width = (max(l1, l2, lo) + 1) ** 2 + draw(st.integers(0, 3))
        table = draw(tensor(dt, [k, width], float_finite(-2, 2)))
        weights = draw(tensor(dt, [k], float_finite(0, 1)))
    kind = ("valid:empty" if n == 0 else "valid") if mode != "nonfinite" else "valid:nonfinite"
    names = ()
    if mode == "dtype":
        bad = draw(pick("float16", "int32", "bfloat16", "int64"))
        x1 = draw(tensor(bad, [n, d1], _dom(bad)))
        x2 = draw(tensor(bad, [n, d2], _dom(bad)))
        kind, names = "invalid:dtype", ("x1",)
    elif mode == "mixed":
        other = "float64" if dt == "float32" else "float32"
        which = draw(pick("x2", "table", "weights"))
        if which == "x2":
            x2 = draw(tensor(other, [n, d2], dom))
        elif which == "table":
            table = {"gaunt_table": [l1, l2, lo, other]}
        else:
            weights = {"gaunt_weights": [l1, l2, lo, other]}
        kind, names = "invalid:dtype-mismatch", (which,)
    elif mode == "dim":
        which = draw(pick("x1", "x2"))
        bad = draw(pick([n, d1 + 1], [n], [n, 1, d1], [n, 0], [n, 2]))
        if bad == [n, 1] or bad == [n, 4]:
            bad = [n, 2]
        if which == "x1":
            x1 = draw(tensor(dt, bad, dom))
        else:
            x2 = draw(tensor(dt, bad, dom))
        kind, names = "invalid:dim", (which,)
    elif mode == "rows":
        x2 = draw(tensor(dt, [n + draw(st.integers(1, 3)), d2], dom))
        kind, names = "invalid:rows", ("x2",)
    elif mode == "lmax_out":
        lo = draw(pick(-1, -5))
        table = {"gaunt_table": [l1, l2, 0, dt]}
        weights = {"gaunt_weights": [l1, l2, 0, dt]}
        kind, names = "invalid:lmax_out", ("lmax_out",)
    elif mode == "table":
        need = (max(l1, l2, lo) + 1) ** 2
        table = draw(tensor(dt, draw(pick([3, need - 1], [need], [1, 3, need])), float_finite(-1, 1)))
        weights = draw(tensor(dt, [3], float_finite(0, 1)))
        if table["T"]["shape"] == [need]:
            weights = draw(tensor(dt, [need], float_finite(0, 1)))
        kind, names = "invalid:table", ("table",)
    elif mode == "weights":
        k = len(gref.grid_nodes(l1 + l2 + lo)[0])
        weights = draw(tensor(dt, draw(pick([k + 1], [k, 1], [max(k - 1, 0)])), float_finite(0, 1)))
        kind, names = "invalid:weights", ("weights",)
    return case(op, RAW + op, kind, [x1, x2, table, weights, lo], names=names)


# ====================================================================== wavehax
SAMPLE_RATES = (1, 2, 8000, 16000, 22050, 24000, 44100, 48000, 2 ** 31 - 1)


@st.composite
def prior_f0(draw, b, n, sr):
    half = sr / 2
    vals = [0.0, 1e-6, 1e-30, 1e-45, 50.0, 100.0, 220.0, 440.0, half, half / 3, half / 7, half * 1.0001,
            half / 120, 3.4e38, 1.0, sr / 2.0 ** 20]
    dom = float_finite(0.0, min(2000.0, half * 1.5) if half > 0 else 1.0, specials=[float(v) for v in vals])
    dom.dists = [{"dist": "uniform", "lo": 0.0, "hi": min(800.0, max(half, 1.0))},
                 {"dist": "pick", "values": [float(v) for v in vals]},
                 {"dist": "uniform", "lo": 0.0, "hi": 1e-3}]
    return draw(tensor("float32", [b, 1, n], dom, allow_expand=True))


def _f0_kind(f0_spec, sr) -> str:
    """"valid", tagged "tiny-f0" for a voiced F0 below 1e-12 Hz (the reference counts harmonics of
    1e-12 Hz there), "small-angle-f0" for a voiced F0 below 1e-5 sr (K = sr / 2 F0 > 5e4 harmonics:
    the closed form's small-angle branch, taken for |sin(theta / 2)| < 1e-7, is then inaccurate)."""
    t = _plain(f0_spec)
    if bool(((t > 0) & (t < 1e-12)).any()):
        return "valid:tiny-f0"
    if bool(((t > 0) & (t < 1e-5 * sr)).any()):
        return "valid:small-angle-f0"
    return "valid"


def _f0_ok():
    """Valid F0 values (>= 0, finite)."""
    d = float_finite(0.0, 500.0, specials=[0.0, 100.0, 220.0])
    d.dists = [{"dist": "uniform", "lo": 0.0, "hi": 500.0}]
    return d


@st.composite
def wavehax_harmonic_prior(draw, op, mode="valid", public=False):
    b, n = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    if draw(st.integers(0, 7)) == 0:
        b, n = (0, n) if draw(st.booleans()) else (b, 0)
    hop = draw(st.one_of(st.integers(1, 64), pick(240, 480, 1)))
    if b * n * hop > 6000:
        hop = max(1, 6000 // max(b * n, 1))
    sr = draw(st.one_of(pick(*SAMPLE_RATES), st.integers(1, 2 ** 31 - 1)))
    f0 = draw(prior_f0(b, n, sr))
    noise = draw(tensor("float32", [b, 1, n * hop], float_finite(-1, 1, scale=0.01)))
    phase0 = draw(tensor("float64", [b], float_finite(-1e6, 1e6, specials=[0.0, 0.5, 0.999999, -0.25, 1e10, -1e10])))
    pf = draw(pick(0.1, 0.1, 0.0, 1.0, -0.5, 1e-3))
    kind = "valid:empty" if b * n * hop == 0 else _f0_kind(f0, sr)
    names = ()
    if mode == "f0":
        bad = draw(pick(-1.0, float("nan"), float("inf"), float("-inf"), -1e-30))
        f0 = list_tensor("float32", [max(b, 1), 1, max(n, 1)], [bad] * (max(b, 1) * max(n, 1)))
        b, n = max(b, 1), max(n, 1)
        noise = draw(tensor("float32", [b, 1, n * hop], float_finite(-1, 1)))
        phase0 = draw(tensor("float64", [b], float_finite(0, 1)))
        kind, names = "invalid:f0", ("f0",)
    elif mode == "f0shape":
        which = draw(pick("shape", "dtype"))
        if which == "shape":
            f0 = draw(tensor("float32", draw(pick([b, 2, n], [b, n], [1, b, 1, n])), float_finite(0, 500)))
        else:
            f0 = draw(tensor(draw(pick("float64", "float16", "int32")), [b, 1, n], float_finite(0, 500)))
        kind, names = "invalid:f0", ("f0",)
    elif mode == "hop":
        hop = draw(pick(0, -1, -240))
        noise = draw(tensor("float32", [b, 1, 0], float_finite(-1, 1)))
        kind, names = "invalid:hop", ("hop_length",)
    elif mode == "sr":
        sr = draw(pick(0, -1, 2 ** 31, 2 ** 40, -(2 ** 31)))
        f0 = draw(tensor("float32", [b, 1, n], _f0_ok()))
        kind, names = "invalid:sample_rate", ("sample_rate",)
    elif mode == "noise":
        bad = draw(pick("len", "dtype", "dims"))
        if bad == "len":
            noise = draw(tensor("float32", [b, 1, n * hop + draw(st.integers(1, 5))], float_finite(-1, 1)))
        elif bad == "dtype":
            noise = draw(tensor(draw(pick("float64", "float16", "bfloat16")), [b, 1, n * hop], float_finite(-1, 1)))
        else:
            noise = draw(tensor("float32", [b, n * hop], float_finite(-1, 1)))
        kind, names = "invalid:noise", ("noise",)
    elif mode == "phase0":
        bad = draw(pick("dtype", "len", "nonfinite"))
        if bad == "dtype":
            phase0 = draw(tensor("float32", [b], float_finite(0, 1)))
        elif bad == "len":
            phase0 = draw(tensor("float64", [b + 1], float_finite(0, 1)))
        else:
            b = max(b, 1)
            f0 = draw(tensor("float32", [b, 1, n], _f0_ok()))
            noise = draw(tensor("float32", [b, 1, n * hop], float_finite(-1, 1)))
            phase0 = list_tensor("float64", [b], [draw(pick(float("nan"), float("inf"), float("-inf")))] * b)
        kind, names = "invalid:phase0", ("phase0",)
    elif mode == "pf":
        pf = draw(pick(float("nan"), float("inf"), -float("inf"), 1e300))
        kind, names = "either:power_factor", ("power_factor",)
    if public:
        return case("wavehax.harmonic_prior", "pyops.wavehax.harmonic_prior", kind,
                    [f0, hop, sr, noise, phase0], {"power_factor": F(pf)}, names=names)
    return case(op, RAW + op, kind, [f0, noise, phase0, hop, sr, F(pf)], names=names)


@st.composite
def wavehax_block(draw, op, mode="valid"):
    dt = draw(pick("float32", "float64"))
    kf = draw(pick(1, 3, 5, 7, 13))  # frequency taps: official v2 / fb kernels are [13, 7] / [15, 7]
    kt = kf if kf < 13 and draw(st.booleans()) else draw(pick(1, 3, 5, 7))
    bsz = draw(st.integers(1, 2)) if draw(st.integers(0, 7)) else 0
    fr, tf = draw(st.integers(kf // 2 + 1, kf // 2 + 6)), draw(st.integers(kt // 2 + 1, kt // 2 + 6))
    c = draw(st.one_of(st.integers(1, 12), pick(17, 66)))
    h = c * draw(st.integers(1, 3)) if draw(st.booleans()) else draw(st.integers(1, 20))
    if c > 64:
        bsz, fr, tf = min(bsz, 1), min(fr, kf // 2 + 2), min(tf, kt // 2 + 2)
    eps = draw(pick(1e-6, 1e-6, 1e-5, 0.1, 1.0))
    framewise = draw(st.booleans())
    wscale = draw(pick(0.02, 0.3, 1.0))
    xdom = float_finite(-100, 100, scale=draw(pick(1.0, 1e-3, 10.0)))
    if draw(st.integers(0, 7)) == 0:  # constant input: zero variance, eps alone normalises
        xdom.dists = [{"dist": "const", "value": draw(pick(0.0, 1.5, -3.0))}]
    shapes_ = {"x": [bsz, fr, tf, c], "dw_weight": [c, 1, kf, kt], "norm_weight": [c], "norm_bias": [c],
               "pw1_weight": [h, c], "pw1_bias": [h], "pw2_weight": [c, h], "pw2_bias": [c], "layer_scale": [c]}
    dtypes = {name: dt for name in shapes_}
    kind = "valid:empty" if bsz == 0 else "valid"
    names = ()
    if mode == "nonfinite":
        xdom = float_any(dt)
        kind = "valid:nonfinite"
    elif mode == "dtype":
        bad = draw(pick("float16", "bfloat16", "int32"))
        dtypes = {name: bad for name in shapes_}
        kind, names = "invalid:dtype", ("x",)
    elif mode == "xdims":
        shapes_["x"] = draw(pick([fr, tf, c], [bsz, fr, tf, c, 1], [bsz, fr, tf, c + 1]))
        kind, names = "invalid:x", ("x", "dw_weight")
    elif mode == "kernel":
        kk = draw(pick(2, 4, 0))
        shapes_["dw_weight"] = draw(pick([c, 1, kk, kk], [c, 1, kf, kk], [c, 1, kk, kt], [c + 1, 1, kf, kt],
                                         [c, 2, kf, kt], [c, 1, kf]))
        kind, names = "invalid:dw_weight", ("dw_weight",)
    elif mode == "pad":
        kk = draw(pick(3, 5, 7))
        shapes_["dw_weight"] = [c, 1, kk, kk]
        small = draw(st.integers(1, kk // 2))
        shapes_["x"] = [max(bsz, 1), small, tf + kk, c] if draw(st.booleans()) else [max(bsz, 1), fr + kk, small, c]
        kind, names = "invalid:x", ("x",)
    elif mode == "hidden":
        shapes_["pw1_weight"], shapes_["pw1_bias"], shapes_["pw2_weight"] = [0, c], [0], [c, 0]
        kind, names = "invalid:pw1_weight", ("pw1_weight",)
    elif mode == "pw2":
        shapes_["pw2_weight"] = draw(pick([c, h + 1], [c + 1, h], [h, c] if h != c else [h + 1, c]))
        kind, names = "invalid:pw2_weight", ("pw2_weight",)
    elif mode == "wdtype":
        which = draw(st.sampled_from([n for n in shapes_ if n != "x"]))
        dtypes[which] = "float64" if dt == "float32" else "float32"
        kind, names = "invalid:weight-dtype", (which,)
    elif mode == "vector":
        which = draw(pick("norm_weight", "norm_bias", "pw1_bias", "pw2_bias", "layer_scale"))
        shapes_[which] = draw(pick([shapes_[which][0] + 1], [1, shapes_[which][0]], []))
        kind, names = "invalid:vector", (which,)
    args = []
    for name, shp in shapes_.items():
        if name == "x":
            dom = xdom if dtypes[name].startswith("float") else ints(-5, 5)
        elif name in ("norm_weight", "layer_scale"):
            dom = float_finite(-2, 2, scale=1.0, specials=[1.0, 0.0, -1.0])
        else:
            dom = float_finite(-1, 1, scale=wscale)
        if not dtypes[name].startswith("float") and name != "x":
            dom = ints(-2, 2)
        args.append(draw(tensor(dtypes[name], shp, dom)))
    args += [F(eps), framewise]
    return case(op, RAW + op, kind, args, names=names)


# ====================================================================== public functions
@st.composite
def pub_pam_mul(draw, mode="valid"):
    op = "pam.mul"
    dt = draw(st.sampled_from(PAM_DT))
    sa = draw(shapes(0, 4, 5))
    sb = _broadcast_partner(draw, sa)
    a = draw(tensor(dt, sa, float_any(dt)))
    b = draw(tensor(dt, sb, float_any(dt)))
    kw = {"offset": F(_offset(draw)), "backward": draw(pick("pam", "exact"))}
    kind = "valid:empty" if numel(sa) * numel(sb) == 0 else "valid"
    names = ()
    if mode == "offset":
        kw["offset"] = F(_bad_offset(draw))
        kind, names = "invalid:offset", ("offset",)
    elif mode == "backward":
        kw["backward"] = draw(pick("PAM", "exact2", ""))
        kind, names = "invalid:backward", ("backward",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_PAM_DT))
        b = draw(tensor(bad, sb, _dom(bad)))
        kind, names = "invalid:dtype", ("b",)
    elif mode == "shape":
        if all(v == 1 for v in sa):
            sa = [3] + sa
            a = draw(tensor(dt, sa, float_any(dt)))
        b = draw(tensor(dt, _non_broadcast_partner(draw, sa), float_any(dt)))
        kind, names = "invalid:shape", ("b", "shapes")
    elif mode == "number":
        b = F(draw(st.sampled_from([3.0, -0.5, 1e-40, float("inf"), float("nan"), 2.0 ** 100])))
        kind = "valid" if numel(sa) else "valid:empty"
    return case(op, "pyops.pam.mul", kind, [a, b], kw, names=names)


@st.composite
def pub_pam_matmul(draw, mode="valid"):
    op = "pam.matmul"
    dt = draw(st.sampled_from(PAM_DT))
    n, k, m = draw(st.integers(1, 5)), draw(st.integers(1, 7)), draw(st.integers(1, 5))
    if draw(st.integers(0, 5)) == 0:
        n, k, m = [0 if i == draw(st.integers(0, 2)) else v for i, v in enumerate((n, k, m))]
    form = draw(pick("2x2", "1x1", "2x1", "1x2", "batched", "broadcast"))
    sa, sb = {"2x2": ([n, k], [k, m]), "1x1": ([k], [k]), "2x1": ([n, k], [k]), "1x2": ([k], [k, m]),
              "batched": ([2, n, k], [2, k, m]), "broadcast": ([3, 1, n, k], [2, k, m])}[form]
    kw = {"offset": F(_offset(draw)), "backward": "pam"}
    names = ()
    kind = "valid:empty" if 0 in sa + sb else "valid"
    if mode == "k":
        sb = list(sb)
        sb[-2 if len(sb) > 1 else 0] += draw(st.integers(1, 2))
        kind, names = "invalid:shape", ("b",)
    elif mode == "batch":
        sa, sb = [2, n, k], [3, k, m]
        kind, names = "invalid:batch", SHAPE_NAMES
    elif mode == "scalar":
        sa = []
        kind, names = "invalid:dims", ("a",)
    elif mode == "dtype":
        db = draw(st.sampled_from([d for d in PAM_DT if d != dt] + ["int32"]))
        b = draw(tensor(db, sb, _dom(db)))
        a = draw(tensor(dt, sa, float_any(dt)))
        return case(op, "pyops.pam.matmul", "invalid:dtype", [a, b], kw, names=("b",))
    elif mode == "offset":
        kw["offset"] = F(_bad_offset(draw))
        kind, names = "invalid:offset", ("offset",)
    a = draw(tensor(dt, sa, float_any(dt)))
    b = draw(tensor(dt, sb, float_any(dt)))
    return case(op, "pyops.pam.matmul", kind, [a, b], kw, names=names)


@st.composite
def pub_pam_softmax(draw, mode="valid"):
    op = "pam.softmax"
    dt = draw(st.sampled_from(PAM_DT))
    s = draw(shapes(0, 3, 6))
    nd = max(len(s), 1)
    dim = draw(st.integers(-nd, nd - 1))
    dom = float_any(dt) if draw(st.booleans()) else float_finite(-30, 30, scale=5.0,
                                                                 specials=[float("-inf"), 0.0, -1e30, 80.0])
    x = draw(tensor(dt, s, dom))
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "dim":
        dim = draw(pick(nd, -nd - 1, 5, -7))
        kind, names = "invalid:dim", ("dim",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_PAM_DT))
        x = draw(tensor(bad, s, _dom(bad)))
        kind, names = "invalid:dtype", ("x",)
    return case(op, "pyops.pam.softmax", kind, [x], {"dim": dim, "backward": draw(pick("pam", "exact"))},
                names=names)


@st.composite
def pub_pam_layer_norm(draw, mode="valid"):
    op = "pam.layer_norm"
    dt = draw(st.sampled_from(PAM_DT))
    s = draw(shapes(1, 3, 6))
    nt = draw(st.integers(1, len(s)))
    ns = s[len(s) - nt:]
    dom = float_finite(-100, 100, scale=3.0) if draw(st.booleans()) else float_any(dt)
    x = draw(tensor(dt, s, dom))
    w = draw(tensor(dt, ns, float_finite(-2, 2))) if draw(st.booleans()) else None
    bias = draw(tensor(dt, ns, float_finite(-2, 2))) if draw(st.booleans()) else None
    eps = F(draw(pick(1e-5, 1e-12, 0.1)))
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "shape":
        ns = list(ns)
        ns[-1] += draw(st.integers(1, 2))
        w = bias = None
        kind, names = "invalid:normalized_shape", ("normalized_shape",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_PAM_DT))
        x = draw(tensor(bad, s, _dom(bad)))
        kind, names = "invalid:dtype", ("x",)
    elif mode == "weight":
        other = draw(st.sampled_from([d for d in PAM_DT if d != dt]))
        w = draw(tensor(other, ns, float_finite(-2, 2)))
        kind, names = "invalid:weight-dtype", ("weight",)
    return case(op, "pyops.pam.layer_norm", kind, [x, ns, w, bias, eps], {"backward": draw(pick("pam", "exact"))},
                names=names)


@st.composite
def pub_fewbit(draw, mode="valid"):
    op = "fewbit.fn"
    fn = draw(st.sampled_from(FEWBIT_FNS))
    dt = draw(st.sampled_from(FEW_DT))
    s = draw(shapes(0, 4, 6))
    bits = draw(st.integers(1, 8))
    weight = draw(pick("uniform", "normal"))
    x = draw(tensor(dt, s, float_any(dt), allow_expand=False))
    gy = draw(tensor(dt, s, float_finite(-10, 10) if draw(st.booleans()) else float_any(dt)))
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "bits":
        bits = draw(pick(True, False, 0, 9, 3.0, -1))
        kind, names = "invalid:bits", ("bits",)
    elif mode == "weight":
        weight = draw(pick("Normal", "gauss", ""))
        kind, names = "invalid:weight", ("weight",)
    elif mode == "dtype":
        bad = draw(pick("int32", "int64", "bool"))
        x = draw(tensor(bad, s, _dom(bad)))
        gy = draw(tensor("float32", s, float_finite()))
        kind, names = "invalid:dtype", ("x",)
    return case(op, f"pyops.fewbit.{fn}", kind, [x], {"bits": bits, "weight": weight}, names=names, fn=fn, grad=gy)


@st.composite
def pub_int_softmax(draw, mode="valid"):
    op = "intops.int_softmax"
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    method = draw(pick("ibert", "shiftmax"))
    lo, hi = (3e-5, 1.6) if method == "ibert" else (2e-5, 1.0)
    scale = F(draw(log_uniform(lo, hi)))
    bits = draw(st.integers(2, 16))
    x = _int_x(draw, dt, s)
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "scale":
        scale = F(draw(pick(0.0, -0.1, float("nan"), float("inf"), 1e-6, 5.0)))
        kind, names = "invalid:scale", ("scale",)
    elif mode == "bits":
        bits = draw(pick(1, 17, 0, 32))
        kind, names = "invalid:bits", ("output_bits",)
    elif mode == "method":
        method = draw(pick("IBERT", "shift", ""))
        kind, names = "invalid:method", ("method",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(bad, s, _dom(bad) if bad != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    elif mode == "scalar":
        x = draw(tensor(dt, [], ints(-5, 5)))
        kind, names = "invalid:x-dims", ("x",)
    return case(op, "pyops.int_softmax", kind, [x, scale, bits, method], names=names)


@st.composite
def pub_int_gelu(draw, mode="valid"):
    op = "intops.int_gelu"
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    method = draw(pick("ibert", "shiftgelu"))
    bits = draw(st.integers(2, 16))
    ch = s[-1] if s else 1
    if method == "ibert" and ch > 1 and draw(st.booleans()):
        scale = list_tensor("float64", [ch], [draw(log_uniform(1e-6, 10.0)) for _ in range(ch)])
    elif method == "ibert":
        scale = F(draw(log_uniform(1e-6, 10.0)))
    else:
        scale = F(draw(log_uniform(1 / (127 * iref.SHIFTGELU_ALPHA), 1.0)))
    x = _int_x(draw, dt, s)
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "scale":
        if method == "ibert" and ch > 2 and draw(st.booleans()):
            scale = list_tensor("float64", [ch - 1], [0.01] * (ch - 1))
        else:
            scale = F(draw(pick(0.0, -1.0, float("nan"), float("inf"), 1e-9, 100.0)))
        kind, names = "invalid:scale", ("scale",)
    elif mode == "method":
        method = draw(pick("IBERT", "gelu", ""))
        kind, names = "invalid:method", ("method",)
    elif mode == "bits" and method == "shiftgelu":
        bits = draw(pick(1, 17, 0))
        kind, names = "invalid:bits", ("output_bits",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(bad, s, _dom(bad) if bad != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    return case(op, "pyops.int_gelu", kind, [x, scale, method, bits], names=names)


@st.composite
def pub_int_layernorm(draw, mode="valid"):
    op = "intops.int_layernorm"
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    n = s[-1]
    if dt == "int32" and draw(st.integers(0, 3)) == 0:  # accumulators near +-2^31
        edges = [-(2 ** 31), 2 ** 31 - 1, -(2 ** 31) + 1, 2 ** 31 - 2, 2 ** 30, -(2 ** 30), 0]
        x = draw(tensor(dt, s, Domain(st.sampled_from(edges), [{"dist": "pick", "values": edges}], edges)))
    else:
        x = _int_x(draw, dt, s)
    w = draw(tensor("float32", [n], float_finite(0.1, 3.0, specials=[1.0, 0.5, -1.0, 1e-3])))
    if n and "list" not in w["T"]["fill"]:
        w = list_tensor("float32", [n], [draw(st.one_of(st.floats(0.05, 3.0), st.floats(-3.0, -0.05)))
                                         for _ in range(n)])
    bias = draw(tensor("float32", [n], float_finite(-2, 2)))
    shift = draw(st.integers(0, 31)) if draw(st.booleans()) else 0
    method = draw(pick("exact", "newton"))
    kind = "valid:empty" if numel(s) == 0 else _layernorm_kind(x, shift)
    names = ()
    if mode == "weight":
        w = draw(tensor("float32", [n + 1], float_finite(0.5, 2)))
        kind, names = "invalid:weight", ("weight",)
    elif mode == "zero" and n:
        w = list_tensor("float32", [n], [0.0] + [1.0] * (n - 1))
        kind, names = "invalid:weight", ("weight",)
    elif mode == "shift":
        shift = draw(pick(-1, 32, 100))
        kind, names = "invalid:shift", ("shift",)
    elif mode == "isqrt":
        method = draw(pick("Exact", "sqrt", ""))
        kind, names = "invalid:isqrt", ("isqrt",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(bad, s, _dom(bad) if bad != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    return case(op, "pyops.int_layernorm", kind, [x, w, bias, shift, method], names=names)


@st.composite
def pub_requantize(draw, mode="valid"):
    op = "intops.requantize"
    dt = draw(st.sampled_from(INT_DT))
    s = _row_shape(draw)
    ch = s[-1]
    sin = F(draw(log_uniform(1e-8, 10.0)))
    if ch > 1 and draw(st.booleans()):
        sout = list_tensor("float64", [ch], [draw(log_uniform(1e-6, 10.0)) for _ in range(ch)])
    else:
        sout = F(draw(log_uniform(1e-8, 10.0)))
    bits = draw(st.integers(2, 32))
    x = _int_x(draw, dt, s)
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    # scale ratios past the dyadic range are rejected naming scale_out
    import torch

    ratio = torch.as_tensor(_plain(sin)) / torch.as_tensor(_plain(sout))
    m, e = iref.dyadic(ratio.reshape(-1))
    if not (bool((e > -32).all()) and bool((e < 63).all())):
        kind, names = "invalid:ratio", ("scale_out",)
    elif kind == "valid":
        kind = _requant_kind(dt, m.tolist(), e.tolist())
    if mode == "scale":
        which = draw(pick("scale_in", "scale_out"))
        bad = F(draw(pick(0.0, -1.0, float("nan"), float("inf"))))
        sin, sout = (bad, sout) if which == "scale_in" else (sin, bad)
        kind, names = "invalid:scale", (which,)
    elif mode == "bits":
        bits = draw(pick(1, 33, 0, 64))
        kind, names = "invalid:bits", ("bits",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(bad, s, _dom(bad) if bad != "float32" else float_finite()))
        kind, names = "invalid:dtype", ("x",)
    elif mode == "channels" and ch > 2:
        sout = list_tensor("float64", [ch - 1], [0.1] * (ch - 1))
        kind, names = "invalid:scale", ("scale_out",)
    return case(op, "pyops.requantize", kind, [x, sin, sout, bits], names=names)


def _plain(arg):
    from .spec import build

    return build(arg)


@st.composite
def pub_int_exp(draw, mode="valid"):
    op = "intops.int_exp"
    dt = draw(st.sampled_from(INT_DT))
    s = draw(shapes(1, 3, 6))
    x = _int_x(draw, dt, s, None, 0)
    scale = F(draw(log_uniform(3e-5, 1.6)))
    kind = "valid:empty" if numel(s) == 0 else "valid"
    names = ()
    if mode == "positive" and numel(s):
        x = list_tensor(dt, s, [draw(st.integers(1, 100))] + [0] * (numel(s) - 1))
        kind, names = "invalid:x-positive", ("x",)
    elif mode == "scale":
        scale = F(draw(pick(0.0, 2.0, 1e-6, float("nan"), -0.5)))
        kind, names = "invalid:scale", ("scale",)
    elif mode == "dtype":
        bad = draw(st.sampled_from(BAD_INT_DT))
        x = draw(tensor(bad, s, _dom(bad) if bad != "float32" else float_finite(-100, 0)))
        kind, names = "invalid:dtype", ("x",)
    return case(op, "pyops.int_exp", kind, [x, scale], names=names)


@st.composite
def pub_gaunt(draw, mode="valid"):
    op = "gaunt.gaunt_tensor_product"
    dt = draw(pick("float32", "float64"))
    l1, l2 = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    lo = draw(st.one_of(st.none(), st.integers(0, l1 + l2)))
    method = draw(pick("auto", "grid", "grid", "dense", "fourier"))
    c = draw(st.integers(0, 5))
    lead = draw(pick([], [2], [1, 3]))
    s1 = lead + [c, (l1 + 1) ** 2]
    s2 = (lead if draw(st.booleans()) else [1] * len(lead)) + [c if draw(st.booleans()) else 1, (l2 + 1) ** 2]
    dom = float_finite(-10, 10, scale=draw(pick(1.0, 1e-2, 1e2)))
    x1 = draw(tensor(dt, s1, dom))
    x2 = draw(tensor(dt, s2, dom))
    kw = {"lmax_out": lo, "method": method}
    lo_eff = l1 + l2 if lo is None else lo
    if draw(st.integers(0, 3)) == 0:
        kw["weight1"] = draw(tensor(dt, [l1 + 1], float_finite(-2, 2)))
        kw["weight_out"] = draw(tensor(dt, [lo_eff + 1], float_finite(-2, 2)))
    kind = "valid:empty" if 0 in s1 or 0 in s2 else "valid"
    names = ()
    if mode == "dtype":
        bad = draw(pick("float16", "int32", "bfloat16"))
        x1 = draw(tensor(bad, s1, _dom(bad)))
        x2 = draw(tensor(bad, s2, _dom(bad)))
        kind, names = "invalid:dtype", ("x1",)
    elif mode == "dim":
        which = draw(pick("x1", "x2"))
        bad = (lead + [c, draw(pick(2, 3, 5, 8, 0))])
        if which == "x1":
            x1 = draw(tensor(dt, bad, dom))
        else:
            x2 = draw(tensor(dt, bad, dom))
        kind, names = "invalid:dim", (which,)
    elif mode == "mixed":
        x2 = draw(tensor("float64" if dt == "float32" else "float32", s2, dom))
        kind, names = "invalid:dtype-mismatch", ("x2",)
    elif mode == "method":
        kw["method"] = draw(pick("Grid", "fft", ""))
        kind, names = "invalid:method", ("method",)
    elif mode == "lmax_out":
        kw["lmax_out"] = draw(pick(-1, l1 + l2 + 1, l1 + l2 + 5))
        kw.pop("weight_out", None)
        kind, names = "invalid:lmax_out", ("lmax_out",)
    elif mode == "broadcast" and c > 1:
        x2 = draw(tensor(dt, lead + [c + 1, (l2 + 1) ** 2], dom))
        kind, names = "invalid:broadcast", ("x2",)
    elif mode == "weight":
        kw["weight1"] = draw(tensor(dt, [l1 + 2], float_finite(-2, 2)))
        kind, names = "invalid:weight", ("weight1",)
    return case(op, "pyops.gaunt.gaunt_tensor_product", kind, [x1, x2], kw, names=names)


# op -> (mode -> strategy, {mode: weight}); "valid" draws the op's valid domain, every other
# mode one kind of bad (or undocumented) input.  run.generate splits each op's budget over the
# modes by weight (at least one case per mode once the budget allows).
def _modes(*names, valid=6, **weights):
    return {"valid": valid, **{n: 1 for n in names}, **weights}


_PAM_BIN = _modes("dtype", "mixed", "shape", "offset")
STRATEGIES = {
    "pam_mul": (lambda m: pam_binary("pam_mul", True, m), _PAM_BIN),
    "pam_div": (lambda m: pam_binary("pam_div", False, m), _modes("dtype", "mixed", "shape")),
    "pam_mul_grad_factor": (lambda m: pam_binary("pam_mul_grad_factor", True, m), _PAM_BIN),
    "pam_exp2": (lambda m: pam_unary("pam_exp2", m), _modes("dtype")),
    "pam_log2": (lambda m: pam_unary("pam_log2", m), _modes("dtype")),
    "pam_bmm": (lambda m: pam_bmm("pam_bmm", m), _modes("dtype", "dims", "mismatch", "offset")),
    "pam_bmm_exact_grad": (lambda m: pam_bmm("pam_bmm_exact_grad", m),
                           _modes("dtype", "dims", "mismatch", "offset", "grad", "graddtype")),
    # (bits=True is not a case for the raw ops: torch's dispatcher passes it to the kernels as 1)
    "fewbit_encode": (lambda m: fewbit_encode("fewbit_encode", m), _modes("bits", "borders", "dtype", "unsorted")),
    "fewbit_forward": (lambda m: fewbit_encode("fewbit_forward", m),
                       _modes("bits", "borders", "dtype", "unsorted", "fn")),
    "fewbit_backward": (lambda m: fewbit_backward("fewbit_backward", m),
                        _modes("codes", "levels", "bits", "dtype", "levelsdtype")),
    "intops_exp": (lambda m: intops_exp("intops_exp", m), _modes("positive", "dtype", constants=2)),
    "intops_softmax": (lambda m: intops_softmax("intops_softmax", m),
                       _modes("bits", "method", "dtype", "scalar", constants=2)),
    "intops_gelu": (lambda m: intops_gelu("intops_gelu", m),
                    _modes("constdtype", "constshape", "dtype", "arbitrary", "scalar")),
    "intops_shiftgelu": (lambda m: intops_shiftgelu("intops_shiftgelu", m), _modes("bits", "dtype", x0=2)),
    "intops_layernorm": (lambda m: intops_layernorm("intops_layernorm", m),
                         _modes("shift", "isqrt", "bias", "dtype")),
    "intops_isqrt": (lambda m: intops_isqrt("intops_isqrt", m), _modes("negative", "dtype")),
    "intops_requantize": (lambda m: intops_requantize("intops_requantize", m),
                          _modes("m", "e", "bits", "constdtype", "dtype")),
    "gaunt_grid_product": (lambda m: gaunt_grid_product("gaunt_grid_product", m),
                           _modes("dtype", "dim", "rows", "lmax_out", "table", "weights", "mixed", "nonfinite")),
    "wavehax_harmonic_prior": (lambda m: wavehax_harmonic_prior("wavehax_harmonic_prior", m),
                               _modes("f0", "hop", "sr", "noise", "phase0", "pf", "f0shape")),
    "wavehax_convnext2d_block": (lambda m: wavehax_block("wavehax_convnext2d_block", m),
                                 _modes("dtype", "xdims", "kernel", "pad", "hidden", "pw2", "wdtype", "vector",
                                        "nonfinite")),
    "pam.mul": (lambda m: pub_pam_mul(m), _modes("offset", "backward", "dtype", "shape", "number")),
    "pam.matmul": (lambda m: pub_pam_matmul(m), _modes("k", "batch", "scalar", "dtype", "offset")),
    "pam.softmax": (lambda m: pub_pam_softmax(m), _modes("dim", "dtype")),
    "pam.layer_norm": (lambda m: pub_pam_layer_norm(m), _modes("shape", "dtype", "weight")),
    "fewbit.fn": (lambda m: pub_fewbit(m), _modes("bits", "weight", "dtype")),
    "intops.int_softmax": (lambda m: pub_int_softmax(m), _modes("scale", "bits", "method", "dtype", "scalar")),
    "intops.int_gelu": (lambda m: pub_int_gelu(m), _modes("scale", "method", "bits", "dtype")),
    "intops.int_layernorm": (lambda m: pub_int_layernorm(m), _modes("weight", "shift", "isqrt", "dtype", "zero")),
    "intops.requantize": (lambda m: pub_requantize(m), _modes("scale", "bits", "dtype", "channels")),
    "intops.int_exp": (lambda m: pub_int_exp(m), _modes("positive", "scale", "dtype")),
    "gaunt.gaunt_tensor_product": (lambda m: pub_gaunt(m),
                                   _modes("dtype", "dim", "mixed", "method", "lmax_out", "broadcast", "weight",
                                          valid=7)),
    "wavehax.harmonic_prior": (lambda m: wavehax_harmonic_prior("wavehax.harmonic_prior", m, public=True),
                               _modes("f0", "hop", "sr", "noise", "phase0", "pf", "f0shape")),
}
