"""Builds pyops._C: C++ CPU kernels always, CUDA kernels when possible.

PYOPS_BUILD_CUDA=0/1 forces the CUDA part off/on (default: on when torch has
CUDA and nvcc is found).  PYOPS_NATIVE=1 adds -march=native (not portable).
MAX_JOBS is honoured by torch's ninja build.
"""

import glob
import os
import shutil

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    flag = os.environ.get("PYOPS_BUILD_CUDA")
    if flag is not None:
        return flag == "1"
    has_nvcc = CUDA_HOME is not None or shutil.which("nvcc") is not None
    return torch.version.cuda is not None and has_nvcc


def rel(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


cxx_flags = ["-O3", "-fopenmp"]  # torch picks the C++ standard its headers need
if os.environ.get("PYOPS_NATIVE") == "1":
    cxx_flags.append("-march=native")
sources = rel("csrc/cpu/*.cpp")
include_dirs = [os.path.join(HERE, "csrc", "include")]
if want_cuda():
    sources += rel("csrc/cuda/*.cu") + rel("csrc/cuda/*_binding.cpp")
    ext = CUDAExtension(
        "pyops._C",
        sources,
        include_dirs=include_dirs,
        define_macros=[("PYOPS_WITH_CUDA", "1")],
        # no --use_fast_math: it flushes denormals and the kernels must stay bit-exact
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]},
        extra_link_args=["-fopenmp"],
    )
else:
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
    package_data={"pyops": ["data/*.json"]},
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
