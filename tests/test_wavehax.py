import math

import pytest
import torch
from helpers import (HAS_CPP, assert_raises_naming, assert_same, family_backends, noncontig, opcheck, run_backend, to,
                     triton_device)

from pyops import wavehax
from pyops.reference import wavehax as ref

SR, HOP = 24000, 240
BACKENDS, LAUNCHER, _ = family_backends("wavehax")
BLOCK, PRIOR = torch.ops.pyops.wavehax_convnext2d_block, torch.ops.pyops.wavehax_harmonic_prior


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
    want, want_prior = reference(mel, f0, torch.Generator().manual_seed(3))
    got, prior = ours(mel, f0, torch.Generator().manual_seed(3))
    assert got.shape == prior.shape == (2, 1, frames * HOP)
    assert (got - want).abs().max() < 1e-4
    assert (prior - want_prior).abs().max() < 1e-5


def test_all_unvoiced_and_parameter_count():
    reference, ours = _pair()
    assert sum(p.numel() for p in ours.parameters()) == 622_951  # official v1
    mel, f0 = torch.randn(1, 100, 9), torch.zeros(1, 1, 9)
    torch.testing.assert_close(ours.inference(mel, f0, torch.Generator().manual_seed(0)),
                               reference.inference(mel, f0, torch.Generator().manual_seed(0)), atol=1e-4, rtol=0)


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
        loss = mr_stft_loss(model(mel, f0, torch.Generator().manual_seed(0))[0])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("k", [7, (13, 7)])
def test_synthesize_chunks_equal_the_whole(k):
    """Framewise norm: every chunk sees context_frames of real context each side, so chunked synthesis
    equals one pass (to float rounding), for chunks shorter than the context too; the prior is drawn
    once for the whole input, as inference draws it."""
    torch.manual_seed(0)
    model = wavehax.WavehaxGenerator(channels=8, num_blocks=2, kernel_size=k, framewise_norm=True).eval()
    frames = 40
    mel, f0 = torch.randn(1, 100, frames), torch.full((1, 1, frames), 150.0)
    f0[..., 10:17] = 0
    seeded = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    whole = model.inference(mel, f0, seeded())
    assert torch.equal(model.synthesize(mel, f0, chunk_frames=frames, generator=seeded()), whole)
    peak = whole.abs().max()
    for chunk in (13, 4):
        chunked = model.synthesize(mel, f0, chunk_frames=chunk, generator=seeded())
        assert chunked.shape == whole.shape
        assert (chunked - whole).abs().max() <= 1e-5 * peak, chunk
    # utterance-wide norm: each chunk has its own statistics, so chunks differ (documented)
    utt = wavehax.WavehaxGenerator(channels=8, num_blocks=2).eval()
    assert not torch.allclose(utt.synthesize(mel, f0, chunk_frames=13, generator=seeded()),
                              utt.inference(mel, f0, seeded()), atol=1e-5 * peak)


@pytest.mark.parametrize("name", ["v1", "v2", "fb"])
def test_official_configurations(name):
    """Each official generator configuration (with its hydra _target_) builds ours and the reference with
    the official parameter names and counts; a reference state_dict loads strictly and both agree."""
    cfg = {"_target_": "wavehax.generators.WavehaxGenerator", **ref.PRESETS[name]}
    torch.manual_seed(0)
    ours = wavehax.WavehaxGenerator.from_config(cfg).eval()
    reference = ref.WavehaxGenerator(**ref.PRESETS[name]).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    kf, kt = ref.kernel_pair(cfg["kernel_size"])
    c, m, bins = cfg["channels"], cfg["mult_channels"], cfg["n_fft"] // 2 + 1
    block = c * kf * kt + 2 * c + (c * c * m + c * m) + (c * m * c + c) + c
    count = (bins * bins * 7 + bins) + (cfg["in_channels"] * bins * 7 + bins) + 5 * c + 2 * c + 8 * block + 2 * c + \
        (2 * c + 2)
    assert sum(p.numel() for p in ours.parameters()) == count
    if name == "v1":
        assert count == 622_951
    assert ours.blocks[0].dwconv.weight.shape == (c, 1, kf, kt)
    frames = 12
    mel, f0 = torch.randn(1, 100, frames), torch.full((1, 1, frames), 180.0)
    got = ours.inference(mel, f0, torch.Generator().manual_seed(1))
    want = reference.inference(mel, f0, torch.Generator().manual_seed(1))
    assert got.shape == (1, 1, frames * cfg["hop_length"])
    assert (got - want).abs().max() < 1e-4


def test_log_magnitude_phase_configuration_matches_reference():
    kw = dict(in_channels=8, channels=4, num_blocks=2, n_fft=16, hop_length=8, sample_rate=8000,
              use_logmag_phase=True)
    torch.manual_seed(0)
    reference = ref.WavehaxGenerator(**kw).eval()
    ours = wavehax.WavehaxGenerator(**kw).eval()
    ours.load_state_dict(reference.state_dict())
    mel, f0 = torch.randn(2, 8, 10), torch.full((2, 1, 10), 300.0)
    torch.testing.assert_close(ours.inference(mel, f0, torch.Generator().manual_seed(2)),
                               reference.inference(mel, f0, torch.Generator().manual_seed(2)), atol=1e-4, rtol=1e-4)


def test_unsupported_configuration_values_are_clear_errors():
    for kw, arg in (({"prior_type": "sine"}, "prior_type"), ({"use_layer_norm": False}, "use_layer_norm"),
                    ({"kernel_size": 6}, "kernel_size"), ({"kernel_size": [13, 8]}, "kernel_size"),
                    ({"drop_prob": 1.0}, "drop_prob")):
        assert_raises_naming(lambda: wavehax.WavehaxGenerator(channels=4, num_blocks=1, **kw), ValueError,
                             "WavehaxGenerator", f"'{arg}'")
    model = wavehax.WavehaxGenerator(channels=4, num_blocks=1, drop_prob=0.1)
    mel, f0 = torch.randn(1, 100, 6), torch.full((1, 1, 6), 200.0)
    assert model.eval().inference(mel, f0).shape == (1, 1, 6 * HOP)  # stochastic depth is off in eval
    with pytest.raises(NotImplementedError, match="drop_prob"):
        model.train()(mel, f0)


def test_bad_inputs_name_the_argument():
    model = wavehax.WavehaxGenerator(channels=4, num_blocks=1)
    mel, f0 = torch.randn(1, 100, 10), torch.full((1, 1, 10), 100.0)
    assert_raises_naming(lambda: model(mel, f0[..., :9]), ValueError, "WavehaxGenerator", "'f0'", "frames")
    assert_raises_naming(lambda: model(mel, -f0), ValueError, "WavehaxGenerator", "'f0'", "non-negative")
    assert_raises_naming(lambda: model(mel[:, :80], f0), ValueError, "WavehaxGenerator", "'mel'", "100")


# ---------------------------------------------------------------- the ops, backend by backend
def _block_args(c, framewise, dtype=torch.float32, shape=(2, 9, 11), k=7, seed=0):
    """(x, parameters..., eps, framewise) for the block op, non-trivial norm affine and layer scale;
    k: square taps or (frequency taps, time taps)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, std=1.0: (std * torch.randn(*s, generator=g)).to(dtype)  # noqa: E731
    kf, kt = (k, k) if isinstance(k, int) else k
    return [r(*shape, c), r(c, 1, kf, kt, std=0.2), 1 + r(c, std=0.3), r(c, std=0.3), r(2 * c, c, std=0.3),
            r(2 * c, std=0.1), r(c, 2 * c, std=0.3), r(c, std=0.1), r(c, std=0.5), 1e-6, framewise]


def _prior_args(batch=3):
    f0 = torch.tensor([[[70.0, 70.0, 0.0, 123.4, 400.0, 1000.0, 2000.0, 2000.0]]]).repeat(batch, 1, 1)
    f0[1:] *= 1.3
    g = torch.Generator().manual_seed(1)
    return [f0, 0.01 * torch.randn(batch, 1, 8 * HOP, generator=g), torch.rand(batch, generator=g, dtype=torch.float64),
            HOP, SR, 0.1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c", [32, 8, 3])  # AVX2 paths for 16 | C and 8 | C, the scalar loop otherwise
@pytest.mark.parametrize("framewise", [False, True])
@pytest.mark.parametrize("k", [7, (13, 7), (5, 3), (3, 9)])  # official v1, v2; the AVX2 path's loop of time taps
def test_block_op_matches_reference(backend, c, framewise, k):
    args = _block_args(c, framewise, shape=(2, 15, 11), k=k)
    want = ref.convnext2d_block(*args)
    got = run_backend(backend, BLOCK, LAUNCHER("convnext2d_block"), *args)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # the module's block applied in NCHW agrees too
    block = ref.ConvNeXtBlock2d(c, 2, k, framewise, 1.0)
    with torch.no_grad():
        for p, v in zip([block.dwconv.weight, block.norm.gamma, block.norm.beta], args[1:4]):
            p.copy_(v)
        block.pwconv1.weight.copy_(args[4][..., None, None]), block.pwconv1.bias.copy_(args[5])
        block.pwconv2.weight.copy_(args[6][..., None, None]), block.pwconv2.bias.copy_(args[7])
        block.gamma.copy_(args[8].reshape(1, -1, 1, 1))
        torch.testing.assert_close(block(args[0].permute(0, 3, 1, 2)).permute(0, 2, 3, 1), want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("framewise", [False, True])
@pytest.mark.parametrize("c", [32, 16, 24, 8])  # hidden 2c; AVX-512 needs 16 | C, hidden, AVX2 8
# every frame reflected; windows of 6 (AVX2) and 12 (AVX-512) frames reflected at the end; interior
# windows and a remainder
@pytest.mark.parametrize("frames", [5, 24, 29])
def test_block_op_on_every_isa(cpu_isa, framewise, c, frames):
    """The CPU block's vector kernels (AVX-512 for C and hidden multiples of 16 at the AVX-512 level,
    AVX2 otherwise) and its portable loop (scalar level) agree with the reference, for the official
    kernels and for time taps other than the unrolled 7."""
    for k in [7, (13, 7), (3, 9)]:
        args = _block_args(c, framewise, shape=(2, 15, frames), k=k)
        torch.testing.assert_close(BLOCK(*args), ref.convnext2d_block(*args), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_block_op_noncontiguous_empty_and_float64(backend):
    args = _block_args(16, False, shape=(1, 8, 13))
    want = ref.convnext2d_block(*args)
    got = run_backend(backend, BLOCK, LAUNCHER("convnext2d_block"), noncontig(args[0]), *args[1:])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    empty = _block_args(8, True, shape=(0, 8, 9))
    assert run_backend(backend, BLOCK, LAUNCHER("convnext2d_block"), *empty).shape == (0, 8, 9, 8)
    args = _block_args(5, True, torch.float64, shape=(2, 7, 6), k=5)  # other kernel sizes too
    got = run_backend(backend, BLOCK, LAUNCHER("convnext2d_block"), *args)
    torch.testing.assert_close(got, ref.convnext2d_block(*args), atol=1e-12, rtol=0)


@pytest.mark.skipif(LAUNCHER("convnext2d_block") is None, reason="triton not installed")
@pytest.mark.parametrize("c,channel_tile,hidden_tile", [(24, None, 16), (40, 16, 16), (40, 32, 64)])
@pytest.mark.parametrize("framewise", [False, True])
def test_block_triton_tiles_channels_and_hidden(c, channel_tile, hidden_tile, framewise):
    """Hidden layers wider than the hidden tile (H = 2C), channels wider than the channel tile (each
    output tile recomputes the hidden tiles from input tiles): small tiles forced here, the paths the
    default tiles take for large C and H on a GPU."""
    launcher = LAUNCHER("convnext2d_block")
    args = _block_args(c, framewise)
    want = ref.convnext2d_block(*args)
    got = launcher(*to(args, triton_device()), channel_tile=channel_tile, hidden_tile=hidden_tile)
    torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-4)
    for bad in (8, 48, 2.0):
        assert_raises_naming(lambda: launcher(*args, channel_tile=bad), ValueError, "convnext2d_block",
                             "'channel_tile'")


@pytest.mark.parametrize("framewise", [False, True])
def test_block_op_gradcheck_and_opcheck(framewise):
    args = _block_args(3, framewise, torch.float64, shape=(1, 5, 6), k=3)
    tensors = [a.requires_grad_() for a in args[:9]]
    assert torch.autograd.gradcheck(lambda *t: BLOCK(*t, 1e-6, framewise), tensors)
    opcheck(BLOCK, _block_args(8, framewise, shape=(1, 8, 9)))


def test_block_op_bad_input():
    args = _block_args(4, False, shape=(1, 8, 9))
    bad_pw2 = list(args)
    bad_pw2[6] = bad_pw2[6][:, :5]
    assert_raises_naming(lambda: BLOCK(*bad_pw2), RuntimeError, "wavehax_convnext2d_block", "'pw2_weight'", "[4, 8]")
    bad_dtype = list(args)
    bad_dtype[4] = bad_dtype[4].double()
    assert_raises_naming(lambda: BLOCK(*bad_dtype), RuntimeError, "wavehax_convnext2d_block", "'pw1_weight'", "dtype")
    short = _block_args(4, False, shape=(1, 8, 3))  # 3 frames cannot be reflect-padded by 3
    assert_raises_naming(lambda: BLOCK(*short), RuntimeError, "wavehax_convnext2d_block", "'x'", "reflect")
    block = ref.ConvNeXtBlock2d(4, 2, 7, False, 0.5)
    assert_raises_naming(lambda: wavehax.convnext2d_block(torch.zeros(1, 8, 9, 5), block), ValueError,
                         "convnext2d_block", "'x'", "4]")
    assert_raises_naming(lambda: wavehax.convnext2d_block(torch.zeros(1, 8, 9, 4, dtype=torch.int32), block),
                         TypeError, "convnext2d_block", "'x'", "float32")


@pytest.mark.parametrize("backend", BACKENDS)
def test_prior_op_matches_explicit_sum(backend):
    args = _prior_args()
    f0, noise, phase0 = args[:3]
    want = ref.harmonic_prior_explicit(f0, HOP, SR, noise, phase0)
    got = run_backend(backend, PRIOR, LAUNCHER("harmonic_prior"), *args)
    assert got.dtype == torch.float32 and (got - want).abs().max() < 1e-6
    empty = [torch.zeros(0, 1, 4), torch.zeros(0, 1, 4 * HOP), torch.zeros(0, dtype=torch.float64), HOP, SR, 0.1]
    assert run_backend(backend, PRIOR, LAUNCHER("harmonic_prior"), *empty).shape == (0, 1, 4 * HOP)


@pytest.mark.skipif(not HAS_CPP, reason="the C++ kernel")
def test_prior_chunks_in_parallel_are_the_serial_sums():
    """The CPU prior runs 32-frame chunks in parallel from phases recorded by a serial pass: with any
    number of threads, bit for bit the one-thread result; several chunks and a short last one, and
    against the explicit sum."""
    g = torch.Generator().manual_seed(2)
    f0 = 60 + 300 * torch.rand(2, 1, 101, generator=g)
    f0[:, :, 40:45] = 0.0  # unvoiced frames inside a chunk
    noise = 0.01 * torch.randn(2, 1, 101 * HOP, generator=g)
    args = [f0, noise, torch.rand(2, generator=g, dtype=torch.float64), HOP, SR, 0.1]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = PRIOR(*args)
        torch.set_num_threads(max(2, threads))
        assert_same(PRIOR(*args), serial)
    finally:
        torch.set_num_threads(threads)
    assert (serial - ref.harmonic_prior_explicit(*args[:1], HOP, SR, *args[1:3])).abs().max() < 1e-5


def test_prior_on_every_isa(cpu_isa):
    """At the AVX-512 level the prior's sines are a vectorised reduction and Taylor series (< 3e-14
    relative), at the others libm's: the float32 outputs are the same bits.  F0 from 1e-5 Hz (the
    largest arguments: 1.9e-5 Hz takes the series at ~1e9 rad, 1.7e-5 Hz goes back to libm) to
    Nyquist, unvoiced frames, and against the explicit sum."""
    from pyops import _library

    g = torch.Generator().manual_seed(3)
    f0 = torch.exp(torch.empty(2, 1, 300).uniform_(-11.5, 9.4, generator=g))
    f0[0, 0, :6] = torch.tensor([1.9e-5, 1.7e-5, 1e-5, 0.0, 11999.0, 12000.0])
    f0[1, 0, ::5] = 0.0
    for hop in (HOP, 600):  # frames of one span and of three (256 samples each, the last short)
        noise = 0.01 * torch.randn(2, 1, 300 * hop, generator=g)
        args = [f0, noise, torch.rand(2, generator=g, dtype=torch.float64), hop, SR, 0.1]
        _library.set_cpu_isa(cpu_isa)
        got = PRIOR(*args)
        _library.set_cpu_isa("scalar")
        assert_same(got, PRIOR(*args))
    speech = [60 + 340 * torch.rand(1, 1, 50, generator=g), 0.01 * torch.randn(1, 1, 50 * HOP, generator=g),
              torch.rand(1, generator=g, dtype=torch.float64)]
    _library.set_cpu_isa(cpu_isa)
    want = ref.harmonic_prior_explicit(speech[0], HOP, SR, *speech[1:])
    assert (PRIOR(*speech, HOP, SR, 0.1) - want).abs().max() < 1e-6


def test_prior_op_opcheck_gradient_and_bad_input():
    args = _prior_args(batch=2)
    opcheck(PRIOR, args)
    noise = args[1].clone().requires_grad_()
    out = PRIOR(args[0], noise, *args[2:])
    (grad,) = torch.autograd.grad(out, noise, torch.arange(out.numel(), dtype=torch.float32).reshape(out.shape))
    assert torch.equal(grad, torch.arange(out.numel(), dtype=torch.float32).reshape(out.shape))  # additive noise
    f0, noise, phase0 = args[:3]
    assert_raises_naming(lambda: wavehax.harmonic_prior(f0, HOP, SR, noise, phase0.float()), TypeError,
                         "harmonic_prior", "'phase0'", "float64")
    assert_raises_naming(lambda: wavehax.harmonic_prior(f0, HOP, SR, noise[..., :-1], phase0), ValueError,
                         "harmonic_prior", "'noise'", str(8 * HOP))
    assert_raises_naming(lambda: PRIOR(f0, noise, phase0, 0, SR, 0.1), RuntimeError, "wavehax_harmonic_prior",
                         "'hop_length'", "positive")


def test_ops_under_torch_compile():
    block_args, prior_args = _block_args(8, False, shape=(1, 8, 9)), _prior_args(batch=1)

    def both(x, f0, noise, phase0):
        return BLOCK(x, *block_args[1:]), PRIOR(f0, noise, phase0, HOP, SR, 0.1)

    compiled = torch.compile(both, fullgraph=True)
    inputs = (block_args[0], *prior_args[:3])
    for got, want in zip(compiled(*inputs), both(*inputs)):
        torch.testing.assert_close(got, want, atol=0, rtol=0)


@pytest.mark.skipif(LAUNCHER("harmonic_prior") is None, reason="triton not installed")
def test_triton_launchers_check_their_arguments():
    f0, noise, phase0 = torch.full((1, 1, 3), 100.0), torch.zeros(1, 1, 3 * 8), torch.zeros(1, dtype=torch.float64)
    prior = LAUNCHER("harmonic_prior")
    assert_raises_naming(lambda: prior(f0, noise[..., :5], phase0, 8, 8000, 0.1), RuntimeError, "wavehax_harmonic_prior",
                         "'noise'")
    assert_raises_naming(lambda: prior(f0.fill_(float("nan")), noise, phase0, 8, 8000, 0.1), RuntimeError,
                         "wavehax_harmonic_prior", "'f0'")
    x = torch.randn(1, 8, 9, 4)
    params = [torch.randn(4, 1, 3, 3), torch.ones(4), torch.zeros(4), torch.randn(8, 4), torch.zeros(8),
              torch.randn(4, 8), torch.zeros(4), torch.ones(4)]
    bad = params[:3] + [torch.randn(8, 5)] + params[4:]
    assert_raises_naming(lambda: LAUNCHER("convnext2d_block")(x, *bad, 1e-6, False), RuntimeError,
                         "wavehax_convnext2d_block", "'pw1_weight'")


def test_prior_validation_and_tiny_f0():
    """F0 = 1e-6 Hz returns (it hung: an int harmonic count overflowed); NaN F0 and sample rates
    of 2^31 or more are rejected naming the argument; zero frames give an empty prior."""
    noise, phase0 = torch.zeros(1, 1, 4), torch.zeros(1, dtype=torch.float64)
    out = wavehax.harmonic_prior(torch.full((1, 1, 1), 1e-6), 4, 24000, noise, phase0)
    assert torch.isfinite(out).all()
    assert_raises_naming(lambda: wavehax.harmonic_prior(torch.full((1, 1, 1), float("nan")), 4, 24000, noise, phase0),
                         ValueError, "harmonic_prior", "'f0'")
    assert_raises_naming(lambda: wavehax.harmonic_prior(torch.full((1, 1, 1), 100.0), 4, 2 ** 31, noise, phase0),
                         ValueError, "harmonic_prior", "'sample_rate'")
    assert_raises_naming(lambda: PRIOR(torch.full((1, 1, 1), float("nan")), noise, phase0, 4, 24000, 0.1),
                         RuntimeError, "wavehax_harmonic_prior", "'f0'")
    empty = torch.zeros(1, 1, 0)
    assert ref.harmonic_prior(empty, empty, phase0, 4, 24000).shape == (1, 1, 0)


def test_generator_float64_and_clear_dtype_error():
    g = wavehax.WavehaxGenerator(in_channels=8, channels=4, num_blocks=1, n_fft=16, hop_length=8, sample_rate=8000)
    mel, f0 = torch.randn(1, 8, 6), torch.full((1, 1, 6), 200.0)
    y32 = g.inference(mel, f0, torch.Generator().manual_seed(0))
    y64 = g.double().inference(mel.double(), f0.double(), torch.Generator().manual_seed(0))
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), y32, atol=1e-5, rtol=1e-4)
    assert_raises_naming(lambda: g.bfloat16()(mel.bfloat16(), f0), TypeError, "WavehaxGenerator", "float32 or float64")


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_prior_sub_hz_f0_matches_explicit_sum(backend):
    """F0 = 5e-4 Hz: K = 2.4e7 harmonics, and a start phase that puts theta at -2.6e-8 and 1.05e-7, where
    sin(theta / 2) < 1e-7 but K theta = -0.63 and 2.5. A first-order small-angle branch there gave
    theta K (K + 1) / 2, up to 2x the true sum."""
    f0, hop, pf, phase0 = 5e-4, 2, 0.1, -2.5e-8
    f0_32 = float(torch.tensor(f0, dtype=torch.float32))
    k = math.floor(SR / 2 / f0)
    args = (torch.full((1, 1, 1), f0), torch.zeros(1, 1, hop), torch.tensor([phase0], dtype=torch.float64), hop, SR,
            pf)
    got = (ref.harmonic_prior(*args) if backend == "reference" else
           run_backend(backend, PRIOR, LAUNCHER("harmonic_prior"), *args))
    ks = torch.arange(1, k + 1, dtype=torch.float64)
    amp = pf * math.sqrt(2 * f0_32 / (SR / 2))
    for s in range(hop):
        theta = 2 * math.pi * (phase0 + (s + 1) * f0_32 / SR)
        want = amp * sum(torch.sin(chunk * theta).sum().item() for chunk in ks.split(1 << 22))
        assert abs(got[0, 0, s].item() - want) <= 1e-5 * abs(want), (s, got[0, 0, s].item(), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prior_f0_below_floor_matches_reference(backend):
    """0 < F0 < 1e-12 Hz counts as 1e-12 Hz on every backend (the C++ kernel counted 1e34 harmonics)."""
    args = (torch.tensor([[[1e-30, 1e-13, 0.0, 220.0]]]), torch.zeros(1, 1, 40), torch.zeros(1, dtype=torch.float64),
            10, 22050, 0.1)
    want = ref.harmonic_prior(*args)
    got = run_backend(backend, PRIOR, LAUNCHER("harmonic_prior"), *args)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_prior_rejects_bad_scalars_naming_them():
    f0, noise, phase0 = torch.full((1, 1, 2), 100.0), torch.zeros(1, 1, 8), torch.zeros(1, dtype=torch.float64)
    assert_raises_naming(lambda: wavehax.harmonic_prior(f0, -4, SR, noise, phase0), ValueError, "harmonic_prior",
                         "'hop_length'")
    for pf in (float("nan"), float("inf"), 1e300):
        assert_raises_naming(lambda: wavehax.harmonic_prior(f0, 4, SR, noise, phase0, pf), ValueError,
                             "harmonic_prior", "'power_factor'")
        assert_raises_naming(lambda: PRIOR(f0, noise, phase0, 4, SR, pf), RuntimeError, "wavehax_harmonic_prior",
                             "'power_factor'")
