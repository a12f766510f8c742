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

// m [C] and e [C] (expanded by channel_constant): the range requantize() is exact on.  The checks
// loop over host copies (the constants are C values; a CUDA caller's copy is one small transfer).
inline void check_requantize(const at::Tensor& m, const at::Tensor& e, int64_t bits) {
  TORCH_CHECK(bits >= 2 && bits <= 32, "pyops.intops_requantize: argument 'bits' must be in [2, 32], got ", bits);
  const at::Tensor mh = m.cpu(), eh = e.cpu();
  const int64_t *pm = mh.const_data_ptr<int64_t>(), *pe = eh.const_data_ptr<int64_t>();
  check_domain("intops_requantize", intops::requantize_constants_error(pm, pe, m.numel()));
}

// b [C], c [C], one [C] (expanded by channel_constant): intops::gelu_constants_error.
inline void check_gelu(const at::Tensor& b, const at::Tensor& c, const at::Tensor& one) {
  const at::Tensor bh = b.cpu(), ch = c.cpu(), oh = one.cpu();
  const int64_t *pb = bh.const_data_ptr<int64_t>(), *pc = ch.const_data_ptr<int64_t>(),
                *pone = oh.const_data_ptr<int64_t>();
  check_domain("intops_gelu", intops::gelu_constants_error(pb, pc, pone, b.numel()));
}

}  // namespace intops_args
}  // namespace pyops
