// pam CPU kernels: elementwise PAM ops and a tiled, vectorised, multithreaded
// PAM matmul whose memory is O(inputs + output) (the official CPU fallback
// materialises an n*k*m tensor).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <memory>
#include <vector>

#include "alloc.h"
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
constexpr int kNR = 16;              // columns per panel: one AVX-512 vector, two AVX2 ones
constexpr int64_t kRowBlock = 64;    // rows of A per work unit: its k block stays in L2
constexpr int64_t kPanelGroup = 16;  // panels (256 columns) per work unit
constexpr int64_t kKBlock = 512;     // k per pass: a panel's slice (32 KiB) stays in L1
typedef int32_t vint __attribute__((vector_size(kNR * 4)));
typedef float vfloat __attribute__((vector_size(kNR * 4)));

// Rows per micro-tile on each ISA (see the tiles below).
constexpr int kMrAvx512 = 8, kMrAvx2 = 6, kMrScalar = 2;

// Micro-tile: c[MR rows, row stride ldc][kNR] (+)= sum_k PAM(a[k][r], panel[k]) over one
// k block, starting from zero when `first`.  A is packed [k][MR] as A - bias; a_mask
// zeroes the lanes of skipped A elements (zero or unsafe).  The masks are template
// switches: data without zeros pays for neither.  MR is per ISA: the accumulators
// must fit the register file with the panel row (AVX-512: 8 x 1 zmm of 32;
// baseline SSE: 2 x 4 xmm of 16; AVX2 below).
template <int MR>
struct GenericTile {
  template <bool kMaskB, bool kMaskA>
  PYOPS_ALWAYS_INLINE static void run(int64_t K, const int32_t* a_add, const int32_t* a_mask, const int32_t* panel,
                                      const int32_t* panel_mask, float* c, int64_t ldc, bool first) {
    vfloat acc[MR] = {};
    if (!first)
      for (int r = 0; r < MR; ++r) __builtin_memcpy(&acc[r], c + r * ldc, sizeof(vfloat));
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
    for (int r = 0; r < MR; ++r) __builtin_memcpy(c + r * ldc, &acc[r], sizeof(vfloat));
  }
};

#if defined(PYOPS_ISA_X86)
// AVX2 by intrinsics: GCC lowers the 64-byte vectors above to stack traffic
// when only 32-byte registers exist.  6 rows x 2 ymm = 12 accumulators, plus the
// panel row and a broadcast, fill the 16 registers.
struct Avx2Tile {
  template <bool kMaskB, bool kMaskA>
  PYOPS_TARGET_AVX2 static void run(int64_t K, const int32_t* a_add, const int32_t* a_mask, const int32_t* panel,
                                    const int32_t* panel_mask, float* c, int64_t ldc, bool first) {
    __m256 acc[kMrAvx2][2];
#pragma GCC unroll 6
    for (int r = 0; r < kMrAvx2; ++r) {
      acc[r][0] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + r * ldc);
      acc[r][1] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + r * ldc + 8);
    }
    for (int64_t k = 0; k < K; ++k) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + k * kNR));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + k * kNR + 8));
#pragma GCC unroll 6
      for (int r = 0; r < kMrAvx2; ++r) {
        const __m256i a = _mm256_set1_epi32(a_add[k * kMrAvx2 + r]);
        __m256i p0 = _mm256_add_epi32(b0, a), p1 = _mm256_add_epi32(b1, a);
        if (kMaskB) {
          p0 = _mm256_and_si256(p0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel_mask + k * kNR)));
          p1 = _mm256_and_si256(p1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel_mask + k * kNR + 8)));
        }
        if (kMaskA) {
          const __m256i m = _mm256_set1_epi32(a_mask[k * kMrAvx2 + r]);
          p0 = _mm256_and_si256(p0, m);
          p1 = _mm256_and_si256(p1, m);
        }
        acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_castsi256_ps(p0));
        acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_castsi256_ps(p1));
      }
    }
#pragma GCC unroll 6
    for (int r = 0; r < kMrAvx2; ++r) {
      _mm256_storeu_ps(c + r * ldc, acc[r][0]);
      _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
    }
  }
};
#endif

// One work unit: `rows` rows of A (packed [tiles][K][MR]) against `cols` columns of B
// (packed [panels][K][kNR]) into C (row stride ldc), k block by k block, each tile's
// sum in k order.  Edge tiles go through a local buffer.
struct Unit {
  const int32_t *a_add, *a_mask, *bits, *mask;
  int64_t K, rows, cols, ldc;
  float* c;
};

template <int MR, class Tile, bool kMaskB, bool kMaskA>
PYOPS_ALWAYS_INLINE void run_unit(const Unit& u) {
  const int64_t tiles = (u.rows + MR - 1) / MR, panels = (u.cols + kNR - 1) / kNR;
  float edge[MR * kNR];
  for (int64_t k0 = 0; k0 < u.K; k0 += kKBlock) {
    const int64_t kn = std::min(kKBlock, u.K - k0);
    for (int64_t p = 0; p < panels; ++p) {
      const int32_t* pb = u.bits + (p * u.K + k0) * kNR;
      const int32_t* pm = u.mask + (p * u.K + k0) * kNR;
      const int64_t cols = std::min<int64_t>(kNR, u.cols - p * kNR);
      for (int64_t t = 0; t < tiles; ++t) {
        const int32_t* aa = u.a_add + (t * u.K + k0) * MR;
        const int32_t* am = u.a_mask + (t * u.K + k0) * MR;
        const int64_t rows = std::min<int64_t>(MR, u.rows - t * MR);
        float* c = u.c + t * MR * u.ldc + p * kNR;
        if (rows == MR && cols == kNR) {
          Tile::template run<kMaskB, kMaskA>(kn, aa, am, pb, pm, c, u.ldc, k0 == 0);
          continue;
        }
        for (int64_t r = 0; r < rows && k0 > 0; ++r) std::copy(c + r * u.ldc, c + r * u.ldc + cols, edge + r * kNR);
        Tile::template run<kMaskB, kMaskA>(kn, aa, am, pb, pm, edge, kNR, k0 == 0);
        for (int64_t r = 0; r < rows; ++r) std::copy(edge + r * kNR, edge + r * kNR + cols, c + r * u.ldc);
      }
    }
  }
}

template <int MR, class Tile>
PYOPS_ALWAYS_INLINE void run_unit_any(const Unit& u, bool mask_b, bool mask_a) {
  if (mask_b) {
    if (mask_a) run_unit<MR, Tile, true, true>(u);
    else run_unit<MR, Tile, true, false>(u);
  } else {
    if (mask_a) run_unit<MR, Tile, false, true>(u);
    else run_unit<MR, Tile, false, false>(u);
  }
}

using UnitKernel = void (*)(const Unit&, bool, bool);
#if defined(PYOPS_ISA_X86)
PYOPS_TARGET_AVX512 void unit_avx512(const Unit& u, bool mb, bool ma) {
  run_unit_any<kMrAvx512, GenericTile<kMrAvx512>>(u, mb, ma);
}
PYOPS_TARGET_AVX2 void unit_avx2(const Unit& u, bool mb, bool ma) { run_unit_any<kMrAvx2, Avx2Tile>(u, mb, ma); }
#endif
void unit_scalar(const Unit& u, bool mb, bool ma) { run_unit_any<kMrScalar, GenericTile<kMrScalar>>(u, mb, ma); }

// The active ISA's unit kernel and its rows per tile.
std::pair<UnitKernel, int> unit_kernel() {
#if defined(PYOPS_ISA_X86)
  switch (isa::active()) {
    case isa::kAvx512:
      return {unit_avx512, kMrAvx512};
    case isa::kAvx2:
      return {unit_avx2, kMrAvx2};
    default:
      break;
  }
#endif
  return {unit_scalar, kMrScalar};
}

// Returns false, computing nothing, when an operand holds inf or NaN.
bool matmul_f32_fast(const float* A, const float* B, float* C, int64_t M, int64_t K, int64_t N, uint32_t bias) {
  const auto [kernel, MR] = unit_kernel();
  // B, packed [panel][k][kNR] as bits.  Padding lanes hold 0 but do not count as
  // zeros: their columns are never stored.  Each panel keeps its own exponent range of
  // nonzero b.
  const int64_t panels = (N + kNR - 1) / kNR;
  std::unique_ptr<int32_t[]> bits(new int32_t[panels * K * kNR]);
  std::vector<uint32_t> pmin(panels, 255), pmax(panels, 0);
  std::vector<char> pzero(panels, 0), pspecial(panels, 0);
  at::parallel_for(0, panels, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t cols = std::min<int64_t>(kNR, N - p * kNR);
      uint32_t emin = 255, emax = 0, zero = 0, special = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float* src = B + k * N + p * kNR;
        int32_t* __restrict pb = bits.get() + (p * K + k) * kNR;
        for (int64_t l = 0; l < kNR; ++l) {
          const bool in = l < cols;
          const uint32_t u = in ? f32_bits(src[l]) : 0u;
          const uint32_t e = (u >> 23) & 0xFF;
          pb[l] = (int32_t)u;
          zero |= in && e == 0;
          special |= e == 0xFF;
          emin = std::min(emin, e ? e : 255u);
          emax = std::max(emax, e);
        }
      }
      pmin[p] = emin;
      pmax[p] = emax;
      pzero[p] = zero != 0;
      pspecial[p] = special != 0;
    }
  });
  uint32_t exp_min = 255, exp_max = 0;
  bool has_zero = false;
  for (int64_t p = 0; p < panels; ++p) {
    exp_min = std::min(exp_min, pmin[p]);
    exp_max = std::max(exp_max, pmax[p]);
    has_zero |= pzero[p] != 0;
    if (pspecial[p]) return false;
  }
  // Only data with zeros or denormals in B needs B's lane mask (0 for such b).
  std::unique_ptr<int32_t[]> mask;
  if (has_zero) {
    mask.reset(new int32_t[panels * K * kNR]);
    at::parallel_for(0, panels * K * kNR, kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t x = lo; x < hi; ++x) mask[x] = (bits[x] & 0x7F800000) ? -1 : 0;
    });
  }

  // A, packed [tile][k][MR] as A - bias.  An element is safe iff every product with a
  // nonzero b stays normal: magnitude sums lie in [(ea + eb) << 23, (ea + eb + 2) << 23),
  // so ea must lie in [e_lo, e_hi].  Rows past M are computed from zeros and dropped.
  const int64_t e_lo = ((int64_t)bias + (2 << 23) - 1) / (1 << 23) - exp_min;
  const int64_t e_hi = ((int64_t)bias + 0x7F800000) / (1 << 23) - exp_max - 2;
  const bool all_zero_b = exp_max == 0;
  const auto skipped = [=](uint32_t u) {  // zero, or unsafe
    const int64_t e = (u >> 23) & 0xFF;
    return e == 0 || all_zero_b || e < e_lo || e > e_hi;
  };
  const int64_t tiles = (M + MR - 1) / MR;
  std::unique_ptr<int32_t[]> a_add(new int32_t[tiles * K * MR]);
  std::vector<char> row_skips(M, 0), row_special(M, 0), row_unsafe(M, 0);  // per row: no shared writes across threads
  at::parallel_for(0, tiles, 1, [&, bias](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t)
      for (int64_t r = 0; r < MR; ++r) {
        const int64_t i = t * MR + r;
        int32_t* __restrict aa = a_add.get() + t * K * MR + r;
        if (i >= M) {
          for (int64_t k = 0; k < K; ++k) aa[k * MR] = 0;
          continue;
        }
        const float* row = A + i * K;
        uint32_t special = 0, skip = 0, unsafe = 0;
        for (int64_t k = 0; k < K; ++k) {
          const uint32_t u = f32_bits(row[k]);
          const uint32_t e = (u >> 23) & 0xFF;
          aa[k * MR] = (int32_t)(u - bias);
          const bool s = skipped(u);
          special |= e == 0xFF;
          skip |= s;
          unsafe |= s && e != 0 && !all_zero_b;  // skipped for its range, not for being zero
        }
        row_special[i] = special != 0;
        row_skips[i] = skip != 0;
        row_unsafe[i] = unsafe != 0;
      }
  });
  if (std::any_of(row_special.begin(), row_special.end(), [](char c) { return c; })) return false;
  const bool any_skipped = std::any_of(row_skips.begin(), row_skips.end(), [](char c) { return c; });
  // Only then A's mask (0 for skipped elements) is needed.
  std::unique_ptr<int32_t[]> a_mask;
  if (any_skipped) {
    a_mask.reset(new int32_t[tiles * K * MR]);
    at::parallel_for(0, tiles * K * MR, kGrain, [&, bias](int64_t lo, int64_t hi) {
      for (int64_t x = lo; x < hi; ++x) a_mask[x] = skipped((uint32_t)a_add[x] + bias) ? 0 : -1;
    });
  }

  // Work units: a block of rows x a group of panels, each a thread's own part of C.
  const int64_t block_rows = std::max<int64_t>(1, kRowBlock / MR) * MR;
  const int64_t row_blocks = (M + block_rows - 1) / block_rows;
  const int64_t groups = (panels + kPanelGroup - 1) / kPanelGroup;
  at::parallel_for(0, row_blocks * groups, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t w = lo; w < hi; ++w) {
      const int64_t i0 = (w / groups) * block_rows, j0 = (w % groups) * kPanelGroup * kNR;
      // without masks the kernels never read them: any valid pointer will do
      const int32_t* am = any_skipped ? a_mask.get() : a_add.get();
      const int32_t* bm = has_zero ? mask.get() : bits.get();
      const Unit unit{a_add.get() + (i0 / MR) * K * MR, am + (i0 / MR) * K * MR, bits.get() + (j0 / kNR) * K * kNR,
                      bm + (j0 / kNR) * K * kNR,
                      K, std::min(block_rows, M - i0), std::min(kPanelGroup * kNR, N - j0), N, C + i0 * N + j0};
      kernel(unit, has_zero, any_skipped);
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
  // every kernel writes all of its output: no zero-fill pass unless K == 0
  if (batch * M * N == 0 || K == 0) return at::zeros({batch, M, N}, a_.options());
  Tensor out = empty_huge({batch, M, N}, a.options());
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
