// TORCH_LIBRARY_IMPL(pyops, CUDA) for intops: checks shared with the CPU
// (csrc/cpu/intops_args.h), kernels in csrc/cuda/intops.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../cpu/intops_args.h"
#include "intops.cuh"

namespace pyops {
namespace {

using at::Tensor;
using namespace intops_args;
namespace k = intops_cuda;

#define PYOPS_DISPATCH_INT(TYPE, NAME, ...)                                                     \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kChar, __VA_ARGS__)                      \
                                     AT_DISPATCH_CASE(at::kShort, __VA_ARGS__)                 \
                                         AT_DISPATCH_CASE(at::kInt, __VA_ARGS__))

int64_t rows_of(const Tensor& x) { return x.size(-1) ? x.numel() / x.size(-1) : 0; }

Tensor softmax(const Tensor& x_, int64_t x0, int64_t b, int64_t c, int64_t output_bits, c10::string_view method) {
  check_rows("intops_softmax", x_);
  const bool ibert = method == "ibert";
  TORCH_CHECK(ibert || method == "shiftmax", "pyops.intops_softmax: argument 'method' must be 'ibert' or 'shiftmax'");
  check_softmax(x0, b, c, output_bits, ibert);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kInt));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_softmax", [&] {
    k::softmax<scalar_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<int32_t>(), rows_of(x), x.size(-1), x0,
                         b, c, 32 - (int)output_bits, ibert, c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

Tensor shiftgelu(const Tensor& x_, int64_t x0, int64_t output_bits) {
  check_rows("intops_shiftgelu", x_);
  check_shiftgelu(x0, output_bits);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kLong));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_shiftgelu", [&] {
    k::shiftgelu<scalar_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<int64_t>(), rows_of(x), x.size(-1),
                           x0, 32 - (int)output_bits, c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

Tensor layernorm(const Tensor& x_, const Tensor& bias_, int64_t shift, c10::string_view sqrt) {
  check_rows("intops_layernorm", x_);
  TORCH_CHECK(sqrt == "exact" || sqrt == "newton", "pyops.intops_layernorm: argument 'isqrt' must be 'exact' or 'newton'");
  TORCH_CHECK(shift >= 0 && shift < 32, "pyops.intops_layernorm: argument 'shift' must be in [0, 32), got ", shift);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous(), bias = channel_constant("intops_layernorm", "bias_int", bias_, x_.size(-1));
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kInt));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_layernorm", [&] {
    k::layernorm<scalar_t>(x.const_data_ptr<scalar_t>(), bias.const_data_ptr<int64_t>(),
                           out.mutable_data_ptr<int32_t>(), rows_of(x), x.size(-1), (int)shift, sqrt == "exact",
                           c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

Tensor gelu(const Tensor& x_, const Tensor& b_, const Tensor& c_, const Tensor& one_) {
  check_rows("intops_gelu", x_);
  const int64_t ch = x_.size(-1);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous(), b = channel_constant("intops_gelu", "b", b_, ch),
               c = channel_constant("intops_gelu", "c", c_, ch), one = channel_constant("intops_gelu", "one", one_, ch);
  check_gelu(b, c, one);
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kLong));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_gelu", [&] {
    k::gelu<scalar_t>(x.const_data_ptr<scalar_t>(), b.const_data_ptr<int64_t>(), c.const_data_ptr<int64_t>(),
                      one.const_data_ptr<int64_t>(), out.mutable_data_ptr<int64_t>(), x.numel(), ch,
                      c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

Tensor exp(const Tensor& x_, int64_t x0, int64_t b, int64_t c) {
  check_exp(x_, x0, b, c);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kLong));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_exp", [&] {
    k::exp<scalar_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<int64_t>(), x.numel(), x0, b, c,
                     c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

Tensor requantize(const Tensor& x_, const Tensor& m_, const Tensor& e_, int64_t bits) {
  check_rows("intops_requantize", x_);
  const int64_t ch = x_.size(-1);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous(), m = channel_constant("intops_requantize", "m", m_, ch),
               e = channel_constant("intops_requantize", "e", e_, ch);
  check_requantize(m, e, bits);
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kInt));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_requantize", [&] {
    k::requantize<scalar_t>(x.const_data_ptr<scalar_t>(), m.const_data_ptr<int64_t>(), e.const_data_ptr<int64_t>(),
                            out.mutable_data_ptr<int32_t>(), x.numel(), ch, -(int64_t(1) << (bits - 1)),
                            (int64_t(1) << (bits - 1)) - 1, c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

Tensor isqrt(const Tensor& x_) {
  TORCH_CHECK(x_.scalar_type() == at::kLong || x_.scalar_type() == at::kInt,
              "pyops.intops_isqrt: argument 'x' must be int32 or int64, got ", x_.scalar_type());
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.to(at::kLong).contiguous();
  Tensor out = at::empty_like(x);
  k::isqrt(x.const_data_ptr<int64_t>(), out.mutable_data_ptr<int64_t>(), x.numel(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CUDA, m) {
  m.impl("intops_exp", &exp);
  m.impl("intops_softmax", &softmax);
  m.impl("intops_gelu", &gelu);
  m.impl("intops_shiftgelu", &shiftgelu);
  m.impl("intops_layernorm", &layernorm);
  m.impl("intops_isqrt", &isqrt);
  m.impl("intops_requantize", &requantize);
}

}  // namespace pyops
