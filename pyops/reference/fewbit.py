"""fewbit in pure PyTorch: bucketize into codes, LSB-first bit packing, and
the backward ``levels[code] * grad``.

Element i's code occupies bits [b i, b i + b) of a uint8 buffer of
ceil(n b / 8) bytes. code(x) = number of inner borders strictly below x (a
value equal to a border goes to the lower piece); NaN gets code 0.
"""

from __future__ import annotations

import math

import torch


def encode(x: torch.Tensor, borders: torch.Tensor, bits: int) -> torch.Tensor:
    n = x.numel()
    codes = torch.bucketize(x.reshape(-1).float(), borders.float(), right=False)
    codes = torch.where(torch.isnan(x.reshape(-1)), torch.zeros_like(codes), codes)
    shifts = torch.arange(bits, device=x.device)
    stream = ((codes[:, None] >> shifts) & 1).reshape(-1)  # bit j of code i at position b i + j
    stream = torch.nn.functional.pad(stream, (0, math.ceil(n * bits / 8) * 8 - n * bits))
    return (stream.reshape(-1, 8) << torch.arange(8, device=x.device)).sum(-1).to(torch.uint8)


def decode(codes: torch.Tensor, n: int, bits: int) -> torch.Tensor:
    stream = (codes.long()[:, None] >> torch.arange(8, device=codes.device)) & 1
    stream = stream.reshape(-1)[: n * bits].reshape(n, bits)
    return (stream << torch.arange(bits, device=codes.device)).sum(-1)


def backward(grad: torch.Tensor, codes: torch.Tensor, levels: torch.Tensor, bits: int) -> torch.Tensor:
    idx = decode(codes, grad.numel(), bits)
    acc = torch.float64 if grad.dtype == torch.float64 else torch.float32  # one rounding for half/bf16
    return (levels.to(acc)[idx].reshape(grad.shape) * grad.to(acc)).to(grad.dtype)
