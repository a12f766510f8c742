// gaunt CUDA kernel: pyops::gaunt_grid_product.  One thread per (row, split s): it runs the
// node-pair math of csrc/include/pyops/gaunt.h (the CPU kernel's code, one channel per thread)
// over every S-th node pair into its own slice of the partial sums, so there are no write
// conflicts and no atomics; the split gives small batches enough threads.  The table rows are
// read by every thread of a warp at once (broadcast loads).
#include "gaunt.cuh"
#include "pyops/gaunt.h"

namespace pyops {
namespace gaunt_cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kScratch = 4 * (2 * kMaxL + 2) + 4 * (2 * kMaxL + 1);

template <typename T>
__global__ void grid_product_kernel(const T* __restrict__ x1, int L1, const T* __restrict__ x2, int L2, int lo,
                                    const T* __restrict__ table, int64_t st, const T* __restrict__ weights, int64_t K,
                                    int64_t N, int64_t S, T* __restrict__ partial) {
  const int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (t >= N * S) return;
  const int64_t n = t % N, s = t / N;
  const int64_t D1 = (L1 + 1) * (L1 + 1), D2 = (L2 + 1) * (L2 + 1), Do = (lo + 1) * (lo + 1);
  T scratch[kScratch];
  T* out = partial + (s * N + n) * Do;
  for (int64_t k = s; k < K; k += S)
    gaunt::node_pair(x1 + n * D1, L1, x2 + n * D2, L2, lo, table + k * st, weights[k], scratch, out);
}

}  // namespace

template <typename T>
void grid_product(const T* x1, int L1, const T* x2, int L2, int lo, const T* table, int64_t st, const T* weights,
                  int64_t K, int64_t N, int64_t S, T* partial, cudaStream_t stream) {
  if (N == 0 || K == 0) return;
  const int64_t blocks = (N * S + kThreads - 1) / kThreads;
  grid_product_kernel<T><<<(unsigned)blocks, kThreads, 0, stream>>>(x1, L1, x2, L2, lo, table, st, weights, K, N, S,
                                                                    partial);
}

template void grid_product<float>(const float*, int, const float*, int, int, const float*, int64_t, const float*,
                                  int64_t, int64_t, int64_t, float*, cudaStream_t);
template void grid_product<double>(const double*, int, const double*, int, int, const double*, int64_t,
                                   const double*, int64_t, int64_t, int64_t, double*, cudaStream_t);

}  // namespace gaunt_cuda
}  // namespace pyops
