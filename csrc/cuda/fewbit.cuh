// Launchers of the fewbit CUDA kernels (csrc/cuda/fewbit.cu), called by fewbit_binding.cpp.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pyops {
namespace fewbit_cuda {

// T is float, double, __half or __nv_bfloat16 (as their storage types: float,
// double, uint16_t tagged by `kind`); borders/levels are float32 in device memory.
enum class Kind { kFloat, kDouble, kHalf, kBFloat16 };

void encode(Kind kind, const void* x, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits,
            cudaStream_t stream);
// y = f(x) (fn: a pyops::fewbit::Fn, evaluated in float) and its codes in one pass; not for kDouble.
void forward(Kind kind, const void* x, void* y, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits,
             int fn, cudaStream_t stream);
void backward(Kind kind, const void* grad, const uint8_t* codes, const float* levels, void* out, int64_t n, int bits,
              cudaStream_t stream);

}  // namespace fewbit_cuda
}  // namespace pyops
