// intops CPU kernels: real integer softmax / GELU / LayerNorm / requantize.
// One row per task for the row-wise ops (the row stays in L1 across passes).
// Functions of one bounded integer (exp of x - rowmax for 8/16-bit inputs,
// GELU of an 8/16-bit input) are tabulated once per call: a table lookup is
// bit-identical to evaluating the scalar function and avoids int64 divisions.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PYOPS_INTOPS_X86 1
#endif

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

// requantize: round_half_even(x m / 2^e) saturated to [lo, hi], io::requantize per element.
// The AVX2 path takes (m, e) rewritten to an equivalent pair with m < 2^31 and 0 <= e <= 62 (below),
// so p = x m (|x| <= 2^31, |p| < 2^62) is one signed 32x32 -> 64-bit multiply, and
//   round_half_even(p / 2^e) = floor((p + 2^(e-1) - 1 + bit_e(p)) / 2^e)   (e >= 1; p itself at e = 0)
// where bit_e(p) is the parity of floor(p / 2^e).  AVX2 has no 64-bit arithmetic shift: with 2^62
// added, the sum is in [0, 2^64) (the bias < 2^61), a logical shift gives the floor plus
// K = 2^(62-e) exactly (2^e divides 2^62), and the quotient plus K is in [0, 2^63).  That is clamped
// to [lo + K, hi + K] with signed compares; its low 32 bits less K's are the result.
// Pairs with no such rewrite (m = 2^31 at e = 0, a left shift past 30 bits) stay scalar.
struct RqConst {
  int64_t m, bias, shift, pshift, lo, hi, k;  // pshift: where the parity bit is (64: none, a shift to 0)
};

// The same result as io::requantize(x, m, e, lo, hi) for every int32 x, or false.
bool rq_constants(int64_t m, int64_t e, int64_t lo, int64_t hi, RqConst& c) {
  if (m == 0 || e > 62) {  // x m = 0, or past 62 bits right: 0
    m = 0;
    e = 0;
  } else if (e < 0) {  // x (m 2^-e) exactly, when that multiplier has 31 bits: no saturation in int64
    if (-e > 30 || m > (int64_t(0x7fffffff) >> -e)) return false;
    m <<= -e;
    e = 0;
  } else if (m == (int64_t(1) << 31)) {  // x 2^31 / 2^e == x 2^30 / 2^(e-1): the same rounding
    if (e == 0) return false;
    m >>= 1;
    --e;
  }
  c.m = m;
  c.shift = e;
  c.k = int64_t(1) << (62 - e);
  c.bias = (int64_t(1) << 62) + (e ? (int64_t(1) << (e - 1)) - 1 : 0);
  c.pshift = e ? e : 64;
  c.lo = lo + c.k;
  c.hi = hi + c.k;
  return true;
}

bool cpu_has_avx2() {
#ifdef PYOPS_INTOPS_X86
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

// Per-channel constants for rq_avx2, kRqBlock int64 per 8 channels j..j+7: m, bias, shift, pshift,
// lo, hi, each as 4 lanes of (j, j+2, j+4, j+6) then 4 of (j+1, j+3, j+5, j+7); then K's low 32 bits
// as 8 int32 lanes of j..j+7.
constexpr int64_t kRqBlock = 52;
constexpr int64_t kRqRows = 8;  // rows per pass over the per-channel constants

#ifdef PYOPS_INTOPS_X86
// 8 elements as int32 lanes
template <typename In>
__attribute__((target("avx2"))) inline __m256i rq_load8(const In* p) {
  if constexpr (sizeof(In) == 1) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else if constexpr (sizeof(In) == 2) {
    return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
}

// 4 results plus K, clamped, in int64 lanes, from the low (signed) 32 bits of each lane of x
__attribute__((target("avx2"))) inline __m256i rq4(__m256i x, __m256i m, __m256i bias, __m256i shift,
                                                    __m256i pshift, __m256i lo, __m256i hi) {
  const __m256i p = _mm256_mul_epi32(x, m);
  const __m256i parity = _mm256_and_si256(_mm256_srlv_epi64(p, pshift), _mm256_set1_epi64x(1));
  __m256i v = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_add_epi64(p, bias), parity), shift);
  v = _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
  return _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
}

// 8 * nblocks elements of `rows` rows `stride` apart.  Per channel: c points to the first channel's
// block (rq_blocks), loaded once for all the rows; otherwise to one RqConst for all.  The even
// elements of 8 go through one rq4 and the odd ones through another, so the results interleave
// back with one blend.
template <typename In, bool kPerChannel>
__attribute__((target("avx2"))) void rq_avx2(const In* __restrict in, int32_t* __restrict o, int64_t nblocks,
                                             const int64_t* __restrict c, int64_t rows, int64_t stride) {
  __m256i me = _mm256_set1_epi64x(c[0]), be = _mm256_set1_epi64x(c[1]), se = _mm256_set1_epi64x(c[2]),
          pe = _mm256_set1_epi64x(c[3]), le = _mm256_set1_epi64x(c[4]), he = _mm256_set1_epi64x(c[5]),
          k32 = _mm256_set1_epi32((int32_t)(uint32_t)c[6]);
  __m256i mo = me, bo = be, so = se, po = pe, lo = le, ho = he;
  for (int64_t k = 0; k < nblocks; ++k) {
    if constexpr (kPerChannel) {
      const __m256i* q = reinterpret_cast<const __m256i*>(c + kRqBlock * k);
      me = _mm256_loadu_si256(q), mo = _mm256_loadu_si256(q + 1);
      be = _mm256_loadu_si256(q + 2), bo = _mm256_loadu_si256(q + 3);
      se = _mm256_loadu_si256(q + 4), so = _mm256_loadu_si256(q + 5);
      pe = _mm256_loadu_si256(q + 6), po = _mm256_loadu_si256(q + 7);
      le = _mm256_loadu_si256(q + 8), lo = _mm256_loadu_si256(q + 9);
      he = _mm256_loadu_si256(q + 10), ho = _mm256_loadu_si256(q + 11);
      k32 = _mm256_loadu_si256(q + 12);
    }
    for (int64_t r = 0; r < (kPerChannel ? rows : 1); ++r) {
      const __m256i x = rq_load8(in + r * stride + 8 * k);
      const __m256i ve = rq4(x, me, be, se, pe, le, he);
      const __m256i vo = rq4(_mm256_srli_epi64(x, 32), mo, bo, so, po, lo, ho);
      const __m256i v = _mm256_blend_epi32(ve, _mm256_slli_epi64(vo, 32), 0xAA);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + r * stride + 8 * k), _mm256_sub_epi32(v, k32));
    }
  }
}
#endif

// Per-channel blocks of channels [0, C8) for rq_avx2 (kRqBlock); empty if some channel has no
// AVX2 form.
std::vector<int64_t> rq_blocks(const int64_t* pm, const int64_t* pe, int64_t c8, int64_t lo, int64_t hi) {
  std::vector<int64_t> out(c8 / 8 * kRqBlock);
  for (int64_t j = 0; j < c8; ++j) {
    RqConst c;
    if (!rq_constants(pm[j], pe[j], lo, hi, c)) return {};
    int64_t* b = out.data() + j / 8 * kRqBlock;
    const int64_t lane = (j % 2) * 4 + (j % 8) / 2;
    b[lane] = c.m, b[8 + lane] = c.bias, b[16 + lane] = c.shift, b[24 + lane] = c.pshift;
    b[32 + lane] = c.lo, b[40 + lane] = c.hi;
    const uint32_t k32 = (uint32_t)c.k;
    std::memcpy(reinterpret_cast<char*>(b + 48) + 4 * (j % 8), &k32, 4);
  }
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
  const int64_t numel = x.numel();
  if (numel == 0) return out;
  // one (m, e) for all channels: a flat loop; else per channel, 8-channel blocks below C8 vectorised
  // (C8: C rounded down to a multiple of 8), the channels from C8 on scalar
  bool uniform = true;
  for (int64_t j = 1; j < channels && uniform; ++j) uniform = pm[j] == pm[0] && pe[j] == pe[0];
  const int64_t c8 = channels / 8 * 8;
  std::vector<int64_t> blocks;
  if (cpu_has_avx2()) {
    RqConst c;
    if (uniform && rq_constants(pm[0], pe[0], lo, hi, c)) {
      blocks = {c.m, c.bias, c.shift, c.pshift, c.lo, c.hi, c.k};
    } else if (!uniform) {
      blocks = rq_blocks(pm, pe, c8, lo, hi);
    }
  }
  const bool vec = !blocks.empty();
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_requantize", [&] {
    const scalar_t* px = x.const_data_ptr<scalar_t>();
    int32_t* po = out.mutable_data_ptr<int32_t>();
    if (uniform) {
      at::parallel_for(0, numel, 1 << 15, [&](int64_t begin, int64_t end) {
        int64_t i = begin;
#ifdef PYOPS_INTOPS_X86
        if (vec) {
          const int64_t nb = (end - begin) / 8;
          rq_avx2<scalar_t, false>(px + begin, po + begin, nb, blocks.data(), 1, 0);
          i += 8 * nb;
        }
#endif
        for (; i < end; ++i) po[i] = (int32_t)io::requantize(px[i], pm[0], pe[0], lo, hi);
      });
      return;
    }
    // per channel: rows in groups of kRqRows, each 8-channel block's constants loaded once a group
    const int64_t rows = numel / channels;
    at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 15) / channels), [&](int64_t begin, int64_t end) {
      for (int64_t r0 = begin; r0 < end; r0 += kRqRows) {
        const int64_t nr = std::min(kRqRows, end - r0);
        int64_t c_scalar = 0;  // the channels left to the scalar loop start here
#ifdef PYOPS_INTOPS_X86
        if (vec) {
          rq_avx2<scalar_t, true>(px + r0 * channels, po + r0 * channels, c8 / 8, blocks.data(), nr, channels);
          c_scalar = c8;
        }
#endif
        for (int64_t r = r0; r < r0 + nr; ++r) {
          const scalar_t* in = px + r * channels;
          int32_t* o = po + r * channels;
          for (int64_t c = c_scalar; c < channels; ++c) o[c] = (int32_t)io::requantize(in[c], pm[c], pe[c], lo, hi);
        }
      }
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
