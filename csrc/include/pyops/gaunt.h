// The azimuthal product of the gaunt grid route for one column r (the CUDA kernel's thread body;
// the CPU kernel computes the same sums blocked over columns):
//   out[io[t], r] += coef[t] * a[ia[t], r] * b[ib[t], r]   for every triple t,
// rows of a, b and out R apart.  Consecutive triples with the same output row (the lists are
// sorted that way) accumulate in a register before touching out; any order is still correct.
#pragma once
#include "pyops/common.h"

namespace pyops {
namespace gaunt {

template <typename T>
PYOPS_HD void azimuthal_column(const T* a, const T* b, const int64_t* io, const int64_t* ia, const int64_t* ib,
                               const T* coef, int64_t n_triples, int64_t r, int64_t R, T* out) {
  if (n_triples == 0) return;
  int64_t row = io[0];
  T acc = 0;
  for (int64_t t = 0; t < n_triples; ++t) {
    if (io[t] != row) {
      out[row * R + r] += acc;
      acc = 0;
      row = io[t];
    }
    acc += coef[t] * a[ia[t] * R + r] * b[ib[t] * R + r];
  }
  out[row * R + r] += acc;
}

}  // namespace gaunt
}  // namespace pyops
