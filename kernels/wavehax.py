"""wavehax Triton kernels.

* harmonic_prior: one lane per sample.  F0 is constant within a frame, so the phase at sample s of
  frame i is start[i] + (s + 1) f0_i / sr with start[] a float64 cumsum over frames (torch, on the
  device); the lane folds it to [-pi, pi) and evaluates the closed-form harmonic sum in float64.
* convnext2d_block: the depthwise conv and the norm statistics run as torch ops; one Triton
  program then takes BLOCK_P positions through normalise -> PW1 -> GELU -> PW2 -> layer scale ->
  residual, the [BLOCK_P, H] hidden tile never leaving registers.  float32 only (float64 takes
  the reference).
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from pyops.reference import wavehax as ref

_BLOCK = 256
_BLOCK_P = 32


@triton.jit
def _prior_kernel(start_ptr, radius_ptr, k_ptr, amp_ptr, noise_ptr, out_ptr, n, HOP: tl.constexpr,
                  BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    frame = i // HOP  # flat b * frames + frame: each utterance holds frames * HOP samples
    s = (i - frame * HOP + 1).to(tl.float64)
    cycles = tl.load(start_ptr + frame, mask=m, other=0.0) + s * tl.load(radius_ptr + frame, mask=m, other=0.0)
    cycles = cycles - tl.floor(cycles)
    theta = 6.283185307179586 * tl.where(cycles >= 0.5, cycles - 1.0, cycles)
    k = tl.load(k_ptr + frame, mask=m, other=0.0)
    half = tl.sin(0.5 * theta)
    small = tl.abs(half) < 1e-7  # 0/0: the first-order limit theta K (K + 1) / 2
    ratio = tl.sin(0.5 * k * theta) * tl.sin(0.5 * (k + 1.0) * theta) / tl.where(small, 1.0, half)
    total = tl.where(small, 0.5 * theta * k * (k + 1.0), ratio)
    v = (tl.load(amp_ptr + frame, mask=m, other=0.0) * total).to(tl.float32)
    tl.store(out_ptr + i, v + tl.load(noise_ptr + i, mask=m, other=0.0), mask=m)


def harmonic_prior(f0, noise, phase0, hop_length, sample_rate, power_factor):
    b, _, frames = f0.shape
    k, amplitude = (v.reshape(b, frames).contiguous() for v in ref.harmonic_counts(f0, sample_rate, power_factor))
    radius = f0.reshape(b, frames).double() / sample_rate
    # cycles before each frame's first sample (exclusive cumsum), folded to [0, 1)
    start = phase0.double().reshape(b, 1) + hop_length * (torch.cumsum(radius, 1) - radius)
    start = (start - torch.floor(start)).contiguous()
    noise = noise.contiguous()
    out = torch.empty_like(noise)
    n = noise.numel()
    if n:
        _prior_kernel[(triton.cdiv(n, _BLOCK),)](start, radius.contiguous(), k, amplitude, noise, out, n,
                                                 HOP=hop_length, BLOCK=_BLOCK)
    return out


@triton.jit
def _pointwise_kernel(h_ptr, x_ptr, scale_ptr, shift_ptr, w1t_ptr, b1_ptr, w2t_ptr, b2_ptr, out_ptr, n_pos,
                      n_freq, n_frames, C, H, FRAMEWISE: tl.constexpr, BLOCK_P: tl.constexpr, CP: tl.constexpr,
                      HP: tl.constexpr):
    p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, CP)
    j = tl.arange(0, HP)
    pm, cm, jm = p < n_pos, c < C, j < H
    m = pm[:, None] & cm[None, :]
    b = p // (n_freq * n_frames)
    g = b * n_frames + p % n_frames if FRAMEWISE else b  # norm group: frame or utterance
    rows = p[:, None] * C + c[None, :]
    gc = g[:, None] * C + c[None, :]
    a = tl.load(h_ptr + rows, mask=m, other=0.0) * tl.load(scale_ptr + gc, mask=m, other=0.0) + \
        tl.load(shift_ptr + gc, mask=m, other=0.0)
    w1 = tl.load(w1t_ptr + c[:, None] * H + j[None, :], mask=cm[:, None] & jm[None, :], other=0.0)
    u = tl.dot(a, w1, input_precision="ieee") + tl.load(b1_ptr + j, mask=jm, other=0.0)[None, :]
    u = 0.5 * u * (1.0 + tl.erf(u * 0.7071067811865476))  # padded lanes: gelu(0) = 0
    w2 = tl.load(w2t_ptr + j[:, None] * C + c[None, :], mask=jm[:, None] & cm[None, :], other=0.0)
    o = tl.dot(u, w2, input_precision="ieee") + tl.load(b2_ptr + c, mask=cm, other=0.0)[None, :]
    tl.store(out_ptr + rows, o + tl.load(x_ptr + rows, mask=m, other=0.0), mask=m)


def convnext2d_block(x, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias, pw2_weight, pw2_bias, layer_scale,
                     eps, framewise):
    if x.dtype != torch.float32:
        return ref.convnext2d_block(x, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias, pw2_weight, pw2_bias,
                                    layer_scale, eps, framewise)
    x = x.contiguous()
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    bsz, n_freq, n_frames, c = x.shape
    hidden, k = pw1_weight.shape[0], dw_weight.shape[-1]
    h = F.conv2d(F.pad(x.permute(0, 3, 1, 2), (k // 2,) * 4, mode="reflect"), dw_weight, groups=c)
    h = h.permute(0, 2, 3, 1).contiguous()  # [B, F, T, C]
    dims = (1, 3) if framewise else (1, 2, 3)
    var, mean = torch.var_mean(h, dim=dims, correction=0)  # [B, T] or [B]
    rstd = torch.rsqrt(var + eps).unsqueeze(-1)
    scale = (rstd * norm_weight).contiguous()  # [groups, C]
    shift = (norm_bias - mean.unsqueeze(-1) * scale).contiguous()
    w1t = pw1_weight.t().contiguous()
    w2t = (pw2_weight * layer_scale.unsqueeze(1)).t().contiguous()
    b2 = (pw2_bias * layer_scale).contiguous()
    n_pos = bsz * n_freq * n_frames
    cp, hp = max(16, triton.next_power_of_2(c)), max(16, triton.next_power_of_2(hidden))
    _pointwise_kernel[(triton.cdiv(n_pos, _BLOCK_P),)](h, x, scale, shift, w1t, pw1_bias.contiguous(), w2t, b2, out,
                                                       n_pos, n_freq, n_frames, c, hidden, FRAMEWISE=framewise,
                                                       BLOCK_P=_BLOCK_P, CP=cp, HP=hp)
    return out

