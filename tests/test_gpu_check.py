"""`make gpu-check` (scripts/gpu_check.sh) and scripts/gpu_sanitize.py, checked without a GPU.

On a machine without a GPU the script must stop at once, say why, and build nothing.  Its
bookkeeping (steps in order, time budget, summary, exit status) runs here against a mock GPU
toolchain: fake nvidia-smi, python, make, nvcc and compute-sanitizer in a copy of the script.
"""

from __future__ import annotations

import glob
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from helpers import HAS_CPP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")
SANITIZE = os.path.join(ROOT, "scripts", "gpu_sanitize.py")

# never start the real check from inside itself, nor on a machine where it would run for real
ON_GPU = torch.cuda.is_available() or bool(os.environ.get("GPU_CHECK_RUNNING"))
no_gpu_only = pytest.mark.skipif(ON_GPU, reason="a GPU is here: `make gpu-check` runs for real")
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def _exe(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip())
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _path_without(tool: str, *first: str) -> str:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.path.exists(os.path.join(d, tool))]
    return os.pathsep.join([*first, *dirs])


def _build_state() -> dict:
    """mtimes of what a build would write."""
    paths = glob.glob(os.path.join(ROOT, "pyops", "_C*.so"))
    paths += glob.glob(os.path.join(ROOT, ".venv", ".built"))
    paths += glob.glob(os.path.join(ROOT, "build", "gpu-venv"))
    return {p: os.stat(p).st_mtime_ns for p in paths}


@needs_bash
def test_script_parses():
    subprocess.run(["bash", "-n", SCRIPT], check=True, capture_output=True, timeout=30)


def _run_no_gpu(tmp_path, extra_path: list, env_extra: dict) -> tuple:
    """Run the script with `make` replaced by a recorder; check nothing was built or written."""
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    marker = tmp_path / "make-was-run"
    _exe(str(fake / "make"), f"""\
        #!/bin/sh
        touch {marker}
        exit 1
        """)
    out = tmp_path / "results"
    env = dict(os.environ, PATH=_path_without("nvidia-smi", *extra_path, str(fake)), GPU_CHECK_DIR=str(out),
               **env_extra)
    env.pop("GPU_CHECK_RUNNING", None)
    before = _build_state()
    t0 = time.monotonic()
    proc = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0
    assert not marker.exists(), "make was run on a machine without a GPU"
    assert not out.exists(), "the results folder was made on a machine without a GPU"
    assert _build_state() == before, "build outputs changed"
    return proc, elapsed


@needs_bash
@no_gpu_only
def test_without_nvidia_smi_it_stops_at_once(tmp_path):
    proc, elapsed = _run_no_gpu(tmp_path, [], {})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert elapsed < 30
    assert "no usable CUDA GPU" in proc.stderr and "nvidia-smi is not on PATH" in proc.stderr
    assert "nothing was built" in proc.stderr


@needs_bash
@no_gpu_only
def test_a_torch_without_cuda_is_refused_before_building(tmp_path):
    gpu = tmp_path / "gpubin"
    gpu.mkdir()
    _exe(str(gpu / "nvidia-smi"), """\
        #!/bin/sh
        echo "GPU 0: Pretend GPU (UUID: GPU-0)"
        """)
    proc, elapsed = _run_no_gpu(tmp_path, [str(gpu)], {"PYTHON": sys.executable})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert elapsed < 30
    assert "no usable CUDA GPU" in proc.stderr
    assert "CPU-only build" in proc.stderr or "torch.cuda.is_available() is False" in proc.stderr


# ----------------------------------------------------------------------------- a mock GPU toolchain
MOCK_PYTHON = """\
    #!/bin/bash
    echo "py $*" >> "$MOCK_LOG"
    case "$1" in
      -) cat >/dev/null; echo "ARCHS=9.0"; echo "GPU=Mock GPU x1"; echo "TORCH=9.9.9 CUDA 13.0"; exit 0;;
      -m) case "$2" in
            venv) d="${*: -1}"; mkdir -p "$d/bin" "$d/lib/site-packages"; cp "$0" "$d/bin/python"; exit 0;;
            pytest) sleep "${MOCK_PYTEST_SLEEP:-0}"; exit "${MOCK_PYTEST_RC:-0}";;
          esac;;
      -c) [[ $2 == *"import xdist"* ]] && exit 1
          # the venv sees no torch until the parent's site-packages are linked in
          if [[ $2 == *"import torch"* && $0 == */.venv/bin/python ]]; then
            [[ -f $(dirname "$0")/../lib/site-packages/_gpu_check_parent.pth ]] || exit 1
          fi
          [[ $2 == *sysconfig* ]] && echo "$(cd "$(dirname "$0")/.." && pwd)/lib/site-packages"
          [[ $2 == *"sys.path"* ]] && echo "/opt/python/lib/python3.12/site-packages"
          exit 0;;
      --version) echo "Python 3.12.0";;
    esac
    exit 0
    """


@pytest.fixture
def mock_repo(tmp_path):
    repo, bin_, cuda = tmp_path / "repo", tmp_path / "bin", tmp_path / "cuda" / "bin"
    for d in (repo / "scripts", bin_, cuda):
        d.mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / "gpu_check.sh")
    (repo / "pyproject.toml").write_text("")
    _exe(str(bin_ / "python3"), MOCK_PYTHON)
    _exe(str(bin_ / "nvidia-smi"), """\
        #!/bin/sh
        echo "GPU 0: Mock GPU (UUID: GPU-0)"
        """)
    _exe(str(bin_ / "make"), """\
        #!/bin/bash
        echo "make $*" >> "$MOCK_LOG"
        for a; do case $a in *=*) ;; *) touch "$a";; esac; done
        exit "${MOCK_MAKE_RC:-0}"
        """)
    _exe(str(cuda / "nvcc"), """\
        #!/bin/sh
        echo "Cuda compilation tools, release 13.0"
        """)
    _exe(str(cuda / "compute-sanitizer"), """\
        #!/bin/bash
        echo "sanitizer $*" >> "$MOCK_LOG"
        echo "${MOCK_SANITIZER_SAYS:-========= ERROR SUMMARY: 0 errors}"
        exit "${MOCK_SANITIZER_RC:-0}"
        """)
    tools = [os.path.dirname(shutil.which(t))
             for t in ("bash", "timeout", "tee", "grep", "sed", "date", "nproc")]
    log = tmp_path / "calls.log"

    def run(**env_extra):
        if log.exists():
            log.unlink()
        env = {"PATH": os.pathsep.join([str(bin_), *dict.fromkeys(tools), "/usr/bin", "/bin"]),
               "HOME": str(tmp_path), "CUDA_HOME": str(cuda.parent), "MOCK_LOG": str(log), **env_extra}
        proc = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        summary = (repo / "benchmarks" / "results" / "gpu" / "summary.txt")
        rows = {}
        if summary.exists():
            for line in summary.read_text().splitlines()[2:]:
                step, state = line.split()[:2]
                rows[step] = state
        calls = log.read_text() if log.exists() else ""
        return proc, rows, calls

    return run


@needs_bash
def test_mock_gpu_every_step_in_order(mock_repo):
    proc, rows, calls = mock_repo()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(rows) == ["gpu", "build", "pytest", "memcheck", "racecheck", "bench", "triton"]
    assert set(rows.values()) == {"PASS"}, rows
    # the venv reuses python3's torch through a .pth, then the Makefile builds with the GPU's arch
    assert "py -m venv --system-site-packages .venv" in calls
    assert "make VENV=.venv .venv/.built" in calls
    assert "TORCH_CUDA_ARCH_LIST=9.0" in proc.stdout
    pytest_call = next(line for line in calls.splitlines() if "-m pytest" in line)
    assert "--ignore=tests/cuda_emu" in pytest_call
    assert "--junitxml=benchmarks/results/gpu/pytest-junit.xml" in pytest_call
    assert "--tool memcheck .venv/bin/python scripts/gpu_sanitize.py --big" in calls
    assert "--tool racecheck .venv/bin/python scripts/gpu_sanitize.py" in calls
    assert "-m benchmarks --quick --out benchmarks/results/gpu" in calls


@needs_bash
def test_mock_gpu_a_failed_build_skips_the_rest(mock_repo):
    proc, rows, _ = mock_repo(MOCK_MAKE_RC="2")
    assert proc.returncode == 1
    assert rows["build"] == "FAIL"
    assert {rows[s] for s in ("pytest", "memcheck", "racecheck", "bench", "triton")} == {"SKIP"}


@needs_bash
def test_mock_gpu_failures_and_timeouts_are_reported(mock_repo):
    proc, rows, _ = mock_repo(MOCK_SANITIZER_RC="86")
    assert proc.returncode == 1
    assert rows["memcheck"] == rows["racecheck"] == "FAIL" and rows["bench"] == "PASS"
    assert "compute-sanitizer reported errors" in proc.stdout
    # a sanitizer that cannot attach to the GPU (gVisor) is no finding
    proc, rows, _ = mock_repo(MOCK_SANITIZER_RC="1", MOCK_SANITIZER_SAYS="========= Device not supported")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rows["memcheck"] == rows["racecheck"] == "SKIP"
    proc, rows, _ = mock_repo(MOCK_PYTEST_RC="124", GPU_CHECK_SKIP="triton")  # what `timeout` returns
    assert proc.returncode == 1
    assert rows["pytest"] == "TIMEOUT" and rows["triton"] == "SKIP" and rows["bench"] == "PASS"
    # a budget too small for the build: nothing is started, and that is a failure
    proc, rows, calls = mock_repo(GPU_CHECK_BUDGET="5")
    assert proc.returncode == 1
    assert rows["build"] == "SKIP" and "make" not in calls


# ----------------------------------------------------------------------------- gpu_sanitize.py
def test_gpu_sanitize_compiles(tmp_path):
    py_compile.compile(SANITIZE, cfile=str(tmp_path / "gpu_sanitize.pyc"), doraise=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")
def test_gpu_sanitize_refuses_to_run_without_cuda():
    proc = subprocess.run([sys.executable, SANITIZE], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs a CUDA GPU" in proc.stderr and "torch.cuda.is_available() is False" in proc.stderr


@pytest.mark.skipif(not HAS_CPP, reason="pyops._C not built: the references would be slow")
def test_gpu_sanitize_calls_are_valid_on_the_cpu():
    """Every call the sanitizer run makes, on the CPU: the script keeps up with the ops' signatures."""
    proc = subprocess.run([sys.executable, SANITIZE, "--device", "cpu", "--no-compare"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 failed" in proc.stdout
