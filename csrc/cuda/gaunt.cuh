// Launcher of the gaunt CUDA kernel (csrc/cuda/gaunt.cu), called by gaunt_binding.cpp.
// Plain pointers and a stream only, so the .cu compiles without torch.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace pyops {
namespace gaunt_cuda {

// The bounds of the per-thread scratch: input degrees up to kMaxL, output degree up to 2 kMaxL.
constexpr int kMaxL = 32;

// The number of node-pair splits S: split until there are ~64K threads (or one node pair each),
// so that small batches still fill the GPU.
inline int64_t node_pair_splits(int64_t N, int64_t K) {
  return std::max<int64_t>(1, std::min<int64_t>(K, (65536 + N - 1) / std::max<int64_t>(N, 1)));
}

// partial[s, n, :] = the contribution of node pairs k = s, s + S, s + 2S, ... to row n of the grid
// product (x1 [N, (L1+1)^2] and x2 [N, (L2+1)^2] contiguous, table [K, st], weights [K]); partial
// [S, N, (lo+1)^2] is zeroed by the caller, which sums it over s.  T is float or double.
template <typename T>
void grid_product(const T* x1, int L1, const T* x2, int L2, int lo, const T* table, int64_t st, const T* weights,
                  int64_t K, int64_t N, int64_t S, T* partial, cudaStream_t stream);

}  // namespace gaunt_cuda
}  // namespace pyops
