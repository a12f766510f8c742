"""Build the CUDA-on-CPU library: csrc/cuda/*.cu translated (translate.py) and compiled
with g++ against include/ and runtime.cpp, plus the C ABI (abi.cpp).

    python tests/cuda_emu/build.py [plain|asan|tsan]   -> build/cuda_emu/<variant>/libpyops_emu.so

asan: -O1 with AddressSanitizer + UndefinedBehaviorSanitizer (what `make cuda-emu` runs);
tsan: ThreadSanitizer, run with PYOPS_EMU_THREADS=1 (`make cuda-emu-tsan`).
Rebuilds only what changed.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CUDA = ROOT / "csrc" / "cuda"
sys.path.insert(0, str(HERE))
import translate  # noqa: E402

FLAGS = {
    "plain": ["-O1"],
    "asan": ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"],
    "tsan": ["-O1", "-fsanitize=thread"],
}


def asan_runtime() -> str:
    """The ASan runtime to LD_PRELOAD into python before loading an asan library."""
    return subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True, text=True,
                          check=True).stdout.strip()


def library(variant: str) -> Path:
    return ROOT / "build" / "cuda_emu" / variant / "libpyops_emu.so"


def _compile(src: Path, obj: Path, flags, deps) -> None:
    if obj.exists() and obj.stat().st_mtime > max(d.stat().st_mtime for d in deps):
        return
    cmd = ["g++", "-std=c++20", "-fPIC", "-g", "-Wall", "-Wno-unused-function", "-Wno-sign-compare", "-Wno-int-in-bool-context", *flags,
           f"-I{HERE / 'include'}", f"-I{ROOT / 'csrc' / 'include'}", f"-I{CUDA}", "-c", str(src), "-o", str(obj)]
    subprocess.run(cmd, check=True)


def build(variant: str = "asan", sources=None) -> Path:
    """Build (if stale) and return the library; ``sources`` replaces csrc/cuda/*.cu (planted-bug tests)."""
    flags = FLAGS[variant]
    out = library(variant) if sources is None else Path(sources[0]).parent / "libpyops_emu.so"
    work = out.parent
    work.mkdir(parents=True, exist_ok=True)
    headers = [*(ROOT / "csrc" / "include" / "pyops").glob("*.h"), *CUDA.glob("*.cuh"), *(HERE / "include").glob("*.h")]
    jobs = []
    for cu in sources or sorted(CUDA.glob("*.cu")):
        cu = Path(cu)
        cpp = work / (cu.stem + ".emu.cpp")
        text = translate.translate(cu.read_text(), str(cu.resolve()))
        if not cpp.exists() or cpp.read_text() != text:
            cpp.write_text(text)
        jobs.append((cpp, work / (cu.stem + ".o"), [cpp, *headers, Path(__file__)]))
    for src in (HERE / "runtime.cpp", HERE / "abi.cpp"):
        jobs.append((src, work / (src.stem + ".o"), [src, *headers, Path(__file__)]))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda j: _compile(j[0], j[1], flags, j[2]), jobs))
    objs = [j[1] for j in jobs]
    if not out.exists() or out.stat().st_mtime < max(o.stat().st_mtime for o in objs):
        subprocess.run(["g++", "-shared", *flags, "-o", str(out), *map(str, objs), "-lpthread"], check=True)
    return out


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "asan"))
