"""pyops: fast, exact, autograd-aware PyTorch ops from five efficiency papers.

Families: ``pyops.pam``, ``pyops.fewbit``, ``pyops.intops``, ``pyops.gaunt``,
``pyops.wavehax``; modules in ``pyops.nn``.  ``python -m pyops`` reports what
this install was built with; ``pyops.set_cpu_isa`` picks the CPU kernels' instruction set.
"""

from pyops._version import __version__

from pyops import _library  # noqa: F401  (loads _C before any schema is defined)
from pyops._library import cpu_isa, set_cpu_isa  # noqa: E402
from pyops import fewbit, gaunt, intops, pam, wavehax  # noqa: E402
from pyops import nn  # noqa: E402
from pyops.intops import int_exp, int_gelu, int_layernorm, int_softmax, isqrt, requantize  # noqa: E402

__all__ = ["pam", "fewbit", "intops", "gaunt", "wavehax", "nn", "int_exp", "int_softmax", "int_gelu", "int_layernorm", "requantize", "isqrt",
           "cpu_isa", "set_cpu_isa", "__version__"]
