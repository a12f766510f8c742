// Argument checks shared by the fewbit CPU kernels and the CUDA binding.
#pragma once
#include <ATen/ATen.h>

namespace pyops {
namespace fewbit_args {

inline bool is_float(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16 ||
         t.scalar_type() == at::kDouble;
}

inline void check_bits(const char* op, int64_t bits) {
  TORCH_CHECK(bits >= 1 && bits <= 8, "pyops.", op, ": argument 'bits' must be in [1, 8], got ", bits);
}

inline void check_encode(const char* op, const at::Tensor& x, const at::Tensor& borders, int64_t bits) {
  check_bits(op, bits);
  TORCH_CHECK(is_float(x), "pyops.", op, ": argument 'x' must be a floating tensor, got ", x.scalar_type());
  TORCH_CHECK(borders.dim() == 1 && borders.numel() == (int64_t(1) << bits) - 1, "pyops.", op,
              ": argument 'borders' must be 1-D with 2^bits - 1 = ", (int64_t(1) << bits) - 1, " entries, got ",
              borders.sizes());
}

inline void check_backward(const char* op, const at::Tensor& grad, const at::Tensor& codes, const at::Tensor& levels,
                           int64_t bits) {
  check_bits(op, bits);
  TORCH_CHECK(is_float(grad), "pyops.", op, ": argument 'grad' must be a floating tensor, got ", grad.scalar_type());
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.dim() == 1 && codes.numel() == (grad.numel() * bits + 7) / 8,
              "pyops.", op, ": argument 'codes' must be uint8 with ceil(n * bits / 8) = ", (grad.numel() * bits + 7) / 8,
              " entries, got ", codes.scalar_type(), " ", codes.sizes());
  TORCH_CHECK(levels.dim() == 1 && levels.numel() == (int64_t(1) << bits), "pyops.", op,
              ": argument 'levels' must be 1-D with 2^bits entries, got ", levels.sizes());
}

}  // namespace fewbit_args
}  // namespace pyops
