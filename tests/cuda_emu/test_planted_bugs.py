"""The harness bites: one missing __syncthreads and one out-of-bounds store, planted in a
translated copy of csrc/cuda/pam.cu, must make it fail (a wrong result; an ASan report)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import build

PAM = build.CUDA / "pam.cu"
BARRIER = "      __syncthreads();\n      const int depth"
BOUND = "i < n; i += (int64_t)gridDim.x * blockDim.x) {\n    switch (op)"


def _planted(tmp: Path) -> Path:
    src = PAM.read_text()
    assert src.count(BARRIER) == 1 and src.count(BOUND) == 1, "the planting sites moved: update this test"
    src = src.replace(BARRIER, "      const int depth")  # tile loads no longer wait for each other
    src = src.replace(BOUND, BOUND.replace("i < n", "i <= n"))  # one store past the end
    planted = tmp / "pam.cu"
    planted.write_text(src)
    return planted


def test_planted_bugs_are_caught(tmp_path):
    sources = [_planted(tmp_path), *(p for p in sorted(build.CUDA.glob("*.cu")) if p.name != "pam.cu")]
    lib = build.build("asan", sources=sources)
    script = textwrap.dedent(f"""
        import ctypes, torch
        import pyops
        lib = ctypes.CDLL({str(lib)!r})
        a, b = torch.randn(1, 67, 40), torch.randn(1, 40, 70)
        c = torch.zeros(1, 67, 70)
        p = lambda t: ctypes.c_void_p(t.data_ptr())
        L = ctypes.c_int64
        lib.pam_bmm_f32(p(a), p(b), p(c), L(1), L(67), L(40), L(70), ctypes.c_float(1.0))
        print("bmm", "same" if torch.equal(c, torch.ops.pyops.pam_bmm(a, b)) else "differs", flush=True)
        x = torch.randn(257)
        out = torch.empty(257)
        lib.pam_binary_f32(0, p(x), p(x), p(out), L(257), ctypes.c_float(1.0))
        print("binary returned", flush=True)
    """)
    env = {"LD_PRELOAD": build.asan_runtime(), "ASAN_OPTIONS": "detect_leaks=0"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, **env})
    assert "bmm differs" in run.stdout, (run.stdout, run.stderr[-3000:])  # the missing barrier
    assert run.returncode != 0 and "binary returned" not in run.stdout
    assert "heap-buffer-overflow" in run.stderr and "pam.cu" in run.stderr, run.stderr[-3000:]  # the stray store
