"""Checks every op goes through; each family's tests call these.

Backends under test, by name:
  "cpu"    torch.ops.pyops.* on CPU tensors (the C++ kernel when built)
  "triton" the family's Triton launcher on CPU tensors in the interpreter, or on CUDA
  "cuda"   torch.ops.pyops.* on CUDA tensors (CUDA kernel, or Triton when it is absent)
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from typing import Callable, Iterable, Optional

import pytest
import torch

from pyops import _library

HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = _library.triton_available()
HAS_CPP = _library._C is not None

requires_cpp = pytest.mark.skipif(not HAS_CPP, reason="pyops._C not built")
requires_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton not installed")
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")


def backends(triton_fn: Optional[Callable] = None) -> list[str]:
    """Backend names available here, for parametrising."""
    names = ["cpu"] if HAS_CPP else []
    if triton_fn is not None and HAS_TRITON:
        names.append("triton")
    if HAS_CUDA:
        names.append("cuda")
    return names


def family_backends(family: str):
    """(backend names, launcher lookup, Triton module or None) for a family's tests;
    ``lookup(name)`` is the Triton launcher ``pyops.kernels.<family>.<name>``."""
    try:
        module = importlib.import_module(f"pyops.kernels.{family}")
    except ImportError:  # no triton: the "triton" backend is not listed
        module = None

    def lookup(name: str):
        return getattr(module, name) if module is not None else None

    return backends(module), lookup, module


def triton_device() -> torch.device:
    return torch.device("cuda" if HAS_CUDA else "cpu")


def to(tree, device):
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, (list, tuple)):
        return type(tree)(to(t, device) for t in tree)
    if isinstance(tree, dict):
        return {k: to(v, device) for k, v in tree.items()}
    return tree


def run_backend(backend: str, op: Callable, triton_fn: Optional[Callable], *args, **kwargs):
    """Run one backend and bring its outputs back to the CPU."""
    if backend == "cpu":
        out = op(*args, **kwargs)
    elif backend == "triton":
        dev = triton_device()
        out = triton_fn(*to(args, dev), **to(kwargs, dev))
    elif backend == "cuda":
        out = op(*to(args, "cuda"), **to(kwargs, "cuda"))
    else:
        raise AssertionError(backend)
    return to(out, "cpu")


def assert_same(actual, expected, exact: bool = True, **tol) -> None:
    """Bit-exact (NaNs equal, signed zeros distinguished) or allclose."""
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e, exact, **tol)
        return
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if exact:
        a, e = actual.contiguous(), expected.contiguous()
        if a.is_floating_point():
            bits = {torch.float32: torch.int32, torch.float64: torch.int64}.get(a.dtype, torch.int16)
            nan = a.isnan() & e.isnan()
            diff = (a.view(bits) != e.view(bits)) & ~nan
        else:
            diff = a != e
        n = int(diff.sum())
        if n:
            idx = diff.nonzero()[0].tolist()
            raise AssertionError(
                f"{n}/{a.numel()} elements differ; first at {idx}: got {a[tuple(idx)].item()!r}, "
                f"expected {e[tuple(idx)].item()!r}"
            )
    else:
        torch.testing.assert_close(actual, expected, equal_nan=True, **tol)


def random_ints(shape, dtype, lo=None, hi=None, seed=0) -> torch.Tensor:
    """Seeded uniform integers in [lo, hi] (default: dtype's whole range)."""
    g = torch.Generator().manual_seed(seed)
    info = torch.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(dtype)


def noncontig(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous layout (every other column of a wider tensor)."""
    if t.dim() == 0:
        return t
    wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    out = wide[..., ::2]
    assert not out.is_contiguous() or t.shape[-1] <= 1
    return out


def opcheck(op, args, kwargs=None, *, autograd: bool = True) -> None:
    utils = ["test_schema", "test_faketensor", "test_aot_dispatch_dynamic"]
    if autograd:
        utils.append("test_autograd_registration")
    torch.library.opcheck(op, args, kwargs or {}, test_utils=utils)


def gradcheck(fn: Callable, inputs: Iterable[torch.Tensor], **kw) -> None:
    assert torch.autograd.gradcheck(fn, tuple(inputs), **kw)


def assert_raises_naming(fn: Callable, exc, *words: str) -> None:
    """The call raises `exc` and the message names every word (op, argument, expectation)."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in error message {msg!r}"


def run_without_cpp(code: str) -> str:
    """Run `code` in a fresh interpreter with PYOPS_DISABLE_CPP=1; returns its stderr."""
    env = dict(os.environ, PYOPS_DISABLE_CPP="1")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stderr
