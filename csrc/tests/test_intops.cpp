// Torch-free unit tests of csrc/include/pyops/intops.h (run by ctest).
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <cstdio>

#include "pyops/intops.h"

namespace io = pyops::intops;
static int failures = 0;

#define EXPECT_EQ(got, want)                                                                          \
  do {                                                                                                \
    const long long g_ = (got), w_ = (want);                                                          \
    if (g_ != w_) {                                                                                   \
      std::printf("%s:%d: %s = %lld, expected %lld\n", __FILE__, __LINE__, #got, g_, w_);             \
      ++failures;                                                                                     \
    }                                                                                                 \
  } while (0)

int main() {
  // floor semantics for negatives
  EXPECT_EQ(io::floor_div(-7, 2), -4);
  EXPECT_EQ(io::floor_div(7, -2), -4);
  EXPECT_EQ(io::floor_div(-8, 2), -4);
  EXPECT_EQ(io::floor_div(7, 2), 3);
  // round half to even
  EXPECT_EQ(io::round_div(5, 2), 2);
  EXPECT_EQ(io::round_div(7, 2), 4);
  EXPECT_EQ(io::round_div(-5, 2), -2);
  EXPECT_EQ(io::round_div(-7, 2), -4);
  EXPECT_EQ(io::round_shift(6, 2), 2);   // 1.5 -> 2
  EXPECT_EQ(io::round_shift(10, 2), 2);  // 2.5 -> 2
  EXPECT_EQ(io::round_shift(-6, 2), -2);
  // exact floor sqrt on the edges
  const long long edges[] = {0, 1, 2, 3, 4, 15, 16, 17, 1LL << 62, (1LL << 62) - 1, 9223372036854775807LL};
  for (long long x : edges) {
    const long long r = io::isqrt(x);
    if (!((unsigned long long)r * r <= (unsigned long long)x &&
          (unsigned long long)(r + 1) * (r + 1) > (unsigned long long)x)) {
      std::printf("isqrt(%lld) = %lld\n", x, r);
      ++failures;
    }
  }
  EXPECT_EQ(io::isqrt(1LL << 62), 1LL << 31);
  // every x below 2^16, and around each power of two (where the first digit changes)
  for (long long x = 0; x < (1LL << 16); ++x) {
    const long long r = io::isqrt(x);
    if (!(r * r <= x && (r + 1) * (r + 1) > x)) {
      std::printf("isqrt(%lld) = %lld\n", x, r);
      ++failures;
    }
  }
  for (int p = 1; p < 63; ++p) {
    for (long long x : {(1LL << p) - 1, 1LL << p, (1LL << p) + 1}) {
      const unsigned long long r = (unsigned long long)io::isqrt(x);
      if (!(r * r <= (unsigned long long)x && (r + 1) * (r + 1) > (unsigned long long)x)) {
        std::printf("isqrt(%lld) = %llu\n", x, r);
        ++failures;
      }
    }
  }
  for (long long k = 1; k < 3037000499LL; k = k * 3 + 1) {
    EXPECT_EQ(io::isqrt(k * k), k);
    EXPECT_EQ(io::isqrt(k * k - 1), k - 1);
    EXPECT_EQ(io::isqrt(k * k + 1), k);
  }
  // Newton converges to floor sqrt for moderate values (I-ViT's range)
  EXPECT_EQ(io::newton_sqrt(1LL << 30), 1LL << 15);
  // LayerNorm's shift: kept while len * (maxdev >> s)^2 fits in int64, raised just enough otherwise
  EXPECT_EQ(io::layernorm_shift(30000, 768, 0), 0);
  EXPECT_EQ(io::layernorm_shift(30000, 768, 5), 5);
  for (long long len : {1LL, 3LL, 8LL, 768LL, 1LL << 20}) {
    for (long long dev : {0LL, 1LL << 20, (1LL << 31) + 12345, (1LL << 32) - 1}) {
      const int s = io::layernorm_shift(dev, len, 0);
      const long long y = dev >> s;
      if (y > 0 && y > INT64_MAX / len / y) {
        std::printf("layernorm_shift(%lld, %lld) = %d overflows\n", dev, len, s);
        ++failures;
      }
      if (s > 0 && (dev >> (s - 1)) <= INT64_MAX / len / (dev >> (s - 1))) {
        std::printf("layernorm_shift(%lld, %lld) = %d is not the smallest\n", dev, len, s);
        ++failures;
      }
    }
  }
  // i-exp at 0 is c 2^30; decreasing in |x|; shift-exp at 0 is -x0 2^n
  const long long x0 = -69, b = 270, c = 27921;  // s = 0.01
  EXPECT_EQ(io::ibert_exp(0, x0, b, c), c << 30);
  EXPECT_EQ(io::ibert_exp16(0, x0, b, c), 32767);
  long long prev = io::ibert_exp(0, x0, b, c);
  for (long long x = -1; x > -2500; --x) {
    const long long e = io::ibert_exp(x, x0, b, c);
    if (e > prev) {
      std::printf("i-exp not monotone at %lld\n", x);
      ++failures;
      break;
    }
    prev = e;
  }
  EXPECT_EQ(io::shift_exp(0, -100, 15), 100LL << 15);
  // GELU is 0 at 0 and requantize clamps
  EXPECT_EQ(io::ibert_gelu(0, -250, -69000, -5), 0);
  EXPECT_EQ(io::requantize(1000, 1LL << 30, 31, -128, 127), 127);
  EXPECT_EQ(io::requantize(-3, 1LL << 30, 31, -128, 127), -2);  // -1.5 -> -2
  if (failures) std::printf("%d failure(s)\n", failures);
  else std::printf("intops.h: all checks passed\n");
  return failures ? 1 : 0;
}
