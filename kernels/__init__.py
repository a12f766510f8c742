"""Triton kernels (installed as ``pyops.kernels``), one module per family.

Each module imports triton at import time; run on CPU with TRITON_INTERPRET=1
set before triton is first imported.
"""
