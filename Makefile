# `make test` and `make bench` set everything up from nothing on a fresh clone.
# make test = ctest (csrc/include unit tests + nvcc compile check of csrc/cuda) +
#             CUDA binding syntax check + pytest (Triton in its interpreter without a GPU).
# A torch that python3 can already import (e.g. a CUDA build on a GPU box) is
# reused through --system-site-packages; otherwise the CPU wheel 2.13.0 is installed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
SRCS   := $(wildcard csrc/*/*.cpp csrc/*/*.cu csrc/*/*.cuh csrc/include/pyops/*.h) setup.py
export MAX_JOBS ?= 2

.PHONY: test bench bench-quick ctest cuda-bindings pytest clean

$(VENV)/.deps: pyproject.toml
	test -x $(PY) || python3 -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	# install only what is missing: a GPU box has no package registry
	for m in triton pytest expecttest numpy ninja; do \
	  $(PY) -c "import $$m" 2>/dev/null || $(PIP) install $$m || exit 1; done
	# optional: plots and the gaunt/fewbit test oracles (tests skip without them)
	for m in matplotlib scipy sympy e3nn; do \
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

pytest: $(VENV)/.built
	$(PY) -m pytest -q tests

test: ctest cuda-bindings pytest

bench: $(VENV)/.built
	$(PY) -m benchmarks

bench-quick: $(VENV)/.built
	$(PY) -m benchmarks --quick

clean:
	rm -rf build *.egg-info pyops/_C*.so
