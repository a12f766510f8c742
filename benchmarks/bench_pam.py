"""pam: PAM matmul vs torch.matmul and vs the official code's broadcast-and-sum
CPU fallback; elementwise PAM vs torch.mul."""

from __future__ import annotations

import torch

from benchmarks.harness import Case, Row, time_ms
from pyops import pam

# The official CPU fallback materialises [n, k, m] products (and temporaries of
# the same size); beyond this many elements it would not fit a 24 GiB machine.
_FALLBACK_MAX_ELEMENTS = 300_000_000


def official_style_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The official code's CPU path: broadcast every product, range-check it with a
    real float multiply, then sum over k."""
    pa, pb = a[:, :, None], b[None, :, :]
    out = (pa.view(torch.int32) + pb.view(torch.int32) - 0x3F800000).view(torch.float32)
    true = (pa * pb).abs()
    out = torch.where(true < 1e-37, torch.zeros_like(out), out)
    return out.sum(1)


# PAM replaces each multiply of a multiply-accumulate by one integer add (of the bit patterns) and keeps
# the float add: its "ops" are counted as 2 per MAC, one integer add + one float add, and divided by the
# fp32 FMA matmul peak (2 flops per MAC) like torch.matmul's flops.
PAM_OPS_NOTE = "ops: 1 int add + 1 float add per MAC (2 per MAC) / fp32 matmul peak"


def matmul_ops(n: int) -> int:
    """Arithmetic of an n x n x n (PAM) matmul: 2 per multiply-accumulate."""
    return 2 * n ** 3


def mul_bytes(numel: int, itemsize: int = 4) -> int:
    """Least traffic of an elementwise product: a and b read, the output written."""
    return 3 * numel * itemsize


def _matmul_case(n: int, dtype: torch.dtype, device: torch.device) -> Row:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    baselines = {"torch.matmul": time_ms(lambda: torch.matmul(a, b), device)}
    note = PAM_OPS_NOTE
    if device.type == "cpu" and dtype == torch.float32:
        if n ** 3 <= _FALLBACK_MAX_ELEMENTS:
            baselines["broadcast fallback"] = time_ms(lambda: official_style_matmul(a, b), device, min_run_time=0.2)
        else:
            note += f"; broadcast fallback skipped: needs > {4 * n ** 3 / 2 ** 30:.0f} GiB per temporary"
    ours = time_ms(lambda: pam.matmul(a, b), device)
    dt = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    if dtype != torch.float32:
        note += f"; {dt} too"
    return Row("pam", "matmul", f"{n}x{n}x{n}", dt, ours, baselines, note=note, flops=matmul_ops(n),
               size=n, size_unit="n (n x n x n)")


def _mul_case(numel: int, device: torch.device) -> Row:
    a = torch.randn(numel, device=device)
    b = torch.randn(numel, device=device)
    shape = f"{numel // 2 ** 10}K" if numel < 2 ** 20 else f"{numel // 2 ** 20}M"
    return Row("pam", "mul", shape, "fp32", time_ms(lambda: pam.mul(a, b), device),
               {"torch.mul": time_ms(lambda: torch.mul(a, b), device)},
               bytes=mul_bytes(numel), size=numel, size_unit="elements")


def cases(device: torch.device, quick: bool) -> list[Case]:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # compare against true fp32 products
    sizes = [128, 256] if quick else [256, 512, 1024, 2048]
    out = [Case(f"pam matmul {n}^3 fp32", lambda n=n: _matmul_case(n, torch.float32, device)) for n in sizes]
    bf16 = [256] if quick else [512, 1024]
    out += [Case(f"pam matmul {n}^3 bf16", lambda n=n: _matmul_case(n, torch.bfloat16, device)) for n in bf16]
    numels = [2 ** 18, 2 ** 20] if quick else [2 ** 20, 2 ** 22, 2 ** 24]
    out += [Case(f"pam mul {n}", lambda n=n: _mul_case(n, device)) for n in numels]
    return out
