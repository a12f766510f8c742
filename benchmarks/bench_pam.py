"""pam: PAM matmul vs torch.matmul and vs the official code's broadcast-and-sum
CPU fallback; elementwise PAM vs torch.mul."""

from __future__ import annotations

import torch

from benchmarks.harness import Case, Row, io_bytes, time_ms
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


def _matmul_case(n: int, dtype: torch.dtype, device: torch.device) -> Row:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    baselines = {"torch.matmul": time_ms(lambda: torch.matmul(a, b), device)}
    note = ""
    if device.type == "cpu" and dtype == torch.float32:
        if n ** 3 <= _FALLBACK_MAX_ELEMENTS:
            baselines["broadcast fallback"] = time_ms(lambda: official_style_matmul(a, b), device, min_run_time=0.2)
        else:
            note = f"broadcast fallback skipped: needs > {4 * n ** 3 / 2 ** 30:.0f} GiB per temporary"
    ours = time_ms(lambda: pam.matmul(a, b), device)
    dt = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    return Row("pam", "matmul", f"{n}x{n}x{n}", dt, ours, baselines, note=note, flops=2 * n ** 3)


def _mul_case(numel: int, device: torch.device) -> Row:
    a = torch.randn(numel, device=device)
    b = torch.randn(numel, device=device)
    return Row("pam", "mul", f"{numel // 2 ** 20}M", "fp32", time_ms(lambda: pam.mul(a, b), device),
               {"torch.mul": time_ms(lambda: torch.mul(a, b), device)}, bytes=3 * io_bytes(a))  # a, b in; out


def cases(device: torch.device, quick: bool) -> list[Case]:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # compare against true fp32 products
    sizes = [256, 512] if quick else [256, 512, 1024, 2048]
    out = [Case(f"pam matmul {n}^3 fp32", lambda n=n: _matmul_case(n, torch.float32, device)) for n in sizes]
    bf16_n = 512 if quick else 1024
    out.append(Case(f"pam matmul {bf16_n}^3 bf16", lambda: _matmul_case(bf16_n, torch.bfloat16, device)))
    numel = 2 ** 20 if quick else 2 ** 24
    out.append(Case("pam mul", lambda: _mul_case(numel, device)))
    return out
