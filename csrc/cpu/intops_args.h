// Argument checks shared by the intops CPU kernels and the CUDA binding.
#pragma once
#include <ATen/ATen.h>

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

inline void check_softmax(int64_t x0, int64_t c, int64_t output_bits, bool ibert) {
  TORCH_CHECK(x0 < 0 && (!ibert || (c > 0 && c < (int64_t(1) << 32))),
              "pyops.intops_softmax: constants out of range (x0 < 0, 0 < c < 2^32): the scale is out of range");
  TORCH_CHECK(output_bits >= 2 && output_bits <= 16, "pyops.intops_softmax: argument 'output_bits' must be in [2, 16]");
}

}  // namespace intops_args
}  // namespace pyops
