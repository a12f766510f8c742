"""Cases as plain data: JSON-able dicts that a worker turns into tensors and a report prints.

A case is ``{"op", "kind", "expect", "args", "kwargs", ...}``; an argument is a JSON scalar, a
list, or a tensor spec ``{"T": {"dtype", "shape", "fill", "layout"}}``.  ``fill`` is either
``{"list": [...]}`` (the values, row-major, of the tensor before its layout is applied) or
``{"rand": seed, "dist": ..., ...}`` with ``"specials": [[flat index, value], ...]`` written over
the random values.  Floats that JSON cannot hold are written "nan", "inf", "-inf" (and "-0.0").
Layouts give the same values through a non-contiguous view: transposed, strided (every other
column of a wider tensor), offset (a storage offset), expanded (a stride-0 first dim: the
values of row 0 repeated) and channels_last (4-D).
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

DTYPES = {
    "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
    "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8,
    "bool": torch.bool, "complex64": torch.complex64,
}
LAYOUTS = ("contig", "transposed", "strided", "offset", "expanded", "channels_last")


def T(dtype: str, shape, fill, layout: str = "contig") -> dict:
    return {"T": {"dtype": dtype, "shape": list(shape), "fill": fill, "layout": layout}}


def is_tensor(arg) -> bool:
    return isinstance(arg, dict) and "T" in arg


def base_shape(spec: dict) -> list:
    """The shape of the values a fill describes (before the layout)."""
    shape = list(spec["shape"])
    if spec["layout"] == "expanded" and shape and shape[0] != 1:
        return [1] + shape[1:]
    return shape


def numel(shape) -> int:
    return math.prod(shape)


# ------------------------------------------------------------------ values
def decode_scalar(v):
    if isinstance(v, str):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0.0": -0.0}.get(v, v)
    return v


def encode_scalar(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0 and math.copysign(1.0, v) < 0:
            return "-0.0"
    return v


def _from_values(values, shape, dtype) -> torch.Tensor:
    vals = [decode_scalar(v) for v in values]
    if dtype.is_floating_point:
        return torch.tensor(vals, dtype=torch.float64).to(dtype).reshape(shape)
    if dtype == torch.bool:
        return torch.tensor([bool(v) for v in vals], dtype=torch.bool).reshape(shape)
    if dtype.is_complex:
        return torch.tensor(vals, dtype=torch.float64).to(dtype).reshape(shape)
    return torch.tensor([int(v) for v in vals], dtype=torch.int64).to(dtype).reshape(shape)


def _random(fill: dict, shape, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(fill["rand"]))
    n = numel(shape)
    dist = fill.get("dist", "normal")
    if dist == "normal":
        v = torch.randn(n, generator=g, dtype=torch.float64) * float(fill.get("scale", 1.0))
        v = v + float(fill.get("mean", 0.0))
    elif dist == "uniform":
        lo, hi = float(fill["lo"]), float(fill["hi"])
        v = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    elif dist == "wide":  # random sign, log-uniform magnitude over [2^emin, 2^emax] (subnormals to overflow)
        emin, emax = float(fill["emin"]), float(fill["emax"])
        e = emin + (emax - emin) * torch.rand(n, generator=g, dtype=torch.float64)
        sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
        v = sign * torch.exp2(e)
    elif dist == "int":  # uniform integers in [lo, hi]
        lo, hi = int(fill["lo"]), int(fill["hi"])
        if hi - lo < 2 ** 62:
            v = lo + torch.randint(0, hi - lo + 1, (n,), generator=g, dtype=torch.int64)
        else:  # the full int64 range
            v = torch.randint(-2 ** 63, 2 ** 63 - 1, (n,), generator=g, dtype=torch.int64)
        v = v.clamp(lo, hi)
    elif dist == "pick":  # each element one of the listed values
        choices = [decode_scalar(c) for c in fill["values"]]
        idx = torch.randint(0, len(choices), (n,), generator=g)
        if all(isinstance(c, int) for c in choices):
            v = torch.tensor(choices, dtype=torch.int64)[idx]
        else:
            v = torch.tensor([float(c) for c in choices], dtype=torch.float64)[idx]
    elif dist == "bytes":
        v = torch.randint(0, 256, (n,), generator=g, dtype=torch.int64)
    elif dist == "const":
        c = decode_scalar(fill["value"])
        v = torch.full((n,), c, dtype=torch.int64 if isinstance(c, int) else torch.float64)
    else:
        raise ValueError(f"unknown dist {dist!r}")
    if v.dtype == torch.int64 and dtype.is_floating_point:
        v = v.double()
    for idx, val in fill.get("specials", []):
        if n:
            val = decode_scalar(val)
            if isinstance(val, float) and v.dtype == torch.int64:
                v = v.double()
            v[int(idx) % n] = val
    if dtype.is_floating_point or dtype.is_complex:
        return v.double().to(dtype).reshape(shape)
    if dtype == torch.bool:
        return (v != 0).reshape(shape)
    if v.dtype != torch.int64:
        v = v.to(torch.int64)
    return v.to(dtype).reshape(shape)


def build_tensor(spec: dict) -> torch.Tensor:
    dtype, shape, layout = DTYPES[spec["dtype"]], list(spec["shape"]), spec["layout"]
    bshape = base_shape(spec)
    fill = spec["fill"]
    v = _from_values(fill["list"], bshape, dtype) if "list" in fill else _random(fill, bshape, dtype)
    if layout == "contig" or v.dim() == 0:
        return v.contiguous()
    if layout == "transposed":
        return v.transpose(-1, -2).contiguous().transpose(-1, -2) if v.dim() >= 2 else v
    if layout == "strided":
        wide = torch.zeros(*shape[:-1], 2 * shape[-1], dtype=dtype)
        wide[..., ::2] = v
        return wide[..., ::2]
    if layout == "offset":
        buf = torch.zeros(v.numel() + 3, dtype=dtype)
        buf[3:] = v.reshape(-1)
        return buf[3:].view(shape)
    if layout == "expanded":
        return v.expand(shape)
    if layout == "channels_last":
        return v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
    raise ValueError(f"unknown layout {layout!r}")


def build(arg: Any):
    """A case argument (tree) -> the Python object passed to the op."""
    if is_tensor(arg):
        return build_tensor(arg["T"])
    if isinstance(arg, dict) and "tuple" in arg:
        return tuple(build(a) for a in arg["tuple"])
    if isinstance(arg, dict) and "float" in arg:
        return float(decode_scalar(arg["float"]))
    if isinstance(arg, dict) and "table" in arg:  # a shipped fewbit table: [fn, bits, weight, part]
        from pyops import fewbit

        fn, bits, weight, part = arg["table"]
        return fewbit.table(fn, bits, weight)[0 if part == "borders" else 1].clone()
    if isinstance(arg, dict) and ("gaunt_table" in arg or "gaunt_weights" in arg):
        return gaunt_tables(*(arg.get("gaunt_table") or arg["gaunt_weights"]))["gaunt_table" not in arg]
    if isinstance(arg, list):
        return [build(a) for a in arg]
    if isinstance(arg, dict):
        return {k: build(v) for k, v in arg.items()}
    return arg


def gaunt_tables(l1: int, l2: int, lmax_out: int, dtype: str):
    """(table, weights) of pyops.gaunt's grid route for one product (what _GridProduct passes)."""
    from pyops.reference import gaunt as gref

    z, w = gref.grid_nodes(l1 + l2 + max(lmax_out, 0))
    table = gref.grid_table(max(l1, l2, lmax_out), z)
    return torch.tensor(table, dtype=DTYPES[dtype]), torch.tensor(w, dtype=DTYPES[dtype])


def build_call(case: dict):
    return [build(a) for a in case["args"]], {k: build(v) for k, v in case.get("kwargs", {}).items()}


# ------------------------------------------------------------------ printing
def _fmt_fill(fill: dict) -> str:
    if "list" in fill:
        return "[" + ", ".join(_fmt_scalar(v) for v in fill["list"]) + "]"
    extra = {k: v for k, v in fill.items() if k not in ("rand", "specials")}
    s = f"rand(seed={fill['rand']}, " + ", ".join(f"{k}={v!r}" for k, v in extra.items()) + ")"
    if fill.get("specials"):
        s += " with " + ", ".join(f"[{i}]={_fmt_scalar(v)}" for i, v in fill["specials"])
    return s


def _fmt_scalar(v) -> str:
    v = decode_scalar(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return f"float('{v}')"
        if v == 0 and math.copysign(1.0, v) < 0:
            return "-0.0"
        if v != 0 and (abs(v) >= 2 ** 40 or abs(v) < 2 ** -20) and math.frexp(abs(v))[0] == 0.5:
            e = math.frexp(abs(v))[1] - 1
            return f"{'-' if v < 0 else ''}2.0**{e}"
        return repr(v)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2 ** 20:
        for base in (2 ** 31, 2 ** 63, 2 ** 15, 2 ** 7):
            for d in (-1, 0, 1):
                if abs(v) == base + d:
                    b = int(math.log2(base))
                    s = f"2**{b}" + ("" if d == 0 else f"{d:+d}")
                    return f"-({s})" if v < 0 else s
        if v & (v - 1) == 0 and v > 0:
            return f"2**{v.bit_length() - 1}"
    return repr(v)


def fmt_arg(arg) -> str:
    if is_tensor(arg):
        t = arg["T"]
        s = f"{t['dtype']}{list(t['shape'])} {_fmt_fill(t['fill'])}"
        if t["layout"] != "contig":
            s += f" ({t['layout']})"
        return "<" + s + ">"
    if isinstance(arg, dict) and "tuple" in arg:
        return "(" + ", ".join(fmt_arg(a) for a in arg["tuple"]) + ")"
    if isinstance(arg, dict) and "float" in arg:
        return _fmt_scalar(arg["float"])
    if isinstance(arg, dict) and "table" in arg:
        fn, bits, weight, part = arg["table"]
        return f"pyops.fewbit.table({fn!r}, {bits}, {weight!r})[{0 if part == 'borders' else 1}]"
    if isinstance(arg, dict) and ("gaunt_table" in arg or "gaunt_weights" in arg):
        which = "table" if "gaunt_table" in arg else "weights"
        key = tuple(arg.get("gaunt_table") or arg["gaunt_weights"])
        return f"<gaunt grid {which} for (lmax1, lmax2, lmax_out, dtype)={key}>"
    if isinstance(arg, list):
        return "[" + ", ".join(fmt_arg(a) for a in arg) + "]"
    return _fmt_scalar(arg)


def fmt_call(case: dict) -> str:
    parts = [fmt_arg(a) for a in case["args"]]
    parts += [f"{k}={fmt_arg(v)}" for k, v in case.get("kwargs", {}).items()]
    return f"{case['call']}({', '.join(parts)})"


def dumps(case: dict) -> str:
    return json.dumps(case, sort_keys=True, separators=(",", ":"))


def loads(text: str) -> dict:
    return json.loads(text)
