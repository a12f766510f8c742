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

Tensor azimuthal(const Tensor& a_, const Tensor& b_, const Tensor& io_, const Tensor& ia_, const Tensor& ib_,
                 const Tensor& coef_, int64_t n_out) {
  gaunt_args::check(a_, b_, io_, ia_, ib_, coef_, n_out);
  const c10::cuda::CUDAGuard guard(a_.device());
  const Tensor a = a_.contiguous(), b = b_.contiguous(), io = io_.contiguous(), ia = ia_.contiguous(),
               ib = ib_.contiguous(), coef = coef_.contiguous();
  Tensor out = at::zeros({n_out, a.size(1)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "gaunt_azimuthal", [&] {
    gaunt_cuda::azimuthal<scalar_t>(a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
                                    io.const_data_ptr<int64_t>(), ia.const_data_ptr<int64_t>(),
                                    ib.const_data_ptr<int64_t>(), coef.const_data_ptr<scalar_t>(), io.numel(),
                                    a.size(1), out.mutable_data_ptr<scalar_t>(), c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CUDA, m) { m.impl("gaunt_azimuthal", &azimuthal); }

}  // namespace pyops
