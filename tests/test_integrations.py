"""fewbit.convert and pam.convert on real HuggingFace models (tiny random BERTs; skipped without
transformers): what is converted, that training runs, the memory a few-bit backward saves, and that
weight tying and frozen parameters survive."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from pyops import fewbit, pam
from pyops.nn import FewBitGELU, PAMLinear

transformers = pytest.importorskip("transformers")
from transformers import BertConfig, BertForMaskedLM, BertModel  # noqa: E402


def tiny_config(**kw) -> "BertConfig":
    base = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    return BertConfig(**{**base, **kw})


def flat_grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])


# ------------------------------------------------------------------ fewbit
def test_fewbit_convert_bert_every_gelu_and_a_training_step():
    torch.manual_seed(0)
    model = BertModel(tiny_config())
    native = copy.deepcopy(model)
    report = fewbit.convert(model, bits=3)
    layers = model.encoder.layer
    for i, layer in enumerate(layers):
        assert isinstance(layer.intermediate.intermediate_act_fn, FewBitGELU), i
        key = f"encoder.layer.{i}.intermediate.intermediate_act_fn"
        assert report[key] == "transformers.activations.GELUActivation -> FewBitGELU(bits=3)", report
    assert not [m for m in model.modules() if type(m).__module__.startswith("transformers.activations")]

    ids = torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(1))
    out, want = model(ids).last_hidden_state, native(ids).last_hidden_state
    torch.testing.assert_close(out, want, rtol=0, atol=0)  # the forward is the exact GELU
    out.square().mean().backward()
    want.square().mean().backward()
    got_g, want_g = flat_grads(model), flat_grads(native)
    assert torch.isfinite(got_g).all()
    assert torch.nn.functional.cosine_similarity(got_g, want_g, dim=0) > 0.99  # 3-bit GELU derivative

    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = (model(ids).last_hidden_state - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


# Peak RSS of one training step (forward, backward, SGD step) in a fresh interpreter, one forked
# child per variant (benchmarks.harness.forked_peak_rss).
RSS_SCRIPT = r"""
import json
import torch
from transformers import BertConfig, BertModel
from pyops import fewbit
from benchmarks.harness import forked_peak_rss

B, S, H, I, L = 16, 128, 128, 4096, 2


def setup(convert):
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=64, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                                 intermediate_size=I, max_position_embeddings=S, hidden_dropout_prob=0.0,
                                 attention_probs_dropout_prob=0.0))
    if convert:
        fewbit.convert(model, bits=3)
    return model, torch.randint(0, 64, (B, S)), torch.optim.SGD(model.parameters(), lr=0.01)


def step(state):
    model, ids, opt = state
    model(ids).last_hidden_state.square().mean().backward()
    opt.step()


result = {name: forked_peak_rss(lambda: setup(convert), step) for name, convert in (("native", False), ("fewbit", True))}
result["gelu_input_bytes"] = L * B * S * I * 4
print(json.dumps(result))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_fewbit_convert_bert_lowers_peak_rss_of_a_training_step():
    """BERT with 2 layers, hidden 128, intermediate 4096, 16 x 128 tokens: native GELU keeps its
    32 MiB fp32 input per layer for the backward, FewBitGELU(bits=3) 3 MiB of codes instead, so a
    training step's peak should fall by ~2 x 29 MiB (measured: ~53 MiB, 206 -> 153 MiB)."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("cannot reset the RSS high-water mark here")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # for benchmarks.harness
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536",
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    native, ours, gelu = res["native"], res["fewbit"], res["gelu_input_bytes"]
    mib = 2 ** 20
    print(f"peak RSS of a training step: native {native / mib:.1f} MiB, fewbit {ours / mib:.1f} MiB")
    expected = gelu * (1 - 3 / 32)  # fp32 input replaced by 3 bits per element
    assert native - ours > 0.6 * expected, (native / mib, ours / mib, expected / mib)
    assert ours < 0.85 * native, (native / mib, ours / mib)


# --------------------------------------------------------------------- pam
def test_pam_convert_bert_mlm_keeps_tying_and_frozen_weights():
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config())
    emb = model.bert.embeddings
    frozen = [emb.position_embeddings.weight, emb.token_type_embeddings.weight,
              model.bert.encoder.layer[0].attention.self.query.weight]
    for p in frozen:
        p.requires_grad_(False)
    params = {name: (p, p.requires_grad) for name, p in model.named_parameters()}
    keys = set(model.state_dict())

    replaced = pam.convert(model)
    decoder = model.cls.predictions.decoder
    assert "cls.predictions.decoder" in replaced and isinstance(decoder, PAMLinear)
    assert not [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert decoder.weight is emb.word_embeddings.weight
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert {name: (p, p.requires_grad) for name, p in model.named_parameters()} == params
    assert set(model.state_dict()) == keys

    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is None for p in frozen)
    assert emb.word_embeddings.weight.grad is not None  # the tied weight: input and output use
    assert model.bert.encoder.layer[0].attention.self.key.weight.grad is not None

    model.tie_weights()  # HF re-tying on a converted model keeps the one Parameter
    assert decoder.weight is emb.word_embeddings.weight
