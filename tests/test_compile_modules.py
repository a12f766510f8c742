"""torch.compile(fullgraph=True, dynamic=False) of every nn.Module of the pam, fewbit, gaunt and
wavehax families: the compiled forward, and the gradients of a backward through it where the module
trains, equal eager's.  Shapes are tiny: compile time is the whole cost of this file, about 100 s of
CPU on 2 cores from a cold inductor cache (WavehaxGenerator's forward and backward ~35 s of it; each
FewBit module is one custom op in the graph, well under a second)."""

import pytest
import torch
from torch import nn

from pyops import fewbit, gaunt, pam, wavehax


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """The FewBit modules share one forward code object: without a reset their compiles would add up
    to dynamo's recompile limit, which fullgraph=True turns into an error."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def compare(module: nn.Module, *inputs: torch.Tensor, train: bool = True, seed: int = 0, rtol: float = 1e-5,
            atol: float = 1e-6) -> None:
    """Eager, then compiled: the outputs, and (train) the gradients of every floating input and
    parameter for one seeded random cotangent.  The global RNG is re-seeded before each run (the
    module may draw random numbers; inductor draws them through ATen here, see fallback_random)."""

    def run(fn):
        xs = [x.detach().clone().requires_grad_(train and x.is_floating_point()) for x in inputs]
        module.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        out = fn(*xs)
        out = out[0] if isinstance(out, tuple) else out  # WavehaxGenerator: (waveform, prior)
        grads = []
        if train:
            cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=out.dtype)
            out.backward(cot)
            grads = [x.grad for x in xs if x.requires_grad] + [p.grad for p in module.parameters()]
        return out.detach(), grads

    want, want_grads = run(module)
    got, got_grads = run(torch.compile(module, fullgraph=True, dynamic=False))
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        assert (g is None) == (w is None)
        if w is not None:
            torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------ pam
def test_pam_linear():
    torch.manual_seed(0)
    compare(pam.PAMLinear(8, 6, backward="exact"), torch.randn(3, 8))


def test_pam_conv2d():
    torch.manual_seed(0)
    compare(pam.PAMConv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.randn(2, 4, 7, 6))


# --------------------------------------------------------------------- fewbit
FEWBIT_MODULES = [*fewbit.MODULE_CLASSES.values(), fewbit.FewBitQuickGELU]


@pytest.mark.parametrize("cls", FEWBIT_MODULES, ids=lambda c: c.__name__)
def test_fewbit_module(cls):
    x = torch.linspace(-7, 7, 48).reshape(4, 12)  # every piece of the 2-bit tables, both tails
    compare(cls(bits=2), x)


# ---------------------------------------------------------------------- gaunt
def test_gaunt_tensor_product():
    """The grid route, the fused custom op with its own autograd (dense and fourier are ATen
    matmuls, einsums and FFTs, and would add ~7 s and ~16 s of compile time)."""
    torch.manual_seed(0)
    tp = gaunt.GauntTensorProduct("0e+1o+2e", "0e+1o", "0e+1o+2e", channels=3, method="grid")
    with torch.no_grad():  # non-trivial degree weights
        for w in (tp.weight1, tp.weight2, tp.weight_out):
            w.uniform_(0.5, 1.5)
    compare(tp, torch.randn(2, 3, 9), torch.randn(2, 1, 4), rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------- wavehax
def test_wavehax_generator():
    torch.manual_seed(0)
    gen = wavehax.WavehaxGenerator(in_channels=8, channels=4, num_blocks=1, n_fft=16, hop_length=8,
                                   sample_rate=8000)
    mel, f0 = torch.randn(1, 8, 6), torch.full((1, 1, 6), 200.0)
    f0[..., 4:] = 0
    # the prior draws its noise from the global RNG when no generator is given (a torch.Generator
    # argument is not traceable by dynamo); inductor's own RNG differs from eager's, ATen's is the same
    with torch._inductor.config.patch(fallback_random=True):
        compare(gen, mel, f0, rtol=1e-4, atol=1e-5)
