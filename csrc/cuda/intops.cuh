// Launchers of the intops CUDA kernels (csrc/cuda/intops.cu), called by intops_binding.cpp.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pyops {
namespace intops_cuda {

// In is int8_t, int16_t or int32_t; rows of length n, contiguous.
template <typename In>
void softmax(const In* x, int32_t* out, int64_t rows, int64_t n, int64_t x0, int64_t b, int64_t c, int out_shift,
             bool ibert, cudaStream_t stream);
template <typename In>
void shiftgelu(const In* x, int64_t* out, int64_t rows, int64_t n, int64_t x0, int out_shift, cudaStream_t stream);
template <typename In>
void layernorm(const In* x, const int64_t* bias, int32_t* out, int64_t rows, int64_t n, int shift, bool exact,
               cudaStream_t stream);
// Elementwise; per-channel constants indexed by (i % channels).
template <typename In>
void gelu(const In* x, const int64_t* b, const int64_t* c, const int64_t* one, int64_t* out, int64_t numel,
          int64_t channels, cudaStream_t stream);
template <typename In>
void exp(const In* x, int64_t* out, int64_t numel, int64_t x0, int64_t b, int64_t c, cudaStream_t stream);
template <typename In>
void requantize(const In* x, const int64_t* m, const int64_t* e, int32_t* out, int64_t numel, int64_t channels,
                int64_t lo, int64_t hi, cudaStream_t stream);
void isqrt(const int64_t* x, int64_t* out, int64_t numel, cudaStream_t stream);

}  // namespace intops_cuda
}  // namespace pyops
