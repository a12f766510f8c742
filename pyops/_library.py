"""The one place where pyops ops are declared and their backends chosen.

Every family calls :func:`define` once per op.  Schemas live in Python so the
reference implementation works even when the compiled extension is missing.
Backends are picked per dispatch key, in this order:

* CPU:  C++ kernel from ``pyops._C`` if it registered one, else the reference.
* CUDA: CUDA kernel from ``pyops._C`` if built with CUDA, else the Triton
  kernel (when triton imports and the family has one), else the reference.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import Callable, Collection, Optional

import torch

NAMESPACE = "pyops"
_lib = torch.library.Library(NAMESPACE, "DEF")

# Loaded before any schema is defined: TORCH_LIBRARY_IMPL blocks in _C attach
# to names the dispatcher keeps until the Python definition arrives.
_C: Optional[ModuleType] = None
_C_ERROR: Optional[str] = None
if os.environ.get("PYOPS_DISABLE_CPP", "0") == "1":
    _C_ERROR = "disabled by PYOPS_DISABLE_CPP=1"
else:
    try:
        _C = importlib.import_module("pyops._C")
    except ImportError as e:  # pragma: no cover - exercised by the fallback test
        _here = os.path.dirname(os.path.abspath(__file__))
        if os.path.exists(os.path.join(_here, os.pardir, "setup.py")):
            # a source checkout on sys.path (python run from the repository root) shadows the
            # installed package, and the checkout has no compiled _C: say so, not "circular import"
            _C_ERROR = (f"pyops was imported from the source tree {os.path.dirname(_here)}, which has no "
                        "compiled pyops._C; run from another directory to use the installed package, or "
                        "build in place with `pip install --no-build-isolation -e .`")
        else:
            _C_ERROR = str(e)
if _C is None:
    warnings.warn(
        f"pyops: compiled kernels unavailable ({_C_ERROR}); every op runs its "
        "pure-PyTorch reference (correct but slow).",
        RuntimeWarning,
        stacklevel=2,
    )

CPU_ISAS = ("scalar", "avx2", "avx512")  # the C++ CPU kernels' copies, narrowest first


def cpu_isa() -> str:
    """The instruction set the C++ CPU kernels use now: "avx512", "avx2" or "scalar" (the
    portable copy), or "reference" when they are not built.  It starts at the widest the CPU
    supports, lowered by the environment variable ``PYOPS_CPU_ISA`` (read when pyops loads)."""
    return _C.cpu_isa() if _C is not None else "reference"


def set_cpu_isa(isa: str) -> str:
    """Make the C++ CPU kernels use at most ``isa`` ("avx512", "avx2" or "scalar"), for every
    thread, from the next op on; returns the level now in use, capped at what this CPU supports.
    Results are bit-identical across levels wherever the README promises bit-exactness."""
    check(isa in CPU_ISAS, "set_cpu_isa", "isa", f"must be one of {CPU_ISAS}, got {isa!r}")
    check(_C is not None, "set_cpu_isa", "isa", f"the C++ kernels are unavailable ({_C_ERROR})",
          RuntimeError)
    assert _C is not None  # for the type checker: check() raised
    return str(_C.set_cpu_isa(isa))


# Which backend serves each op on each device, for `python -m pyops` and tests.
BACKENDS: dict[str, dict[str, str]] = {}
# Each op's reference as it serves the raw op when no kernel does (argument check included).
FALLBACKS: dict[str, Callable] = {}


def _checked(check: Callable, reference: Callable) -> Callable:
    def run(*args):
        check(*args)
        return reference(*args)

    return run


def _has_kernel(qualname: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(qualname, key)


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_launcher(family: str, name: str) -> Callable:
    """A CUDA-key launcher of ``pyops.kernels.<family>.<name>`` that imports triton on first use."""

    def launch(*args):
        return getattr(importlib.import_module(f"pyops.kernels.{family}"), name)(*args)

    return launch


def define(
    name: str,
    schema: str,
    *,
    reference: Callable,
    fake: Callable,
    triton: Optional[Callable] = None,
    check: Optional[Callable] = None,
    composite: bool = False,
) -> torch._ops.OpOverloadPacket:
    """Declare ``pyops::<name>`` and register its backends and fake impl.

    ``reference`` and ``triton`` take the op's arguments and return its outputs;
    ``triton`` is a callable that launches Triton kernels on the inputs' device.
    ``check`` takes the op's arguments and raises on bad ones, as the C++ kernel does: it runs
    before ``reference`` wherever the reference serves the raw op (a raw op is public surface).
    ``composite``: ``reference`` is itself built from other pyops ops (and so runs
    their kernels) and serves every device.
    Autograd is registered by the family with ``torch.library.register_autograd``.
    """
    qualname = f"{NAMESPACE}::{name}"
    _lib.define(name + schema)
    FALLBACKS[name] = reference = reference if check is None else _checked(check, reference)
    if composite:
        _lib.impl(name, reference, "CompositeExplicitAutograd")
        chosen = {"cpu": "composite", "cuda": "composite"}
    else:
        chosen = {"cpu": "cpp" if _has_kernel(qualname, "CPU") else "reference"}
        if chosen["cpu"] == "reference":
            _lib.impl(name, reference, "CPU")
        if _has_kernel(qualname, "CUDA"):
            chosen["cuda"] = "cuda"
        elif triton is not None and triton_available():
            _lib.impl(name, triton, "CUDA")
            chosen["cuda"] = "triton"
        else:
            _lib.impl(name, reference, "CUDA")
            chosen["cuda"] = "reference"
    torch.library.register_fake(qualname, fake, lib=_lib)
    BACKENDS[name] = chosen
    return getattr(torch.ops.pyops, name)


def check(cond: bool, op: str, arg: str, msg: str, exc: type = ValueError) -> None:
    """Raise ``exc`` with a message naming the op and the argument."""
    if not cond:
        raise exc(f"pyops.{op}: argument '{arg}' {msg}")


def eager() -> bool:
    """False while torch.compile traces: data-dependent input checks run eagerly only."""
    return not torch.compiler.is_compiling()


def check_float(op: str, arg: str, t: torch.Tensor, dtypes: Collection[torch.dtype]) -> None:
    check(isinstance(t, torch.Tensor), op, arg, f"must be a Tensor, got {type(t).__name__}", TypeError)
    check(
        t.dtype in dtypes,
        op,
        arg,
        f"must have dtype in {[str(d).replace('torch.', '') for d in dtypes]}, got {str(t.dtype).replace('torch.', '')}",
        TypeError,
    )


def check_same_device(op: str, **tensors: torch.Tensor) -> None:
    devices = {k: v.device for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    if len(set(devices.values())) > 1:
        desc = ", ".join(f"{k} on {d}" for k, d in devices.items())
        raise ValueError(f"pyops.{op}: all tensors must be on one device, got {desc}")
