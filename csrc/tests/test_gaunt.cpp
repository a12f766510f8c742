// Torch-free unit test of csrc/include/pyops/gaunt.h (run by ctest): one node pair of the grid
// product against its definition, sum over z = +-z0 of p_z[i3] int f1_z f2_z A_m3 d alpha with
// f_z(alpha) = sum_i x[i] p_z[i] A_m(alpha), p_-z[i] = (-1)^(l+m) p_z[i] and the azimuthal integral
// by a uniform rule with more points than the integrand's degree (exact).  Arbitrary table values:
// the identity needs only the parity relation.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "pyops/gaunt.h"

namespace {

double basis(int m, double alpha) {  // e3nn's real azimuthal factor A_m
  return m < 0 ? std::sqrt(2.0) * std::sin(-m * alpha) : m == 0 ? 1.0 : std::sqrt(2.0) * std::cos(m * alpha);
}

int degree(int i) { return (int)std::sqrt((double)i + 0.5); }  // e3nn position i = l^2 + l + m
int order(int i) { return i - degree(i) * (degree(i) + 1); }

int check(int L1, int L2, int lo) {
  const int Lt = std::max({L1, L2, lo}), D1 = (L1 + 1) * (L1 + 1), D2 = (L2 + 1) * (L2 + 1), Do = (lo + 1) * (lo + 1);
  std::vector<double> p((Lt + 1) * (Lt + 1)), x1(D1), x2(D2);
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::sin(1.0 + 0.7 * i);
  for (int i = 0; i < D1; ++i) x1[i] = std::cos(0.3 * i) - 0.2;
  for (int i = 0; i < D2; ++i) x2[i] = 0.5 - std::sin(0.9 * i);
  const double w = 0.37;
  std::vector<double> got(Do, 0.0), want(Do, 0.0), scratch(pyops::gaunt::scratch_size(L1, L2, lo));
  pyops::gaunt::node_pair<double, double>(x1.data(), L1, x2.data(), L2, lo, p.data(), w, scratch.data(), got.data());

  const int n = L1 + L2 + lo + 1;
  for (int side = 0; side < 2; ++side) {
    auto pz = [&](int i) {  // the table value at +z0 or -z0
      const int l = degree(i), m = order(i);
      return side && (l + std::abs(m)) % 2 ? -p[i] : p[i];
    };
    for (int j = 0; j < n; ++j) {
      const double alpha = 2 * M_PI * j / n;
      double f1 = 0, f2 = 0;
      for (int i = 0; i < D1; ++i) f1 += x1[i] * pz(i) * basis(order(i), alpha);
      for (int i = 0; i < D2; ++i) f2 += x2[i] * pz(i) * basis(order(i), alpha);
      for (int i = 0; i < Do; ++i) want[i] += w * pz(i) * f1 * f2 * basis(order(i), alpha) * (2 * M_PI / n);
    }
  }
  int failures = 0;
  for (int i = 0; i < Do; ++i)
    if (std::fabs(got[i] - want[i]) > 1e-11 * (1 + std::fabs(want[i]))) {
      if (failures++ < 5) std::printf("L1 %d L2 %d lo %d: out[%d] = %.15g, expected %.15g\n", L1, L2, lo, i, got[i], want[i]);
    }
  return failures;
}

}  // namespace

int main() {
  int failures = 0;
  const int cases[][3] = {{0, 0, 0}, {1, 1, 2}, {2, 3, 4}, {3, 2, 5}, {4, 4, 1}, {2, 1, 6}, {5, 5, 10}};
  for (const auto& c : cases) failures += check(c[0], c[1], c[2]);
  std::printf(failures ? "test_gaunt: %d failures\n" : "test_gaunt: ok\n", failures);
  return failures != 0;
}
