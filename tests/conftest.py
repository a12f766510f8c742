import os

import pytest
import torch

# Triton runs in its interpreter on machines without a GPU; this must be set
# before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.manual_seed(0)


@pytest.fixture(params=["avx512", "avx2", "scalar"])
def cpu_isa(request):
    """Runs a test once per instruction set of the C++ CPU kernels that this CPU has."""
    from pyops import _library

    if _library._C is None:
        pytest.skip("no C++ kernels")
    levels = _library.CPU_ISAS
    if levels.index(request.param) > levels.index(_library._C.cpu_isa_detected()):
        pytest.skip(f"this CPU lacks {request.param}")
    before = _library.cpu_isa()
    assert _library.set_cpu_isa(request.param) == request.param
    yield request.param
    _library.set_cpu_isa(before)
