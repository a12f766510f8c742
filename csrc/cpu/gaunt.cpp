// gaunt CPU kernel: pyops::gaunt_grid_product.  Threads own blocks of one cache line of channels
// (16 float or 8 double); a block is transposed to [position][lane] so that every operation of the
// node-pair math in csrc/include/pyops/gaunt.h is a SIMD instruction over the lane, and everything
// between the inputs and the output (spectra, products, the output accumulator) stays in L1/L2.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "gaunt_args.h"
#include "pyops/gaunt.h"

// the products' sums are contracted into FMAs (torch's ISO C++ mode leaves fp-contract off)
#pragma GCC optimize("fp-contract=fast")

namespace pyops {
namespace {

using at::Tensor;

// one cache line of channels: 16 float or 8 double lanes
template <typename T>
struct LaneOf;
template <>
struct LaneOf<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct LaneOf<double> {
  typedef double type __attribute__((vector_size(64)));
};
template <typename T>
using Lane = typename LaneOf<T>::type;

// One block of rows [r0, r0 + n), n <= C: gather (transpose to [position][lane]), all node pairs,
// scatter.  buf holds D1 + D2 + Dout + scratch lanes.
template <typename T, int C = 64 / sizeof(T)>
inline __attribute__((always_inline)) void rows(const T* x1, int64_t s10, int64_t s11, const T* x2, int64_t s20,
                                                int64_t s21, int L1, int L2, int lo, const T* table, int64_t st,
                                                const T* w, int64_t K, int64_t r0, int64_t n, Lane<T>* buf, T* out) {
  const int D1 = (L1 + 1) * (L1 + 1), D2 = (L2 + 1) * (L2 + 1), Do = (lo + 1) * (lo + 1);
  Lane<T> *a = buf, *b = a + D1, *acc = b + D2, *scratch = acc + Do;
  for (int i = 0; i < D1; ++i)
    for (int c = 0; c < C; ++c) a[i][c] = c < n ? x1[(r0 + c) * s10 + i * s11] : T(0);
  for (int i = 0; i < D2; ++i)
    for (int c = 0; c < C; ++c) b[i][c] = c < n ? x2[(r0 + c) * s20 + i * s21] : T(0);
  std::fill(acc, acc + Do, Lane<T>{});
  for (int64_t k = 0; k < K; ++k) gaunt::node_pair(a, L1, b, L2, lo, table + k * st, w[k], scratch, acc);
  for (int64_t c = 0; c < n; ++c)
    for (int i = 0; i < Do; ++i) out[(r0 + c) * Do + i] = acc[i][c];
}

// rows [r0, r1), one clone per ISA; an overload per dtype
#define PYOPS_GAUNT_ROWS(T)                                                                                           \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void row_range(                     \
      const T* x1, int64_t s10, int64_t s11, const T* x2, int64_t s20, int64_t s21, int L1, int L2, int lo,         \
      const T* table, int64_t st, const T* w, int64_t K, int64_t r0, int64_t r1, Lane<T>* buf, T* out) {           \
    constexpr int64_t C = 64 / sizeof(T);                                                                            \
    for (int64_t r = r0; r < r1; r += C)                                                                             \
      rows<T>(x1, s10, s11, x2, s20, s21, L1, L2, lo, table, st, w, K, r, std::min(C, r1 - r), buf, out);            \
  }
PYOPS_GAUNT_ROWS(float)
PYOPS_GAUNT_ROWS(double)
#undef PYOPS_GAUNT_ROWS

template <typename T>
void run(const Tensor& x1, const Tensor& x2, const Tensor& table, const Tensor& weights, int L1, int L2, int lo,
         Tensor& out) {
  constexpr int64_t C = 64 / sizeof(T);
  const int64_t N = x1.size(0), K = table.size(0);
  const int64_t lanes = (L1 + 1) * (L1 + 1) + (L2 + 1) * (L2 + 1) + (lo + 1) * (lo + 1) + gaunt::scratch_size(L1, L2, lo);
  const T *p1 = x1.const_data_ptr<T>(), *p2 = x2.const_data_ptr<T>(), *pt = table.const_data_ptr<T>(),
          *pw = weights.const_data_ptr<T>();
  T* po = out.mutable_data_ptr<T>();
  // a block of C rows is ~K (L^2 + 4 L1 L2) C multiply-adds: worth a task of its own
  at::parallel_for(0, (N + C - 1) / C, 1, [&](int64_t b0, int64_t b1) {
    // aligned by hand: a template argument drops the vector type's alignment attribute
    const std::unique_ptr<void, decltype(&std::free)> buf(std::aligned_alloc(64, lanes * 64), &std::free);
    row_range(p1, x1.stride(0), x1.stride(1), p2, x2.stride(0), x2.stride(1), L1, L2, lo, pt, table.stride(0), pw, K,
           b0 * C, std::min(N, b1 * C), static_cast<Lane<T>*>(buf.get()), po);
  });
}

Tensor grid_product(const Tensor& x1, const Tensor& x2, const Tensor& table_, const Tensor& weights_,
                    int64_t lmax_out) {
  const auto [l1, l2] = gaunt_args::check(x1, x2, table_, weights_, lmax_out);
  const Tensor table = table_.contiguous(), weights = weights_.contiguous();
  Tensor out = at::empty({x1.size(0), (lmax_out + 1) * (lmax_out + 1)}, x1.options());
  if (x1.size(0) == 0) return out;
  if (x1.scalar_type() == at::kFloat)
    run<float>(x1, x2, table, weights, (int)l1, (int)l2, (int)lmax_out, out);
  else
    run<double>(x1, x2, table, weights, (int)l1, (int)l2, (int)lmax_out, out);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) { m.impl("gaunt_grid_product", &grid_product); }

}  // namespace pyops
