// Argument checks of pyops::gaunt_grid_product, shared by the CPU kernel and the CUDA binding
// (pyops/reference/gaunt.py: check_grid_product raises the same errors for the other backends).
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace pyops {
namespace gaunt_args {

inline int64_t lmax_of(const at::Tensor& x, const char* name) {
  const int64_t d = x.dim() == 2 ? x.size(1) : 0, r = (int64_t)std::lround(std::sqrt((double)d));
  TORCH_CHECK(x.dim() == 2 && r > 0 && r * r == d, "pyops.gaunt_grid_product: argument '", name,
              "' must be [N, (lmax + 1)^2], got ", x.sizes());
  return r - 1;
}

// Returns (lmax1, lmax2).
inline std::pair<int64_t, int64_t> check(const at::Tensor& x1, const at::Tensor& x2, const at::Tensor& table,
                                         const at::Tensor& weights, int64_t lmax_out) {
  TORCH_CHECK(x1.scalar_type() == at::kFloat || x1.scalar_type() == at::kDouble,
              "pyops.gaunt_grid_product: argument 'x1' must be float32 or float64, got ", x1.scalar_type());
  const std::pair<const char*, const at::Tensor*> others[] = {{"x2", &x2}, {"table", &table}, {"weights", &weights}};
  for (const auto& [name, t] : others) {
    TORCH_CHECK(t->scalar_type() == x1.scalar_type(), "pyops.gaunt_grid_product: argument '", name,
                "' must have the dtype of 'x1' (", x1.scalar_type(), "), got ", t->scalar_type());
    TORCH_CHECK(t->device() == x1.device(), "pyops.gaunt_grid_product: argument '", name,
                "' must be on the device of 'x1' (", x1.device(), "), got ", t->device());
  }
  const int64_t l1 = lmax_of(x1, "x1"), l2 = lmax_of(x2, "x2");
  TORCH_CHECK(x2.size(0) == x1.size(0), "pyops.gaunt_grid_product: argument 'x2' must have the rows of 'x1' (",
              x1.size(0), "), got ", x2.size(0));
  TORCH_CHECK(lmax_out >= 0, "pyops.gaunt_grid_product: argument 'lmax_out' must be >= 0, got ", lmax_out);
  const int64_t lmax = std::max({l1, l2, lmax_out}), need = (lmax + 1) * (lmax + 1);
  TORCH_CHECK(table.dim() == 2 && table.size(1) >= need, "pyops.gaunt_grid_product: argument 'table' must be [nodes, >= ",
              need, "], got ", table.sizes());
  TORCH_CHECK(weights.dim() == 1 && weights.size(0) == table.size(0),
              "pyops.gaunt_grid_product: argument 'weights' must be [nodes] = [", table.size(0), "], got ",
              weights.sizes());
  return {l1, l2};
}

}  // namespace gaunt_args
}  // namespace pyops
