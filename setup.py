"""Builds pyops._C: C++ CPU kernels always, CUDA kernels when possible.

PYOPS_BUILD_CUDA=0/1 forces the CUDA part off/on (default: on when torch has
CUDA and nvcc is found).  PYOPS_NATIVE=1 adds -march=native (not portable).
PYOPS_DEBUG=1 keeps debug info (off by default: it triples the build time and
the .so size).  MAX_JOBS is honoured by torch's ninja build.  Without
TORCH_CUDA_ARCH_LIST and with no GPU visible, CUDA code is built for
8.0;9.0+PTX (torch's own default needs a visible GPU).
"""

import glob
import os
import shutil

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def cuda_home():
    """The CUDA toolkit to build with: CUDA_HOME/CUDA_PATH, else the real prefix of the nvcc on
    PATH (links resolved: an nvcc wrapper in /usr/local/bin would give /usr/local, which has no
    CUDA headers), else torch's guess; None without a toolkit that has cuda_runtime.h."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append(CUDA_HOME)
    for home in candidates:
        if home and os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
            return home
    return None


def want_cuda() -> bool:
    flag = os.environ.get("PYOPS_BUILD_CUDA")
    if flag is not None:
        return flag == "1"
    return torch.version.cuda is not None and cuda_home() is not None


def rel(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


cxx_flags = ["-O3", "-fopenmp"]  # torch picks the C++ standard its headers need
# Python's own CFLAGS carry -g: without -g0 the .so keeps ~20 MB of debug info
cxx_flags.append("-g" if os.environ.get("PYOPS_DEBUG") == "1" else "-g0")
if os.environ.get("PYOPS_NATIVE") == "1":
    cxx_flags.append("-march=native")
sources = rel("csrc/cpu/*.cpp")
include_dirs = [os.path.join(HERE, "csrc", "include")]
if want_cuda():
    home = cuda_home()
    if home:
        os.environ["CUDA_HOME"] = home
        import torch.utils.cpp_extension as cpp_extension

        cpp_extension.CUDA_HOME = home
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
    print(f"pyops: building the C++ CPU kernels and the CUDA kernels (torch {torch.__version__} has CUDA "
          f"{torch.version.cuda}; toolkit {home}; archs {os.environ.get('TORCH_CUDA_ARCH_LIST', 'of the visible GPU')})")
    sources += rel("csrc/cuda/*.cu") + rel("csrc/cuda/*_binding.cpp")
    ext = CUDAExtension(
        "pyops._C",
        sources,
        include_dirs=include_dirs,
        define_macros=[("PYOPS_WITH_CUDA", "1")],
        # no --use_fast_math: it flushes denormals and the kernels must stay bit-exact
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-lineinfo"]},
        extra_link_args=["-fopenmp"],
    )
else:
    why = ("PYOPS_BUILD_CUDA=0" if os.environ.get("PYOPS_BUILD_CUDA") == "0" else
           "torch is a CPU build" if torch.version.cuda is None else "no CUDA toolkit (nvcc) found")
    print(f"pyops: building the C++ CPU kernels only ({why}); CUDA tensors use the Triton kernels")
    ext = CppExtension(
        "pyops._C",
        sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
    )

setup(
    packages=["pyops", "pyops.reference", "pyops.kernels"],
    package_dir={"pyops.kernels": "kernels"},
    package_data={"pyops": ["data/*.json", "py.typed"]},
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
