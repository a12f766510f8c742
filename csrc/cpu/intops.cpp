// intops CPU kernels: real integer softmax / GELU / LayerNorm / requantize.
// One row per task for the row-wise ops (the row stays in L1 across passes).
// Functions of one bounded integer (exp of x - rowmax for 8/16-bit inputs,
// GELU of an 8/16-bit input) are tabulated once per call: a table lookup is
// bit-identical to evaluating the scalar function and avoids int64 divisions.
// Hot loops have an AVX2 copy in intrinsics (GCC's auto-vectorised copies kept
// these formulas in int64 lanes and extracted table indices one by one), chosen
// per call from isa::active(); the AVX-512 level runs the AVX2 copies but for the int8
// softmax, whose table fits eight registers there.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "intops_args.h"
#include "alloc.h"
#include "isa.h"
#if defined(PYOPS_ISA_X86)
#include <immintrin.h>
#endif
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

// Orders a thread's streaming stores before its ordinary ones (the join of parallel_for):
// once per task, as a fence per row stalls on the write-combining buffers.
inline void stream_fence(bool stream) {
#if defined(PYOPS_ISA_X86)
  if (stream) _mm_sfence();
#endif
}

// Apply `row_fn(in_row, out_row, n)` to every row of the last dim, in parallel; `stream`: row_fn
// writes with streaming stores.
template <typename In, typename Out, typename RowFn>
void for_rows(const Tensor& x, Tensor& out, RowFn row_fn, bool stream = false) {
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  const In* px = x.const_data_ptr<In>();
  Out* po = out.mutable_data_ptr<Out>();
  at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) row_fn(px + r * n, po + r * n, n);
    stream_fence(stream);
  });
}

#define PYOPS_DISPATCH_INT(TYPE, NAME, ...)            \
  AT_DISPATCH_SWITCH(TYPE, NAME,                         \
                     AT_DISPATCH_CASE(at::kChar, __VA_ARGS__) \
                     AT_DISPATCH_CASE(at::kShort, __VA_ARGS__) \
                     AT_DISPATCH_CASE(at::kInt, __VA_ARGS__))

#if defined(PYOPS_ISA_X86)
// 8 elements as int32 lanes
template <typename In>
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE __m256i load8(const In* p) {
  if constexpr (sizeof(In) == 1) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else if constexpr (sizeof(In) == 2) {
    return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
}

PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE int32_t hmax_epi32(__m256i v) {
  __m128i m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4E));
  return _mm_cvtsi128_si32(_mm_max_epi32(m, _mm_shuffle_epi32(m, 0xB1)));
}

PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE int32_t hmin_epi32(__m256i v) {
  __m128i m = _mm_min_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  m = _mm_min_epi32(m, _mm_shuffle_epi32(m, 0x4E));
  return _mm_cvtsi128_si32(_mm_min_epi32(m, _mm_shuffle_epi32(m, 0xB1)));
}

PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE int64_t hsum_epi64(__m256i v) {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

// The 8 int32 lanes of v widened to int64 and added to acc.
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE __m256i add_widened(__m256i acc, __m256i v, bool is_signed) {
  const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
  if (is_signed) return _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_cvtepi32_epi64(lo), _mm256_cvtepi32_epi64(hi)));
  return _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_cvtepu32_epi64(lo), _mm256_cvtepu32_epi64(hi)));
}

// A store of 32 bytes; kStream: a streaming store to a 32-byte aligned p (stream_rows).
template <bool kStream>
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE void store32(void* p, __m256i v) {
  if constexpr (kStream) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
  } else {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
}

// o[0..8) = x f as int64: 32 x 32 -> 64-bit products of the even lanes and of the odd ones,
// interleaved back in order.
template <bool kStream>
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE void store_products8(int64_t* o, __m256i x, __m256i f) {
  const __m256i pe = _mm256_mul_epi32(x, f);                                                // 0 2 | 4 6
  const __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(f, 32));  // 1 3 | 5 7
  const __m256i a = _mm256_unpacklo_epi64(pe, po), c = _mm256_unpackhi_epi64(pe, po);         // 0 1 | 4 5, 2 3 | 6 7
  store32<kStream>(o, _mm256_permute2x128_si256(a, c, 0x20));
  store32<kStream>(o + 4, _mm256_permute2x128_si256(a, c, 0x31));
}
#endif

// Outputs this large are written with streaming stores by the AVX2 row kernels: they overflow a
// core's L2 many times over, and a streaming store skips reading each line before writing it
// (measured: the write-bound int64 GELU output in half the time).  Every row must then start
// 32-byte aligned (at::empty aligns the data to 64 bytes).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

bool stream_rows(const Tensor& out) {
  const int64_t row_bytes = out.dim() ? out.size(-1) * out.element_size() : 0;
  return out.nbytes() >= kStreamBytes && row_bytes % 32 == 0 &&
         reinterpret_cast<uintptr_t>(out.const_data_ptr()) % 32 == 0;
}

// ------------------------------------------------------------------- softmax
// One row through a table of e(d), d = rowmax - x, into the scratch row e (the
// output row in the scalar copy).  Every product e * factor fits 32 unsigned bits, so the output
// pass is 32-bit multiplies:
//   ibert: e <= 2^15 - 1 and factor = 2^32 / sum <= 2^32 / (2^15 - 1), product < 2^32;
//   shiftmax: e <= sum (or factor = 1 once the sum is clamped), product <= 2^31.
// ibert: sum >= 2^15 - 1 (the row max's e16); shiftmax: clamped to 2^31 - 1 like I-ViT's.
inline uint32_t softmax_factor(uint64_t sum, bool ibert) {
  return (uint32_t)(ibert ? (uint64_t(1) << 32) / sum : 2147483647u / (sum < 2147483647u ? sum : 2147483647u));
}

template <typename In>
int32_t row_max_scalar(const In* in, int64_t n) {
  int32_t mx = in[0];
  for (int64_t i = 1; i < n; ++i) mx = in[i] > mx ? in[i] : mx;
  return mx;
}

template <typename In>
void softmax_row_scalar(const In* __restrict in, int32_t* __restrict o, int64_t n, const uint32_t* __restrict table,
                        bool ibert, int out_shift) {
  uint32_t* e = reinterpret_cast<uint32_t*>(o);
  const int32_t mx = row_max_scalar(in, n);
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += e[i] = table[mx - (int32_t)in[i]];
  const uint32_t factor = softmax_factor(sum, ibert);
  for (int64_t i = 0; i < n; ++i) o[i] = (int32_t)((e[i] * factor) >> out_shift);
}

#if defined(PYOPS_ISA_X86)
// table[mx - x] of 8 elements by scalar loads: faster than vpgatherdd on AMD Zen 3.
template <typename In>
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE __m256i lookup8(const uint32_t* table, const In* in, int32_t mx) {
  using U = std::make_unsigned_t<In>;  // mx - x is in [0, 2^bits)
  auto e = [&](int k) { return (int)table[(U)(mx - in[k])]; };
  __m128i lo = _mm_cvtsi32_si128(e(0)), hi = _mm_cvtsi32_si128(e(4));
  lo = _mm_insert_epi32(lo, e(1), 1), hi = _mm_insert_epi32(hi, e(5), 1);
  lo = _mm_insert_epi32(lo, e(2), 2), hi = _mm_insert_epi32(hi, e(6), 2);
  lo = _mm_insert_epi32(lo, e(3), 3), hi = _mm_insert_epi32(hi, e(7), 3);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

template <typename In>
PYOPS_TARGET_AVX2 int32_t row_max_avx2(const In* in, int64_t n) {
  const int64_t n8 = n / 8 * 8;
  int32_t mx = in[0];
  if (n8) {
    __m256i m = load8(in);
    for (int64_t i = 8; i < n8; i += 8) m = _mm256_max_epi32(m, load8(in + i));
    mx = std::max(mx, hmax_epi32(m));
  }
  for (int64_t i = n8; i < n; ++i) mx = in[i] > mx ? in[i] : mx;
  return mx;
}

template <typename In, bool kStream>
PYOPS_TARGET_AVX2 void softmax_row_avx2(const In* __restrict in, int32_t* __restrict o, int64_t n,
                                        const uint32_t* __restrict table, uint32_t* __restrict e, bool ibert,
                                        int out_shift) {
  const int64_t n8 = n / 8 * 8;
  const int32_t mx = row_max_avx2(in, n);
  __m256i acc = _mm256_setzero_si256();
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256i v = lookup8(table, in + i, mx);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(e + i), v);
    acc = add_widened(acc, v, false);
  }
  uint64_t sum = (uint64_t)hsum_epi64(acc);
  for (int64_t i = n8; i < n; ++i) sum += e[i] = table[mx - (int32_t)in[i]];
  const uint32_t factor = softmax_factor(sum, ibert);
  const __m256i f = _mm256_set1_epi32((int32_t)factor);
  const __m128i sh = _mm_cvtsi32_si128(out_shift);
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e + i));
    store32<kStream>(o + i, _mm256_srl_epi32(_mm256_mullo_epi32(v, f), sh));
  }
  for (int64_t i = n8; i < n; ++i) o[i] = (int32_t)((e[i] * factor) >> out_shift);
}

// AVX-512, int8 rows with every table entry below 2^15 (I-BERT's e16 always): the 256-entry table
// as int16 in 8 registers, e = table[mx - x] for 32 elements by four 64-entry vpermt2w lookups
// blended on the index's bits 6 and 7, instead of 32 scalar loads; sums through vpmaddwd.
template <bool kStream>
PYOPS_TARGET_AVX512 void softmax_row_avx512(const int8_t* __restrict in, int32_t* __restrict o, int64_t n,
                                            const uint32_t* __restrict table, const int16_t* table16,
                                            uint16_t* __restrict e, bool ibert, int out_shift) {
  __m512i t16[8];
  for (int k = 0; k < 8; ++k) t16[k] = _mm512_loadu_si512(table16 + 32 * k);
  const int64_t n32 = n / 32 * 32;
  const int32_t mx = row_max_avx2(in, n);
  const __m512i mxv = _mm512_set1_epi16((int16_t)mx), ones = _mm512_set1_epi16(1);
  const __m512i bit6 = _mm512_set1_epi16(64), bit7 = _mm512_set1_epi16(128);
  uint64_t sum = 0;
  // int32 lanes gain < 2^16 per step: flushed to the 64-bit sum every 2^14 steps
  for (int64_t i0 = 0; i0 < n32; i0 += 32 << 14) {
    __m512i acc = _mm512_setzero_si512();
    for (int64_t i = i0; i < std::min(n32, i0 + (int64_t(32) << 14)); i += 32) {
      const __m512i d = _mm512_sub_epi16(mxv, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(in + i))));
      const __mmask32 m6 = _mm512_test_epi16_mask(d, bit6), m7 = _mm512_test_epi16_mask(d, bit7);
      const __m512i lo = _mm512_mask_blend_epi16(m6, _mm512_permutex2var_epi16(t16[0], d, t16[1]),
                                                 _mm512_permutex2var_epi16(t16[2], d, t16[3]));
      const __m512i hi = _mm512_mask_blend_epi16(m6, _mm512_permutex2var_epi16(t16[4], d, t16[5]),
                                                 _mm512_permutex2var_epi16(t16[6], d, t16[7]));
      const __m512i v = _mm512_mask_blend_epi16(m7, lo, hi);
      _mm512_storeu_si512(e + i, v);
      acc = _mm512_add_epi32(acc, _mm512_madd_epi16(v, ones));
    }
    sum += (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(acc)),
                                                              _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(acc, 1))));
  }
  for (int64_t i = n32; i < n; ++i) sum += e[i] = (uint16_t)table[mx - (int32_t)in[i]];
  const uint32_t factor = softmax_factor(sum, ibert);
  const __m256i f = _mm256_set1_epi32((int32_t)factor);
  const __m128i sh = _mm_cvtsi32_si128(out_shift);
  for (int64_t i = 0; i < n32; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(e + i)));
    store32<kStream>(o + i, _mm256_srl_epi32(_mm256_mullo_epi32(v, f), sh));  // 32-byte rows (stream_rows)
  }
  for (int64_t i = n32; i < n; ++i) o[i] = (int32_t)((e[i] * factor) >> out_shift);
}
#endif

Tensor softmax(const Tensor& x_, int64_t x0, int64_t b, int64_t c, int64_t output_bits, c10::string_view method) {
  check_rows("intops_softmax", x_);
  const bool ibert = method == "ibert";
  TORCH_CHECK(ibert || method == "shiftmax", "pyops.intops_softmax: argument 'method' must be 'ibert' or ",
              "'shiftmax', got '", method, "'");
  check_softmax(x0, b, c, output_bits, ibert);
  const Tensor x = x_.contiguous();
  Tensor out = empty_huge(x.sizes(), x.options().dtype(at::kInt));
  auto e_of = [&](int64_t d) { return ibert ? io::ibert_exp16(-d, x0, b, c) : io::shift_exp(-d, x0, 15); };
  const int out_shift = 32 - (int)output_bits;
  const int64_t span = table_span(x);
  // ibert: from d = 16 |x0| on, q >= 16 and e16 <= round(32767 / 2^16) = 0 (z <= c): left zero
  const int64_t live = ibert ? std::min(span, -16 * x0) : span;
  std::vector<uint32_t> table(span);
  for (int64_t d = 0; d < live; ++d) table[d] = (uint32_t)e_of(d);
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  const bool vec = isa::avx2(), stream = vec && stream_rows(out);
#if defined(PYOPS_ISA_X86)
  // the AVX-512 row: int8 input and a table that fits int16 (I-BERT's e16 <= 2^15 - 1 always)
  const bool wide = isa::active() == isa::kAvx512 && x.scalar_type() == at::kChar &&
                    *std::max_element(table.begin(), table.end()) < 32768u;
  std::vector<int16_t> table16(wide ? 256 : 0);
  for (size_t d = 0; d < table16.size(); ++d) table16[d] = (int16_t)table[d];
#endif
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_softmax", [&] {
    const scalar_t* px = x.const_data_ptr<scalar_t>();
    int32_t* po = out.mutable_data_ptr<int32_t>();
    if (span) {
      at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
#if defined(PYOPS_ISA_X86)
        if (wide) {  // int8 (span 256)
          std::vector<uint16_t> e(n);
          auto row = stream ? &softmax_row_avx512<true> : &softmax_row_avx512<false>;
          const int8_t* p8 = reinterpret_cast<const int8_t*>(px);
          for (int64_t r = lo; r < hi; ++r)
            row(p8 + r * n, po + r * n, n, table.data(), table16.data(), e.data(), ibert, out_shift);
          stream_fence(stream);
          return;
        }
        if (vec) {
          std::vector<uint32_t> e(n);
          auto row = stream ? &softmax_row_avx2<scalar_t, true> : &softmax_row_avx2<scalar_t, false>;
          for (int64_t r = lo; r < hi; ++r) row(px + r * n, po + r * n, n, table.data(), e.data(), ibert, out_shift);
          stream_fence(stream);
          return;
        }
#endif
        for (int64_t r = lo; r < hi; ++r)
          softmax_row_scalar<scalar_t>(px + r * n, po + r * n, n, table.data(), ibert, out_shift);
      });
      return;
    }
    // int32 input: d spans 2^32, evaluate e directly (int64: shiftmax's e may pass 2^32 here)
    at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
      std::vector<int64_t> e64(n);
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* in = px + r * n;
        int32_t* o = po + r * n;
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
  Tensor out = empty_huge(x.sizes(), x.options().dtype(at::kLong));
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
// out = x f(x), f = (y >> 14) + one with y = sign(x)(m^2 + c), m = min(|x|, -b) + b in [b, 0].
// Scalar: with one scale for all channels, f depends on x only through clamp(x, b, -b) and is
// tabulated over that range, as int32 (|f| <= 2^31 by check_gelu; a table with f = 2^31
// somewhere is not built and every element is evaluated).
// AVX2, no table, so per-channel scales vectorise too: f in int32 lanes where every channel's b^2,
// m^2 + c and f fit (I-BERT's constants do for scales above ~1e-4), else m^2 + c in int64 lanes
// where f < 2^31 (the finer scales of a real model's accumulators).
constexpr int64_t kMaxGeluTable = 1 << 20;

// out = x sigma[mx - x] over one int8 row (sigma: its row max's ShiftGELU table).
void shiftgelu_row_scalar(const int8_t* in, int64_t* o, int64_t n, const uint32_t* sigma, int32_t mx) {
  for (int64_t i = 0; i < n; ++i) o[i] = (int64_t)in[i] * (int32_t)sigma[mx - in[i]];
}

#if defined(PYOPS_ISA_X86)
template <bool kStream>
PYOPS_TARGET_AVX2 void shiftgelu_row_avx2(const int8_t* in, int64_t* o, int64_t n, const uint32_t* sigma,
                                          int32_t mx) {
  const int64_t n8 = n / 8 * 8;
  for (int64_t i = 0; i < n8; i += 8) store_products8<kStream>(o + i, load8(in + i), lookup8(sigma, in + i, mx));
  shiftgelu_row_scalar(in + n8, o + n8, n - n8, sigma, mx);
}
#endif

template <typename In>
void gelu_row_table(const In* __restrict in, int64_t* __restrict o, int64_t n, const int32_t* __restrict table,
                    int32_t b) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = in[i] < b ? b : (in[i] > -b ? -b : (int32_t)in[i]);
    o[i] = (int64_t)in[i] * table[v - b];
  }
}

enum class GeluForm { kScalar, kWide, kNarrow };

// Which AVX2 kernel the channels' constants allow, and its int32 constants k: -b (n), and for
// kNarrow c and one (n each).  check_gelu has |f| <= 2^31 and |b| < 2^31.
GeluForm gelu_form(const int64_t* pb, const int64_t* pc, const int64_t* pone, int64_t n, std::vector<int32_t>& k) {
  constexpr int64_t k31 = int64_t(1) << 31;
  bool narrow = true;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t b = pb[j], c = pc[j], one = pone[j], top = b * b + c;  // y's extremes: +-c, +-top
    for (int64_t y : {c, -c, top, -top})
      if ((y >> 14) + one >= k31) return GeluForm::kScalar;  // f = 2^31 is no int32
    narrow = narrow && b * b < k31 && c > -k31 && c < k31 && top > -k31 && top < k31;
  }
  k.resize(3 * n);
  for (int64_t j = 0; j < n; ++j) {
    k[j] = (int32_t)-pb[j];
    if (narrow) k[n + j] = (int32_t)pc[j], k[2 * n + j] = (int32_t)pone[j];
  }
  return narrow ? GeluForm::kNarrow : GeluForm::kWide;
}

#if defined(PYOPS_ISA_X86)
// kWide: m = min(|x|, -b) + b in int32 lanes as for kNarrow, then per 4 lanes in int64: y = m^2 + c,
// negated for x < 0 (at x = 0 any f gives 0), y >> 14 as ~(~y >> 14) for y < 0 (AVX2 has no
// 64-bit arithmetic shift), f = (y >> 14) + one, x f as a 32 x 32 -> 64-bit product (f < 2^31).
// int32 lanes H * 4 .. H * 4 + 3 of v sign-extended to int64
template <int H>
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE __m256i widen_half(__m256i v) {
  return _mm256_cvtepi32_epi64(H ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v));
}

// Elements H * 4 .. H * 4 + 3 of 8: o, c and one point at the 8's first.
template <int H, bool kStream>
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE void gelu_wide4(int64_t* o, __m256i x, __m256i m, __m256i neg, const int64_t* c,
                                                      const int64_t* one) {
  const __m256i zero = _mm256_setzero_si256(), mh = widen_half<H>(m), s = widen_half<H>(neg);
  const __m256i c4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 4 * H));
  const __m256i one4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(one + 4 * H));
  __m256i y = _mm256_add_epi64(_mm256_mul_epi32(mh, mh), c4);
  y = _mm256_sub_epi64(_mm256_xor_si256(y, s), s);
  const __m256i ys = _mm256_cmpgt_epi64(zero, y);
  const __m256i f = _mm256_add_epi64(_mm256_xor_si256(_mm256_srli_epi64(_mm256_xor_si256(y, ys), 14), ys), one4);
  store32<kStream>(o + 4 * H, _mm256_mul_epi32(widen_half<H>(x), f));
}

// k: gelu_form's -b, c, one, each n long.  m = min(|x|, -b) + b, with min taken unsigned for
// |INT32_MIN| = 2^31.  kNarrow: all in int32 lanes, sign_epi32 is sign(x) times; kWide: above.
template <typename In, bool kStream, GeluForm kForm>
PYOPS_TARGET_AVX2 void gelu_row_avx2(const In* __restrict in, int64_t* __restrict o, int64_t n,
                                     const int32_t* __restrict k, const int64_t* pb, const int64_t* pc,
                                     const int64_t* pone) {
  const int64_t n8 = n / 8 * 8;
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256i x = load8(in + i), nb = load8(k + i);
    const __m256i m = _mm256_sub_epi32(_mm256_min_epu32(_mm256_abs_epi32(x), nb), nb);
    if constexpr (kForm == GeluForm::kNarrow) {
      const __m256i y = _mm256_sign_epi32(_mm256_add_epi32(_mm256_mullo_epi32(m, m), load8(k + n + i)), x);
      store_products8<kStream>(o + i, x, _mm256_add_epi32(_mm256_srai_epi32(y, 14), load8(k + 2 * n + i)));
    } else {
      const __m256i neg = _mm256_srai_epi32(x, 31);
      gelu_wide4<0, kStream>(o + i, x, m, neg, pc + i, pone + i);
      gelu_wide4<1, kStream>(o + i, x, m, neg, pc + i, pone + i);
    }
  }
  for (int64_t i = n8; i < n; ++i) o[i] = io::ibert_gelu(in[i], pb[i], pc[i], pone[i]);
}
#endif

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
  Tensor out = empty_huge(x.sizes(), x.options().dtype(at::kLong));
  std::vector<int32_t> k32;
  const GeluForm form = isa::avx2() ? gelu_form(pb, pc, pone, channels, k32) : GeluForm::kScalar;
  const bool vec = form != GeluForm::kScalar, stream = vec && stream_rows(out);
  bool tabulate = !vec && b_.size(0) == 1 && channels > 0 && -2 * pb[0] + 1 <= kMaxGeluTable;
  std::vector<int32_t> table(tabulate ? -2 * pb[0] + 1 : 0);
  for (int64_t v = 0; v < (int64_t)table.size() && tabulate; ++v) {
    const int64_t f = io::ibert_gelu_factor(v + pb[0], pb[0], pc[0], pone[0]);
    tabulate = f <= INT32_MAX;  // f >= -2^31 by check_gelu
    table[v] = (int32_t)f;
  }
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_gelu", [&] {
    for_rows<scalar_t, int64_t>(x, out, [&](const scalar_t* in, int64_t* o, int64_t n) {
#if defined(PYOPS_ISA_X86)
      if (form == GeluForm::kNarrow)
        return (stream ? &gelu_row_avx2<scalar_t, true, GeluForm::kNarrow>
                       : &gelu_row_avx2<scalar_t, false, GeluForm::kNarrow>)(in, o, n, k32.data(), pb, pc, pone);
      if (form == GeluForm::kWide)
        return (stream ? &gelu_row_avx2<scalar_t, true, GeluForm::kWide>
                       : &gelu_row_avx2<scalar_t, false, GeluForm::kWide>)(in, o, n, k32.data(), pb, pc, pone);
#endif
      if (tabulate) return gelu_row_table(in, o, n, table.data(), (int32_t)pb[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = io::ibert_gelu(in[i], pb[i], pc[i], pone[i]);
    }, stream);
  });
  return out;
}

// I-ViT ShiftGELU: x sigma(1.702 x), sigma from two shift-exps normalised per row.
// sigma depends on (rowmax, x) only: for int8 x each task tabulates it over d = rowmax - x the
// first time a row has that max (at most 256 rows of 256 entries), so the two int64 divisions per
// element become one lookup.
Tensor shiftgelu(const Tensor& x_, int64_t x0, int64_t output_bits) {
  check_rows("intops_shiftgelu", x_);
  check_shiftgelu(x0, output_bits);
  const Tensor x = x_.contiguous();
  Tensor out = empty_huge(x.sizes(), x.options().dtype(at::kLong));
  const int out_shift = 32 - (int)output_bits;
  auto sigma = [&](int64_t v, int64_t mx, int64_t e_max) {
    const int64_t e = io::shift_exp(v - mx, x0, 23);
    int64_t total = e + e_max;
    total = total < 2147483647 ? total : 2147483647;
    return (e * (2147483647 / total)) >> out_shift;
  };
  if (x.scalar_type() == at::kChar) {
    const int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
    const int8_t* px = x.const_data_ptr<int8_t>();
    int64_t* po = out.mutable_data_ptr<int64_t>();
    const bool vec = isa::avx2(), stream = vec && stream_rows(out);
    auto row = &shiftgelu_row_scalar;
    auto row_max = &row_max_scalar<int8_t>;
#if defined(PYOPS_ISA_X86)
    if (vec) {
      row = stream ? &shiftgelu_row_avx2<true> : &shiftgelu_row_avx2<false>;
      row_max = &row_max_avx2<int8_t>;
    }
#endif
    at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
      std::vector<uint32_t> table(256 * 256);  // [rowmax + 128][d]; sigma < 2^31 >> out_shift
      bool built[256] = {};
      for (int64_t r = lo; r < hi; ++r) {
        const int8_t* in = px + r * n;
        const int32_t mx = row_max(in, n);
        uint32_t* t = table.data() + (mx + 128) * 256;
        if (!built[mx + 128]) {
          const int64_t e_max = io::shift_exp(-mx, x0, 23);
          for (int64_t d = 0; d <= mx + 128; ++d) t[d] = (uint32_t)sigma(mx - d, mx, e_max);
          built[mx + 128] = true;
        }
        row(in, po + r * n, n, t, mx);
      }
      stream_fence(stream);
    });
    return out;
  }
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_shiftgelu", [&] {
    for_rows<scalar_t, int64_t>(x, out, [&](const scalar_t* in, int64_t* o, int64_t n) {
      const int64_t mx = row_max_scalar(in, n), e_max = io::shift_exp(-mx, x0, 23);
      for (int64_t i = 0; i < n; ++i) o[i] = (int64_t)in[i] * sigma(in[i], mx, e_max);
    });
  });
  return out;
}

// ----------------------------------------------------------------- LayerNorm
// Per row: mean = round(sum / n), s = the variance shift, var = sum ((x - mean) >> s)^2,
// factor from the (exact or Newton) sqrt, out = (((x - mean) factor) >> 1) + bias, truncated to
// int32.  The AVX2 copy gets the same integers by other routes:
//  * 8/16-bit x: one pass gathers sum x, sum x^2, min and max; at s = 0 the variance is
//    sum x^2 - 2 mean sum x + n mean^2 = sum (x - mean)^2 exactly (every term and partial sum
//    within int64 for n < 2^31);
//  * x - mean in int32 lanes when the row's |x - mean| < 2^31 (always for 8/16-bit x);
//  * the output mod 2^32: (int32)((p >> 1) + bias) is bits 1..32 of p = (x - mean) factor plus
//    bias's low 32 bits, and a 64-bit logical shift has those bits too; factor < 2^31 keeps p a
//    signed 32 x 32-bit product.
// Rows outside those ranges take the int64 loops.
inline int64_t layernorm_factor(int64_t var, int s, bool exact) {
  if (exact) {
    const int64_t std = io::isqrt(var) << s;
    return std > 0 ? (int64_t(1) << 31) / std : 0;  // constant row: output = bias
  }
  return int64_t(2147483647) / (io::newton_sqrt(var) << s);
}

template <typename In>
PYOPS_ALWAYS_INLINE int64_t layernorm_var(const In* in, int64_t begin, int64_t len, int64_t mean, int s) {
  int64_t var = 0;  // < 2^63 by the choice of s
  for (int64_t i = begin; i < len; ++i) {
    const int64_t y = (in[i] - mean) >> s;
    var += y * y;
  }
  return var;
}

// |x - mean| <= std + 2^s, so (x - mean) factor stays near 2^31.
template <typename In>
PYOPS_ALWAYS_INLINE void layernorm_out(const In* in, int32_t* o, int64_t begin, int64_t len, const int64_t* pbias,
                                       int64_t mean, int64_t factor) {
  for (int64_t i = begin; i < len; ++i) o[i] = (int32_t)((((in[i] - mean) * factor) >> 1) + pbias[i]);
}

template <typename In>
void layernorm_row_scalar(const In* __restrict in, int32_t* __restrict o, int64_t len, const int64_t* pbias,
                          const int32_t*, int64_t limit, int shift, bool exact) {
  int64_t sum = 0, lo = INT64_MAX, hi = INT64_MIN;  // |x| < 2^31 and len < 2^31: no overflow
  for (int64_t i = 0; i < len; ++i) {
    sum += in[i];
    lo = in[i] < lo ? in[i] : lo;
    hi = in[i] > hi ? in[i] : hi;
  }
  const int64_t mean = io::round_div(sum, len);
  const int s = io::layernorm_shift_within(hi - mean > mean - lo ? hi - mean : mean - lo, limit, shift);
  layernorm_out(in, o, 0, len, pbias, mean, layernorm_factor(layernorm_var(in, 0, len, mean, s), s, exact));
}

#if defined(PYOPS_ISA_X86)
// bias32: the low 32 bits of each channel's bias.
template <typename In, bool kStream>
PYOPS_TARGET_AVX2 void layernorm_row_avx2(const In* __restrict in, int32_t* __restrict o, int64_t len,
                                          const int64_t* pbias, const int32_t* __restrict bias32, int64_t limit,
                                          int shift, bool exact) {
  constexpr bool kNarrow = sizeof(In) <= 2;
  const int64_t n8 = len / 8 * 8;
  __m256i vlo = _mm256_set1_epi32(INT32_MAX), vhi = _mm256_set1_epi32(INT32_MIN);
  __m256i sum64 = _mm256_setzero_si256(), sq64 = _mm256_setzero_si256();
  for (int64_t i = 0; i < n8;) {
    // 8/16-bit x: int32 lane sums of up to 2^15 steps of |x| <= 2^15 stay below 2^30
    const int64_t end = kNarrow ? std::min(n8, i + 8 * (int64_t(1) << 15)) : n8;
    __m256i sum32 = _mm256_setzero_si256();
    for (; i < end; i += 8) {
      const __m256i x = load8(in + i);
      vlo = _mm256_min_epi32(vlo, x);
      vhi = _mm256_max_epi32(vhi, x);
      if constexpr (kNarrow) {
        sum32 = _mm256_add_epi32(sum32, x);
        const __m256i xo = _mm256_srli_epi64(x, 32);
        sq64 = _mm256_add_epi64(sq64, _mm256_add_epi64(_mm256_mul_epi32(x, x), _mm256_mul_epi32(xo, xo)));
      } else {
        sum64 = add_widened(sum64, x, true);
      }
    }
    if constexpr (kNarrow) sum64 = add_widened(sum64, sum32, true);
  }
  int64_t sum = hsum_epi64(sum64), sq = hsum_epi64(sq64);
  int64_t lo = n8 ? hmin_epi32(vlo) : INT64_MAX, hi = n8 ? hmax_epi32(vhi) : INT64_MIN;
  for (int64_t i = n8; i < len; ++i) {
    sum += in[i];
    if constexpr (kNarrow) sq += (int64_t)in[i] * in[i];  // (int32 x: unused, and may pass int64)
    lo = in[i] < lo ? in[i] : lo;
    hi = in[i] > hi ? in[i] : hi;
  }
  const int64_t mean = io::round_div(sum, len);
  const int64_t maxdev = hi - mean > mean - lo ? hi - mean : mean - lo;
  const int s = io::layernorm_shift_within(maxdev, limit, shift);
  const bool narrow_lanes = maxdev < (int64_t(1) << 31);
  const __m256i meanv = _mm256_set1_epi32((int32_t)mean);  // lo <= mean <= hi: an int32
  int64_t var;
  if (kNarrow && s == 0 && len < (int64_t(1) << 31)) {
    var = sq - 2 * mean * sum + len * mean * mean;
  } else if (narrow_lanes) {
    const __m128i sh = _mm_cvtsi32_si128(s);
    __m256i acc = _mm256_setzero_si256();
    for (int64_t i = 0; i < n8; i += 8) {
      const __m256i y = _mm256_sra_epi32(_mm256_sub_epi32(load8(in + i), meanv), sh);
      const __m256i yo = _mm256_srli_epi64(y, 32);
      acc = _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_mul_epi32(y, y), _mm256_mul_epi32(yo, yo)));
    }
    var = hsum_epi64(acc) + layernorm_var(in, n8, len, mean, s);
  } else {
    var = layernorm_var(in, 0, len, mean, s);
  }
  const int64_t factor = layernorm_factor(var, s, exact);
  if (!narrow_lanes || factor >= (int64_t(1) << 31)) return layernorm_out(in, o, 0, len, pbias, mean, factor);
  const __m256i f = _mm256_set1_epi32((int32_t)factor);
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256i y = _mm256_sub_epi32(load8(in + i), meanv);
    const __m256i pe = _mm256_mul_epi32(y, f), po = _mm256_mul_epi32(_mm256_srli_epi64(y, 32), f);
    // bits 1..32 of each product: the even ones shifted down, the odd ones up into the high halves
    const __m256i v = _mm256_blend_epi32(_mm256_srli_epi64(pe, 1), _mm256_slli_epi64(po, 31), 0xAA);
    store32<kStream>(o + i, _mm256_add_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias32 + i))));
  }
  layernorm_out(in, o, n8, len, pbias, mean, factor);
}
#endif

Tensor layernorm(const Tensor& x_, const Tensor& bias_, int64_t shift, c10::string_view sqrt) {
  check_rows("intops_layernorm", x_);
  const bool exact = sqrt == "exact";
  TORCH_CHECK(exact || sqrt == "newton", "pyops.intops_layernorm: argument 'isqrt' must be 'exact' or 'newton', ",
              "got '", sqrt, "'");
  TORCH_CHECK(shift >= 0 && shift < 32, "pyops.intops_layernorm: argument 'shift' must be in [0, 32), got ", shift);
  const int64_t n = x_.size(-1);
  const Tensor x = x_.contiguous(), bias = channel_constant("intops_layernorm", "bias_int", bias_, n);
  const int64_t* pbias = bias.const_data_ptr<int64_t>();
  Tensor out = empty_huge(x.sizes(), x.options().dtype(at::kInt));
  const bool vec = isa::avx2(), stream = vec && stream_rows(out);
  const int64_t limit = io::layernorm_shift_limit(n);
  std::vector<int32_t> bias32(vec ? n : 0);
  for (int64_t i = 0; i < (int64_t)bias32.size(); ++i) bias32[i] = (int32_t)(uint32_t)pbias[i];
  PYOPS_DISPATCH_INT(x.scalar_type(), "intops_layernorm", [&] {
    auto row = &layernorm_row_scalar<scalar_t>;
#if defined(PYOPS_ISA_X86)
    if (vec) row = stream ? &layernorm_row_avx2<scalar_t, true> : &layernorm_row_avx2<scalar_t, false>;
#endif
    for_rows<scalar_t, int32_t>(x, out, [&](const scalar_t* in, int32_t* o, int64_t len) {
      row(in, o, len, pbias, bias32.data(), limit, (int)shift, exact);
    }, stream);
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

// Per-channel constants for rq_avx2, kRqBlock int64 per 8 channels j..j+7: m, bias, shift, pshift,
// lo, hi, each as 4 lanes of (j, j+2, j+4, j+6) then 4 of (j+1, j+3, j+5, j+7); then K's low 32 bits
// as 8 int32 lanes of j..j+7.
constexpr int64_t kRqBlock = 52;
constexpr int64_t kRqRows = 8;  // rows per pass over the per-channel constants

#if defined(PYOPS_ISA_X86)
// 4 results plus K, clamped, in int64 lanes, from the low (signed) 32 bits of each lane of x
PYOPS_TARGET_AVX2 PYOPS_ALWAYS_INLINE __m256i rq4(__m256i x, __m256i m, __m256i bias, __m256i shift,
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
PYOPS_TARGET_AVX2 void rq_avx2(const In* __restrict in, int32_t* __restrict o, int64_t nblocks,
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
      const __m256i x = load8(in + r * stride + 8 * k);
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
  Tensor out = empty_huge(x.sizes(), x.options().dtype(at::kInt));
  const int64_t numel = x.numel();
  if (numel == 0) return out;
  // one (m, e) for all channels: a flat loop; else per channel, 8-channel blocks below C8 vectorised
  // (C8: C rounded down to a multiple of 8), the channels from C8 on scalar
  bool uniform = true;
  for (int64_t j = 1; j < channels && uniform; ++j) uniform = pm[j] == pm[0] && pe[j] == pe[0];
  const int64_t c8 = channels / 8 * 8;
  std::vector<int64_t> blocks;
  if (isa::avx2()) {
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
#if defined(PYOPS_ISA_X86)
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
#if defined(PYOPS_ISA_X86)
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
