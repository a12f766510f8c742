// wavehax CPU kernels.
//  * convnext2d_block on channels-last [B, F, T, C]: pass 1 writes the depthwise KFxKT reflect
//    convolution and each position's channel sum and sum of squares; the norm statistics follow
//    (per utterance or per frame); pass 2 runs normalise -> PW1 -> GELU -> PW2 -> layer scale ->
//    residual for 6 positions at a time, the hidden activations staying in L1, and writes the
//    result over the DW buffer.  float32 with C and hidden multiples of 8 takes AVX2+FMA code
//    (chosen at run time); other shapes, float64 and other CPUs take the scalar loops.
//  * harmonic_prior: the closed-form sum of harmonics, phase accumulated in float64 per utterance.
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

#include "isa.h"
#include "pyops/wavehax.h"
#include "wavehax_args.h"

namespace pyops {
namespace {

namespace wh = pyops::wavehax;
using at::Tensor;

constexpr int64_t kTile = 96;  // frames per depthwise job (a multiple of 6 and 8)
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

// ---------------------------------------------------------------- AVX2 + FMA (float32, C and H multiples of 8)
#if defined(__x86_64__)

PYOPS_TARGET_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(_mm_hadd_ps(s, s));
}

// Exact-erf GELU, erf(z) for |z| <= 4 as the odd/even rational z P(z^2) / Q(z^2) also used by
// Eigen and XLA (max abs error ~5e-7 in float32; |erf| rounds to 1 beyond 4).
PYOPS_TARGET_AVX2 inline __m256 gelu8(__m256 v) {
  const __m256 z = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)),
                                               _mm256_set1_ps(-4.0f)),
                                 _mm256_set1_ps(4.0f));
  const __m256 z2 = _mm256_mul_ps(z, z);
  __m256 p = _mm256_set1_ps(-2.72614225801306e-10f);
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(2.77068142495902e-08f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.10102402082508e-06f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-5.69250639462346e-05f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-7.34990630326855e-04f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.95459980854025e-03f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-1.60960333262415e-02f));
  __m256 q = _mm256_set1_ps(-1.45660718464996e-05f);
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-2.13374055278905e-04f));
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-1.68282697438203e-03f));
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-7.37332916720468e-03f));
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-1.42647390514189e-02f));
  const __m256 erf = _mm256_div_ps(_mm256_mul_ps(z, p), q);
  const __m256 half = _mm256_mul_ps(v, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(half, erf, half);
}

// Q consecutive output frames t.. of one row, 8 NC channels at a time (Q NC accumulators hide the
// FMA latency); kInterior: no frame is reflected, so source addresses need no offset table.
// KK: the time taps KT as a compile-time constant (0: a.KT at run time).
template <int Q, int NC, bool kInterior, int KK>
PYOPS_TARGET_AVX2 inline void dw_frames_avx2(const Block<float>& a, const float* const* rows, int64_t t, float* out) {
  const int64_t C = a.C, KF = a.KF, K = KK ? KK : a.KT, pad = K / 2;
  for (int64_t cv = 0; cv < C; cv += 8 * NC) {
    __m256 acc[Q][NC];
    for (int q = 0; q < Q; ++q)
      for (int c = 0; c < NC; ++c) acc[q][c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < KF; ++i) {
      const float* xr = rows[i] + cv;
      const float* w = a.dw + i * K * C + cv;
      for (int64_t j = 0; j < K; ++j) {
        __m256 wv[NC];
        for (int c = 0; c < NC; ++c) wv[c] = _mm256_loadu_ps(w + j * C + 8 * c);
        for (int q = 0; q < Q; ++q) {
          const float* src = kInterior ? xr + (t + q + j - pad) * C : xr + a.tix[t + q + j];
          for (int c = 0; c < NC; ++c) acc[q][c] = _mm256_fmadd_ps(wv[c], _mm256_loadu_ps(src + 8 * c), acc[q][c]);
        }
      }
    }
    for (int q = 0; q < Q; ++q)
      for (int c = 0; c < NC; ++c) _mm256_storeu_ps(out + (t + q) * C + cv + 8 * c, acc[q][c]);
  }
}

template <int Q, int NC, int KK>
PYOPS_TARGET_AVX2 void dw_frames_range_avx2(const Block<float>& a, const float* const* rows, int64_t t0, int64_t t1,
                                     float* out) {
  const int64_t pad = a.KT / 2;
  int64_t t = t0;
  for (; t + Q <= t1; t += Q) {
    if (t >= pad && t + Q - 1 + pad < a.T)
      dw_frames_avx2<Q, NC, true, KK>(a, rows, t, out);
    else
      dw_frames_avx2<Q, NC, false, KK>(a, rows, t, out);
  }
  for (; t < t1; ++t) dw_frames_avx2<1, NC, false, KK>(a, rows, t, out);
}

// Frames [t0, t1) of one output row, then their channel sums (re-read from L1/L2).
PYOPS_TARGET_AVX2 void dw_row_avx2(const Block<float>& a, const float* const* rows, int64_t t0, int64_t t1, float* out,
                            double* stats) {
  // the official kernels' 7 time taps get unrolled; other sizes loop
  if (a.C % 16 == 0 && a.KT == 7)
    dw_frames_range_avx2<6, 2, 7>(a, rows, t0, t1, out);
  else if (a.C % 16 == 0)
    dw_frames_range_avx2<6, 2, 0>(a, rows, t0, t1, out);
  else
    dw_frames_range_avx2<8, 1, 0>(a, rows, t0, t1, out);
  for (int64_t t = t0; t < t1; ++t) {
    __m256 s = _mm256_setzero_ps(), ss = _mm256_setzero_ps();
    for (int64_t c = 0; c < a.C; c += 8) {
      const __m256 v = _mm256_loadu_ps(out + t * a.C + c);
      s = _mm256_add_ps(s, v);
      ss = _mm256_fmadd_ps(v, v, ss);
    }
    stats[2 * t] = hsum(s);
    stats[2 * t + 1] = hsum(ss);
  }
}

// out[p, n0 .. n0 + 8 NV) = bias + A[p, :K] W[:K, n0 ..], then GELU (kGelu) or + resid, for P rows.
template <int P, int NV, bool kGelu>
PYOPS_TARGET_AVX2 inline void mm_tile(const float* A, int64_t lda, int64_t K, const float* W, int64_t ldw,
                               const float* bias, int64_t n0, const float* const* resid, float* out, int64_t ldo) {
  __m256 acc[P][NV];
  for (int v = 0; v < NV; ++v) {
    const __m256 b = _mm256_loadu_ps(bias + n0 + 8 * v);
    for (int p = 0; p < P; ++p) acc[p][v] = b;
  }
  for (int64_t k = 0; k < K; ++k) {
    __m256 w[NV];
    for (int v = 0; v < NV; ++v) w[v] = _mm256_loadu_ps(W + k * ldw + n0 + 8 * v);
    for (int p = 0; p < P; ++p) {
      const __m256 x = _mm256_broadcast_ss(A + p * lda + k);
      for (int v = 0; v < NV; ++v) acc[p][v] = _mm256_fmadd_ps(x, w[v], acc[p][v]);
    }
  }
  for (int p = 0; p < P; ++p)
    for (int v = 0; v < NV; ++v) {
      const __m256 r = kGelu ? gelu8(acc[p][v]) : _mm256_add_ps(acc[p][v], _mm256_loadu_ps(resid[p] + n0 + 8 * v));
      _mm256_storeu_ps(out + p * ldo + n0 + 8 * v, r);
    }
}

template <int P, bool kGelu>
PYOPS_TARGET_AVX2 inline void mm_rows(const float* A, int64_t lda, int64_t K, const float* W, int64_t N, const float* bias,
                               const float* const* resid, float* out, int64_t ldo) {
  int64_t n0 = 0;
  for (; n0 + 16 <= N; n0 += 16) mm_tile<P, 2, kGelu>(A, lda, K, W, N, bias, n0, resid, out, ldo);
  if (n0 < N) mm_tile<P, 1, kGelu>(A, lda, K, W, N, bias, n0, resid, out, ldo);
}

// P positions starting at flat index p0 (rows of h / x / out, C apart); A: [P, C], U: [P, H] scratch.
template <int P>
PYOPS_TARGET_AVX2 inline void pointwise_avx2(const Block<float>& a, int64_t p0, float* h, const float* const* scale,
                                      const float* const* shift, float* A, float* U) {
  const int64_t C = a.C, H = a.H;
  const float* resid[P];
  for (int p = 0; p < P; ++p) {
    const float* hp = h + (p0 + p) * C;
    for (int64_t c = 0; c < C; c += 8)
      _mm256_storeu_ps(A + p * C + c, _mm256_fmadd_ps(_mm256_loadu_ps(hp + c), _mm256_loadu_ps(scale[p] + c),
                                                      _mm256_loadu_ps(shift[p] + c)));
    resid[p] = a.x + (p0 + p) * C;
  }
  mm_rows<P, true>(A, C, C, a.w1t, H, a.b1, nullptr, U, H);
  mm_rows<P, false>(U, H, H, a.w2t, C, a.b2, resid, h + p0 * C, C);
}
#endif

// ---------------------------------------------------------------- the block
template <typename T>
void block_impl(const Block<T>& a, bool framewise, double eps, const T* gamma, const T* beta, T* h, bool avx2) {
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
#if defined(__x86_64__)
        if constexpr (std::is_same_v<T, float>) {
          if (avx2) {
            dw_row_avx2(a, rows.data(), t0, t1, out, st);
            continue;
          }
        }
#endif
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
  auto group_of = [&](int64_t p) { return framewise ? (p / (F * Tn)) * Tn + p % Tn : p / (F * Tn); };

  at::parallel_for(0, B * F * Tn, 256, [&](int64_t lo, int64_t hi) {
#if defined(__x86_64__)
    if constexpr (std::is_same_v<T, float>) {
      if (avx2) {
        constexpr int P = 6;
        std::vector<float> A((size_t)(P * C)), U((size_t)(P * a.H));
        const float *sc[P], *sh[P];
        int64_t p = lo;
        for (; p + P <= hi; p += P) {
          for (int q = 0; q < P; ++q) {
            const int64_t g = group_of(p + q);
            sc[q] = scale.data() + g * C;
            sh[q] = shift.data() + g * C;
          }
          pointwise_avx2<P>(a, p, h, sc, sh, A.data(), U.data());
        }
        for (; p < hi; ++p) {
          const int64_t g = group_of(p);
          sc[0] = scale.data() + g * C;
          sh[0] = shift.data() + g * C;
          pointwise_avx2<1>(a, p, h, sc, sh, A.data(), U.data());
        }
        return;
      }
    }
#endif
    std::vector<T> u((size_t)a.H), hp((size_t)C);
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t g = group_of(p);
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
  Tensor h = at::empty_like(x, at::MemoryFormat::Contiguous);
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
    const bool avx2 = isa::avx2() && std::is_same_v<scalar_t, float> && C % 8 == 0 && H % 8 == 0;
    block_impl<scalar_t>(a, framewise, eps, gamma.const_data_ptr<scalar_t>(), beta.const_data_ptr<scalar_t>(),
                         h.mutable_data_ptr<scalar_t>(), avx2);
  });
  return h;
}

// ---------------------------------------------------------------- harmonic prior
Tensor harmonic_prior(const Tensor& f0_, const Tensor& noise_, const Tensor& phase0_, int64_t hop, int64_t sample_rate,
                      double power_factor) {
  wavehax_args::check_prior("wavehax_harmonic_prior", f0_, noise_, phase0_, hop, sample_rate, power_factor);
  const Tensor f0 = f0_.contiguous(), noise = noise_.contiguous(), phase0 = phase0_.contiguous();
  Tensor out = at::empty_like(noise, at::MemoryFormat::Contiguous);
  const int64_t B = f0.size(0), N = f0.size(2);
  const float* pf = f0.const_data_ptr<float>();
  const float* pn = noise.const_data_ptr<float>();
  const double* ph = phase0.const_data_ptr<double>();
  float* po = out.mutable_data_ptr<float>();
  const int sr = (int)sample_rate;
  // the phase is a running sum over the whole utterance: parallel over utterances only
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      double cycles = ph[b] - std::floor(ph[b]);
      for (int64_t i = 0; i < N; ++i) {
        const float f = pf[b * N + i];
        const double k = wh::harmonic_count(f, sr);
        const double amp = wh::harmonic_amplitude(f, sr, power_factor), radius = (double)f / (double)sr;
        const int64_t base = (b * N + i) * hop;
        for (int64_t s = 0; s < hop; ++s) {
          cycles = wh::advance_phase(cycles, radius);
          const double v = k ? amp * wh::harmonic_sum(wh::cycles_to_theta(cycles), k) : 0.0;
          po[base + s] = (float)v + pn[base + s];
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
