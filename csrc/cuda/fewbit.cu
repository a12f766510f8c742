// fewbit CUDA kernels: one thread per 8-element group (its b bytes of the code
// stream); code and packing math from csrc/include/pyops/fewbit.h.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fewbit.cuh"
#include "pyops/fewbit.h"

namespace pyops {
namespace fewbit_cuda {
namespace {

namespace fb = pyops::fewbit;
constexpr int kThreads = 256;

__device__ float to_float(float v) { return v; }
__device__ float to_float(double v) { return (float)v; }
__device__ float to_float(__half v) { return __half2float(v); }
__device__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ void from_float(float v, float* out) { *out = v; }
__device__ void from_float(float v, __half* out) { *out = __float2half(v); }
__device__ void from_float(float v, __nv_bfloat16* out) { *out = __float2bfloat16(v); }

template <typename T>
__device__ T scale(float level, T g);
template <>
__device__ float scale(float level, float g) { return level * g; }
template <>
__device__ double scale(float level, double g) { return (double)level * g; }
template <>
__device__ __half scale(float level, __half g) { return __float2half(level * __half2float(g)); }
template <>
__device__ __nv_bfloat16 scale(float level, __nv_bfloat16 g) {
  return __float2bfloat16(level * __bfloat162float(g));
}

template <typename T>
__global__ void encode_kernel(const T* x, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits) {
  const int64_t groups = (n + 7) / 8;
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    uint32_t codes[8] = {};
    const int64_t base = g * 8, len = n - base < 8 ? n - base : 8;
    for (int j = 0; j < len; ++j) codes[j] = fb::code(to_float(x[base + j]), borders, n_borders);
    const uint64_t word = fb::pack8(codes, bits);
    for (int64_t k = 0; k < (len * bits + 7) / 8; ++k) out[g * bits + k] = (uint8_t)(word >> (8 * k));
  }
}

// The fused forward: each thread activates its group of 8 and packs its codes.
template <typename T>
__global__ void forward_kernel(const T* x, T* y, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits,
                               fb::Fn fn) {
  const int64_t groups = (n + 7) / 8;
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    uint32_t codes[8] = {};
    const int64_t base = g * 8, len = n - base < 8 ? n - base : 8;
    for (int j = 0; j < len; ++j) {
      const float v = to_float(x[base + j]);
      from_float(fb::activate(fn, v), y + base + j);
      codes[j] = fb::code(v, borders, n_borders);
    }
    const uint64_t word = fb::pack8(codes, bits);
    for (int64_t k = 0; k < (len * bits + 7) / 8; ++k) out[g * bits + k] = (uint8_t)(word >> (8 * k));
  }
}

template <typename T>
__global__ void backward_kernel(const T* grad, const uint8_t* codes, const float* levels, T* out, int64_t n, int bits) {
  const int64_t groups = (n + 7) / 8;
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    const int64_t base = g * 8, len = n - base < 8 ? n - base : 8;
    uint64_t word = 0;
    for (int64_t k = 0; k < (len * bits + 7) / 8; ++k) word |= (uint64_t)codes[g * bits + k] << (8 * k);
    for (int j = 0; j < len; ++j) out[base + j] = scale(levels[fb::unpack(word, j, bits)], grad[base + j]);
  }
}

int blocks_for(int64_t groups) {
  const int64_t b = (groups + kThreads - 1) / kThreads;
  return (int)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

template <typename T>
void encode_t(const void* x, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits, cudaStream_t s) {
  encode_kernel<T><<<blocks_for((n + 7) / 8), kThreads, 0, s>>>((const T*)x, borders, n_borders, out, n, bits);
}

template <typename T>
void forward_t(const void* x, void* y, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits, int fn,
               cudaStream_t s) {
  forward_kernel<T><<<blocks_for((n + 7) / 8), kThreads, 0, s>>>((const T*)x, (T*)y, borders, n_borders, out, n, bits,
                                                                 (fb::Fn)fn);
}

template <typename T>
void backward_t(const void* grad, const uint8_t* codes, const float* levels, void* out, int64_t n, int bits,
                cudaStream_t s) {
  backward_kernel<T><<<blocks_for((n + 7) / 8), kThreads, 0, s>>>((const T*)grad, codes, levels, (T*)out, n, bits);
}

}  // namespace

void encode(Kind kind, const void* x, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits,
            cudaStream_t stream) {
  if (n == 0) return;
  switch (kind) {
    case Kind::kFloat: encode_t<float>(x, borders, n_borders, out, n, bits, stream); break;
    case Kind::kDouble: encode_t<double>(x, borders, n_borders, out, n, bits, stream); break;
    case Kind::kHalf: encode_t<__half>(x, borders, n_borders, out, n, bits, stream); break;
    case Kind::kBFloat16: encode_t<__nv_bfloat16>(x, borders, n_borders, out, n, bits, stream); break;
  }
}

void forward(Kind kind, const void* x, void* y, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits,
             int fn, cudaStream_t stream) {
  if (n == 0) return;
  switch (kind) {
    case Kind::kFloat: forward_t<float>(x, y, borders, n_borders, out, n, bits, fn, stream); break;
    case Kind::kHalf: forward_t<__half>(x, y, borders, n_borders, out, n, bits, fn, stream); break;
    case Kind::kBFloat16: forward_t<__nv_bfloat16>(x, y, borders, n_borders, out, n, bits, fn, stream); break;
    case Kind::kDouble: break;  // the binding keeps torch's float64 activation
  }
}

void backward(Kind kind, const void* grad, const uint8_t* codes, const float* levels, void* out, int64_t n, int bits,
              cudaStream_t stream) {
  if (n == 0) return;
  switch (kind) {
    case Kind::kFloat: backward_t<float>(grad, codes, levels, out, n, bits, stream); break;
    case Kind::kDouble: backward_t<double>(grad, codes, levels, out, n, bits, stream); break;
    case Kind::kHalf: backward_t<__half>(grad, codes, levels, out, n, bits, stream); break;
    case Kind::kBFloat16: backward_t<__nv_bfloat16>(grad, codes, levels, out, n, bits, stream); break;
  }
}

}  // namespace fewbit_cuda
}  // namespace pyops
