"""`python -m pyops`: what this install was built with and which backend serves each op."""

import os
import platform

import torch

import pyops
from pyops import _library, intops


def main() -> None:
    print(f"pyops {pyops.__version__}  torch {torch.__version__}  python {platform.python_version()}")
    if _library._C is not None:
        env = os.environ.get("PYOPS_CPU_ISA")
        print(f"C++ CPU kernels : built, ISA in use: {_library._C.cpu_isa()} (CPU supports "
              f"{_library._C.cpu_isa_detected()}; PYOPS_CPU_ISA={env if env else 'unset'})")
        cuda_built = _library._C.with_cuda()
    else:
        print(f"C++ CPU kernels : unavailable ({_library._C_ERROR}); reference fallback")
        cuda_built = False
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU visible"
    print(f"CUDA kernels    : {'built' if cuda_built else 'not built'} ({gpu})")
    if _library.triton_available():
        import triton

        print(f"Triton kernels  : triton {triton.__version__} (serves CUDA ops the CUDA build lacks)")
    else:
        print("Triton kernels  : triton not installed")
    print(f"torch CPU capability: {torch.backends.cpu.get_cpu_capability()}")
    gemm = "torch._int_mm (oneDNN VNNI)" if intops._fast_cpu_int_mm() else "exact fp32 GEMM (no AVX512-VNNI)"
    print(f"intops.QuantLinear CPU GEMM: {gemm}")
    print("\nop backends (cpu / cuda):")
    for name, chosen in sorted(_library.BACKENDS.items()):
        print(f"  {name:<28} {chosen['cpu']:<10} {chosen['cuda']}")


if __name__ == "__main__":
    main()
