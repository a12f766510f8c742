// Run-time choice of the CPU kernels' instruction set.
//
// Every vectorised CPU kernel is compiled once per level (AVX-512, AVX2+FMA,
// and the portable baseline) and picks its copy per call from active().  The
// level starts at the widest the CPU supports, lowered by the environment
// variable PYOPS_CPU_ISA=avx512|avx2|scalar and at run time by set_active()
// (pyops.set_cpu_isa), never raised past detected(): tests and benchmarks can
// run every path a machine has, and an AVX-512 machine reports AVX2 numbers.
#pragma once

namespace pyops::isa {

enum Level : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

Level detected();         // widest level this CPU supports
Level active();           // the level kernels use now
void set_active(Level);   // capped at detected()
const char* name(Level);  // "scalar", "avx2", "avx512"
bool parse(const char* s, Level* out);

// Peak fp32 multiply-add throughput at a level (at most detected()), for the benchmarks' roofline:
// `threads` threads each run `iterations` rounds of independent multiply-add chains in registers, no
// memory traffic. Returns the flops done (2 per lane per multiply-add).
double fma_flops(Level level, int threads, long iterations);

// Whether AVX2 code runs: at the AVX2 level, and at AVX-512 for kernels without an AVX-512 copy.
inline bool avx2() { return active() >= kAvx2; }

}  // namespace pyops::isa

#define PYOPS_ALWAYS_INLINE inline __attribute__((always_inline))
#if defined(__x86_64__)
#define PYOPS_ISA_X86 1
// Feature lists rather than arch=: arch and tune stay the translation unit's,
// so ordinary inline helpers still inline into these copies.
#define PYOPS_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt")))
#define PYOPS_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt")))
#endif

// PYOPS_ISA_FUNCTION(ret, name, params, args) defines `ret name params`, which
// runs `name##_body args` (an always-inline function the caller defines first)
// compiled for the active level.  params and args are parenthesised lists.
#if defined(PYOPS_ISA_X86)
#define PYOPS_ISA_FUNCTION(ret, name, params, args)                             \
  PYOPS_TARGET_AVX512 ret name##_avx512 params { return name##_body args; }     \
  PYOPS_TARGET_AVX2 ret name##_avx2 params { return name##_body args; }         \
  ret name##_scalar params { return name##_body args; }                          \
  ret name params {                                                              \
    switch (::pyops::isa::active()) {                                            \
      case ::pyops::isa::kAvx512:                                                \
        return name##_avx512 args;                                               \
      case ::pyops::isa::kAvx2:                                                  \
        return name##_avx2 args;                                                 \
      default:                                                                   \
        return name##_scalar args;                                               \
    }                                                                            \
  }
#else
#define PYOPS_ISA_FUNCTION(ret, name, params, args) \
  ret name params { return name##_body args; }
#endif
