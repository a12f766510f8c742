// Integer-only nonlinearities (I-BERT, I-ViT): scalar math shared by the CPU
// and CUDA kernels.  Everything is int64 arithmetic with FLOOR semantics for
// negatives (arithmetic shifts, floor_div), never C truncation.  The integer
// constants (x0, b_int, c_int, ...) are derived from the float scale once per
// call by the caller; see pyops/reference/intops.py for the definitions.
#pragma once
#include <initializer_list>

#include "pyops/common.h"

namespace pyops {
namespace intops {

PYOPS_HD int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// a / 2^s rounded half to even (torch.round), for s >= 0.
PYOPS_HD int64_t round_shift(int64_t a, int s) {
  if (s == 0) return a;
  const int64_t q = a >> s;  // floor
  const int64_t rem = a - (q << s), half = (int64_t)1 << (s - 1);
  return (rem > half || (rem == half && (q & 1))) ? q + 1 : q;
}

// a / n rounded half to even, n > 0 (I-BERT's round(mean)).
PYOPS_HD int64_t round_div(int64_t a, int64_t n) {
  const int64_t q = floor_div(a, n), rem = a - q * n;
  return (2 * rem > n || (2 * rem == n && (q & 1))) ? q + 1 : q;
}

// Exact floor(sqrt(x)) for 0 <= x < 2^63, digit by digit: integer ops only.  The digits start
// at the largest power of 4 <= x (from the leading-zero count); each step selects without a
// branch (the LayerNorm rows' variances would mispredict one step in two).
PYOPS_HD int64_t isqrt(int64_t x) {
  if (x <= 0) return 0;
  uint64_t v = (uint64_t)x, r = 0;
#if defined(__CUDA_ARCH__)
  const int top = 63 - __clzll(x);
#else
  const int top = 63 - __builtin_clzll(v);
#endif
  for (uint64_t bit = (uint64_t)1 << (top & ~1); bit; bit >>= 2) {
    const uint64_t t = r + bit;
    const uint64_t take = (uint64_t)0 - (uint64_t)(v >= t);  // all ones or zero
    v -= t & take;
    r = (r >> 1) + (bit & take);
  }
  return (int64_t)r;
}

// I-ViT's integer Newton iteration for sqrt: 10 steps from 2^16.
// LayerNorm's variance shift for one row: the given shift, raised until
// len * ((x - mean) >> s)^2 fits in int64 for every x of the row (|x - mean| <= maxdev).
// Raising it only coarsens the variance (std = sqrt(var) << s keeps the scale), so a
// row of int32 accumulators near +-2^31 normalises instead of overflowing.
// layernorm_shift_limit(len) is the bound on |x - mean| >> s, once per row length.
PYOPS_HD int64_t layernorm_shift_limit(int64_t len) { return isqrt(INT64_MAX / (len > 0 ? len : 1)); }

PYOPS_HD int layernorm_shift_within(int64_t maxdev, int64_t limit, int shift) {
  while ((maxdev >> shift) > limit) ++shift;
  return shift;
}

PYOPS_HD int layernorm_shift(int64_t maxdev, int64_t len, int shift) {
  return layernorm_shift_within(maxdev, layernorm_shift_limit(len), shift);
}

PYOPS_HD int64_t newton_sqrt(int64_t x) {
  int64_t k = (int64_t)1 << 16;
  for (int i = 0; i < 10; ++i) k = (k + x / k) >> 1;  // x, k > 0: truncation == floor
  return k;
}

// I-BERT i-exp of x <= 0 (x - rowmax), n = 30:
//   q = floor(x / x0), r = x - x0 q in (x0, 0], z = (r + b) r + c,  e = max(z << (30 - q), 0).
constexpr int kIbertN = 30;
PYOPS_HD int64_t ibert_exp(int64_t x, int64_t x0, int64_t b, int64_t c) {
  x = x < kIbertN * x0 ? kIbertN * x0 : x;
  const int64_t q = floor_div(x, x0);
  const int64_t r = x - x0 * q;
  const int64_t z = (r + b) * r + c;
  const int64_t e = z * ((int64_t)1 << (kIbertN - q));  // z <= c < 2^32 (checked by the caller): no overflow
  return e > 0 ? e : 0;
}

// I-BERT softmax requantises e to 16 bits before summing, at the scale that maps
// the largest e (c 2^30, at the row max) to 2^15 - 1.  Exactly, without forming e:
//   e16 = round(e (2^15 - 1) / (c 2^30)) = round(z (2^15 - 1) / (c 2^q)).
PYOPS_HD int64_t ibert_exp16(int64_t x, int64_t x0, int64_t b, int64_t c) {
  x = x < kIbertN * x0 ? kIbertN * x0 : x;
  const int64_t q = floor_div(x, x0);
  const int64_t r = x - x0 * q;
  const int64_t z = (r + b) * r + c;
  return z > 0 ? round_div(z * 32767, c << q) : 0;
}

// I-ViT shift-exp of x <= 0 with n = 15 (Shiftmax) or 23 (ShiftGELU):
//   x += floor(x/2) - floor(x/16)  (x log2 e);  q = floor(x / x0), r = x - x0 q;
//   e = floor((r/2 - x0) 2^(n - q)) = ((r - 2 x0) << (n - q)) >> 1, never negative.
// A positive x (ShiftGELU's e^(-rowmax) when the row max is negative) gives a
// shift beyond n; past 40 bits the value saturates at 2^62, which the callers'
// clamp of the sum to 2^31 - 1 absorbs, as the float reference's clamp does.
PYOPS_HD int64_t shift_exp(int64_t x, int64_t x0, int n) {
  x = x + (x >> 1) - (x >> 4);
  x = x < n * x0 ? n * x0 : x;
  const int64_t q = floor_div(x, x0);
  const int64_t r = x - x0 * q;
  if (n - q > 40) return (int64_t)1 << 62;
  return ((r - 2 * x0) << (n - q)) >> 1;
}

// I-BERT GELU of one element: y = sign(x)((min(|x|, -b) + b)^2 + c) >> 14 (floor),
// out = x (y + one).  b < 0, c < 0, one = floor(1 / scale_erf) < 0.
// ibert_gelu_factor is (y >> 14) + one, a function of clamp(x, b, -b) (the CPU tabulates it).
PYOPS_HD int64_t ibert_gelu_factor(int64_t x, int64_t b, int64_t c, int64_t one) {
  const int64_t ax = x < 0 ? -x : x;
  const int64_t m = (ax < -b ? ax : -b) + b;
  int64_t y = m * m + c;
  y = x > 0 ? y : (x < 0 ? -y : 0);
  return (y >> 14) + one;
}

PYOPS_HD int64_t ibert_gelu(int64_t x, int64_t b, int64_t c, int64_t one) {
  return x * ibert_gelu_factor(x, b, c, one);
}

// Dyadic requantisation: round_half_even(x m / 2^e), saturated to [lo, hi] (lo < 0 < hi).
// |x| <= 2^31 and 0 <= m <= 2^31 (checked by the callers), so |x m| <= 2^62 and any e is
// exact: past 62 bits right the result rounds to 0, and a left shift that would leave
// int64 saturates instead of wrapping.
PYOPS_HD int64_t requantize(int64_t x, int64_t m, int64_t e, int64_t lo, int64_t hi) {
  const int64_t p = x * m;
  int64_t v;
  if (e >= 0) {
    v = e > 62 ? 0 : round_shift(p, (int)e);
  } else if (p == 0) {
    v = 0;
  } else {
    const int64_t room = -e > 62 ? 0 : INT64_MAX >> -e;
    v = (p > room || p < -room) ? (p > 0 ? hi : lo) : p * ((int64_t)1 << -e);
  }
  return v < lo ? lo : (v > hi ? hi : v);
}

// ---- the raw ops' constants: nullptr inside the domain where the kernels above are exact and
// cannot overflow, else what is wrong (shared by the CPU kernels and the CUDA binding).

// i-exp (x0, b, c): z = (r + b) r + c over the integers r in (x0, 0] must stay in (0, c] so that
// e = z 2^(30-q) fits in int64: b >= -x0 - 1 keeps (r + b) r <= 0; z > 0 at its smallest, the
// integer r nearest the vertex -b/2 within the range; c < 2^32.
inline const char* ibert_constants_error(int64_t x0, int64_t b, int64_t c) {
  if (!(x0 < 0 && x0 > -((int64_t)1 << 31)))
    return "constant x0 must be in (-2^31, 0): the scale is out of range";
  if (!(c > 0 && c < ((int64_t)1 << 32))) return "constant c must be in (0, 2^32): the scale is out of range";
  if (!(b >= -x0 - 1 && b < ((int64_t)1 << 32))) return "constant b must be in [-x0 - 1, 2^32)";
  int64_t zmin = c;
  for (int64_t r : {-(b / 2), -(b / 2) - 1, x0 + 1}) {
    r = r < x0 + 1 ? x0 + 1 : (r > 0 ? 0 : r);
    const int64_t z = (r + b) * r + c;  // |r| < 2^31, 0 <= r + b < 2^32: no overflow
    zmin = z < zmin ? z : zmin;
  }
  if (zmin <= 0) return "constants b and c must keep i-exp's polynomial positive on (x0, 0]";
  return nullptr;
}

// Shift-exp with n fraction bits: e(0) = -x0 2^n must stay below 2^31 (the row sums saturate there).
inline const char* shift_x0_error(int64_t x0, int n) {
  if (!(x0 < 0 && x0 > -((int64_t)1 << (31 - n))))  // not -x0: INT64_MIN has no negation
    return n == 15 ? "constant x0 must be in (-2^16, 0): the scale is out of range"
                   : "constant x0 must be in (-2^8, 0): the scale is out of range";
  return nullptr;
}

inline const char* output_bits_error(int64_t bits) {
  return bits >= 2 && bits <= 16 ? nullptr : "argument 'output_bits' must be in [2, 16]";
}

// requantize's per-channel multiplier and exponent (any e is exact; m bounds x m)
inline const char* requantize_constants_error(int64_t m, int64_t e) {
  if (!(m >= 0 && m <= ((int64_t)1 << 31))) return "argument 'm' must be in [0, 2^31]";
  if (!(e >= -64 && e <= 64)) return "argument 'e' must be in [-64, 64]";
  return nullptr;
}

// n channels' m and e: every m is checked before any e (the reference's order)
inline const char* requantize_constants_error(const int64_t* m, const int64_t* e, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
    if (const char* error = requantize_constants_error(m[j], 0)) return error;
  for (int64_t j = 0; j < n; ++j)
    if (const char* error = requantize_constants_error(0, e[j])) return error;
  return nullptr;
}

// GELU's per-channel constants, n of each: out = x ((y >> 14) + one) with y = +-(m^2 + c), m in [b, 0].
// b < 0 keeps the clamp's sign (the CPU kernels rely on it) and m^2 < 2^62; |c|, |one| < 2^62 keep
// y and (y >> 14) + one in int64; the factor's extremes (y = +-c, +-(b^2 + c)) within 2^31 keep
// x times it in int64 for any int32 x.
inline const char* gelu_constants_error(const int64_t* b, const int64_t* c, const int64_t* one, int64_t n) {
  constexpr int64_t k31 = (int64_t)1 << 31, k62 = (int64_t)1 << 62;
  for (int64_t j = 0; j < n; ++j)
    if (!(b[j] > -k31 && b[j] < 0)) return "argument 'b' must be in (-2^31, 0)";
  for (int64_t j = 0; j < n; ++j)
    if (!(c[j] > -k62 && c[j] < k62)) return "argument 'c' must be in (-2^62, 2^62)";
  for (int64_t j = 0; j < n; ++j)
    if (!(one[j] > -k62 && one[j] < k62)) return "argument 'one' must be in (-2^62, 2^62)";
  for (int64_t j = 0; j < n; ++j) {
    const int64_t top = b[j] * b[j] + c[j];
    for (int64_t y : {c[j], top, -c[j], -top}) {
      const int64_t f = (y >> 14) + one[j];
      if (f > k31 || f < -k31)
        return "constants 'b', 'c' and 'one' must keep |(y >> 14) + one| <= 2^31, so that x times it fits int64";
    }
  }
  return nullptr;
}

}  // namespace intops
}  // namespace pyops
