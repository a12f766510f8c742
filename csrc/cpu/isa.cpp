// The CPU kernels' instruction-set level (see isa.h).
#include "isa.h"

#if defined(PYOPS_ISA_X86)
#include <immintrin.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace pyops::isa {
namespace {

Level probe() {
#if defined(PYOPS_ISA_X86)
  __builtin_cpu_init();
  // The AVX-512 copies use F, BW, DQ, VL and CD; AVX2 copies also FMA and BMI2.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512cd"))
    return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return kAvx2;
#endif
  return kScalar;
}

Level from_env() {
  Level level = detected();
  const char* env = std::getenv("PYOPS_CPU_ISA");
  Level wanted;
  // An unknown value keeps the detected level; python -m pyops reports what is in use.
  if (env && *env && parse(env, &wanted) && wanted < level) level = wanted;
  return level;
}

std::atomic<int>& state() {
  static std::atomic<int> level{from_env()};
  return level;
}

// More independent chains than FMA latency x FMA units (4 x 2 on current x86 cores), so that every
// unit starts one each cycle; 12 accumulators + 2 constants fit AVX2's 16 registers. acc * a + b with
// a < 1 converges to b / (1 - a): no overflow, no subnormals.
constexpr int kChains = 12;

#if defined(PYOPS_ISA_X86)
PYOPS_TARGET_AVX512 float fma_chains_avx512(long iterations) {
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j));
  for (long i = 0; i < iterations; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  for (int j = 1; j < kChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  return _mm512_reduce_add_ps(acc[0]);
}

PYOPS_TARGET_AVX2 float fma_chains_avx2(long iterations) {
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(float(j));
  for (long i = 0; i < iterations; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  for (int j = 1; j < kChains; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  float out[8];
  _mm256_storeu_ps(out, acc[0]);
  return out[0] + out[7];
}

// The portable baseline (SSE2): a multiply and an add per lane.
float fma_chains_scalar(long iterations) {
  const __m128 a = _mm_set1_ps(0.999f), b = _mm_set1_ps(1e-3f);
  __m128 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm_set1_ps(float(j));
  for (long i = 0; i < iterations; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm_add_ps(_mm_mul_ps(acc[j], a), b);
  for (int j = 1; j < kChains; ++j) acc[0] = _mm_add_ps(acc[0], acc[j]);
  return _mm_cvtss_f32(acc[0]);
}

int lanes(Level level) { return level == kAvx512 ? 16 : level == kAvx2 ? 8 : 4; }
#else
float fma_chains_scalar(long iterations) {
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = float(j);
  for (long i = 0; i < iterations; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * 0.999f + 1e-3f;
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

int lanes(Level) { return 1; }
#endif

float fma_chains(Level level, long iterations) {
#if defined(PYOPS_ISA_X86)
  if (level == kAvx512) return fma_chains_avx512(iterations);
  if (level == kAvx2) return fma_chains_avx2(iterations);
#endif
  return fma_chains_scalar(iterations);
}

}  // namespace

double fma_flops(Level level, int threads, long iterations) {
  if (level > detected()) level = detected();
  volatile float sink = 0;  // the chains' results are used: nothing to optimise away
#pragma omp parallel num_threads(threads)
  {
    float r = fma_chains(level, iterations);
#pragma omp critical
    sink = sink + r;
  }
  return 2.0 * lanes(level) * kChains * double(iterations) * threads;
}

Level detected() {
  static const Level level = probe();
  return level;
}

Level active() { return static_cast<Level>(state().load(std::memory_order_relaxed)); }

void set_active(Level level) { state().store(level < detected() ? level : detected(), std::memory_order_relaxed); }

const char* name(Level level) {
  switch (level) {
    case kAvx512:
      return "avx512";
    case kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

bool parse(const char* s, Level* out) {
  for (Level l : {kScalar, kAvx2, kAvx512})
    if (std::strcmp(s, name(l)) == 0) {
      *out = l;
      return true;
    }
  return false;
}

}  // namespace pyops::isa
