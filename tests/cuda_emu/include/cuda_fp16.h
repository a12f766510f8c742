// CUDA-on-CPU stand-in for <cuda_fp16.h>: IEEE binary16 with round-to-nearest-even.
#pragma once
#include "cuda_runtime.h"

struct __half {
  uint16_t bits;
};

inline __half __float2half(float f) {
  uint32_t x = __float_as_uint(f);
  const uint16_t sign = (x >> 16) & 0x8000;
  x &= 0x7fffffff;
  if (x >= 0x7f800000) return {uint16_t(sign | 0x7c00 | (x > 0x7f800000 ? 0x200 : 0))};  // inf / nan
  if (x >= 0x477ff000) return {uint16_t(sign | 0x7c00)};  // rounds past 65504: inf
  if (x < 0x38800000) {  // subnormal or zero in half: round x * 2^24 to an integer, half-even
    const float a = __uint_as_float(x) * 16777216.0f;  // exact: a power-of-two scale
    return {uint16_t(sign | (uint16_t)std::nearbyint(a))};
  }
  const uint32_t mant = x & 0x1fff, rest = (x - 0x38000000) >> 13;  // rebias exponent 127 -> 15
  const uint32_t up = mant > 0x1000 || (mant == 0x1000 && (rest & 1));
  return {uint16_t(sign | (rest + up))};
}

inline float __half2float(__half h) {
  const uint32_t sign = uint32_t(h.bits & 0x8000) << 16, e = (h.bits >> 10) & 0x1f, m = h.bits & 0x3ff;
  if (e == 0x1f) return __uint_as_float(sign | 0x7f800000 | (m << 13));
  if (e == 0) {
    const float v = (float)m * 5.9604644775390625e-8f;  // m * 2^-24
    return sign ? -v : v;
  }
  return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
}
