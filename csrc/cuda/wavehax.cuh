// Launchers of the wavehax CUDA kernels (csrc/cuda/wavehax.cu), called by wavehax_binding.cpp.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pyops {
namespace wavehax_cuda {

// Fused ConvNeXt2d block on channels-last x [B, F, T, C], T = float or double:
// dw [KF * KT, C] (KF taps along frequency, KT along time), w1t [C, H], w2t [H, C] and b2 [C]
// already scaled by the layer scale.
// h: [B, F, T, C] scratch for the depthwise output; stats: [groups, 2] scratch (groups = B T
// when framewise, else B); out: [B, F, T, C].
template <typename T>
void convnext2d_block(const T* x, const T* dw, const T* gamma, const T* beta, const T* w1t, const T* b1, const T* w2t,
                      const T* b2, double eps, bool framewise, int64_t B, int64_t F, int64_t Tn, int64_t C, int64_t H,
                      int KF, int KT, T* h, double* stats, T* out, cudaStream_t stream);

// Closed-form harmonic prior: f0 [B, N], noise and out [B, N hop], start [B, N] = phase (cycles)
// before each frame's first sample.
void harmonic_prior(const float* f0, const float* noise, const double* start, float* out, int64_t B, int64_t N,
                    int64_t hop, int sample_rate, double power_factor, cudaStream_t stream);

}  // namespace wavehax_cuda
}  // namespace pyops
