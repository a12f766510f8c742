// CUDA-on-CPU stand-in for <cuda_bf16.h>: bfloat16 with round-to-nearest-even.
#pragma once
#include "cuda_runtime.h"

struct __nv_bfloat16 {
  uint16_t bits;
};

inline __nv_bfloat16 __float2bfloat16(float f) {
  const uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffff) > 0x7f800000) return {uint16_t((x >> 16) | 0x40)};  // quiet nan
  return {uint16_t((x + 0x7fff + ((x >> 16) & 1)) >> 16)};
}

inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float(uint32_t(b.bits) << 16); }
