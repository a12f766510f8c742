"""wavehax: the Wavehax vocoder (Yoneyama et al.) made fast on CPU.

Same parameters and arithmetic as the official generator (see
``pyops.reference.wavehax``), three changes that buy the speed:
  * the harmonic prior in closed form, O(T) instead of a [B, K, T] float64 tensor:
    sum_{k=1..K} sin(k t) = sin(K t / 2) sin((K + 1) t / 2) / sin(t / 2), K per sample
    (``pyops::wavehax_harmonic_prior``);
  * each ConvNeXt block is one fused op on channels-last activations
    (``pyops::wavehax_convnext2d_block``: depthwise conv + norm statistics, then
    normalise -> PW1 -> GELU -> PW2 -> layer scale -> residual per tile of positions);
  * STFT/iSTFT through torch.fft on strided frames with the window and the
    overlap-add envelope cached per length (no enframing convolution, no host sync).
A state_dict of the official ``WavehaxGenerator`` (or of the re-statement) loads unchanged.
"""

from __future__ import annotations

import functools
from typing import Optional, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyops import _library
from pyops._library import check, check_float, check_same_device, define, eager, triton_launcher
from pyops.reference import wavehax as ref

_triton = functools.partial(triton_launcher, "wavehax")  # pyops.kernels.wavehax.<name>, imported on first use

__all__ = ["harmonic_prior", "stft", "istft", "convnext2d_block", "WavehaxGenerator"]


# ---------------------------------------------------------------- ops
_prior = define(
    "wavehax_harmonic_prior",
    "(Tensor f0, Tensor noise, Tensor phase0, int hop_length, int sample_rate, float power_factor) -> Tensor",
    reference=ref.harmonic_prior, fake=lambda f0, noise, phase0, hop, sr, pf: noise.new_empty(noise.shape),
    triton=_triton("harmonic_prior"), check=functools.partial(ref.check_prior, "wavehax_harmonic_prior"))


def _prior_backward(ctx, grad):
    # the prior is additive in the noise; F0 and the start phase are inputs, not learned (the
    # official code builds the prior under no_grad): no gradient flows to them
    return None, grad, None, None, None, None


torch.library.register_autograd("pyops::wavehax_harmonic_prior", _prior_backward, lib=_library._lib)


def harmonic_prior(f0: Tensor, hop_length: int, sample_rate: int, noise: Tensor, phase0: Tensor,
                   power_factor: float = 0.1) -> Tensor:
    """The "pcph" prior in closed form: [B, 1, N hop] from F0 [B, 1, N] (0 = unvoiced), with
    ``noise`` [B, 1, N hop] (already scaled) and start phases ``phase0`` [B] in cycles."""
    op = "wavehax.harmonic_prior"
    check_float(op, "f0", f0, (torch.float32,))
    check_float(op, "noise", noise, (torch.float32,))
    check_float(op, "phase0", phase0, (torch.float64,))
    check(isinstance(hop_length, int) and not isinstance(hop_length, bool) and hop_length > 0, op, "hop_length",
          f"must be a positive int, got {hop_length!r}")
    check(isinstance(sample_rate, int) and not isinstance(sample_rate, bool) and 0 < sample_rate < 2 ** 31, op,
          "sample_rate", f"must be an int in [1, 2^31), got {sample_rate!r}")
    check(isinstance(power_factor, (int, float)) and abs(power_factor) <= 1e6, op, "power_factor",
          f"must be a float in [-1e6, 1e6], got {power_factor!r}")
    check(f0.dim() == 3 and f0.shape[1] == 1, op, "f0", f"must have shape [batch, 1, frames], got {tuple(f0.shape)}")
    want = (f0.shape[0], 1, f0.shape[2] * hop_length)
    check(tuple(noise.shape) == want, op, "noise", f"must have shape {want}, got {tuple(noise.shape)}")
    check(tuple(phase0.shape) == (f0.shape[0],), op, "phase0", f"must have shape [{f0.shape[0]}], got "
          f"{tuple(phase0.shape)}")
    check_same_device(op, f0=f0, noise=noise, phase0=phase0)
    if f0.numel() and eager():  # data-dependent: the kernels check too
        check(bool((torch.isfinite(f0) & (f0 >= 0)).all()), op, "f0", "must be finite and >= 0 (0 = unvoiced)")
    return _prior(f0, noise, phase0, hop_length, sample_rate, power_factor)


_block = define(
    "wavehax_convnext2d_block",
    "(Tensor x, Tensor dw_weight, Tensor norm_weight, Tensor norm_bias, Tensor pw1_weight, Tensor pw1_bias, "
    "Tensor pw2_weight, Tensor pw2_bias, Tensor layer_scale, float eps, bool framewise) -> Tensor",
    reference=ref.convnext2d_block, fake=lambda x, *args: x.new_empty(x.shape), triton=_triton("convnext2d_block"),
    check=lambda x, *args: ref.check_block("wavehax_convnext2d_block", x, *args[:8]))


def _block_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:9])
    ctx.eps, ctx.framewise = inputs[9], inputs[10]


def _block_backward(ctx, grad):
    # recompute through the reference composition (the spec allows it): the fused forward keeps nothing
    inputs = [t.detach().requires_grad_(need) for t, need in zip(ctx.saved_tensors, ctx.needs_input_grad)]
    with torch.enable_grad():
        out = ref.convnext2d_block(*inputs, ctx.eps, ctx.framewise)  # type: ignore[call-arg]  # 9 tensors
    wanted = [t for t in inputs if t.requires_grad]
    grads = iter(torch.autograd.grad(out, wanted, grad) if wanted else ())
    return (*(_strided_like(next(grads), t) if t.requires_grad else None for t in inputs), None, None)


def _strided_like(g: Tensor, t: Tensor) -> Tensor:
    """g with t's strides, size-1 dims included: DDP compares a gradient's strides with its bucket's
    exactly (conv2d's weight gradient strides a [C, 1, K, K] depthwise kernel differently)."""
    if g.stride() == t.stride():
        return g
    return torch.empty_strided(t.shape, t.stride(), dtype=g.dtype, device=g.device).copy_(g)


torch.library.register_autograd("pyops::wavehax_convnext2d_block", _block_backward, setup_context=_block_setup,
                                lib=_library._lib)


def convnext2d_block(x: Tensor, block: ref.ConvNeXtBlock2d, framewise: bool = False) -> Tensor:
    """One ConvNeXt2d block (parameters of ``ref.ConvNeXtBlock2d``) on channels-last x [B, F, T, C]
    as one fused op: depthwise KxK reflect conv and its norm statistics, then normalise -> PW1 ->
    GELU -> PW2 -> layer scale -> residual per tile of positions."""
    op = "wavehax.convnext2d_block"
    check_float(op, "x", x, (torch.float32, torch.float64))
    c = block.dwconv.weight.shape[0]
    check(x.dim() == 4 and x.shape[-1] == c, op, "x", f"must have shape [batch, freq, frames, {c}], got "
          f"{tuple(x.shape)}")
    pad_f, pad_t = block.dwconv.kernel_size[0] // 2, block.dwconv.kernel_size[1] // 2
    check(x.numel() == 0 or (x.shape[1] > pad_f and x.shape[2] > pad_t), op, "x",
          f"needs freq > {pad_f} and frames > {pad_t} for reflect padding, got {tuple(x.shape)}")
    return _block(x, block.dwconv.weight, block.norm.gamma, block.norm.beta, block.pwconv1.weight.flatten(1),
                  block.pwconv1.bias, block.pwconv2.weight.flatten(1), block.pwconv2.bias, block.gamma.reshape(-1),
                  block.norm.eps, framewise)


class _Envelope:
    """Per-(window length, hop, length, device, dtype) cache of the overlap-add window-square envelope."""

    def __init__(self):
        self.cache = {}

    def get(self, window: Tensor, frames: int, hop: int) -> Tensor:
        key = (window.numel(), hop, frames, window.device, window.dtype)
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


def _layer_norm(x: Tensor, norm: ref.LayerNorm2d, framewise: bool, inplace: bool = False) -> Tensor:
    """gamma (x - mean) rstd + beta as one pass: x * scale + shift per (group, channel); ``inplace``
    (without autograd) overwrites x rather than taking fresh pages for the result, whose first touch
    costs as much as the pass itself at 10 s of audio."""
    mean, rstd = _stats(x, norm.eps, framewise)
    scale = rstd * norm.gamma
    if inplace and not torch.is_grad_enabled():
        return torch.addcmul(norm.beta - mean * scale, x, scale, out=x)
    return torch.addcmul(norm.beta - mean * scale, x, scale)


def _norm_linear(x: Tensor, norm: ref.LayerNorm2d, weight: Tensor, bias: Optional[Tensor],
                 framewise: bool) -> Tensor:
    """linear(LayerNorm2d(x)) with the norm folded in: W (gamma (x - mean) rstd + beta) + b
    = rstd (W' x - mean W' 1) + W beta + b, W' = W diag(gamma); no normalised copy of x."""
    mean, rstd = _stats(x, norm.eps, framewise)
    wg = weight * norm.gamma
    shift = weight @ norm.beta if bias is None else weight @ norm.beta + bias
    return torch.addcmul(shift, F.linear(x, wg) - mean * wg.sum(1), rstd)


class WavehaxGenerator(ref.WavehaxGenerator):
    """Drop-in fast Wavehax generator: the official constructor arguments (an official YAML
    configuration's generator section constructs it; ``ref.PRESETS`` has v1, v2 and fb), module
    structure and parameter names (``load_state_dict`` of an official checkpoint works), a faster forward.

    ``forward(mel [B, in_channels, N], f0 [B, 1, N], generator=None) -> (waveform [B, 1, N hop], prior)``
    and ``inference(mel, f0) -> waveform`` as the official generator; ``synthesize`` for long inputs.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.framewise = self.input_norm.dims == [1, 2]

    @classmethod
    def from_config(cls, config: dict) -> "WavehaxGenerator":
        """From an official configuration's generator section (its hydra ``_target_`` key is ignored)."""
        return cls(**{k: v for k, v in config.items() if k != "_target_"})

    @property
    def context_frames(self) -> int:
        """Frames of context each side that a chunk needs to equal the whole (framewise norm): the
        input projections' 3, each block's time taps // 2, and the frames overlapping one sample."""
        return 3 + len(self.blocks) * (self.kernel_size[1] // 2) + -(-self.n_fft // self.hop_length)

    def _check(self, cond: Tensor, f0: Tensor) -> None:
        op = "wavehax.WavehaxGenerator"
        dtype = self.input_proj.weight.dtype
        check(dtype in (torch.float32, torch.float64), op, "weights",
              f"are {dtype}: the generator runs in float32 or float64 (its fused blocks have no {dtype} kernel); "
              "use .float() or .double()", TypeError)
        check(cond.dtype == dtype, op, "mel", f"must have the model's dtype {dtype}, got {cond.dtype}", TypeError)
        check(f0.is_floating_point(), op, "f0", f"must be a floating tensor (Hz), got {f0.dtype}", TypeError)
        check(cond.dim() == 3 and cond.shape[1] == self.in_channels, op, "mel",
              f"must have shape [batch, {self.in_channels}, frames], got {tuple(cond.shape)}")
        check(f0.dim() == 3 and f0.shape[1] == 1, op, "f0", f"must have shape [batch, 1, frames], got {tuple(f0.shape)}")
        check(f0.shape[0] == cond.shape[0] and f0.shape[2] == cond.shape[2], op, "f0",
              f"must match mel's batch and frames {(cond.shape[0], cond.shape[2])}, got {(f0.shape[0], f0.shape[2])}")
        if eager():  # data-dependent: under torch.compile the prior op checks F0 itself
            check(bool((f0 >= 0).all()) and bool(torch.isfinite(f0).all()), op, "f0",
                  "must be finite and non-negative (0 = unvoiced)")

    def _prior_spectra(self, cond: Tensor, f0: Tensor, generator: Optional[torch.Generator]):
        """(prior waveform, its two spectra as the network takes them), no gradients."""
        with torch.no_grad():
            f0 = f0.float()  # the prior is a float32 signal (as in the official code), then the model's dtype
            noise, phase0 = self.prior_randomness(f0, generator)
            prior = harmonic_prior(f0, self.hop_length, self.sample_rate, noise, phase0)
            real, imag = stft(prior.to(cond.dtype), self.stft.window.reshape(-1), self.hop_length)
            if self.use_logmag_phase:
                real, imag = ref.to_log_magnitude_and_phase(real, imag)
        return prior, real, imag

    def forward(self, cond: Tensor, f0: Tensor,
                generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        self._check(cond, f0)
        self.check_training()
        prior, real, imag = self._prior_spectra(cond, f0, generator)
        return self._network(cond, real, imag), prior

    def _network(self, cond: Tensor, real: Tensor, imag: Tensor) -> Tensor:
        """The spectral network and the iSTFT: waveform [B, 1, N hop] from the prior's spectra [B, bins, N]."""
        x = torch.stack([real, imag, self.prior_proj(real), self.prior_proj(imag), self.cond_proj(cond)], dim=-1)
        x = F.linear(x, self.input_proj.weight.flatten(1))  # [B, F, T, C] channels-last
        x = _layer_norm(x, self.input_norm, self.framewise, inplace=True)  # x: the projection's own output
        for block in self.blocks:
            x = convnext2d_block(x, cast(ref.ConvNeXtBlock2d, block), self.framewise)
        x = _norm_linear(x, self.output_norm, self.output_proj.weight.flatten(1), self.output_proj.bias,
                         self.framewise)  # [B, F, T, 2]
        real, imag = ref.to_real_imaginary(x[..., 0], x[..., 1]) if self.use_logmag_phase else (x[..., 0], x[..., 1])
        return istft(real, imag, self.stft.window.reshape(-1), self.hop_length)

    @torch.inference_mode()
    def synthesize(self, cond: Tensor, f0: Tensor, chunk_frames: int = 500, generator=None) -> Tensor:
        """Long-form inference in bounded memory: the prior and its spectra for the whole input (O(N)),
        then the network on chunks of ``chunk_frames`` frames, each with ``context_frames`` of real
        context on both sides, cropped.  With framewise norm this equals ``inference`` (to float
        rounding); with utterance-wide norm each chunk normalises by its own statistics instead."""
        check(isinstance(chunk_frames, int) and chunk_frames > 0, "wavehax.WavehaxGenerator", "chunk_frames",
              f"must be a positive int, got {chunk_frames!r}")
        self._check(cond, f0)
        _, real, imag = self._prior_spectra(cond, f0, generator)
        n, pad, hop = cond.shape[-1], self.context_frames, self.hop_length
        outs = []
        for s in range(0, n, chunk_frames):
            e = min(n, s + chunk_frames)
            a, b = max(0, s - pad), min(n, e + pad)
            y = self._network(cond[..., a:b], real[..., a:b], imag[..., a:b])
            outs.append(y[..., (s - a) * hop:(e - a) * hop])
        return torch.cat(outs, dim=-1)
