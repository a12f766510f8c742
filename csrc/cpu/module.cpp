// The pyops._C Python module: kernels register themselves through
// TORCH_LIBRARY_IMPL in the family files; this file only adds build facts.
#include <torch/extension.h>

namespace {

// The widest ISA our target_clones kernels dispatch to on this CPU.
std::string cpu_isa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse2";
#else
  return "generic";
#endif
}

bool with_cuda() {
#ifdef PYOPS_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("cpu_isa", &cpu_isa, "widest ISA the CPU kernels use here");
  m.def("with_cuda", &with_cuda, "whether the CUDA kernels were compiled in");
}
