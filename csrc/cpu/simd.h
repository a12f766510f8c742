// Float vector traits for kernels written once and compiled per ISA (wavehax's ConvNeXt block,
// fewbit's SiLU).  A kernel templated on S calls S's target-specific one-liners and is compiled
// per ISA by a flatten entry point carrying the ISA's target attribute: flatten inlines S's
// operations into it (an always_inline kernel could not call them, as GCC first compiles it for the
// baseline).  No call passing a vector survives, so -Wpsabi's ABI note is moot.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <c10/util/BFloat16.h>

#include <cstdint>

#include "isa.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace pyops::simd {

struct Avx2 {
  using V = __m256;
  using I = __m256i;
  using M = __m256;  // a compare's all-ones / all-zeros lanes
  static constexpr int W = 8;
  PYOPS_TARGET_AVX2 static V zero() { return _mm256_setzero_ps(); }
  PYOPS_TARGET_AVX2 static V set1(float x) { return _mm256_set1_ps(x); }
  PYOPS_TARGET_AVX2 static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  PYOPS_TARGET_AVX2 static V load(const float* p) { return _mm256_loadu_ps(p); }
  PYOPS_TARGET_AVX2 static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // bf16 <-> float: widened exactly; rounded to nearest even, NaN to 0x7FC0 (c10::BFloat16's rounding)
  PYOPS_TARGET_AVX2 static V load(const c10::BFloat16* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  PYOPS_TARGET_AVX2 static V add(V a, V b) { return _mm256_add_ps(a, b); }
  PYOPS_TARGET_AVX2 static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  PYOPS_TARGET_AVX2 static V neg(V a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  PYOPS_TARGET_AVX2 static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  PYOPS_TARGET_AVX2 static V div(V a, V b) { return _mm256_div_ps(a, b); }
  PYOPS_TARGET_AVX2 static V min(V a, V b) { return _mm256_min_ps(a, b); }
  PYOPS_TARGET_AVX2 static V max(V a, V b) { return _mm256_max_ps(a, b); }
  PYOPS_TARGET_AVX2 static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  PYOPS_TARGET_AVX2 static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(_mm_hadd_ps(s, s));
  }
  PYOPS_TARGET_AVX2 static M less(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  PYOPS_TARGET_AVX2 static V select(M m, V yes, V no) { return _mm256_blendv_ps(no, yes, m); }
  PYOPS_TARGET_AVX2 static I round_to_int(V v) { return _mm256_cvtps_epi32(v); }  // to nearest even
  PYOPS_TARGET_AVX2 static V to_float(I i) { return _mm256_cvtepi32_ps(i); }
  // u * 2^q (q = qf as int32, |q| < 254) rounded once: two exact-range factors, as Sleef's vldexp2
  PYOPS_TARGET_AVX2 static V ldexp(V u, I q, V) {
    const __m256i h = _mm256_srai_epi32(q, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    const V p = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
    const V r = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(q, h), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(u, p), r);
  }
  PYOPS_TARGET_AVX2 static void store(c10::BFloat16* p, V v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)),
                                          _mm256_set1_epi32(0x7FFF));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
};

struct Avx512 {
  using V = __m512;
  using I = __m512i;
  using M = __mmask16;
  static constexpr int W = 16;
  PYOPS_TARGET_AVX512 static V zero() { return _mm512_setzero_ps(); }
  PYOPS_TARGET_AVX512 static V set1(float x) { return _mm512_set1_ps(x); }
  PYOPS_TARGET_AVX512 static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  PYOPS_TARGET_AVX512 static V load(const float* p) { return _mm512_loadu_ps(p); }
  PYOPS_TARGET_AVX512 static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  PYOPS_TARGET_AVX512 static V load(const c10::BFloat16* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  PYOPS_TARGET_AVX512 static V add(V a, V b) { return _mm512_add_ps(a, b); }
  PYOPS_TARGET_AVX512 static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  PYOPS_TARGET_AVX512 static V neg(V a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
  PYOPS_TARGET_AVX512 static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  PYOPS_TARGET_AVX512 static V div(V a, V b) { return _mm512_div_ps(a, b); }
  PYOPS_TARGET_AVX512 static V min(V a, V b) { return _mm512_min_ps(a, b); }
  PYOPS_TARGET_AVX512 static V max(V a, V b) { return _mm512_max_ps(a, b); }
  PYOPS_TARGET_AVX512 static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  PYOPS_TARGET_AVX512 static float hsum(V v) { return _mm512_reduce_add_ps(v); }
  PYOPS_TARGET_AVX512 static M less(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  PYOPS_TARGET_AVX512 static V select(M m, V yes, V no) { return _mm512_mask_blend_ps(m, no, yes); }
  PYOPS_TARGET_AVX512 static I round_to_int(V v) { return _mm512_cvtps_epi32(v); }
  PYOPS_TARGET_AVX512 static V to_float(I i) { return _mm512_cvtepi32_ps(i); }
  PYOPS_TARGET_AVX512 static V ldexp(V u, I, V qf) { return _mm512_scalef_ps(u, qf); }
  PYOPS_TARGET_AVX512 static void store(c10::BFloat16* p, V v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)),
                                          _mm512_set1_epi32(0x7FFF));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
};

}  // namespace pyops::simd
#endif
