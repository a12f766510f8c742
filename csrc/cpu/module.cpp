// The pyops._C Python module: kernels register themselves through
// TORCH_LIBRARY_IMPL in the family files (static initialisers run when the
// module loads); this file only adds build facts. Plain CPython API: no
// pybind11 or torch/extension.h to compile.
#include <Python.h>

namespace {

// The widest ISA our target_clones kernels dispatch to on this CPU.
const char* cpu_isa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse2";
#else
  return "generic";
#endif
}

PyObject* py_cpu_isa(PyObject*, PyObject*) { return PyUnicode_FromString(cpu_isa()); }

PyObject* py_with_cuda(PyObject*, PyObject*) {
#ifdef PYOPS_WITH_CUDA
  Py_RETURN_TRUE;
#else
  Py_RETURN_FALSE;
#endif
}

PyMethodDef methods[] = {
    {"cpu_isa", py_cpu_isa, METH_NOARGS, "widest ISA the CPU kernels use here"},
    {"with_cuda", py_with_cuda, METH_NOARGS, "whether the CUDA kernels were compiled in"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "pyops' compiled kernels", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module); }
