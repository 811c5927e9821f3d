// Direct CPU convolution for few channels (kernels/conv2d.h), NHWC x/y, KRSC w, AVX-512:
// no im2col matrix, the taps read x (or dy) in place.
//   fprop  y[pixel, k]  = Σ_taps Σ_c x[tap pixel, c]·w[k, tap, c]     vectorised over k
//   dgrad  dx[pixel, c] = Σ_taps Σ_k dy[tap pixel, k]·w[k, tap, c]    vectorised over c
//          (+ dx_add[pixel, c]: a residual block's shortcut gradient, added in the same pass)
//   wgrad  dw[k, tap, c] += Σ_pixels dy[pixel, k]·x[tap pixel, c]      vectorised over k
// fprop and dgrad hold a block of up to 24 output pixels of one row × 16 or 32 channels in
// registers and sweep the taps once; the weights are repacked per call so that one tap's
// C×K panel is a run of 16-lane vectors. Pixels whose taps all fall inside the input share
// one tap list; the few at the image edges get their own, clipped one. For stride-1 3×3
// filters the interior blocks and wgrad slide along the row with a filter row's three taps at
// once, each broadcast feeding three FMAs. wgrad sums fixed chunks of images into partial
// buffers and adds them in chunk order. Every output element is summed in an order fixed by
// the shape, so the bits do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "base/error.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/gemm_blocked.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace activeip {

bool conv2d_direct_supported(const Conv2dShape& s) {
#if defined(__AVX512F__)
  return s.C <= 32 && s.K <= 32 && s.R * s.S <= 25;
#else
  (void)s;
  return false;
#endif
}

#if defined(__AVX512F__)
namespace {

constexpr int kLanes = 16;
constexpr int kMaxTaps = 25;

// One tap of a pixel block: where its input starts (relative to the input's base) and the
// tap's weight panel, Cin rows of ldw floats (the output channels, zero-padded to a multiple
// of 16).
struct Tap {
  long in_off;
  const float* w;
};

__mmask16 lane_mask(int n) {
  return n >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

// out[i·out_step + 16v + l] = init[i·init_step + 16v + l] + Σ_taps Σ_c in[tap.in_off + i·in_step + c] ·
// tap.w[c·ldw + 16v + l] for i < NQ pixels and v < KV vectors (init: a bias, init_step 0, or
// a tensor added to the output; null: 0); the last vector loads and stores through `last`
// (output channels past the end are neither read nor written).
template <int NQ, int KV>
inline void init_acc(__m512 (&acc)[NQ][KV], const float* init, long init_step, __mmask16 last) {
#pragma GCC unroll 32
  for (int i = 0; i < NQ; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < KV; ++v)
      acc[i][v] = init ? _mm512_maskz_loadu_ps(v == KV - 1 ? last : 0xFFFF, init + i * init_step + v * kLanes)
                       : _mm512_setzero_ps();
}

template <int NQ, int KV>
void block_kernel(const float* in, long in_step, const Tap* taps, int ntaps, int cin, int ldw, const float* init,
                  long init_step, float* out, long out_step, __mmask16 last) {
  __m512 acc[NQ][KV];
  init_acc<NQ, KV>(acc, init, init_step, last);
  for (int t = 0; t < ntaps; ++t) {
    const float* a = in + taps[t].in_off;
    const float* w = taps[t].w;
    for (int c = 0; c < cin; ++c, w += ldw, ++a) {
      __m512 wv[KV];
#pragma GCC unroll 2
      for (int v = 0; v < KV; ++v) wv[v] = _mm512_load_ps(w + v * kLanes);
#pragma GCC unroll 32
      for (int i = 0; i < NQ; ++i) {
        const __m512 xi = _mm512_set1_ps(a[i * in_step]);
#pragma GCC unroll 2
        for (int v = 0; v < KV; ++v) acc[i][v] = _mm512_fmadd_ps(xi, wv[v], acc[i][v]);
      }
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < NQ; ++i) {
    float* o = out + i * out_step;
#pragma GCC unroll 2
    for (int v = 0; v < KV; ++v) _mm512_mask_storeu_ps(o + v * kLanes, v == KV - 1 ? last : 0xFFFF, acc[i][v]);
  }
}

using BlockFn = void (*)(const float*, long, const Tap*, int, int, int, const float*, long, float*, long, __mmask16);

// Register budget: NQ·KV accumulators + KV weight vectors + one broadcast ≤ 32 zmm.
constexpr int kMaxBlock1 = 24, kMaxBlock2 = 12;

template <int KV, size_t... I>
constexpr std::array<BlockFn, sizeof...(I)> block_table(std::index_sequence<I...>) {
  return {&block_kernel<int(I) + 1, KV>...};
}
const auto kBlocks1 = block_table<1>(std::make_index_sequence<kMaxBlock1>{});
const auto kBlocks2 = block_table<2>(std::make_index_sequence<kMaxBlock2>{});

// A row of output pixels, in_step apart in the input and out_step apart in the output,
// over `nout` output channels in vectors of 16 (two at a time). Pixels that share the full
// tap list go in blocks; the edge pixels (fewer taps) one at a time.
struct RowJob {
  const float* in;
  long in_step;
  int cin, ldw;
  const float* init;  // bias padded to ldw (init_step 0), a tensor added to out, or null
  long init_step;
  float* out;
  long out_step;
  int nout;
};

void run_block(const RowJob& j, const Tap* taps, int ntaps, int first, int count) {
  const float* in = j.in + first * j.in_step;
  float* out = j.out + first * j.out_step;
  for (int k0 = 0; k0 < j.nout; k0 += 2 * kLanes) {
    const int kn = std::min(2 * kLanes, j.nout - k0);
    const bool two = kn > kLanes;
    const __mmask16 last = lane_mask(two ? kn - kLanes : kn);
    Tap shifted[kMaxTaps];
    for (int t = 0; t < ntaps; ++t) shifted[t] = {taps[t].in_off, taps[t].w + k0};
    const float* init = j.init ? j.init + first * j.init_step + k0 : nullptr;
    const int max_block = two ? kMaxBlock2 : kMaxBlock1;
    // Equal blocks, so no block is a short leftover.
    const int blocks = (count + max_block - 1) / max_block;
    for (int b = 0; b < blocks; ++b) {
      const int i0 = int(long(b) * count / blocks), i1 = int(long(b + 1) * count / blocks);
      const BlockFn fn = two ? kBlocks2[i1 - i0 - 1] : kBlocks1[i1 - i0 - 1];
      fn(in + i0 * j.in_step, j.in_step, shifted, ntaps, j.cin, j.ldw, init ? init + i0 * j.init_step : nullptr,
         j.init_step, out + i0 * j.out_step + k0, j.out_step, last);
    }
  }
}

// Stride 1 along the row and three taps per filter row (3×3 filters): the taps of filter
// row g read input pixels i + d (d = 0, 1, 2) for output pixel i. Sliding along the row, each
// input value is broadcast once and used by the (up to) three output pixels that read it, so
// a broadcast feeds 3·KV FMAs instead of KV: the loads no longer bound the FMAs at K = 16.
struct TapRow {
  long in_off;        // input of d = 0 for pixel 0, relative to the block's input
  const float* w[3];  // the panel of each d, Cin rows of ldw floats
};
constexpr int kMaxRows = 5;

template <int NQ, int KV>
void slide_kernel(const float* in, long in_step, const TapRow* rows, int nrows, int cin, int ldw, const float* init,
                  long init_step, float* out, long out_step, __mmask16 last) {
  __m512 acc[NQ][KV];
  init_acc<NQ, KV>(acc, init, init_step, last);
  for (int g = 0; g < nrows; ++g) {
    const float* a = in + rows[g].in_off;
    const float *w0 = rows[g].w[0], *w1 = rows[g].w[1], *w2 = rows[g].w[2];
    for (int c = 0; c < cin; ++c, ++a) {
      __m512 wv[3][KV];
#pragma GCC unroll 2
      for (int v = 0; v < KV; ++v) {
        wv[0][v] = _mm512_load_ps(w0 + size_t(c) * ldw + v * kLanes);
        wv[1][v] = _mm512_load_ps(w1 + size_t(c) * ldw + v * kLanes);
        wv[2][v] = _mm512_load_ps(w2 + size_t(c) * ldw + v * kLanes);
      }
#pragma GCC unroll 40
      for (int j = 0; j < NQ + 2; ++j) {
        const __m512 xj = _mm512_set1_ps(a[j * in_step]);
#pragma GCC unroll 3
        for (int d = 0; d < 3; ++d) {
          const int i = j - d;
          if (i < 0 || i >= NQ) continue;
#pragma GCC unroll 2
          for (int v = 0; v < KV; ++v) acc[i][v] = _mm512_fmadd_ps(xj, wv[d][v], acc[i][v]);
        }
      }
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < NQ; ++i) {
    float* o = out + i * out_step;
#pragma GCC unroll 2
    for (int v = 0; v < KV; ++v) _mm512_mask_storeu_ps(o + v * kLanes, v == KV - 1 ? last : 0xFFFF, acc[i][v]);
  }
}

using SlideFn = void (*)(const float*, long, const TapRow*, int, int, int, const float*, long, float*, long, __mmask16);
// Registers: NQ·KV accumulators + 3·KV weights + one broadcast ≤ 32 zmm.
constexpr int kMaxSlide1 = 24, kMaxSlide2 = 12;
template <int KV, size_t... I>
constexpr std::array<SlideFn, sizeof...(I)> slide_table(std::index_sequence<I...>) {
  return {&slide_kernel<int(I) + 1, KV>...};
}
const auto kSlides1 = slide_table<1>(std::make_index_sequence<kMaxSlide1>{});
const auto kSlides2 = slide_table<2>(std::make_index_sequence<kMaxSlide2>{});

void run_slide(const RowJob& j, const TapRow* rows, int nrows, int first, int count) {
  const float* in = j.in + first * j.in_step;
  float* out = j.out + first * j.out_step;
  for (int k0 = 0; k0 < j.nout; k0 += 2 * kLanes) {
    const int kn = std::min(2 * kLanes, j.nout - k0);
    const bool two = kn > kLanes;
    const __mmask16 last = lane_mask(two ? kn - kLanes : kn);
    TapRow shifted[kMaxRows];
    for (int g = 0; g < nrows; ++g)
      shifted[g] = {rows[g].in_off, {rows[g].w[0] + k0, rows[g].w[1] + k0, rows[g].w[2] + k0}};
    const float* init = j.init ? j.init + first * j.init_step + k0 : nullptr;
    const int max_block = two ? kMaxSlide2 : kMaxSlide1;
    const int blocks = (count + max_block - 1) / max_block;
    for (int b = 0; b < blocks; ++b) {
      const int i0 = int(long(b) * count / blocks), i1 = int(long(b + 1) * count / blocks);
      const SlideFn fn = two ? kSlides2[i1 - i0 - 1] : kSlides1[i1 - i0 - 1];
      fn(in + i0 * j.in_step, j.in_step, shifted, nrows, j.cin, j.ldw, init ? init + i0 * j.init_step : nullptr,
         j.init_step, out + i0 * j.out_step + k0, j.out_step, last);
    }
  }
}

// acc[c·ldk + l] += Σ_i x[i·xstep + c]·dy[i·ldy + l] for c < CN, i < count: CN rows of one
// 16-lane vector of dwᵀ, held in registers over a row of pixels.
template <int CN>
void wgrad_tile(const float* x, long xstep, const float* dy, long ldy, int count, __mmask16 m, float* acc, int ldk) {
  __m512 a[CN];
#pragma GCC unroll 16
  for (int c = 0; c < CN; ++c) a[c] = _mm512_load_ps(acc + size_t(c) * ldk);
  for (int i = 0; i < count; ++i, x += xstep, dy += ldy) {
    const __m512 g = _mm512_maskz_loadu_ps(m, dy);
#pragma GCC unroll 16
    for (int c = 0; c < CN; ++c) a[c] = _mm512_fmadd_ps(_mm512_set1_ps(x[c]), g, a[c]);
  }
#pragma GCC unroll 16
  for (int c = 0; c < CN; ++c) _mm512_store_ps(acc + size_t(c) * ldk, a[c]);
}

using WgradFn = void (*)(const float*, long, const float*, long, int, __mmask16, float*, int);
template <size_t... I>
constexpr std::array<WgradFn, sizeof...(I)> wgrad_table(std::index_sequence<I...>) {
  return {&wgrad_tile<int(I) + 1>...};
}
const auto kWgradTiles = wgrad_table(std::make_index_sequence<kLanes>{});

// Stride 1, three taps per filter row: acc_s[c·ldk + l] += Σ_q x[q + s − pad, c]·dy[q, l] for
// the taps s = 0, 1, 2 at once. Walking the x row, each x value is broadcast once for the three
// dy pixels that pair with it (a window of three dy vectors slides along in registers, zero
// outside dy), so a broadcast feeds three FMAs. Every sum still runs over q in order.
constexpr int kSlideChannels = 8;  // 3·8 accumulators + 3 dy vectors + a broadcast ≤ 32 zmm

template <int CN>
void wgrad_slide_tile(const float* x, int W, long ldx, const float* dy, int Q, long ldy, int pad, __mmask16 m,
                      float* acc, size_t tap_stride, int ldk) {
  __m512 a[3][CN];
#pragma GCC unroll 3
  for (int t = 0; t < 3; ++t)
#pragma GCC unroll 8
    for (int c = 0; c < CN; ++c) a[t][c] = _mm512_load_ps(acc + t * tap_stride + size_t(c) * ldk);
  auto dy_at = [&](int q) { return q >= 0 && q < Q ? _mm512_maskz_loadu_ps(m, dy + q * ldy) : _mm512_setzero_ps(); };
  // At column w, tap t pairs x[w] with dy[w + pad − t].
  __m512 d1 = dy_at(pad - 1), d2 = dy_at(pad - 2);
  for (int w = 0; w < W; ++w, x += ldx) {
    const __m512 d0 = dy_at(w + pad);
#pragma GCC unroll 8
    for (int c = 0; c < CN; ++c) {
      const __m512 xv = _mm512_set1_ps(x[c]);
      a[0][c] = _mm512_fmadd_ps(xv, d0, a[0][c]);
      a[1][c] = _mm512_fmadd_ps(xv, d1, a[1][c]);
      a[2][c] = _mm512_fmadd_ps(xv, d2, a[2][c]);
    }
    d2 = d1;
    d1 = d0;
  }
#pragma GCC unroll 3
  for (int t = 0; t < 3; ++t)
#pragma GCC unroll 8
    for (int c = 0; c < CN; ++c) _mm512_store_ps(acc + t * tap_stride + size_t(c) * ldk, a[t][c]);
}

using WgradSlideFn = void (*)(const float*, int, long, const float*, int, long, int, __mmask16, float*, size_t, int);
template <size_t... I>
constexpr std::array<WgradSlideFn, sizeof...(I)> wgrad_slide_table(std::index_sequence<I...>) {
  return {&wgrad_slide_tile<int(I) + 1>...};
}
const auto kWgradSlides = wgrad_slide_table(std::make_index_sequence<kSlideChannels>{});

void check_direct(const Conv2dShape& s) {
  ENSURE(conv2d_direct_supported(s) && s.N > 0 && s.H > 0 && s.W > 0 && s.C > 0 && s.K > 0 && s.stride > 0 &&
             s.pad >= 0 && s.P() > 0 && s.Q() > 0,
         "conv2d direct: unsupported shape N=%d H=%d W=%d C=%d K=%d R=%d S=%d stride=%d pad=%d", s.N, s.H, s.W, s.C,
         s.K, s.R, s.S, s.stride, s.pad);
}

int pad16(int n) {
  return (n + kLanes - 1) / kLanes * kLanes;
}

}  // namespace

void conv2d_fprop_direct_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  check_direct(s);
  const int P = s.P(), Q = s.Q(), ldw = pad16(s.K), RS = s.R * s.S;
  // w as RS panels of C×ldw (w[k, r, s, c] at panel rs, row c, column k), then the bias.
  thread_local cpu::Scratch wpack;
  float* wt = wpack.get(size_t(RS) * s.C * ldw + ldw);
  std::memset(wt, 0, sizeof(float) * (size_t(RS) * s.C * ldw + ldw));
  for (int k = 0; k < s.K; ++k)
    for (int rs = 0; rs < RS; ++rs)
      for (int c = 0; c < s.C; ++c) wt[(size_t(rs) * s.C + c) * ldw + k] = w[(size_t(k) * RS + rs) * s.C + c];
  float* bpad = wt + size_t(RS) * s.C * ldw;
  if (bias) std::memcpy(bpad, bias, sizeof(float) * s.K);

  const bool parallel = !omp_in_parallel();
#pragma omp parallel for schedule(static) if (parallel)
  for (int np = 0; np < s.N * P; ++np) {
    const int n = np / P, p = np % P;
    const int r0 = std::max(0, s.pad - p * s.stride), r1 = std::min(s.R, s.H + s.pad - p * s.stride);
    const float* xrow = x + long(n) * s.H * s.W * s.C;
    RowJob job{xrow, long(s.stride) * s.C, s.C, ldw, bias ? bpad : nullptr, 0, y + long(np) * Q * s.K, s.K, s.K};
    // Taps of output pixel q: (r, t) with input (h, wi) = (p·stride − pad + r, q·stride − pad + t).
    auto taps_of = [&](int q, int t0, int t1, Tap* taps) {
      int n_taps = 0;
      for (int r = r0; r < r1; ++r)
        for (int t = t0; t < t1; ++t) {
          const long h = p * s.stride - s.pad + r, wi = long(q) * s.stride - s.pad + t;
          taps[n_taps++] = {(h * s.W + wi) * s.C - long(q) * s.stride * s.C, wt + size_t(r * s.S + t) * s.C * ldw};
        }
      return n_taps;
    };
    // Interior: q·stride − pad ≥ 0 and q·stride − pad + S − 1 ≤ W − 1.
    const int qa = std::min(Q, (s.pad + s.stride - 1) / s.stride);
    const int qb = std::max(qa, std::min(Q, s.W + s.pad - s.S < 0 ? 0 : (s.W + s.pad - s.S) / s.stride + 1));
    Tap taps[kMaxTaps];
    auto edge = [&](int q) {
      const int t0 = std::max(0, s.pad - q * s.stride), t1 = std::min(s.S, s.W + s.pad - q * s.stride);
      run_block(job, taps, taps_of(q, t0, t1, taps), q, 1);
    };
    for (int q = 0; q < qa; ++q) edge(q);
    if (qb > qa) {
      const int nt = taps_of(0, 0, s.S, taps);  // rows r0..r1−1, each t = 0, 1, 2
      if (s.stride == 1 && s.S == 3 && s.R <= kMaxRows) {
        TapRow tr[kMaxRows];
        for (int g = 0; g < r1 - r0; ++g)
          tr[g] = {taps[3 * g].in_off, {taps[3 * g].w, taps[3 * g + 1].w, taps[3 * g + 2].w}};
        run_slide(job, tr, r1 - r0, qa, qb - qa);
      } else {
        run_block(job, taps, nt, qa, qb - qa);
      }
    }
    for (int q = qb; q < Q; ++q) edge(q);
  }
}

void conv2d_dgrad_direct_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx, const float* dx_add) {
  check_direct(s);
  const int P = s.P(), Q = s.Q(), ldw = pad16(s.C), RS = s.R * s.S;
  // w as RS panels of K×ldw (w[k, r, s, c] at panel rs, row k, column c).
  thread_local cpu::Scratch wpack;
  float* wt = wpack.get(size_t(RS) * s.K * ldw);
  std::memset(wt, 0, sizeof(float) * size_t(RS) * s.K * ldw);
  for (int k = 0; k < s.K; ++k)
    for (int rs = 0; rs < RS; ++rs)
      std::memcpy(wt + (size_t(rs) * s.K + k) * ldw, w + (size_t(k) * RS + rs) * s.C, sizeof(float) * s.C);

  // dx pixel (h, wi) gathers dy pixel (p, q) = ((h + pad − r)/stride, (wi + pad − t)/stride)
  // for the taps whose quotients are whole and inside dy. Along a row, the pixels wi ≡ phase
  // (mod stride) see the same t and consecutive q: one run per phase, stride·C apart in dx.
  const bool parallel = !omp_in_parallel();
#pragma omp parallel for schedule(static) if (parallel)
  for (int nh = 0; nh < s.N * s.H; ++nh) {
    const int n = nh / s.H, h = nh % s.H;
    const float* dyn = dy + long(n) * P * Q * s.K;
    float* dxrow = dx + long(nh) * s.W * s.C;
    int rows[kMaxTaps], nrows = 0;  // taps r that reach a dy row, with that row
    int prow[kMaxTaps];
    for (int r = 0; r < s.R; ++r) {
      const int num = h + s.pad - r;
      if (num < 0 || num % s.stride != 0 || num / s.stride >= P) continue;
      rows[nrows] = r, prow[nrows++] = num / s.stride;
    }
    for (int phase = 0; phase < std::min(s.stride, s.W); ++phase) {
      const int count = (s.W - phase + s.stride - 1) / s.stride;  // pixels wi = phase + i·stride
      const long step = long(s.stride) * s.C;                     // between the pixels of a phase, in dx and dx_add
      RowJob job{dyn,
                 s.K,
                 s.K,
                 ldw,
                 dx_add ? dx_add + long(nh) * s.W * s.C + long(phase) * s.C : nullptr,
                 step,
                 dxrow + long(phase) * s.C,
                 step,
                 s.C};
      // The taps t ≡ phase + pad (mod stride) reach dy column q = i + off[t] from pixel i, when
      // that lies in [0, Q); pixels i ∈ [ia, ib) reach it for every such t.
      int cols[kMaxTaps], off[kMaxTaps], ncols = 0;
      int ia = 0, ib = count;
      for (int t = 0; t < s.S; ++t) {
        const int num = phase + s.pad - t;
        if (((num % s.stride) + s.stride) % s.stride != 0) continue;
        cols[ncols] = t, off[ncols] = num / s.stride;  // exact, also for num < 0
        ia = std::max(ia, -off[ncols]), ib = std::min(ib, Q - off[ncols]);
        ++ncols;
      }
      auto taps_of = [&](int i, Tap* taps) {
        int n_taps = 0;
        for (int b = 0; b < ncols; ++b) {
          const int q = i + off[b];
          if (q < 0 || q >= Q) continue;
          for (int a = 0; a < nrows; ++a)
            taps[n_taps++] = {(long(prow[a]) * Q + q - i) * s.K, wt + size_t(rows[a] * s.S + cols[b]) * s.K * ldw};
        }
        return n_taps;
      };
      Tap taps[kMaxTaps];
      ib = std::max(ia, ib);
      for (int i = 0; i < std::min(ia, count); ++i) run_block(job, taps, taps_of(i, taps), i, 1);
      if (ib > ia) {
        const int nt = taps_of(ia, taps);  // t = 0, 1, 2 (off = pad − t), each over the rows a
        if (s.stride == 1 && s.S == 3 && ncols == 3 && nrows <= kMaxRows) {
          // Pixel i reads dy column i + pad − t: d = 2 − t counts from the leftmost (t = 2).
          TapRow tr[kMaxRows];
          for (int g = 0; g < nrows; ++g)
            tr[g] = {taps[2 * nrows + g].in_off, {taps[2 * nrows + g].w, taps[nrows + g].w, taps[g].w}};
          run_slide(job, tr, nrows, ia, ib - ia);
        } else {
          run_block(job, taps, nt, ia, ib - ia);
        }
      }
      for (int i = std::max(ib, ia); i < count; ++i) run_block(job, taps, taps_of(i, taps), i, 1);
    }
  }
}

void conv2d_wgrad_direct_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  check_direct(s);
  const int P = s.P(), Q = s.Q(), RS = s.R * s.S, ldk = pad16(s.K);
  // Chunks of whole images, as many as the batch allows up to 16: fixed by N alone.
  const int chunks = std::min(s.N, 16);
  const size_t part_size = size_t(RS) * s.C * ldk;  // dwᵀ per chunk: [rs][c][k]
  thread_local cpu::Scratch pbuf;
  float* parts = pbuf.get(part_size * chunks);
  const bool parallel = !omp_in_parallel();
  const __mmask16 kmask = lane_mask(s.K);  // K ≤ 32: vector 0 full unless K < 16
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int chunk = 0; chunk < chunks; ++chunk) {
    float* part = parts + part_size * chunk;
    std::memset(part, 0, sizeof(float) * part_size);
    const int n0 = cpu::part_begin(chunk, chunks, s.N), n1 = cpu::part_begin(chunk + 1, chunks, s.N);
    const bool slide = s.stride == 1 && s.S == 3;
    for (int n = n0; n < n1; ++n)
      for (int p = 0; p < P; ++p) {
        const float* dyrow = dy + (long(n) * P + p) * Q * s.K;
        for (int r = 0; r < s.R; ++r) {
          const int h = p * s.stride - s.pad + r;
          if (h < 0 || h >= s.H) continue;
          if (slide) {  // the three taps of row r at once, along the whole row of x
            const float* xrow = x + (long(n) * s.H + h) * s.W * s.C;
            float* acc_base = part + size_t(r * s.S) * s.C * ldk;
            for (int v = 0; v * kLanes < s.K; ++v) {
              const __mmask16 m = v == 0 ? (s.K >= kLanes ? __mmask16(0xFFFF) : kmask) : lane_mask(s.K - kLanes);
              for (int c0 = 0; c0 < s.C; c0 += kSlideChannels) {
                const int cn = std::min(kSlideChannels, s.C - c0);
                kWgradSlides[cn - 1](xrow + c0, s.W, s.C, dyrow + v * kLanes, Q, s.K, s.pad, m,
                                     acc_base + size_t(c0) * ldk + v * kLanes, size_t(s.C) * ldk, ldk);
              }
            }
            continue;
          }
          for (int t = 0; t < s.S; ++t) {
            // Pixels q whose column q·stride − pad + t lies inside x.
            const int qa = std::min(Q, std::max(0, (s.pad - t + s.stride - 1) / s.stride));
            const int qb = std::min(Q, s.W + s.pad - t <= 0 ? 0 : (s.W + s.pad - t - 1) / s.stride + 1);
            if (qb <= qa) continue;
            const float* xcol = x + ((long(n) * s.H + h) * s.W + (long(qa) * s.stride - s.pad + t)) * s.C;
            const long xstep = long(s.stride) * s.C;
            float* acc_base = part + size_t(r * s.S + t) * s.C * ldk;
            for (int v = 0; v * kLanes < s.K; ++v) {
              const __mmask16 m = v == 0 ? (s.K >= kLanes ? __mmask16(0xFFFF) : kmask) : lane_mask(s.K - kLanes);
              const float* dyq = dyrow + long(qa) * s.K + v * kLanes;
              for (int c0 = 0; c0 < s.C; c0 += kLanes) {
                const int cn = std::min(kLanes, s.C - c0);
                kWgradTiles[cn - 1](xcol + c0, xstep, dyq, s.K, qb - qa, m, acc_base + size_t(c0) * ldk + v * kLanes,
                                    ldk);
              }
            }
          }
        }
      }
  }
  // dw[k, rs, c] += Σ_chunks part[rs][c][k], the chunks in order.
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < s.K; ++k)
    for (int rs = 0; rs < RS; ++rs)
      for (int c = 0; c < s.C; ++c) {
        const size_t i = (size_t(rs) * s.C + c) * ldk + k;
        float sum = parts[i];
        for (int chunk = 1; chunk < chunks; ++chunk) sum += parts[part_size * chunk + i];
        dw[(size_t(k) * RS + rs) * s.C + c] += sum;
      }
  if (dbias) conv2d_bias_grad_cpu(s, dy, dbias);
}

#else  // no AVX-512: conv2d_direct_supported() is false and the dispatcher never calls these

void conv2d_fprop_direct_cpu(const Conv2dShape& s, const float*, const float*, const float*, float*) {
  ENSURE(false, "conv2d direct needs AVX-512 (C=%d K=%d)", s.C, s.K);
}
void conv2d_dgrad_direct_cpu(const Conv2dShape& s, const float*, const float*, float*, const float*) {
  ENSURE(false, "conv2d direct needs AVX-512 (C=%d K=%d)", s.C, s.K);
}
void conv2d_wgrad_direct_cpu(const Conv2dShape& s, const float*, const float*, float*, float*) {
  ENSURE(false, "conv2d direct needs AVX-512 (C=%d K=%d)", s.C, s.K);
}

#endif

}  // namespace activeip
