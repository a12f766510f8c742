// Argument checks of pyops::gaunt_azimuthal, shared by the CPU kernel and the CUDA binding.
#pragma once
#include <ATen/ATen.h>

namespace pyops {
namespace gaunt_args {

inline void check_index(const at::Tensor& t, const char* name, int64_t n_triples, int64_t bound) {
  TORCH_CHECK(t.scalar_type() == at::kLong && t.dim() == 1 && t.size(0) == n_triples, "pyops.gaunt_azimuthal: argument '",
              name, "' must be a 1-D int64 tensor with one entry per triple (", n_triples, ")");
  if (n_triples) {
    const auto [lo, hi] = at::aminmax(t);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < bound, "pyops.gaunt_azimuthal: argument '", name,
                "' has entries outside [0, ", bound, ")");
  }
}

// a [rows_a, R], b [rows_b, R]; io/ia/ib/coef: one entry per triple.
inline void check(const at::Tensor& a, const at::Tensor& b, const at::Tensor& io, const at::Tensor& ia,
                  const at::Tensor& ib, const at::Tensor& coef, int64_t n_out) {
  TORCH_CHECK(a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble,
              "pyops.gaunt_azimuthal: argument 'a' must be float32 or float64, got ", a.scalar_type());
  TORCH_CHECK(b.scalar_type() == a.scalar_type() && coef.scalar_type() == a.scalar_type(),
              "pyops.gaunt_azimuthal: arguments 'b' and 'coef' must have the dtype of 'a' (", a.scalar_type(), ")");
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1),
              "pyops.gaunt_azimuthal: arguments 'a' and 'b' must be 2-D with equal row lengths, got ", a.sizes(),
              " and ", b.sizes());
  TORCH_CHECK(b.device() == a.device() && io.device() == a.device() && ia.device() == a.device() &&
                  ib.device() == a.device() && coef.device() == a.device(),
              "pyops.gaunt_azimuthal: all tensors must be on one device (", a.device(), ")");
  TORCH_CHECK(n_out >= 0, "pyops.gaunt_azimuthal: argument 'n_out' must be >= 0, got ", n_out);
  const int64_t n = coef.dim() == 1 ? coef.size(0) : -1;
  TORCH_CHECK(n >= 0, "pyops.gaunt_azimuthal: argument 'coef' must be 1-D");
  check_index(io, "io", n, n_out);
  check_index(ia, "ia", n, a.size(0));
  check_index(ib, "ib", n, b.size(0));
}

}  // namespace gaunt_args
}  // namespace pyops
