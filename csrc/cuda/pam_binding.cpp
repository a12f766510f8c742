// TORCH_LIBRARY_IMPL(pyops, CUDA) for pam: argument checks and dtype plumbing
// shared with the CPU (csrc/cpu/pam_args.h), kernels in csrc/cuda/pam.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../cpu/pam_args.h"
#include "pam.cuh"

namespace pyops {
namespace {

using at::Tensor;
using namespace pam_args;
namespace k = pam_cuda;

Tensor binary(const char* op, k::Binary kind, const Tensor& a_, const Tensor& b_, double offset) {
  check_broadcast(op, a_, b_);
  const c10::cuda::CUDAGuard guard(a_.device());
  const auto [a, b] = broadcast_pair(a_, b_);
  Tensor out = at::empty_like(a);
  offset = offset_for(offset, a_);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pam", [&] {
    k::binary<scalar_t>(kind, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
                        out.mutable_data_ptr<scalar_t>(), out.numel(), (scalar_t)offset,
                        c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.to(a_.scalar_type());
}

Tensor mul(const Tensor& a, const Tensor& b, double offset, bool /*exact_grad: autograd only*/) {
  check_offset("pam_mul", offset);
  return binary("pam_mul", k::Binary::kMul, a, b, offset);
}
Tensor div(const Tensor& a, const Tensor& b) { return binary("pam_div", k::Binary::kDiv, a, b, 1.0); }
Tensor mul_grad_factor(const Tensor& a, const Tensor& b, double offset) {
  check_offset("pam_mul_grad_factor", offset);
  return binary("pam_mul_grad_factor", k::Binary::kMulGradFactor, a, b, offset);
}

Tensor unary(const char* op, k::Unary kind, const Tensor& x_) {
  check_dtype(op, "x", x_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.to(compute_type(x_)).contiguous();
  Tensor out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pam", [&] {
    k::unary<scalar_t>(kind, x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), x.numel(),
                       c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.to(x_.scalar_type());
}

Tensor exp2(const Tensor& x) { return unary("pam_exp2", k::Unary::kExp2, x); }
Tensor log2(const Tensor& x) { return unary("pam_log2", k::Unary::kLog2, x); }

Tensor bmm(const Tensor& a_, const Tensor& b_, double offset, bool /*exact_grad: autograd only*/) {
  check_bmm("pam_bmm", a_, b_);
  check_offset("pam_bmm", offset);
  const c10::cuda::CUDAGuard guard(a_.device());
  const auto ct = compute_type(a_);
  const Tensor a = a_.to(ct).contiguous(), b = b_.to(ct).contiguous();
  Tensor out = at::zeros({a.size(0), a.size(1), b.size(2)}, a.options());
  offset = offset_for(offset, a_);
  AT_DISPATCH_FLOATING_TYPES(ct, "pam_bmm", [&] {
    k::bmm<scalar_t>(a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                     a.size(0), a.size(1), a.size(2), b.size(2), (scalar_t)offset, c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.to(a_.scalar_type());
}

std::tuple<Tensor, Tensor> bmm_exact_grad(const Tensor& g_, const Tensor& a_, const Tensor& b_, double offset) {
  check_bmm("pam_bmm_exact_grad", a_, b_);
  check_offset("pam_bmm_exact_grad", offset);
  check_grad("pam_bmm_exact_grad", g_, a_, b_);
  const c10::cuda::CUDAGuard guard(a_.device());
  const auto ct = compute_type(a_);
  const Tensor g = g_.to(ct).contiguous(), a = a_.to(ct).contiguous(), b = b_.to(ct).contiguous();
  Tensor ga = at::empty_like(a), gb = at::empty_like(b);
  offset = offset_for(offset, a_);
  AT_DISPATCH_FLOATING_TYPES(ct, "pam_bmm_exact_grad", [&] {
    k::bmm_exact_grad<scalar_t>(g.const_data_ptr<scalar_t>(), a.const_data_ptr<scalar_t>(),
                                b.const_data_ptr<scalar_t>(), ga.mutable_data_ptr<scalar_t>(),
                                gb.mutable_data_ptr<scalar_t>(), a.size(0), a.size(1), a.size(2), b.size(2),
                                (scalar_t)offset, c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {ga.to(a_.scalar_type()), gb.to(b_.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CUDA, m) {
  m.impl("pam_mul", &mul);
  m.impl("pam_div", &div);
  m.impl("pam_mul_grad_factor", &mul_grad_factor);
  m.impl("pam_exp2", &exp2);
  m.impl("pam_log2", &log2);
  m.impl("pam_bmm", &bmm);
  m.impl("pam_bmm_exact_grad", &bmm_exact_grad);
}

}  // namespace pyops
