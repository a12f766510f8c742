// The CPU kernels' instruction-set level (see isa.h).
#include "isa.h"

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

}  // namespace

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
