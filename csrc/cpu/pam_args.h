// Argument checks and dtype plumbing shared by the pam CPU kernels and the
// CUDA binding, so both devices reject bad input with the same messages.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace pyops {
namespace pam_args {

inline void check_dtype(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble || t.scalar_type() == at::kBFloat16,
              "pyops.", op, ": argument '", arg, "' must be float32, float64 or bfloat16, got ", t.scalar_type());
}

inline void check_pair(const char* op, const at::Tensor& a, const at::Tensor& b) {
  check_dtype(op, "a", a);
  check_dtype(op, "b", b);
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "pyops.", op, ": arguments 'a' and 'b' must share a dtype, got ",
              a.scalar_type(), " and ", b.scalar_type());
}

// Elementwise operands: dtypes and broadcastable shapes (torch's own error would not name the op).
inline void check_broadcast(const char* op, const at::Tensor& a, const at::Tensor& b) {
  check_pair(op, a, b);
  const int64_t na = a.dim(), nb = b.dim();
  for (int64_t i = 1; i <= std::min(na, nb); ++i) {
    const int64_t sa = a.size(na - i), sb = b.size(nb - i);
    TORCH_CHECK(sa == sb || sa == 1 || sb == 1, "pyops.", op, ": arguments 'a' and 'b' have shapes ", a.sizes(),
                " and ", b.sizes(), ", which do not broadcast");
  }
}

// The offset of the PAM rule: (0.5, 2) keeps 2^E(a) 2^E(b) offset a normal float and every
// backend's integer add the same (the public functions check it too).
inline void check_offset(const char* op, double offset) {
  TORCH_CHECK(std::isfinite(offset) && offset > 0.5 && offset < 2.0, "pyops.", op,
              ": argument 'offset' must be in (0.5, 2), got ", offset);
}

inline void check_bmm(const char* op, const at::Tensor& a, const at::Tensor& b) {
  check_pair(op, a, b);
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3, "pyops.", op, ": arguments 'a' and 'b' must be 3-D [batch, n, k] and ",
              "[batch, k, m], got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), "pyops.", op, ": shapes ", a.sizes(), " and ",
              b.sizes(), " do not multiply");
}

inline void check_grad(const char* op, const at::Tensor& g, const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(g.dim() == 3 && g.size(0) == a.size(0) && g.size(1) == a.size(1) && g.size(2) == b.size(2), "pyops.",
              op, ": argument 'grad' must have shape [", a.size(0), ", ", a.size(1), ", ", b.size(2), "], got ",
              g.sizes());
}

// bfloat16 runs the float32 kernels: bf16 values widen exactly, and with a
// bf16-rounded offset every PAM/PAD result has zero low 16 bits, so narrowing
// back is exact.  exp2/log2 round their fp32 result to bf16.
inline at::ScalarType compute_type(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? at::kFloat : t.scalar_type();
}

inline double offset_for(double offset, const at::Tensor& t) {
  if (t.scalar_type() != at::kBFloat16) return offset;
  return static_cast<float>(at::BFloat16(static_cast<float>(offset)));
}

// Both operands widened to the compute type and expanded to the broadcast shape.
inline std::pair<at::Tensor, at::Tensor> broadcast_pair(const at::Tensor& a, const at::Tensor& b) {
  const auto shape = at::infer_size(a.sizes(), b.sizes());
  const auto ct = compute_type(a);
  return {a.to(ct).expand(shape).contiguous(), b.to(ct).expand(shape).contiguous()};
}

}  // namespace pam_args
}  // namespace pyops
