// The pyops._C Python module: kernels register themselves through
// TORCH_LIBRARY_IMPL in the family files (static initialisers run when the
// module loads); this file only adds build facts. Plain CPython API: no
// pybind11 or torch/extension.h to compile.
#include <Python.h>

#include "isa.h"

namespace {

PyObject* py_cpu_isa(PyObject*, PyObject*) { return PyUnicode_FromString(pyops::isa::name(pyops::isa::active())); }

PyObject* py_cpu_isa_detected(PyObject*, PyObject*) {
  return PyUnicode_FromString(pyops::isa::name(pyops::isa::detected()));
}

// Returns the level now in use: the one asked for, capped at what the CPU has.
PyObject* py_set_cpu_isa(PyObject*, PyObject* arg) {
  const char* s = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : nullptr;
  pyops::isa::Level level;
  if (!s || !pyops::isa::parse(s, &level)) {
    PyErr_Format(PyExc_ValueError, "pyops.set_cpu_isa: argument 'isa' must be one of 'avx512', 'avx2', 'scalar', got %R",
                 arg);
    return nullptr;
  }
  pyops::isa::set_active(level);
  return py_cpu_isa(nullptr, nullptr);
}

// fma_flops(isa, threads, iterations) -> flops done: the roofline's compute peak, timed by the caller.
PyObject* py_fma_flops(PyObject*, PyObject* args) {
  const char* s;
  int threads;
  long iterations;
  if (!PyArg_ParseTuple(args, "sil", &s, &threads, &iterations)) return nullptr;
  pyops::isa::Level level;
  if (!pyops::isa::parse(s, &level) || level > pyops::isa::detected() || threads < 1 || iterations < 0) {
    PyErr_Format(PyExc_ValueError, "pyops._C.fma_flops: needs an isa this CPU has (at most '%s'), threads >= 1 "
                 "and iterations >= 0, got %s, %d, %ld", pyops::isa::name(pyops::isa::detected()), s, threads, iterations);
    return nullptr;
  }
  double flops;
  Py_BEGIN_ALLOW_THREADS
  flops = pyops::isa::fma_flops(level, threads, iterations);
  Py_END_ALLOW_THREADS
  return PyFloat_FromDouble(flops);
}

PyObject* py_with_cuda(PyObject*, PyObject*) {
#ifdef PYOPS_WITH_CUDA
  Py_RETURN_TRUE;
#else
  Py_RETURN_FALSE;
#endif
}

PyMethodDef methods[] = {
    {"cpu_isa", py_cpu_isa, METH_NOARGS, "the instruction set the CPU kernels use now"},
    {"cpu_isa_detected", py_cpu_isa_detected, METH_NOARGS, "the widest instruction set this CPU supports"},
    {"set_cpu_isa", py_set_cpu_isa, METH_O, "use at most this instruction set; returns the one in use"},
    {"fma_flops", py_fma_flops, METH_VARARGS, "fp32 multiply-add chains in registers; returns the flops done"},
    {"with_cuda", py_with_cuda, METH_NOARGS, "whether the CUDA kernels were compiled in"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "pyops' compiled kernels", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module); }
