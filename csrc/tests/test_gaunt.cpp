// Torch-free unit test of csrc/include/pyops/gaunt.h (run by ctest): the azimuthal product of
// one column against a plain triple loop, for sorted and unsorted triple lists.
#include <cmath>
#include <cstdio>
#include <vector>

#include "pyops/gaunt.h"

int main() {
  const int64_t R = 3, rows_a = 3, rows_b = 2, rows_out = 4;
  std::vector<double> a(rows_a * R), b(rows_b * R);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5 + 0.25 * i;
  for (size_t i = 0; i < b.size(); ++i) b[i] = 1.0 - 0.125 * i;
  // sorted by output row, then the same triples shuffled (runs broken up)
  const std::vector<std::vector<int64_t>> lists[2] = {
      {{0, 0, 1, 3, 3, 3}, {0, 2, 1, 0, 1, 2}, {1, 0, 1, 0, 1, 1}},
      {{3, 0, 3, 1, 0, 3}, {0, 0, 2, 1, 2, 1}, {0, 1, 1, 1, 0, 1}},
  };
  const std::vector<double> coefs[2] = {{1.5, -2.0, 0.5, 3.0, 1.0, -1.0}, {3.0, 1.5, -1.0, 0.5, -2.0, 1.0}};
  int failures = 0;
  for (int k = 0; k < 2; ++k) {
    const auto &io = lists[k][0], &ia = lists[k][1], &ib = lists[k][2];
    std::vector<double> got(rows_out * R, 0.0), want(rows_out * R, 0.0);
    for (int64_t r = 0; r < R; ++r)
      pyops::gaunt::azimuthal_column(a.data(), b.data(), io.data(), ia.data(), ib.data(), coefs[k].data(),
                                     (int64_t)io.size(), r, R, got.data());
    for (size_t t = 0; t < io.size(); ++t)
      for (int64_t r = 0; r < R; ++r) want[io[t] * R + r] += coefs[k][t] * a[ia[t] * R + r] * b[ib[t] * R + r];
    for (size_t i = 0; i < want.size(); ++i)
      if (std::fabs(got[i] - want[i]) > 1e-12) {
        std::printf("list %d: out[%zu] = %g, expected %g\n", k, i, got[i], want[i]);
        ++failures;
      }
  }
  std::printf(failures ? "test_gaunt: %d failures\n" : "test_gaunt: ok\n", failures);
  return failures != 0;
}
