"""fewbit in pure PyTorch: bucketize into codes, LSB-first bit packing, and
the backward ``levels[code] * grad``.

Element i's code occupies bits [b i, b i + b) of a uint8 buffer of
ceil(n b / 8) bytes. code(x) = number of inner borders strictly below x (a
value equal to a border goes to the lower piece); NaN gets code 0. As in the
kernels, borders and levels are float32, and a count needs no sorted borders
(a NaN border is below nothing).
"""

from __future__ import annotations

import math

import torch


def encode(x: torch.Tensor, borders: torch.Tensor, bits: int) -> torch.Tensor:
    n = x.numel()
    # counting is order-free: bucketize into the sorted borders, a NaN border as +inf (below nothing)
    b = borders.float()
    b = torch.sort(torch.where(torch.isnan(b), torch.full_like(b, math.inf), b)).values
    codes = torch.bucketize(x.reshape(-1).float(), b, right=False)
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
    return (levels.float().to(acc)[idx].reshape(grad.shape) * grad.to(acc)).to(grad.dtype)


# ---- the argument checks of csrc/cpu/fewbit_args.h, for the Triton launchers
_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_bits(op: str, bits) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"pyops.{op}: argument 'bits' must be in [1, 8], got {bits!r}")


def check_encode(op: str, x: torch.Tensor, borders: torch.Tensor, bits: int) -> None:
    check_bits(op, bits)
    if x.dtype not in _FLOATS:
        raise TypeError(f"pyops.{op}: argument 'x' must be a floating tensor, got {x.dtype}")
    if borders.dim() != 1 or borders.numel() != (1 << bits) - 1:
        raise ValueError(f"pyops.{op}: argument 'borders' must be 1-D with 2^bits - 1 = {(1 << bits) - 1} entries, "
                         f"got {tuple(borders.shape)}")
    if borders.device != x.device:
        raise ValueError(f"pyops.{op}: argument 'borders' must be on the device of 'x' ({x.device})")


def check_backward(op: str, grad: torch.Tensor, codes: torch.Tensor, levels: torch.Tensor, bits: int) -> None:
    check_bits(op, bits)
    if grad.dtype not in _FLOATS:
        raise TypeError(f"pyops.{op}: argument 'grad' must be a floating tensor, got {grad.dtype}")
    n_codes = (grad.numel() * bits + 7) // 8
    if codes.dtype != torch.uint8 or codes.dim() != 1 or codes.numel() != n_codes:
        raise ValueError(f"pyops.{op}: argument 'codes' must be uint8 with ceil(n * bits / 8) = {n_codes} entries, "
                         f"got {codes.dtype} {tuple(codes.shape)}")
    if levels.dim() != 1 or levels.numel() != 1 << bits:
        raise ValueError(f"pyops.{op}: argument 'levels' must be 1-D with 2^bits entries, got {tuple(levels.shape)}")
    for name, t in (("codes", codes), ("levels", levels)):
        if t.device != grad.device:
            raise ValueError(f"pyops.{op}: argument '{name}' must be on the device of 'grad' ({grad.device})")
