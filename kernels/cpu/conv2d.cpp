// CPU convolution, NHWC x/y, KRSC w (kernels/conv2d.h), as GEMMs over an implicit im2col
// matrix col[NPQ × RSC] (row (n,p,q), column (r,s,c)) that is never built for the batch:
//   fprop  y[NPQ×K]      = col · wᵀ (+ bias)   col gathered per tile and reduction block
//   dgrad  dx            = col2im(dy · w)      per group of images, a panel of rows at a time
//   wgrad  dw[K×RSC]    += (colᵀ · dy)ᵀ        colᵀ gathered per tile and reduction block
// Every output element is owned by one thread and summed in a fixed order, so all three
// passes give the same bits whatever the thread count. The lowerings are written once over
// the operand precision: fp32, and bf16 (the *_bf16_cpu passes). The *_ref functions are the spec.
#include "kernels/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "base/error.h"
#include "kernels/bf16.h"
#include "kernels/cpu/gemm_blocked.h"

namespace activeip {
namespace {

using cpu::AView;
using cpu::copy_floats;
using cpu::kKC;
using cpu::part_begin;
using cpu::part_count;
using cpu::part_range;
using cpu::Range;
using cpu::units_of;
using cpu::zero_floats;

bool is_pointwise(const Conv2dShape& s) {
  return s.R == 1 && s.S == 1 && s.stride == 1 && s.pad == 0;
}

// Copies columns [col0, col0+len) of im2col row (n, p, q) into dst; taps that fall into the
// padding read as zero. The taps of one r that lie inside the image are contiguous in x
// (consecutive w, all C channels), so each is one memcpy.
void im2col_segment(const Conv2dShape& s, const float* x, int n, int p, int q, int col0, int len, float* dst) {
  const int h0 = p * s.stride - s.pad, w0 = q * s.stride - s.pad, end = col0 + len;
  for (int col = col0; col < end;) {
    const int rs = col / s.C, c = col % s.C, r = rs / s.S, t = rs % s.S;
    const int h = h0 + r, w = w0 + t;
    int taps;  // consecutive taps of row r from t on that are all inside or all outside
    const bool inside = h >= 0 && h < s.H && w >= 0 && w < s.W;
    if (inside)
      taps = std::min(s.S - t, s.W - w);
    else if (h < 0 || h >= s.H || w >= s.W)
      taps = s.S - t;
    else
      taps = std::min(s.S - t, -w);
    const int run = std::min(taps * s.C - c, end - col);
    if (inside)
      copy_floats(dst, x + ((long(n) * s.H + h) * s.W + w) * s.C + c, run);
    else
      zero_floats(dst, run);
    dst += run;
    col += run;
  }
}

// Walks rows (n, p, q) of the NPQ index space in order.
struct RowCursor {
  int n, p, q, P, Q;
  RowCursor(int row, int P_, int Q_) : n(row / (P_ * Q_)), p(row / Q_ % P_), q(row % Q_), P(P_), Q(Q_) {}
  void next() {
    if (++q == Q) {
      q = 0;
      if (++p == P) p = 0, ++n;
    }
  }
};

void check_shape(const Conv2dShape& s) {
  ENSURE(s.N > 0 && s.H > 0 && s.W > 0 && s.C > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 && s.pad >= 0 &&
             s.P() > 0 && s.Q() > 0,
         "conv2d shape N=%d H=%d W=%d C=%d K=%d R=%d S=%d stride=%d pad=%d", s.N, s.H, s.W, s.C, s.K, s.R, s.S,
         s.stride, s.pad);
  ENSURE(double(s.N) * s.P() * s.Q() <= std::numeric_limits<int>::max() &&
             double(s.N) * s.H * s.W <= std::numeric_limits<int>::max(),
         "conv2d N=%d with %dx%d images has too many pixels", s.N, s.H, s.W);
}

// The three GEMM lowerings, written once over the operand precision (gemm_blocked.h's
// F32Ops / Bf16Ops): its register tile, how B is packed and how a tile is swept.
template <class Ops>
void fprop_im2col(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  using BWord = typename Ops::BWord;
  constexpr int kMR = Ops::MR, kNR = Ops::NR;
  check_shape(s);
  const int P = s.P(), Q = s.Q(), RSC = s.R * s.S * s.C, rows = s.N * P * Q;
  // wᵀ (RSC × K) is packed once per call and shared read-only by all threads; the buffer is
  // kept by the calling thread so that deep layers' packs (up to MBs) are not re-faulted.
  thread_local cpu::BasicScratch<BWord> wpack;
  BWord* b_all = wpack.get(Ops::prepacked_b_size(RSC, s.K));
  Ops::prepack_b(w, RSC, true, RSC, s.K, b_all);

  // Tiles: rows in parts of ≤ 8 A slivers (the gathered block, ≤ 112 × 272 floats), output
  // channels in parts of ≤ 16 B slivers (a 256 × 512 block of packed wᵀ), both held in L2;
  // up to K = 512 one gather then serves all output channels.
  const bool parallel = !omp_in_parallel();
  const int units_m = units_of(rows, kMR), units_n = units_of(s.K, kNR);
  const int tiles_m = part_count(units_m, parallel ? omp_get_max_threads() : 1, 8), tiles_n = units_of(units_n, 16);
  const bool pointwise = is_pointwise(s);
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int tile = 0; tile < tiles_m * tiles_n; ++tile) {
    thread_local cpu::Scratch abuf;
    const Range rm = part_range(tile / tiles_n, tiles_m, units_m, kMR, rows);
    const Range rn = part_range(tile % tiles_n, tiles_n, units_n, kNR, s.K);
    float* a_block = pointwise ? nullptr : abuf.get(size_t(rm.size) * cpu::padded_ld(kKC));
    auto get_a = [&](int p0, int kc) {
      if (pointwise) return AView{x + long(rm.begin) * s.C + p0, s.C, false};
      const int ld = cpu::padded_ld(kc);
      RowCursor rc(rm.begin, P, Q);
      for (int i = 0; i < rm.size; ++i, rc.next())
        im2col_segment(s, x, rc.n, rc.p, rc.q, p0, kc, a_block + size_t(i) * ld);
      return AView{a_block, ld, false};
    };
    auto get_b = [&](int p0, int kc) { return Ops::prepacked_b_block(b_all, s.K, p0, kc, rn.begin); };
    float* y_tile = y + long(rm.begin) * s.K + rn.begin;
    Ops::tile(rm.size, rn.size, RSC, get_a, get_b, 1.0f, 0.0f, y_tile, s.K);
    if (bias)
      for (int i = 0; i < rm.size; ++i)
        for (int j = 0; j < rn.size; ++j) y_tile[long(i) * s.K + j] += bias[rn.begin + j];
  }
}

template <class Ops>
void dgrad_im2col(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  using BWord = typename Ops::BWord;
  constexpr int kMR = Ops::MR, kNR = Ops::NR;
  check_shape(s);
  const int P = s.P(), Q = s.Q(), RSC = s.R * s.S * s.C;
  thread_local cpu::BasicScratch<BWord> wpack;  // w (K × RSC) packed once, as in fprop
  BWord* b_all = wpack.get(Ops::prepacked_b_size(s.K, RSC));
  Ops::prepack_b(w, RSC, false, s.K, RSC, b_all);
  const bool parallel = !omp_in_parallel();
  const int threads = parallel ? omp_get_max_threads() : 1;
  const int units_n = units_of(RSC, kNR), chunks_n = units_of(units_n, 8);

  // dcol[rows × RSC] = dy_rows · w for m rows, in column chunks of ≤ 8 B slivers; fp32
  // copies the dy rows once with a padded leading dimension (dy's own, K, is often 2^n),
  // bf16 packs them per chunk (stage_a).
  auto dcol_rows = [&](const float* dy_rows, int m, float* out) {
    thread_local cpu::Scratch abuf;
    const AView a = Ops::stage_a(AView{dy_rows, s.K, false}, m, s.K, abuf.get(size_t(m) * cpu::padded_ld(s.K)));
    for (int chunk = 0; chunk < chunks_n; ++chunk) {
      const Range rn = part_range(chunk, chunks_n, units_n, kNR, RSC);
      auto get_a = [&](int p0, int) { return AView{a.ptr + p0, a.ld, false}; };
      auto get_b = [&](int p0, int kc) { return Ops::prepacked_b_block(b_all, RSC, p0, kc, rn.begin); };
      Ops::tile(m, rn.size, s.K, get_a, get_b, 1.0f, 0.0f, out + rn.begin, RSC);
    }
  };

  if (is_pointwise(s)) {  // col2im is the identity: dx[NHW × C] = dy · w directly.
    const int rows = s.N * P * Q, units_m = units_of(rows, kMR), tiles_m = part_count(units_m, threads, 8);
#pragma omp parallel for schedule(dynamic) if (parallel)
    for (int tile = 0; tile < tiles_m; ++tile) {
      const Range rm = part_range(tile, tiles_m, units_m, kMR, rows);
      dcol_rows(dy + long(rm.begin) * s.K, rm.size, dx + long(rm.begin) * s.C);
    }
    return;
  }

  // Groups of whole images go to threads; a group's dx is zeroed, then each panel of its dy
  // rows becomes a panel of dcol rows that is scatter-added into dx in row order. Each dx
  // element is thus summed in the order (row, r, s) by the one thread owning its image,
  // whatever the grouping and panel sizes. Those only keep the panel buffer cache-sized
  // (≤ 256K floats) and the GEMMs tall: groups span about 8 panels so that small images
  // share panels and few rows are lost to the last, partial A sliver of a group.
  const int image_rows = P * Q;
  const int panel_units = std::clamp((1 << 18) / RSC / kMR, 1, 8);
  const int groups = part_count(s.N, threads, std::max(1, 8 * panel_units * kMR / image_rows));
  const long image = long(s.H) * s.W * s.C;
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int g = 0; g < groups; ++g) {
    thread_local cpu::Scratch cbuf;
    float* col = cbuf.get(size_t(panel_units) * kMR * RSC);
    const int n0 = part_begin(g, groups, s.N), n1 = part_begin(g + 1, groups, s.N);
    std::memset(dx + n0 * image, 0, sizeof(float) * (n1 - n0) * image);
    const int group_rows = (n1 - n0) * image_rows, units = units_of(group_rows, kMR);
    const int panels = units_of(units, panel_units);
    for (int pn = 0; pn < panels; ++pn) {
      const Range rp = part_range(pn, panels, units, kMR, group_rows);
      const int r0 = n0 * image_rows + rp.begin, m = rp.size;
      dcol_rows(dy + long(r0) * s.K, m, col);
      RowCursor rc(r0, P, Q);
      for (int i = 0; i < m; ++i, rc.next()) {
        const float* ci = col + size_t(i) * RSC;
        float* dxn = dx + rc.n * image;
        for (int r = 0; r < s.R; ++r) {
          const int h = rc.p * s.stride - s.pad + r;
          if (h < 0 || h >= s.H) continue;
          for (int t = 0; t < s.S; ++t) {
            const int wi = rc.q * s.stride - s.pad + t;
            if (wi < 0 || wi >= s.W) continue;
            float* d = dxn + (long(h) * s.W + wi) * s.C;
            const float* src = ci + (r * s.S + t) * s.C;
            for (int c = 0; c < s.C; ++c) d[c] += src[c];
          }
        }
      }
    }
  }
}

template <class Ops>
void wgrad_im2col(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  using BWord = typename Ops::BWord;
  constexpr int kMR = Ops::MR, kNR = Ops::NR;
  check_shape(s);
  const int P = s.P(), Q = s.Q(), RSC = s.R * s.S * s.C, rows = s.N * P * Q;
  const bool parallel = !omp_in_parallel();

  // dwᵀ[RSC × K] = colᵀ · dy: RSC is the long side, so the A slivers (14 columns of col,
  // gathered k-major: one contiguous im2col segment per row of col) waste little, and dy
  // rows pack into B slivers by plain copies. Each tile of dwᵀ runs the whole NPQ reduction
  // into a thread-local accumulator and is then added, transposed, into dw. Tiles are tall
  // (≤ 24 A slivers, a 256 × 368 gathered block, L2-resident with a 256 × 256 B block)
  // because every tile sweeps all of x and dy once.
  const int units_m = units_of(RSC, kMR), units_n = units_of(s.K, kNR);
  const int tiles_m = part_count(units_m, parallel ? omp_get_max_threads() : 1, 24), tiles_n = units_of(units_n, 8);
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int tile = 0; tile < tiles_m * tiles_n; ++tile) {
    thread_local cpu::Scratch abuf, cbuf;
    thread_local cpu::BasicScratch<BWord> bbuf;
    const Range rm = part_range(tile / tiles_n, tiles_m, units_m, kMR, RSC);
    const Range rn = part_range(tile % tiles_n, tiles_n, units_n, kNR, s.K);
    const int ld = cpu::padded_ld(rm.size);
    float* a_block = abuf.get(size_t(kKC) * ld);
    BWord* b_block = bbuf.get(Ops::packed_b_size(kKC, rn.size));
    const int acc_ld = cpu::padded_ld(rn.size);
    float* acc = cbuf.get(size_t(rm.size) * acc_ld);
    auto get_a = [&](int p0, int kc) {
      RowCursor rc(p0, P, Q);
      for (int k = 0; k < kc; ++k, rc.next())
        im2col_segment(s, x, rc.n, rc.p, rc.q, rm.begin, rm.size, a_block + size_t(k) * ld);
      return AView{a_block, ld, true};
    };
    auto get_b = [&](int p0, int kc) {
      Ops::pack_b(dy, s.K, false, p0, kc, rn.begin, rn.size, b_block);
      return static_cast<const BWord*>(b_block);
    };
    Ops::tile(rm.size, rn.size, rows, get_a, get_b, 1.0f, 0.0f, acc, acc_ld);
    cpu::add_transposed(acc, acc_ld, rm.size, rn.size, dw + long(rn.begin) * RSC + rm.begin, RSC);
  }

  if (dbias) conv2d_bias_grad_cpu(s, dy, dbias);
}

void check_bf16() {
  ENSURE(cpu_has_avx512_bf16(), "the bf16 kernels need a CPU with AVX512-BF16 (this one has none)");
}

}  // namespace

void conv2d_fprop_im2col_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  fprop_im2col<cpu::F32Ops>(s, x, w, bias, y);
}

void conv2d_dgrad_im2col_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  dgrad_im2col<cpu::F32Ops>(s, dy, w, dx);
}

void conv2d_wgrad_im2col_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  wgrad_im2col<cpu::F32Ops>(s, x, dy, dw, dbias);
}

// bf16 has one algorithm, the GEMM lowering: the direct and Winograd kernels would round at
// other points than the rounding plan (Winograd's transformed tiles are not the operands).
void conv2d_fprop_bf16_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  check_bf16();
  fprop_im2col<cpu::Bf16Ops>(s, x, w, bias, y);
}

void conv2d_dgrad_bf16_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  check_bf16();
  dgrad_im2col<cpu::Bf16Ops>(s, dy, w, dx);
}

void conv2d_wgrad_bf16_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  check_bf16();
  wgrad_im2col<cpu::Bf16Ops>(s, x, dy, dw, dbias);
}

// Column sums of dy in double, row by row so dy is read once per chunk of 64 k.
void conv2d_bias_grad_cpu(const Conv2dShape& s, const float* dy, float* dbias) {
  const long rows = long(s.N) * s.P() * s.Q();
  constexpr int kChunk = 64;
#pragma omp parallel for if (!omp_in_parallel())
  for (int k0 = 0; k0 < s.K; k0 += kChunk) {
    const int kn = std::min(kChunk, s.K - k0);
    double sum[kChunk] = {};
    for (long i = 0; i < rows; ++i)
      for (int k = 0; k < kn; ++k) sum[k] += dy[i * s.K + k0 + k];
    for (int k = 0; k < kn; ++k) dbias[k0 + k] += float(sum[k]);
  }
}

// Few channels: the direct kernels. Measured on resnet20's layers (C, K ∈ {3, 16, 32}) they
// beat the GEMMs by 1.2–4×: the GEMMs' 14×32 register tile half-fills at K = 16, and their
// im2col gathers and col2im scatters cost as much as the arithmetic there. dgrad vectorises
// over C, so for C < 8 (an RGB input layer) most lanes would idle: the GEMMs keep it.
bool conv2d_use_direct(const Conv2dShape& s) {
  return conv2d_direct_supported(s) && s.R * s.S > 1;
}

// 3×3 stride-1 filters from 32 channels on: Winograd's fprop and dgrad, measured on one
// core at 1.6–2× the GEMMs (and 1.3× the direct kernels at C = K = 32, which stay faster
// at 16). Its filters become 16 C×K matrices that every tile reads, so with few tiles per
// filter element (deep layers on small images: ResNet-18's 4×4 layer4 at batch 64 runs at
// 0.85× the GEMMs, 2×2 at 0.35×) the GEMMs keep the layer. wgrad's 16 C×K accumulators cost
// more: it needs 64 channels (at 32 the direct wgrad is faster) and twice the tiles.
namespace {
long winograd_tiles(const Conv2dShape& s) {
  return long(s.N) * ((s.H + 1) / 2) * ((s.W + 1) / 2);
}
}  // namespace

bool conv2d_use_winograd(const Conv2dShape& s) {
  return conv2d_winograd_supported(s) && s.C >= 32 && s.K >= 32 && winograd_tiles(s) >= 2L * std::max(s.C, s.K);
}

bool conv2d_use_winograd_wgrad(const Conv2dShape& s) {
  return conv2d_winograd_supported(s) && s.C >= 64 && s.K >= 64 && winograd_tiles(s) >= 4L * std::max(s.C, s.K);
}

void conv2d_fprop_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  if (conv2d_use_winograd(s)) return conv2d_fprop_winograd_cpu(s, x, w, bias, y);
  if (conv2d_use_direct(s)) return conv2d_fprop_direct_cpu(s, x, w, bias, y);
  conv2d_fprop_im2col_cpu(s, x, w, bias, y);
}

void conv2d_dgrad_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  if (conv2d_use_winograd(s)) return conv2d_dgrad_winograd_cpu(s, dy, w, dx);
  if (conv2d_use_direct(s) && s.C >= 8) return conv2d_dgrad_direct_cpu(s, dy, w, dx);
  conv2d_dgrad_im2col_cpu(s, dy, w, dx);
}

void conv2d_dgrad_add_cpu(const Conv2dShape& s, const float* dy, const float* w, const float* dx_add, float* dx) {
  if (conv2d_use_winograd(s)) return conv2d_dgrad_winograd_cpu(s, dy, w, dx, dx_add);
  if (conv2d_use_direct(s) && s.C >= 8) return conv2d_dgrad_direct_cpu(s, dy, w, dx, dx_add);
  conv2d_dgrad_im2col_cpu(s, dy, w, dx);
  const long n = long(s.x_size());
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && n >= (1 << 15))
  for (long i = 0; i < n; ++i) dx[i] += dx_add[i];
}

void conv2d_wgrad_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  if (conv2d_use_winograd_wgrad(s)) return conv2d_wgrad_winograd_cpu(s, x, dy, dw, dbias);
  if (conv2d_use_direct(s)) return conv2d_wgrad_direct_cpu(s, x, dy, dw, dbias);
  conv2d_wgrad_im2col_cpu(s, x, dy, dw, dbias);
}

void conv2d_fprop_ref(const Conv2dShape& s, const double* x, const double* w, const double* bias, double* y) {
  const int P = s.P(), Q = s.Q();
  for (int n = 0; n < s.N; ++n)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q)
        for (int k = 0; k < s.K; ++k) {
          double sum = bias ? bias[k] : 0.0;
          for (int r = 0; r < s.R; ++r)
            for (int t = 0; t < s.S; ++t) {
              const int h = p * s.stride - s.pad + r, wi = q * s.stride - s.pad + t;
              if (h < 0 || h >= s.H || wi < 0 || wi >= s.W) continue;
              for (int c = 0; c < s.C; ++c)
                sum += x[((long(n) * s.H + h) * s.W + wi) * s.C + c] * w[((long(k) * s.R + r) * s.S + t) * s.C + c];
            }
          y[((long(n) * P + p) * Q + q) * s.K + k] = sum;
        }
}

void conv2d_dgrad_ref(const Conv2dShape& s, const double* dy, const double* w, double* dx) {
  const int P = s.P(), Q = s.Q();
  std::fill(dx, dx + long(s.N) * s.H * s.W * s.C, 0.0);
  for (int n = 0; n < s.N; ++n)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q)
        for (int k = 0; k < s.K; ++k) {
          const double g = dy[((long(n) * P + p) * Q + q) * s.K + k];
          for (int r = 0; r < s.R; ++r)
            for (int t = 0; t < s.S; ++t) {
              const int h = p * s.stride - s.pad + r, wi = q * s.stride - s.pad + t;
              if (h < 0 || h >= s.H || wi < 0 || wi >= s.W) continue;
              for (int c = 0; c < s.C; ++c)
                dx[((long(n) * s.H + h) * s.W + wi) * s.C + c] += g * w[((long(k) * s.R + r) * s.S + t) * s.C + c];
            }
        }
}

void conv2d_wgrad_ref(const Conv2dShape& s, const double* x, const double* dy, double* dw, double* dbias) {
  const int P = s.P(), Q = s.Q();
  for (int k = 0; k < s.K; ++k) {
    for (int r = 0; r < s.R; ++r)
      for (int t = 0; t < s.S; ++t)
        for (int c = 0; c < s.C; ++c) {
          double sum = 0;
          for (int n = 0; n < s.N; ++n)
            for (int p = 0; p < P; ++p)
              for (int q = 0; q < Q; ++q) {
                const int h = p * s.stride - s.pad + r, wi = q * s.stride - s.pad + t;
                if (h < 0 || h >= s.H || wi < 0 || wi >= s.W) continue;
                sum += dy[((long(n) * P + p) * Q + q) * s.K + k] * x[((long(n) * s.H + h) * s.W + wi) * s.C + c];
              }
          dw[((long(k) * s.R + r) * s.S + t) * s.C + c] += sum;
        }
    if (dbias) {
      double sum = 0;
      for (long i = 0; i < long(s.N) * P * Q; ++i) sum += dy[i * s.K + k];
      dbias[k] += sum;
    }
  }
}

}  // namespace activeip
