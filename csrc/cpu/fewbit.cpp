// fewbit CPU kernels: encode (bucketize + pack, one pass) and backward
// (unpack + level gather + multiply, one pass), in parallel over 8-element
// groups, each owning its b bytes of the code stream.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "fewbit_args.h"
#include "pyops/fewbit.h"

namespace pyops {
namespace {

namespace fb = pyops::fewbit;
using at::Tensor;
using namespace fewbit_args;

constexpr int64_t kGroupGrain = 1 << 12;  // 8-element groups per task

template <typename T>
void encode_groups(const T* x, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits) {
  at::parallel_for(0, (n + 7) / 8, kGroupGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g) {
      uint32_t codes[8] = {};
      const int64_t base = g * 8, len = n - base < 8 ? n - base : 8;
      for (int j = 0; j < len; ++j) codes[j] = fb::code((float)x[base + j], borders, n_borders);
      const uint64_t word = fb::pack8(codes, bits);
      const int64_t bytes = (len * bits + 7) / 8;  // the last group may be short
      for (int64_t k = 0; k < bytes; ++k) out[g * bits + k] = (uint8_t)(word >> (8 * k));
    }
  });
}

Tensor encode(const Tensor& x_, const Tensor& borders_, int64_t bits) {
  check_encode("fewbit_encode", x_, borders_, bits);
  const Tensor x = x_.contiguous(), borders = borders_.to(at::kFloat).contiguous();
  const int64_t n = x.numel();
  Tensor out = at::empty({(n * bits + 7) / 8}, x.options().dtype(at::kByte));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fewbit_encode", [&] {
    encode_groups<scalar_t>(x.const_data_ptr<scalar_t>(), borders.const_data_ptr<float>(), (int)borders.numel(),
                            out.mutable_data_ptr<uint8_t>(), n, (int)bits);
  });
  return out;
}

Tensor backward(const Tensor& grad_, const Tensor& codes_, const Tensor& levels_, int64_t bits) {
  check_backward("fewbit_backward", grad_, codes_, levels_, bits);
  const Tensor grad = grad_.contiguous(), codes = codes_.contiguous(), levels = levels_.to(at::kFloat).contiguous();
  Tensor out = at::empty_like(grad);
  const int64_t n = grad.numel();
  const float* lv = levels.const_data_ptr<float>();
  const uint8_t* pc = codes.const_data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "fewbit_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;  // float for half/bf16: the product is rounded once
    const scalar_t* pg = grad.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, (n + 7) / 8, kGroupGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t g = lo; g < hi; ++g) {
        const int64_t base = g * 8, len = n - base < 8 ? n - base : 8;
        uint64_t word = 0;
        for (int64_t k = 0; k < (len * bits + 7) / 8; ++k) word |= (uint64_t)pc[g * bits + k] << (8 * k);
        for (int j = 0; j < len; ++j) po[base + j] = (scalar_t)((acc_t)lv[fb::unpack(word, j, (int)bits)] * (acc_t)pg[base + j]);
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) {
  m.impl("fewbit_encode", &encode);
  m.impl("fewbit_backward", &backward);
}

}  // namespace pyops
