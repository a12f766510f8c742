"""wavehax: real-time factor on one thread for 24 kHz speech-like input (F0 70-400 Hz
with unvoiced gaps): ours, the reference re-statement, HiFi-GAN V1; parameters; and MACs
per second of audio (Wavehax counted analytically, HiFi-GAN V1 by hooks on its convolutions)."""

from __future__ import annotations

import math
import time

import torch

from benchmarks.baselines.hifigan import HiFiGANV1
from benchmarks.harness import Case, Row
from pyops import wavehax
from pyops.reference import wavehax as ref

SR = 24000


def contour(frames: int) -> torch.Tensor:
    """F0 sweeping 70-400 Hz with 20% unvoiced gaps, [1, 1, frames]."""
    t = torch.arange(frames, dtype=torch.float32)
    f0 = 235 + 165 * torch.sin(2 * math.pi * t / 400)
    f0[(t % 100) >= 80] = 0
    return f0.reshape(1, 1, -1)


def wavehax_macs(model, frames: int) -> int:
    """Multiply-accumulates of the generator's convolutions and projections for ``frames`` frames
    (ours and the reference do the same arithmetic; the FFTs and norms are not counted)."""
    bins, c = model.n_fft // 2 + 1, model.input_proj.out_channels
    block = model.blocks[0]
    k, hidden = block.dwconv.kernel_size[0], block.pwconv1.out_channels
    per_frame = bins * model.prior_proj.kernel_size[0] * 2 * bins + bins * model.cond_proj.kernel_size[0] * model.in_channels
    per_position = 5 * c + len(model.blocks) * (k * k * c + 2 * c * hidden) + 2 * c
    return frames * (per_frame + bins * per_position)


def hooked_macs(model, *args) -> int:
    """Multiply-accumulates of every Conv1d / ConvTranspose1d / Linear in one forward, by hooks."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, torch.nn.ConvTranspose1d):
            total += inputs[0].numel() * m.out_channels // m.groups * m.kernel_size[0]
        elif isinstance(m, torch.nn.Conv1d):
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0]
        else:
            total += out.numel() * m.in_features

    kinds = (torch.nn.Conv1d, torch.nn.ConvTranspose1d, torch.nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.inference_mode():
            model(*args)
    finally:
        for h in handles:
            h.remove()
    return total


def _rtf(model, args, seconds: float, repeats: int) -> float:
    with torch.inference_mode():
        model(*args)  # warm-up
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(*args)
            best = min(best, time.perf_counter() - t0)
    return best / seconds


def _case(seconds: float) -> list[Row]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        reference = ref.WavehaxGenerator().eval()
        ours = wavehax.WavehaxGenerator().eval()
        ours.load_state_dict(reference.state_dict())
        hifigan = HiFiGANV1().eval()
        frames = int(seconds * SR / reference.hop_length)
        mel, f0 = torch.randn(1, 100, frames), contour(frames)
        repeats = 1 if seconds > 5 else 2
        r_ours = _rtf(ours, (mel, f0), seconds, repeats)
        r_ref = _rtf(reference, (mel, f0), seconds, repeats)
        r_hifi = _rtf(hifigan, (torch.randn(1, 80, int(seconds * SR / hifigan.hop_length)),), seconds, repeats)
    finally:
        torch.set_num_threads(threads)
    ours_macs = wavehax_macs(ours, SR // reference.hop_length) / 1e9
    hifi_macs = hooked_macs(hifigan, torch.randn(1, 80, SR // hifigan.hop_length)) / 1e9
    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    return [
        Row("wavehax", "generator RTF (1 thread)", f"{seconds:g} s @ 24 kHz", "float32", r_ours,
            {"reference re-statement": r_ref, "HiFi-GAN V1": r_hifi}, unit="RTF"),
        Row("wavehax", "parameters", "v1", "float32", params(ours),
            {"reference re-statement": params(reference), "HiFi-GAN V1": params(hifigan)}, unit="M"),
        Row("wavehax", "MACs", "1 s @ 24 kHz", "float32", ours_macs,
            {"reference re-statement": ours_macs, "HiFi-GAN V1": hifi_macs}, unit="GMAC/s of audio"),
    ]


def cases(device: torch.device, quick: bool) -> list[Case]:
    seconds = 2.0 if quick else 10.0
    return [Case(f"wavehax RTF {seconds:g} s", lambda: _case(seconds))]
