// wavehax scalar math shared by the CPU and CUDA kernels: reflect indexing, exact GELU,
// and the closed-form harmonic prior.
#pragma once
#include <cmath>

#include "pyops/common.h"

namespace pyops {
namespace wavehax {

constexpr double kPi = 3.14159265358979323846;

// Index i of a reflect-padded axis of length n (no edge repeat), valid for -n < i < 2n - 1.
PYOPS_HD int64_t reflect(int64_t i, int64_t n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); }

PYOPS_HD float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
PYOPS_HD double gelu(double x) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752)); }

// Number of harmonics k f0 <= sr / 2, with the product rounded to float32 as in the
// official code (`f0 * k <= sr / 2` on a float32 tensor); 0 when unvoiced.
// A double: F0 near 0 has more harmonics than an int holds (f0 = 1e-6 Hz: 1.2e10), and the
// float64 quotient is within one of the count, so one step each way settles it.  F0 below
// kMinF0 counts as kMinF0 (1.2e16 harmonics at 24 kHz), here and in the amplitude.
constexpr double kMinF0 = 1e-12;
PYOPS_HD double harmonic_count(float f0, int sample_rate) {
  if (!(f0 > 0.0f)) return 0.0;
  const float half = (float)(sample_rate / 2.0);
  double k = floor((double)half / fmax((double)f0, kMinF0));
  if ((float)((float)(k + 1) * f0) <= half) k += 1;
  if (k > 0 && (float)((float)k * f0) > half) k -= 1;
  return k;
}

// Amplitude of every harmonic: power_factor sqrt(2 / n), n = (sr / 2) / f0 (RMS ~ power_factor).
PYOPS_HD double harmonic_amplitude(float f0, int sample_rate, double power_factor) {
  return f0 > 0.0f ? power_factor * sqrt(2.0 / ((double)sample_rate / 2.0 / fmax((double)f0, kMinF0))) : 0.0;
}

// sum_{k=1..K} sin(k theta) = sin(K theta / 2) sin((K + 1) theta / 2) / sin(theta / 2), theta in [-pi, pi).
// Each sine keeps its relative accuracy down to tiny theta, so the ratio does too; only theta = 0
// (every sin(k theta) = 0) needs the limit.  (A first-order branch theta K (K + 1) / 2 below
// |sin(theta / 2)| < 1e-7 was wrong once K theta is not small: sub-Hz F0 has K ~ 1e8.)
PYOPS_HD double harmonic_sum(double theta, double k) {
  const double half = sin(0.5 * theta);
  if (half == 0.0) return 0.0;
  return sin(0.5 * k * theta) * sin(0.5 * (k + 1) * theta) / half;
}

// Phase (cycles, in [0, 1)) advanced by one sample of radius f0 / sr: wrapping keeps it exact in double.
PYOPS_HD double advance_phase(double cycles, double radius) {
  cycles += radius;
  return cycles - floor(cycles);
}

// theta = 2 pi cycles folded into [-pi, pi), where harmonic_sum is accurate.
PYOPS_HD double cycles_to_theta(double cycles) { return 2.0 * kPi * (cycles >= 0.5 ? cycles - 1.0 : cycles); }

}  // namespace wavehax
}  // namespace pyops
