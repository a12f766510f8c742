// TORCH_LIBRARY_IMPL(pyops, CUDA) for wavehax: checks shared with the CPU
// (csrc/cpu/wavehax_args.h), kernels in csrc/cuda/wavehax.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../cpu/wavehax_args.h"
#include "wavehax.cuh"

namespace pyops {
namespace {

using at::Tensor;
namespace k = wavehax_cuda;

Tensor convnext2d_block(const Tensor& x_, const Tensor& dw_weight, const Tensor& norm_weight, const Tensor& norm_bias,
                        const Tensor& pw1_weight, const Tensor& pw1_bias, const Tensor& pw2_weight,
                        const Tensor& pw2_bias, const Tensor& layer_scale, double eps, bool framewise) {
  wavehax_args::check_block("wavehax_convnext2d_block", x_, dw_weight, norm_weight, norm_bias, pw1_weight, pw1_bias,
                            pw2_weight, pw2_bias, layer_scale);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous();
  Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  if (x.numel() == 0) return out;
  const int64_t B = x.size(0), F = x.size(1), Tn = x.size(2), C = x.size(3), H = pw1_weight.size(0);
  const int64_t KF = dw_weight.size(2), KT = dw_weight.size(3);
  const Tensor dw = dw_weight.reshape({C, KF * KT}).t().contiguous();
  const Tensor w1t = pw1_weight.t().contiguous(), b1 = pw1_bias.contiguous();
  const Tensor w2t = (pw2_weight * layer_scale.unsqueeze(1)).t().contiguous();
  const Tensor b2 = (pw2_bias * layer_scale).contiguous();
  const Tensor gamma = norm_weight.contiguous(), beta = norm_bias.contiguous();
  Tensor h = at::empty_like(x, at::MemoryFormat::Contiguous);
  Tensor stats = at::empty({framewise ? B * Tn : B, 2}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "wavehax_convnext2d_block", [&] {
    k::convnext2d_block<scalar_t>(x.const_data_ptr<scalar_t>(), dw.const_data_ptr<scalar_t>(),
                                  gamma.const_data_ptr<scalar_t>(), beta.const_data_ptr<scalar_t>(),
                                  w1t.const_data_ptr<scalar_t>(), b1.const_data_ptr<scalar_t>(),
                                  w2t.const_data_ptr<scalar_t>(), b2.const_data_ptr<scalar_t>(), eps, framewise, B, F,
                                  Tn, C, H, (int)KF, (int)KT, h.mutable_data_ptr<scalar_t>(), stats.mutable_data_ptr<double>(),
                                  out.mutable_data_ptr<scalar_t>(), c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

Tensor harmonic_prior(const Tensor& f0_, const Tensor& noise_, const Tensor& phase0, int64_t hop, int64_t sample_rate,
                      double power_factor) {
  wavehax_args::check_prior("wavehax_harmonic_prior", f0_, noise_, phase0, hop, sample_rate, power_factor);
  const c10::cuda::CUDAGuard guard(f0_.device());
  const int64_t B = f0_.size(0), N = f0_.size(2);
  const Tensor f0 = f0_.reshape({B, N}).contiguous(), noise = noise_.contiguous();
  Tensor out = at::empty_like(noise, at::MemoryFormat::Contiguous);
  if (noise.numel() == 0) return out;
  // cycles before each frame's first sample: an exclusive float64 cumsum over frames, on the device
  const Tensor radius = f0.to(at::kDouble) / (double)sample_rate;
  Tensor start = phase0.reshape({B, 1}) + (double)hop * (at::cumsum(radius, 1) - radius);
  start = (start - at::floor(start)).contiguous();
  k::harmonic_prior(f0.const_data_ptr<float>(), noise.const_data_ptr<float>(), start.const_data_ptr<double>(),
                    out.mutable_data_ptr<float>(), B, N, hop, (int)sample_rate, power_factor,
                    c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CUDA, m) {
  m.impl("wavehax_convnext2d_block", &convnext2d_block);
  m.impl("wavehax_harmonic_prior", &harmonic_prior);
}

}  // namespace pyops
