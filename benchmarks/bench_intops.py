"""intops: integer softmax / GELU / LayerNorm vs torch float32 and vs the papers'
float-simulated algorithms (the official codes compute the same integer
algorithm with float32 tensors and torch.floor); and an I-BERT-base encoder layer
converted by ``intops.convert_ibert`` vs HuggingFace's quant_mode and float layers."""

from __future__ import annotations

import math

import torch

import copy
import importlib.util
import sys

from benchmarks.harness import Case, Row, best_of, io_bytes, progress, time_ms
from pyops import intops
from pyops.reference import intops as ref


# ---------------------------------------------------------------- float simulations, as in I-BERT's quant_modules
def ibert_softmax_float_sim(x: torch.Tensor, s: float, output_bits: int = 8) -> torch.Tensor:
    a, b, c = ref.IBERT_EXP
    x = x - x.max(dim=-1, keepdim=True).values
    x0 = math.floor(-ref.IBERT_LN2 / s)
    x = torch.max(x, torch.tensor(30.0 * x0))
    q = torch.floor(x / x0)
    r = x - x0 * q
    z = (r + math.floor(b / s)) * r + math.floor(c / s ** 2)
    e = torch.clamp(torch.floor(z * 2 ** (30 - q)), min=0)
    # QuantAct(16): dyadic requantisation against the tensor's max, simulated in float64
    ratio = torch.tensor((2 ** 15 - 1) / float(e.max()), dtype=torch.float64)
    m, sh = torch.frexp(ratio)
    e = torch.round(e.double() * torch.floor(m * 2 ** 31 + 0.5) / 2.0 ** (31 - sh)).float()
    factor = torch.floor(2 ** 32 / e.sum(-1, keepdim=True))
    return torch.floor(e * factor / 2 ** (32 - output_bits))


def ibert_gelu_float_sim(x: torch.Tensor, s: float) -> torch.Tensor:
    s2 = s / ref.IBERT_GELU_K
    a, b = ref.IBERT_GELU
    b_int, c_int = math.floor(b / s2), math.floor((1 / a) / s2 ** 2)
    y = torch.sign(x) * ((torch.min(x.abs(), torch.tensor(-b_int)) + b_int) ** 2 + c_int)
    y = torch.floor(y / 2 ** 14)
    one = math.floor(1 / (a * s2 ** 2 * 2 ** 14))
    return x * (y + one)


def ibert_layernorm_float_sim(x: torch.Tensor, bias_int: torch.Tensor) -> torch.Tensor:
    mean = torch.round(x.mean(-1, keepdim=True))
    y = x - mean
    var = (y ** 2).sum(-1, keepdim=True)
    std = torch.floor(torch.sqrt(var))
    factor = torch.floor(2 ** 31 / std)
    return torch.floor(y * factor / 2) + bias_int


# ---------------------------------------------------------------- cases
def _case(op: str, rows: int, cols: int, device: torch.device) -> Row:
    g = torch.Generator().manual_seed(0)
    if op == "gelu":  # I-BERT's GELU runs on int32 accumulators at fine scales
        s = 1e-3
        x = torch.randint(-4000, 4001, (rows, cols), generator=g, dtype=torch.int32).to(device)
    else:
        s = 0.05
        x = torch.randint(-128, 128, (rows, cols), generator=g, dtype=torch.int64).to(torch.int8).to(device)
    xf = x.float() * s
    xsim = x.float()
    if op == "softmax":
        ours = lambda: intops.int_softmax(x, s)  # noqa: E731
        base = {"torch.softmax fp32": lambda: torch.softmax(xf, -1),
                "I-BERT float sim": lambda: ibert_softmax_float_sim(xsim, s)}
    elif op == "shiftmax":
        ours = lambda: intops.int_softmax(x, s, method="shiftmax")  # noqa: E731
        base = {"torch.softmax fp32": lambda: torch.softmax(xf, -1)}
    elif op == "shiftgelu":  # I-ViT's GELU on 8-bit activations
        ours = lambda: intops.int_gelu(x, s, method="shiftgelu")  # noqa: E731
        base = {"torch.gelu fp32": lambda: torch.nn.functional.gelu(xf)}
    elif op == "gelu":
        ours = lambda: intops.int_gelu(x, s)  # noqa: E731
        base = {"torch.gelu fp32": lambda: torch.nn.functional.gelu(xf),
                "I-BERT float sim": lambda: ibert_gelu_float_sim(xsim, s)}
    else:
        w, b = torch.ones(cols, device=device), torch.zeros(cols, device=device)
        bias_int = torch.zeros(cols, device=device)
        ours = lambda: intops.int_layernorm(x, w, b)  # noqa: E731
        base = {"torch.layer_norm fp32": lambda: torch.nn.functional.layer_norm(xf, (cols,), w, b),
                "I-BERT float sim": lambda: ibert_layernorm_float_sim(xsim, bias_int)}
    dtype = "int32" if op == "gelu" else "int8"
    return Row("intops", op, f"{rows}x{cols}", dtype, time_ms(ours, device),
               {k: time_ms(f, device) for k, f in base.items()},
               bytes=io_bytes(x, ours()), size=cols, size_unit="row length")  # input read, output written


HF_QUANT, HF_FLOAT = "HF I-BERT quant_mode", "HF I-BERT float"


def ibert_layers(batch: int, seq: int, hidden: int = 768, heads: int = 12, intermediate: int = 3072):
    """HF's I-BERT encoder layer in quant_mode, calibrated (two train-mode passes on an 8-bit input), and
    its float twin with the same weights (quant_mode=False); also the 8-bit input and its scale."""
    from transformers import IBertConfig
    from transformers.models.ibert.modeling_ibert import IBertLayer

    g = torch.Generator().manual_seed(0)
    layers = {}
    for quant in (True, False):
        config = IBertConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=intermediate,
                             quant_mode=quant, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        layers[quant] = IBertLayer(config)
    with torch.no_grad():
        for name, p in layers[True].named_parameters():  # as IBertModel's init (a bare layer has zeros)
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            elif name.endswith("LayerNorm.weight"):
                p.fill_(1.0)
    layers[False].load_state_dict(layers[True].state_dict())
    x = torch.randn(batch, seq, hidden, generator=g)
    scale = (x.abs().max() / 127).reshape(1)
    x = torch.round(x / scale).clamp(-127, 126) * scale
    with torch.no_grad():
        layers[True].train()
        for _ in range(2):
            layers[True](x, scale)
    return layers[True].eval(), layers[False].eval(), x, scale


def _ibert_layer_case(batch: int, seq: int, device: torch.device) -> Row:
    hf_quant, hf_float, x, scale = ibert_layers(batch, seq)
    ours = copy.deepcopy(hf_quant)
    intops.convert_ibert(ours)
    hf_quant, hf_float, ours, x, scale = (m.to(device) for m in (hf_quant, hf_float, ours, x, scale))
    timings = {}
    with torch.no_grad():
        progress(f"I-BERT layer {batch}x{seq}: ours (converted)")
        t_ours = best_of(lambda: ours(x, scale))
        progress(HF_QUANT)
        timings[HF_QUANT] = best_of(lambda: hf_quant(x, scale))
        progress(HF_FLOAT)
        timings[HF_FLOAT] = best_of(lambda: hf_float(x, None))
    hidden, inter, heads = 768, 3072, 12
    tokens = batch * seq
    macs = tokens * (4 * hidden * hidden + 2 * hidden * inter) + 2 * batch * heads * seq * seq * (hidden // heads)
    return Row("intops", "I-BERT encoder layer", f"{batch}x{seq}x{hidden}", "int8", t_ours, timings,
               flops=2 * macs, size=tokens, size_unit="tokens",
               note="HF's IBertLayer with its quant modules swapped by convert_ibert; best of 3 warm calls")


def cases(device: torch.device, quick: bool) -> list[Case]:
    shapes = [(1024, 128), (1024, 512)] if quick else [(4096, 128), (4096, 512), (4096, 768), (4096, 2048)]
    out = [Case(f"intops {op} {r}x{c}", lambda op=op, r=r, c=c: _case(op, r, c, device))
           for r, c in shapes for op in ("softmax", "shiftmax", "gelu", "shiftgelu", "layernorm")]
    if importlib.util.find_spec("transformers") is None:
        print("bench_intops: the I-BERT encoder layer row is skipped: transformers is not installed", file=sys.stderr)
    else:
        batch = 2 if quick else 8
        out.append(Case(f"intops I-BERT encoder layer {batch}x128x768", lambda: _ibert_layer_case(batch, 128, device)))
    return out
