// Piecewise-affine arithmetic (Kosson & Jaggi 2023): scalar math shared by the
// CPU and CUDA kernels.  Everything here is integer arithmetic on IEEE bit
// patterns; edge cases are decided from exponent fields, never from a float
// product (the official kernel multiplies to range-check, defeating the point).
//
// pyops semantics: NaN in -> NaN; zero or denormal operand -> signed zero
// (inf * 0 -> NaN); result below the normal range -> signed zero; above it ->
// signed inf.  float32 and float64 use the same rule on their own layouts.
#pragma once
#include <cmath>

#include "pyops/common.h"

namespace pyops {
namespace pam {

template <typename T>
struct Layout;

template <>
struct Layout<float> {
  using U = uint32_t;
  using S = int64_t;  // signed exponent arithmetic (exp2, gradient factors)
  static constexpr int kMantBits = 23;
  static constexpr U kExpMax = 0xFF;
  static constexpr U kOne = 0x3F800000u;
  static constexpr U kSign = 0x80000000u;
  static constexpr U kInf = 0x7F800000u;
  static constexpr U kNaN = 0x7FC00000u;
  PYOPS_HD static U bits(float x) { return f32_bits(x); }
  PYOPS_HD static float value(U u) { return bits_f32(u); }
};

template <>
struct Layout<double> {
  using U = uint64_t;
  using S = int64_t;
  static constexpr int kMantBits = 52;
  static constexpr U kExpMax = 0x7FF;
  static constexpr U kOne = 0x3FF0000000000000ull;
  static constexpr U kSign = 0x8000000000000000ull;
  static constexpr U kInf = 0x7FF0000000000000ull;
  static constexpr U kNaN = 0x7FF8000000000000ull;
  PYOPS_HD static U bits(double x) { return f64_bits(x); }
  PYOPS_HD static double value(U u) { return bits_f64(u); }
};

template <typename T>
PYOPS_HD typename Layout<T>::U exponent(typename Layout<T>::U u) {
  using L = Layout<T>;
  return (u >> L::kMantBits) & L::kExpMax;
}

template <typename T>
PYOPS_HD bool is_nan(typename Layout<T>::U u) {
  using L = Layout<T>;
  return (u & ~L::kSign) > L::kInf;
}

// The integer subtracted from the magnitude sum: kOne - (bits(offset) - kOne).
// offset = 1 gives the plain PAM; offsets slightly above 1 de-bias its mean error.
template <typename T>
PYOPS_HD typename Layout<T>::U bias(T offset) {
  using L = Layout<T>;
  return L::kOne - (L::bits(offset) - L::kOne);
}

// Signed result of (sum - sub) as bits, saturating to signed zero below the
// normal range and to signed inf above it.  Unsigned compares cannot overflow:
// both sum and sub + kInf stay below 2^bits for finite operands.  Written as
// selects, not branches, so CPU loops vectorise and CUDA warps do not diverge.
template <typename T>
PYOPS_HD typename Layout<T>::U saturating_sub(typename Layout<T>::U sum, typename Layout<T>::U sub,
                                              typename Layout<T>::U sign) {
  using L = Layout<T>;
  const typename L::U min_normal = (typename L::U)1 << L::kMantBits;
  const typename L::U r = sum >= sub + L::kInf ? L::kInf : sum - sub;
  return sign | (sum < sub + min_normal ? (typename L::U)0 : r);
}

// The same for an already-signed wide magnitude (exp2 and gradient factors).
template <typename T>
PYOPS_HD typename Layout<T>::U saturate(typename Layout<T>::S m, typename Layout<T>::U sign) {
  using L = Layout<T>;
  const typename L::S min_normal = (typename L::S)1 << L::kMantBits;
  if (m < min_normal) return sign;
  if (m >= (typename L::S)L::kInf) return sign | L::kInf;
  return sign | (typename L::U)m;
}

// PAM(a, b) = bits^-1(A + B - bias) with the edge cases above, branch-free.
template <typename T>
PYOPS_HD typename Layout<T>::U mul_bits(typename Layout<T>::U a, typename Layout<T>::U b,
                                        typename Layout<T>::U bias_) {
  using L = Layout<T>;
  const typename L::U sign = (a ^ b) & L::kSign;
  const typename L::U ma = a & ~L::kSign, mb = b & ~L::kSign;
  const typename L::U ea = ma >> L::kMantBits, eb = mb >> L::kMantBits;
  const bool zero = (ea == 0) | (eb == 0);
  const bool special = (ea == L::kExpMax) | (eb == L::kExpMax);
  typename L::U r = saturating_sub<T>(ma + mb, bias_, sign);
  r = zero ? sign : r;
  r = special ? (zero ? L::kNaN : (sign | L::kInf)) : r;
  return (ma > L::kInf) | (mb > L::kInf) ? L::kNaN : r;
}

template <typename T>
PYOPS_HD T mul(T a, T b, typename Layout<T>::U bias_) {
  using L = Layout<T>;
  return L::value(mul_bits<T>(L::bits(a), L::bits(b), bias_));
}

// PAD(a, b) = bits^-1(A - B + kOne): division, over-estimating by up to 12.5%.
template <typename T>
PYOPS_HD T div(T a_, T b_) {
  using L = Layout<T>;
  const typename L::U a = L::bits(a_), b = L::bits(b_);
  const typename L::U sign = (a ^ b) & L::kSign;
  if (is_nan<T>(a) || is_nan<T>(b)) return L::value(L::kNaN);
  const typename L::U ea = exponent<T>(a), eb = exponent<T>(b);
  if (ea == L::kExpMax) return L::value(eb == L::kExpMax ? L::kNaN : (sign | L::kInf));
  if (eb == L::kExpMax) return L::value(sign);
  if (eb == 0) return L::value(ea == 0 ? L::kNaN : (sign | L::kInf));
  if (ea == 0) return L::value(sign);
  return L::value(saturating_sub<T>((a & ~L::kSign) + L::kOne, b & ~L::kSign, sign));
}

// pa_exp2(x) = 2^floor(x) (1 + x - floor(x)): the bits of 1 + frac(x) with
// floor(x) added to the exponent field.  No multiply anywhere.
template <typename T>
PYOPS_HD T exp2(T x) {
  using L = Layout<T>;
  constexpr T kMaxExp = (T)(L::kExpMax - 1 - (L::kOne >> L::kMantBits));  // 127 or 1023
  if (x != x) return x;
  if (x >= kMaxExp + 1) return L::value(L::kInf);
  if (x < -kMaxExp + 1) return (T)0;
  const T n = std::floor(x);
  const typename L::U one_plus_frac = L::bits((T)1 + (x - n));  // in [1, 2]: 2 when the fraction rounds up
  const typename L::S shifted = (typename L::S)one_plus_frac + ((typename L::S)n << L::kMantBits);
  return L::value(saturate<T>(shifted, 0));
}

// pa_log2(x) = exponent(x) + mantissa fraction(x): the inverse of exp2.
template <typename T>
PYOPS_HD T log2(T x_) {
  using L = Layout<T>;
  const typename L::U x = L::bits(x_);
  if (is_nan<T>(x)) return x_;
  const typename L::U e = exponent<T>(x);
  if (e == 0) return -L::value(L::kInf);  // zero or denormal
  if (x & L::kSign) return L::value(L::kNaN);
  if (e == L::kExpMax) return x_;
  const typename L::U mant = x & ((((typename L::U)1) << L::kMantBits) - 1);
  const T one_plus_frac = L::value(mant | L::kOne);
  const T unbiased = (T)((typename L::S)e - (typename L::S)(L::kOne >> L::kMantBits));
  return (one_plus_frac - (T)1) + unbiased;
}

// d PAM(a, b) / da = sign(b) 2^(E(PAM(a,b)) - E(a)): a power of two, so
// applying it is itself an exact PAM.  At a zero (or denormal) a it is the spec's
// sign(b) 2^(Eb + [ma + mb >= 1]) with ma = 0, the factor of a power-of-two a, so
// zero-initialised weights train.  Zero where b is zero/denormal or the result
// saturates; NaN where an input is not finite.
template <typename T>
PYOPS_HD T mul_grad_factor(T a_, T b_, typename Layout<T>::U bias_) {
  using L = Layout<T>;
  typename L::U a = L::bits(a_);
  const typename L::U b = L::bits(b_);
  typename L::U ea = exponent<T>(a);
  const typename L::U eb = exponent<T>(b);
  if (ea == L::kExpMax || eb == L::kExpMax) return L::value(L::kNaN);
  if (ea == 0 && eb != 0) {  // stand in 1.0: E(PAM(a, b)) - E(a) is the same for every power of two a
    a = L::kOne;
    ea = exponent<T>(a);
  }
  const typename L::U out = mul_bits<T>(a, b, bias_);
  const typename L::U eo = exponent<T>(out);
  if (ea == 0 || eb == 0 || eo == 0 || eo == L::kExpMax) return (T)0;
  const typename L::S e = (typename L::S)eo - (typename L::S)ea + (typename L::S)(L::kOne >> L::kMantBits);
  // Shift as unsigned: e may be negative (an underflowing factor saturates to zero).
  return L::value(saturate<T>((typename L::S)((typename L::U)e << L::kMantBits), b & L::kSign));
}

}  // namespace pam
}  // namespace pyops
