// Torch-free unit tests of csrc/include/pyops/wavehax.h (run by ctest).
#include <cmath>
#include <cstdio>
#include <initializer_list>

#include "pyops/wavehax.h"

namespace wh = pyops::wavehax;

int main() {
  int failures = 0;
  const long long want_reflect[7] = {3, 2, 1, 0, 1, 2, 3};  // reflect(i - 3, 5), i = 0..6
  for (int i = 0; i < 7; ++i)
    if (wh::reflect(i - 3, 5) != want_reflect[i]) ++failures, std::printf("reflect(%d, 5)\n", i - 3);
  if (wh::reflect(5, 5) != 3 || wh::reflect(6, 5) != 2) ++failures, std::printf("reflect past the end\n");
  // harmonic counts: k f0 <= sr / 2, 0 unvoiced
  if (wh::harmonic_count(2000.0f, 24000) != 6 || wh::harmonic_count(70.0f, 24000) != 171 ||
      wh::harmonic_count(0.0f, 24000) != 0 || wh::harmonic_count(12000.0f, 24000) != 1)
    ++failures, std::printf("harmonic_count\n");
  // closed form vs the explicit sum, including theta near 0 and near -pi
  const double thetas[6] = {1e-9, -3e-8, 0.3, -2.5, 3.14159, -3.14159265};
  for (double t : thetas)
    for (int k : {1, 6, 171}) {
      double s = 0;
      for (int j = 1; j <= k; ++j) s += std::sin(j * t);
      if (std::fabs(wh::harmonic_sum(t, k) - s) > 1e-9 * k)
        ++failures, std::printf("harmonic_sum(%g, %d) = %.12g, explicit %.12g\n", t, k, wh::harmonic_sum(t, k), s);
    }
  // phase wraps into [0, 1) and folds to [-pi, pi)
  const double c = wh::advance_phase(0.75, 0.5);
  if (std::fabs(c - 0.25) > 1e-15 || std::fabs(wh::cycles_to_theta(0.75) + 0.5 * wh::kPi) > 1e-15)
    ++failures, std::printf("phase wrap\n");
  if (std::fabs(wh::gelu(1.0) - 0.8413447460685429) > 1e-15 || wh::gelu(0.0f) != 0.0f)
    ++failures, std::printf("gelu\n");
  std::printf("%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
