// intops CUDA kernels: one block per row for the row-wise ops (block
// reductions for the max and sums), grid-stride loops for the elementwise
// ones.  Scalar math from csrc/include/pyops/intops.h, shared with the CPU.
#include "intops.cuh"
#include "pyops/intops.h"

namespace pyops {
namespace intops_cuda {
namespace {

namespace io = pyops::intops;
constexpr int kThreads = 256;

enum class Reduce { kSum, kMax };

// Block-wide reduction of one int64 per thread; every thread gets the result.
template <Reduce kOp>
__device__ int64_t block_reduce(int64_t v) {
  __shared__ int64_t buf[kThreads];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const int64_t o = buf[threadIdx.x + s];
      buf[threadIdx.x] = kOp == Reduce::kSum ? buf[threadIdx.x] + o : (o > buf[threadIdx.x] ? o : buf[threadIdx.x]);
    }
    __syncthreads();
  }
  const int64_t r = buf[0];
  __syncthreads();
  return r;
}

template <typename In>
__device__ int64_t row_max(const In* x, int64_t n) {
  int64_t m = INT64_MIN;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = x[i] > m ? (int64_t)x[i] : m;
  return block_reduce<Reduce::kMax>(m);
}

template <typename In>
__global__ void softmax_kernel(const In* x, int32_t* out, int64_t n, int64_t x0, int64_t b, int64_t c, int out_shift,
                               bool ibert) {
  x += blockIdx.x * n;
  out += blockIdx.x * n;
  const int64_t mx = row_max(x, n);
  auto e_of = [&](int64_t i) { return ibert ? io::ibert_exp16(x[i] - mx, x0, b, c) : io::shift_exp(x[i] - mx, x0, 15); };
  int64_t part = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) part += e_of(i);
  const int64_t sum = block_reduce<Reduce::kSum>(part);
  const int64_t factor = ibert ? (int64_t(1) << 32) / sum : int64_t(2147483647) / (sum < 2147483647 ? sum : 2147483647);
  // e is recomputed rather than stored: a row may exceed shared memory.
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) out[i] = (int32_t)((e_of(i) * factor) >> out_shift);
}

template <typename In>
__global__ void shiftgelu_kernel(const In* x, int64_t* out, int64_t n, int64_t x0, int out_shift) {
  x += blockIdx.x * n;
  out += blockIdx.x * n;
  const int64_t mx = row_max(x, n);
  const int64_t e_max = io::shift_exp(-mx, x0, 23);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t e = io::shift_exp(x[i] - mx, x0, 23);
    int64_t total = e + e_max;
    total = total < 2147483647 ? total : 2147483647;
    out[i] = (int64_t)x[i] * ((e * (2147483647 / total)) >> out_shift);
  }
}

template <typename In>
__global__ void layernorm_kernel(const In* x, const int64_t* bias, int32_t* out, int64_t n, int shift, bool exact) {
  x += blockIdx.x * n;
  out += blockIdx.x * n;
  int64_t part = 0, lo = INT64_MAX, hi = INT64_MIN;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    part += x[i];
    lo = x[i] < lo ? (int64_t)x[i] : lo;
    hi = x[i] > hi ? (int64_t)x[i] : hi;
  }
  const int64_t mean = io::round_div(block_reduce<Reduce::kSum>(part), n);
  hi = block_reduce<Reduce::kMax>(hi);
  lo = -block_reduce<Reduce::kMax>(-lo);
  const int s = io::layernorm_shift(hi - mean > mean - lo ? hi - mean : mean - lo, n, shift);
  part = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t y = (x[i] - mean) >> s;
    part += y * y;
  }
  const int64_t var = block_reduce<Reduce::kSum>(part);
  int64_t factor;
  if (exact) {
    const int64_t std = io::isqrt(var) << s;
    factor = std > 0 ? (int64_t(1) << 31) / std : 0;
  } else {
    factor = int64_t(2147483647) / (io::newton_sqrt(var) << s);
  }
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    out[i] = (int32_t)((((x[i] - mean) * factor) >> 1) + bias[i]);
}

#define PYOPS_GRID_STRIDE(i, numel) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < numel; i += (int64_t)gridDim.x * blockDim.x)

template <typename In>
__global__ void gelu_kernel(const In* x, const int64_t* b, const int64_t* c, const int64_t* one, int64_t* out,
                            int64_t numel, int64_t channels) {
  PYOPS_GRID_STRIDE(i, numel) {
    const int64_t ch = i % channels;
    out[i] = io::ibert_gelu(x[i], b[ch], c[ch], one[ch]);
  }
}

template <typename In>
__global__ void exp_kernel(const In* x, int64_t* out, int64_t numel, int64_t x0, int64_t b, int64_t c) {
  PYOPS_GRID_STRIDE(i, numel) out[i] = io::ibert_exp(x[i], x0, b, c);
}

template <typename In>
__global__ void requantize_kernel(const In* x, const int64_t* m, const int64_t* e, int32_t* out, int64_t numel,
                                  int64_t channels, int64_t lo, int64_t hi) {
  PYOPS_GRID_STRIDE(i, numel) {
    const int64_t ch = i % channels;
    out[i] = (int32_t)io::requantize(x[i], m[ch], e[ch], lo, hi);
  }
}

__global__ void isqrt_kernel(const int64_t* x, int64_t* out, int64_t numel) {
  PYOPS_GRID_STRIDE(i, numel) out[i] = io::isqrt(x[i]);
}

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return (int)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

}  // namespace

template <typename In>
void softmax(const In* x, int32_t* out, int64_t rows, int64_t n, int64_t x0, int64_t b, int64_t c, int out_shift,
             bool ibert, cudaStream_t stream) {
  if (rows) softmax_kernel<In><<<(unsigned)rows, kThreads, 0, stream>>>(x, out, n, x0, b, c, out_shift, ibert);
}
template <typename In>
void shiftgelu(const In* x, int64_t* out, int64_t rows, int64_t n, int64_t x0, int out_shift, cudaStream_t stream) {
  if (rows) shiftgelu_kernel<In><<<(unsigned)rows, kThreads, 0, stream>>>(x, out, n, x0, out_shift);
}
template <typename In>
void layernorm(const In* x, const int64_t* bias, int32_t* out, int64_t rows, int64_t n, int shift, bool exact,
               cudaStream_t stream) {
  if (rows) layernorm_kernel<In><<<(unsigned)rows, kThreads, 0, stream>>>(x, bias, out, n, shift, exact);
}
template <typename In>
void gelu(const In* x, const int64_t* b, const int64_t* c, const int64_t* one, int64_t* out, int64_t numel,
          int64_t channels, cudaStream_t stream) {
  if (numel) gelu_kernel<In><<<blocks_for(numel), kThreads, 0, stream>>>(x, b, c, one, out, numel, channels);
}
template <typename In>
void exp(const In* x, int64_t* out, int64_t numel, int64_t x0, int64_t b, int64_t c, cudaStream_t stream) {
  if (numel) exp_kernel<In><<<blocks_for(numel), kThreads, 0, stream>>>(x, out, numel, x0, b, c);
}
template <typename In>
void requantize(const In* x, const int64_t* m, const int64_t* e, int32_t* out, int64_t numel, int64_t channels,
                int64_t lo, int64_t hi, cudaStream_t stream) {
  if (numel) requantize_kernel<In><<<blocks_for(numel), kThreads, 0, stream>>>(x, m, e, out, numel, channels, lo, hi);
}
void isqrt(const int64_t* x, int64_t* out, int64_t numel, cudaStream_t stream) {
  if (numel) isqrt_kernel<<<blocks_for(numel), kThreads, 0, stream>>>(x, out, numel);
}

#define PYOPS_INTOPS_INSTANTIATE(In)                                                                              \
  template void softmax<In>(const In*, int32_t*, int64_t, int64_t, int64_t, int64_t, int64_t, int, bool,          \
                            cudaStream_t);                                                                        \
  template void shiftgelu<In>(const In*, int64_t*, int64_t, int64_t, int64_t, int, cudaStream_t);                 \
  template void layernorm<In>(const In*, const int64_t*, int32_t*, int64_t, int64_t, int, bool, cudaStream_t);    \
  template void gelu<In>(const In*, const int64_t*, const int64_t*, const int64_t*, int64_t*, int64_t, int64_t,   \
                         cudaStream_t);                                                                           \
  template void exp<In>(const In*, int64_t*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);                   \
  template void requantize<In>(const In*, const int64_t*, const int64_t*, int32_t*, int64_t, int64_t, int64_t,    \
                               int64_t, cudaStream_t);
PYOPS_INTOPS_INSTANTIATE(int8_t)
PYOPS_INTOPS_INSTANTIATE(int16_t)
PYOPS_INTOPS_INSTANTIATE(int32_t)

}  // namespace intops_cuda
}  // namespace pyops
