// Few-bit backward (Novikov et al. 2022): code computation and LSB-first bit
// packing shared by the CPU and CUDA kernels.  Eight consecutive codes of b
// bits fill exactly b bytes, so packing works on 8-element groups that never
// share a byte with a neighbouring group.
#pragma once
#include <math.h>

#include "pyops/common.h"

namespace pyops {
namespace fewbit {

// Number of inner borders strictly below x; NaN compares false everywhere -> 0.
PYOPS_HD uint32_t code(float x, const float* borders, int n_borders) {
  uint32_t c = 0;
  for (int j = 0; j < n_borders; ++j) c += x > borders[j];
  return c;
}

// Codes of one 8-element group -> its b bytes, little-endian in a uint64.  With
// a compile-time `bits` (the CPU kernels' templates) every shift is a constant.
template <typename C>
PYOPS_HD uint64_t pack8(const C* codes, int bits) {
  uint64_t word = 0;
  for (int j = 0; j < 8; ++j) word |= (uint64_t)codes[j] << (bits * j);
  return word;
}

// pack8 of eight byte-sized codes held in one little-endian word (code j in
// byte j): three shift-and-merge steps instead of eight shifts.
PYOPS_HD uint64_t pack8_word(uint64_t w, int bits) {
  w = (w & 0x00FF00FF00FF00FFull) | ((w & 0xFF00FF00FF00FF00ull) >> (8 - bits));
  w = (w & 0x0000FFFF0000FFFFull) | ((w & 0xFFFF0000FFFF0000ull) >> (16 - 2 * bits));
  return (w & 0x00000000FFFFFFFFull) | ((w & 0xFFFFFFFF00000000ull) >> (32 - 4 * bits));
}

PYOPS_HD uint32_t unpack(uint64_t word, int j, int bits) {
  return (uint32_t)(word >> (bits * j)) & ((1u << bits) - 1u);
}

// The built-in activations, in the order of pyops.fewbit.FUNCTIONS, with torch's
// default arguments.  The CUDA forward evaluates them in float; the CPU forward
// runs torch's own kernels instead (bit-exact with native).
enum class Fn : int {
  kGelu, kGeluTanh, kSilu, kElu, kCelu, kSelu, kMish, kSoftplus, kTanh, kSigmoid, kLogSigmoid, kSoftsign,
  kTanhshrink, kHardswish, kRelu, kLeakyRelu, kRelu6, kHardtanh, kHardsigmoid, kHardshrink, kSoftshrink,
  kThreshold, kCount
};

PYOPS_HD float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }  // NaN passes
PYOPS_HD float softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }  // beta 1, threshold 20

PYOPS_HD float activate(Fn fn, float x) {
  switch (fn) {
    case Fn::kGelu: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case Fn::kGeluTanh: {
      const float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.0f + tanhf(inner));
    }
    case Fn::kSilu: return x / (1.0f + expf(-x));
    case Fn::kElu:
    case Fn::kCelu: return x > 0.0f ? x : expm1f(x);  // alpha 1
    case Fn::kSelu: return 1.0507009873554805f * (x > 0.0f ? x : 1.6732632423543772f * expm1f(x));
    case Fn::kMish: return x * tanhf(softplusf(x));
    case Fn::kSoftplus: return softplusf(x);
    case Fn::kTanh: return tanhf(x);
    case Fn::kSigmoid: return 1.0f / (1.0f + expf(-x));
    case Fn::kLogSigmoid: return fminf(x, 0.0f) - log1pf(expf(-fabsf(x)));
    case Fn::kSoftsign: return x / (1.0f + fabsf(x));
    case Fn::kTanhshrink: return x - tanhf(x);
    case Fn::kHardswish: return x * clampf(x + 3.0f, 0.0f, 6.0f) / 6.0f;
    case Fn::kRelu:
    case Fn::kThreshold: return x < 0.0f || x == 0.0f ? 0.0f : x;
    case Fn::kLeakyRelu: return x > 0.0f ? x : 0.01f * x;
    case Fn::kRelu6: return clampf(x, 0.0f, 6.0f);
    case Fn::kHardtanh: return clampf(x, -1.0f, 1.0f);
    case Fn::kHardsigmoid: return clampf(x + 3.0f, 0.0f, 6.0f) / 6.0f;
    case Fn::kHardshrink: return x >= -0.5f && x <= 0.5f ? 0.0f : x;
    case Fn::kSoftshrink: return x > 0.5f ? x - 0.5f : (x < -0.5f ? x + 0.5f : (x == x ? 0.0f : x));
    default: return x;
  }
}

}  // namespace fewbit
}  // namespace pyops
