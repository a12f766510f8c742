// Few-bit backward (Novikov et al. 2022): code computation and LSB-first bit
// packing shared by the CPU and CUDA kernels.  Eight consecutive codes of b
// bits fill exactly b bytes, so packing works on 8-element groups that never
// share a byte with a neighbouring group.
#pragma once
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

PYOPS_HD uint32_t unpack(uint64_t word, int j, int bits) {
  return (uint32_t)(word >> (bits * j)) & ((1u << bits) - 1u);
}

}  // namespace fewbit
}  // namespace pyops
