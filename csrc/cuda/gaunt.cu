// gaunt CUDA kernel: the azimuthal product of the grid route.  One thread per column r (coalesced
// along r); every thread walks the same triple list (broadcast loads) with the shared
// run-accumulating column loop of csrc/include/pyops/gaunt.h, so the CPU and GPU agree.
#include "gaunt.cuh"
#include "pyops/gaunt.h"

namespace pyops {
namespace gaunt_cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void azimuthal_kernel(const T* a, const T* b, const int64_t* io, const int64_t* ia, const int64_t* ib,
                                 const T* coef, int64_t n, int64_t R, T* out) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < R; r += (int64_t)gridDim.x * blockDim.x)
    gaunt::azimuthal_column(a, b, io, ia, ib, coef, n, r, R, out);
}

}  // namespace

template <typename T>
void azimuthal(const T* a, const T* b, const int64_t* io, const int64_t* ia, const int64_t* ib, const T* coef,
               int64_t n, int64_t R, T* out, cudaStream_t stream) {
  if (n == 0 || R == 0) return;
  const int64_t blocks = (R + kThreads - 1) / kThreads;
  azimuthal_kernel<T><<<(int)(blocks < 65535 ? blocks : 65535), kThreads, 0, stream>>>(a, b, io, ia, ib, coef, n, R,
                                                                                     out);
}

template void azimuthal<float>(const float*, const float*, const int64_t*, const int64_t*, const int64_t*,
                               const float*, int64_t, int64_t, float*, cudaStream_t);
template void azimuthal<double>(const double*, const double*, const int64_t*, const int64_t*, const int64_t*,
                                const double*, int64_t, int64_t, double*, cudaStream_t);

}  // namespace gaunt_cuda
}  // namespace pyops
