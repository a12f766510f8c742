// Argument checks and the built-in activations' torch kernels, shared by the
// fewbit CPU kernels and the CUDA binding.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "pyops/fewbit.h"

namespace pyops {
namespace fewbit_args {

inline bool is_float(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16 ||
         t.scalar_type() == at::kDouble;
}

inline void check_bits(const char* op, int64_t bits) {
  TORCH_CHECK(bits >= 1 && bits <= 8, "pyops.", op, ": argument 'bits' must be in [1, 8], got ", bits);
}

inline void check_encode(const char* op, const at::Tensor& x, const at::Tensor& borders, int64_t bits) {
  check_bits(op, bits);
  TORCH_CHECK(is_float(x), "pyops.", op, ": argument 'x' must be a floating tensor, got ", x.scalar_type());
  TORCH_CHECK(borders.dim() == 1 && borders.numel() == (int64_t(1) << bits) - 1, "pyops.", op,
              ": argument 'borders' must be 1-D with 2^bits - 1 = ", (int64_t(1) << bits) - 1, " entries, got ",
              borders.sizes());
}

inline void check_backward(const char* op, const at::Tensor& grad, const at::Tensor& codes, const at::Tensor& levels,
                           int64_t bits) {
  check_bits(op, bits);
  TORCH_CHECK(is_float(grad), "pyops.", op, ": argument 'grad' must be a floating tensor, got ", grad.scalar_type());
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.dim() == 1 && codes.numel() == (grad.numel() * bits + 7) / 8,
              "pyops.", op, ": argument 'codes' must be uint8 with ceil(n * bits / 8) = ", (grad.numel() * bits + 7) / 8,
              " entries, got ", codes.scalar_type(), " ", codes.sizes());
  TORCH_CHECK(levels.dim() == 1 && levels.numel() == (int64_t(1) << bits), "pyops.", op,
              ": argument 'levels' must be 1-D with 2^bits entries, got ", levels.sizes());
}

// pyops.fewbit.FUNCTIONS' names, in fewbit::Fn order.
constexpr const char* kFnNames[] = {
    "gelu", "gelu_tanh", "silu", "elu", "celu", "selu", "mish", "softplus", "tanh", "sigmoid", "logsigmoid",
    "softsign", "tanhshrink", "hardswish", "relu", "leaky_relu", "relu6", "hardtanh", "hardsigmoid",
    "hardshrink", "softshrink", "threshold"};
static_assert(sizeof(kFnNames) / sizeof(kFnNames[0]) == (size_t)fewbit::Fn::kCount, "one name per Fn");

inline fewbit::Fn fn_of(const char* op, c10::string_view name) {
  for (int i = 0; i < (int)fewbit::Fn::kCount; ++i)
    if (name == kFnNames[i]) return (fewbit::Fn)i;
  TORCH_CHECK(false, "pyops.", op, ": argument 'fn' must be a built-in activation name, got '", std::string(name), "'");
}

// y = f(x) through torch's own kernel, as torch.nn.functional computes it with
// its default arguments (so the result is bit-exact with the native activation).
inline void torch_activation(fewbit::Fn fn, const at::Tensor& x, at::Tensor& y) {
  using fewbit::Fn;
  switch (fn) {
    case Fn::kGelu: at::gelu_out(y, x, "none"); break;
    case Fn::kGeluTanh: at::gelu_out(y, x, "tanh"); break;
    case Fn::kSilu: at::silu_out(y, x); break;
    case Fn::kElu:
    case Fn::kCelu: at::elu_out(y, x, 1.0, 1.0, 1.0); break;  // celu(alpha=1) = elu(1, 1, 1 / alpha)
    case Fn::kSelu: at::elu_out(y, x, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946); break;
    case Fn::kMish: at::mish_out(y, x); break;
    case Fn::kSoftplus: at::softplus_out(y, x, 1, 20); break;
    case Fn::kTanh: at::tanh_out(y, x); break;
    case Fn::kSigmoid: at::sigmoid_out(y, x); break;
    case Fn::kLogSigmoid: at::log_sigmoid_out(y, x); break;
    case Fn::kSoftsign: at::div_out(y, x, x.abs() + 1); break;  // F.softsign: x / (|x| + 1)
    case Fn::kTanhshrink: at::sub_out(y, x, x.tanh()); break;   // F.tanhshrink: x - tanh(x)
    case Fn::kHardswish: at::hardswish_out(y, x); break;
    case Fn::kRelu: at::clamp_min_out(y, x, 0); break;  // torch's relu is clamp_min(x, 0)
    case Fn::kLeakyRelu: at::leaky_relu_out(y, x, 0.01); break;
    case Fn::kRelu6: at::hardtanh_out(y, x, 0, 6); break;
    case Fn::kHardtanh: at::hardtanh_out(y, x, -1, 1); break;
    case Fn::kHardsigmoid: at::hardsigmoid_out(y, x); break;
    case Fn::kHardshrink: at::hardshrink_out(y, x, 0.5); break;
    case Fn::kSoftshrink: at::softshrink_out(y, x, 0.5); break;
    case Fn::kThreshold: at::threshold_out(y, x, 0, 0); break;
    default: TORCH_CHECK(false, "pyops.fewbit_forward: unknown activation");
  }
}

}  // namespace fewbit_args
}  // namespace pyops
