// gaunt CPU kernel: pyops::gaunt_grid_product.  Threads own blocks of channels; a block is
// transposed to [position][lane] so that every operation is a SIMD instruction over channels, and
// everything between the inputs and the output (spectra, products, the output accumulator) stays
// in L1/L2.  One copy per ISA level (isa.h), picked per call:
//  - every level runs the same math with the node pairs in groups and the loops blocked for
//    registers (blocked_rows below), on 64-, 32- and 16-byte vectors (AVX-512, AVX2, baseline); the
//    node-pair-at-a-time form of csrc/include/pyops/gaunt.h (the CUDA kernel's) was 1.5-1.8x slower
//    on AVX-512 (Zen 5, lmax 8-16).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "gaunt_args.h"
#include "isa.h"
#include "pyops/gaunt.h"

// the products' sums are contracted into FMAs (torch's ISO C++ mode leaves fp-contract off); no
// predictive commoning: carrying loads across iterations of the convolution spills its registers
#pragma GCC optimize("fp-contract=fast", "no-predictive-commoning")
// every function passing vectors by value is always inlined into its ISA's copy: no call uses the
// ABI that -Wpsabi warns about
#pragma GCC diagnostic ignored "-Wpsabi"

namespace pyops {
namespace {

using at::Tensor;

template <typename T, int Bytes>
struct VecOf {
  typedef T type __attribute__((vector_size(Bytes)));
};

template <typename T>
struct Job {
  const T* x1;
  int64_t s10, s11;
  const T* x2;
  int64_t s20, s21;
  int L1, L2, lo;
  const T* table;  // [K, >= positions] p_l^|m|(z_k), row stride st
  int64_t st;
  const T* w;  // [K]
  int64_t K;
  T* out;
  // the node pairs in groups [k0[g], k0[g + 1]), each group's Legendre table
  // node fastest, P[k0 Dp + i n + k] = s_m p_i(z_(k0 + k)) (Dp positions, n the group's size, s_m the
  // spectra's factors), and the projection's factors Q[i K + k] = w_k g_m p_i(z_k)
  const int* k0;
  int groups, Dp;
  const T *P, *Q;
};

using BufPtr = std::unique_ptr<void, decltype(&std::free)>;

BufPtr zeroed_buffer(size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  BufPtr buf(std::aligned_alloc(64, bytes), &std::free);
  std::memset(buf.get(), 0, bytes);
  return buf;
}

// Pins v to a register: GCC otherwise folds a value used by several FMAs into each as a memory
// operand, and the inner loops below become bound by loads rather than FMAs.
template <typename V>
PYOPS_ALWAYS_INLINE V in_register(V v) {
#if defined(__x86_64__)
  __asm__("" : "+x"(v));
#endif
  return v;
}

// ---------------------------------------------------------------- transposes of W x W tiles
// Swaps the off-diagonal S x S blocks of every 2S x 2S block of the tile whose rows are x (rows with
// bit S clear) and y (the rows S below): one shuffle per row.
template <typename V, int W, int S, size_t... I>
PYOPS_ALWAYS_INLINE void swap_blocks(V& x, V& y, std::index_sequence<I...>) {
  const V a = __builtin_shufflevector(x, y, (I % (2 * S) < S ? I : I - S + W)...);
  const V b = __builtin_shufflevector(x, y, (I % (2 * S) < S ? I + S : I + W)...);
  x = a, y = b;
}

// r[i][c] -> r[c][i]: log2 W block swaps.
template <typename T, typename V, int S = sizeof(V) / sizeof(T) / 2>
PYOPS_ALWAYS_INLINE void transpose(V* r) {
  constexpr int W = sizeof(V) / sizeof(T);
  if constexpr (S >= 1) {
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i)
      if (!(i & S)) swap_blocks<V, W, S>(r[i], r[i + S], std::make_index_sequence<W>());
    transpose<T, V, S / 2>(r);
  }
}

// Rows [r0, r0 + n) (n <= CB W) of x (row stride s0, position stride s1) into buf[position][CB V],
// zero lanes beyond n.
template <typename T, typename V, int CB>
PYOPS_ALWAYS_INLINE void gather(const T* x, int64_t s0, int64_t s1, int64_t r0, int64_t n, int D, V* buf) {
  constexpr int W = sizeof(V) / sizeof(T);
  int i0 = 0;
  if (s0 == 0 && n == CB * W)  // one row for all (a broadcast input, a summed output's gradient)
    for (; i0 < D; ++i0)
#pragma GCC unroll 4
      for (int cb = 0; cb < CB; ++cb) buf[i0 * CB + cb] = V{} + x[i0 * s1];
  else if (s1 == 1)
    for (; i0 + W <= D; i0 += W)
#pragma GCC unroll 4
      for (int cb = 0; cb < CB; ++cb) {
        V r[W];
#pragma GCC unroll 16
        for (int c = 0; c < W; ++c)
          if (cb * W + c < n)
            __builtin_memcpy(&r[c], x + (r0 + cb * W + c) * s0 + i0, sizeof(V));
          else
            r[c] = V{};
        transpose<T, V>(r);
#pragma GCC unroll 16
        for (int i = 0; i < W; ++i) buf[(i0 + i) * CB + cb] = r[i];
      }
  for (int i = i0; i < D; ++i)
    for (int c = 0; c < CB * W; ++c) buf[i * CB + c / W][c % W] = c < n ? x[(r0 + c) * s0 + i * s1] : T(0);
}

// buf[position][CB V] -> rows [r0, r0 + n) of out (row stride D).
template <typename T, typename V, int CB>
PYOPS_ALWAYS_INLINE void scatter(const V* buf, int D, int64_t r0, int64_t n, T* out) {
  constexpr int W = sizeof(V) / sizeof(T);
  int i0 = 0;
  for (; i0 + W <= D; i0 += W)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) {
      V r[W];
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) r[i] = buf[(i0 + i) * CB + cb];
      transpose<T, V>(r);
#pragma GCC unroll 16
      for (int c = 0; c < W; ++c)
        if (cb * W + c < n) __builtin_memcpy(out + (r0 + cb * W + c) * D + i0, &r[c], sizeof(V));
    }
  for (int64_t c = 0; c < n; ++c)
    for (int i = i0; i < D; ++i) out[(r0 + c) * D + i] = buf[i * CB + c / W][c % W];
}

// ---------------------------------------------------------------- blocked rows, every ISA
// A block is CB vectors V of W channels; a "slot" of an array holds one value for all of them
// (CB consecutive V).  Node pairs go in groups of up to NK: the Legendre sums of a group share each
// input load.  Per node pair the convolution makes NB outputs at a time, each complex product term
// four FMAs on registers.  The projection sums all node pairs for PB outputs at a time in registers.
template <typename V>
struct Tile {
  static constexpr int CB = 2, NK = 4, NB = 3, PB = 4;
};

// Even/odd-(l + |m|) Legendre sums of x (degree L) at the group's N nodes (table P):
// eo[((k (2L + 1) + L + m) 2 + parity) CB + cb].
template <typename T, typename V, int N>
PYOPS_ALWAYS_INLINE void legendre_sums(const V* __restrict__ x, int L, const T* __restrict__ P, V* __restrict__ eo) {
  constexpr int CB = Tile<V>::CB;
  const int M = 2 * L + 1;
  for (int m = -L; m <= L; ++m)
    for (int par = 0; par < 2; ++par) {
      V acc[N][CB] = {};
      int64_t l = (m < 0 ? -m : m) + par, i = l * l + l + m, di = 4 * l + 6;  // (l + 2, m) is i + di
      for (const V* xi = x + i * CB; l <= L; l += 2, xi += di * CB, i += di, di += 8) {
        V xv[CB];
#pragma GCC unroll 4
        for (int cb = 0; cb < CB; ++cb) xv[cb] = in_register(xi[cb]);
#pragma GCC unroll 8
        for (int k = 0; k < N; ++k) {
          const T pk = P[i * N + k];
#pragma GCC unroll 4
          for (int cb = 0; cb < CB; ++cb) acc[k][cb] += pk * xv[cb];
        }
      }
#pragma GCC unroll 8
      for (int k = 0; k < N; ++k)
#pragma GCC unroll 4
        for (int cb = 0; cb < CB; ++cb) eo[((k * M + L + m) * 2 + par) * CB + cb] = acc[k][cb];
    }
}

// The spectra at +z and -z, c_mu = (a_mu - i a_-mu) / sqrt2 (c_0 = a_0) and c_-mu = conj c_mu with
// a = even +- odd sums, as [mu][re, im][CB] for mu in [-L, L]; cp and cm point at mu = 0.  The
// table P holds the factors 1/sqrt2 (m > 0) and -1/sqrt2 (m < 0): sums and differences remain.
template <typename V>
PYOPS_ALWAYS_INLINE void spectra(const V* __restrict__ eo, int L, V* __restrict__ cp, V* __restrict__ cm) {
  constexpr int CB = Tile<V>::CB;
  const V* e0 = eo + 2 * L * CB;  // m = 0
  for (int cb = 0; cb < CB; ++cb) {
    cp[cb] = e0[cb] + e0[CB + cb], cm[cb] = e0[cb] - e0[CB + cb];
    cp[CB + cb] = cm[CB + cb] = V{};
  }
  const V *up = e0, *down = e0;
  V *pu = cp, *pd = cp, *mu_ = cm, *md = cm;
  for (int mu = 1; mu <= L; ++mu) {
    up += 2 * CB, down -= 2 * CB, pu += 2 * CB, pd -= 2 * CB, mu_ += 2 * CB, md -= 2 * CB;
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) {
      const V e = up[cb], o = up[CB + cb], en = down[cb], on = down[CB + cb];
      pu[cb] = pd[cb] = e + o;
      mu_[cb] = md[cb] = e - o;
      pu[CB + cb] = en + on, pd[CB + cb] = -(en + on);
      mu_[CB + cb] = en - on, md[CB + cb] = on - en;
    }
  }
}

// d_nu = sum_mu c1_mu c2_(nu - mu) for nu in [nu0, nu0 + B); c1 at |mu| <= L1, c2 zero padded to
// |j| <= L2 + B - 1 (the B outputs run over the union of their mu ranges).
template <typename V, int B>
PYOPS_ALWAYS_INLINE void convolve_block(const V* __restrict__ c1, int L1, const V* __restrict__ c2, int L2, int nu0,
                                        V* __restrict__ d) {
  constexpr int CB = Tile<V>::CB;
  for (int cb = 0; cb < CB; ++cb) {
    V re[B] = {}, im[B] = {}, re2[B] = {}, im2[B] = {};  // two sums each: one FMA per sum per term
    const int mu0 = std::max(nu0 - L2, -L1), mu1 = std::min(nu0 + B - 1 + L2, L1);
    const V* a = c1 + 2 * mu0 * CB + cb;
    const V* b = c2 + 2 * (nu0 - mu0) * CB + cb;  // c2 at nu0 - mu; nu0 + j - mu at b + 2 j CB
    for (int n = mu1 - mu0; n >= 0; --n, a += 2 * CB, b -= 2 * CB) {
      const V ar = a[0], ai = a[CB];
#pragma GCC unroll 8
      for (int j = 0; j < B; ++j) {
        const V br = in_register(b[2 * j * CB]), bi = in_register(b[(2 * j + 1) * CB]);
        re[j] += ar * br;
        re2[j] -= ai * bi;
        im[j] += ar * bi;
        im2[j] += ai * br;
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) {
      d[(2 * (nu0 + j)) * CB + cb] = re[j] + re2[j];
      d[(2 * (nu0 + j) + 1) * CB + cb] = im[j] + im2[j];
    }
  }
}

// The last r < B outputs from nu0.
template <typename V, int B>
PYOPS_ALWAYS_INLINE void convolve_rest(int r, const V* c1, int L1, const V* c2, int L2, int nu0, V* d) {
  if constexpr (B > 0) {
    if (r == B)
      convolve_block<V, B>(c1, L1, c2, L2, nu0, d);
    else
      convolve_rest<V, B - 1>(r, c1, L1, c2, L2, nu0, d);
  }
}

// d_nu for nu in [0, nd): blocks of NB, then one of the rest.
template <typename V>
PYOPS_ALWAYS_INLINE void convolve(const V* c1, int L1, const V* c2, int L2, int nd, V* d) {
  constexpr int NB = Tile<V>::NB;
  int nu0 = 0;
  for (; nu0 + NB <= nd; nu0 += NB) convolve_block<V, NB>(c1, L1, c2, L2, nu0, d);
  convolve_rest<V, NB - 1>(nd - nu0, c1, L1, c2, L2, nu0, d);
}

// out[l m] = sum_k Q_k[l m] H_k(m) for the B positions l = l0, l0 + 2, ... of one m and parity,
// summed over all K node pairs in registers; h points at H_0(m) of that parity, H_k at h + k hs.
template <typename T, typename V, int B>
PYOPS_ALWAYS_INLINE void project_block(const V* __restrict__ h, int64_t hs, int64_t K, int64_t l0, int m,
                                       const T* __restrict__ Q, V* __restrict__ out) {
  constexpr int CB = Tile<V>::CB;
  const T* q[B];
  int64_t at[B];
#pragma GCC unroll 8
  for (int t = 0; t < B; ++t) {
    const int64_t l = l0 + 2 * t;
    at[t] = l * l + l + m, q[t] = Q + at[t] * K;
  }
  V acc[B][CB] = {};
  for (int64_t k = 0; k < K; ++k, h += hs) {
    V hv[CB];
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) hv[cb] = in_register(h[cb]);
#pragma GCC unroll 8
    for (int t = 0; t < B; ++t) {
      const T qk = q[t][k];
#pragma GCC unroll 4
      for (int cb = 0; cb < CB; ++cb) acc[t][cb] += qk * hv[cb];
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < B; ++t)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) out[at[t] * CB + cb] = acc[t][cb];
}

template <typename T, typename V, int B>
PYOPS_ALWAYS_INLINE void project_rest(int r, const V* h, int64_t hs, int64_t K, int64_t l0, int m, const T* Q,
                                      V* out) {
  if constexpr (B > 0) {
    if (r == B)
      project_block<T, V, B>(h, hs, K, l0, m, Q, out);
    else
      project_rest<T, V, B - 1>(r, h, hs, K, l0, m, Q, out);
  }
}

// out[l m] = sum_k Q_k[l m] H_k(m) over all K node pairs, H = the even or odd combination of the
// two nodes' products (Re for m >= 0, Im for m < 0; weights and constants are in Q), for |m| <= lh:
// eo[((k (2 lh + 1) + lh + m) 2 + parity) CB + cb].  Each output is written once.
template <typename T, typename V>
PYOPS_ALWAYS_INLINE void project(const V* eo, int lh, int lo, int64_t K, const T* Q, V* out) {
  constexpr int CB = Tile<V>::CB, PB = Tile<V>::PB;
  const int64_t hs = (2 * lh + 1) * 2 * CB;
  for (int m = -lh; m <= lh; ++m)
    for (int par = 0; par < 2; ++par) {
      const V* h = eo + ((lh + m) * 2 + par) * CB;
      int64_t l0 = (m < 0 ? -m : m) + par;
      for (; l0 + 2 * (PB - 1) <= lo; l0 += 2 * PB) project_block<T, V, PB>(h, hs, K, l0, m, Q, out);
      if (l0 <= lo) project_rest<T, V, PB - 1>((int)(lo - l0) / 2 + 1, h, hs, K, l0, m, Q, out);
    }
}

// Per-thread arrays of blocked_rows, offsets in V.
template <typename V>
struct Scratch {
  static constexpr int CB = Tile<V>::CB, NK = Tile<V>::NK, NB = Tile<V>::NB;
  int D1, D2, Do, lh, nd, pad2;
  int64_t x1, x2, out, eo1, eo2, c1p, c1m, c2p, c2m, dp, dm, eoo, size;
  Scratch(int L1, int L2, int lo, int64_t K) {
    D1 = (L1 + 1) * (L1 + 1), D2 = (L2 + 1) * (L2 + 1), Do = (lo + 1) * (lo + 1);
    lh = std::min(lo, L1 + L2);  // products vanish above degree L1 + L2
    nd = lh + 1;
    pad2 = L2 + NB - 1;
    int64_t at = 0;
    const auto take = [&](int64_t slots) {
      const int64_t p = at;
      at += slots * CB;
      return p;
    };
    x1 = take(D1), x2 = take(D2), out = take(Do);
    eo1 = take(NK * (2 * L1 + 1) * 2), eo2 = take(NK * (2 * L2 + 1) * 2);
    c1p = take(2 * (2 * L1 + 1)), c1m = take(2 * (2 * L1 + 1));
    c2p = take(2 * (2 * pad2 + 1)), c2m = take(2 * (2 * pad2 + 1));  // zeros beyond |j| = L2 stay zero
    dp = take(2 * nd), dm = take(2 * nd), eoo = take(K * (2 * lh + 1) * 2);
    size = at;
  }
};

// One group of N <= NK node pairs [k0, k0 + N) of one block: the products' combinations H.
template <typename T, typename V, int N>
PYOPS_ALWAYS_INLINE void node_group(const Job<T>& j, int k0, const Scratch<V>& s, V* buf) {
  constexpr int CB = Tile<V>::CB;
  legendre_sums<T, V, N>(buf + s.x1, j.L1, j.P + k0 * j.Dp, buf + s.eo1);
  legendre_sums<T, V, N>(buf + s.x2, j.L2, j.P + k0 * j.Dp, buf + s.eo2);
  const int M = 2 * s.lh + 1;
  V *c1p = buf + s.c1p + 2 * j.L1 * CB, *c1m = buf + s.c1m + 2 * j.L1 * CB;
  V *c2p = buf + s.c2p + 2 * s.pad2 * CB, *c2m = buf + s.c2m + 2 * s.pad2 * CB;
  V *dp = buf + s.dp, *dm = buf + s.dm;
  for (int k = 0; k < N; ++k) {
    spectra<V>(buf + s.eo1 + k * (2 * j.L1 + 1) * 2 * CB, j.L1, c1p, c1m);
    spectra<V>(buf + s.eo2 + k * (2 * j.L2 + 1) * 2 * CB, j.L2, c2p, c2m);
    convolve<V>(c1p, j.L1, c2p, j.L2, s.nd, dp);
    convolve<V>(c1m, j.L1, c2m, j.L2, s.nd, dm);
    V* h = buf + s.eoo + ((k0 + k) * M + s.lh) * 2 * CB;  // at m = 0
    for (int nu = 0; nu <= s.lh; ++nu)
      for (int cb = 0; cb < CB; ++cb) {
        const V pr = dp[(2 * nu) * CB + cb], mr = dm[(2 * nu) * CB + cb];
        const V pi = dp[(2 * nu + 1) * CB + cb], mi = dm[(2 * nu + 1) * CB + cb];
        h[(2 * nu) * CB + cb] = pr + mr;
        h[(2 * nu + 1) * CB + cb] = pr - mr;
        if (nu) {
          h[(-2 * nu) * CB + cb] = pi + mi;
          h[(-2 * nu + 1) * CB + cb] = pi - mi;
        }
      }
  }
}

// node_group for a group of n <= N node pairs.
template <typename T, typename V, int N>
PYOPS_ALWAYS_INLINE void node_group_of(int n, const Job<T>& j, int k0, const Scratch<V>& s, V* buf) {
  if constexpr (N > 0) {
    if (n == N)
      node_group<T, V, N>(j, k0, s, buf);
    else
      node_group_of<T, V, N - 1>(n, j, k0, s, buf);
  }
}

// rows [r0, r1)
template <typename T, typename V>
PYOPS_ALWAYS_INLINE void blocked_rows(const Job<T>& j, int64_t r0, int64_t r1) {
  constexpr int W = sizeof(V) / sizeof(T), CB = Tile<V>::CB, C = W * CB;
  const Scratch<V> s(j.L1, j.L2, j.lo, j.K);
  const BufPtr mem = zeroed_buffer(s.size * sizeof(V));
  V* buf = static_cast<V*>(mem.get());
  V* acc = buf + s.out;
  for (int64_t r = r0; r < r1; r += C) {
    const int64_t n = std::min<int64_t>(C, r1 - r);
    gather<T, V, CB>(j.x1, j.s10, j.s11, r, n, s.D1, buf + s.x1);
    gather<T, V, CB>(j.x2, j.s20, j.s21, r, n, s.D2, buf + s.x2);
    for (int g = 0; g < j.groups; ++g) node_group_of<T, V, Tile<V>::NK>(j.k0[g + 1] - j.k0[g], j, j.k0[g], s, buf);
    project<T, V>(buf + s.eoo, s.lh, j.lo, j.K, j.Q, acc);  // outputs with |m| > lh stay zero
    scatter<T, V, CB>(acc, s.Do, r, n, j.out);
  }
}

#if defined(PYOPS_ISA_X86)
template <typename T>
PYOPS_TARGET_AVX512 void rows_avx512(const Job<T>& j, int64_t r0, int64_t r1) {
  blocked_rows<T, typename VecOf<T, 64>::type>(j, r0, r1);
}
template <typename T>
PYOPS_TARGET_AVX2 void rows_avx2(const Job<T>& j, int64_t r0, int64_t r1) {
  blocked_rows<T, typename VecOf<T, 32>::type>(j, r0, r1);
}
#endif
template <typename T>
void rows_scalar(const Job<T>& j, int64_t r0, int64_t r1) {
  blocked_rows<T, typename VecOf<T, 16>::type>(j, r0, r1);
}

template <typename T>
void run(const Tensor& x1, const Tensor& x2, const Tensor& table, const Tensor& weights, int L1, int L2, int lo,
         Tensor& out) {
  const int64_t N = x1.size(0), K = table.size(0);
  const int Do = (lo + 1) * (lo + 1), Dp = (std::max(L1, L2) + 1) * (std::max(L1, L2) + 1);
  Job<T> j{x1.const_data_ptr<T>(), x1.stride(0), x1.stride(1), x2.const_data_ptr<T>(), x2.stride(0), x2.stride(1),
           L1, L2, lo, table.const_data_ptr<T>(), table.stride(0), weights.const_data_ptr<T>(), K,
           out.mutable_data_ptr<T>(), nullptr, 0, Dp, nullptr, nullptr};
  using V16 = typename VecOf<T, 16>::type;
  void (*rows_of)(const Job<T>&, int64_t, int64_t) = rows_scalar<T>;
  int64_t block = Tile<V16>::CB * sizeof(V16) / sizeof(T), nk = Tile<V16>::NK;  // rows per block, nodes per group
#if defined(PYOPS_ISA_X86)
  using V32 = typename VecOf<T, 32>::type;
  using V64 = typename VecOf<T, 64>::type;
  if (isa::active() == isa::kAvx512)
    rows_of = rows_avx512<T>, block = Tile<V64>::CB * sizeof(V64) / sizeof(T), nk = Tile<V64>::NK;
  else if (isa::active() == isa::kAvx2)
    rows_of = rows_avx2<T>, block = Tile<V32>::CB * sizeof(V32) / sizeof(T), nk = Tile<V32>::NK;
#endif
  std::vector<int> k0;
  std::vector<T> P, Q;
  // as few groups as NK allows, sizes within one of each other (a lone node pair would pay a
  // whole pass over the output for one node's work)
  const int64_t groups = (K + nk - 1) / nk;
  for (int64_t g = 0; g <= groups; ++g) k0.push_back((int)(g * K / groups));
  P.resize(K * Dp);
  Q.resize(K * Do);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t a = k0[g], n = k0[g + 1] - a;
    for (int64_t k = a; k < a + n; ++k) {
      const T* p = j.table + k * j.st;
      for (int l = 0; l <= std::max(L1, L2); ++l)
        for (int m = -l; m <= l; ++m) {  // the spectra's factors, see spectra()
          const T c = m ? (m > 0 ? T(gaunt::kSqrtHalf) : -T(gaunt::kSqrtHalf)) : T(1);
          P[a * Dp + (l * l + l + m) * n + k - a] = c * p[l * l + l + m];
        }
      for (int l = 0; l <= lo; ++l)
        for (int m = -l; m <= l; ++m) {
          const T c = m ? (m > 0 ? T(gaunt::kTwoSqrt2Pi) : -T(gaunt::kTwoSqrt2Pi)) : T(gaunt::kTwoPi);
          Q[(l * l + l + m) * K + k] = j.w[k] * c * p[l * l + l + m];
        }
    }
  }
  j.k0 = k0.data(), j.groups = (int)groups, j.P = P.data(), j.Q = Q.data();
  // a block of rows is ~K (L^2 + 4 L1 L2) multiply-adds per channel: worth a task of its own
  at::parallel_for(0, (N + block - 1) / block, 1,
                   [&](int64_t b0, int64_t b1) { rows_of(j, b0 * block, std::min(N, b1 * block)); });
}

Tensor grid_product(const Tensor& x1, const Tensor& x2, const Tensor& table_, const Tensor& weights_,
                    int64_t lmax_out) {
  const auto [l1, l2] = gaunt_args::check(x1, x2, table_, weights_, lmax_out);
  const Tensor table = table_.contiguous(), weights = weights_.contiguous();
  Tensor out = at::empty({x1.size(0), (lmax_out + 1) * (lmax_out + 1)}, x1.options());
  if (x1.size(0) == 0) return out;
  if (x1.scalar_type() == at::kFloat)
    run<float>(x1, x2, table, weights, (int)l1, (int)l2, (int)lmax_out, out);
  else
    run<double>(x1, x2, table, weights, (int)l1, (int)l2, (int)lmax_out, out);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyops, CPU, m) { m.impl("gaunt_grid_product", &grid_product); }

}  // namespace pyops
