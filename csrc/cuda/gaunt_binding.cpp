// TORCH_LIBRARY_IMPL(pyops, CUDA) for gaunt: argument checks shared with the CPU
// (csrc/cpu/gaunt_args.h), kernel in csrc/cuda/gaunt.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../cpu/gaunt_args.h"
#include "gaunt.cuh"

namespace pyops {
namespace {

using at::Tensor;

Tensor grid_product(const Tensor& x1_, const Tensor& x2_, const Tensor& table_, const Tensor& weights_,
                    int64_t lmax_out) {
  const auto [l1, l2] = gaunt_args::check(x1_, x2_, table_, weights_, lmax_out);
  TORCH_CHECK(l1 <= gaunt_cuda::kMaxL && l2 <= gaunt_cuda::kMaxL && lmax_out <= 2 * gaunt_cuda::kMaxL,
              "pyops.gaunt_grid_product: arguments 'x1', 'x2' and 'lmax_out' are limited to lmax ", gaunt_cuda::kMaxL,
              " (output ", 2 * gaunt_cuda::kMaxL, ") on CUDA, got ", l1, ", ", l2, " and ", lmax_out);
  const c10::cuda::CUDAGuard guard(x1_.device());
  const Tensor x1 = x1_.contiguous(), x2 = x2_.contiguous(), table = table_.contiguous(),
               weights = weights_.contiguous();
  const int64_t N = x1.size(0), K = table.size(0);
  const int64_t S = gaunt_cuda::node_pair_splits(N, K);
  Tensor partial = at::zeros({S, N, (lmax_out + 1) * (lmax_out + 1)}, x1.options());
  AT_DISPATCH_FLOATING_TYPES(x1.scalar_type(), "gaunt_grid_product", [&] {
    gaunt_cuda::grid_product<scalar_t>(x1.const_data_ptr<scalar_t>(), (int)l1, x2.const_data_ptr<scalar_t>(), (int)l2,
                                       (int)lmax_out, table.const_data_ptr<scalar_t>(), table.size(1),
                                       weights.const_data_ptr<scalar_t>(), K, N, S,
                                       partial.mutable_data_ptr<scalar_t>(), c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return S == 1 ? partial[0] : partial.sum(0);
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CUDA, m) { m.impl("gaunt_grid_product", &grid_product); }

}  // namespace pyops
