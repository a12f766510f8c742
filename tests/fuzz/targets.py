"""What a worker calls for (op, path).  Imported in the workers only (it imports triton).

Paths:
  * "cpp":       ``torch.ops.pyops.<op>`` on CPU tensors (the C++ kernel), or the public function
                 as it ships;
  * "triton":    the family's launcher ``pyops.kernels.<family>.<fn>`` on CPU tensors
                 (``TRITON_INTERPRET=1``); public functions run with their module's raw-op handles
                 (``pyops.<family>._mul`` ...) pointed at the launchers;
  * "reference": the op's reference with its argument check, as it serves the raw op when
                 ``pyops._C`` is missing (``pyops._library.FALLBACKS``); public functions with the
                 handles pointed there;
  * "oracle":    not a backend: the float64 result and an error bound the comparisons use.
"""

from __future__ import annotations

import contextlib
import importlib
import math

import torch

import pyops
from pyops import _library
from pyops import fewbit as pfewbit
from pyops.reference import gaunt as rgaunt
from pyops.reference import pam as rpam
from pyops.reference import wavehax as rwavehax

# raw op -> (family, launcher name); the reference path is what serves the raw op without _C
RAW = {
    "pam_mul": ("pam", "mul"),
    "pam_div": ("pam", "div"),
    "pam_mul_grad_factor": ("pam", "mul_grad_factor"),
    "pam_exp2": ("pam", "exp2"),
    "pam_log2": ("pam", "log2"),
    "pam_bmm": ("pam", "bmm"),
    "pam_bmm_exact_grad": ("pam", "bmm_exact_grad"),
    "fewbit_encode": ("fewbit", "encode"),
    "fewbit_forward": ("fewbit", "forward"),
    "fewbit_backward": ("fewbit", "backward"),
    "intops_exp": ("intops", "int_exp"),
    "intops_softmax": ("intops", "softmax"),
    "intops_gelu": ("intops", "gelu"),
    "intops_shiftgelu": ("intops", "shiftgelu"),
    "intops_layernorm": ("intops", "layernorm"),
    "intops_isqrt": ("intops", "isqrt"),
    "intops_requantize": ("intops", "requantize"),
    "gaunt_grid_product": ("gaunt", "grid_product"),
    "wavehax_harmonic_prior": ("wavehax", "harmonic_prior"),
    "wavehax_convnext2d_block": ("wavehax", "convnext2d_block"),
}

# public module -> {module global holding a raw op: raw op name}
HANDLES = {
    "pam": {"_mul": "pam_mul", "_div": "pam_div", "_grad_factor": "pam_mul_grad_factor", "_exp2": "pam_exp2",
            "_log2": "pam_log2", "_bmm": "pam_bmm", "_bmm_exact_grad": "pam_bmm_exact_grad"},
    "fewbit": {"_encode": "fewbit_encode", "_forward": "fewbit_forward", "_backward": "fewbit_backward"},
    "intops": {"_exp": "intops_exp", "_softmax": "intops_softmax", "_gelu": "intops_gelu",
               "_shiftgelu": "intops_shiftgelu", "_layernorm": "intops_layernorm", "_isqrt": "intops_isqrt",
               "_requantize": "intops_requantize"},
    "gaunt": {"_grid_product": "gaunt_grid_product"},
    "wavehax": {"_prior": "wavehax_harmonic_prior", "_block": "wavehax_convnext2d_block"},
}


def raw(op: str, path: str):
    family, name = RAW[op]
    if path == "cpp":
        return getattr(torch.ops.pyops, op)
    if path == "triton":
        return getattr(importlib.import_module(f"pyops.kernels.{family}"), name)
    if path == "reference":
        return _library.FALLBACKS[op]
    raise KeyError(path)


@contextlib.contextmanager
def handles(family: str, path: str):
    """Point the public module's raw-op handles at ``path``'s callables for the duration."""
    if path == "cpp":
        yield
        return
    module = importlib.import_module(f"pyops.{family}")
    saved = {g: getattr(module, g) for g in HANDLES[family]}
    try:
        for g, op in HANDLES[family].items():
            setattr(module, g, raw(op, path))
        yield
    finally:
        for g, v in saved.items():
            setattr(module, g, v)


def _fewbit_public(x, bits=3, weight="uniform", *, fn, grad):
    if x.is_floating_point():
        x = x.detach().requires_grad_(True)  # same storage and strides, a leaf
    y = getattr(pfewbit, fn)(x, bits=bits, weight=weight)
    if not x.requires_grad:
        return (y,)
    y.backward(grad)
    return y.detach(), x.grad


PUBLIC = {
    "pam.mul": ("pam", lambda: pyops.pam.mul),
    "pam.matmul": ("pam", lambda: pyops.pam.matmul),
    "pam.softmax": ("pam", lambda: pyops.pam.softmax),
    "pam.layer_norm": ("pam", lambda: pyops.pam.layer_norm),
    "fewbit.fn": ("fewbit", lambda: _fewbit_public),
    "intops.int_softmax": ("intops", lambda: pyops.int_softmax),
    "intops.int_gelu": ("intops", lambda: pyops.int_gelu),
    "intops.int_layernorm": ("intops", lambda: pyops.int_layernorm),
    "intops.requantize": ("intops", lambda: pyops.requantize),
    "intops.int_exp": ("intops", lambda: pyops.int_exp),
    "gaunt.gaunt_tensor_product": ("gaunt", lambda: pyops.gaunt.gaunt_tensor_product),
    "wavehax.harmonic_prior": ("wavehax", lambda: pyops.wavehax.harmonic_prior),
}


def call(op: str, path: str, args, kwargs):
    if op.startswith("selftest."):  # the harness's own test: a call that crashes, hangs or returns
        return _selftest(op)
    if op in RAW:
        if path == "oracle":
            return ORACLES[op](*args, **kwargs)
        return raw(op, path)(*args, **kwargs)
    family, fn = PUBLIC[op]
    if path == "oracle":
        return ORACLES[op](*args, **kwargs)
    with handles(family, path):
        return fn()(*args, **kwargs)


def _selftest(op: str):
    import os
    import signal
    import time

    if op == "selftest.crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if op == "selftest.hang":
        time.sleep(3600)
    return torch.ones(1)


# ------------------------------------------------------------------ oracles
EPS = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def _bmm_oracle(a, b, offset=1.0, exact_grad=False):
    """The magnitude sum S[i, j] = sum_k |PAM(a_ik, b_kj)| (float64): a reordered float sum of
    those products differs from the sequential one by at most ~k eps S."""
    ct = torch.float32 if a.dtype != torch.float64 else torch.float64
    acc = torch.zeros(a.shape[0], a.shape[1], b.shape[2], dtype=torch.float64)
    for k in range(a.shape[2]):
        p = rpam.mul(a[:, :, k, None].to(ct), b[:, None, k, :].to(ct), rpam._round_offset(offset, a.dtype))
        acc = acc + p.double().abs()
    return (acc,)


def _bmm_exact_grad_oracle(grad, a, b, offset=1.0):
    ct = torch.float32 if a.dtype != torch.float64 else torch.float64
    off = rpam._round_offset(offset, a.dtype)
    g, a, b = grad.to(ct), a.to(ct), b.to(ct)
    ga = torch.zeros(a.shape, dtype=torch.float64)
    for j in range(b.shape[2]):
        ga += rpam.mul(g[:, :, j, None], rpam.mul_grad_factor(a, b[:, None, :, j], off)).double().abs()
    gb = torch.zeros(b.shape, dtype=torch.float64)
    for i in range(a.shape[1]):
        gb += rpam.mul(g[:, i, None, :], rpam.mul_grad_factor(b, a[:, i, :, None], off)).double().abs()
    return ga, gb


def _matmul_oracle(a, b, offset=1.0, backward="pam"):
    a2 = a.unsqueeze(0) if a.dim() == 1 else a
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b
    batch = torch.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    n, k, m = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    a3 = a2.expand(*batch, n, k).reshape(math.prod(batch), n, k)
    b3 = b2.expand(*batch, k, m).reshape(math.prod(batch), k, m)
    (s,) = _bmm_oracle(a3, b3, offset)
    s = s.reshape(*batch, n, m)
    if a.dim() == 1:
        s = s.squeeze(-2)
    if b.dim() == 1:
        s = s.squeeze(-1)
    return (s,)


def _grid_oracle(x1, x2, table, weights, lmax_out):
    """(the product in float64, a bound on any float evaluation's error scale, the row's largest
    operand grid value, the row's largest grid product): B[n, i] = sum_k |w_k| |T_ki| A1_k A2_k with
    A_k = sum_j |T_kj| |x_j|; an evaluation holds each operand's grid values (<= A_k) and their
    products (<= A1_k A2_k)."""
    out = rgaunt.grid_product(x1.double(), x2.double(), table.double(), weights.double(), lmax_out)
    d_out = (lmax_out + 1) ** 2
    t = table.double().abs()
    a1 = x1.double().abs() @ t[:, : x1.shape[1]].T  # [N, K]
    a2 = x2.double().abs() @ t[:, : x2.shape[1]].T
    bound = torch.einsum("nk,nk,ki,k->ni", a1, a2, t[:, :d_out], weights.double().abs())
    return out, bound, torch.maximum(a1, a2).amax(1), (a1 * a2).amax(1)


def _gaunt_public_oracle(x1, x2, lmax_out=None, *, weight1=None, weight2=None, weight_out=None, method="auto"):
    """The float64 direct contraction with the exact Gaunt tensor, and sum |G| |x1| |x2|."""
    l1, l2 = math.isqrt(x1.shape[-1]) - 1, math.isqrt(x2.shape[-1]) - 1
    lo = l1 + l2 if lmax_out is None else lmax_out

    def rep(w, lmax):
        return w.double().repeat_interleave(torch.tensor([2 * l + 1 for l in range(lmax + 1)]), dim=-1)

    a, b = x1.double(), x2.double()
    if weight1 is not None:
        a = a * rep(weight1, l1)
    if weight2 is not None:
        b = b * rep(weight2, l2)
    G = rgaunt.gaunt_tensor(l1, l2, lo).double()
    out = torch.einsum("...i,...j,ijk->...k", a, b, G)
    bound = torch.einsum("...i,...j,ijk->...k", a.abs(), b.abs(), G.abs())
    if weight_out is not None:
        out = out * rep(weight_out, lo)
        bound = bound * rep(weight_out, lo).abs()
    norms = (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)) / math.sqrt(4 * math.pi)
    if weight_out is not None:
        norms = norms * weight_out.double().abs().amax(-1, keepdim=True)
    scale = torch.maximum(bound.amax(-1, keepdim=True) if bound.numel() else bound, norms)
    return out, scale.expand_as(out)


def _prior_oracle(f0, noise, phase0, hop_length, sample_rate, power_factor=0.1):
    """(reference, bound): |d S / d theta| <= K (K + 1) / 2 for S = sum_k sin(k theta); a float64
    phase carried over T samples is off by ~T eps (1 + |cycles|); |S| <= K anyway."""
    ref = rwavehax.harmonic_prior(f0, noise, phase0, hop_length, sample_rate, power_factor)
    if noise.numel() == 0:
        return ref, torch.zeros_like(ref)
    k, amp = rwavehax.harmonic_counts(f0, sample_rate, power_factor)
    k, amp = (torch.repeat_interleave(v, hop_length, dim=2) for v in (k, amp))
    radius = torch.repeat_interleave(f0, hop_length, dim=2).double() / sample_rate
    cycles = phase0.double().reshape(-1, 1, 1).abs() + torch.cumsum(radius, dim=2)
    t = noise.shape[-1]
    dtheta = 2 * math.pi * 2.0 ** -52 * 4 * (t + 8) * (1 + cycles)
    bound = amp.abs() * torch.minimum(k * (k + 1) / 2 * dtheta, 2 * (k + 1)) + 4 * 2.0 ** -24 * (
        ref.double().abs() + noise.double().abs()) + 1e-37
    return ref, bound


def _prior_public_oracle(f0, hop_length, sample_rate, noise, phase0, power_factor=0.1):
    return _prior_oracle(f0, noise, phase0, hop_length, sample_rate, power_factor)


def _block_oracle(x, dw, nw, nb, pw1, b1, pw2, b2, ls, eps, framewise):
    """(float64 reference, error scale): a float evaluation's error, propagated layer by layer
    with magnitudes (the norm amplifies the conv's rounding by max|h| / sqrt(var + eps))."""
    d = lambda t: t.double()  # noqa: E731
    out = rwavehax.convnext2d_block(d(x), d(dw), d(nw), d(nb), d(pw1), d(b1), d(pw2), d(b2), d(ls), eps, framewise)
    if x.numel() == 0:
        return out, torch.zeros_like(out)
    c, k = x.shape[-1], dw.shape[-1]
    xd = d(x).permute(0, 3, 1, 2)
    h = torch.nn.functional.conv2d(torch.nn.functional.pad(xd, (k // 2,) * 4, mode="reflect"), d(dw), groups=c)
    hmag = torch.nn.functional.conv2d(torch.nn.functional.pad(xd.abs(), (k // 2,) * 4, mode="reflect"), d(dw).abs(),
                                      groups=c)
    dims = [1, 2] if framewise else [1, 2, 3]
    hc = h - h.mean(dims, keepdim=True)
    std = torch.sqrt((hc ** 2).mean(dims, keepdim=True) + eps)
    amp = hmag.amax(dims, keepdim=True) / std + 1  # [B, 1, 1|T...]
    eps_x = EPS[x.dtype]
    n_terms = k * k + 2 * x.shape[1] * x.shape[2] * c + 8
    n_mag = amp * d(nw).abs().view(1, -1, 1, 1) + d(nb).abs().view(1, -1, 1, 1)  # [B, C, F, T]
    err_n = eps_x * n_terms * amp * d(nw).abs().view(1, -1, 1, 1)
    w1, w2 = d(pw1).abs(), d(pw2).abs()
    u_mag = torch.einsum("hc,bcft->bhft", w1, n_mag) + d(b1).abs().view(1, -1, 1, 1)
    err_u = torch.einsum("hc,bcft->bhft", w1, err_n) + eps_x * (c + 2) * u_mag
    o_mag = torch.einsum("ch,bhft->bcft", w2, 1.2 * u_mag) + d(b2).abs().view(1, -1, 1, 1)
    err_o = d(ls).abs().view(1, -1, 1, 1) * (torch.einsum("ch,bhft->bcft", w2, 1.2 * err_u)
                                             + eps_x * (w2.shape[1] + 4) * o_mag)
    err = err_o + eps_x * 2 * (xd.abs() + d(ls).abs().view(1, -1, 1, 1) * o_mag)
    # a norm group whose sum of squares can leave the dtype's range has no bound (may overflow)
    count = c * x.shape[1] * (1 if framewise else x.shape[2])  # elements per norm group
    overflow = (hmag.amax(dims, keepdim=True) ** 2 * count >= torch.finfo(x.dtype).max)
    err = torch.where(overflow, torch.full_like(err, math.inf), err)
    return out, err.permute(0, 2, 3, 1).contiguous()


def _fewbit_forward_oracle(x, borders, bits, fn):
    """torch's activation of x made contiguous (what the C++ fused forward runs torch's kernel on)."""
    return (pfewbit.FUNCTIONS[fn](x.contiguous()),)


def _fewbit_public_oracle(x, bits=3, weight="uniform", *, fn, grad):
    return (pfewbit.FUNCTIONS[fn](x.detach().contiguous()),)


ORACLES = {
    "fewbit_forward": _fewbit_forward_oracle,
    "fewbit.fn": _fewbit_public_oracle,
    "pam_bmm": _bmm_oracle,
    "pam_bmm_exact_grad": _bmm_exact_grad_oracle,
    "pam.matmul": _matmul_oracle,
    "gaunt_grid_product": _grid_oracle,
    "gaunt.gaunt_tensor_product": _gaunt_public_oracle,
    "wavehax_harmonic_prior": _prior_oracle,
    "wavehax.harmonic_prior": _prior_public_oracle,
    "wavehax_convnext2d_block": _block_oracle,
}
