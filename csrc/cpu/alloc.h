// Large outputs backed by transparent huge pages where the kernel offers them on request.
//
// torch's CPU allocator takes large blocks straight from mmap, so each call's output is fresh memory
// whose first touch page-faults once per 4 KiB page: ~2 us each on the VMs we measure on, 15 ms for a
// 30 MB tensor, as long as a ConvNeXt block's arithmetic on it.  Advising the block's 2 MiB-aligned
// interior as huge pages before anything touches it (THP mode "madvise", the common default) takes
// 512x fewer faults; torch does the same for all its allocations under THP_MEM_ALLOC_ENABLE=1.
#pragma once

#include <ATen/ATen.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdint>

namespace pyops {

inline at::Tensor empty_huge(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t p = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (p + kHuge - 1) & ~(kHuge - 1), hi = (p + t.nbytes()) & ~(kHuge - 1);
  if (t.device().is_cpu() && hi >= lo + 2 * kHuge)
    madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // a hint: failure changes nothing
#endif
  return t;
}

}  // namespace pyops
