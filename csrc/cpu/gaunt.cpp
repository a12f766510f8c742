// gaunt CPU kernel: the azimuthal product of the grid route,
//   out[io[t], r] += coef[t] * a[ia[t], r] * b[ib[t], r],
// i.e. the sparse product rule of the real azimuthal basis (A_m1 A_m2 only meets A_{|m1| +- |m2|}),
// applied at every (Gauss-Legendre node, channel) column r.  Threads own disjoint column blocks,
// so there are no write conflicts.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "gaunt_args.h"

namespace pyops {
namespace {

using at::Tensor;

// One block of w <= kBlock columns starting at r: every triple is one streaming multiply-add over
// the block (the block's rows, ~130 x 1 KiB, stay in L2 across the triples).
template <typename T>
inline __attribute__((always_inline)) void block(const T* a, const T* b, const int64_t* io, const int64_t* ia,
                                                 const int64_t* ib, const T* coef, int64_t n, int64_t r, int64_t w,
                                                 int64_t R, T* out) {
  for (int64_t t = 0; t < n; ++t) {
    T* __restrict o = out + io[t] * R + r;
    const T* __restrict x = a + ia[t] * R + r;
    const T* __restrict y = b + ib[t] * R + r;
    const T c = coef[t];
    for (int64_t j = 0; j < w; ++j) o[j] += c * x[j] * y[j];
  }
}

constexpr int64_t kBlock = 256;

#define PYOPS_GAUNT_COLUMNS(NAME, T)                                                                                 \
  __attribute__((target_clones("avx512f", "avx2", "default"))) void NAME(                                         \
      const T* a, const T* b, const int64_t* io, const int64_t* ia, const int64_t* ib, const T* coef, int64_t n,    \
      int64_t r0, int64_t r1, int64_t R, T* out) {                                                                  \
    for (int64_t r = r0; r < r1; r += kBlock)                                                                       \
      block<T>(a, b, io, ia, ib, coef, n, r, std::min(kBlock, r1 - r), R, out);                                     \
  }
PYOPS_GAUNT_COLUMNS(columns_f32, float)
PYOPS_GAUNT_COLUMNS(columns_f64, double)
#undef PYOPS_GAUNT_COLUMNS

Tensor azimuthal(const Tensor& a_, const Tensor& b_, const Tensor& io_, const Tensor& ia_, const Tensor& ib_,
                 const Tensor& coef_, int64_t n_out) {
  gaunt_args::check(a_, b_, io_, ia_, ib_, coef_, n_out);
  const Tensor a = a_.contiguous(), b = b_.contiguous(), io = io_.contiguous(), ia = ia_.contiguous(),
               ib = ib_.contiguous(), coef = coef_.contiguous();
  const int64_t R = a.size(1), n = io.numel();
  Tensor out = at::zeros({n_out, R}, a.options());
  if (n == 0 || R == 0) return out;
  const int64_t* pio = io.const_data_ptr<int64_t>();
  const int64_t* pia = ia.const_data_ptr<int64_t>();
  const int64_t* pib = ib.const_data_ptr<int64_t>();
  // about 2^16 multiply-adds per task
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / (kBlock * n));
  at::parallel_for(0, (R + kBlock - 1) / kBlock, grain, [&](int64_t c0, int64_t c1) {
    const int64_t r0 = c0 * kBlock, r1 = std::min(R, c1 * kBlock);
    if (a.scalar_type() == at::kFloat)
      columns_f32(a.const_data_ptr<float>(), b.const_data_ptr<float>(), pio, pia, pib, coef.const_data_ptr<float>(), n,
                  r0, r1, R, out.mutable_data_ptr<float>());
    else
      columns_f64(a.const_data_ptr<double>(), b.const_data_ptr<double>(), pio, pia, pib,
                  coef.const_data_ptr<double>(), n, r0, r1, R, out.mutable_data_ptr<double>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) { m.impl("gaunt_azimuthal", &azimuthal); }

}  // namespace pyops
