#!/usr/bin/env bash
# make gpu-check: the one command for the day a GPU is lent.
#
# On a machine with an NVIDIA GPU, a CUDA build of PyTorch (plus triton and pytest) in python3
# and no package registry, in about 8 minutes:
#   gpu        stop at once (exit 2) unless nvidia-smi lists a GPU and torch.cuda.is_available()
#   build      the extension with its CUDA kernels for this GPU's architecture, into a venv that
#              reuses python3's torch (make .venv/.built; TORCH_CUDA_ARCH_LIST from the GPU)
#   pytest     the whole suite on CUDA (C++ CUDA kernels through torch.ops, Triton launchers on
#              CUDA tensors), tests/cuda_emu left out, TRITON_INTERPRET unset
#   memcheck   compute-sanitizer --tool memcheck  on scripts/gpu_sanitize.py --big
#   racecheck  compute-sanitizer --tool racecheck on scripts/gpu_sanitize.py
#   bench      python -m benchmarks --quick on the GPU (GB/s, % of peak bandwidth, GFLOP/s)
#   triton     the CUDA-backend tests again with PYOPS_DISABLE_CPP=1: torch.ops.pyops on CUDA
#              dispatch to the Triton kernels (optional: skipped when the time budget is spent)
# Every log, the junit XML, the sanitizer reports and the benchmark table land in
# benchmarks/results/gpu/ (summary.txt: step, status, seconds).  Exit 0: every step passed
# (a missing compute-sanitizer is a SKIP); 1: a step failed or timed out; 2: no GPU.
#
# Settings (environment): GPU_CHECK_BUDGET (seconds, default 470), GPU_CHECK_DIR (default
# benchmarks/results/gpu), GPU_CHECK_SKIP (comma-separated steps), GPU_CHECK_VENV (default .venv),
# GPU_CHECK_PYTEST_WORKERS (pytest-xdist workers when xdist is installed, default 4; 0: none),
# PYTHON (the interpreter that holds the CUDA torch, default python3), TORCH_CUDA_ARCH_LIST, MAX_JOBS.
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-470}  # + the last step's 5 s grace to stop: within 8 minutes
OUTDIR=${GPU_CHECK_DIR:-benchmarks/results/gpu}
SYS_PY=${PYTHON:-python3}
SKIP=",${GPU_CHECK_SKIP:-},"

no_gpu() {
  echo "gpu-check: no usable CUDA GPU: $*" >&2
  echo "gpu-check: this target needs an NVIDIA GPU and a CUDA build of PyTorch; nothing was built or run." >&2
  exit 2
}

# ---------------------------------------------------------------- 1. a GPU, before anything else
command -v nvidia-smi >/dev/null 2>&1 || no_gpu "nvidia-smi is not on PATH (no NVIDIA driver here)"
if ! gpus=$(timeout 60 nvidia-smi -L 2>&1) || ! grep -q '^GPU ' <<<"$gpus"; then
  no_gpu "nvidia-smi lists no GPU: $(head -c 300 <<<"$gpus")"
fi
command -v "$SYS_PY" >/dev/null 2>&1 || no_gpu "no '$SYS_PY' interpreter (set PYTHON to the one with a CUDA torch)"
probe=$(timeout 180 "$SYS_PY" - 2>&1 <<'EOF'
import sys
try:
    import torch
except Exception as e:  # noqa: BLE001
    sys.exit(f"cannot import torch: {e}")
if torch.version.cuda is None:
    sys.exit(f"torch {torch.__version__} is a CPU-only build")
if not torch.cuda.is_available():
    sys.exit(f"torch.cuda.is_available() is False (torch {torch.__version__}, CUDA {torch.version.cuda})")
n = torch.cuda.device_count()
print("ARCHS=" + ";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(n)})))
print(f"GPU={torch.cuda.get_device_name(0)} x{n}")
print(f"TORCH={torch.__version__} CUDA {torch.version.cuda}")
EOF
) || no_gpu "$(tail -n 3 <<<"$probe")"
ARCHS=$(sed -n 's/^ARCHS=//p' <<<"$probe")
GPU=$(sed -n 's/^GPU=//p' <<<"$probe")
TORCH=$(sed -n 's/^TORCH=//p' <<<"$probe")

# ---------------------------------------------------------------- bookkeeping
export GPU_CHECK_RUNNING=1 PYTHONUNBUFFERED=1
unset TRITON_INTERPRET  # Triton runs compiled on the GPU, not in its interpreter
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/*.log "$OUTDIR"/*.xml "$OUTDIR/summary.txt" "$OUTDIR/env.txt"
NAMES=() STATES=() SECONDS_=() NOTES=()
record() { NAMES+=("$1"); STATES+=("$2"); SECONDS_+=("$3"); NOTES+=("$4"); }
left() { echo $((BUDGET - ($(date +%s) - START))); }
record gpu PASS $(($(date +%s) - START)) "$GPU; $TORCH; capability $ARCHS"
echo "gpu-check: $GPU ($TORCH, capability $ARCHS); time budget ${BUDGET}s; results in $OUTDIR/"

# run_step NAME CAP RESERVE CMD...: run CMD under a timeout of CAP seconds, or less so that RESERVE
# seconds stay for the steps after it (both given for a 480 s budget, scaled to
# GPU_CHECK_BUDGET); its output goes to the console and to $OUTDIR/NAME.log.
run_step() {
  local name=$1 cap=$(($2 * BUDGET / 480)) reserve=$(($3 * BUDGET / 480))
  shift 3
  if [[ $SKIP == *",$name,"* ]]; then
    record "$name" SKIP 0 "GPU_CHECK_SKIP"
    return 0
  fi
  local avail=$(($(left) - reserve)) limit=$cap
  ((avail < limit)) && limit=$avail
  if ((limit < 10)); then
    echo "== $name: skipped, the time budget is spent ($(left)s left)"
    record "$name" SKIP 0 "time budget spent"
    return 1
  fi
  echo "== $name (at most ${limit}s): $*"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" </dev/null 2>&1 | tee "$OUTDIR/$name.log"
  rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0)) state=PASS note=""
  if ((rc == 124 || rc == 137)); then
    state=TIMEOUT note="killed after ${limit}s"
  elif ((rc != 0)); then
    state=FAIL note="exit $rc"
  fi
  record "$name" "$state" "$dt" "$note${note:+; }$OUTDIR/$name.log"
  echo "== $name: $state in ${dt}s"
  return "$rc"
}

# sanitizer_verdict NAME: say what a failed sanitizer step means.  A tool that cannot attach to
# this GPU (as on gVisor machines: "Device not supported") is a SKIP, not a finding.
sanitizer_verdict() {
  local i=$((${#NAMES[@]} - 1))
  [[ ${NAMES[$i]} == "$1" && ${STATES[$i]} == FAIL ]] || return 0
  if grep -qiE "device not supported|not supported on this (device|platform)" "$OUTDIR/$1.log"; then
    STATES[i]=SKIP
    NOTES[i]="compute-sanitizer does not support this device or runtime; ${NOTES[$i]}"
  elif [[ ${NOTES[$i]} == "exit 86;"* ]]; then
    NOTES[i]="compute-sanitizer reported errors; ${NOTES[$i]}"
  elif [[ ${NOTES[$i]} == "exit 3;"* ]]; then
    NOTES[i]="an op raised or differed from the CPU op; ${NOTES[$i]}"
  fi
}

# first_exe CANDIDATE...: the first that is an executable file (globs expanded by the caller)
first_exe() {
  local c
  for c in "$@"; do [[ -f $c && -x $c ]] && { echo "$c"; return 0; }; done
  return 1
}

# ---------------------------------------------------------------- the environment, for the record
NVCC=$(command -v nvcc || first_exe /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc)
if [[ -n $NVCC ]]; then
  PATH="$PATH:$(dirname "$NVCC")"
  # torch takes CUDA_HOME from `which nvcc` without resolving links: /usr/local/bin/nvcc would give
  # /usr/local, which has no CUDA headers
  : "${CUDA_HOME:=$(dirname "$(dirname "$(readlink -f "$NVCC")")")}"
  export CUDA_HOME
fi
SANITIZER=$(command -v compute-sanitizer ||
  first_exe ${CUDA_HOME:+"$CUDA_HOME/bin/compute-sanitizer"} /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer)
# the interpreter's own scripts folder (ninja, pytest) on PATH for the venv's build
PATH="$PATH:$(dirname "$(command -v "$SYS_PY")")"
{
  echo "date: $(date -u +%FT%TZ)  host: ${HOSTNAME:-?}  cores: $(nproc)"
  echo "git: $(git rev-parse HEAD 2>/dev/null) ($(git status --porcelain 2>/dev/null | wc -l) paths changed)"
  echo "python: $(command -v "$SYS_PY") ($("$SYS_PY" --version 2>&1)); $TORCH"
  echo "nvcc: ${NVCC:-not found} $([[ -n $NVCC ]] && "$NVCC" --version | tail -n 2 | tr '\n' ' ')"
  echo "CUDA_HOME: ${CUDA_HOME:-unset}"
  echo "compute-sanitizer: ${SANITIZER:-not found} $([[ -n $SANITIZER ]] && "$SANITIZER" --version 2>&1 | tail -n 1)"
  echo
  timeout 60 nvidia-smi
} >"$OUTDIR/env.txt" 2>&1

# ---------------------------------------------------------------- 2. build
# The venv must see python3's CUDA torch.  `python3 -m venv --system-site-packages` (the Makefile's
# rule) links the *base* interpreter's site-packages: when python3 is itself a venv (as on the
# lent GPU machines, /opt/torch/.venv) its packages are not seen, so a .pth file adds them.  A
# .venv holding its own CPU-only torch is left alone and build/gpu-venv is used instead.
VENV=${GPU_CHECK_VENV:-.venv}
if [[ -x $VENV/bin/python ]] && timeout 120 "$VENV/bin/python" -c "import torch" >/dev/null 2>&1 &&
  ! timeout 120 "$VENV/bin/python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" >/dev/null 2>&1; then
  echo "gpu-check: $VENV has a torch without CUDA; building in build/gpu-venv instead"
  VENV=build/gpu-venv
fi
PY=$VENV/bin/python
export VENV PY SYS_PY ARCHS OUTDIR

# shellcheck disable=SC2317  # run through `bash -c step_build`
step_build() {
  set -u
  [[ -n ${CUDA_HOME:-} && -x $CUDA_HOME/bin/nvcc ]] || { echo "no nvcc found (PATH, /usr/local/cuda*/bin)"; return 1; }
  if [[ ! -x $PY ]]; then
    echo "creating $VENV from $SYS_PY (--system-site-packages)"
    # without ensurepip, a venv without pip: python3's own pip serves it through the .pth below
    "$SYS_PY" -m venv --system-site-packages "$VENV" ||
      { rm -rf "$VENV" && "$SYS_PY" -m venv --system-site-packages --without-pip "$VENV"; } || return 1
  fi
  if ! "$PY" -c "import torch" 2>/dev/null; then
    local site
    site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") || return 1
    "$SYS_PY" -c "import os, sys; print('\n'.join(p for p in sys.path if p.endswith(('site-packages', 'dist-packages')) and os.path.isdir(p)))" \
      >"$site/_gpu_check_parent.pth" || return 1
    echo "linked $SYS_PY's site-packages into $VENV ($site/_gpu_check_parent.pth):"
    cat "$site/_gpu_check_parent.pth"
  fi
  "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" ||
    { echo "$PY: torch cannot reach the GPU"; return 1; }
  # The Makefile's $(VENV)/.deps rule pip-installs whatever does not import (expecttest, for one),
  # which fails without a package registry: check here instead and mark the deps as done.
  local m missing=""
  for m in torch triton pytest numpy; do "$PY" -c "import $m" 2>/dev/null || missing="$missing $m"; done
  if [[ -n $missing ]]; then
    echo "missing Python packages:$missing (no registry here: carry them as wheels)"
    return 1
  fi
  for m in ninja expecttest matplotlib scipy sympy e3nn xdist; do
    "$PY" -c "import $m" 2>/dev/null || echo "note: optional $m is not installed"
  done
  command -v ninja >/dev/null || echo "note: no ninja binary on PATH: torch builds serially without it"
  [[ -f $VENV/.deps && $VENV/.deps -nt pyproject.toml ]] || touch "$VENV/.deps"
  # a build left from an earlier run without CUDA kernels: build again
  if [[ -f $VENV/.built ]] && ! "$PY" -c "from pyops import _library as L; assert L._C is not None and L._C.with_cuda()" 2>/dev/null; then
    rm -f "$VENV/.built"
  fi
  echo "make $VENV/.built with TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$ARCHS} MAX_JOBS=${MAX_JOBS:-$(nproc)}"
  export PIP_NO_INDEX=1 PYOPS_BUILD_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$ARCHS}
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if command -v make >/dev/null; then
    make VENV="$VENV" "$VENV/.built" || return 1
  else  # `bash scripts/gpu_check.sh` on a machine without make: the Makefile's recipe
    echo "no make here: running the $VENV/.built recipe directly"
    "$PY" -m pip --disable-pip-version-check -q install --no-build-isolation --no-deps -e . || return 1
    touch "$VENV/.built"
  fi
  "$PY" -m pyops || return 1
  "$PY" - <<'EOF'
import sys
from pyops import _library as L
if L._C is None or not L._C.with_cuda():
    sys.exit(f"pyops._C has no CUDA kernels ({L._C_ERROR or 'built without CUDA'})")
bad = sorted(n for n, c in L.BACKENDS.items() if c["cuda"] not in ("cuda", "composite"))
if bad:
    sys.exit(f"ops without a CUDA kernel: {', '.join(bad)}")
print("every op has its CUDA kernel")
EOF
}
export -f step_build

# reserves: what the later steps need at the least (pytest 120, memcheck 45, racecheck 45, bench 60)
if ! run_step build 300 270 bash -c step_build; then
  for s in pytest memcheck racecheck bench triton; do record "$s" SKIP 0 "no build"; done
else
  # ------------------------------------------------------------ 3. the whole suite on CUDA
  xdist=()
  workers=${GPU_CHECK_PYTEST_WORKERS:-4}
  if ((workers > 0)) && "$PY" -c "import xdist" 2>/dev/null; then xdist=(-n "$workers" --dist loadfile); fi
  run_step pytest 300 150 "$PY" -m pytest tests --ignore=tests/cuda_emu -q -ra -p no:cacheprovider \
    ${xdist[@]+"${xdist[@]}"} --junitxml="$OUTDIR/pytest-junit.xml" --durations=25 -o faulthandler_timeout=120

  # ------------------------------------------------------------ 4. compute-sanitizer
  if [[ -z $SANITIZER ]]; then
    echo "== memcheck, racecheck: skipped: compute-sanitizer is not on PATH nor under /usr/local/cuda*"
    record memcheck SKIP 0 "no compute-sanitizer"
    record racecheck SKIP 0 "no compute-sanitizer"
  else
    # no caching allocator: every tensor is its own allocation, so an overrun of it is seen
    export PYTORCH_NO_CUDA_MEMORY_CACHING=1
    san=("$SANITIZER" --error-exitcode 86 --print-limit 50 --report-api-errors no)
    run_step memcheck 120 105 "${san[@]}" --tool memcheck "$PY" scripts/gpu_sanitize.py --big
    sanitizer_verdict memcheck
    run_step racecheck 120 60 "${san[@]}" --tool racecheck "$PY" scripts/gpu_sanitize.py
    sanitizer_verdict racecheck
    unset PYTORCH_NO_CUDA_MEMORY_CACHING
  fi

  # ------------------------------------------------------------ 5. benchmarks
  run_step bench 150 0 "$PY" -m benchmarks --quick --out "$OUTDIR"

  # ------------------------------------------------------------ extra: Triton through the dispatcher
  run_step triton 150 0 env PYOPS_DISABLE_CPP=1 "$PY" -m pytest tests --ignore=tests/cuda_emu -q -ra \
    -p no:cacheprovider ${xdist[@]+"${xdist[@]}"} -k cuda --junitxml="$OUTDIR/triton-junit.xml" -o faulthandler_timeout=120
fi

# ---------------------------------------------------------------- 6. summary
status=0
{
  echo "gpu-check on $GPU ($TORCH), $(date -u +%FT%TZ): $(($(date +%s) - START))s of a ${BUDGET}s budget"
  printf '%-10s %-8s %7s  %s\n' step status seconds note
  for i in "${!NAMES[@]}"; do
    printf '%-10s %-8s %7s  %s\n' "${NAMES[$i]}" "${STATES[$i]}" "${SECONDS_[$i]}" "${NOTES[$i]}"
  done
} | tee "$OUTDIR/summary.txt"
for i in "${!NAMES[@]}"; do
  case "${STATES[$i]}:${NOTES[$i]}" in
    FAIL:* | TIMEOUT:*) status=1 ;;
    # a required step the budget left out is a check not done; the optional triton pass may be
    SKIP:"time budget spent") [[ ${NAMES[$i]} == triton ]] || status=1 ;;
  esac
done
echo "gpu-check: $([[ $status == 0 ]] && echo "all steps passed" || echo "FAILED (see $OUTDIR/summary.txt)")"
exit $status
