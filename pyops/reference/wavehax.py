"""A faithful pure-PyTorch re-statement of the official Wavehax generator
(chomeyama/wavehax: every configuration, square and [freq, time] kernels, log-magnitude/phase
spectra): the same modules, parameter names and arithmetic, written
here so our fast generator can be tested against it.  The one change: randomness
(the prior's start phase and noise) comes from an explicit torch.Generator.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def harmonic_prior_explicit(f0: Tensor, hop_length: int, sample_rate: int, noise: Tensor, phase0: Tensor,
                            power_factor: float = 0.1) -> Tensor:
    """The official "pcph" prior: an explicit [B, K, T] float64 sum of harmonics k f0 <= sr/2,
    each of amplitude power_factor * sqrt(2 / n_harmonics), n_harmonics = (sr/2) / f0; 0 when
    unvoiced; plus ``noise`` [B, 1, T] (already scaled).  ``phase0`` [B]: start phase in cycles."""
    vuv = f0 > 0
    if not bool(vuv.any()):
        return noise
    max_k = int(sample_rate / 2 / float(f0[vuv].min()))
    n_harmonics = torch.where(vuv, sample_rate / 2.0 / f0.clamp(min=1e-12), torch.ones_like(f0))
    k = torch.arange(1, max_k + 1, device=f0.device).reshape(1, -1, 1)
    mask = torch.repeat_interleave(f0 * k <= sample_rate / 2.0, hop_length, dim=2)
    amplitude = torch.repeat_interleave(vuv * power_factor * torch.sqrt(2.0 / n_harmonics), hop_length, dim=2)
    f0 = torch.repeat_interleave(f0, hop_length, dim=2)
    radius = f0.to(torch.float64) / sample_rate
    radius[..., 0] += phase0.reshape(-1, 1).to(torch.float64)
    phase = 2.0 * math.pi * torch.cumsum(radius, dim=2) * k
    harmonics = mask * torch.sin(phase).to(torch.float32)
    return amplitude * harmonics.sum(dim=1, keepdim=True) + noise


def harmonic_counts(f0: Tensor, sample_rate: int, power_factor: float):
    """Per frame, float64: K = #{k : k f0 <= sr/2} (product rounded to float32 as in the official
    mask) and the amplitude power_factor sqrt(2 f0 / (sr/2)); both 0 when unvoiced."""
    half = sample_rate / 2.0
    voiced = f0 > 0
    f = f0.double().clamp(min=1e-12)
    k = torch.floor(half / f)
    k = k + ((k + 1).float() * f0 <= half).double()
    k = torch.where(voiced, k - ((k.float() * f0 > half) & (k > 0)).double(), torch.zeros_like(k))
    amplitude = torch.where(voiced, power_factor * torch.sqrt(2.0 / (half / f)), torch.zeros_like(k))
    return k, amplitude


def harmonic_prior(f0: Tensor, noise: Tensor, phase0: Tensor, hop_length: int, sample_rate: int,
                   power_factor: float = 0.1) -> Tensor:
    """The same prior in closed form, O(T) (the ``pyops::wavehax_harmonic_prior`` oracle):
    sum_{k=1..K} sin(k t) = sin(K t / 2) sin((K + 1) t / 2) / sin(t / 2), with K per frame the
    count of k f0 <= sr/2 (product rounded to float32 as in the official mask)."""
    if noise.numel() == 0:  # arguments: check_prior, run first wherever this serves the raw op
        return noise.clone()
    k, amplitude = harmonic_counts(f0, sample_rate, power_factor)
    k, amplitude = (torch.repeat_interleave(v, hop_length, dim=2) for v in (k, amplitude))
    radius = torch.repeat_interleave(f0, hop_length, dim=2).to(torch.float64) / sample_rate
    p0 = phase0.reshape(-1, 1).to(torch.float64)
    radius[..., 0] += p0 - torch.floor(p0)  # whole cycles first: K dtheta is the error that matters
    cycles = torch.cumsum(radius, dim=2)
    cycles = cycles - torch.floor(cycles)
    theta = 2.0 * math.pi * torch.where(cycles >= 0.5, cycles - 1.0, cycles)  # [-pi, pi)
    half_sin = torch.sin(theta / 2)
    zero = half_sin == 0  # theta = 0: every sin(k t) is 0; elsewhere the ratio is accurate
    dirichlet = torch.sin(k * theta / 2) * torch.sin((k + 1) * theta / 2) / torch.where(zero, 1.0, half_sin)
    dirichlet = torch.where(zero, 0.0, dirichlet)
    return (amplitude * dirichlet).to(torch.float32) + noise


def convnext2d_block(x: Tensor, dw_weight: Tensor, norm_weight: Tensor, norm_bias: Tensor, pw1_weight: Tensor,
                     pw1_bias: Tensor, pw2_weight: Tensor, pw2_bias: Tensor, layer_scale: Tensor, eps: float,
                     framewise: bool) -> Tensor:
    """``ConvNeXtBlock2d.forward`` on channels-last x [B, F, T, C] (the ``pyops::wavehax_convnext2d_block``
    oracle), parameters as tensors: PW weights [H, C] and [C, H], layer scale [C]."""
    c, kf, kt = x.shape[-1], dw_weight.shape[2], dw_weight.shape[3]
    h = F.conv2d(F.pad(x.permute(0, 3, 1, 2), (kt // 2, kt // 2, kf // 2, kf // 2), mode="reflect"), dw_weight,
                 groups=c)
    dims = [1, 2] if framewise else [1, 2, 3]
    h = h - h.mean(dims, keepdim=True)
    h = h / torch.sqrt((h ** 2).mean(dims, keepdim=True) + eps)
    h = norm_weight.view(1, -1, 1, 1) * h + norm_bias.view(1, -1, 1, 1)
    h = F.conv2d(F.gelu(F.conv2d(h, pw1_weight[:, :, None, None], pw1_bias)), pw2_weight[:, :, None, None], pw2_bias)
    return (x + (layer_scale.view(1, -1, 1, 1) * h).permute(0, 2, 3, 1)).contiguous()


class STFT(nn.Module):
    """Enframe by an identity convolution, periodic Hann window, rfft; inverse by irfft,
    window, overlap-add and division by the window-square envelope."""

    window: Tensor
    window_envelope: Tensor
    enframe_kernel: Tensor

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.n_fft, self.hop_length, self.n_bins = n_fft, hop_length, n_fft // 2 + 1
        window = torch.hann_window(n_fft).reshape(1, n_fft, 1)
        self.register_buffer("window", window)
        self.register_buffer("window_envelope", window.square())
        self.register_buffer("enframe_kernel", torch.eye(n_fft).unsqueeze(1))

    def forward(self, x: Tensor):
        pad = self.n_fft - self.hop_length
        x = F.pad(x, (pad // 2, pad - pad // 2))
        x = x.unsqueeze(1) if x.dim() == 2 else x
        x = F.conv1d(x, self.enframe_kernel, stride=self.hop_length) * self.window
        spec = torch.fft.rfft(x, dim=1)
        return spec.real, spec.imag

    def inverse(self, real: Tensor, imag: Tensor) -> Tensor:
        frames = real.shape[2]
        samples = frames * self.hop_length
        x = torch.fft.irfft(torch.complex(real, imag), n=self.n_fft, dim=1) * self.window
        x = F.conv_transpose1d(x, self.enframe_kernel, stride=self.hop_length)
        env = F.conv_transpose1d(self.window_envelope.repeat(1, 1, frames), self.enframe_kernel,
                                 stride=self.hop_length)
        pad = (self.n_fft - self.hop_length) // 2
        return x[..., pad:samples + pad] / env[..., pad:samples + pad]


class LayerNorm2d(nn.Module):
    """Normalise over (C, F, T) per utterance, or over (C, F) per frame; per-channel affine."""

    eps: float

    def __init__(self, channels: int, framewise: bool = False, eps: float = 1e-6):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.dims = [1, 2] if framewise else [1, 2, 3]
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = x - x.mean(self.dims, keepdim=True)
        x = x / torch.sqrt((x ** 2).mean(self.dims, keepdim=True) + self.eps)
        return self.gamma.view(1, -1, 1, 1) * x + self.beta.view(1, -1, 1, 1)


def kernel_pair(kernel_size: Union[int, Sequence[int]],
                op: str = "pyops.wavehax.ConvNeXtBlock2d") -> tuple[int, int]:
    """(frequency taps, time taps) of an official ``kernel_size``: an int (square) or [kf, kt], both odd."""
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(k) != 2 or not all(isinstance(v, int) and v > 0 and v % 2 == 1 for v in k):
        raise ValueError(f"{op}: argument 'kernel_size' must be an odd int or a pair of odd ints [freq, time], got "
                         f"{kernel_size!r}")
    return k[0], k[1]


def to_log_magnitude_and_phase(real: Tensor, imag: Tensor) -> tuple[Tensor, Tensor]:
    """The official ``use_logmag_phase`` input: log(sqrt(max(|z|^2, 1e-10))), atan2(imag, real)."""
    return torch.log(torch.sqrt(torch.clamp(real ** 2 + imag ** 2, min=1e-10))), torch.atan2(imag, real)


def to_real_imaginary(log_magnitude: Tensor, phase: Tensor) -> tuple[Tensor, Tensor]:
    """The official ``use_logmag_phase`` output: magnitude min(exp(log_magnitude), 100) at ``phase``."""
    magnitude = torch.clip(torch.exp(log_magnitude), max=1e2)
    return magnitude * torch.cos(phase), magnitude * torch.sin(phase)


class ConvNeXtBlock2d(nn.Module):
    dwconv: nn.Conv2d
    norm: "LayerNorm2d"
    pwconv1: nn.Conv2d
    pwconv2: nn.Conv2d

    def __init__(self, channels: int, mult_channels: int, kernel_size: Union[int, Sequence[int]],
                 framewise_norm: bool, layer_scale_init_value: float):
        super().__init__()
        kf, kt = kernel_pair(kernel_size)
        self.dwconv = nn.Conv2d(channels, channels, (kf, kt), padding=(kf // 2, kt // 2), groups=channels, bias=False,
                                padding_mode="reflect")
        self.norm = LayerNorm2d(channels, framewise=framewise_norm)
        self.pwconv1 = nn.Conv2d(channels, channels * mult_channels, 1)
        self.nonlinear = nn.GELU()
        self.pwconv2 = nn.Conv2d(channels * mult_channels, channels, 1)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        x = self.pwconv2(self.nonlinear(self.pwconv1(self.norm(self.dwconv(x)))))
        return residual + self.gamma * x


# The official generator configurations (wavehax/bin/config/generator/*.yaml): v1 and v2 at 24 kHz, fb
# (full band) at 48 kHz.  ``WavehaxGenerator(**PRESETS["v2"])`` builds one.
PRESETS = {
    "v1": dict(in_channels=100, channels=32, mult_channels=2, kernel_size=7, num_blocks=8, n_fft=480,
               hop_length=240, sample_rate=24000, prior_type="pcph", drop_prob=0.0, framewise_norm=False,
               use_logmag_phase=False),
    "v2": dict(in_channels=100, channels=16, mult_channels=3, kernel_size=[13, 7], num_blocks=8, n_fft=480,
               hop_length=240, sample_rate=24000, prior_type="pcph", drop_prob=0.0, framewise_norm=False,
               use_logmag_phase=False),
    "fb": dict(in_channels=100, channels=32, mult_channels=2, kernel_size=[15, 7], num_blocks=8, n_fft=960,
               hop_length=480, sample_rate=48000, prior_type="pcph", drop_prob=0.0, framewise_norm=False,
               use_logmag_phase=False),
}


class WavehaxGenerator(nn.Module):
    """The official generator's constructor arguments, as written in its YAML configurations (defaults:
    v1, see ``PRESETS``); ``forward(cond, f0) -> (waveform, prior)`` and ``inference(cond, f0) ->
    waveform`` as the official module.  Supported: the "pcph" prior, layer norm (``use_layer_norm``),
    ``drop_prob`` in inference (stochastic depth is not trained here)."""

    def __init__(self, in_channels: int = 100, channels: int = 32, mult_channels: int = 2,
                 kernel_size: Union[int, Sequence[int]] = 7, num_blocks: int = 8, n_fft: int = 480,
                 hop_length: int = 240, sample_rate: int = 24000, prior_type: str = "pcph", drop_prob: float = 0.0,
                 use_layer_norm: bool = True, framewise_norm: bool = False, use_logmag_phase: bool = False):
        super().__init__()
        op = "pyops.wavehax.WavehaxGenerator"
        if prior_type != "pcph":
            raise ValueError(f"{op}: argument 'prior_type' must be 'pcph' (the only prior of the official "
                             f"configurations), got {prior_type!r}")
        if not use_layer_norm:
            raise ValueError(f"{op}: argument 'use_layer_norm' must be True (no official configuration uses "
                             "batch norm, and the fused blocks fold a layer norm)")
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"{op}: argument 'drop_prob' must be in [0, 1), got {drop_prob!r}")
        self.kernel_size = kernel_pair(kernel_size, op)
        self.in_channels, self.n_fft, self.hop_length, self.sample_rate = in_channels, n_fft, hop_length, sample_rate
        self.drop_prob, self.use_logmag_phase = drop_prob, use_logmag_phase
        n_bins = n_fft // 2 + 1
        self.stft = STFT(n_fft, hop_length)
        self.prior_proj = nn.Conv1d(n_bins, n_bins, 7, padding=3, padding_mode="reflect")
        self.cond_proj = nn.Conv1d(in_channels, n_bins, 7, padding=3, padding_mode="reflect")
        self.input_proj = nn.Conv2d(5, channels, 1, bias=False)
        self.input_norm = LayerNorm2d(channels, framewise=framewise_norm)
        self.blocks = nn.ModuleList([ConvNeXtBlock2d(channels, mult_channels, kernel_size, framewise_norm,
                                                     1 / num_blocks) for _ in range(num_blocks)])
        self.output_norm = LayerNorm2d(channels, framewise=framewise_norm)
        self.output_proj = nn.Conv2d(channels, 2, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.0)

    def prior_randomness(self, f0: Tensor, generator: Optional[torch.Generator] = None):
        """(noise [B, 1, T] scaled by 0.01, start phases [B] in cycles), drawn like the official code."""
        b, _, n = f0.shape
        noise = 0.01 * torch.randn((b, 1, n * self.hop_length), generator=generator, device=f0.device)
        phase0 = torch.rand((b,), generator=generator, device=f0.device, dtype=torch.float64)
        return noise, phase0

    def check_training(self) -> None:
        if self.training and self.drop_prob > 0:
            raise NotImplementedError("pyops.wavehax.WavehaxGenerator: stochastic depth (drop_prob > 0) is not "
                                      "implemented for training; eval() runs such a model (dropping nothing)")

    def forward(self, cond: Tensor, f0: Tensor, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        self.check_training()
        with torch.no_grad():
            noise, phase0 = self.prior_randomness(f0, generator)
            prior = harmonic_prior_explicit(f0, self.hop_length, self.sample_rate, noise, phase0)
            real, imag = self.stft(prior)
            if self.use_logmag_phase:
                real, imag = to_log_magnitude_and_phase(real, imag)
        x = torch.stack([real, imag, self.prior_proj(real), self.prior_proj(imag), self.cond_proj(cond)], dim=1)
        x = self.input_norm(self.input_proj(x))
        for block in self.blocks:
            x = block(x)
        x = self.output_proj(self.output_norm(x))
        real, imag = to_real_imaginary(x[:, 0], x[:, 1]) if self.use_logmag_phase else (x[:, 0], x[:, 1])
        return self.stft.inverse(real, imag), prior

    @torch.inference_mode()
    def inference(self, cond: Tensor, f0: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        return self(cond, f0, generator)[0]


# ---- the argument checks of csrc/cpu/wavehax_args.h, for the Triton launchers
def _vector(op: str, name: str, t: Tensor, n: int, dtype) -> None:
    if t.dim() != 1 or t.shape[0] != n:
        raise RuntimeError(f"pyops.{op}: argument '{name}' must have shape [{n}], got {tuple(t.shape)}")
    if t.dtype != dtype:
        raise RuntimeError(f"pyops.{op}: argument '{name}' must have dtype {dtype}, got {t.dtype}")


def check_block(op: str, x: Tensor, dw: Tensor, norm_weight: Tensor, norm_bias: Tensor, pw1: Tensor, pw1_bias: Tensor,
                pw2: Tensor, pw2_bias: Tensor, layer_scale: Tensor) -> None:
    if x.dtype not in (torch.float32, torch.float64):
        raise RuntimeError(f"pyops.{op}: argument 'x' must have dtype float32 or float64, got {x.dtype}")
    if x.dim() != 4:
        raise RuntimeError(f"pyops.{op}: argument 'x' must have shape [batch, freq, frames, channels], got "
                           f"{tuple(x.shape)}")
    c = x.shape[3]
    if dw.dim() != 4 or dw.shape[0] != c or dw.shape[1] != 1 or dw.shape[2] % 2 != 1 or dw.shape[3] % 2 != 1:
        raise RuntimeError(f"pyops.{op}: argument 'dw_weight' must have shape [{c}, 1, kf, kt] with kf and kt odd, "
                           f"got {tuple(dw.shape)}")
    pad_f, pad_t = dw.shape[2] // 2, dw.shape[3] // 2
    if x.numel() and not (pad_f < x.shape[1] and pad_t < x.shape[2]):
        raise RuntimeError(f"pyops.{op}: argument 'x' needs freq > {pad_f} and frames > {pad_t} for reflect padding, "
                           f"got {tuple(x.shape)}")
    if pw1.dim() != 2 or pw1.shape[1] != c or pw1.shape[0] == 0:
        raise RuntimeError(f"pyops.{op}: argument 'pw1_weight' must have shape [hidden, {c}], got {tuple(pw1.shape)}")
    h = pw1.shape[0]
    if pw2.dim() != 2 or tuple(pw2.shape) != (c, h):
        raise RuntimeError(f"pyops.{op}: argument 'pw2_weight' must have shape [{c}, {h}], got {tuple(pw2.shape)}")
    for name, t in (("dw_weight", dw), ("pw1_weight", pw1), ("pw2_weight", pw2)):
        if t.dtype != x.dtype:
            raise RuntimeError(f"pyops.{op}: argument '{name}' must have x's dtype {x.dtype}, got {t.dtype}")
    for name, t, n in (("norm_weight", norm_weight, c), ("norm_bias", norm_bias, c), ("pw1_bias", pw1_bias, h),
                       ("pw2_bias", pw2_bias, c), ("layer_scale", layer_scale, c)):
        _vector(op, name, t, n, x.dtype)
    for name, t in (("dw_weight", dw), ("norm_weight", norm_weight), ("norm_bias", norm_bias), ("pw1_weight", pw1),
                    ("pw1_bias", pw1_bias), ("pw2_weight", pw2), ("pw2_bias", pw2_bias), ("layer_scale", layer_scale)):
        if t.device != x.device:
            raise RuntimeError(f"pyops.{op}: argument '{name}' must be on the device of 'x' ({x.device})")


def check_prior(op: str, f0: Tensor, noise: Tensor, phase0: Tensor, hop: int, sample_rate: int,
                power_factor: float) -> None:
    if not abs(power_factor) <= 1e6:  # keeps the prior finite in float32 (wavehax_args.h)
        raise RuntimeError(f"pyops.{op}: argument 'power_factor' must be in [-1e6, 1e6], got {power_factor}")
    if hop <= 0:
        raise RuntimeError(f"pyops.{op}: argument 'hop_length' must be positive, got {hop}")
    if not 0 < sample_rate < 2 ** 31:
        raise RuntimeError(f"pyops.{op}: argument 'sample_rate' must be in [1, 2^31), got {sample_rate}")
    if f0.dim() != 3 or f0.shape[1] != 1 or f0.dtype != torch.float32:
        raise RuntimeError(f"pyops.{op}: argument 'f0' must be float32 [batch, 1, frames], got {f0.dtype} "
                           f"{tuple(f0.shape)}")
    b, n = f0.shape[0], f0.shape[2] * hop
    if tuple(noise.shape) != (b, 1, n) or noise.dtype != torch.float32:
        raise RuntimeError(f"pyops.{op}: argument 'noise' must be float32 [{b}, 1, {n}], got {noise.dtype} "
                           f"{tuple(noise.shape)}")
    if tuple(phase0.shape) != (b,) or phase0.dtype != torch.float64:
        raise RuntimeError(f"pyops.{op}: argument 'phase0' must be float64 [{b}], got {phase0.dtype} "
                           f"{tuple(phase0.shape)}")
    for name, t in (("noise", noise), ("phase0", phase0)):
        if t.device != f0.device:
            raise RuntimeError(f"pyops.{op}: argument '{name}' must be on the device of 'f0' ({f0.device})")
    if f0.numel() and not bool((torch.isfinite(f0) & (f0 >= 0)).all()):
        raise RuntimeError(f"pyops.{op}: argument 'f0' must be finite and >= 0 (0 = unvoiced)")
    if phase0.numel() and not bool(torch.isfinite(phase0).all()):
        raise RuntimeError(f"pyops.{op}: argument 'phase0' must be finite")
