// Argument checks shared by the intops CPU kernels and the CUDA binding.
#pragma once
#include <ATen/ATen.h>

#include "pyops/intops.h"

namespace pyops {
namespace intops_args {

inline void check_int(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kChar || t.scalar_type() == at::kShort || t.scalar_type() == at::kInt,
              "pyops.", op, ": argument '", arg, "' must be int8, int16 or int32, got ", t.scalar_type());
}

inline void check_rows(const char* op, const at::Tensor& x) {
  check_int(op, "x", x);
  TORCH_CHECK(x.dim() >= 1, "pyops.", op, ": argument 'x' must have at least one dimension");
}

// Per-channel int64 constants of shape [C] or [1], expanded to [C].
inline at::Tensor channel_constant(const char* op, const char* arg, const at::Tensor& t, int64_t channels) {
  TORCH_CHECK(t.scalar_type() == at::kLong && t.dim() == 1 && (t.size(0) == channels || t.size(0) == 1), "pyops.",
              op, ": argument '", arg, "' must be int64 of shape [", channels, "] or [1], got ", t.scalar_type(), " ",
              t.sizes());
  return t.expand({channels}).contiguous();
}

// a torch-free check's message (csrc/include/pyops/intops.h), raised with the op's name
inline void check_domain(const char* op, const char* error) { TORCH_CHECK(!error, "pyops.", op, ": ", error); }

inline void check_softmax(int64_t x0, int64_t b, int64_t c, int64_t output_bits, bool ibert) {
  check_domain("intops_softmax", intops::output_bits_error(output_bits));
  check_domain("intops_softmax", ibert ? intops::ibert_constants_error(x0, b, c) : intops::shift_x0_error(x0, 15));
}

inline void check_shiftgelu(int64_t x0, int64_t output_bits) {
  check_domain("intops_shiftgelu", intops::output_bits_error(output_bits));
  check_domain("intops_shiftgelu", intops::shift_x0_error(x0, 23));
}

// i-exp is defined for x <= 0 (x - rowmax); a positive x would shift past 64 bits
inline void check_exp(const at::Tensor& x, int64_t x0, int64_t b, int64_t c) {
  check_int("intops_exp", "x", x);
  check_domain("intops_exp", intops::ibert_constants_error(x0, b, c));
  TORCH_CHECK(x.numel() == 0 || (x <= 0).all().item<bool>(), "pyops.intops_exp: argument 'x' must be <= 0 (x - rowmax)");
}

// m [C] and e [C] (expanded by channel_constant): the range requantize() is exact on
inline void check_requantize(const at::Tensor& m, const at::Tensor& e, int64_t bits) {
  TORCH_CHECK(bits >= 2 && bits <= 32, "pyops.intops_requantize: argument 'bits' must be in [2, 32], got ", bits);
  TORCH_CHECK(m.numel() == 0 || at::logical_and(m >= 0, m <= (int64_t(1) << 31)).all().item<bool>(),
              "pyops.intops_requantize: argument 'm' must be in [0, 2^31]");
  TORCH_CHECK(e.numel() == 0 || at::logical_and(e >= -64, e <= 64).all().item<bool>(),
              "pyops.intops_requantize: argument 'e' must be in [-64, 64]");
}

// b [C], c [C], one [C] (expanded): out = x ((y >> 14) + one) with y = +-(m^2 + c), m in [b, 0].
// b < 0 keeps the clamp's sign (the CPU table relies on it) and m^2 < 2^62; |c|, |one| < 2^62 keep
// y and (y >> 14) + one in int64; the factor's extremes (y = +-c, +-(b^2 + c)) within 2^31 keep
// x times it in int64 for any int32 x.
inline void check_gelu(const at::Tensor& b, const at::Tensor& c, const at::Tensor& one) {
  if (b.numel() == 0) return;
  constexpr int64_t k31 = int64_t(1) << 31, k62 = int64_t(1) << 62;
  TORCH_CHECK(at::logical_and(b > -k31, b < 0).all().item<bool>(), "pyops.intops_gelu: argument 'b' must be in (-2^31, 0)");
  TORCH_CHECK(at::logical_and(c > -k62, c < k62).all().item<bool>(), "pyops.intops_gelu: argument 'c' must be in (-2^62, 2^62)");
  TORCH_CHECK(at::logical_and(one > -k62, one < k62).all().item<bool>(),
              "pyops.intops_gelu: argument 'one' must be in (-2^62, 2^62)");
  const at::Tensor top = b * b + c;
  at::Tensor worst = at::zeros_like(one);
  for (const at::Tensor& y : {c, top, -c, -top}) worst = at::maximum(worst, (at::floor_divide(y, 1 << 14) + one).abs());
  TORCH_CHECK((worst <= k31).all().item<bool>(), "pyops.intops_gelu: constants 'b', 'c' and 'one' must keep ",
              "|(y >> 14) + one| <= 2^31, so that x times it fits int64");
}

}  // namespace intops_args
}  // namespace pyops
