// fewbit CPU kernels: encode (bucketize + pack, one pass), the fused forward
// (activation + encode, one pass over memory) and backward (unpack + level
// gather + multiply, one pass), in parallel over 8-element groups, each owning
// its b bytes of the code stream.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <type_traits>

#include "fewbit_args.h"
#include "alloc.h"
#include "isa.h"
#include "simd.h"
#include "pyops/fewbit.h"

namespace pyops {
namespace {

namespace fb = pyops::fewbit;
using at::Tensor;
using namespace fewbit_args;

constexpr int64_t kBlock = 1024;           // elements whose codes are staged in registers/L1

// A call's inner borders, and for bf16 inputs (AVX2, AVX-512) each as the int16 key of the largest
// bf16 <= it: a bf16 x is > b iff it is > that bf16, and keys (the bits, magnitude flipped when
// negative) order as the values do, -0 and +0 apart, so -0 is keyed as +0 (NaN borders: above every
// key).
struct Borders {
  const float* values;
  int count;
  bool sorted;  // non-decreasing, no NaN: the compare masks form a thermometer code (counts need no order)
  bool signs;   // sorted, each finite and normal or zero: float codes from the signs of b - x (codes16_signs)
  int16_t keys[255];

  Borders(const float* b, int n) : values(b), count(n), sorted(true), signs(true) {
    for (int t = 0; t < n; ++t) {
      if (!(t == 0 || b[t - 1] <= b[t]) || std::isnan(b[t])) sorted = false;
      if (!std::isfinite(b[t]) || !(b[t] == 0 || std::isnormal(b[t]))) signs = false;
      uint32_t u;
      std::memcpy(&u, &b[t], 4);
      uint16_t h = (uint16_t)(u >> 16);                    // toward zero
      if (std::isnan(b[t])) {
        keys[t] = INT16_MAX;
        continue;
      }
      if ((u & 0xFFFF) && (u >> 31)) ++h;                  // negative, inexact: the next bf16 down
      if (h == 0x8000) h = 0;
      keys[t] = (int16_t)(h & 0x8000 ? h ^ 0x7FFF : h);
    }
    signs = signs && sorted;
  }
};

// Codes of a block of floats: one vectorisable compare pass per border.
void block_codes_generic(const float* __restrict x, int64_t len, const float* __restrict borders, int n_borders,
                         uint8_t* __restrict codes) {
  for (int64_t i = 0; i < len; ++i) codes[i] = 0;
  for (int t = 0; t < n_borders; ++t) {
    const float b = borders[t];
    for (int64_t i = 0; i < len; ++i) codes[i] += x[i] > b;  // NaN compares false: code 0
  }
}

#if defined(__x86_64__)
// AVX2: the codes of 32 elements, in order, as bytes: their int32 counts in four
// registers across all borders (a compare mask is -1), then narrowed.
PYOPS_TARGET_AVX2 inline __m256i codes32_avx2(const float* __restrict x, const float* __restrict borders,
                                              int n_borders) {
  const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
  const __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int t = 0; t < n_borders; ++t) {
    const __m256 b = _mm256_broadcast_ss(borders + t);
    a0 = _mm256_sub_epi32(a0, _mm256_castps_si256(_mm256_cmp_ps(x0, b, _CMP_GT_OQ)));  // NaN: false
    a1 = _mm256_sub_epi32(a1, _mm256_castps_si256(_mm256_cmp_ps(x1, b, _CMP_GT_OQ)));
    a2 = _mm256_sub_epi32(a2, _mm256_castps_si256(_mm256_cmp_ps(x2, b, _CMP_GT_OQ)));
    a3 = _mm256_sub_epi32(a3, _mm256_castps_si256(_mm256_cmp_ps(x3, b, _CMP_GT_OQ)));
  }
  const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));  // undo the packs' interleave
}

// bf16 codes at AVX2: 16 elements per compare, as int16 keys (see Borders), NaN keyed below every border.
PYOPS_TARGET_AVX2 inline __m256i codes32_avx2(const at::BFloat16* __restrict x, const int16_t* __restrict keys,
                                              int n_borders) {
  __m256i k[2], a[2];
  for (int r = 0; r < 2; ++r) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 16 * r));
    const __m256i key = _mm256_xor_si256(v, _mm256_and_si256(_mm256_srai_epi16(v, 15), _mm256_set1_epi16(0x7FFF)));
    const __m256i nan =
        _mm256_cmpgt_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7FFF)), _mm256_set1_epi16(0x7F80));
    k[r] = _mm256_blendv_epi8(key, _mm256_set1_epi16(INT16_MIN), nan);
    a[r] = _mm256_setzero_si256();
  }
  for (int t = 0; t < n_borders; ++t) {
    const __m256i b = _mm256_set1_epi16(keys[t]);
    for (int r = 0; r < 2; ++r) a[r] = _mm256_sub_epi16(a[r], _mm256_cmpgt_epi16(k[r], b));
  }
  return _mm256_permute4x64_epi64(_mm256_packus_epi16(a[0], a[1]), 0xD8);  // undo the pack's interleave
}

PYOPS_TARGET_AVX2 void block_codes_avx2(const float* __restrict x, int64_t len, const float* __restrict borders,
                                        int n_borders, uint8_t* __restrict codes) {
  int64_t i = 0;
  for (; i + 32 <= len; i += 32)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i), codes32_avx2(x + i, borders, n_borders));
  if (i < len) block_codes_generic(x + i, len - i, borders, n_borders, codes + i);
}

// Codes of 32 elements packed in registers (pack8_word on each 64-bit lane) and
// stored as 4 overlapping 8-byte words, each group's BITS bytes followed by zeros
// that the next group overwrites.  Returns how many elements it encoded: it stops
// where the last word would spill past the block's `bytes` bytes of stream.
template <int BITS, typename T>
PYOPS_TARGET_AVX2 int64_t block_encode_avx2(const T* __restrict x, int64_t len, const Borders& borders,
                                            uint8_t* __restrict out, int64_t bytes) {
  const __m256i m8 = _mm256_set1_epi64x(0x00FF00FF00FF00FFll), m16 = _mm256_set1_epi64x(0x0000FFFF0000FFFFll);
  const __m256i m32 = _mm256_set1_epi64x(0x00000000FFFFFFFFll);
  int64_t i = 0;
  for (; i + 32 <= len && (i / 8 + 3) * BITS + 8 <= bytes; i += 32) {
    __m256i w;
    if constexpr (std::is_same_v<T, float>) {
      w = codes32_avx2(x + i, borders.values, borders.count);
    } else {
      w = codes32_avx2(x + i, borders.keys, borders.count);
    }
    w = _mm256_or_si256(_mm256_and_si256(w, m8), _mm256_srli_epi64(_mm256_andnot_si256(m8, w), 8 - BITS));
    w = _mm256_or_si256(_mm256_and_si256(w, m16), _mm256_srli_epi64(_mm256_andnot_si256(m16, w), 16 - 2 * BITS));
    w = _mm256_or_si256(_mm256_and_si256(w, m32), _mm256_srli_epi64(_mm256_andnot_si256(m32, w), 32 - 4 * BITS));
    const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
    uint8_t* dst = out + i / 8 * BITS;
    const uint64_t w0 = (uint64_t)_mm_cvtsi128_si64(lo), w1 = (uint64_t)_mm_extract_epi64(lo, 1);
    const uint64_t w2 = (uint64_t)_mm_cvtsi128_si64(hi), w3 = (uint64_t)_mm_extract_epi64(hi, 1);
    std::memcpy(dst, &w0, 8);
    std::memcpy(dst + BITS, &w1, 8);
    std::memcpy(dst + 2 * BITS, &w2, 8);
    std::memcpy(dst + 3 * BITS, &w3, 8);
  }
  return i;
}

// AVX-512: the codes of 64 elements as bytes, counted in int32 lanes (a compare mask widened to
// -1 lanes and subtracted: ~3x the throughput of a merge-masked add on Zen 5), narrowed in order.
PYOPS_TARGET_AVX512 inline __m512i codes64_avx512(const float* __restrict x, const float* __restrict borders,
                                                  int n_borders) {
  __m512 xs[4];
  __m512i a[4];
  for (int r = 0; r < 4; ++r) xs[r] = _mm512_loadu_ps(x + 16 * r), a[r] = _mm512_setzero_si512();
  for (int t = 0; t < n_borders; ++t) {
    const __m512 b = _mm512_set1_ps(borders[t]);
    for (int r = 0; r < 4; ++r)
      a[r] = _mm512_sub_epi32(a[r], _mm512_movm_epi32(_mm512_cmp_ps_mask(xs[r], b, _CMP_GT_OQ)));  // NaN: false
  }
  __m512i bytes = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(a[0]));
  bytes = _mm512_inserti32x4(bytes, _mm512_cvtepi32_epi8(a[1]), 1);
  bytes = _mm512_inserti32x4(bytes, _mm512_cvtepi32_epi8(a[2]), 2);
  return _mm512_inserti32x4(bytes, _mm512_cvtepi32_epi8(a[3]), 3);
}

PYOPS_TARGET_AVX512 void block_codes_avx512(const float* __restrict x, int64_t len, const float* __restrict borders,
                                            int n_borders, uint8_t* __restrict codes) {
  int64_t i = 0;
  for (; i + 64 <= len; i += 64) _mm512_storeu_si512(codes + i, codes64_avx512(x + i, borders, n_borders));
  if (i < len) block_codes_avx2(x + i, len - i, borders, n_borders, codes + i);
}

// The int16 keys of 32 bf16s (see Borders: the bits, magnitude flipped when negative), and which
// of them are NaN.
PYOPS_TARGET_AVX512 inline __m512i bf16_keys(const at::BFloat16* x, __mmask32* nan) {
  const __m512i v = _mm512_loadu_si512(x);
  *nan = _mm512_cmpgt_epi16_mask(_mm512_and_si512(v, _mm512_set1_epi16(0x7FFF)), _mm512_set1_epi16(0x7F80));
  return _mm512_ternarylogic_epi32(v, _mm512_srai_epi16(v, 15), _mm512_set1_epi16(0x7FFF), 0x78);  // v ^ (s & m)
}

// bf16 codes at AVX-512: 32 elements per compare, as int16 keys ordered as the values (x > b iff
// key(x) > key(the largest bf16 <= b), see Borders), NaN keyed below every border.
PYOPS_TARGET_AVX512 inline __m512i codes64_avx512(const at::BFloat16* __restrict x, const int16_t* __restrict keys,
                                                  int n_borders) {
  __m512i k[2], a[2];
  for (int r = 0; r < 2; ++r) {
    __mmask32 nan;
    const __m512i key = bf16_keys(x + 32 * r, &nan);
    k[r] = _mm512_mask_mov_epi16(key, nan, _mm512_set1_epi16(INT16_MIN));
    a[r] = _mm512_setzero_si512();
  }
  for (int t = 0; t < n_borders; ++t) {
    const __m512i b = _mm512_set1_epi16(keys[t]);
    for (int r = 0; r < 2; ++r) a[r] = _mm512_sub_epi16(a[r], _mm512_movm_epi16(_mm512_cmpgt_epi16_mask(k[r], b)));
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi16_epi8(a[0])), _mm512_cvtepi16_epi8(a[1]), 1);
}

// block_encode_avx2 on 64 elements (float or bf16); each 128-bit lane's two packed groups are moved
// together (vpshufb) and stored as 2 * BITS bytes under a mask, so nothing spills past the block.
template <int BITS, typename T>
PYOPS_TARGET_AVX512 int64_t block_encode_avx512(const T* __restrict x, int64_t len, const Borders& borders,
                                                uint8_t* __restrict out) {
  const __m512i m8 = _mm512_set1_epi64(0x00FF00FF00FF00FFll), m16 = _mm512_set1_epi64(0x0000FFFF0000FFFFll);
  const __m512i m32 = _mm512_set1_epi64(0x00000000FFFFFFFFll);
  alignas(64) int8_t order[64];  // per lane: bytes [0, BITS) of its first word, then of its second
  for (int j = 0; j < 64; ++j) {
    const int k = j % 16;
    order[j] = (int8_t)(k < BITS ? k : k < 2 * BITS ? 8 + k - BITS : -1);
  }
  const __m512i shuffle = _mm512_load_si512(order);
  const __mmask16 keep = (__mmask16)((1u << (2 * BITS)) - 1);
  int64_t i = 0;
  for (; i + 64 <= len; i += 64) {
    __m512i w;
    if constexpr (std::is_same_v<T, float>) {
      w = codes64_avx512(x + i, borders.values, borders.count);
    } else {
      w = codes64_avx512(x + i, borders.keys, borders.count);
    }
    w = _mm512_or_si512(_mm512_and_si512(w, m8), _mm512_srli_epi64(_mm512_andnot_si512(m8, w), 8 - BITS));
    w = _mm512_or_si512(_mm512_and_si512(w, m16), _mm512_srli_epi64(_mm512_andnot_si512(m16, w), 16 - 2 * BITS));
    w = _mm512_or_si512(_mm512_and_si512(w, m32), _mm512_srli_epi64(_mm512_andnot_si512(m32, w), 32 - 4 * BITS));
    w = _mm512_shuffle_epi8(w, shuffle);
    uint8_t* dst = out + i / 8 * BITS;
    _mm_mask_storeu_epi8(dst, keep, _mm512_castsi512_si128(w));
    _mm_mask_storeu_epi8(dst + 2 * BITS, keep, _mm512_extracti32x4_epi32(w, 1));
    _mm_mask_storeu_epi8(dst + 4 * BITS, keep, _mm512_extracti32x4_epi32(w, 2));
    _mm_mask_storeu_epi8(dst + 6 * BITS, keep, _mm512_extracti32x4_epi32(w, 3));
  }
  return i;
}

// The bits of element e's code at bit e * bits + j of a 16-element group's word.
constexpr uint64_t deposit_mask(int bits, int j) {
  uint64_t m = 0;
  for (int e = 0; e < 16; ++e) m |= uint64_t(1) << (e * bits + j);
  return m;
}

// Sorted borders' compare masks form a thermometer code, so bit j of a code is the XOR of the masks
// of borders k 2^j (k >= 1).  Here each mask is the sign bit of a lane of d[t] (t = 1 .. 2^BITS - 1),
// so a bit plane is an XOR of whole registers, three at a time, and one sign test: 1.8x the speed of
// a compare into a mask register per border, XORed on the integer side (Zen 5, 3 bits, in L1).
template <int BITS>
PYOPS_TARGET_AVX512 inline void bit_planes(const __m512i* d, __m512i* plane) {
  constexpr int kBorders = (1 << BITS) - 1;
#pragma GCC unroll 4
  for (int j = 0; j < BITS; ++j) {
    const int s = 1 << j;
    __m512i p = d[s];
    int t = 2 * s;
#pragma GCC unroll 8
    for (; t + s <= kBorders; t += 2 * s) p = _mm512_ternarylogic_epi32(p, d[t], d[t + s], 0x96);  // a ^ b ^ c
    if (t <= kBorders) p = _mm512_xor_si512(p, d[t]);
    plane[j] = p;
  }
}

// The codes of 16 floats, packed (2 BITS bytes), against borders b (Borders::signs, -0 read as +0).
// b - x rounds to the exact difference's sign, or to +0 when x = b, in every rounding, flush-to-zero
// and denormals-are-zero mode, so its sign bit is x > b; a NaN x gives its own sign and is cleared.
template <int BITS>
PYOPS_TARGET_AVX512 inline uint64_t codes16_signs(__m512 v, const __m512* b) {
  constexpr int kBorders = (1 << BITS) - 1;
  __m512i d[kBorders + 1], plane[BITS];
#pragma GCC unroll 16
  for (int t = 1; t <= kBorders; ++t) d[t] = _mm512_castps_si512(_mm512_sub_ps(b[t - 1], v));
  bit_planes<BITS>(d, plane);
  const __mmask16 ordered = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
  const __m512i sign = _mm512_set1_epi32(INT32_MIN);
  uint64_t w = 0;
#pragma GCC unroll 4
  for (int j = 0; j < BITS; ++j)
    w |= _pdep_u64(_mm512_mask_test_epi32_mask(ordered, plane[j], sign), deposit_mask(BITS, j));
  return w;
}

// The codes of 32 bf16s, packed into their 4 BITS bytes at dst, from their int16 keys (see Borders):
// key(b) - key(x), saturated, is negative iff x > b; NaN lanes are cleared.
template <int BITS>
PYOPS_TARGET_AVX512 inline void codes32_signs(const at::BFloat16* x, const __m512i* keys, uint8_t* dst) {
  constexpr int kBorders = (1 << BITS) - 1;
  __mmask32 nan;
  const __m512i key = bf16_keys(x, &nan);
  const __mmask32 ordered = ~nan;
  __m512i d[kBorders + 1], plane[BITS];
#pragma GCC unroll 16
  for (int t = 1; t <= kBorders; ++t) d[t] = _mm512_subs_epi16(keys[t - 1], key);
  bit_planes<BITS>(d, plane);
  uint64_t w[2] = {};
#pragma GCC unroll 4
  for (int j = 0; j < BITS; ++j) {
    const uint32_t m = _mm512_mask_test_epi16_mask(ordered, plane[j], _mm512_set1_epi16(INT16_MIN));
    w[0] |= _pdep_u64(m & 0xFFFF, deposit_mask(BITS, j));
    w[1] |= _pdep_u64(m >> 16, deposit_mask(BITS, j));
  }
  std::memcpy(dst, &w[0], 2 * BITS);
  std::memcpy(dst + 2 * BITS, &w[1], 2 * BITS);
}

// The borders broadcast as codes16_signs (floats, -0 as +0) and codes32_signs (bf16 keys) take them.
template <int BITS>
struct SignBorders {
  __m512 values[(1 << BITS) - 1];
  __m512i keys[(1 << BITS) - 1];

  PYOPS_TARGET_AVX512 explicit SignBorders(const Borders& borders) {
    for (int t = 0; t < (1 << BITS) - 1; ++t) {
      values[t] = _mm512_set1_ps(borders.values[t] == 0 ? 0.0f : borders.values[t]);
      keys[t] = _mm512_set1_epi16(borders.keys[t]);
    }
  }
};

// block_encode_avx512 for <= 4 bits and sorted borders: 16 floats or 32 bf16s per step (Borders::signs
// for floats, sorted for bf16).  Returns how many elements it encoded.
template <int BITS, typename T>
PYOPS_TARGET_AVX512 int64_t block_encode_signs(const T* __restrict x, int64_t len, const Borders& borders,
                                               uint8_t* __restrict out) {
  static_assert(BITS <= 4, "a code word per 16 elements");
  const SignBorders<BITS> b(borders);
  int64_t i = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; i + 16 <= len; i += 16) {
      const uint64_t w = codes16_signs<BITS>(_mm512_loadu_ps(x + i), b.values);
      std::memcpy(out + i / 8 * BITS, &w, 2 * BITS);
    }
  } else {
    for (; i + 32 <= len; i += 32) codes32_signs<BITS>(x + i, b.keys, out + i / 8 * BITS);
  }
  return i;
}

#endif

void block_codes(const float* x, int64_t len, const float* borders, int n_borders, uint8_t* codes) {
#if defined(__x86_64__)
  if (isa::active() == isa::kAvx512) return block_codes_avx512(x, len, borders, n_borders, codes);
  if (isa::avx2()) return block_codes_avx2(x, len, borders, n_borders, codes);
#endif
  block_codes_generic(x, len, borders, n_borders, codes);
}

// Full 8-element groups of a block <-> their BITS bytes; BITS is a template
// argument so every shift is a constant and the 8-element loops unroll.
template <int BITS>
void pack_groups(const uint8_t* __restrict codes, int64_t groups, uint8_t* __restrict out) {
  for (int64_t g = 0; g < groups; ++g) {
    uint64_t w;
    std::memcpy(&w, codes + g * 8, 8);
    w = fb::pack8_word(w, BITS);
    std::memcpy(out + g * BITS, &w, BITS);  // little-endian: LSB-first stream
  }
}

template <typename Fn>
auto with_bits(int bits, Fn fn) {  // fn(BITS as a compile-time constant)
  switch (bits) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    case 5: return fn(std::integral_constant<int, 5>{});
    case 6: return fn(std::integral_constant<int, 6>{});
    case 7: return fn(std::integral_constant<int, 7>{});
    default: return fn(std::integral_constant<int, 8>{});
  }
}

// The block's whole vector steps straight from registers (float or bf16 x, dst its first byte of the
// stream); returns how many elements that encoded.
template <typename T>
int64_t encode_vectors(const T* x, int64_t len, const Borders& borders, uint8_t* dst, int bits) {
#if defined(__x86_64__)
  if (isa::avx2()) {
    return with_bits(bits, [&](auto b) {
      if (isa::active() == isa::kAvx512) {
        if constexpr (b() <= 4) {
          if (std::is_same_v<T, float> ? borders.signs : borders.sorted)
            return block_encode_signs<b()>(x, len, borders, dst);
        }
        return block_encode_avx512<b()>(x, len, borders, dst);
      }
      return block_encode_avx2<b()>(x, len, borders, dst, len / 8 * bits);
    });
  }
#endif
  return 0;
}

// Codes of x[base, base + len) -> their bytes of the stream.  Blocks start at a
// multiple of 8 elements and own len / 8 * bits bytes; the stream's last group
// may be short: it is packed through a padded scratch group.  xb is x + base as
// floats (codes never depend on the dtype).
void encode_floats(const float* xb, int64_t base, int64_t len, const Borders& borders, uint8_t* out,
                   int64_t n_bytes, int bits) {
  const int64_t done = encode_vectors(xb, len, borders, out + base / 8 * bits, bits);  // the rest: below
  xb += done;
  base += done;
  len -= done;
  if (len == 0) return;
  uint8_t codes[kBlock];
  block_codes(xb, len, borders.values, borders.count, codes);
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

PYOPS_ALWAYS_INLINE void widen_bf16_body(const at::BFloat16* __restrict x, float* __restrict out, int64_t len) {
  for (int64_t i = 0; i < len; ++i) out[i] = (float)x[i];  // vectorised per ISA: a 16-bit shift
}
PYOPS_ISA_FUNCTION(void, widen_bf16, (const at::BFloat16* x, float* out, int64_t len), (x, out, len))

// x[base, base + len) as floats: in place for float, else widened into buf (kBlock floats).
template <typename T>
const float* block_floats(const T* x, int64_t base, int64_t len, float* buf) {
  if constexpr (std::is_same_v<T, float>) {
    return x + base;
  } else if constexpr (std::is_same_v<T, at::BFloat16>) {
    widen_bf16(x + base, buf, len);
  } else {
    for (int64_t i = 0; i < len; ++i) buf[i] = (float)x[base + i];
  }
  return buf;
}

template <typename T>
void encode_block(const T* x, int64_t base, int64_t len, const Borders& borders, uint8_t* out, int64_t n_bytes,
                  int bits) {
  if constexpr (std::is_same_v<T, at::BFloat16>) {  // the vector steps from the bf16 bits, the rest widened
    const int64_t done = encode_vectors(x + base, len, borders, out + base / 8 * bits, bits);
    base += done;
    len -= done;
    if (len == 0) return;
  }
  float buf[kBlock];
  encode_floats(block_floats(x, base, len, buf), base, len, borders, out, n_bytes, bits);
}

template <typename T>
void encode_groups(const T* x, const Borders& borders, uint8_t* out, int64_t n, int bits) {
  const int64_t n_bytes = (n * bits + 7) / 8;
  at::parallel_for(0, (n + kBlock - 1) / kBlock, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t base = blk * kBlock;
      encode_block(x, base, std::min(kBlock, n - base), borders, out, n_bytes, bits);
    }
  });
}

Tensor encode(const Tensor& x_, const Tensor& borders_, int64_t bits) {
  check_encode("fewbit_encode", x_, borders_, bits);
  const Tensor x = x_.contiguous(), borders = borders_.to(at::kFloat).contiguous();
  const int64_t n = x.numel();
  Tensor out = at::empty({(n * bits + 7) / 8}, x.options().dtype(at::kByte));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fewbit_encode", [&] {
    const Borders table(borders.const_data_ptr<float>(), (int)borders.numel());
    encode_groups<scalar_t>(x.const_data_ptr<scalar_t>(), table, out.mutable_data_ptr<uint8_t>(), n, (int)bits);
  });
  return out;
}

#if defined(__x86_64__)
// exp as Sleef's expf_u10 computes it, step for step: torch's Vectorized<float>::exp at its AVX2 and
// AVX-512 levels.  In place (see wavehax's gelu on GCC's ABI notes).
template <class S, class V = typename S::V>
void sleef_exp(V& d) {
  using I = typename S::I;
  const I q = S::round_to_int(S::mul(d, S::set1(1.44269504088896340736f)));  // 1 / ln 2
  const V qf = S::to_float(q);
  V s = S::fmadd(qf, S::set1(-0.693145751953125f), d);  // ln 2 in two parts
  s = S::fmadd(qf, S::set1(-1.428606765330187045e-06f), s);
  V u = S::set1(0.000198527617612853646278381f);
  u = S::fmadd(u, s, S::set1(0.00139304355252534151077271f));
  u = S::fmadd(u, s, S::set1(0.00833336077630519866943359f));
  u = S::fmadd(u, s, S::set1(0.0416664853692054748535156f));
  u = S::fmadd(u, s, S::set1(0.166666671633720397949219f));
  u = S::fmadd(u, s, S::set1(0.5f));
  u = S::add(S::set1(1.0f), S::fmadd(S::mul(s, s), u, s));
  u = S::ldexp(u, q, qf);
  u = S::select(S::less(d, S::set1(-104.0f)), S::zero(), u);
  d = S::select(S::less(S::set1(100.0f), d), S::set1(INFINITY), u);
}

// SiLU as torch's vectorised kernel computes it: x / (1 + exp(-x)).
template <class S, class V = typename S::V>
void silu_vector(V& v) {
  V e = S::neg(v);
  sleef_exp<S>(e);
  v = S::div(v, S::add(S::set1(1.0f), e));
}

// SiLU of a block, fp32 or bf16 (widened exactly, rounded to nearest even) in and out; the last
// len % W elements go through a zero-padded vector.
template <class S, typename T>
void silu_block(const T* __restrict x, T* __restrict y, int64_t len) {
  using V = typename S::V;
  int64_t i = 0;
  for (; i + S::W <= len; i += S::W) {
    V v = S::load(x + i);
    silu_vector<S>(v);
    S::store(y + i, v);
  }
  if (i < len) {
    T in[S::W] = {}, out[S::W];
    std::memcpy(in, x + i, (len - i) * sizeof(T));
    V v = S::load(in);
    silu_vector<S>(v);
    S::store(out, v);
    std::memcpy(y + i, out, (len - i) * sizeof(T));
  }
}

template <typename T>
PYOPS_TARGET_AVX512 __attribute__((flatten)) void silu_avx512(const T* x, T* y, int64_t len) {
  silu_block<simd::Avx512>(x, y, len);
}
template <typename T>
PYOPS_TARGET_AVX2 __attribute__((flatten)) void silu_avx2(const T* x, T* y, int64_t len) {
  silu_block<simd::Avx2>(x, y, len);
}

// SiLU and its codes in one loop at AVX-512, for <= 4 bits: floats 16 at a time (Borders::signs),
// bf16s 32 at a time from their keys (sorted borders).  Returns the elements done.
template <int BITS, typename T>
PYOPS_TARGET_AVX512 __attribute__((flatten)) int64_t silu_codes_avx512(const T* __restrict x, T* __restrict y,
                                                                      int64_t len, const Borders& borders,
                                                                      uint8_t* __restrict out) {
  using S = simd::Avx512;
  const SignBorders<BITS> b(borders);
  int64_t i = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; i + 16 <= len; i += 16) {
      __m512 v = S::load(x + i);
      const uint64_t w = codes16_signs<BITS>(v, b.values);
      std::memcpy(out + i / 8 * BITS, &w, 2 * BITS);
      silu_vector<S>(v);
      S::store(y + i, v);
    }
  } else {
    for (; i + 32 <= len; i += 32) {
      codes32_signs<BITS>(x + i, b.keys, out + i / 8 * BITS);
      __m512 v0 = S::load(x + i), v1 = S::load(x + i + 16);
      silu_vector<S>(v0);
      silu_vector<S>(v1);
      S::store(y + i, v0);
      S::store(y + i + 16, v1);
    }
  }
  return i;
}

// fewbit_forward's SiLU at the AVX2 and AVX-512 levels: each block is encoded, then activated while
// in L1 (at AVX-512 and <= 4 bits, both in one loop), so x is read from memory once (torch's silu_out
// per chunk read it again: 4M fp32 on Zen 5, 2.6 ms against 1.1 ms for torch's SiLU alone).  y is
// torch's vectorised SiLU bit for bit; torch computes each thread's last n mod 32 elements with
// libm's expf, which can differ in the last bit.
template <typename T>
void silu_forward(const T* x, T* y, const Borders& borders, uint8_t* out, int64_t n, int bits) {
  const int64_t n_bytes = (n * bits + 7) / 8;
  const bool wide = isa::active() == isa::kAvx512;
  at::parallel_for(0, (n + kBlock - 1) / kBlock, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      int64_t base = blk * kBlock, len = std::min(kBlock, n - base);
      if (wide && bits <= 4 && (std::is_same_v<T, float> ? borders.signs : borders.sorted)) {
        const int64_t done = with_bits(bits, [&](auto b) -> int64_t {
          if constexpr (b() <= 4) return silu_codes_avx512<b()>(x + base, y + base, len, borders,
                                                                out + base / 8 * bits);
          return 0;
        });
        base += done;
        len -= done;
        if (len == 0) continue;
      }
      encode_block(x, base, len, borders, out, n_bytes, bits);
      wide ? silu_avx512(x + base, y + base, len) : silu_avx2(x + base, y + base, len);
    }
  });
}
#endif

// The fused forward: y = f(x) and the code stream in one pass over memory.  Each
// chunk is encoded, which brings it into cache, then goes through torch's own
// activation kernel (bit-exact with the native function).  Encoding after the
// activation was no faster.  Chunks are large because torch's GELU goes through
// oneDNN, whose per-call cost is ~10 us: 1M elements (4 MB of fp32, in L3) when
// there is work enough for every thread, down to 256K so that there is.  At 4M, 1
// thread, Zen 5: 2-9% faster than 256K chunks (fp32 and bf16 GELU, interleaved).
int64_t chunk_elements(int64_t n) {
  const int64_t threads = at::get_num_threads(), per_thread = (n + threads - 1) / threads;
  return std::clamp((per_thread + kBlock - 1) / kBlock, int64_t(256), int64_t(1024)) * kBlock;
}

std::tuple<Tensor, Tensor> forward(const Tensor& x_, const Tensor& borders_, int64_t bits, c10::string_view fn_name) {
  check_encode("fewbit_forward", x_, borders_, bits);
  const fb::Fn fn = fn_of("fewbit_forward", fn_name);
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // x may require grad: torch's *_out must not see it
  const Tensor x = x_.contiguous().reshape(-1), borders = borders_.to(at::kFloat).contiguous();
  const int64_t n = x.numel(), n_bytes = (n * bits + 7) / 8;
  Tensor y = empty_huge({n}, x.options());
  Tensor out = at::empty({n_bytes}, x.options().dtype(at::kByte));
  const Borders table(borders.const_data_ptr<float>(), (int)borders.numel());
  uint8_t* po = out.mutable_data_ptr<uint8_t>();
#if defined(__x86_64__)
  if (fn == fb::Fn::kSilu && isa::avx2()) {
    if (x.scalar_type() == at::kFloat) {
      silu_forward(x.const_data_ptr<float>(), y.mutable_data_ptr<float>(), table, po, n, (int)bits);
      return {y.reshape(x_.sizes()), out};
    }
    if (x.scalar_type() == at::kBFloat16) {
      silu_forward(x.const_data_ptr<at::BFloat16>(), y.mutable_data_ptr<at::BFloat16>(), table, po, n, (int)bits);
      return {y.reshape(x_.sizes()), out};
    }
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fewbit_forward", [&] {
    const scalar_t* px = x.const_data_ptr<scalar_t>();
    const int64_t chunk = chunk_elements(n);
    at::parallel_for(0, (n + chunk - 1) / chunk, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        const int64_t start = c * chunk, len = std::min(chunk, n - start);
        Tensor yc = y.narrow(0, start, len);
        for (int64_t base = start; base < start + len; base += kBlock)
          encode_block(px, base, std::min(kBlock, n - base), table, po, n_bytes, (int)bits);
        torch_activation(fn, x.narrow(0, start, len), yc);  // runs serially inside parallel_for
      }
    });
  });
  return {y.reshape(x_.sizes()), out};
}

// Unpack and scale in one pass: each group's code word is one unaligned 8-byte load
// (reading past the group's BITS bytes, which is fine wherever 8 bytes remain in
// the stream; the stream's last groups go through a zero-padded copy).
template <int BITS, typename T, typename Acc>
PYOPS_ALWAYS_INLINE void backward_groups_body(const uint8_t* __restrict codes, int64_t g0, int64_t g1, int64_t n,
                                              int64_t n_bytes, const T* __restrict g, const float* __restrict levels,
                                              T* __restrict out) {
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

// One copy per instruction set, chosen per call (isa.h).
#define PYOPS_FEWBIT_BACKWARD(suffix, target)                                                                \
  template <int BITS, typename T, typename Acc>                                                             \
  target void backward_groups_##suffix(const uint8_t* codes, int64_t g0, int64_t g1, int64_t n,              \
                                       int64_t n_bytes, const T* g, const float* levels, T* out) {          \
    backward_groups_body<BITS, T, Acc>(codes, g0, g1, n, n_bytes, g, levels, out);                         \
  }
#if defined(PYOPS_ISA_X86)
PYOPS_FEWBIT_BACKWARD(avx512, PYOPS_TARGET_AVX512)
PYOPS_FEWBIT_BACKWARD(avx2, PYOPS_TARGET_AVX2)
#endif
PYOPS_FEWBIT_BACKWARD(scalar, )
#undef PYOPS_FEWBIT_BACKWARD

template <int BITS, typename T, typename Acc>
void backward_groups(const uint8_t* codes, int64_t g0, int64_t g1, int64_t n, int64_t n_bytes, const T* g,
                     const float* levels, T* out) {
#if defined(PYOPS_ISA_X86)
  if (isa::active() == isa::kAvx512) return backward_groups_avx512<BITS, T, Acc>(codes, g0, g1, n, n_bytes, g, levels, out);
  if (isa::active() == isa::kAvx2) return backward_groups_avx2<BITS, T, Acc>(codes, g0, g1, n, n_bytes, g, levels, out);
#endif
  backward_groups_scalar<BITS, T, Acc>(codes, g0, g1, n, n_bytes, g, levels, out);
}

#if defined(__x86_64__)
// fp32 or bf16 with at most 8 levels (bits <= 3): the level table is one register,
// so a group's 8 levels are one permute of it, indexed by the group's code word.
// bf16 products round to nearest even as c10::BFloat16 does (NaN -> 0x7FC0).
template <int BITS, typename T>
PYOPS_TARGET_AVX2 int64_t backward_lut_avx2(const uint8_t* __restrict codes, int64_t g0, int64_t g1, int64_t n,
                                            int64_t n_bytes, const T* __restrict g, const float* __restrict levels,
                                            T* __restrict out) {
  static_assert(BITS <= 3, "the table must fit one 8-lane register");
  float table[8];
  for (int k = 0; k < 8; ++k) table[k] = levels[k & ((1 << BITS) - 1)];
  const __m256 lv = _mm256_loadu_ps(table);
  const __m256i shifts = _mm256_setr_epi32(0, BITS, 2 * BITS, 3 * BITS, 4 * BITS, 5 * BITS, 6 * BITS, 7 * BITS);
  const __m256i mask = _mm256_set1_epi32((1 << BITS) - 1);
  int64_t q = g0;
  for (; q < g1 && q * 8 + 8 <= n && q * BITS + 4 <= n_bytes; ++q) {
    uint32_t w;
    std::memcpy(&w, codes + q * BITS, 4);
    const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)w), shifts), mask);
    const __m256 level = _mm256_permutevar8x32_ps(lv, idx);
    if constexpr (std::is_same_v<T, float>) {
      _mm256_storeu_ps(out + q * 8, _mm256_mul_ps(level, _mm256_loadu_ps(g + q * 8)));
    } else {
      const __m128i gb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + q * 8));
      const __m256 p = _mm256_mul_ps(level, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(gb), 16)));
      const __m256i u = _mm256_castps_si256(p);
      const __m256i bias = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)),
                                            _mm256_set1_epi32(0x7FFF));
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
      r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), _mm256_castps_si256(_mm256_cmp_ps(p, p, _CMP_UNORD_Q)));
      const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + q * 8), packed);
    }
  }
  return q;  // the groups from here on (the stream's end) take the generic path
}

// AVX-512, fp32 or bf16 with at most 16 levels (bits <= 4): 16 elements per step, their two groups'
// code words broadcast to the two halves and shifted per lane.  The table repeats its 2^BITS levels
// across all 16 lanes, so a lane's bits above BITS (the next codes) need no mask: vpermps reads 4.
template <int BITS, typename T>
PYOPS_TARGET_AVX512 int64_t backward_lut_avx512(const uint8_t* __restrict codes, int64_t g0, int64_t g1, int64_t n,
                                              int64_t n_bytes, const T* __restrict g, const float* __restrict levels,
                                              T* __restrict out) {
  static_assert(BITS <= 4, "the table must fit one 16-lane register");
  using S = simd::Avx512;
  float table[16];
  for (int k = 0; k < 16; ++k) table[k] = levels[k & ((1 << BITS) - 1)];
  const __m512 lv = _mm512_loadu_ps(table);
  const __m512i shifts = _mm512_setr_epi32(0, BITS, 2 * BITS, 3 * BITS, 4 * BITS, 5 * BITS, 6 * BITS, 7 * BITS, 0, BITS,
                                           2 * BITS, 3 * BITS, 4 * BITS, 5 * BITS, 6 * BITS, 7 * BITS);
  int64_t q = g0;
  for (; q + 2 <= g1 && q * 8 + 16 <= n && q * BITS + 8 <= n_bytes; q += 2) {
    uint64_t w;
    std::memcpy(&w, codes + q * BITS, 8);
    const __m512i words = _mm512_mask_set1_epi32(_mm512_set1_epi32((int)(uint32_t)w), 0xFF00,
                                                 (int)(uint32_t)(w >> (8 * BITS)));
    const __m512 level = _mm512_permutexvar_ps(_mm512_srlv_epi32(words, shifts), lv);
    S::store(out + q * 8, S::mul(level, S::load(g + q * 8)));
  }
  return q;
}
#endif

Tensor backward(const Tensor& grad_, const Tensor& codes_, const Tensor& levels_, int64_t bits) {
  check_backward("fewbit_backward", grad_, codes_, levels_, bits);
  const Tensor grad = grad_.contiguous(), codes = codes_.contiguous(), levels = levels_.to(at::kFloat).contiguous();
  Tensor out = empty_huge(grad.sizes(), grad.options());
  const int64_t n = grad.numel(), n_bytes = codes.numel();
  const float* lv = levels.const_data_ptr<float>();
  const uint8_t* pc = codes.const_data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "fewbit_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;  // float for half/bf16: the product is rounded once
    const scalar_t* pg = grad.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, (n + 7) / 8, kBlock / 8, [&](int64_t lo, int64_t hi) {
      with_bits((int)bits, [&](auto b) {
        int64_t from = lo;
#if defined(__x86_64__)
        if constexpr ((std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, at::BFloat16>) && b() <= 4) {
          if (isa::active() == isa::kAvx512) {
            from = backward_lut_avx512<b(), scalar_t>(pc, lo, hi, n, n_bytes, pg, lv, po);
          } else if constexpr (b() <= 3) {
            if (isa::avx2()) from = backward_lut_avx2<b(), scalar_t>(pc, lo, hi, n, n_bytes, pg, lv, po);
          }
        }
#endif
        backward_groups<b(), scalar_t, acc_t>(pc, from, hi, n, n_bytes, pg, lv, po);
      });
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) {
  m.impl("fewbit_encode", &encode);
  m.impl("fewbit_forward", &forward);
  m.impl("fewbit_backward", &backward);
}

}  // namespace pyops
