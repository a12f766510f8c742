// Launcher of the gaunt CUDA kernel (csrc/cuda/gaunt.cu), called by gaunt_binding.cpp.
// Plain pointers and a stream only, so the .cu compiles without torch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pyops {
namespace gaunt_cuda {

// out[io[t], r] += coef[t] * a[ia[t], r] * b[ib[t], r] for t < n, r < R; out zeroed by the caller,
// rows R apart.  T is float or double.
template <typename T>
void azimuthal(const T* a, const T* b, const int64_t* io, const int64_t* ia, const int64_t* ib, const T* coef,
               int64_t n, int64_t R, T* out, cudaStream_t stream);

}  // namespace gaunt_cuda
}  // namespace pyops
