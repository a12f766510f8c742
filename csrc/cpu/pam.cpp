// pam CPU kernels: elementwise PAM ops and a tiled, vectorised, multithreaded
// PAM matmul whose memory is O(inputs + output) (the official CPU fallback
// materialises an n*k*m tensor).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "pyops/pam.h"

namespace pyops {
namespace {

namespace pam = pyops::pam;
using at::Tensor;

constexpr int64_t kGrain = 1 << 15;

void check_dtype(const char* op, const char* arg, const Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble || t.scalar_type() == at::kBFloat16,
              "pyops.", op, ": argument '", arg, "' must be float32, float64 or bfloat16, got ", t.scalar_type());
}

void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  check_dtype(op, "a", a);
  check_dtype(op, "b", b);
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "pyops.", op, ": arguments 'a' and 'b' must share a dtype, got ",
              a.scalar_type(), " and ", b.scalar_type());
}

// bfloat16 runs the float32 kernels: bf16 values widen exactly, and with a
// bf16-rounded offset every PAM/PAD result has zero low 16 bits, so narrowing
// back is exact.  exp2/log2 round their fp32 result to bf16.
at::ScalarType compute_type(const Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? at::kFloat : t.scalar_type();
}

double bf16_offset(double offset, const Tensor& t) {
  if (t.scalar_type() != at::kBFloat16) return offset;
  return at::BFloat16((float)offset);
}

// ---------------------------------------------------------------- elementwise
__attribute__((target_clones("avx512f", "avx2", "default"))) void mul_f32(const float* a, const float* b, float* o,
                                                                          int64_t n, uint32_t bias) {
  for (int64_t i = 0; i < n; ++i) o[i] = pam::mul<float>(a[i], b[i], bias);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void div_f32(const float* a, const float* b, float* o,
                                                                          int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = pam::div<float>(a[i], b[i]);
}

template <typename T>
void mul_any(const T* a, const T* b, T* o, int64_t n, double offset) {
  if constexpr (std::is_same_v<T, float>) {
    mul_f32(a, b, o, n, pam::bias<float>((float)offset));
  } else {
    const auto bias = pam::bias<T>((T)offset);
    for (int64_t i = 0; i < n; ++i) o[i] = pam::mul<T>(a[i], b[i], bias);
  }
}

template <typename T>
void div_any(const T* a, const T* b, T* o, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    div_f32(a, b, o, n);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = pam::div<T>(a[i], b[i]);
  }
}

template <typename T>
void grad_factor_any(const T* a, const T* b, T* o, int64_t n, double offset) {
  const auto bias = pam::bias<T>((T)offset);
  for (int64_t i = 0; i < n; ++i) o[i] = pam::mul_grad_factor<T>(a[i], b[i], bias);
}

// Broadcast a and b like torch, run `fn(a, b, out, n)` over chunks in parallel.
template <typename Fn>
Tensor binary(const char* op, const Tensor& a_, const Tensor& b_, Fn fn) {
  check_pair(op, a_, b_);
  const auto shape = at::infer_size(a_.sizes(), b_.sizes());
  const auto ct = compute_type(a_);
  const Tensor a = a_.to(ct).expand(shape).contiguous();
  const Tensor b = b_.to(ct).expand(shape).contiguous();
  Tensor out = at::empty(shape, a.options());
  AT_DISPATCH_FLOATING_TYPES(ct, "pam", [&] {
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, out.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      fn(pa + lo, pb + lo, po + lo, hi - lo);
    });
  });
  return out.to(a_.scalar_type());
}

Tensor mul(const Tensor& a, const Tensor& b, double offset, bool /*exact_grad: autograd only*/) {
  offset = bf16_offset(offset, a);
  return binary("pam_mul", a, b, [&](auto pa, auto pb, auto po, int64_t n) { mul_any(pa, pb, po, n, offset); });
}

Tensor div(const Tensor& a, const Tensor& b) {
  return binary("pam_div", a, b, [](auto pa, auto pb, auto po, int64_t n) { div_any(pa, pb, po, n); });
}

Tensor mul_grad_factor(const Tensor& a, const Tensor& b, double offset) {
  offset = bf16_offset(offset, a);
  return binary("pam_mul_grad_factor", a, b,
                [&](auto pa, auto pb, auto po, int64_t n) { grad_factor_any(pa, pb, po, n, offset); });
}

template <bool kLog>
Tensor unary(const char* op, const Tensor& x_) {
  check_dtype(op, "x", x_);
  const Tensor x = x_.to(compute_type(x_)).contiguous();
  Tensor out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pam", [&] {
    const scalar_t* px = x.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = kLog ? pam::log2<scalar_t>(px[i]) : pam::exp2<scalar_t>(px[i]);
    });
  });
  return out.to(x_.scalar_type());
}

Tensor exp2(const Tensor& x) { return unary<false>("pam_exp2", x); }
Tensor log2(const Tensor& x) { return unary<true>("pam_log2", x); }

// --------------------------------------------------------------------- matmul
// Fast float32 path.  For finite operands whose product cannot leave the
// normal range, PAM(a, b) is one integer add of the full bit patterns:
// (A - bias) + B, the sign bits adding into their XOR.  We pack each 16-column
// panel of B as bits plus a lane mask (0 for zero/denormal b), precompute
// A - bias per element, and decide per element of A whether the fast form is
// safe against the exponent range of B.  Unsafe elements of A (rare: huge or
// tiny magnitudes) are applied afterwards with the exact scalar PAM.
constexpr int kNR = 16;  // columns per panel: one AVX-512 vector, two AVX2
constexpr int kMR = 4;   // rows per micro-tile, sharing each loaded B vector
constexpr int64_t kRowBlock = 64;
typedef int32_t vint __attribute__((vector_size(kNR * 4)));
typedef float vfloat __attribute__((vector_size(kNR * 4)));

struct PackedB {
  std::vector<int32_t> bits, mask;  // [panel][k][kNR]
  uint32_t exp_min = 255, exp_max = 0;
  bool has_zero = false;
};

// Micro-kernel: C[kMR rows][kNR] = sum_k PAM(a[r][k], panel[k]).  a_add holds
// A - bias, a_mask zeroes the lanes of skipped A elements (zero or unsafe).
template <bool kMaskB, bool kMaskA>
__attribute__((target_clones("avx512f", "avx2", "default"))) void micro_kernel(
    int64_t K, const int32_t* a_add, const int32_t* a_mask, int64_t lda, const int32_t* panel,
    const int32_t* panel_mask, float* c, int64_t ldc, int rows) {
  vfloat acc[kMR] = {};
  for (int64_t k = 0; k < K; ++k) {
    vint b, m;
    __builtin_memcpy(&b, panel + k * kNR, sizeof b);
    if (kMaskB) __builtin_memcpy(&m, panel_mask + k * kNR, sizeof m);
    for (int r = 0; r < kMR; ++r) {
      vint p = b + a_add[r * lda + k];
      if (kMaskB) p &= m;
      if (kMaskA) p &= a_mask[r * lda + k];
      vfloat f;
      __builtin_memcpy(&f, &p, sizeof f);
      acc[r] += f;
    }
  }
  for (int r = 0; r < rows; ++r) __builtin_memcpy(c + r * ldc, &acc[r], sizeof(vfloat));
}

void matmul_f32_fast(const float* A, const float* B, float* C, int64_t M, int64_t K, int64_t N, uint32_t bias) {
  const int64_t panels = (N + kNR - 1) / kNR;
  PackedB pb;
  pb.bits.assign(panels * K * kNR, 0);
  pb.mask.assign(panels * K * kNR, 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N; ++j) {
      const uint32_t u = f32_bits(B[k * N + j]);
      const uint32_t e = (u >> 23) & 0xFF;
      const int64_t at = ((j / kNR) * K + k) * kNR + j % kNR;
      pb.bits[at] = (int32_t)u;
      if (e == 0) {
        pb.has_zero = true;
        continue;
      }
      pb.mask[at] = -1;
      pb.exp_min = std::min(pb.exp_min, e);
      pb.exp_max = std::max(pb.exp_max, e);
    }
  if (N % kNR) pb.has_zero = true;  // padding lanes must be masked
  const bool any_skipped_rows = M % kMR != 0;

  // Per element of A: safe iff every product with a nonzero b stays normal.
  // Magnitude sums lie in [(ea + eb) << 23, (ea + eb + 2) << 23).
  // Rows padded to a multiple of kMR (mask 0) so a short last tile reads valid memory.
  const int64_t M_padded = (M + kMR - 1) / kMR * kMR;
  std::vector<int32_t> a_add(M_padded * K, 0), a_mask(M_padded * K, 0);
  std::vector<std::vector<int64_t>> unsafe(M);
  bool any_skipped = any_skipped_rows;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const uint32_t u = f32_bits(A[i * K + k]);
      const uint64_t e = (u >> 23) & 0xFF;
      a_add[i * K + k] = (int32_t)(u - bias);
      const bool zero = e == 0 || pb.exp_max == 0;
      const bool safe = ((e + pb.exp_min) << 23) >= (uint64_t)bias + (1u << 23) &&
                        ((e + pb.exp_max + 2) << 23) <= (uint64_t)bias + 0x7F800000u;
      a_mask[i * K + k] = (!zero && safe) ? -1 : 0;
      if (!zero && !safe) unsafe[i].push_back(k);
      any_skipped |= zero || !safe;
    }

  const int64_t row_blocks = (M + kRowBlock - 1) / kRowBlock;
  at::parallel_for(0, row_blocks * panels, 1, [&](int64_t lo, int64_t hi) {
    float tile[kMR * kNR];
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t rb = t / panels, p = t % panels;
      const int64_t j0 = p * kNR, cols = std::min<int64_t>(kNR, N - j0);
      const int32_t* panel = pb.bits.data() + p * K * kNR;
      const int32_t* pmask = pb.mask.data() + p * K * kNR;
      for (int64_t i0 = rb * kRowBlock; i0 < std::min(M, (rb + 1) * kRowBlock); i0 += kMR) {
        const int rows = (int)std::min<int64_t>(kMR, M - i0);
        const int32_t* aa = a_add.data() + i0 * K;
        const int32_t* am = a_mask.data() + i0 * K;
        if (pb.has_zero) {
          if (any_skipped) micro_kernel<true, true>(K, aa, am, K, panel, pmask, tile, kNR, rows);
          else micro_kernel<true, false>(K, aa, am, K, panel, pmask, tile, kNR, rows);
        } else {
          if (any_skipped) micro_kernel<false, true>(K, aa, am, K, panel, pmask, tile, kNR, rows);
          else micro_kernel<false, false>(K, aa, am, K, panel, pmask, tile, kNR, rows);
        }
        for (int r = 0; r < rows; ++r) std::copy(tile + r * kNR, tile + r * kNR + cols, C + (i0 + r) * N + j0);
      }
    }
  });
  at::parallel_for(0, M, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      for (int64_t k : unsafe[i])
        for (int64_t j = 0; j < N; ++j) C[i * N + j] += pam::mul<float>(A[i * K + k], B[k * N + j], bias);
  });
}

// Any dtype and any values (inf/NaN included): the exact scalar PAM, in the
// same k order as the fast path.
template <typename T>
void matmul_generic(const T* A, const T* B, T* C, int64_t M, int64_t K, int64_t N, typename pam::Layout<T>::U bias) {
  at::parallel_for(0, M, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* c = C + i * N;
      std::fill(c, c + N, (T)0);
      for (int64_t k = 0; k < K; ++k) {
        const T a = A[i * K + k];
        for (int64_t j = 0; j < N; ++j) c[j] += pam::mul<T>(a, B[k * N + j], bias);
      }
    }
  });
}

void matmul_slice(const float* A, const float* B, float* C, int64_t M, int64_t K, int64_t N, uint32_t bias,
                  bool fast) {
  if (fast) matmul_f32_fast(A, B, C, M, K, N, bias);
  else matmul_generic<float>(A, B, C, M, K, N, bias);
}

void matmul_slice(const double* A, const double* B, double* C, int64_t M, int64_t K, int64_t N, uint64_t bias,
                  bool /*fast: float32 only*/) {
  matmul_generic<double>(A, B, C, M, K, N, bias);
}

bool all_finite(const Tensor& t) { return t.numel() == 0 || t.isfinite().all().item<bool>(); }

void check_bmm(const char* op, const Tensor& a, const Tensor& b) {
  check_pair(op, a, b);
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3, "pyops.", op, ": arguments 'a' and 'b' must be 3-D [batch, n, k] and ",
              "[batch, k, m], got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), "pyops.", op, ": shapes ", a.sizes(), " and ",
              b.sizes(), " do not multiply");
}

Tensor bmm(const Tensor& a_, const Tensor& b_, double offset, bool /*exact_grad: autograd only*/) {
  check_bmm("pam_bmm", a_, b_);
  offset = bf16_offset(offset, a_);
  const auto ct = compute_type(a_);
  const Tensor a = a_.to(ct).contiguous(), b = b_.to(ct).contiguous();
  const int64_t batch = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  Tensor out = at::zeros({batch, M, N}, a.options());
  if (out.numel() == 0 || K == 0) return out.to(a_.scalar_type());
  const bool fast = ct == at::kFloat && all_finite(a) && all_finite(b);
  AT_DISPATCH_FLOATING_TYPES(ct, "pam_bmm", [&] {
    const auto bias = pam::bias<scalar_t>((scalar_t)offset);
    for (int64_t s = 0; s < batch; ++s) {
      const scalar_t* pa = a.const_data_ptr<scalar_t>() + s * M * K;
      const scalar_t* pb = b.const_data_ptr<scalar_t>() + s * K * N;
      scalar_t* po = out.mutable_data_ptr<scalar_t>() + s * M * N;
      matmul_slice(pa, pb, po, M, K, N, bias, fast);
    }
  });
  return out.to(a_.scalar_type());
}

// Exact-mode gradients of C = PAM-matmul(A, B):
//   dA[i,k] = sum_j g[i,j] * dPAM(A[i,k], B[k,j])/dA,  dB[k,j] = sum_i g[i,j] * dPAM/dB,
// each factor a power of two applied by an exact PAM (no multiply).
std::tuple<Tensor, Tensor> bmm_exact_grad(const Tensor& g_, const Tensor& a_, const Tensor& b_, double offset) {
  check_bmm("pam_bmm_exact_grad", a_, b_);
  offset = bf16_offset(offset, a_);
  const auto ct = compute_type(a_);
  const Tensor g = g_.to(ct).contiguous(), a = a_.to(ct).contiguous(), b = b_.to(ct).contiguous();
  const int64_t batch = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  TORCH_CHECK(g.dim() == 3 && g.size(0) == batch && g.size(1) == M && g.size(2) == N,
              "pyops.pam_bmm_exact_grad: argument 'grad' must have shape [", batch, ", ", M, ", ", N, "], got ",
              g.sizes());
  Tensor ga = at::zeros_like(a), gb = at::zeros_like(b);
  AT_DISPATCH_FLOATING_TYPES(ct, "pam_bmm_exact_grad", [&] {
    using T = scalar_t;
    const auto bias = pam::bias<T>((T)offset);
    const auto one = pam::bias<T>((T)1);
    const T *pg = g.const_data_ptr<T>(), *pa = a.const_data_ptr<T>(), *pb = b.const_data_ptr<T>();
    T *pga = ga.mutable_data_ptr<T>(), *pgb = gb.mutable_data_ptr<T>();
    at::parallel_for(0, batch * M, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t s = t / M, i = t % M;
        for (int64_t k = 0; k < K; ++k) {
          const T av = pa[(s * M + i) * K + k];
          T acc = 0;
          for (int64_t j = 0; j < N; ++j)
            acc += pam::mul<T>(pg[(s * M + i) * N + j], pam::mul_grad_factor<T>(av, pb[(s * K + k) * N + j], bias),
                               one);
          pga[(s * M + i) * K + k] = acc;
        }
      }
    });
    at::parallel_for(0, batch * K, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t s = t / K, k = t % K;
        T* row = pgb + (s * K + k) * N;
        for (int64_t i = 0; i < M; ++i) {
          const T av = pa[(s * M + i) * K + k];
          for (int64_t j = 0; j < N; ++j)
            row[j] += pam::mul<T>(pg[(s * M + i) * N + j],
                                  pam::mul_grad_factor<T>(pb[(s * K + k) * N + j], av, bias), one);
        }
      }
    });
  });
  return {ga.to(a_.scalar_type()), gb.to(b_.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) {
  m.impl("pam_mul", &mul);
  m.impl("pam_div", &div);
  m.impl("pam_mul_grad_factor", &mul_grad_factor);
  m.impl("pam_exp2", &exp2);
  m.impl("pam_log2", &log2);
  m.impl("pam_bmm", &bmm);
  m.impl("pam_bmm_exact_grad", &bmm_exact_grad);
}

}  // namespace pyops
