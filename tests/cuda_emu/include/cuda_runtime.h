// CUDA-on-CPU stand-in for <cuda_runtime.h>: just enough of the runtime for
// csrc/cuda/*.cu to compile with g++ and run on the CPU (see runtime.cpp).
// Kernels run block after block; the threads of a block are fibers switched at
// __syncthreads (or OS threads at a barrier with PYOPS_EMU_THREADS=1, for TSan).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict
// one block runs at a time, so a block's static shared memory is plain static storage
#define __shared__ static

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

typedef struct CUstream_st* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchOutOfResources = 701,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
template <typename F>
cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute((const void*)func, attr, value);
}

void __syncthreads();

namespace pyops_emu {
// The launch behind `kernel<<<grid, block, shared, stream>>>(args)`: checks CUDA's
// launch limits (the error goes to cudaGetLastError, as on a GPU), then runs
// body() once per thread of every block.
struct Body {
  void (*call)(const void*);
  const void* state;
};
void launch(const void* kernel, Body body, dim3 grid, dim3 block, size_t shared = 0, cudaStream_t stream = nullptr);
template <typename F>
void launch(const void* kernel, const F& f, dim3 grid, dim3 block, size_t shared = 0, cudaStream_t stream = nullptr) {
  launch(kernel, Body{[](const void* s) { (*static_cast<const F*>(s))(); }, &f}, grid, block, shared, stream);
}
// the launch's dynamic shared memory (`extern __shared__`), a heap block sized exactly as asked
void* dynamic_shared();
// launches check their configuration and return without running (for shapes too large to emulate)
void set_dry_run(bool on);
}  // namespace pyops_emu

// device intrinsics the kernels use
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline double __longlong_as_double(long long u) { double f; std::memcpy(&f, &u, 8); return f; }
inline long long __double_as_longlong(double f) { long long u; std::memcpy(&u, &f, 8); return u; }
