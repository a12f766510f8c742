// wavehax CPU kernels.
//  * convnext2d_block on channels-last [B, F, T, C]: pass 1 writes the depthwise KFxKT reflect
//    convolution and each position's channel sum and sum of squares; the norm statistics follow
//    (per utterance or per frame); pass 2 runs normalise -> PW1 -> GELU -> PW2 -> layer scale ->
//    residual for 6 positions at a time (the vector kernels fold a per-utterance norm into PW1), the
//    hidden activations staying in L1, and writes the result over the DW buffer.  float32 with C
//    and hidden multiples of 16 takes AVX-512 code at the AVX-512 level, multiples of 8 AVX2+FMA
//    code (chosen at run time; one source over vector traits); other shapes, float64 and other CPUs
//    take the scalar loops.
//  * harmonic_prior: the closed-form sum of harmonics, phase accumulated in float64 per utterance,
//    its sines vectorised at the AVX-512 level.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "alloc.h"
#include "isa.h"
#include "simd.h"
#include "pyops/wavehax.h"
#include "wavehax_args.h"

namespace pyops {
namespace {

namespace wh = pyops::wavehax;
using at::Tensor;

constexpr int64_t kTile = 96;  // frames per depthwise job (a multiple of the 6, 8 and 12 frames per step)
constexpr int64_t kBand = 32;  // frequency rows per depthwise job

template <typename S>
struct Block {
  const S* x;    // [B, F, T, C]
  const S* dw;   // [KF * KT, C]
  const S* w1t;  // [C, H]
  const S* b1;   // [H]
  const S* w2t;  // [H, C], scaled by the layer scale
  const S* b2;   // [C], scaled by the layer scale
  int64_t B, F, T, C, H, KF, KT;  // KF taps along frequency (source rows), KT along time
  const int64_t* tix;  // [T + KT - 1]: element offset of reflected frame u - KT / 2
};

// Element offsets of the KF source rows of output row (b, f).
template <typename T>
void source_rows(const Block<T>& a, int64_t b, int64_t f, std::vector<const T*>& rows) {
  const int64_t pad = a.KF / 2;
  for (int64_t i = 0; i < a.KF; ++i) rows[i] = a.x + ((b * a.F + wh::reflect(f + i - pad, a.F)) * a.T) * a.C;
}

// The norm group of flat position p: its utterance, or its frame when framewise.
template <typename T>
int64_t norm_group(const Block<T>& a, bool framewise, int64_t p) {
  return framewise ? (p / (a.F * a.T)) * a.T + p % a.T : p / (a.F * a.T);
}

// ---------------------------------------------------------------- scalar loops (any C, H, dtype)
template <typename T>
void dw_row_scalar(const Block<T>& a, const T* const* rows, int64_t t0, int64_t t1, T* out, double* stats) {
  const int64_t C = a.C, KF = a.KF, KT = a.KT;
  for (int64_t t = t0; t < t1; ++t) {
    T* o = out + t * C;
    for (int64_t c = 0; c < C; ++c) o[c] = 0;
    for (int64_t i = 0; i < KF; ++i)
      for (int64_t j = 0; j < KT; ++j) {
        const T* src = rows[i] + a.tix[t + j];
        const T* w = a.dw + (i * KT + j) * C;
        for (int64_t c = 0; c < C; ++c) o[c] += w[c] * src[c];
      }
    double s = 0, ss = 0;
    for (int64_t c = 0; c < C; ++c) s += o[c], ss += (double)o[c] * o[c];
    stats[2 * t] = s;
    stats[2 * t + 1] = ss;
  }
}

// One position: h (normalised with scale/shift) -> out = x + W2' gelu(W1 a + b1) + b2'; u: [H] scratch.
template <typename T>
void pointwise_scalar(const Block<T>& a, const T* h, const T* x, const T* scale, const T* shift, T* u, T* out) {
  const int64_t C = a.C, H = a.H;
  for (int64_t j = 0; j < H; ++j) u[j] = a.b1[j];
  for (int64_t c = 0; c < C; ++c) {
    const T v = h[c] * scale[c] + shift[c];
    const T* w = a.w1t + c * H;
    for (int64_t j = 0; j < H; ++j) u[j] += v * w[j];
  }
  for (int64_t j = 0; j < H; ++j) u[j] = wh::gelu(u[j]);
  for (int64_t c = 0; c < C; ++c) out[c] = x[c] + a.b2[c];
  for (int64_t j = 0; j < H; ++j) {
    const T* w = a.w2t + j * C;
    for (int64_t c = 0; c < C; ++c) out[c] += u[j] * w[c];
  }
}

// Pass 2's norm for the vector kernels: each row normalised into scratch (scale, shift per group), or,
// per utterance, folded into the first pointwise layer, diag(scale) W1 and b1 + W1^T shift, so that
// PW1 reads h itself (no normalising pass).
struct Norm {
  bool framewise;
  const float* scale;  // [groups, C]
  const float* shift;
  const float* w1;  // [B, C, H], the folded layer per utterance; null: normalise the rows
  const float* b1;  // [B, H]
};

// One ISA's float32 vector kernels (below): pass 1 per output row, pass 2 per range of positions.
struct Kernels {
  void (*dw_row)(const Block<float>&, const float* const*, int64_t, int64_t, float*, double*);
  void (*pointwise)(const Block<float>&, const Norm&, int64_t, int64_t, float*);
};

// ---------------------------------------------------------------- AVX2 / AVX-512 (float32, W | C and H)
#if defined(__x86_64__)
// The vector kernels are written once over simd.h's traits S and compiled per ISA by the flatten
// entry points at the end.
using simd::Avx2;
using simd::Avx512;

// Exact-erf GELU, erf(z) for |z| <= 4 as the odd/even rational z P(z^2) / Q(z^2) also used by
// Eigen and XLA (max abs error ~5e-7 in float32; |erf| rounds to 1 beyond 4).
// In place: GCC notes the ABI of a vector passed by value to this baseline-target template, and the
// -Wpsabi pragma (simd.h) does not silence notes.
template <class S, class V = typename S::V>
void gelu(V& v) {
  const V z = S::min(S::max(S::mul(v, S::set1(0.70710678118654752f)), S::set1(-4.0f)), S::set1(4.0f));
  const V z2 = S::mul(z, z);
  V p = S::set1(-2.72614225801306e-10f);
  p = S::fmadd(p, z2, S::set1(2.77068142495902e-08f));
  p = S::fmadd(p, z2, S::set1(-2.10102402082508e-06f));
  p = S::fmadd(p, z2, S::set1(-5.69250639462346e-05f));
  p = S::fmadd(p, z2, S::set1(-7.34990630326855e-04f));
  p = S::fmadd(p, z2, S::set1(-2.95459980854025e-03f));
  p = S::fmadd(p, z2, S::set1(-1.60960333262415e-02f));
  V q = S::set1(-1.45660718464996e-05f);
  q = S::fmadd(q, z2, S::set1(-2.13374055278905e-04f));
  q = S::fmadd(q, z2, S::set1(-1.68282697438203e-03f));
  q = S::fmadd(q, z2, S::set1(-7.37332916720468e-03f));
  q = S::fmadd(q, z2, S::set1(-1.42647390514189e-02f));
  const V erf = S::div(S::mul(z, p), q);
  const V half = S::mul(v, S::set1(0.5f));
  v = S::fmadd(half, erf, half);
}

// Q consecutive output frames t.. of one row, W NC channels at a time (Q NC accumulators hide the
// FMA latency), any time taps a.KT; kInterior: no frame is reflected, so source addresses need no
// offset table.
template <class S, int Q, int NC, bool kInterior>
void dw_frames(const Block<float>& a, const float* const* rows, int64_t t, float* out) {
  using V = typename S::V;
  constexpr int W = S::W;
  const int64_t C = a.C, KF = a.KF, K = a.KT, pad = K / 2;
  for (int64_t cv = 0; cv < C; cv += W * NC) {
    V acc[Q][NC];
    for (int q = 0; q < Q; ++q)
      for (int c = 0; c < NC; ++c) acc[q][c] = S::zero();
    for (int64_t i = 0; i < KF; ++i) {
      const float* xr = rows[i] + cv;
      const float* w = a.dw + i * K * C + cv;
      for (int64_t j = 0; j < K; ++j) {
        V wv[NC];
        for (int c = 0; c < NC; ++c) wv[c] = S::load(w + j * C + W * c);
        for (int q = 0; q < Q; ++q) {
          const float* src = kInterior ? xr + (t + q + j - pad) * C : xr + a.tix[t + q + j];
          for (int c = 0; c < NC; ++c) acc[q][c] = S::fmadd(wv[c], S::load(src + W * c), acc[q][c]);
        }
      }
    }
    for (int q = 0; q < Q; ++q)
      for (int c = 0; c < NC; ++c) S::store(out + (t + q) * C + cv + W * c, acc[q][c]);
  }
}

// The same for compile-time taps KK as a sliding window: per source row the KK x NC weight vectors stay
// in registers and each source frame is loaded once for all Q + KK - 1 (frame, tap) pairs it serves;
// the tap-by-tap loop above reloads it per tap, one load per FMA, and is load-bound.  Each output
// still sums its taps in the same order (rows, then taps), so the results are the same bits.
template <class S, int Q, int NC, bool kInterior, int KK, int CC>
void dw_frames_window(const Block<float>& a, const float* const* rows, int64_t t, float* out) {
  using V = typename S::V;
  constexpr int W = S::W, pad = KK / 2;
  const int64_t C = CC ? CC : a.C;
  for (int64_t cv = 0; cv < C; cv += W * NC) {
    V acc[Q][NC];
#pragma GCC unroll 16
    for (int q = 0; q < Q; ++q)
      for (int c = 0; c < NC; ++c) acc[q][c] = S::zero();
    for (int64_t i = 0; i < a.KF; ++i) {
      const float* xr = rows[i] + cv;
      const float* w = a.dw + i * KK * C + cv;
      V wv[KK][NC];
#pragma GCC unroll 16
      for (int j = 0; j < KK; ++j)
        for (int c = 0; c < NC; ++c) wv[j][c] = S::load(w + j * C + W * c);
#pragma GCC unroll 32
      for (int s = 0; s < Q + KK - 1; ++s) {
        const float* src = kInterior ? xr + (t + s - pad) * C : xr + a.tix[t + s];
        V x[NC];
        for (int c = 0; c < NC; ++c) x[c] = S::load(src + W * c);
#pragma GCC unroll 16
        for (int q = std::max(0, s - KK + 1); q <= std::min(Q - 1, s); ++q)
          for (int c = 0; c < NC; ++c) acc[q][c] = S::fmadd(wv[s - q][c], x[c], acc[q][c]);
      }
    }
#pragma GCC unroll 16
    for (int q = 0; q < Q; ++q)
      for (int c = 0; c < NC; ++c) S::store(out + (t + q) * C + cv + W * c, acc[q][c]);
  }
}

// Q frames at t: the sliding window for compile-time taps KK, the tap loop for KK = 0.
template <class S, int Q, int NC, bool kInterior, int KK, int CC>
void dw_frames_any(const Block<float>& a, const float* const* rows, int64_t t, float* out) {
  if constexpr (KK > 0)
    dw_frames_window<S, Q, NC, kInterior, KK, CC>(a, rows, t, out);
  else
    dw_frames<S, Q, NC, kInterior>(a, rows, t, out);
}

template <class S, int Q, int NC, int KK, int CC = 0>
void dw_frames_range(const Block<float>& a, const float* const* rows, int64_t t0, int64_t t1, float* out) {
  const int64_t pad = a.KT / 2;
  int64_t t = t0;
  for (; t + Q <= t1; t += Q) {
    if (t >= pad && t + Q - 1 + pad < a.T)
      dw_frames_any<S, Q, NC, true, KK, CC>(a, rows, t, out);
    else
      dw_frames_any<S, Q, NC, false, KK, CC>(a, rows, t, out);
  }
  for (; t < t1; ++t) dw_frames_any<S, 1, NC, false, KK, CC>(a, rows, t, out);
}

// Frames [t0, t1) of one output row, then their channel sums (re-read from L1/L2).
template <class S>
void dw_row(const Block<float>& a, const float* const* rows, int64_t t0, int64_t t1, float* out, double* stats) {
  // the official kernels' 7 time taps as a sliding window (its 32 channels as a constant: the source
  // offsets become immediates, ~20% of this pass at 241 x 1000 x 32); other sizes loop over the taps
  if (a.KT == 7 && a.C == 32)
    dw_frames_range<S, S::W == 16 ? 12 : 6, 1, 7, 32>(a, rows, t0, t1, out);
  else if (a.KT == 7)
    dw_frames_range<S, S::W == 16 ? 12 : 6, 1, 7>(a, rows, t0, t1, out);
  else if (a.C % (2 * S::W) == 0)
    dw_frames_range<S, 6, 2, 0>(a, rows, t0, t1, out);
  else
    dw_frames_range<S, 8, 1, 0>(a, rows, t0, t1, out);
  for (int64_t t = t0; t < t1; ++t) {
    typename S::V s = S::zero(), ss = S::zero();
    for (int64_t c = 0; c < a.C; c += S::W) {
      const typename S::V v = S::load(out + t * a.C + c);
      s = S::add(s, v);
      ss = S::fmadd(v, v, ss);
    }
    stats[2 * t] = S::hsum(s);
    stats[2 * t + 1] = S::hsum(ss);
  }
}

// out[p, n0 .. n0 + W NV) = bias + A[p, :K] W[:K, n0 ..], then GELU (kGelu) or + resid, for P rows.
template <class S, int P, int NV, bool kGelu>
void mm_tile(const float* A, int64_t lda, int64_t K, const float* W, int64_t ldw, const float* bias, int64_t n0,
             const float* const* resid, float* out, int64_t ldo) {
  using V = typename S::V;
  constexpr int L = S::W;
  V acc[P][NV];
  for (int v = 0; v < NV; ++v) {
    const V b = S::load(bias + n0 + L * v);
    for (int p = 0; p < P; ++p) acc[p][v] = b;
  }
  for (int64_t k = 0; k < K; ++k) {
    V w[NV];
    for (int v = 0; v < NV; ++v) w[v] = S::load(W + k * ldw + n0 + L * v);
    for (int p = 0; p < P; ++p) {
      const V x = S::broadcast(A + p * lda + k);
      for (int v = 0; v < NV; ++v) acc[p][v] = S::fmadd(x, w[v], acc[p][v]);
    }
  }
  for (int p = 0; p < P; ++p)
    for (int v = 0; v < NV; ++v) {
      if (kGelu)
        gelu<S>(acc[p][v]);
      else
        acc[p][v] = S::add(acc[p][v], S::load(resid[p] + n0 + L * v));
      S::store(out + p * ldo + n0 + L * v, acc[p][v]);
    }
}

template <class S, int P, bool kGelu>
void mm_rows(const float* A, int64_t lda, int64_t K, const float* W, int64_t N, const float* bias,
             const float* const* resid, float* out, int64_t ldo) {
  int64_t n0 = 0;
  for (; n0 + 2 * S::W <= N; n0 += 2 * S::W) mm_tile<S, P, 2, kGelu>(A, lda, K, W, N, bias, n0, resid, out, ldo);
  if (n0 < N) mm_tile<S, P, 1, kGelu>(A, lda, K, W, N, bias, n0, resid, out, ldo);
}

// P positions starting at flat index p0 (rows of h / x / out, C apart) through the first layer w1, b1;
// scale, shift: each row's norm (null: folded into w1, b1); A: [P, C], U: [P, H] scratch.
template <class S, int P>
void pointwise(const Block<float>& a, int64_t p0, float* h, const float* w1, const float* b1,
               const float* const* scale, const float* const* shift, float* A, float* U) {
  const int64_t C = a.C, H = a.H;
  const float* resid[P];
  // h (written a whole pass ago) and x stream in from DRAM at long lengths: ask for the rows of 4
  // groups ahead (4-7% of the block at 241 x 1000 x 32); 16 floats = one cache line
  constexpr int64_t kAhead = 4 * P;
  if (p0 + kAhead + P <= a.B * a.F * a.T)
    for (int64_t o = (p0 + kAhead) * C; o < (p0 + kAhead + P) * C; o += 16) {
      __builtin_prefetch(h + o);
      __builtin_prefetch(a.x + o);
    }
  for (int p = 0; p < P; ++p) {
    resid[p] = a.x + (p0 + p) * C;
    if (scale) {
      const float* hp = h + (p0 + p) * C;
      for (int64_t c = 0; c < C; c += S::W)
        S::store(A + p * C + c, S::fmadd(S::load(hp + c), S::load(scale[p] + c), S::load(shift[p] + c)));
    }
  }
  mm_rows<S, P, true>(scale ? A : h + p0 * C, C, C, w1, H, b1, nullptr, U, H);  // U is whole before h is overwritten
  mm_rows<S, P, false>(U, H, H, a.w2t, C, a.b2, resid, h + p0 * C, C);
}

// Pass 2 over positions [lo, hi): P at a time, then one by one.
template <class S>
void pointwise_range(const Block<float>& a, const Norm& n, int64_t lo, int64_t hi, float* h) {
  // AVX2: 6 x 2 accumulators, 2 weight vectors and a broadcast fill the 16 ymm; AVX-512 measured
  // no faster with 8 or 12 (Zen 5)
  constexpr int P = 6;
  std::vector<float> A((size_t)(P * a.C)), U((size_t)(P * a.H));
  const float *sc[P], *sh[P];
  const auto norms = [&](int64_t p, int q) {
    const int64_t g = norm_group(a, n.framewise, p + q);
    sc[q] = n.scale + g * a.C;
    sh[q] = n.shift + g * a.C;
  };
  const bool fold = n.w1 != nullptr;
  const int64_t len = a.F * a.T;
  for (int64_t p = lo; p < hi;) {  // folded: P rows at a time within one utterance
    const int64_t b = p / len, end = fold ? std::min(hi, (b + 1) * len) : hi;
    const float* w1 = fold ? n.w1 + b * a.C * a.H : a.w1t;
    const float* b1 = fold ? n.b1 + b * a.H : a.b1;
    for (; p + P <= end; p += P) {
      if (!fold)
        for (int q = 0; q < P; ++q) norms(p, q);
      pointwise<S, P>(a, p, h, w1, b1, fold ? nullptr : sc, sh, A.data(), U.data());
    }
    for (; p < end; ++p) {
      if (!fold) norms(p, 0);
      pointwise<S, 1>(a, p, h, w1, b1, fold ? nullptr : sc, sh, A.data(), U.data());
    }
  }
}

PYOPS_TARGET_AVX512 __attribute__((flatten)) void dw_row_avx512(const Block<float>& a, const float* const* rows,
                                                            int64_t t0, int64_t t1, float* out, double* stats) {
  dw_row<Avx512>(a, rows, t0, t1, out, stats);
}
PYOPS_TARGET_AVX512 __attribute__((flatten)) void pointwise_avx512(const Block<float>& a, const Norm& n, int64_t lo,
                                                               int64_t hi, float* h) {
  pointwise_range<Avx512>(a, n, lo, hi, h);
}
PYOPS_TARGET_AVX2 __attribute__((flatten)) void dw_row_avx2(const Block<float>& a, const float* const* rows, int64_t t0,
                                                        int64_t t1, float* out, double* stats) {
  dw_row<Avx2>(a, rows, t0, t1, out, stats);
}
PYOPS_TARGET_AVX2 __attribute__((flatten)) void pointwise_avx2(const Block<float>& a, const Norm& n, int64_t lo,
                                                           int64_t hi, float* h) {
  pointwise_range<Avx2>(a, n, lo, hi, h);
}
constexpr Kernels kAvx512Kernels{dw_row_avx512, pointwise_avx512}, kAvx2Kernels{dw_row_avx2, pointwise_avx2};
#endif

// ---------------------------------------------------------------- the block
// simd: the float32 vector kernels to run, null for the scalar loops.
template <typename T>
void block_impl(const Block<T>& a, bool framewise, double eps, const T* gamma, const T* beta, T* h,
                const Kernels* simd) {
  const int64_t B = a.B, F = a.F, Tn = a.T, C = a.C;
  std::vector<double> stats((size_t)(B * F * Tn * 2));
  // (utterance, band of kBand rows f, tile of kTile frames) jobs sweep their rows: the KF source rows
  // of a tile stay in L2.  Bands make short utterances (one or two tiles) parallel too, and with the
  // tiles innermost a contiguous split of the jobs gives each thread whole bands.
  const int64_t tiles = (Tn + kTile - 1) / kTile, bands = (F + kBand - 1) / kBand;
  at::parallel_for(0, B * bands * tiles, 1, [&](int64_t lo, int64_t hi) {
    std::vector<const T*> rows((size_t)a.KF);
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t b = job / (bands * tiles), band = job / tiles % bands;
      const int64_t t0 = job % tiles * kTile, t1 = std::min(t0 + kTile, Tn);
      for (int64_t f = band * kBand; f < std::min(F, (band + 1) * kBand); ++f) {
        source_rows(a, b, f, rows);
        T* out = h + (b * F + f) * Tn * C;
        double* st = stats.data() + (b * F + f) * Tn * 2;
        if constexpr (std::is_same_v<T, float>) {
          if (simd) {
            simd->dw_row(a, rows.data(), t0, t1, out, st);
            continue;
          }
        }
        dw_row_scalar(a, rows.data(), t0, t1, out, st);
      }
    }
  });

  // Per group (utterance, or frame when framewise): x_norm = h * scale + shift per channel.
  const int64_t groups = framewise ? B * Tn : B;
  std::vector<T> scale((size_t)(groups * C)), shift((size_t)(groups * C));
  std::vector<double> sum((size_t)groups, 0.0), sumsq((size_t)groups, 0.0);
  for (int64_t r = 0; r < B * F; ++r)
    for (int64_t t = 0; t < Tn; ++t) {
      const int64_t g = framewise ? (r / F) * Tn + t : r / F;
      sum[g] += stats[(r * Tn + t) * 2];
      sumsq[g] += stats[(r * Tn + t) * 2 + 1];
    }
  const double n = (double)(framewise ? F * C : F * Tn * C);
  for (int64_t g = 0; g < groups; ++g) {
    const double mean = sum[g] / n, var = std::max(sumsq[g] / n - mean * mean, 0.0);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c) {
      scale[g * C + c] = (T)(rstd * (double)gamma[c]);
      shift[g * C + c] = (T)((double)beta[c] - mean * rstd * (double)gamma[c]);
    }
  }
  std::vector<float> w1, b1;  // the vector kernels' per-utterance first layer (see Norm)
  if constexpr (std::is_same_v<T, float>) {
    if (simd && !framewise) {
      const int64_t H = a.H;
      w1.resize((size_t)(B * C * H));
      b1.resize((size_t)(B * H));
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < H; ++k) {
          double acc = a.b1[k];
          for (int64_t c = 0; c < C; ++c) {
            w1[(b * C + c) * H + k] = scale[b * C + c] * a.w1t[c * H + k];
            acc += (double)shift[b * C + c] * a.w1t[c * H + k];
          }
          b1[b * H + k] = (float)acc;
        }
    }
  }
  at::parallel_for(0, B * F * Tn, 256, [&](int64_t lo, int64_t hi) {
    if constexpr (std::is_same_v<T, float>) {
      if (simd) {
        simd->pointwise(a, Norm{framewise, scale.data(), shift.data(), w1.empty() ? nullptr : w1.data(), b1.data()},
                        lo, hi, h);
        return;
      }
    }
    std::vector<T> u((size_t)a.H), hp((size_t)C);
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t g = norm_group(a, framewise, p);
      std::copy(h + p * C, h + (p + 1) * C, hp.begin());  // out overwrites h in place
      pointwise_scalar(a, hp.data(), a.x + p * C, scale.data() + g * C, shift.data() + g * C, u.data(), h + p * C);
    }
  });
}

Tensor convnext2d_block(const Tensor& x_, const Tensor& dw_weight, const Tensor& norm_weight, const Tensor& norm_bias,
                        const Tensor& pw1_weight, const Tensor& pw1_bias, const Tensor& pw2_weight,
                        const Tensor& pw2_bias, const Tensor& layer_scale, double eps, bool framewise) {
  constexpr const char* op = "wavehax_convnext2d_block";
  wavehax_args::check_block(op, x_, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias, pw2_weight, pw2_bias,
                            layer_scale);
  const Tensor x = x_.contiguous();
  Tensor h = empty_huge(x.sizes(), x.options());
  if (x.numel() == 0) return h;
  const int64_t C = x.size(3), H = pw1_weight.size(0), KF = dw_weight.size(2), KT = dw_weight.size(3), Tn = x.size(2);
  const Tensor dw = dw_weight.reshape({C, KF * KT}).t().contiguous();
  const Tensor w1t = pw1_weight.t().contiguous(), b1 = pw1_bias.contiguous();
  const Tensor w2t = (pw2_weight * layer_scale.unsqueeze(1)).t().contiguous();
  const Tensor b2 = (pw2_bias * layer_scale).contiguous();
  const Tensor gamma = norm_weight.contiguous(), beta = norm_bias.contiguous();
  std::vector<int64_t> tix((size_t)(Tn + KT - 1));
  for (int64_t u = 0; u < Tn + KT - 1; ++u) tix[u] = wh::reflect(u - KT / 2, Tn) * C;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    const Block<scalar_t> a{x.const_data_ptr<scalar_t>(), dw.const_data_ptr<scalar_t>(),
                            w1t.const_data_ptr<scalar_t>(), b1.const_data_ptr<scalar_t>(),
                            w2t.const_data_ptr<scalar_t>(), b2.const_data_ptr<scalar_t>(),
                            x.size(0), x.size(1), Tn, C, H, KF, KT, tix.data()};
    const Kernels* simd = nullptr;
#if defined(__x86_64__)
    if (std::is_same_v<scalar_t, float>) {
      if (isa::active() == isa::kAvx512 && C % 16 == 0 && H % 16 == 0)
        simd = &kAvx512Kernels;
      else if (isa::avx2() && C % 8 == 0 && H % 8 == 0)
        simd = &kAvx2Kernels;
    }
#endif
    block_impl<scalar_t>(a, framewise, eps, gamma.const_data_ptr<scalar_t>(), beta.const_data_ptr<scalar_t>(),
                         h.mutable_data_ptr<scalar_t>(), simd);
  });
  return h;
}

// ---------------------------------------------------------------- harmonic prior
// sin(x) for |x| < kSinMax, written to vectorise (libm's sin does not): x = n pi/2 + r with n the
// nearest integer (r by fma with pi/2 in two parts, exact to well below an ulp of r), then the Taylor
// series of sin and cos on |r| <= pi/4 through r^13 and r^14 (truncation < 3e-14 of the result),
// chosen and signed by n mod 4.  Rounding by adding 1.5 * 2^52: GCC vectorises neither rint nor
// floor while floating-point traps may be enabled.
constexpr double kSinMax = double(1 << 30);
PYOPS_ALWAYS_INLINE double round_small(double x) {  // to nearest, |x| < 2^51
  constexpr double kMagic = 6755399441055744.0;      // 1.5 * 2^52
  return (x + kMagic) - kMagic;
}
PYOPS_ALWAYS_INLINE double sin_reduced(double x) {
  constexpr double kPio2Hi = 1.5707963267948966, kPio2Lo = 6.123233995736766e-17;  // pi/2 - kPio2Hi
  const double n = round_small(x * (2.0 / wh::kPi));
  const double r = std::fma(-n, kPio2Lo, std::fma(-n, kPio2Hi, x)), r2 = r * r;
  // Horner in r^2 with the coefficients +-1/j! (j! exact in double for j <= 22)
  double sp = 1.0 / 6227020800.0;                                                   // 1/13!
  sp = std::fma(sp, r2, -1.0 / 39916800.0), sp = std::fma(sp, r2, 1.0 / 362880.0);  // 11!, 9!
  sp = std::fma(sp, r2, -1.0 / 5040.0), sp = std::fma(sp, r2, 1.0 / 120.0), sp = std::fma(sp, r2, -1.0 / 6.0);
  double cp = -1.0 / 87178291200.0;                                                  // 1/14!
  cp = std::fma(cp, r2, 1.0 / 479001600.0), cp = std::fma(cp, r2, -1.0 / 3628800.0);  // 12!, 10!
  cp = std::fma(cp, r2, 1.0 / 40320.0), cp = std::fma(cp, r2, -1.0 / 720.0), cp = std::fma(cp, r2, 1.0 / 24.0);
  const double sin_r = std::fma(sp * r2, r, r), cos_r = std::fma(std::fma(cp, r2, -0.5), r2, 1.0);
  const double q = n - 4.0 * round_small(n * 0.25 - 0.375);  // n mod 4: floor(n / 4) for integer n
  const double v = (q == 1.0 || q == 3.0) ? cos_r : sin_r;
  return q >= 2.0 ? -v : v;
}

// The prior's voiced samples of one frame (k harmonics of amplitude amp, k + 1 < 2 kSinMax / pi):
// out = (float)(amp harmonic_sum(theta)) + noise, harmonic_sum as in pyops/wavehax.h with sin_reduced.
PYOPS_ALWAYS_INLINE void prior_samples_body(const double* cycles, int64_t n, double k, double amp, const float* noise,
                                            float* out) {
#pragma omp simd
  for (int64_t s = 0; s < n; ++s) {
    const double theta = wh::cycles_to_theta(cycles[s]), half = sin_reduced(0.5 * theta);
    const double v = sin_reduced(0.5 * k * theta) * sin_reduced(0.5 * (k + 1) * theta) / half;
    out[s] = (float)(amp * (half == 0.0 ? 0.0 : v)) + noise[s];
  }
}
// An AVX-512 copy only: GCC vectorises the loop's selects with masks there, but for AVX2 it leaves
// them as branches (its compares may trap), and scalar sin_reduced is no faster than libm's.
#if defined(PYOPS_ISA_X86)
PYOPS_TARGET_AVX512 void prior_samples_avx512(const double* c, int64_t n, double k, double amp, const float* noise,
                                              float* out) {
  prior_samples_body(c, n, k, amp, noise, out);
}
#endif

Tensor harmonic_prior(const Tensor& f0_, const Tensor& noise_, const Tensor& phase0_, int64_t hop, int64_t sample_rate,
                      double power_factor) {
  wavehax_args::check_prior("wavehax_harmonic_prior", f0_, noise_, phase0_, hop, sample_rate, power_factor);
  const Tensor f0 = f0_.contiguous(), noise = noise_.contiguous(), phase0 = phase0_.contiguous();
  Tensor out = empty_huge(noise.sizes(), noise.options());
  const int64_t B = f0.size(0), N = f0.size(2);
  const float* pf = f0.const_data_ptr<float>();
  const float* pn = noise.const_data_ptr<float>();
  const double* ph = phase0.const_data_ptr<double>();
  float* po = out.mutable_data_ptr<float>();
  const int sr = (int)sample_rate;
  // The phase is a running sum over the utterance.  A serial pass of adds only (a few % of the work)
  // records it at each chunk's first sample; the chunks then run in parallel from there, with the
  // same sums in the same order as one serial loop.
  constexpr int64_t kFrames = 32;
  const int64_t chunks = (N + kFrames - 1) / kFrames;
  std::vector<double> start((size_t)(B * chunks));
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      double cycles = ph[b] - std::floor(ph[b]);
      for (int64_t i = 0; i < N; ++i) {
        if (i % kFrames == 0) start[(size_t)(b * chunks + i / kFrames)] = cycles;
        const double radius = (double)pf[b * N + i] / (double)sr;
        for (int64_t s = 0; s < hop; ++s) cycles = wh::advance_phase(cycles, radius);
      }
    }
  });
  // Each span of a frame: its phases serially, then its samples, vectorised (at the AVX-512 level)
  // where no argument reaches kSinMax; else with libm's sin.
  bool avx512 = false;
#if defined(PYOPS_ISA_X86)
  avx512 = isa::active() == isa::kAvx512;
#endif
  constexpr int64_t kSpan = 256;
  at::parallel_for(0, B * chunks, 1, [&](int64_t lo, int64_t hi) {
    double cyc[kSpan];
    for (int64_t j = lo; j < hi; ++j) {
      const int64_t b = j / chunks, i0 = j % chunks * kFrames;
      double cycles = start[(size_t)j];
      for (int64_t i = i0; i < std::min(N, i0 + kFrames); ++i) {
        const float f = pf[b * N + i];
        const double k = wh::harmonic_count(f, sr);
        const double amp = wh::harmonic_amplitude(f, sr, power_factor), radius = (double)f / (double)sr;
        [[maybe_unused]] const bool vec = avx512 && k && 0.5 * (k + 1) * wh::kPi < kSinMax;
        for (int64_t s0 = (b * N + i) * hop, end = s0 + hop; s0 < end; s0 += kSpan) {
          const int64_t n = std::min(kSpan, end - s0);
          for (int64_t s = 0; s < n; ++s) cyc[s] = cycles = wh::advance_phase(cycles, radius);
#if defined(PYOPS_ISA_X86)
          if (vec) {
            prior_samples_avx512(cyc, n, k, amp, pn + s0, po + s0);
            continue;
          }
#endif
          for (int64_t s = 0; s < n; ++s) {
            const double v = k ? amp * wh::harmonic_sum(wh::cycles_to_theta(cyc[s]), k) : 0.0;
            po[s0 + s] = (float)v + pn[s0 + s];
          }
        }
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) {
  m.impl("wavehax_convnext2d_block", &convnext2d_block);
  m.impl("wavehax_harmonic_prior", &harmonic_prior);
}

}  // namespace pyops
