"""wavehax: 24 kHz speech-like input (F0 70-400 Hz with unvoiced gaps), v1 configuration, vs audio length:
  * generator inference (``model.inference(mel, f0)``): ours vs the official generator itself
    (github.com/chomeyama/wavehax, imported from $PYOPS_WAVEHAX_OFFICIAL by
    benchmarks/baselines/wavehax_official.py; skipped with a note when absent), our pure-PyTorch
    re-statement of it (pyops.reference.wavehax) and HiFi-GAN V1 (re-stated from its paper);
  * one ConvNeXt block (the fused op vs the block module of the official / re-stated generator);
  * the harmonic prior (closed form vs the official explicit sum over harmonics);
and, once, parameters and MACs per second of audio (Wavehax counted analytically, HiFi-GAN V1 by hooks).
The generator and the block are compute-bound rows (flops = 2 x the convolutions' multiply-adds; the
FFTs, norms and the prior not counted), the prior a memory-bound one."""

from __future__ import annotations

import math

import torch

from benchmarks.baselines import wavehax_official
from benchmarks.baselines.hifigan import HiFiGANV1
from benchmarks.harness import Case, Row, best_of, progress, time_ms
from pyops import wavehax
from pyops.reference import wavehax as ref

SR = 24000
CONFIG = ref.PRESETS["v1"]
OFFICIAL = "official generator (chomeyama/wavehax)"
OFFICIAL_BLOCK = "official ConvNeXtBlock2d (chomeyama/wavehax)"
RESTATED = "re-statement (pyops.reference)"
HIFIGAN = "HiFi-GAN V1 (re-statement)"


def contour(frames: int) -> torch.Tensor:
    """F0 sweeping 70-400 Hz with 20% unvoiced gaps, [1, 1, frames]."""
    t = torch.arange(frames, dtype=torch.float32)
    f0 = 235 + 165 * torch.sin(2 * math.pi * t / 400)
    f0[(t % 100) >= 80] = 0
    return f0.reshape(1, 1, -1)


def wavehax_macs(model, frames: int) -> int:
    """Multiply-accumulates of the generator's convolutions and projections for ``frames`` frames
    (ours, the official generator and the re-statement do the same arithmetic; the FFTs and norms are
    not counted)."""
    bins, c = model.n_fft // 2 + 1, model.input_proj.out_channels
    block = model.blocks[0]
    kf, kt = block.dwconv.kernel_size
    hidden = block.pwconv1.out_channels
    per_frame = bins * model.prior_proj.kernel_size[0] * 2 * bins + bins * model.cond_proj.kernel_size[0] * model.in_channels
    per_position = 5 * c + len(model.blocks) * (kf * kt * c + 2 * c * hidden) + 2 * c
    return frames * (per_frame + bins * per_position)


def block_flops(block, positions: int) -> int:
    """Flops of one ConvNeXt block over ``positions`` (frequency x time) cells: the depthwise conv and
    the two pointwise convs, 2 per multiply-add (norm, GELU, residual not counted)."""
    kf, kt = block.dwconv.kernel_size
    c, hidden = block.dwconv.out_channels, block.pwconv1.out_channels
    return 2 * positions * (kf * kt * c + 2 * c * hidden)


def prior_bytes(frames: int, hop: int) -> int:
    """Least traffic of the prior: F0 read, the noise read, the prior written (float32), the start phase."""
    return 4 * frames + 2 * 4 * frames * hop + 8


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


def infer(model, *args) -> torch.Tensor:
    """What a user runs: ``model.inference(*args)`` where the model has it (the official generator and
    ours), else its forward; under inference_mode; the waveform if a (waveform, prior) tuple comes back."""
    with torch.inference_mode():
        out = model.inference(*args) if hasattr(model, "inference") else model(*args)
    return out[0] if isinstance(out, tuple) else out


def _official():
    official, why = wavehax_official.load()
    return official, why


def _models(official):
    """(ours, re-statement, official generator or None), all with the same weights."""
    torch.manual_seed(0)
    reference = ref.WavehaxGenerator(**CONFIG).eval()
    off = None
    if official is not None:
        off = official.generator(**CONFIG).eval()
        reference.load_state_dict(off.state_dict())
    ours = wavehax.WavehaxGenerator(**CONFIG).eval()
    ours.load_state_dict(reference.state_dict())
    if off is not None:  # the same network: with F0 = 0 the prior is the noise alone, drawn alike
        f0, mel = torch.zeros(1, 1, 40), torch.randn(1, CONFIG["in_channels"], 40)
        torch.manual_seed(1)
        want = infer(off, mel, f0)
        torch.manual_seed(1)
        got = infer(ours, mel, f0)
        err = ((got - want).abs().max() / want.abs().max()).item()
        assert err < 1e-4, f"ours and the official generator differ on unvoiced input (rel. error {err:.2g})"
    return ours, reference, off


def _shape(seconds: float) -> str:
    return f"{seconds:g} s @ 24 kHz"


def _generator_case(seconds: float, with_hifigan: bool = True) -> list[Row]:
    official, why = _official()
    ours, reference, off = _models(official)
    frames = int(seconds * SR / reference.hop_length)
    mel, f0 = torch.randn(1, CONFIG["in_channels"], frames), contour(frames)
    hifigan = HiFiGANV1().eval()
    hifi_mel = torch.randn(1, 80, int(seconds * SR / hifigan.hop_length))
    timings = {}
    progress(f"wavehax generator {seconds:g} s: ours")
    t_ours = best_of(lambda: infer(ours, mel, f0))
    if off is not None:
        progress("official generator")
        timings[OFFICIAL] = best_of(lambda: infer(off, mel, f0))
    progress("re-statement")
    timings[RESTATED] = best_of(lambda: infer(reference, mel, f0))
    if with_hifigan:
        progress("HiFi-GAN V1")
        timings[HIFIGAN] = best_of(lambda: infer(hifigan, hifi_mel))
    flops = 2 * wavehax_macs(ours, frames)
    note = (f"RTF ours {t_ours / 1e3 / seconds:.3g}; flops: 2 x conv/projection MACs (FFTs, norms, prior not "
            "counted), HiFi-GAN's own by hooks")
    if off is None:
        note += f"; official generator skipped: {why}"
    if not with_hifigan:
        note += "; HiFi-GAN timed at the shortest length only (--quick)"
    work = {HIFIGAN: 2 * hooked_macs(hifigan, hifi_mel)} if with_hifigan else {}
    return [Row("wavehax", "generator inference", _shape(seconds), "float32", t_ours, timings, note=note,
                flops=flops, baseline_work=work, size=seconds, size_unit="seconds of audio")]


def _block_case(seconds: float) -> list[Row]:
    official, why = _official()
    ours, reference, off = _models(official)
    frames = int(seconds * SR / reference.hop_length)
    bins, c = reference.n_fft // 2 + 1, CONFIG["channels"]
    x = torch.randn(1, c, bins, frames)  # what the official / re-stated blocks take: [B, C, F, T]
    x_last = x.permute(0, 2, 3, 1).contiguous()  # ours: channels-last [B, F, T, C]
    device = torch.device("cpu")
    with torch.inference_mode():
        t_ours = time_ms(lambda: wavehax.convnext2d_block(x_last, ours.blocks[0], ours.framewise), device)
        timings = {}
        if off is not None:
            timings[OFFICIAL_BLOCK] = time_ms(lambda: off.blocks[0](x), device)
        timings[RESTATED] = time_ms(lambda: reference.blocks[0](x), device)
    note = "fused op on channels-last [1, F, T, C] vs the block module on [1, C, F, T]; flops: 2 x MACs"
    if off is None:
        note += f"; official block skipped: {why}"
    return [Row("wavehax", "ConvNeXt block", f"{bins}x{frames}x{c}", "float32", t_ours, timings, note=note,
                flops=block_flops(ours.blocks[0], bins * frames), size=seconds, size_unit="seconds of audio")]


def _prior_case(seconds: float) -> list[Row]:
    official, why = _official()
    hop = CONFIG["hop_length"]
    frames = int(seconds * SR / hop)
    f0 = contour(frames)
    noise = 0.01 * torch.randn(1, 1, frames * hop)
    phase0 = torch.rand(1, dtype=torch.float64)
    device = torch.device("cpu")
    with torch.inference_mode():
        t_ours = time_ms(lambda: wavehax.harmonic_prior(f0, hop, SR, noise, phase0), device)
        timings = {}
        if official is not None:  # draws its own noise and start phase, as inside the generator
            timings["official generate_pcph"] = time_ms(
                lambda: official.modules.generate_pcph(f0, hop_length=hop, sample_rate=SR), device)
        timings[RESTATED] = time_ms(lambda: ref.harmonic_prior_explicit(f0, hop, SR, noise, phase0), device)
    note = "closed form vs the explicit [B, K, T] float64 sum of harmonics"
    if official is None:
        note += f"; official generate_pcph skipped: {why}"
    return [Row("wavehax", "harmonic prior", _shape(seconds), "float32", t_ours, timings, note=note,
                bytes=prior_bytes(frames, hop), size=seconds, size_unit="seconds of audio")]


def _counts_case() -> list[Row]:
    official, _ = _official()
    ours, reference, off = _models(official)
    hifigan = HiFiGANV1().eval()
    ours_macs = wavehax_macs(ours, SR // reference.hop_length) / 1e9
    hifi_macs = hooked_macs(hifigan, torch.randn(1, 80, SR // hifigan.hop_length)) / 1e9
    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    names = ([OFFICIAL] if off is not None else []) + [RESTATED, HIFIGAN]
    p_base = {OFFICIAL: params(off) if off is not None else 0, RESTATED: params(reference),
              HIFIGAN: params(hifigan)}
    m_base = {OFFICIAL: ours_macs, RESTATED: ours_macs, HIFIGAN: hifi_macs}
    return [
        Row("wavehax", "parameters", "v1", "float32", params(ours), {k: p_base[k] for k in names}, unit="M"),
        Row("wavehax", "MACs", "1 s @ 24 kHz", "float32", ours_macs, {k: m_base[k] for k in names},
            unit="GMAC/s of audio"),
    ]


def cases(device: torch.device, quick: bool) -> list[Case]:
    if device.type != "cpu":
        print("note: wavehax rows are CPU rows (the vocoder on the CPU): run them with --device cpu")
        return []
    official, why = _official()
    if official is None:
        print(f"note: wavehax official-generator rows skipped: {why}; the '{RESTATED}' rows re-state it")
    lengths = [0.25, 0.5] if quick else [1.0, 3.0, 10.0]
    # --quick: HiFi-GAN (the slowest) at the shortest length only
    out = [Case(f"wavehax generator {s:g} s", lambda s=s: _generator_case(s, not quick or s == lengths[0]))
           for s in lengths]
    out += [Case(f"wavehax block {s:g} s", lambda s=s: _block_case(s)) for s in lengths]
    out += [Case(f"wavehax prior {s:g} s", lambda s=s: _prior_case(s)) for s in lengths]
    out.append(Case("wavehax parameters and MACs", _counts_case, timed=False))
    return out
