// pam CUDA kernels.  Scalar math comes from csrc/include/pyops/pam.h, shared
// with the CPU, so results are bit-identical; the matmul accumulates each
// output sequentially over k, the order of the CPU kernel and the reference.
#include "pam.cuh"
#include "pyops/pam.h"

namespace pyops {
namespace pam_cuda {
namespace {

namespace pam = pyops::pam;
constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return (int)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

template <typename T>
__global__ void binary_kernel(Binary op, const T* a, const T* b, T* out, int64_t n,
                              typename pam::Layout<T>::U bias) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    switch (op) {
      case Binary::kMul: out[i] = pam::mul<T>(a[i], b[i], bias); break;
      case Binary::kDiv: out[i] = pam::div<T>(a[i], b[i]); break;
      case Binary::kMulGradFactor: out[i] = pam::mul_grad_factor<T>(a[i], b[i], bias); break;
    }
  }
}

template <typename T>
__global__ void unary_kernel(Unary op, const T* x, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = op == Unary::kExp2 ? pam::exp2<T>(x[i]) : pam::log2<T>(x[i]);
}

// 64x64 output tiles, 16-deep k slices staged in shared memory, each of the 256
// threads accumulating a 4x4 patch in registers. Every (batch, row tile, column
// tile) is one index on grid.x, walked grid-stride: grid.y/z (65535 at most)
// would cap the batch and M.
constexpr int kTile = 64, kDepth = 16, kPer = 4;
constexpr int64_t kMaxBlocks = int64_t(1) << 30;

template <typename T>
__global__ void bmm_kernel(const T* a, const T* b, T* c, int64_t batch, int64_t M, int64_t K, int64_t N,
                           typename pam::Layout<T>::U bias) {
  __shared__ T as[kDepth][kTile + 1];
  __shared__ T bs[kDepth][kTile];
  const int64_t col_tiles = (N + kTile - 1) / kTile, row_tiles = (M + kTile - 1) / kTile;
  const int tr = threadIdx.x / (kTile / kPer), tc = threadIdx.x % (kTile / kPer);
  for (int64_t tile = blockIdx.x; tile < batch * row_tiles * col_tiles; tile += gridDim.x) {
    const int64_t s = tile / (row_tiles * col_tiles);
    const int64_t row0 = tile / col_tiles % row_tiles * kTile, col0 = tile % col_tiles * kTile;
    const T* as_src = a + s * M * K;
    const T* bs_src = b + s * K * N;
    T acc[kPer][kPer] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kDepth) {
      for (int idx = threadIdx.x; idx < kDepth * kTile; idx += blockDim.x) {
        const int kk = idx % kDepth, r = idx / kDepth;  // a tile: consecutive threads walk k
        const int64_t gi = row0 + r, gk = k0 + kk;
        as[kk][r] = (gi < M && gk < K) ? as_src[gi * K + gk] : T(0);
        const int cc = idx % kTile, kb = idx / kTile;  // b tile: consecutive threads walk n
        const int64_t gk2 = k0 + kb, gj = col0 + cc;
        bs[kb][cc] = (gk2 < K && gj < N) ? bs_src[gk2 * N + gj] : T(0);
      }
      __syncthreads();
      const int depth = (int)(K - k0 < kDepth ? K - k0 : kDepth);
      for (int kk = 0; kk < depth; ++kk)
#pragma unroll
        for (int i = 0; i < kPer; ++i)
#pragma unroll
          for (int j = 0; j < kPer; ++j)
            acc[i][j] += pam::mul<T>(as[kk][tr * kPer + i], bs[kk][tc * kPer + j], bias);
      __syncthreads();
    }
    T* c_dst = c + s * M * N;
#pragma unroll
    for (int i = 0; i < kPer; ++i)
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        const int64_t gi = row0 + tr * kPer + i, gj = col0 + tc * kPer + j;
        if (gi < M && gj < N) c_dst[gi * N + gj] = acc[i][j];
      }
  }
}

template <typename T>
__global__ void exact_grad_a_kernel(const T* g, const T* a, const T* b, T* ga, int64_t batch, int64_t M, int64_t K,
                                    int64_t N, typename pam::Layout<T>::U bias, typename pam::Layout<T>::U one) {
  const int64_t total = batch * M * K;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t s = t / (M * K), i = (t / K) % M, k = t % K;
    const T av = a[t];
    T acc = 0;
    for (int64_t j = 0; j < N; ++j)
      acc += pam::mul<T>(g[(s * M + i) * N + j], pam::mul_grad_factor<T>(av, b[(s * K + k) * N + j], bias), one);
    ga[t] = acc;
  }
}

template <typename T>
__global__ void exact_grad_b_kernel(const T* g, const T* a, const T* b, T* gb, int64_t batch, int64_t M, int64_t K,
                                    int64_t N, typename pam::Layout<T>::U bias, typename pam::Layout<T>::U one) {
  const int64_t total = batch * K * N;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t s = t / (K * N), k = (t / N) % K, j = t % N;
    const T bv = b[t];
    T acc = 0;
    for (int64_t i = 0; i < M; ++i)
      acc += pam::mul<T>(g[(s * M + i) * N + j], pam::mul_grad_factor<T>(bv, a[(s * M + i) * K + k], bias), one);
    gb[t] = acc;
  }
}

}  // namespace

template <typename T>
void binary(Binary op, const T* a, const T* b, T* out, int64_t n, T offset, cudaStream_t stream) {
  if (n == 0) return;
  binary_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(op, a, b, out, n, pam::bias<T>(offset));
}

template <typename T>
void unary(Unary op, const T* x, T* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  unary_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(op, x, out, n);
}

template <typename T>
void bmm(const T* a, const T* b, T* c, int64_t batch, int64_t M, int64_t K, int64_t N, T offset,
         cudaStream_t stream) {
  if (batch == 0 || M == 0 || N == 0) return;
  const int64_t tiles = batch * ((M + kTile - 1) / kTile) * ((N + kTile - 1) / kTile);
  const unsigned blocks = (unsigned)(tiles < kMaxBlocks ? tiles : kMaxBlocks);
  bmm_kernel<T><<<blocks, (kTile / kPer) * (kTile / kPer), 0, stream>>>(a, b, c, batch, M, K, N, pam::bias<T>(offset));
}

template <typename T>
void bmm_exact_grad(const T* g, const T* a, const T* b, T* ga, T* gb, int64_t batch, int64_t M, int64_t K,
                    int64_t N, T offset, cudaStream_t stream) {
  const auto bias = pam::bias<T>(offset), one = pam::bias<T>(T(1));
  if (batch * M * K)
    exact_grad_a_kernel<T><<<blocks_for(batch * M * K), kThreads, 0, stream>>>(g, a, b, ga, batch, M, K, N, bias, one);
  if (batch * K * N)
    exact_grad_b_kernel<T><<<blocks_for(batch * K * N), kThreads, 0, stream>>>(g, a, b, gb, batch, M, K, N, bias, one);
}

#define PYOPS_PAM_INSTANTIATE(T)                                                                              \
  template void binary<T>(Binary, const T*, const T*, T*, int64_t, T, cudaStream_t);                         \
  template void unary<T>(Unary, const T*, T*, int64_t, cudaStream_t);                                        \
  template void bmm<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, T, cudaStream_t);         \
  template void bmm_exact_grad<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int64_t, T, \
                                  cudaStream_t);
PYOPS_PAM_INSTANTIATE(float)
PYOPS_PAM_INSTANTIATE(double)

}  // namespace pam_cuda
}  // namespace pyops
