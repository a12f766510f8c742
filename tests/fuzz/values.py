"""Hypothesis strategies for the building blocks of cases: shapes, hostile values, tensor specs."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import torch

from .spec import DTYPES, T, encode_scalar, numel

FLOAT_BITS = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}  # hypothesis float widths
# log2 of the smallest subnormal and of the overflow threshold
EXP_RANGE = {"float16": (-24, 16), "bfloat16": (-133, 128), "float32": (-149, 128), "float64": (-1074, 1024)}


def float_specials(dtype: str) -> list:
    fi = torch.finfo(DTYPES[dtype])
    sub = 2.0 ** EXP_RANGE[dtype][0]
    vals = ["nan", "inf", "-inf", 0.0, "-0.0", 1.0, -1.0, 2.0, 0.5, -3.0, 1.5, 0.75,
            fi.tiny, -fi.tiny, fi.max, -fi.max, sub, -sub, fi.tiny / 2, -fi.tiny * 0.75, fi.max / 2,
            1.0 + fi.eps, 1.0 - fi.eps / 2, 2.0 ** 60, 2.0 ** -60]
    return [encode_scalar(float(v)) if not isinstance(v, str) else v for v in vals]


def int_specials(lo: int, hi: int) -> list:
    vals = {lo, hi, lo + 1, hi - 1, 0, -1, 1, 2, -2, lo // 2, hi // 2}
    return sorted(v for v in vals if lo <= v <= hi)


def int_range(dtype: str):
    info = torch.iinfo(DTYPES[dtype])
    return info.min, info.max


# ------------------------------------------------------------------ shapes
@st.composite
def shapes(draw, min_dims=0, max_dims=4, max_side=6, empty=True):
    n = draw(st.integers(min_dims, max_dims))
    sides = [draw(st.integers(1, max_side)) for _ in range(n)]
    if empty and n and draw(st.integers(0, 7)) == 0:
        sides[draw(st.integers(0, n - 1))] = 0
    return sides


def layouts(shape, allow_expand=True):
    opts = ["contig", "contig", "transposed", "strided", "offset"]
    if allow_expand:
        opts.append("expanded")
    if len(shape) == 4:
        opts.append("channels_last")
    return st.sampled_from(opts)


# ------------------------------------------------------------------ values
class Domain:
    """What values a tensor may hold: explicit-element strategy, random dists, specials."""

    def __init__(self, element, dists, specials):
        self.element, self.dists, self.specials = element, dists, specials


def float_any(dtype: str) -> Domain:
    emin, emax = EXP_RANGE[dtype]
    width = FLOAT_BITS[dtype]
    element = st.one_of(st.sampled_from(float_specials(dtype)),
                        st.floats(width=width, allow_nan=True, allow_infinity=True).map(encode_scalar))
    dists = [{"dist": "wide", "emin": emin, "emax": emax}, {"dist": "normal", "scale": 1.0},
             {"dist": "normal", "scale": 1e3}, {"dist": "wide", "emin": -30, "emax": 30},
             {"dist": "pick", "values": float_specials(dtype)}]
    return Domain(element, dists, float_specials(dtype))


def float_finite(lo=-1e3, hi=1e3, scale=1.0, specials=(0.0, "-0.0", 1.0, -1.0)) -> Domain:
    element = st.one_of(st.sampled_from(list(specials)),
                        st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(encode_scalar))
    dists = [{"dist": "normal", "scale": scale}, {"dist": "uniform", "lo": lo, "hi": hi},
             {"dist": "normal", "scale": scale * 1e-3}]
    return Domain(element, dists, list(specials))


def ints(lo: int, hi: int) -> Domain:
    sp = int_specials(lo, hi)
    element = st.one_of(st.sampled_from(sp), st.integers(lo, hi))
    dists = [{"dist": "int", "lo": lo, "hi": hi}, {"dist": "pick", "values": sp},
             {"dist": "int", "lo": max(lo, -300), "hi": min(hi, 300)}]
    return Domain(element, dists, sp)


@st.composite
def fill(draw, n: int, domain: Domain, max_list=12):
    if n <= max_list and draw(st.booleans()):
        return {"list": [draw(domain.element) for _ in range(n)]}
    f = {"rand": draw(st.integers(0, 2 ** 31 - 1)), **draw(st.sampled_from(domain.dists))}
    if n and domain.specials and draw(st.booleans()):
        k = draw(st.integers(1, 3))
        f["specials"] = [[draw(st.integers(0, max(n - 1, 0))), draw(st.sampled_from(domain.specials))]
                         for _ in range(k)]
    return f


@st.composite
def tensor(draw, dtype, shape, domain: Domain, layout=None, allow_expand=True):
    """A tensor spec; ``layout`` None draws one."""
    shape = list(shape)
    lay = layout if layout is not None else draw(layouts(shape, allow_expand))
    spec = {"dtype": dtype, "shape": shape, "layout": lay}
    b = shape if not (lay == "expanded" and shape and shape[0] != 1) else [1] + shape[1:]
    spec["fill"] = draw(fill(numel(b), domain))
    return T(dtype, shape, spec["fill"], lay)


def const_tensor(dtype, shape, value, layout="contig"):
    return T(dtype, shape, {"rand": 0, "dist": "const", "value": encode_scalar(value)}, layout)


def list_tensor(dtype, shape, values, layout="contig"):
    return T(dtype, shape, {"list": [encode_scalar(v) for v in values]}, layout)


def log_uniform(lo: float, hi: float):
    return st.floats(math.log(lo), math.log(hi)).map(lambda v: min(max(math.exp(v), lo), hi))


def pick(*options):
    return st.sampled_from(list(options))
