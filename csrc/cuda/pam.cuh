// Launchers of the pam CUDA kernels (csrc/cuda/pam.cu), called by pam_binding.cpp.
// Plain pointers and a stream only, so the .cu compiles without torch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pyops {
namespace pam_cuda {

enum class Binary { kMul, kDiv, kMulGradFactor };
enum class Unary { kExp2, kLog2 };

// T is float or double; inputs contiguous with n elements.
template <typename T>
void binary(Binary op, const T* a, const T* b, T* out, int64_t n, T offset, cudaStream_t stream);

template <typename T>
void unary(Unary op, const T* x, T* out, int64_t n, cudaStream_t stream);

// c[s] = PAM-matmul(a[s], b[s]) for contiguous a [batch, M, K], b [batch, K, N].
template <typename T>
void bmm(const T* a, const T* b, T* c, int64_t batch, int64_t M, int64_t K, int64_t N, T offset,
         cudaStream_t stream);

// Exact-mode gradients of bmm (see csrc/cpu/pam.cpp for the formula).
template <typename T>
void bmm_exact_grad(const T* g, const T* a, const T* b, T* ga, T* gb, int64_t batch, int64_t M, int64_t K,
                    int64_t N, T offset, cudaStream_t stream);

}  // namespace pam_cuda
}  // namespace pyops
