// wavehax CUDA kernels.  Block: (1) depthwise KFxKT reflect conv, one thread per output element;
// (2) norm statistics, one thread block per group (utterance or frame) reducing in double;
// (3) normalise -> PW1 -> GELU -> PW2 -> layer scale -> residual, one thread per position, its
// normalised input and output accumulators in shared memory ([C][threads]: no bank conflicts)
// while 32 threads' worth fit in 48 KiB (C <= 192 in float), else in place in h and out (global
// memory, any C); hidden units produced one at a time so the 2C hidden never leaves the thread.
// Prior: one thread per sample, the math of csrc/include/pyops/wavehax.h.
#include "pyops/wavehax.h"
#include "wavehax.cuh"

namespace pyops {
namespace wavehax_cuda {
namespace {

namespace wh = pyops::wavehax;
constexpr int kThreads = 256;
constexpr int kStatThreads = 256;
constexpr int kSharedBytes = 48 * 1024;

int blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return (int)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

template <typename T>
__global__ void dw_kernel(const T* x, const T* dw, T* h, int64_t B, int64_t F, int64_t Tn, int64_t C, int KF,
                          int KT) {
  const int64_t n = B * F * Tn * C, pad_f = KF / 2, pad_t = KT / 2;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = e % C, t = e / C % Tn, f = e / (C * Tn) % F, b = e / (C * Tn * F);
    T acc = 0;
    for (int i = 0; i < KF; ++i) {
      const T* row = x + ((b * F + wh::reflect(f + i - pad_f, F)) * Tn) * C + c;
      for (int j = 0; j < KT; ++j) acc += dw[(i * KT + j) * C + c] * row[wh::reflect(t + j - pad_t, Tn) * C];
    }
    h[e] = acc;
  }
}

// stats[g] = (sum, sum of squares) over group g: utterance b = all of h[b]; frame (b, t) = h[b, :, t, :].
template <typename T>
__global__ void stats_kernel(const T* h, double* stats, int64_t F, int64_t Tn, int64_t C, bool framewise) {
  __shared__ double s_sum[kStatThreads], s_sq[kStatThreads];
  const int64_t g = blockIdx.x, count = framewise ? F * C : F * Tn * C;
  double s = 0, ss = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
    const int64_t e = framewise ? (((g / Tn) * F + k / C) * Tn + g % Tn) * C + k % C : g * count + k;
    const double v = (double)h[e];
    s += v;
    ss += v * v;
  }
  s_sum[threadIdx.x] = s;
  s_sq[threadIdx.x] = ss;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if ((int)threadIdx.x < w) {
      s_sum[threadIdx.x] += s_sum[threadIdx.x + w];
      s_sq[threadIdx.x] += s_sq[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    stats[2 * g] = s_sum[0];
    stats[2 * g + 1] = s_sq[0];
  }
}

template <typename T>
__global__ void pointwise_kernel(T* h, const T* x, const double* stats, const T* gamma, const T* beta, const T* w1t,
                                 const T* b1, const T* w2t, const T* b2, double eps, bool framewise, int64_t F,
                                 int64_t Tn, int64_t C, int64_t H, int64_t n_pos, bool in_shared, T* out) {
  extern __shared__ unsigned char smem[];
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p >= n_pos) return;  // no barrier below: each thread owns its scratch column
  // this position's normalised input s_a[c * st] and output accumulators s_o[c * st]
  const int64_t st = in_shared ? blockDim.x : 1;
  T* s_a = in_shared ? (T*)smem + threadIdx.x : h + p * C;
  T* s_o = in_shared ? (T*)smem + C * (int64_t)blockDim.x + threadIdx.x : out + p * C;
  const int64_t b = p / (F * Tn);
  const int64_t g = framewise ? b * Tn + p % Tn : b;
  const double count = (double)(framewise ? F * C : F * Tn * C);
  const double mean = stats[2 * g] / count, var = fmax(stats[2 * g + 1] / count - mean * mean, 0.0);
  const T rstd = (T)(1.0 / sqrt(var + eps)), m = (T)mean;
  for (int64_t c = 0; c < C; ++c) {
    s_a[c * st] = (h[p * C + c] - m) * rstd * gamma[c] + beta[c];
    s_o[c * st] = x[p * C + c] + b2[c];
  }
  for (int64_t j = 0; j < H; ++j) {
    T u = b1[j];
    for (int64_t c = 0; c < C; ++c) u += s_a[c * st] * w1t[c * H + j];
    u = wh::gelu(u);
    for (int64_t c = 0; c < C; ++c) s_o[c * st] += u * w2t[j * C + c];
  }
  if (in_shared)
    for (int64_t c = 0; c < C; ++c) out[p * C + c] = s_o[c * st];
}

__global__ void prior_kernel(const float* f0, const float* noise, const double* start, float* out, int64_t n,
                             int64_t hop, int sample_rate, double power_factor) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t frame = i / hop;  // flat b * N + frame
    const float f = f0[frame];
    const double k = wh::harmonic_count(f, sample_rate);
    double v = 0.0;
    if (k) {
      double cycles = start[frame] + (double)(i - frame * hop + 1) * ((double)f / (double)sample_rate);
      cycles -= floor(cycles);
      v = wh::harmonic_amplitude(f, sample_rate, power_factor) * wh::harmonic_sum(wh::cycles_to_theta(cycles), k);
    }
    out[i] = (float)v + noise[i];
  }
}

}  // namespace

template <typename T>
void convnext2d_block(const T* x, const T* dw, const T* gamma, const T* beta, const T* w1t, const T* b1, const T* w2t,
                      const T* b2, double eps, bool framewise, int64_t B, int64_t F, int64_t Tn, int64_t C, int64_t H,
                      int KF, int KT, T* h, double* stats, T* out, cudaStream_t stream) {
  const int64_t n_pos = B * F * Tn;
  if (n_pos * C == 0) return;
  dw_kernel<T><<<blocks_for(n_pos * C, kThreads), kThreads, 0, stream>>>(x, dw, h, B, F, Tn, C, KF, KT);
  const int64_t groups = framewise ? B * Tn : B;
  stats_kernel<T><<<(unsigned)groups, kStatThreads, 0, stream>>>(h, stats, F, Tn, C, framewise);
  // threads per block: as many as 2 C values each fit in 48 KiB of shared memory (a multiple of
  // 32, <= 128); below 32 such threads, 128 threads with their scratch in global memory
  int64_t threads = kSharedBytes / (2 * C * (int64_t)sizeof(T));
  const bool in_shared = threads >= 32;
  threads = threads >= 128 || !in_shared ? 128 : threads / 32 * 32;
  const size_t shared = in_shared ? 2 * C * threads * sizeof(T) : 0;
  const int64_t blocks = (n_pos + threads - 1) / threads;
  pointwise_kernel<T><<<(unsigned)blocks, (unsigned)threads, shared, stream>>>(
      h, x, stats, gamma, beta, w1t, b1, w2t, b2, eps, framewise, F, Tn, C, H, n_pos, in_shared, out);
}

template void convnext2d_block<float>(const float*, const float*, const float*, const float*, const float*,
                                      const float*, const float*, const float*, double, bool, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int, int, float*, double*, float*, cudaStream_t);
template void convnext2d_block<double>(const double*, const double*, const double*, const double*, const double*,
                                       const double*, const double*, const double*, double, bool, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, int, int, double*, double*, double*,
                                       cudaStream_t);

void harmonic_prior(const float* f0, const float* noise, const double* start, float* out, int64_t B, int64_t N,
                    int64_t hop, int sample_rate, double power_factor, cudaStream_t stream) {
  const int64_t n = B * N * hop;
  if (n == 0) return;
  prior_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(f0, noise, start, out, n, hop, sample_rate,
                                                                  power_factor);
}

}  // namespace wavehax_cuda
}  // namespace pyops
