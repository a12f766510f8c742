// Torch-free unit tests of csrc/include/pyops/pam.h (run by ctest).
#include <cmath>
#include <cstdio>
#include <limits>

#include "pyops/pam.h"

namespace pam = pyops::pam;
static int failures = 0;

template <typename T>
static bool same(T a, T b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return a == b && std::signbit(a) == std::signbit(b);
}

#define EXPECT_SAME(got, want)                                                                 \
  do {                                                                                         \
    auto g_ = (got);                                                                           \
    auto w_ = (want);                                                                          \
    if (!same(g_, w_)) {                                                                       \
      std::printf("%s:%d: %s = %.9g, expected %.9g\n", __FILE__, __LINE__, #got, (double)g_, \
                  (double)w_);                                                                 \
      ++failures;                                                                              \
    }                                                                                          \
  } while (0)

template <typename T>
static void known_values() {
  const auto one = pam::bias<T>((T)1);
  EXPECT_SAME(pam::mul<T>(1.5, 1.5, one), (T)2);
  EXPECT_SAME(pam::mul<T>(4.5, 3, one), (T)13);
  EXPECT_SAME(pam::mul<T>(-6, 3, one), (T)-16);
  EXPECT_SAME(pam::mul<T>(0.7, 1, one), (T)0.7);
  EXPECT_SAME(pam::mul<T>(0.7, 32, one), (T)0.7 * 32);
  EXPECT_SAME(pam::div<T>(13, 3), (T)4.5);
  EXPECT_SAME(pam::exp2<T>(2.5), (T)6);      // 2^2 * 1.5
  EXPECT_SAME(pam::exp2<T>(-0.5), (T)0.75);  // 2^-1 * 1.5
  EXPECT_SAME(pam::log2<T>(6), (T)2.5);
  EXPECT_SAME(pam::log2<T>(0.75), (T)-0.5);
}

template <typename T>
static void edge_cases() {
  using lim = std::numeric_limits<T>;
  const T inf = lim::infinity(), nan = lim::quiet_NaN(), den = lim::denorm_min(), big = lim::max();
  const auto one = pam::bias<T>((T)1);
  EXPECT_SAME(pam::mul<T>(0, 5, one), (T)0);
  EXPECT_SAME(pam::mul<T>(-0.0, 5, one), (T)-0.0);
  EXPECT_SAME(pam::mul<T>(den, -5, one), (T)-0.0);
  EXPECT_SAME(pam::mul<T>(lim::min(), lim::min(), one), (T)0);  // underflow
  EXPECT_SAME(pam::mul<T>(-big, big, one), -inf);                // overflow
  EXPECT_SAME(pam::mul<T>(inf, -2, one), -inf);
  EXPECT_SAME(pam::mul<T>(inf, 0, one), nan);
  EXPECT_SAME(pam::mul<T>(nan, 1, one), nan);
  EXPECT_SAME(pam::div<T>(1, 0), inf);
  EXPECT_SAME(pam::div<T>(0, 0), nan);
  EXPECT_SAME(pam::div<T>(-1, inf), (T)-0.0);
  EXPECT_SAME(pam::exp2<T>(-inf), (T)0);
  EXPECT_SAME(pam::exp2<T>(inf), inf);
  EXPECT_SAME(pam::exp2<T>(100000), inf);
  EXPECT_SAME(pam::log2<T>(0), -inf);
  EXPECT_SAME(pam::log2<T>(-1), nan);
  EXPECT_SAME(pam::log2<T>(inf), inf);
}

template <typename T>
static void properties() {
  const auto one = pam::bias<T>((T)1);
  // Never larger in magnitude than the true product; worst relative error 1/9.
  for (T a = 1; a < 2; a += (T)0.01)
    for (T b = 1; b < 2; b += (T)0.01) {
      const T p = pam::mul<T>(a, b, one);
      if (p > a * b || p < a * b * (T)(8.0 / 9.0) * (T)(1 - 1e-6)) {
        std::printf("bound violated at %g * %g: %g\n", (double)a, (double)b, (double)p);
        ++failures;
      }
      // exact derivative is a power of two: 1 or 2 on [1,2)^2
      const T d = pam::mul_grad_factor<T>(a, b, one);
      EXPECT_SAME(d, (a - 1) + (b - 1) >= 1 ? (T)2 : (T)1);
    }
  // log2 inverts exp2 up to the rounding of 1 + frac(x) (one ulp at 1).
  for (T x = -20; x < 20; x += (T)0.37) {
    const T back = pam::log2<T>(pam::exp2<T>(x));
    if (std::fabs(back - x) > 2 * std::numeric_limits<T>::epsilon() * (1 + std::fabs(x))) {
      std::printf("log2(exp2(%g)) = %g\n", (double)x, (double)back);
      ++failures;
    }
  }
}

int main() {
  known_values<float>();
  known_values<double>();
  edge_cases<float>();
  edge_cases<double>();
  properties<float>();
  properties<double>();
  if (failures) std::printf("%d failure(s)\n", failures);
  else std::printf("pam.h: all checks passed\n");
  return failures ? 1 : 0;
}
