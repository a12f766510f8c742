"""wavehax: the Wavehax vocoder (Yoneyama et al.) made fast on CPU.

Same parameters and arithmetic as the official generator (see
``pyops.reference.wavehax``), three changes that buy the speed:
  * the harmonic prior in closed form, O(T) instead of a [B, K, T] float64 tensor:
    sum_{k=1..K} sin(k t) = sin(K t / 2) sin((K + 1) t / 2) / sin(t / 2), K per sample;
  * ConvNeXt blocks run their 1x1 convolutions as matmuls on channels-last
    activations (NCHW 1x1 convs take PyTorch's slow im2col path on CPU);
  * STFT/iSTFT through torch.fft on strided frames with the window and the
    overlap-add envelope cached per length (no enframing convolution, no host sync).
A state_dict of the official ``WavehaxGenerator`` (or of the re-statement) loads unchanged.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyops._library import check
from pyops.reference import wavehax as ref

__all__ = ["harmonic_prior", "stft", "istft", "convnext2d_block", "WavehaxGenerator"]


def harmonic_prior(f0: Tensor, hop_length: int, sample_rate: int, noise: Tensor, phase0: Tensor,
                   power_factor: float = 0.1) -> Tensor:
    """The "pcph" prior in closed form: [B, 1, N hop] from F0 [B, 1, N] (0 = unvoiced)."""
    f0s = torch.repeat_interleave(f0, hop_length, dim=2).to(torch.float64)
    radius = f0s / sample_rate
    radius[..., 0] += phase0.reshape(-1, 1).to(torch.float64)
    theta = 2.0 * math.pi * torch.cumsum(radius, dim=2)
    theta = torch.remainder(theta + math.pi, 2.0 * math.pi) - math.pi  # sin(k t) is 2 pi periodic in t
    voiced = f0s > 0
    k = torch.where(voiced, torch.floor(sample_rate / 2.0 / f0s.clamp(min=1e-12)), torch.zeros_like(f0s))
    half = torch.sin(theta / 2)
    dirichlet = torch.sin(k * theta / 2) * torch.sin((k + 1) * theta / 2) / torch.where(half == 0, 1.0, half)
    # near t = 0 the ratio is 0/0: its limit is t K (K + 1) / 2 (first order)
    small = half.abs() < 1e-7
    dirichlet = torch.where(small, theta * k * (k + 1) / 2, dirichlet)
    n_harmonics = torch.where(voiced, sample_rate / 2.0 / f0s.clamp(min=1e-12), torch.ones_like(f0s))
    amplitude = voiced * power_factor * torch.sqrt(2.0 / n_harmonics)
    return (amplitude * dirichlet).to(torch.float32) + noise


class _Envelope:
    """Per-(length, device, dtype) cache of the overlap-add window-square envelope."""

    def __init__(self):
        self.cache = {}

    def get(self, window: Tensor, frames: int, hop: int) -> Tensor:
        key = (frames, window.device, window.dtype)
        if key not in self.cache:
            n_fft = window.numel()
            sq = window.square().reshape(1, n_fft, 1).expand(1, n_fft, frames)
            env = F.fold(sq, (1, (frames - 1) * hop + n_fft), (1, n_fft), stride=(1, hop)).reshape(-1)
            self.cache[key] = env
        return self.cache[key]


_ENVELOPES = _Envelope()


def stft(x: Tensor, window: Tensor, hop_length: int):
    """Real and imaginary parts [B, n_fft/2 + 1, N] of x [B, 1, N hop], "same" padding."""
    n_fft = window.numel()
    pad = n_fft - hop_length
    x = F.pad(x.reshape(x.shape[0], -1), (pad // 2, pad - pad // 2))
    frames = x.unfold(-1, n_fft, hop_length) * window  # [B, N, n_fft] strided view, then windowed
    spec = torch.fft.rfft(frames, dim=-1).transpose(1, 2)
    return spec.real, spec.imag


def istft(real: Tensor, imag: Tensor, window: Tensor, hop_length: int) -> Tensor:
    """Inverse of :func:`stft`: irfft, window, overlap-add, divide by the cached envelope."""
    n_fft = window.numel()
    frames = real.shape[2]
    x = torch.fft.irfft(torch.complex(real, imag).transpose(1, 2), n=n_fft, dim=-1) * window  # [B, N, n_fft]
    total = (frames - 1) * hop_length + n_fft
    x = F.fold(x.transpose(1, 2), (1, total), (1, n_fft), stride=(1, hop_length)).reshape(x.shape[0], 1, total)
    pad = (n_fft - hop_length) // 2
    env = _ENVELOPES.get(window, frames, hop_length)
    samples = frames * hop_length
    return x[..., pad:samples + pad] / env[pad:samples + pad]


def _stats(x: Tensor, eps: float, framewise: bool):
    """Mean and 1/std of LayerNorm2d on channels-last [B, F, T, C], from one sum and one norm pass
    (much faster than var_mean here), combined in float64."""
    if framewise:
        var, mean = torch.var_mean(x, dim=(1, 3), keepdim=True, correction=0)
        return mean, torch.rsqrt(var + eps)
    v = x.reshape(x.shape[0], -1)
    n = v.shape[1]
    mean = v.sum(1).double() / n  # torch's cascaded float32 sum: no float64 copy of x
    var = (torch.linalg.vector_norm(v, dim=1).double() ** 2 / n - mean ** 2).clamp(min=0)
    shape = (-1, 1, 1, 1)
    return mean.to(x.dtype).reshape(shape), torch.rsqrt(var + eps).to(x.dtype).reshape(shape)


def _layer_norm(x: Tensor, norm: nn.Module, framewise: bool) -> Tensor:
    mean, rstd = _stats(x, norm.eps, framewise)
    return torch.addcmul(norm.beta, (x - mean) * rstd, norm.gamma)


def convnext2d_block(x: Tensor, block: nn.Module, framewise: bool = False) -> Tensor:
    """One ConvNeXt2d block on channels-last x [B, F, T, C] (parameters of ``ref.ConvNeXtBlock2d``):
    depthwise 7x7 reflect conv and its norm statistics; the utterance-wide LayerNorm2d is folded
    into PW1's weights per utterance (one batched matmul, no normalised copy); GELU, PW2, layer
    scale and residual follow."""
    c = x.shape[-1]
    k = block.dwconv.kernel_size[0]
    h = x.permute(0, 3, 1, 2)  # a channels-last NCHW view: the depthwise conv reads it in place
    h = F.conv2d(F.pad(h, (k // 2,) * 4, mode="reflect"), block.dwconv.weight, groups=c).permute(0, 2, 3, 1)
    w1, b1 = block.pwconv1.weight.flatten(1), block.pwconv1.bias
    b, f, t, _ = h.shape
    if framewise:
        h = F.linear(_layer_norm(h, block.norm, True), w1, b1)
    else:
        # W1 (gamma (h - mean) rstd + beta) + b1 = (rstd W1 diag(gamma)) h + (W1 beta + b1 - rstd mean W1 gamma)
        mean, rstd = _stats(h, block.norm.eps, False)
        wg = w1 * block.norm.gamma  # [2C, C]
        weight = rstd.reshape(-1, 1, 1) * wg.t()  # [B, C, 2C]
        bias = (w1 @ block.norm.beta + b1) - (rstd * mean).reshape(-1, 1) * wg.sum(1)  # [B, 2C]
        # bmm, then the bias in place: baddbmm would first copy the broadcast bias into its output
        h = torch.bmm(h.reshape(b, f * t, c), weight).add_(bias.unsqueeze(1)).reshape(b, f, t, -1)
    # PW2 and the layer scale as one matmul accumulating onto the residual (addmm's input)
    gamma = block.gamma.reshape(-1)
    w2 = block.pwconv2.weight.flatten(1) * gamma.unsqueeze(1)  # [C, 2C]
    out = torch.addmm(x.reshape(-1, c), F.gelu(h).reshape(-1, w2.shape[1]), w2.t())
    return out.add_(block.pwconv2.bias * gamma).reshape(x.shape)


class WavehaxGenerator(ref.WavehaxGenerator):
    """Drop-in fast Wavehax generator: the official module structure and parameter names
    (``load_state_dict`` of an official checkpoint works), a faster forward.

    ``forward(mel [B, 100, N], f0 [B, 1, N], generator=None) -> waveform [B, 1, N hop]``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.framewise = self.input_norm.dims == [1, 2]

    def _check(self, cond: Tensor, f0: Tensor) -> None:
        op = "wavehax.WavehaxGenerator"
        check(cond.dim() == 3 and cond.shape[1] == self.in_channels, op, "mel",
              f"must have shape [batch, {self.in_channels}, frames], got {tuple(cond.shape)}")
        check(f0.dim() == 3 and f0.shape[1] == 1, op, "f0", f"must have shape [batch, 1, frames], got {tuple(f0.shape)}")
        check(f0.shape[0] == cond.shape[0] and f0.shape[2] == cond.shape[2], op, "f0",
              f"must match mel's batch and frames {(cond.shape[0], cond.shape[2])}, got {(f0.shape[0], f0.shape[2])}")
        check(bool((f0 >= 0).all()) and bool(torch.isfinite(f0).all()), op, "f0",
              "must be finite and non-negative (0 = unvoiced)")

    def forward(self, cond: Tensor, f0: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        self._check(cond, f0)
        window = self.stft.window.reshape(-1)
        with torch.no_grad():
            noise, phase0 = self.prior_randomness(f0, generator)
            prior = harmonic_prior(f0, self.hop_length, self.sample_rate, noise, phase0)
            real, imag = stft(prior, window, self.hop_length)
        x = torch.stack([real, imag, self.prior_proj(real), self.prior_proj(imag), self.cond_proj(cond)], dim=-1)
        x = F.linear(x, self.input_proj.weight.flatten(1))  # [B, F, T, C] channels-last
        x = _layer_norm(x, self.input_norm, self.framewise)
        for block in self.blocks:
            x = convnext2d_block(x, block, self.framewise)
        x = _layer_norm(x, self.output_norm, self.framewise)
        x = F.linear(x, self.output_proj.weight.flatten(1), self.output_proj.bias)  # [B, F, T, 2]
        return istft(x[..., 0], x[..., 1], window, self.hop_length)

    @torch.inference_mode()
    def synthesize(self, cond: Tensor, f0: Tensor, chunk_frames: int = 500, generator=None) -> Tensor:
        """Long-form inference in chunks (with utterance-wide norm, chunking changes the statistics:
        use ``framewise_norm=True`` models for chunk-exact streaming)."""
        outs = [self(cond[..., i:i + chunk_frames], f0[..., i:i + chunk_frames], generator)
                for i in range(0, cond.shape[-1], chunk_frames)]
        return torch.cat(outs, dim=-1)
