// Torch-free unit tests of csrc/include/pyops/fewbit.h (run by ctest).
#include <cmath>
#include <cstdio>

#include "pyops/fewbit.h"

namespace fb = pyops::fewbit;

int main() {
  int failures = 0;
  const float borders[3] = {-1.0f, 0.0f, 1.0f};
  const float xs[6] = {-2.0f, -1.0f, -0.5f, 0.0f, 0.5f, 3.0f};
  const unsigned want[6] = {0, 0, 1, 1, 2, 3};  // a value on a border takes the lower piece
  for (int i = 0; i < 6; ++i)
    if (fb::code(xs[i], borders, 3) != want[i]) {
      std::printf("code(%g) = %u, expected %u\n", xs[i], fb::code(xs[i], borders, 3), want[i]);
      ++failures;
    }
  for (int bits = 1; bits <= 8; ++bits) {  // pack/unpack round trip; LSB-first layout
    unsigned codes[8];
    for (int j = 0; j < 8; ++j) codes[j] = (7u * j + 3u) & ((1u << bits) - 1u);
    const unsigned long long word = fb::pack8(codes, bits);
    if (bits < 8 && (word >> (8 * bits))) {
      std::printf("bits=%d: pack8 spills past %d bytes\n", bits, bits);
      ++failures;
    }
    if ((word & ((1u << bits) - 1u)) != codes[0]) ++failures;
    unsigned long long bytes = 0;
    for (int j = 0; j < 8; ++j) bytes |= (unsigned long long)codes[j] << (8 * j);
    if (fb::pack8_word(bytes, bits) != word) {
      std::printf("bits=%d: pack8_word differs from pack8\n", bits);
      ++failures;
    }
    for (int j = 0; j < 8; ++j)
      if (fb::unpack(word, j, bits) != codes[j]) {
        std::printf("bits=%d: element %d round-trips to %u, expected %u\n", bits, j, fb::unpack(word, j, bits),
                    codes[j]);
        ++failures;
      }
  }
  // activate() against the textbook definitions in double (the CUDA forward's formulas)
  using fb::Fn;
  struct Case { Fn fn; double (*f)(double); const char* name; };
  const Case cases[] = {
      {Fn::kGelu, [](double x) { return 0.5 * x * (1 + std::erf(x * std::sqrt(0.5))); }, "gelu"},
      {Fn::kGeluTanh, [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }, "gelu_tanh"},
      {Fn::kSilu, [](double x) { return x / (1 + std::exp(-x)); }, "silu"},
      {Fn::kElu, [](double x) { return x > 0 ? x : std::expm1(x); }, "elu"},
      {Fn::kSelu, [](double x) { return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * std::expm1(x)); }, "selu"},
      {Fn::kMish, [](double x) { return x * std::tanh(std::log1p(std::exp(x))); }, "mish"},
      {Fn::kSoftplus, [](double x) { return std::log1p(std::exp(x)); }, "softplus"},
      {Fn::kLogSigmoid, [](double x) { return -std::log1p(std::exp(-x)); }, "logsigmoid"},
      {Fn::kSoftsign, [](double x) { return x / (1 + std::fabs(x)); }, "softsign"},
      {Fn::kTanhshrink, [](double x) { return x - std::tanh(x); }, "tanhshrink"},
      {Fn::kHardswish, [](double x) { return x * std::fmin(std::fmax(x + 3, 0.0), 6.0) / 6; }, "hardswish"},
      {Fn::kRelu6, [](double x) { return std::fmin(std::fmax(x, 0.0), 6.0); }, "relu6"},
      {Fn::kHardsigmoid, [](double x) { return std::fmin(std::fmax(x + 3, 0.0), 6.0) / 6; }, "hardsigmoid"},
      {Fn::kSoftshrink, [](double x) { return x > 0.5 ? x - 0.5 : (x < -0.5 ? x + 0.5 : 0.0); }, "softshrink"},
      {Fn::kHardshrink, [](double x) { return std::fabs(x) > 0.5 ? x : 0.0; }, "hardshrink"},
  };
  for (const Case& k : cases)
    for (double x = -7.75; x <= 7.75; x += 0.5) {
      const double got = fb::activate(k.fn, (float)x), want = k.f(x);
      if (std::fabs(got - want) > 1e-6 * (1 + std::fabs(want))) {
        std::printf("activate(%s, %g) = %.9g, expected %.9g\n", k.name, x, got, want);
        ++failures;
      }
    }
  if (!std::isnan(fb::activate(Fn::kRelu, NAN)) || fb::activate(Fn::kRelu, -2.0f) != 0.0f) ++failures;
  if (failures) std::printf("%d failure(s)\n", failures);
  else std::printf("fewbit.h: all checks passed\n");
  return failures ? 1 : 0;
}
