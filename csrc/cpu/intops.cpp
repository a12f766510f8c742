// intops CPU kernels: real integer softmax / GELU / LayerNorm / requantize.
// One row per task for the row-wise ops (the row stays in L1 across passes).
// Functions of one bounded integer (exp of x - rowmax for 8/16-bit inputs,
// GELU of an 8/16-bit input) are tabulated once per call: a table lookup is
// bit-identical to evaluating the scalar function and avoids int64 divisions.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "intops_args.h"
#include "pyops/intops.h"

namespace pyops {
namespace {

namespace io = pyops::intops;
using at::Tensor;

constexpr int64_t kMaxTable = 1 << 16;

using namespace intops_args;

// Span of x - rowmax for the input dtype (0 .. 2^bits - 1), or 0 if too wide to tabulate.
int64_t table_span(const Tensor& x) {
  const int64_t span = x.scalar_type() == at::kChar ? 256 : (x.scalar_type() == at::kShort ? 65536 : 0);
  return span <= kMaxTable ? span : 0;
}

// Apply `row_fn(in_row, out_row, n)` to every row of the last dim, in parallel.
template <typename In, typename Out, typename RowFn>
void for_rows(const Tensor& x, Tensor& out, RowFn row_fn) {
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  const In* px = x.const_data_ptr<In>();
  Out* po = out.mutable_data_ptr<Out>();
  at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) row_fn(px + r * n, po + r * n, n);
  });
}

#define PYOPS_DISPATCH_INT(TYPE, NAME, ...)            \
  AT_DISPATCH_SWITCH(TYPE, NAME,                         \
                     AT_DISPATCH_CASE(at::kChar, __VA_ARGS__) \
                     AT_DISPATCH_CASE(at::kShort, __VA_ARGS__) \
                     AT_DISPATCH_CASE(at::kInt, __VA_ARGS__))

// ------------------------------------------------------------------- softmax
// One row through a table of e(d), d = rowmax - x.  Every product e * factor fits
// 32 unsigned bits, so the output pass vectorises as 32-bit multiplies:
//   ibert: e <= 2^15 - 1 and factor = 2^32 / sum <= 2^32 / (2^15 - 1), product < 2^32;
//   shiftmax: e <= sum (or factor = 1 once the sum is clamped), product <= 2^31.
template <typename In>
__attribute__((target_clones("avx512f", "avx2", "default"))) void softmax_row(
    const In* __restrict in, int32_t* __restrict o, int64_t n, const uint32_t* __restrict table,
    uint32_t* __restrict e, bool ibert, int out_shift) {
  int32_t mx = in[0];
  for (int64_t i = 1; i < n; ++i) mx = in[i] > mx ? in[i] : mx;
  for (int64_t i = 0; i < n; ++i) e[i] = table[mx - (int32_t)in[i]];  // a pure gather: vectorises
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += e[i];
  // ibert: sum >= 2^15 - 1 (the row max's e16); shiftmax: clamped to 2^31 - 1 like I-ViT's.
  const uint32_t factor =
      (uint32_t)(ibert ? (uint64_t(1) << 32) / sum : 2147483647u / (sum < 2147483647u ? sum : 2147483647u));
  for (int64_t i = 0; i < n; ++i) o[i] = (int32_t)((e[i] * factor) >> out_shift);
}

Tensor softmax(const Tensor& x_, int64_t x0, int64_t b, int64_t c, int64_t output_bits, c10::string_view method) {
  check_rows("intops_softmax", x_);
  const bool ibert = method == "ibert";
  TORCH_CHECK(ibert || method == "shiftmax", "pyops.intops_softmax: argument 'method' must be 'ibert' or ",
              "'shiftmax', got '", method, "'");
  check_softmax(x0, b, c, output_bits, ibert);
  const Tensor x = x_.contiguous();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kInt));
  auto e_of = [&](int64_t d) { return ibert ? io::ibert_exp16(-d, x0, b, c) : io::shift_exp(-d, x0, 15); };
  const int out_shift = 32 - (int)output_bits;
  const int64_t span = table_span(x);
  std::vector<uint32_t> table(span);
  for (int64_t d = 0; d < span; ++d) table[d] = (uint32_t)e_of(d);
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_softmax", [&] {
    const scalar_t* px = x.const_data_ptr<scalar_t>();
    int32_t* po = out.mutable_data_ptr<int32_t>();
    at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
      std::vector<uint32_t> e32(span ? n : 0);
      std::vector<int64_t> e64(span ? 0 : n);
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* in = px + r * n;
        int32_t* o = po + r * n;
        if (span) {
          softmax_row<scalar_t>(in, o, n, table.data(), e32.data(), ibert, out_shift);
          continue;
        }
        // int32 input: d spans 2^32, evaluate e directly (int64: shiftmax's e may pass 2^32 here)
        int64_t mx = in[0];
        for (int64_t i = 1; i < n; ++i) mx = in[i] > mx ? in[i] : mx;
        int64_t sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += e64[i] = e_of(mx - in[i]);
        const int64_t factor = ibert ? (int64_t(1) << 32) / sum : 2147483647 / (sum < 2147483647 ? sum : 2147483647);
        for (int64_t i = 0; i < n; ++i) o[i] = (int32_t)((e64[i] * factor) >> out_shift);
      }
    });
  });
  return out;
}

// I-BERT i-exp, elementwise (x <= 0 expected: x - rowmax).
Tensor exp(const Tensor& x_, int64_t x0, int64_t b, int64_t c) {
  check_exp(x_, x0, b, c);
  const Tensor x = x_.contiguous();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kLong));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_exp", [&] {
    const scalar_t* px = x.const_data_ptr<scalar_t>();
    int64_t* po = out.mutable_data_ptr<int64_t>();
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = io::ibert_exp(px[i], x0, b, c);
    });
  });
  return out;
}

// ---------------------------------------------------------------------- GELU
// out = x (y(x) + one) where y depends on x only through clamp(x, b, -b): with one
// scale for all channels, (y + one) is tabulated over that clamped range.
constexpr int64_t kMaxGeluTable = 1 << 20;

template <typename In>
__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_table_row(const In* in, int64_t* o, int64_t n,
                                                                                 const int64_t* table, int64_t b) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = in[i] < b ? b : (in[i] > -b ? -b : (int64_t)in[i]);
    o[i] = (int64_t)in[i] * table[v - b];
  }
}

// I-BERT GELU with per-channel constants b, c, one (int64, [C] or [1]).
Tensor gelu(const Tensor& x_, const Tensor& b_, const Tensor& c_, const Tensor& one_) {
  check_rows("intops_gelu", x_);
  const int64_t channels = x_.size(-1);
  const Tensor x = x_.contiguous();
  const Tensor b = channel_constant("intops_gelu", "b", b_, channels),
               c = channel_constant("intops_gelu", "c", c_, channels),
               one = channel_constant("intops_gelu", "one", one_, channels);
  check_gelu(b, c, one);
  const int64_t *pb = b.const_data_ptr<int64_t>(), *pc = c.const_data_ptr<int64_t>(),
                *pone = one.const_data_ptr<int64_t>();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kLong));
  const bool tabulate = b_.size(0) == 1 && channels > 0 && -2 * pb[0] + 1 <= kMaxGeluTable;
  std::vector<int64_t> table(tabulate ? -2 * pb[0] + 1 : 0);
  for (int64_t v = 0; v < (int64_t)table.size(); ++v) {
    const int64_t xv = v + pb[0];  // ibert_gelu(xv) = xv * table[v] for xv != 0; any value serves xv == 0
    table[v] = xv ? io::ibert_gelu(xv, pb[0], pc[0], pone[0]) / xv : 0;
  }
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_gelu", [&] {
    for_rows<scalar_t, int64_t>(x, out, [&](const scalar_t* in, int64_t* o, int64_t n) {
      if (tabulate) {
        gelu_table_row<scalar_t>(in, o, n, table.data(), pb[0]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = io::ibert_gelu(in[i], pb[i], pc[i], pone[i]);
      }
    });
  });
  return out;
}

// I-ViT ShiftGELU: x sigma(1.702 x), sigma from two shift-exps normalised per row.
Tensor shiftgelu(const Tensor& x_, int64_t x0, int64_t output_bits) {
  check_rows("intops_shiftgelu", x_);
  check_shiftgelu(x0, output_bits);
  const Tensor x = x_.contiguous();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kLong));
  const int out_shift = 32 - (int)output_bits;
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_shiftgelu", [&] {
    for_rows<scalar_t, int64_t>(x, out, [&](const scalar_t* in, int64_t* o, int64_t n) {
      int64_t mx = in[0];
      for (int64_t i = 1; i < n; ++i) mx = in[i] > mx ? in[i] : mx;
      const int64_t e_max = io::shift_exp(-mx, x0, 23);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t e = io::shift_exp(in[i] - mx, x0, 23);
        int64_t total = e + e_max;
        total = total < 2147483647 ? total : 2147483647;
        o[i] = (int64_t)in[i] * ((e * (2147483647 / total)) >> out_shift);
      }
    });
  });
  return out;
}

// ----------------------------------------------------------------- LayerNorm
Tensor layernorm(const Tensor& x_, const Tensor& bias_, int64_t shift, c10::string_view sqrt) {
  check_rows("intops_layernorm", x_);
  const bool exact = sqrt == "exact";
  TORCH_CHECK(exact || sqrt == "newton", "pyops.intops_layernorm: argument 'isqrt' must be 'exact' or 'newton', ",
              "got '", sqrt, "'");
  TORCH_CHECK(shift >= 0 && shift < 32, "pyops.intops_layernorm: argument 'shift' must be in [0, 32), got ", shift);
  const int64_t n = x_.size(-1);
  const Tensor x = x_.contiguous(), bias = channel_constant("intops_layernorm", "bias_int", bias_, n);
  const int64_t* pbias = bias.const_data_ptr<int64_t>();
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kInt));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_layernorm", [&] {
    for_rows<scalar_t, int32_t>(x, out, [&](const scalar_t* in, int32_t* o, int64_t len) {
      int64_t sum = 0, lo = INT64_MAX, hi = INT64_MIN;  // |x| < 2^31 and len < 2^31: no overflow
      for (int64_t i = 0; i < len; ++i) {
        sum += in[i];
        lo = in[i] < lo ? in[i] : lo;
        hi = in[i] > hi ? in[i] : hi;
      }
      const int64_t mean = io::round_div(sum, len);
      const int s = io::layernorm_shift(hi - mean > mean - lo ? hi - mean : mean - lo, len, (int)shift);
      int64_t var = 0;  // < 2^63 by the choice of s
      for (int64_t i = 0; i < len; ++i) {
        const int64_t y = (in[i] - mean) >> s;
        var += y * y;
      }
      int64_t factor;
      if (exact) {
        const int64_t std = io::isqrt(var) << s;
        factor = std > 0 ? (int64_t(1) << 31) / std : 0;  // constant row: output = bias
      } else {
        factor = int64_t(2147483647) / (io::newton_sqrt(var) << s);
      }
      // |x - mean| <= std + 2^s, so (x - mean) factor stays near 2^31.
      for (int64_t i = 0; i < len; ++i) o[i] = (int32_t)((((in[i] - mean) * factor) >> 1) + pbias[i]);
    });
  });
  return out;
}

// ---------------------------------------------------------- isqrt, requantize
Tensor isqrt(const Tensor& x_) {
  TORCH_CHECK(x_.scalar_type() == at::kLong || x_.scalar_type() == at::kInt,
              "pyops.intops_isqrt: argument 'x' must be int32 or int64, got ", x_.scalar_type());
  const Tensor x = x_.to(at::kLong).contiguous();
  Tensor out = at::empty_like(x);
  const int64_t* px = x.const_data_ptr<int64_t>();
  int64_t* po = out.mutable_data_ptr<int64_t>();
  at::parallel_for(0, x.numel(), 1 << 12, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      TORCH_CHECK(px[i] >= 0, "pyops.intops_isqrt: argument 'x' must be non-negative, got ", px[i]);
      po[i] = io::isqrt(px[i]);
    }
  });
  return out;
}

Tensor requantize(const Tensor& x_, const Tensor& m_, const Tensor& e_, int64_t bits) {
  check_rows("intops_requantize", x_);
  const int64_t channels = x_.size(-1);
  const Tensor x = x_.contiguous(), m = channel_constant("intops_requantize", "m", m_, channels),
               e = channel_constant("intops_requantize", "e", e_, channels);
  check_requantize(m, e, bits);
  const int64_t *pm = m.const_data_ptr<int64_t>(), *pe = e.const_data_ptr<int64_t>();
  const int64_t lo = -(int64_t(1) << (bits - 1)), hi = (int64_t(1) << (bits - 1)) - 1;
  Tensor out = at::empty(x.sizes(), x.options().dtype(at::kInt));
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_requantize", [&] {
    for_rows<scalar_t, int32_t>(x, out, [&](const scalar_t* in, int32_t* o, int64_t n) {
      for (int64_t i = 0; i < n; ++i) o[i] = (int32_t)io::requantize(in[i], pm[i], pe[i], lo, hi);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) {
  m.impl("intops_exp", &exp);
  m.impl("intops_softmax", &softmax);
  m.impl("intops_gelu", &gelu);
  m.impl("intops_shiftgelu", &shiftgelu);
  m.impl("intops_layernorm", &layernorm);
  m.impl("intops_isqrt", &isqrt);
  m.impl("intops_requantize", &requantize);
}

}  // namespace pyops
