// The gaunt grid product at one node pair +-z (pyops::gaunt_grid_product) for a lane of channels:
// every value is a V, either T itself (the CUDA kernel: one channel per thread) or a GCC vector
// of T (the CPU kernel: one cache line of channels, so every operation is a SIMD instruction).
//
// At a node z a degree-L feature is the trig polynomial f(alpha) = sum_{|mu| <= L} c_mu e^{i mu alpha}
// with c_0 = a_0, c_mu = (a_mu - i a_-mu) / sqrt2, c_-mu = conj c_mu, a_m = sum_l x_lm p_l^|m|(z)
// (e3nn's real basis: A_m = sqrt2 cos, 1, sqrt2 sin).  The product's spectrum is the convolution
// d_nu = sum_mu c1_mu c2_(nu-mu), and its projection onto A_m3 integrates to 2 pi d_0,
// 2 sqrt2 pi Re d_nu (m3 = nu > 0) or -2 sqrt2 pi Im d_nu (m3 = -nu).  p_l^m(-z) = (-1)^(l+m) p_l^m(z):
// the even- and odd-(l+m) partial sums at z give the spectra at both z and -z, and the projection
// of both nodes needs one multiply-add per output.
//
// Layouts: x[i] with e3nn position i = l^2 + l + m; p[i] = p_l^|m|(z) (one table row, scalars);
// spectra c[2 mu + {0: re, 1: im}] for mu = 0..L; products d[2 nu + {re, im}], nu = 0..lo.
#pragma once
#include "pyops/common.h"

#if defined(__CUDACC__)
#define PYOPS_GAUNT_INLINE __host__ __device__ __forceinline__
#else
// always inlined: the CPU kernel's per-ISA copies (csrc/cpu/isa.h) must vectorise these loops for their ISA
#define PYOPS_GAUNT_INLINE inline __attribute__((always_inline))
#endif

namespace pyops {
namespace gaunt {

constexpr double kSqrtHalf = 0.70710678118654752440;
constexpr double kTwoPi = 6.28318530717958647692;
constexpr double kTwoSqrt2Pi = 8.88576587631673249403;  // 2 sqrt2 pi

// Spectra of x (degree L) at +z into cp and at -z into cm.
template <typename T, typename V>
PYOPS_GAUNT_INLINE void spectra(const V* __restrict__ x, int L, const T* __restrict__ p, V* __restrict__ cp,
                                V* __restrict__ cm) {
  for (int mu = 0; mu <= L; ++mu) {
    const T s = mu ? T(kSqrtHalf) : T(1);
    for (int im = 0; im < (mu ? 2 : 1); ++im) {  // m = +mu: real part, m = -mu: minus the imaginary part
      const int m = im ? -mu : mu;
      V e = {}, o = {};
      for (int l = mu; l <= L; l += 2) e += p[l * l + l + m] * x[l * l + l + m];  // l + |m| even
      for (int l = mu + 1; l <= L; l += 2) o += p[l * l + l + m] * x[l * l + l + m];  // odd
      const T sg = im ? -s : s;
      cp[2 * mu + im] = sg * (e + o);
      cm[2 * mu + im] = sg * (e - o);
    }
  }
  cp[1] = cm[1] = V{};  // c_0 is real
}

// d_nu = sum_mu c1_mu c2_(nu-mu) for nu = 0..lo (|mu| <= L1, |nu - mu| <= L2; c_-mu = conj c_mu).
template <typename V>
PYOPS_GAUNT_INLINE void convolve(const V* __restrict__ c1, int L1, const V* __restrict__ c2, int L2, int lo,
                                 V* __restrict__ d) {
  for (int nu = 0; nu <= lo; ++nu) {
    V re = {}, im = {};
    const int lo_mu = nu - L2 > -L1 ? nu - L2 : -L1, hi_mu = nu + L2 < L1 ? nu + L2 : L1;
    // three runs of fixed conjugation: mu < 0 (conj c1), 0 <= mu <= nu, mu > nu (conj c2)
    for (int mu = lo_mu; mu < 0 && mu <= hi_mu; ++mu) {
      const V *a = c1 + 2 * (-mu), *b = c2 + 2 * (nu - mu);
      re += a[0] * b[0] + a[1] * b[1];
      im += a[0] * b[1] - a[1] * b[0];
    }
    for (int mu = lo_mu > 0 ? lo_mu : 0; mu <= nu && mu <= hi_mu; ++mu) {
      const V *a = c1 + 2 * mu, *b = c2 + 2 * (nu - mu);
      re += a[0] * b[0] - a[1] * b[1];
      im += a[0] * b[1] + a[1] * b[0];
    }
    for (int mu = nu + 1 > lo_mu ? nu + 1 : lo_mu; mu <= hi_mu; ++mu) {
      const V *a = c1 + 2 * mu, *b = c2 + 2 * (mu - nu);
      re += a[0] * b[0] + a[1] * b[1];
      im += a[1] * b[0] - a[0] * b[1];
    }
    d[2 * nu] = re;
    d[2 * nu + 1] = im;
  }
}

// out[i3] += w * p[i3] * (H(+z) +- H(-z)) for every output position up to lo (+ for even l3 + |m3|).
template <typename T, typename V>
PYOPS_GAUNT_INLINE void project(const V* __restrict__ dp, const V* __restrict__ dm, int lo, const T* __restrict__ p,
                                T w, V* __restrict__ out) {
  for (int nu = 0; nu <= lo; ++nu) {
    for (int im = 0; im < (nu ? 2 : 1); ++im) {  // m3 = +nu: Re d, m3 = -nu: -Im d
      const int m = im ? -nu : nu;
      const T g = w * (nu ? (im ? -T(kTwoSqrt2Pi) : T(kTwoSqrt2Pi)) : T(kTwoPi));
      const V e = g * (dp[2 * nu + im] + dm[2 * nu + im]), o = g * (dp[2 * nu + im] - dm[2 * nu + im]);
      for (int l = nu; l <= lo; l += 2) out[l * l + l + m] += p[l * l + l + m] * e;
      for (int l = nu + 1; l <= lo; l += 2) out[l * l + l + m] += p[l * l + l + m] * o;
    }
  }
}

// Scratch (in V) of node_pair: the four spectra and the two products.
PYOPS_GAUNT_INLINE int scratch_size(int L1, int L2, int lo) { return 4 * (L1 + L2 + 2) + 4 * (lo + 1); }

// The whole contribution of one table row (node pair) to out (positions up to lo).
template <typename T, typename V>
PYOPS_GAUNT_INLINE void node_pair(const V* __restrict__ x1, int L1, const V* __restrict__ x2, int L2, int lo,
                                  const T* __restrict__ p, T w, V* __restrict__ scratch, V* __restrict__ out) {
  V* c1p = scratch;
  V* c1m = c1p + 2 * (L1 + 1);
  V* c2p = c1m + 2 * (L1 + 1);
  V* c2m = c2p + 2 * (L2 + 1);
  V* dp = c2m + 2 * (L2 + 1);
  V* dm = dp + 2 * (lo + 1);
  spectra(x1, L1, p, c1p, c1m);
  spectra(x2, L2, p, c2p, c2m);
  convolve(c1p, L1, c2p, L2, lo, dp);
  convolve(c1m, L1, c2m, L2, lo, dm);
  project(dp, dm, lo, p, w, out);
}

}  // namespace gaunt
}  // namespace pyops
