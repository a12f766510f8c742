// fewbit CPU kernels: encode (bucketize + pack, one pass) and backward
// (unpack + level gather + multiply, one pass), in parallel over 8-element
// groups, each owning its b bytes of the code stream.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>
#include <type_traits>

#include "fewbit_args.h"
#include "pyops/fewbit.h"

namespace pyops {
namespace {

namespace fb = pyops::fewbit;
using at::Tensor;
using namespace fewbit_args;

constexpr int64_t kBlock = 1024;           // elements whose codes are staged in registers/L1

// Codes of a block of floats: one vectorisable compare pass per border.
__attribute__((target_clones("avx512f", "avx2", "default"))) void block_codes(const float* __restrict x, int64_t len,
                                                                              const float* __restrict borders,
                                                                              int n_borders,
                                                                              uint8_t* __restrict codes) {
  for (int64_t i = 0; i < len; ++i) codes[i] = 0;
  for (int t = 0; t < n_borders; ++t) {
    const float b = borders[t];
    for (int64_t i = 0; i < len; ++i) codes[i] += x[i] > b;  // NaN compares false: code 0
  }
}

// Full 8-element groups of a block <-> their BITS bytes; BITS is a template
// argument so every shift is a constant and the 8-element loops unroll.
template <int BITS>
void pack_groups(const uint8_t* __restrict codes, int64_t groups, uint8_t* __restrict out) {
  for (int64_t g = 0; g < groups; ++g) {
    const uint64_t w = fb::pack8(codes + g * 8, BITS);
    std::memcpy(out + g * BITS, &w, BITS);  // little-endian: LSB-first stream
  }
}

template <typename Fn>
void with_bits(int bits, Fn fn) {
  switch (bits) {
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 3: fn(std::integral_constant<int, 3>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 5: fn(std::integral_constant<int, 5>{}); break;
    case 6: fn(std::integral_constant<int, 6>{}); break;
    case 7: fn(std::integral_constant<int, 7>{}); break;
    default: fn(std::integral_constant<int, 8>{}); break;
  }
}

// Blocks of kBlock elements (a multiple of 8) own kBlock / 8 * bits bytes of the stream.
// The stream's last group may be short: it is packed through a padded scratch group.
template <typename T>
void encode_groups(const T* x, const float* borders, int n_borders, uint8_t* out, int64_t n, int bits) {
  const int64_t n_bytes = (n * bits + 7) / 8;
  at::parallel_for(0, (n + kBlock - 1) / kBlock, 1, [&](int64_t lo, int64_t hi) {
    float xf[kBlock];
    uint8_t codes[kBlock];
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t base = blk * kBlock, len = n - base < kBlock ? n - base : kBlock;
      for (int64_t i = 0; i < len; ++i) xf[i] = (float)x[base + i];  // codes never depend on the dtype
      block_codes(xf, len, borders, n_borders, codes);
      const int64_t full = len / 8, rest = len % 8;
      uint8_t* dst = out + base / 8 * bits;
      with_bits(bits, [&](auto b) {
        pack_groups<b()>(codes, full, dst);
        if (rest) {
          uint8_t group[8] = {}, bytes[8];
          std::memcpy(group, codes + full * 8, rest);
          pack_groups<b()>(group, 1, bytes);
          std::memcpy(dst + full * bits, bytes, n_bytes - (base / 8 + full) * bits);
        }
      });
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

// Unpack and scale in one pass: each group's code word is one unaligned 8-byte load
// (reading past the group's BITS bytes, which is fine wherever 8 bytes remain in
// the stream; the stream's last groups go through a zero-padded copy).
template <int BITS, typename T, typename Acc>
__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_groups(
    const uint8_t* __restrict codes, int64_t g0, int64_t g1, int64_t n, int64_t n_bytes, const T* __restrict g,
    const float* __restrict levels, T* __restrict out) {
  for (int64_t q = g0; q < g1; ++q) {
    uint64_t w = 0;
    if (q * BITS + 8 <= n_bytes) {
      std::memcpy(&w, codes + q * BITS, 8);
    } else {
      std::memcpy(&w, codes + q * BITS, n_bytes - q * BITS);
    }
    const int64_t len = n - q * 8 < 8 ? n - q * 8 : 8;
    for (int j = 0; j < len; ++j)
      out[q * 8 + j] = (T)((Acc)levels[fb::unpack(w, j, BITS)] * (Acc)g[q * 8 + j]);
  }
}

Tensor backward(const Tensor& grad_, const Tensor& codes_, const Tensor& levels_, int64_t bits) {
  check_backward("fewbit_backward", grad_, codes_, levels_, bits);
  const Tensor grad = grad_.contiguous(), codes = codes_.contiguous(), levels = levels_.to(at::kFloat).contiguous();
  Tensor out = at::empty_like(grad);
  const int64_t n = grad.numel(), n_bytes = codes.numel();
  const float* lv = levels.const_data_ptr<float>();
  const uint8_t* pc = codes.const_data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "fewbit_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;  // float for half/bf16: the product is rounded once
    const scalar_t* pg = grad.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, (n + 7) / 8, kBlock / 8, [&](int64_t lo, int64_t hi) {
      with_bits((int)bits, [&](auto b) {
        backward_groups<b(), scalar_t, acc_t>(pc, lo, hi, n, n_bytes, pg, lv, po);
      });
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
