// A C ABI around the launchers declared in csrc/cuda/*.cuh, for ctypes: each
// function runs one launcher (the real one, with its own launch-parameter
// choice) and returns the CUDA error code of its launches.
#include <cstdint>

#include "fewbit.cuh"
#include "gaunt.cuh"
#include "intops.cuh"
#include "pam.cuh"
#include "pyops/intops.h"
#include "wavehax.cuh"

using namespace pyops;

#define PYOPS_EMU_ERR return (int)cudaGetLastError()

extern "C" {

void emu_set_dry_run(int on) { pyops_emu::set_dry_run(on); }

// ---- pam: T = f32 | f64 ----
#define PYOPS_EMU_PAM(SUF, T)                                                                                      \
  int pam_binary_##SUF(int op, const T* a, const T* b, T* out, int64_t n, T offset) {                              \
    pam_cuda::binary<T>((pam_cuda::Binary)op, a, b, out, n, offset, nullptr);                                      \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int pam_unary_##SUF(int op, const T* x, T* out, int64_t n) {                                                     \
    pam_cuda::unary<T>((pam_cuda::Unary)op, x, out, n, nullptr);                                                   \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int pam_bmm_##SUF(const T* a, const T* b, T* c, int64_t batch, int64_t M, int64_t K, int64_t N, T offset) {      \
    pam_cuda::bmm<T>(a, b, c, batch, M, K, N, offset, nullptr);                                                    \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int pam_bmm_exact_grad_##SUF(const T* g, const T* a, const T* b, T* ga, T* gb, int64_t batch, int64_t M,        \
                               int64_t K, int64_t N, T offset) {                                                   \
    pam_cuda::bmm_exact_grad<T>(g, a, b, ga, gb, batch, M, K, N, offset, nullptr);                                 \
    PYOPS_EMU_ERR;                                                                                                 \
  }
PYOPS_EMU_PAM(f32, float)
PYOPS_EMU_PAM(f64, double)

// ---- fewbit: kind 0 f32, 1 f64, 2 f16, 3 bf16 ----
int fewbit_encode(int kind, const void* x, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits) {
  fewbit_cuda::encode((fewbit_cuda::Kind)kind, x, borders, n_borders, out, n, bits, nullptr);
  PYOPS_EMU_ERR;
}
int fewbit_forward(int kind, const void* x, void* y, const float* borders, int n_borders, uint8_t* out, int64_t n,
                   int bits, int fn) {
  fewbit_cuda::forward((fewbit_cuda::Kind)kind, x, y, borders, n_borders, out, n, bits, fn, nullptr);
  PYOPS_EMU_ERR;
}
int fewbit_backward(int kind, const void* grad, const uint8_t* codes, const float* levels, void* out, int64_t n,
                    int bits) {
  fewbit_cuda::backward((fewbit_cuda::Kind)kind, grad, codes, levels, out, n, bits, nullptr);
  PYOPS_EMU_ERR;
}

// ---- gaunt ----
int64_t gaunt_splits(int64_t N, int64_t K) { return gaunt_cuda::node_pair_splits(N, K); }
#define PYOPS_EMU_GAUNT(SUF, T)                                                                                    \
  int gaunt_grid_product_##SUF(const T* x1, int L1, const T* x2, int L2, int lo, const T* table, int64_t st,     \
                               const T* weights, int64_t K, int64_t N, int64_t S, T* partial) {                   \
    gaunt_cuda::grid_product<T>(x1, L1, x2, L2, lo, table, st, weights, K, N, S, partial, nullptr);              \
    PYOPS_EMU_ERR;                                                                                                 \
  }
PYOPS_EMU_GAUNT(f32, float)
PYOPS_EMU_GAUNT(f64, double)

// ---- intops: In = i8 | i16 | i32 ----
#define PYOPS_EMU_INTOPS(SUF, In)                                                                                  \
  int intops_softmax_##SUF(const In* x, int32_t* out, int64_t rows, int64_t n, int64_t x0, int64_t b, int64_t c,  \
                           int out_shift, int ibert) {                                                             \
    intops_cuda::softmax<In>(x, out, rows, n, x0, b, c, out_shift, ibert, nullptr);                                \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int intops_shiftgelu_##SUF(const In* x, int64_t* out, int64_t rows, int64_t n, int64_t x0, int out_shift) {      \
    intops_cuda::shiftgelu<In>(x, out, rows, n, x0, out_shift, nullptr);                                           \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int intops_layernorm_##SUF(const In* x, const int64_t* bias, int32_t* out, int64_t rows, int64_t n, int shift,  \
                             int exact) {                                                                          \
    intops_cuda::layernorm<In>(x, bias, out, rows, n, shift, exact, nullptr);                                      \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int intops_gelu_##SUF(const In* x, const int64_t* b, const int64_t* c, const int64_t* one, int64_t* out,        \
                        int64_t numel, int64_t channels) {                                                         \
    intops_cuda::gelu<In>(x, b, c, one, out, numel, channels, nullptr);                                            \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int intops_exp_##SUF(const In* x, int64_t* out, int64_t numel, int64_t x0, int64_t b, int64_t c) {              \
    intops_cuda::exp<In>(x, out, numel, x0, b, c, nullptr);                                                        \
    PYOPS_EMU_ERR;                                                                                                 \
  }                                                                                                                \
  int intops_requantize_##SUF(const In* x, const int64_t* m, const int64_t* e, int32_t* out, int64_t numel,       \
                              int64_t channels, int64_t lo, int64_t hi) {                                          \
    intops_cuda::requantize<In>(x, m, e, out, numel, channels, lo, hi, nullptr);                                   \
    PYOPS_EMU_ERR;                                                                                                 \
  }
PYOPS_EMU_INTOPS(i8, int8_t)
PYOPS_EMU_INTOPS(i16, int16_t)
PYOPS_EMU_INTOPS(i32, int32_t)
// the constants' domains (csrc/include/pyops/intops.h), which the CPU op and the CUDA binding check
int intops_ibert_constants_ok(int64_t x0, int64_t b, int64_t c) { return !intops::ibert_constants_error(x0, b, c); }
int intops_shift_x0_ok(int64_t x0, int n) { return !intops::shift_x0_error(x0, n); }
int intops_requantize_constants_ok(int64_t m, int64_t e) { return !intops::requantize_constants_error(m, e); }
int intops_layernorm_shift(int64_t maxdev, int64_t len, int shift) { return intops::layernorm_shift(maxdev, len, shift); }

int intops_isqrt(const int64_t* x, int64_t* out, int64_t numel) {
  intops_cuda::isqrt(x, out, numel, nullptr);
  PYOPS_EMU_ERR;
}

// ---- wavehax ----
#define PYOPS_EMU_WAVEHAX(SUF, T)                                                                                  \
  int wavehax_convnext2d_block_##SUF(const T* x, const T* dw, const T* gamma, const T* beta, const T* w1t,        \
                                     const T* b1, const T* w2t, const T* b2, double eps, int framewise, int64_t B, \
                                     int64_t F, int64_t Tn, int64_t C, int64_t H, int KF, int KT, T* h,          \
                                     double* stats, T* out) {                                                      \
    wavehax_cuda::convnext2d_block<T>(x, dw, gamma, beta, w1t, b1, w2t, b2, eps, framewise, B, F, Tn, C, H, KF, KT, \
                                      h, stats, out, nullptr);                                                        \
    PYOPS_EMU_ERR;                                                                                                 \
  }
PYOPS_EMU_WAVEHAX(f32, float)
PYOPS_EMU_WAVEHAX(f64, double)
int wavehax_harmonic_prior(const float* f0, const float* noise, const double* start, float* out, int64_t B,
                           int64_t N, int64_t hop, int sample_rate, double power_factor) {
  wavehax_cuda::harmonic_prior(f0, noise, start, out, B, N, hop, sample_rate, power_factor, nullptr);
  PYOPS_EMU_ERR;
}

}  // extern "C"
