"""wavehax Triton kernels.

* harmonic_prior: one lane per sample.  F0 is constant within a frame, so the phase at sample s of
  frame i is start[i] + (s + 1) f0_i / sr with start[] a float64 cumsum over frames (torch, on the
  device); the lane folds it to [-pi, pi) and evaluates the closed-form harmonic sum in float64.
* convnext2d_block: the depthwise conv and the norm statistics run as torch ops; one Triton
  program then takes BLOCK_P positions through normalise -> PW1 -> GELU -> PW2 -> layer scale ->
  residual, the hidden activations never leaving registers: they are made and consumed in tiles
  of at most HIDDEN_TILE, channels in tiles of at most CHANNEL_TILE, so no tile grows with C or H.
  float32 only (float64 takes the reference).
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from pyops.reference import wavehax as ref

_BLOCK = 128  # one sample per thread: 256 spills on sm_80 (fp64 sin; scripts/triton_aot.py)
# The fused block: BLOCK_P positions per program; the widest channel and hidden tiles.  The fp32
# dots run on FMAs and hold their operands' rows in registers: with 4 warps and whole-C, whole-H
# tiles, C = 64, H = 128 spilled and C = 128, H = 512 asked for 328 KB of shared memory.  These tiles
# (narrower where rows are not multiples of 16) and 8 warps stay spill-free at <= 186 registers and
# 90 KB of shared memory for C from 1 to 2048 and H from 1 to 8192 (scripts/triton_aot.py).  The
# official C = 32, H = 64 is one tile of each.
_BLOCK_P = 32
_NUM_WARPS = 8
CHANNEL_TILE = 64
HIDDEN_TILE = 64


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
    zero = half == 0.0  # theta = 0: every sin(k theta) is 0 (csrc/include/pyops/wavehax.h harmonic_sum)
    total = tl.where(zero, 0.0, tl.sin(0.5 * k * theta) * tl.sin(0.5 * (k + 1.0) * theta) / tl.where(zero, 1.0, half))
    v = (tl.load(amp_ptr + frame, mask=m, other=0.0) * total).to(tl.float32)
    tl.store(out_ptr + i, v + tl.load(noise_ptr + i, mask=m, other=0.0), mask=m)


def harmonic_prior(f0, noise, phase0, hop_length, sample_rate, power_factor):
    ref.check_prior("wavehax_harmonic_prior", f0, noise, phase0, hop_length, sample_rate, power_factor)
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
def _normalised(h_ptr, scale_ptr, shift_ptr, p, g, c, m, C):
    """The LayerNorm2d output a = h * scale + shift of positions p (norm groups g), channels c."""
    gc = g[:, None] * C + c[None, :]
    return tl.load(h_ptr + p[:, None] * C + c[None, :], mask=m, other=0.0) * \
        tl.load(scale_ptr + gc, mask=m, other=0.0) + tl.load(shift_ptr + gc, mask=m, other=0.0)


@triton.jit
def _hidden(a, w1t_ptr, ci, cim, j, jm, H, u):
    """u + a @ W1^T[ci, j] for one channel tile ci of the input (padded lanes are zero)."""
    w1 = tl.load(w1t_ptr + ci[:, None] * H + j[None, :], mask=cim[:, None] & jm[None, :], other=0.0)
    return tl.dot(a, w1, u, input_precision="ieee")


@triton.jit
def _gelu(u):
    return 0.5 * u * (1.0 + tl.erf(u * 0.7071067811865476))  # padded lanes: gelu(0) = 0


@triton.jit
def _pointwise_kernel(h_ptr, x_ptr, scale_ptr, shift_ptr, w1t_ptr, b1_ptr, w2t_ptr, b2_ptr, out_ptr, n_pos,
                      n_freq, n_frames, C, H, FRAMEWISE: tl.constexpr, BLOCK_P: tl.constexpr, CT: tl.constexpr,
                      HT: tl.constexpr, ONE_C_TILE: tl.constexpr):
    """BLOCK_P positions through normalise -> PW1 -> GELU -> PW2 -> residual, the hidden layer in
    HT-wide tiles (each tile's PW2 product accumulated at once).  Channels: one CT-wide tile when
    C <= CT (ONE_C_TILE, the normalised input loaded once); otherwise CT-wide output tiles, each
    recomputing the hidden tiles from CT-wide input tiles, so no tile grows with C or H."""
    p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < n_pos
    b = p // (n_freq * n_frames)
    g = b * n_frames + p % n_frames if FRAMEWISE else b  # norm group: frame or utterance
    ct = tl.arange(0, CT)
    ht = tl.arange(0, HT)
    if ONE_C_TILE:
        cm = ct < C
        m = pm[:, None] & cm[None, :]
        a = _normalised(h_ptr, scale_ptr, shift_ptr, p, g, ct, m, C)
        acc = tl.zeros((BLOCK_P, CT), dtype=tl.float32)
        for h0 in range(0, H, HT):
            j = h0 + ht
            jm = j < H
            u = _hidden(a, w1t_ptr, ct, cm, j, jm, H, tl.zeros((BLOCK_P, HT), dtype=tl.float32))
            u = _gelu(u + tl.load(b1_ptr + j, mask=jm, other=0.0)[None, :])
            w2 = tl.load(w2t_ptr + j[:, None] * C + ct[None, :], mask=jm[:, None] & cm[None, :], other=0.0)
            acc = tl.dot(u, w2, acc, input_precision="ieee")
        rows = p[:, None] * C + ct[None, :]
        o = acc + tl.load(b2_ptr + ct, mask=cm, other=0.0)[None, :]
        tl.store(out_ptr + rows, o + tl.load(x_ptr + rows, mask=m, other=0.0), mask=m)
    else:
        for c0 in range(0, C, CT):
            co = c0 + ct
            com = co < C
            acc = tl.zeros((BLOCK_P, CT), dtype=tl.float32)
            for h0 in range(0, H, HT):
                j = h0 + ht
                jm = j < H
                u = tl.zeros((BLOCK_P, HT), dtype=tl.float32)
                for k0 in range(0, C, CT):
                    ci = k0 + ct
                    cim = ci < C
                    a = _normalised(h_ptr, scale_ptr, shift_ptr, p, g, ci, pm[:, None] & cim[None, :], C)
                    u = _hidden(a, w1t_ptr, ci, cim, j, jm, H, u)
                u = _gelu(u + tl.load(b1_ptr + j, mask=jm, other=0.0)[None, :])
                w2 = tl.load(w2t_ptr + j[:, None] * C + co[None, :], mask=jm[:, None] & com[None, :], other=0.0)
                acc = tl.dot(u, w2, acc, input_precision="ieee")
            m = pm[:, None] & com[None, :]
            rows = p[:, None] * C + co[None, :]
            o = acc + tl.load(b2_ptr + co, mask=com, other=0.0)[None, :]
            tl.store(out_ptr + rows, o + tl.load(x_ptr + rows, mask=m, other=0.0), mask=m)


def convnext2d_block(x, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias, pw2_weight, pw2_bias, layer_scale,
                     eps, framewise, channel_tile=None, hidden_tile=None):
    """``channel_tile`` / ``hidden_tile``: the widest channel / hidden tile (powers of two >= 16,
    default CHANNEL_TILE / HIDDEN_TILE)."""
    ref.check_block("wavehax_convnext2d_block", x, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias, pw2_weight,
                    pw2_bias, layer_scale)
    if x.dtype != torch.float32:
        return ref.convnext2d_block(x, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias, pw2_weight, pw2_bias,
                                    layer_scale, eps, framewise)
    for name, v in (("channel_tile", channel_tile), ("hidden_tile", hidden_tile)):
        if v is not None and not (isinstance(v, int) and 16 <= v <= 1024 and v & (v - 1) == 0):
            raise ValueError(f"pyops.wavehax_convnext2d_block: argument '{name}' must be a power of two in "
                             f"[16, 1024], got {v!r}")
    x = x.contiguous()
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    bsz, n_freq, n_frames, c = x.shape
    hidden, kf, kt = pw1_weight.shape[0], dw_weight.shape[2], dw_weight.shape[3]
    h = F.conv2d(F.pad(x.permute(0, 3, 1, 2), (kt // 2, kt // 2, kf // 2, kf // 2), mode="reflect"), dw_weight,
                 groups=c)
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
    # tl.dot needs every dimension >= 16.  Rows of C or H not a multiple of 16 load element by element
    # (no vector loads, an address per element): narrower tiles keep those free of spills
    ct_max = CHANNEL_TILE if c % 16 == 0 or c <= CHANNEL_TILE else CHANNEL_TILE // 2
    ct = min(max(16, triton.next_power_of_2(c)), channel_tile or ct_max)
    if c % 16 == 0:
        ht_max = HIDDEN_TILE if hidden % 16 == 0 else HIDDEN_TILE // 2
    else:
        ht_max = HIDDEN_TILE // 4 if ct == CHANNEL_TILE else HIDDEN_TILE // 2
    ht = min(max(16, triton.next_power_of_2(hidden)), hidden_tile or ht_max)
    _pointwise_kernel[(triton.cdiv(n_pos, _BLOCK_P),)](h, x, scale, shift, w1t, pw1_bias.contiguous(), w2t, b2, out,
                                                       n_pos, n_freq, n_frames, c, hidden, FRAMEWISE=framewise,
                                                       BLOCK_P=_BLOCK_P, CT=ct, HT=ht, ONE_C_TILE=c <= ct,
                                                       num_warps=_NUM_WARPS)
    return out
