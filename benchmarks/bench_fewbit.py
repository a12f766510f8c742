"""fewbit: forward+backward time and saved bytes vs native torch activations,
and the activation memory of a transformer MLP block's training step."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import torch
from torch import nn

from benchmarks.harness import Case, Row, time_ms
from pyops import fewbit


def _fwd_bwd(fn, x, g):
    def step():
        x.grad = None
        fn(x).backward(g)

    return step


def saved_bytes(fn, *inputs) -> int:
    """Bytes autograd keeps for the backward, measured with saved_tensors_hooks."""
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    del out
    return sum(total)


def fwd_bwd_bytes(numel: int, itemsize: int, bits: int) -> int:
    """Least traffic of one forward+backward: the forward reads x and writes y and the codes, the
    backward reads the gradient and the codes and writes dx."""
    return 4 * numel * itemsize + 2 * ((numel * bits + 7) // 8)


def _shape(numel: int) -> str:
    return f"{numel // 2 ** 20}M" if numel >= 2 ** 20 else f"{numel // 2 ** 10}K"


def _activation_case(name: str, numel: int, dtype: torch.dtype, bits: int, device: torch.device,
                     min_run_time: float = 1.0) -> list[Row]:
    x = torch.randn(numel, device=device, dtype=dtype, requires_grad=True)
    g = torch.randn(numel, device=device, dtype=dtype)
    native = fewbit.FUNCTIONS[name]
    ours = fewbit.activation(name, bits)
    dt = str(dtype).replace("torch.", "")
    # each step allocates fresh pages (~130 MB at 16M), whose faults dominate and vary on a VM:
    # interleave the two and keep each one's best median of three
    t_ours, t_native = math.inf, math.inf
    for _ in range(3):
        t_ours = min(t_ours, time_ms(_fwd_bwd(ours, x, g), device, min_run_time=min_run_time))
        t_native = min(t_native, time_ms(_fwd_bwd(native, x, g), device, min_run_time=min_run_time))
    return [Row("fewbit", f"{name} fwd+bwd ({bits}-bit)", _shape(numel), dt, t_ours,
                {f"torch {name}": t_native}, bytes=fwd_bwd_bytes(numel, x.element_size(), bits), size=numel,
                size_unit="elements")]


def _saved_case(name: str, numel: int, dtype: torch.dtype, bits: int, device: torch.device) -> list[Row]:
    x = torch.randn(numel, device=device, dtype=dtype, requires_grad=True)
    mib = 2 ** 20
    return [Row("fewbit", f"{name} saved ({bits}-bit)", _shape(numel), str(dtype).replace("torch.", ""),
                saved_bytes(fewbit.activation(name, bits), x) / mib,
                {f"torch {name}": saved_bytes(fewbit.FUNCTIONS[name], x) / mib}, unit="MiB")]


class MLPBlock(nn.Module):
    """A transformer MLP block: LayerNorm -> Linear(d, 4d) -> GELU -> Linear(4d, d), residual."""

    def __init__(self, d: int):
        super().__init__()
        self.norm, self.up, self.act, self.down = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)

    def forward(self, x):
        return x + self.down(self.act(self.up(self.norm(x))))


def _mlp_case(tokens: int, d: int, device: torch.device) -> Row:
    torch.manual_seed(0)
    native = MLPBlock(d).to(device)
    converted = MLPBlock(d).to(device)
    converted.load_state_dict(native.state_dict())
    fewbit.convert(converted, bits=3)
    x = torch.randn(tokens, d, device=device, requires_grad=True)
    mib = 2 ** 20
    return Row("fewbit", "MLP block step: saved activations (3-bit GELU)", f"{tokens}x{d}", "float32",
               saved_bytes(converted, x) / mib, {"native GELU": saved_bytes(native, x) / mib}, unit="MiB",
               note="activation memory of one training step, measured with saved_tensors_hooks")


# Peak RSS in a fresh interpreter (MALLOC_MMAP_THRESHOLD_ must be set before it starts), one forked
# child per variant (harness.forked_peak_rss).
_RSS_SCRIPT = r"""
import json, sys
import torch
from pyops import fewbit
from benchmarks.bench_fewbit import MLPBlock
from benchmarks.harness import forked_peak_rss

tokens, d = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(1)


def setup(convert):
    torch.manual_seed(0)
    block = MLPBlock(d)
    if convert:
        fewbit.convert(block, bits=3)
    return block, torch.randn(tokens, d), torch.optim.SGD(block.parameters(), lr=0.01)


def step(state):
    block, x, opt = state
    block(x).square().mean().backward()
    opt.step()


print(json.dumps({name: forked_peak_rss(lambda: setup(convert), step)
                  for name, convert in (("native", False), ("fewbit", True))}))
"""


def _mlp_rss_case(tokens: int, d: int) -> list[Row]:
    """Peak RSS of one MLP block training step (forward, backward, SGD step) above the RSS before it."""
    if not sys.platform.startswith("linux") or not os.access("/proc/self/clear_refs", os.W_OK):
        return []  # no resettable high-water mark here: the saved-bytes row stands alone
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536",
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(tokens), str(d)], capture_output=True, text=True,
                         timeout=600, env=env, check=True)
    res = json.loads(run.stdout.strip().splitlines()[-1])
    mib = 2 ** 20
    return [Row("fewbit", "MLP block step: peak RSS (3-bit GELU)", f"{tokens}x{d}", "float32",
                res["fewbit"] / mib, {"native GELU": res["native"] / mib}, unit="MiB",
                note="RSS high-water mark of one training step above the RSS before it, forked child per variant")]


def cases(device: torch.device, quick: bool) -> list[Case]:
    big = 2 ** 20 if quick else 2 ** 24
    sizes = [2 ** 18, 2 ** 20] if quick else [2 ** 20, 2 ** 22, 2 ** 24]
    mrt = 0.3 if quick else 1.0
    out = []
    for name, dtype in [("gelu", torch.float32), ("silu", torch.float32), ("gelu", torch.bfloat16),
                        ("silu", torch.bfloat16)]:
        # --quick: the plot's line for gelu fp32 only, the largest size for the others
        for n in sizes if not quick or (name, dtype) == ("gelu", torch.float32) else [big]:
            out.append(Case(f"fewbit {name} {dtype} {_shape(n)}",
                            lambda m=name, d=dtype, n=n: _activation_case(m, n, d, 3, device, mrt)))
        out.append(Case(f"fewbit {name} {dtype} saved",
                        lambda m=name, d=dtype: _saved_case(m, big, d, 3, device), timed=False))
    tokens = 512 if quick else 4096
    out.append(Case("fewbit MLP block", lambda: [_mlp_case(tokens, 768, device)], timed=False))
    if device.type == "cpu":
        out.append(Case("fewbit MLP block RSS", lambda: _mlp_rss_case(tokens, 768), timed=False))
    return out
