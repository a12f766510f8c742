// TORCH_LIBRARY_IMPL(pyops, CUDA) for fewbit: checks shared with the CPU
// (csrc/cpu/fewbit_args.h), kernels in csrc/cuda/fewbit.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../cpu/fewbit_args.h"
#include "fewbit.cuh"

namespace pyops {
namespace {

using at::Tensor;
using namespace fewbit_args;
namespace k = fewbit_cuda;

k::Kind kind_of(const Tensor& t) {
  switch (t.scalar_type()) {
    case at::kDouble: return k::Kind::kDouble;
    case at::kHalf: return k::Kind::kHalf;
    case at::kBFloat16: return k::Kind::kBFloat16;
    default: return k::Kind::kFloat;
  }
}

Tensor encode(const Tensor& x_, const Tensor& borders_, int64_t bits) {
  check_encode("fewbit_encode", x_, borders_, bits);
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous(), borders = borders_.to(at::kFloat).contiguous();
  const int64_t n = x.numel();
  Tensor out = at::empty({(n * bits + 7) / 8}, x.options().dtype(at::kByte));
  k::encode(kind_of(x), x.const_data_ptr(), borders.const_data_ptr<float>(), (int)borders.numel(),
            out.mutable_data_ptr<uint8_t>(), n, (int)bits, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<Tensor, Tensor> forward(const Tensor& x_, const Tensor& borders_, int64_t bits, c10::string_view fn_name) {
  check_encode("fewbit_forward", x_, borders_, bits);
  const fewbit::Fn fn = fn_of("fewbit_forward", fn_name);
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // x may require grad: torch's *_out must not see it
  const c10::cuda::CUDAGuard guard(x_.device());
  const Tensor x = x_.contiguous(), borders = borders_.to(at::kFloat).contiguous();
  if (x.scalar_type() == at::kDouble) {  // the kernel computes f in float: keep torch's float64 activation
    Tensor y = at::empty_like(x);
    torch_activation(fn, x, y);
    return {y, encode(x, borders, bits)};
  }
  const int64_t n = x.numel();
  Tensor y = at::empty_like(x);
  Tensor out = at::empty({(n * bits + 7) / 8}, x.options().dtype(at::kByte));
  k::forward(kind_of(x), x.const_data_ptr(), y.mutable_data_ptr(), borders.const_data_ptr<float>(),
             (int)borders.numel(), out.mutable_data_ptr<uint8_t>(), n, (int)bits, (int)fn,
             c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, out};
}

Tensor backward(const Tensor& grad_, const Tensor& codes_, const Tensor& levels_, int64_t bits) {
  check_backward("fewbit_backward", grad_, codes_, levels_, bits);
  const c10::cuda::CUDAGuard guard(grad_.device());
  const Tensor grad = grad_.contiguous(), codes = codes_.contiguous(), levels = levels_.to(at::kFloat).contiguous();
  Tensor out = at::empty_like(grad);
  k::backward(kind_of(grad), grad.const_data_ptr(), codes.const_data_ptr<uint8_t>(), levels.const_data_ptr<float>(),
              out.mutable_data_ptr(), grad.numel(), (int)bits, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CUDA, m) {
  m.impl("fewbit_encode", &encode);
  m.impl("fewbit_forward", &forward);
  m.impl("fewbit_backward", &backward);
}

}  // namespace pyops
