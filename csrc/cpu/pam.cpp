// pam CPU kernels: elementwise PAM ops and a tiled, vectorised, multithreaded
// PAM matmul whose memory is O(inputs + output) (the official CPU fallback
// materialises an n*k*m tensor).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "isa.h"
#include "pam_args.h"
#include "pyops/pam.h"

namespace pyops {
namespace {

namespace pam = pyops::pam;
using at::Tensor;

constexpr int64_t kGrain = 1 << 15;

using namespace pam_args;

// ---------------------------------------------------------------- elementwise
PYOPS_ALWAYS_INLINE void mul_f32_body(const float* a, const float* b, float* o, int64_t n, uint32_t bias) {
  for (int64_t i = 0; i < n; ++i) o[i] = pam::mul<float>(a[i], b[i], bias);
}
PYOPS_ISA_FUNCTION(void, mul_f32, (const float* a, const float* b, float* o, int64_t n, uint32_t bias),
                   (a, b, o, n, bias))

PYOPS_ALWAYS_INLINE void div_f32_body(const float* a, const float* b, float* o, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = pam::div<float>(a[i], b[i]);
}
PYOPS_ISA_FUNCTION(void, div_f32, (const float* a, const float* b, float* o, int64_t n), (a, b, o, n))

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
  check_broadcast(op, a_, b_);
  const auto [a, b] = broadcast_pair(a_, b_);
  Tensor out = at::empty_like(a);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pam", [&] {
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
  check_offset("pam_mul", offset);
  offset = offset_for(offset, a);
  return binary("pam_mul", a, b, [&](auto pa, auto pb, auto po, int64_t n) { mul_any(pa, pb, po, n, offset); });
}

Tensor div(const Tensor& a, const Tensor& b) {
  return binary("pam_div", a, b, [](auto pa, auto pb, auto po, int64_t n) { div_any(pa, pb, po, n); });
}

Tensor mul_grad_factor(const Tensor& a, const Tensor& b, double offset) {
  check_offset("pam_mul_grad_factor", offset);
  offset = offset_for(offset, a);
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
// safe against the exponent range of B.  Rows with unsafe elements of A (rare:
// huge or tiny magnitudes) are redone afterwards with the exact scalar PAM.
// Every output element is a k-ordered float sum on every ISA copy, so the
// tile shape and k blocking never change a bit of the result.
constexpr int kNR = 16;  // columns per panel: one AVX-512 vector, two AVX2 ones
constexpr int64_t kRowBlock = 64;
constexpr int64_t kKBlock = 512;  // a tile's A and the panel's slice stay in L1/L2
typedef int32_t vint __attribute__((vector_size(kNR * 4)));
typedef float vfloat __attribute__((vector_size(kNR * 4)));

// Micro-tile: c[MR rows][kNR] += sum_k PAM(a[k][r], panel[k]) over one k block.  A is
// packed [k][MR] as A - bias; a_mask zeroes the lanes of skipped A elements (zero or
// unsafe).  The masks are template switches: data without zeros pays for neither.
// MR is per ISA: the accumulators must fit the register file with the panel row
// (AVX-512: 8 x 1 zmm of 32; AVX2: 6 x 2 ymm of 16; baseline SSE: 2 x 4 xmm of 16).
template <int MR, bool kMaskB, bool kMaskA>
PYOPS_ALWAYS_INLINE void micro_tile(int64_t K, const int32_t* a_add, const int32_t* a_mask, const int32_t* panel,
                                    const int32_t* panel_mask, float* c) {
  vfloat acc[MR];
  __builtin_memcpy(acc, c, sizeof acc);
  for (int64_t k = 0; k < K; ++k) {
    vint b, m;
    __builtin_memcpy(&b, panel + k * kNR, sizeof b);
    if (kMaskB) __builtin_memcpy(&m, panel_mask + k * kNR, sizeof m);
    for (int r = 0; r < MR; ++r) {
      vint p = b + a_add[k * MR + r];
      if (kMaskB) p &= m;
      if (kMaskA) p &= a_mask[k * MR + r];
      vfloat f;
      __builtin_memcpy(&f, &p, sizeof f);
      acc[r] += f;
    }
  }
  __builtin_memcpy(c, acc, sizeof acc);
}

// All of one row block's tiles against one panel, over k in [k0, k1): tiles are
// [K][MR] slabs of packed A, c is [tiles][MR][kNR].
struct TileJob {
  const int32_t *a_add, *a_mask, *panel, *panel_mask;
  int64_t K, k0, k1, tiles;
  float* c;
};

template <int MR>
PYOPS_ALWAYS_INLINE void micro_tiles(const TileJob& j, bool mask_b, bool mask_a) {
  const int64_t kn = j.k1 - j.k0;
  for (int64_t t = 0; t < j.tiles; ++t) {
    const int32_t* aa = j.a_add + (t * j.K + j.k0) * MR;
    const int32_t* am = j.a_mask + (t * j.K + j.k0) * MR;
    const int32_t* pb = j.panel + j.k0 * kNR;
    const int32_t* pm = j.panel_mask + j.k0 * kNR;
    float* c = j.c + t * MR * kNR;
    if (mask_b) {
      if (mask_a) micro_tile<MR, true, true>(kn, aa, am, pb, pm, c);
      else micro_tile<MR, true, false>(kn, aa, am, pb, pm, c);
    } else {
      if (mask_a) micro_tile<MR, false, true>(kn, aa, am, pb, pm, c);
      else micro_tile<MR, false, false>(kn, aa, am, pb, pm, c);
    }
  }
}

using MicroTiles = void (*)(const TileJob&, bool, bool);
#if defined(PYOPS_ISA_X86)
PYOPS_TARGET_AVX512 void micro_tiles_avx512(const TileJob& j, bool mb, bool ma) { micro_tiles<8>(j, mb, ma); }
PYOPS_TARGET_AVX2 void micro_tiles_avx2(const TileJob& j, bool mb, bool ma) { micro_tiles<6>(j, mb, ma); }
#endif
void micro_tiles_scalar(const TileJob& j, bool mb, bool ma) { micro_tiles<2>(j, mb, ma); }

// The active ISA's micro-kernel and its rows per tile.
std::pair<MicroTiles, int> micro_kernel() {
#if defined(PYOPS_ISA_X86)
  switch (isa::active()) {
    case isa::kAvx512:
      return {micro_tiles_avx512, 8};
    case isa::kAvx2:
      return {micro_tiles_avx2, 6};
    default:
      break;
  }
#endif
  return {micro_tiles_scalar, 2};
}

struct PackedB {
  // [panel][k][kNR]; left uninitialised here and written in full (padding
  // included) by the parallel packing loop, which keeps the zero-fill off one core.
  std::unique_ptr<int32_t[]> bits, mask;
  uint32_t exp_min = 255, exp_max = 0;
  bool has_zero = false;
};

// Returns false, computing nothing, when an operand holds inf or NaN.
bool matmul_f32_fast(const float* A, const float* B, float* C, int64_t M, int64_t K, int64_t N, uint32_t bias) {
  const auto [kernel, MR] = micro_kernel();
  const int64_t panels = (N + kNR - 1) / kNR;
  PackedB pb;
  pb.bits.reset(new int32_t[panels * K * kNR]);
  pb.mask.reset(new int32_t[panels * K * kNR]);
  // Packing runs in parallel over panels; each panel keeps its own exponent range.
  std::vector<uint32_t> pmin(panels, 255), pmax(panels, 0);
  std::vector<char> pzero(panels, 0), pspecial(panels, 0);
  at::parallel_for(0, panels, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = p * kNR; j < (p + 1) * kNR; ++j) {
          const uint32_t u = j < N ? f32_bits(B[k * N + j]) : 0u;  // padding lanes: zero, masked
          const uint32_t e = (u >> 23) & 0xFF;
          const int64_t at = (p * K + k) * kNR + j % kNR;
          pb.bits[at] = (int32_t)u;
          pb.mask[at] = 0;
          pspecial[p] |= e == 0xFF;
          if (e == 0) {
            pzero[p] |= j < N;  // padding lanes compute garbage that is never stored
            continue;
          }
          pb.mask[at] = -1;
          pmin[p] = std::min(pmin[p], e);
          pmax[p] = std::max(pmax[p], e);
        }
  });
  for (int64_t p = 0; p < panels; ++p) {
    pb.exp_min = std::min(pb.exp_min, pmin[p]);
    pb.exp_max = std::max(pb.exp_max, pmax[p]);
    pb.has_zero |= pzero[p] != 0;
    if (pspecial[p]) return false;
  }

  // Per element of A: safe iff every product with a nonzero b stays normal.
  // Magnitude sums lie in [(ea + eb) << 23, (ea + eb + 2) << 23).  A is packed
  // in tiles [M / MR][K][MR]; rows past M are computed from zeros and dropped.
  const int64_t tiles = (M + MR - 1) / MR;
  std::unique_ptr<int32_t[]> a_add(new int32_t[tiles * K * MR]), a_mask(new int32_t[tiles * K * MR]);
  std::vector<char> row_skips(M, 0), row_special(M, 0), row_unsafe(M, 0);  // per row: no shared writes across threads
  at::parallel_for(0, tiles * MR, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t at = ((i / MR) * K + k) * MR + i % MR;
        if (i >= M) {
          a_add[at] = a_mask[at] = 0;
          continue;
        }
        const uint32_t u = f32_bits(A[i * K + k]);
        const uint64_t e = (u >> 23) & 0xFF;
        row_special[i] |= e == 0xFF;
        a_add[at] = (int32_t)(u - bias);
        const bool zero = e == 0 || pb.exp_max == 0;
        const bool safe = ((e + pb.exp_min) << 23) >= (uint64_t)bias + (1u << 23) &&
                          ((e + pb.exp_max + 2) << 23) <= (uint64_t)bias + 0x7F800000u;
        a_mask[at] = (!zero && safe) ? -1 : 0;
        row_unsafe[i] |= !zero && !safe;
        row_skips[i] |= zero || !safe;
      }
  });
  if (std::any_of(row_special.begin(), row_special.end(), [](char c) { return c; })) return false;
  const bool any_skipped = std::any_of(row_skips.begin(), row_skips.end(), [](char c) { return c; });

  const int64_t tiles_per_block = std::max<int64_t>(1, kRowBlock / MR);
  const int64_t row_blocks = (tiles + tiles_per_block - 1) / tiles_per_block;
  at::parallel_for(0, row_blocks * panels, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> tile(tiles_per_block * MR * kNR);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t rb = t / panels, p = t % panels;
      const int64_t j0 = p * kNR, cols = std::min<int64_t>(kNR, N - j0);
      const int64_t ti0 = rb * tiles_per_block, nt = std::min(tiles, ti0 + tiles_per_block) - ti0;
      std::fill(tile.begin(), tile.end(), 0.0f);
      for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
        const TileJob job{a_add.get() + ti0 * K * MR, a_mask.get() + ti0 * K * MR, pb.bits.get() + p * K * kNR,
                          pb.mask.get() + p * K * kNR, K, k0, std::min(K, k0 + kKBlock), nt, tile.data()};
        kernel(job, pb.has_zero, any_skipped);
      }
      for (int64_t r = 0; r < std::min(nt * MR, M - ti0 * MR); ++r)
        std::copy(tile.data() + r * kNR, tile.data() + r * kNR + cols, C + (ti0 * MR + r) * N + j0);
    }
  });
  // A row with an unsafe element is redone whole with the exact scalar PAM in k order: adding
  // its rare products afterwards would reorder the sum (2^60 * 2^-60 + 2^24 - 2^24 is not
  // 2^24 - 2^24 + 1 once a product rounds away), and the result must be the reference's.
  at::parallel_for(0, M, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      if (!row_unsafe[i]) continue;
      float* c = C + i * N;
      std::fill(c, c + N, 0.0f);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < N; ++j) c[j] += pam::mul<float>(A[i * K + k], B[k * N + j], bias);
    }
  });
  return true;
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

void matmul_slice(const float* A, const float* B, float* C, int64_t M, int64_t K, int64_t N, uint32_t bias) {
  if (!matmul_f32_fast(A, B, C, M, K, N, bias)) matmul_generic<float>(A, B, C, M, K, N, bias);
}

void matmul_slice(const double* A, const double* B, double* C, int64_t M, int64_t K, int64_t N, uint64_t bias) {
  matmul_generic<double>(A, B, C, M, K, N, bias);
}

Tensor bmm(const Tensor& a_, const Tensor& b_, double offset, bool /*exact_grad: autograd only*/) {
  check_bmm("pam_bmm", a_, b_);
  check_offset("pam_bmm", offset);
  offset = offset_for(offset, a_);
  const auto ct = compute_type(a_);
  const Tensor a = a_.to(ct).contiguous(), b = b_.to(ct).contiguous();
  const int64_t batch = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  Tensor out = at::zeros({batch, M, N}, a.options());
  if (out.numel() == 0 || K == 0) return out.to(a_.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(ct, "pam_bmm", [&] {
    const auto bias = pam::bias<scalar_t>((scalar_t)offset);
    for (int64_t s = 0; s < batch; ++s) {
      const scalar_t* pa = a.const_data_ptr<scalar_t>() + s * M * K;
      const scalar_t* pb = b.const_data_ptr<scalar_t>() + s * K * N;
      scalar_t* po = out.mutable_data_ptr<scalar_t>() + s * M * N;
      matmul_slice(pa, pb, po, M, K, N, bias);
    }
  });
  return out.to(a_.scalar_type());
}

// Exact-mode gradients of C = PAM-matmul(A, B):
//   dA[i,k] = sum_j g[i,j] * dPAM(A[i,k], B[k,j])/dA,  dB[k,j] = sum_i g[i,j] * dPAM/dB,
// each factor a power of two applied by an exact PAM (no multiply).
std::tuple<Tensor, Tensor> bmm_exact_grad(const Tensor& g_, const Tensor& a_, const Tensor& b_, double offset) {
  check_bmm("pam_bmm_exact_grad", a_, b_);
  check_offset("pam_bmm_exact_grad", offset);
  offset = offset_for(offset, a_);
  const auto ct = compute_type(a_);
  const Tensor g = g_.to(ct).contiguous(), a = a_.to(ct).contiguous(), b = b_.to(ct).contiguous();
  const int64_t batch = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  check_grad("pam_bmm_exact_grad", g, a, b);
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
