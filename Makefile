# `make test` and `make bench` set everything up from nothing on a fresh clone.
# make test = ctest (csrc/include unit tests + nvcc compile check of csrc/cuda) +
#             CUDA binding syntax check + dist-check (sdist, wheel files and metadata) +
#             mypy (skipped without mypy) +
#             cuda-emu (csrc/cuda run on the CPU under ASan+UBSan) +
#             triton-aot (every Triton kernel compiled for sm_80/sm_90) +
#             pytest (Triton in its interpreter without a GPU).
# A torch that python3 can already import (e.g. a CUDA build on a GPU box) is
# reused through --system-site-packages; otherwise the CPU wheel 2.13.0 is installed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
SRCS   := $(wildcard csrc/*/*.cpp csrc/*/*.h csrc/*/*.cu csrc/*/*.cuh csrc/include/pyops/*.h) setup.py
export MAX_JOBS ?= 2

.PHONY: test bench bench-quick ctest cuda-bindings cuda-emu cuda-emu-tsan triton-aot gpu-check dist-check mypy fuzz pytest clean

$(VENV)/.deps: pyproject.toml
	test -x $(PY) || python3 -m venv --system-site-packages $(VENV)
	# python3 itself a venv (a GPU box's /opt/torch/.venv): --system-site-packages sees only its base,
	# so point the new venv at python3's own packages too
	python3 -c "import sys; sys.exit(sys.prefix == sys.base_prefix)" && \
	  python3 -c "import site; print('\n'.join(site.getsitepackages()))" > \
	  $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/python3-site.pth || true
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	# install only what is missing: a GPU box has no package registry
	for m in triton pytest numpy ninja; do \
	  $(PY) -c "import $$m" 2>/dev/null || $(PIP) install $$m || exit 1; done
	# optional: plots, the gaunt/fewbit test oracles, the HF integration tests (tests skip without them)
	# and the type checker (make mypy skips without it)
	for m in hypothesis expecttest matplotlib scipy sympy e3nn transformers mypy; do \
	  $(PY) -c "import $$m" 2>/dev/null || $(PIP) install $$m || echo "optional $$m not installed"; done
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SRCS)
	$(PIP) install --no-build-isolation --no-deps -e .
	touch $@

ctest:
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build/cmake -j 2
	cd build/cmake && ctest --output-on-failure

# the CUDA bindings cannot be built against a CPU torch: syntax-check them instead
cuda-bindings: $(VENV)/.deps
	$(PY) scripts/check_cuda_bindings.py

# csrc/cuda executed on the CPU (tests/cuda_emu): AddressSanitizer + UBSan, so the ASan
# runtime is preloaded into python
cuda-emu: $(VENV)/.built
	$(PY) tests/cuda_emu/build.py asan >/dev/null
	LD_PRELOAD=$$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 PYOPS_EMU_VARIANT=asan \
	  $(PY) -m pytest -q tests/cuda_emu

# the kernels with barriers, their threads as OS threads under ThreadSanitizer (slow: not in `make test`)
cuda-emu-tsan: $(VENV)/.built
	$(PY) tests/cuda_emu/build.py tsan >/dev/null
	LD_PRELOAD=$$(g++ -print-file-name=libtsan.so) TSAN_OPTIONS=halt_on_error=1 PYOPS_EMU_THREADS=1 \
	  PYOPS_EMU_VARIANT=tsan OMP_NUM_THREADS=1 $(PY) -m pytest -q tests/cuda_emu/test_cuda_emu.py \
	  -k "bmm_bit_exact or intops_softmax or intops_layernorm or shiftgelu or wavehax_block"

# every Triton kernel and launch configuration compiled for sm_80 and sm_90 (no GPU needed):
# fails on a compile error, a register spill or too much shared memory
triton-aot: $(VENV)/.deps
	$(PY) scripts/triton_aot.py

# the long hostile-input run: >= 1,000 cases per op on the C++, Triton (interpreter) and reference
# paths, each call in a worker process; prints the per-op table (make test runs a small budget)
fuzz: $(VENV)/.built
	$(PY) -m tests.fuzz --cases-per-op $${FUZZ_CASES:-1000} --seed $${FUZZ_SEED:-1} --workers $${FUZZ_WORKERS:-2} \
	  --out build/fuzz.md

# the one command for a machine with a CUDA GPU (see scripts/gpu_check.sh)
gpu-check:
	bash scripts/gpu_check.sh

# the sdist holds every source and header the build needs (MANIFEST.in)
dist-check: $(VENV)/.deps
	$(PY) scripts/dist_check.py

# static types of pyops/ and kernels/ ([tool.mypy] in pyproject.toml; ~11 s cold on 2 cores, <1 s
# with build/mypy's cache); mypy is optional: without it (a GPU box has no package registry) it skips
mypy: $(VENV)/.deps
	@if $(PY) -c "import mypy" 2>/dev/null; then $(PY) -m mypy; else echo "mypy: not installed, skipped"; fi

pytest: $(VENV)/.built
	$(PY) -m pytest -q tests --ignore=tests/cuda_emu

test: ctest cuda-bindings dist-check mypy cuda-emu triton-aot pytest

bench: $(VENV)/.built
	$(PY) -m benchmarks

bench-quick: $(VENV)/.built
	$(PY) -m benchmarks --quick

clean:
	rm -rf build *.egg-info pyops/_C*.so
