"""Syntax-check csrc/cuda/*_binding.cpp against the installed torch's headers.

A CPU-only torch cannot build the CUDA extension, so without this the bindings
would only ever be compiled on a GPU machine.  Needs the CUDA toolkit headers
(found next to nvcc); the one generated header a CPU wheel lacks is stubbed.
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from torch.utils.cpp_extension import include_paths


def cuda_include() -> str:
    candidates = [os.environ.get("CUDA_HOME", "")] + sorted(glob.glob("/usr/local/cuda*"), reverse=True)
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for root in candidates:
        if root and os.path.exists(os.path.join(root, "include", "cuda_runtime_api.h")):
            return os.path.join(root, "include")
    return ""


def main() -> int:
    inc = cuda_include()
    if not inc:
        print("check_cuda_bindings: no CUDA headers found, skipped")
        return 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as stub:
        os.makedirs(os.path.join(stub, "c10", "cuda", "impl"))
        open(os.path.join(stub, "c10", "cuda", "impl", "cuda_cmake_macros.h"), "w").close()
        flags = ["-std=c++20", "-fsyntax-only", f"-I{os.path.join(root, 'csrc', 'include')}", f"-I{inc}",
                 f"-I{sysconfig.get_paths()['include']}"] + [f"-I{p}" for p in include_paths()] + [f"-I{stub}"]
        failed = 0
        for src in sorted(glob.glob(os.path.join(root, "csrc", "cuda", "*_binding.cpp"))):
            proc = subprocess.run(["g++", *flags, src], capture_output=True, text=True)
            errors = [line for line in proc.stderr.splitlines() if "error" in line]
            print(f"check_cuda_bindings: {os.path.relpath(src, root)}: {'ok' if proc.returncode == 0 else 'FAILED'}")
            if proc.returncode:
                print("\n".join(errors[:20]))
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
