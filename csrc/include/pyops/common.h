// Shared by CPU and CUDA code: PYOPS_HD marks scalar functions usable on both.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define PYOPS_HD __host__ __device__ __forceinline__
#else
#define PYOPS_HD inline
#endif

namespace pyops {

// Bit casts that work in host and device code (std::bit_cast is C++20).
PYOPS_HD uint32_t f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

PYOPS_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

PYOPS_HD uint64_t f64_bits(double x) {
#if defined(__CUDA_ARCH__)
  return (uint64_t)__double_as_longlong(x);
#else
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

PYOPS_HD double bits_f64(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double((long long)u);
#else
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

}  // namespace pyops
