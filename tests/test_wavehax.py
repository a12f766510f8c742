import math

import pytest
import torch
from helpers import assert_raises_naming

from pyops import wavehax
from pyops.reference import wavehax as ref

SR, HOP = 24000, 240


def _pair(**kw):
    torch.manual_seed(0)
    reference = ref.WavehaxGenerator(**kw)
    for block in reference.blocks:  # non-trivial norms, so folding them into PW1 is exercised
        torch.nn.init.normal_(block.norm.gamma, 1.0, 0.3)
        torch.nn.init.normal_(block.norm.beta, 0.0, 0.3)
    ours = wavehax.WavehaxGenerator(**kw)
    ours.load_state_dict(reference.state_dict())  # the official parameter names load unchanged
    return reference, ours


@pytest.mark.parametrize("framewise", [False, True])
def test_generator_matches_reference(framewise):
    reference, ours = _pair(num_blocks=3, framewise_norm=framewise)
    frames = 37  # odd
    mel = torch.randn(2, 100, frames)
    f0 = torch.full((2, 1, frames), 180.0)
    f0[:, :, 5:12] = 0
    f0[1] *= 1.9
    want = reference(mel, f0, torch.Generator().manual_seed(3))
    got = ours(mel, f0, torch.Generator().manual_seed(3))
    assert got.shape == (2, 1, frames * HOP)
    assert (got - want).abs().max() < 1e-4


def test_all_unvoiced_and_parameter_count():
    reference, ours = _pair()
    assert sum(p.numel() for p in ours.parameters()) == 622_951  # official v1
    mel, f0 = torch.randn(1, 100, 9), torch.zeros(1, 1, 9)
    torch.testing.assert_close(ours(mel, f0, torch.Generator().manual_seed(0)),
                               reference(mel, f0, torch.Generator().manual_seed(0)), atol=1e-4, rtol=0)


def test_prior_closed_form_matches_explicit_sum():
    f0 = torch.tensor([[[70.0, 70.0, 0.0, 123.4, 400.0, 1000.0, 2000.0, 2000.0]]]).repeat(3, 1, 1)
    f0[1] *= 1.3
    noise = torch.zeros(3, 1, 8 * HOP)
    phase0 = torch.rand(3, dtype=torch.float64)
    want = ref.harmonic_prior_explicit(f0, HOP, SR, noise, phase0)
    got = wavehax.harmonic_prior(f0, HOP, SR, noise, phase0)
    assert (got - want).abs().max() < 1e-6


@pytest.mark.parametrize("f0", [100.0, 250.0, 600.0, 1000.0, 2000.0])
def test_prior_has_no_aliasing(f0):
    """Energy outside the harmonic bins k f0 stays below -100 dB (no component above Nyquist folds back)."""
    frames = 100  # 1 s: every F0 here has an integer number of periods, harmonics fall on bins
    x = wavehax.harmonic_prior(torch.full((1, 1, frames), f0), HOP, SR, torch.zeros(1, 1, frames * HOP),
                               torch.zeros(1, dtype=torch.float64))
    power = torch.fft.rfft(x.double().reshape(-1)).abs() ** 2
    freqs = torch.arange(power.numel()) * SR / (frames * HOP)
    harmonic = (freqs % f0 == 0) & (freqs > 0)
    ratio = power[~harmonic].sum() / power[harmonic].sum()
    assert 10 * math.log10(ratio.item() + 1e-300) < -100


def test_stft_round_trip_and_envelope_cache():
    window = torch.hann_window(480)
    x = torch.randn(3, 1, 41 * HOP)
    real, imag = wavehax.stft(x, window, HOP)
    assert real.shape == (3, 241, 41)
    torch.testing.assert_close(wavehax.istft(real, imag, window, HOP), x, atol=1e-6, rtol=0)
    r_ref, i_ref = ref.STFT(480, HOP)(x)
    torch.testing.assert_close(real, r_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(imag, i_ref, atol=1e-5, rtol=0)


def test_block_gradcheck_and_training_lowers_stft_loss():
    block = ref.ConvNeXtBlock2d(3, 2, 7, False, 0.5).double()
    x = torch.randn(1, 8, 9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: wavehax.convnext2d_block(t, block), (x,))
    torch.testing.assert_close(wavehax.convnext2d_block(x, block).permute(0, 3, 1, 2),
                               block(x.permute(0, 3, 1, 2)), atol=1e-10, rtol=0)

    torch.manual_seed(0)
    model = wavehax.WavehaxGenerator(channels=8, num_blocks=2)
    frames = 20
    f0 = torch.full((2, 1, frames), 200.0)
    target = wavehax.harmonic_prior(f0, HOP, SR, torch.zeros(2, 1, frames * HOP), torch.zeros(2, dtype=torch.float64))
    mel = torch.randn(2, 100, frames)

    def mr_stft_loss(y):
        loss = 0
        for n_fft in (128, 512):
            w = torch.hann_window(n_fft)
            s = lambda z: torch.stft(z.reshape(2, -1), n_fft, n_fft // 4, window=w, return_complex=True).abs()  # noqa: E731
            loss = loss + (s(y) - s(target)).abs().mean()
        return loss

    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = mr_stft_loss(model(mel, f0, torch.Generator().manual_seed(0)))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_synthesize_in_chunks_framewise_is_exact():
    torch.manual_seed(0)
    model = wavehax.WavehaxGenerator(channels=8, num_blocks=2, framewise_norm=True).eval()
    mel, f0 = torch.randn(1, 100, 30), torch.zeros(1, 1, 30)  # unvoiced: the prior is the seeded noise
    whole = model.synthesize(mel, f0, chunk_frames=30, generator=torch.Generator().manual_seed(0))
    assert whole.shape == (1, 1, 30 * HOP)


def test_bad_inputs_name_the_argument():
    model = wavehax.WavehaxGenerator(channels=4, num_blocks=1)
    mel, f0 = torch.randn(1, 100, 10), torch.full((1, 1, 10), 100.0)
    assert_raises_naming(lambda: model(mel, f0[..., :9]), ValueError, "WavehaxGenerator", "'f0'", "frames")
    assert_raises_naming(lambda: model(mel, -f0), ValueError, "WavehaxGenerator", "'f0'", "non-negative")
    assert_raises_naming(lambda: model(mel[:, :80], f0), ValueError, "WavehaxGenerator", "'mel'", "100")
