"""csrc/cuda run on the CPU: ctypes over the emulation library (build.py, abi.cpp), with
one Python function per CUDA binding (csrc/cuda/*_binding.cpp) doing what that binding
does around its launcher: contiguous inputs, compute dtype, output allocation. Launch
parameters are chosen by the launchers themselves (csrc/cuda/*.cu, and node_pair_splits in
gaunt.cuh, which the binding calls too), so this is the GPU's launch path.

A failed launch (CUDA's limits) raises LaunchError with the CUDA error code.
"""

import ctypes
import os

import torch

import build

_P, _I, _L, _D, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double, ctypes.c_float
_lib = None

CUDA_ERRORS = {1: "cudaErrorInvalidValue", 9: "cudaErrorInvalidConfiguration", 701: "cudaErrorLaunchOutOfResources"}


class LaunchError(RuntimeError):
    def __init__(self, code: int):
        super().__init__(f"CUDA launch failed: {CUDA_ERRORS.get(code, code)}")
        self.code = code


def lib():
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(str(build.build(os.environ.get("PYOPS_EMU_VARIANT", "plain"))))
    return _lib


class dry_run:
    """Launches inside check CUDA's limits but run nothing: for shapes too large to emulate."""

    def __enter__(self):
        lib().emu_set_dry_run(1)

    def __exit__(self, *exc):
        lib().emu_set_dry_run(0)


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else None


def _call(name, *args):
    fn = getattr(lib(), name)
    fn.restype = ctypes.c_int
    conv = []
    for a in args:
        if isinstance(a, torch.Tensor):
            conv.append(_ptr(a))
        elif isinstance(a, bool):
            conv.append(_I(int(a)))
        elif isinstance(a, int):
            conv.append(_L(a))
        elif isinstance(a, tuple):  # (ctypes type, value)
            conv.append(a[0](a[1]))
        else:
            conv.append(a)
    err = fn(*conv)
    if err:
        raise LaunchError(err)


def _sfx(dtype):
    return {torch.float32: "f32", torch.float64: "f64", torch.int8: "i8", torch.int16: "i16", torch.int32: "i32"}[dtype]


def _scalar(dtype, v):
    return (_F if dtype == torch.float32 else _D, v)


# ---- pam (pam_binding.cpp) ----
_PAM_BINARY = {"mul": 0, "div": 1, "mul_grad_factor": 2}


def _pam_ct(t):
    return torch.float32 if t.dtype == torch.bfloat16 else t.dtype


def _pam_offset(offset, t):
    return float(torch.tensor(offset, dtype=torch.bfloat16)) if t.dtype == torch.bfloat16 else offset


def pam_binary(kind, a_, b_, offset=1.0):
    ct = _pam_ct(a_)
    shape = torch.broadcast_shapes(a_.shape, b_.shape)
    a, b = (t.to(ct).expand(shape).contiguous() for t in (a_, b_))
    out = torch.empty_like(a)
    _call(f"pam_binary_{_sfx(ct)}", _PAM_BINARY[kind], a, b, out, out.numel(), _scalar(ct, _pam_offset(offset, a_)))
    return out.to(a_.dtype)


def pam_unary(kind, x_):
    x = x_.to(_pam_ct(x_)).contiguous()
    out = torch.empty_like(x)
    _call(f"pam_unary_{_sfx(x.dtype)}", {"exp2": 0, "log2": 1}[kind], x, out, x.numel())
    return out.to(x_.dtype)


def pam_bmm(a_, b_, offset=1.0):
    ct = _pam_ct(a_)
    a, b = a_.to(ct).contiguous(), b_.to(ct).contiguous()
    out = torch.zeros(a.shape[0], a.shape[1], b.shape[2], dtype=ct)
    _call(f"pam_bmm_{_sfx(ct)}", a, b, out, a.shape[0], a.shape[1], a.shape[2], b.shape[2],
          _scalar(ct, _pam_offset(offset, a_)))
    return out.to(a_.dtype)


def pam_bmm_exact_grad(g_, a_, b_, offset=1.0):
    ct = _pam_ct(a_)
    g, a, b = (t.to(ct).contiguous() for t in (g_, a_, b_))
    ga, gb = torch.empty_like(a), torch.empty_like(b)
    _call(f"pam_bmm_exact_grad_{_sfx(ct)}", g, a, b, ga, gb, a.shape[0], a.shape[1], a.shape[2], b.shape[2],
          _scalar(ct, _pam_offset(offset, a_)))
    return ga.to(a_.dtype), gb.to(b_.dtype)


# ---- fewbit (fewbit_binding.cpp) ----
FEWBIT_FNS = ["gelu", "gelu_tanh", "silu", "elu", "celu", "selu", "mish", "softplus", "tanh", "sigmoid", "logsigmoid",
              "softsign", "tanhshrink", "hardswish", "relu", "leaky_relu", "relu6", "hardtanh", "hardsigmoid",
              "hardshrink", "softshrink", "threshold"]
_KIND = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


def fewbit_encode(x_, borders_, bits):
    x, borders = x_.contiguous(), borders_.float().contiguous()
    out = torch.empty((x.numel() * bits + 7) // 8, dtype=torch.uint8)
    _call("fewbit_encode", (_I, _KIND[x.dtype]), x, borders, (_I, borders.numel()), out, x.numel(), (_I, bits))
    return out


def fewbit_forward(x_, borders_, bits, fn):
    x, borders = x_.contiguous(), borders_.float().contiguous()
    y = torch.empty_like(x)
    out = torch.empty((x.numel() * bits + 7) // 8, dtype=torch.uint8)
    _call("fewbit_forward", (_I, _KIND[x.dtype]), x, y, borders, (_I, borders.numel()), out, x.numel(), (_I, bits),
          (_I, FEWBIT_FNS.index(fn)))
    return y, out


def fewbit_backward(grad_, codes_, levels_, bits):
    grad, codes, levels = grad_.contiguous(), codes_.contiguous(), levels_.float().contiguous()
    out = torch.empty_like(grad)
    _call("fewbit_backward", (_I, _KIND[grad.dtype]), grad, codes, levels, out, grad.numel(), (_I, bits))
    return out


# ---- gaunt (gaunt_binding.cpp) ----
def gaunt_splits(N, K):
    f = lib().gaunt_splits
    f.restype, f.argtypes = ctypes.c_int64, [_L, _L]
    return f(N, K)


def gaunt_grid_product(x1_, x2_, table_, weights_, lmax_out):
    x1, x2, table, weights = (t.contiguous() for t in (x1_, x2_, table_, weights_))
    l1, l2 = round(x1.shape[1] ** 0.5) - 1, round(x2.shape[1] ** 0.5) - 1
    N, K = x1.shape[0], table.shape[0]
    S = gaunt_splits(N, K)
    partial = torch.zeros(S, N, (lmax_out + 1) ** 2, dtype=x1.dtype)
    _call(f"gaunt_grid_product_{_sfx(x1.dtype)}", x1, (_I, l1), x2, (_I, l2), (_I, lmax_out), table, table.shape[1],
          weights, K, N, S, partial)
    return partial[0] if S == 1 else partial.sum(0)


# ---- intops (intops_binding.cpp) ----
def _rows(x):
    return x.numel() // x.shape[-1] if x.shape[-1] else 0


def intops_softmax(x_, x0, b, c, output_bits, method):
    x = x_.contiguous()
    out = torch.empty(x.shape, dtype=torch.int32)
    _call(f"intops_softmax_{_sfx(x.dtype)}", x, out, _rows(x), x.shape[-1], x0, b, c, (_I, 32 - output_bits),
          method == "ibert")
    return out


def intops_shiftgelu(x_, x0, output_bits):
    x = x_.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64)
    _call(f"intops_shiftgelu_{_sfx(x.dtype)}", x, out, _rows(x), x.shape[-1], x0, (_I, 32 - output_bits))
    return out


def intops_layernorm(x_, bias_, shift, isqrt):
    x, bias = x_.contiguous(), bias_.expand(x_.shape[-1]).contiguous()
    out = torch.empty(x.shape, dtype=torch.int32)
    _call(f"intops_layernorm_{_sfx(x.dtype)}", x, bias, out, _rows(x), x.shape[-1], (_I, shift), isqrt == "exact")
    return out


def intops_gelu(x_, b_, c_, one_):
    x = x_.contiguous()
    ch = x.shape[-1]
    b, c, one = (t.expand(ch).contiguous() for t in (b_, c_, one_))
    out = torch.empty(x.shape, dtype=torch.int64)
    _call(f"intops_gelu_{_sfx(x.dtype)}", x, b, c, one, out, x.numel(), ch)
    return out


def intops_exp(x_, x0, b, c):
    x = x_.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64)
    _call(f"intops_exp_{_sfx(x.dtype)}", x, out, x.numel(), x0, b, c)
    return out


def intops_requantize(x_, m_, e_, bits):
    x = x_.contiguous()
    ch = x.shape[-1]
    m, e = m_.expand(ch).contiguous(), e_.expand(ch).contiguous()
    out = torch.empty(x.shape, dtype=torch.int32)
    _call(f"intops_requantize_{_sfx(x.dtype)}", x, m, e, out, x.numel(), ch, -(1 << (bits - 1)),
          (1 << (bits - 1)) - 1)
    return out


def intops_isqrt(x_):
    x = x_.to(torch.int64).contiguous()
    out = torch.empty_like(x)
    _call("intops_isqrt", x, out, x.numel())
    return out


# ---- wavehax (wavehax_binding.cpp) ----
def wavehax_convnext2d_block(x_, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias, pw2_weight, pw2_bias,
                             layer_scale, eps, framewise):
    x = x_.contiguous()
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    B, F, Tn, C = x.shape
    H, KF, KT = pw1_weight.shape[0], dw_weight.shape[2], dw_weight.shape[3]
    dw = dw_weight.reshape(C, KF * KT).t().contiguous()
    w1t, b1 = pw1_weight.t().contiguous(), pw1_bias.contiguous()
    w2t = (pw2_weight * layer_scale.unsqueeze(1)).t().contiguous()
    b2 = (pw2_bias * layer_scale).contiguous()
    h = torch.empty_like(x)
    stats = torch.empty(B * Tn if framewise else B, 2, dtype=torch.float64)
    _call(f"wavehax_convnext2d_block_{_sfx(x.dtype)}", x, dw, norm_weight.contiguous(), norm_bias.contiguous(), w1t, b1,
          w2t, b2, (_D, eps), framewise, B, F, Tn, C, H, (_I, KF), (_I, KT), h, stats, out)
    return out


def wavehax_harmonic_prior(f0_, noise_, phase0, hop, sample_rate, power_factor):
    B, N = f0_.shape[0], f0_.shape[2]
    f0, noise = f0_.reshape(B, N).contiguous(), noise_.contiguous()
    out = torch.empty_like(noise)
    if noise.numel() == 0:
        return out
    radius = f0.double() / sample_rate
    start = phase0.reshape(B, 1) + hop * (torch.cumsum(radius, 1) - radius)
    start = (start - torch.floor(start)).contiguous()
    _call("wavehax_harmonic_prior", f0, noise, start, out, B, N, hop, (_I, sample_rate), (_D, power_factor))
    return out
