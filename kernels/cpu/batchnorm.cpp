// Batch normalisation on the CPU over an NHWC tensor viewed as M×C rows, with the layers
// that follow it fused in (kernels/batchnorm.h's BatchNormAct): the forward reads x once for
// the statistics (per-channel sums of x − x[0] and its square, in double, so that a large mean
// does not cancel) and once more to write y = act((x − mean)·γ·invstd + β + residual); the
// backward reads x, dy (and the fused output y for the ReLU's mask) once for Σg and Σg·(x − mean)
// and once more to write dx. PyTorch's running-stat update (unbiased variance, momentum).
// The *_ref functions are the plain double-precision specification; batchnorm_row_splits and
// batchnorm_workspace_floats size the CUDA reductions' scratch, here so every build has them.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "kernels/batchnorm.h"
#include "kernels/cpu/gemm_blocked.h"

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#endif

namespace activeip {

namespace {

// Rows per reduction chunk. The partition depends only on M, never on the thread count,
// so every per-channel sum is added in the same order however many threads run.
constexpr int kRowChunk = 256;
// Channels summed together in registers (two AVX-512 vectors of doubles per sum).
constexpr int kChannelBlock = 16;

int chunks_of(int M) {
  return (M + kRowChunk - 1) / kRowChunk;
}

// Per-call scratch of the calling thread: the chunks' partial sums and per-channel constants.
double* doubles(cpu::Scratch& buf, size_t n) {
  return reinterpret_cast<double*>(buf.get(2 * n));
}

// out0[c] = Σ_r (g(r, c) − ca[c]), out1[c] = Σ_r (g(r, c) − ca[c])·(b[r, c] − cb[c]) over all
// rows, in double, where g = a·[y > 0] (kMask) or a. Each chunk of rows is summed into its
// own partials, which are then added in chunk order.
template <bool kMask>
void channel_sums2(const BatchNormShape& s, const float* a, const float* y, const float* b, const double* ca,
                   const double* cb, double* part, double* out0, double* out1) {
  const int M = s.M, C = s.C, chunks = chunks_of(M);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < chunks; ++k) {
    double* p0 = part + size_t(k) * 2 * C;
    double* p1 = p0 + C;
    const int r0 = k * kRowChunk, r1 = std::min(M, r0 + kRowChunk);
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    // 16 channels as two vectors of 8 doubles per sum; tails through lane masks. The rows go
    // in groups of 16, all channel blocks of a group before the next, so that the rows are read
    // in order (with C ≥ 64 a chunk's rows no longer fit in L1); the sums, kept in the chunk's
    // partials between groups, still add each channel's rows in order.
    auto lo = [](__m512 v) { return _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 0)); };
    auto hi = [](__m512 v) { return _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 1)); };
    // (The full-mask maskz forms: the plain intrinsics' undefined pass-through operand makes
    // GCC 12 warn falsely of uninitialized use, as in gemm.cpp.)
    constexpr int kRowGroup = 16;
    for (int g0 = r0; g0 < r1; g0 += kRowGroup) {
      const int g1 = std::min(r1, g0 + kRowGroup);
      for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
        const int cn = std::min(kChannelBlock, C - c0);
        const __mmask16 m = cn == kChannelBlock ? __mmask16(0xFFFF) : __mmask16((1u << cn) - 1);
        const __mmask8 mlo = __mmask8(m), mhi = __mmask8(m >> 8);
        const __m512d calo = _mm512_maskz_loadu_pd(mlo, ca + c0), cahi = _mm512_maskz_loadu_pd(mhi, ca + c0 + 8);
        const __m512d cblo = _mm512_maskz_loadu_pd(mlo, cb + c0), cbhi = _mm512_maskz_loadu_pd(mhi, cb + c0 + 8);
        const bool first = g0 == r0;
        __m512d s0lo = first ? _mm512_setzero_pd() : _mm512_maskz_loadu_pd(mlo, p0 + c0);
        __m512d s0hi = first ? _mm512_setzero_pd() : _mm512_maskz_loadu_pd(mhi, p0 + c0 + 8);
        __m512d s1lo = first ? _mm512_setzero_pd() : _mm512_maskz_loadu_pd(mlo, p1 + c0);
        __m512d s1hi = first ? _mm512_setzero_pd() : _mm512_maskz_loadu_pd(mhi, p1 + c0 + 8);
        for (int r = g0; r < g1; ++r) {
          const size_t i = static_cast<size_t>(r) * C + c0;
          __m512 g = _mm512_maskz_loadu_ps(m, a + i);
          if constexpr (kMask)
            g = _mm512_maskz_mov_ps(
                _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + i), _mm512_setzero_ps(), _CMP_GT_OQ), g);
          const __m512 bv = _mm512_maskz_loadu_ps(m, b + i);
          const __m512d glo = _mm512_sub_pd(lo(g), calo), ghi = _mm512_sub_pd(hi(g), cahi);
          s0lo = _mm512_add_pd(s0lo, glo);
          s0hi = _mm512_add_pd(s0hi, ghi);
          s1lo = _mm512_fmadd_pd(glo, _mm512_sub_pd(lo(bv), cblo), s1lo);
          s1hi = _mm512_fmadd_pd(ghi, _mm512_sub_pd(hi(bv), cbhi), s1hi);
        }
        _mm512_mask_storeu_pd(p0 + c0, mlo, s0lo);
        _mm512_mask_storeu_pd(p0 + c0 + 8, mhi, s0hi);
        _mm512_mask_storeu_pd(p1 + c0, mlo, s1lo);
        _mm512_mask_storeu_pd(p1 + c0 + 8, mhi, s1hi);
      }
    }
#else
    for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
      const int cn = std::min(kChannelBlock, C - c0);
      double s0[kChannelBlock] = {}, s1[kChannelBlock] = {};
      for (int r = r0; r < r1; ++r) {
        const size_t i = static_cast<size_t>(r) * C + c0;
        for (int j = 0; j < cn; ++j) {
          float g = a[i + j];
          if constexpr (kMask) g = y[i + j] > 0.0f ? g : 0.0f;
          const double d = static_cast<double>(g) - ca[c0 + j];
          s0[j] += d;
          s1[j] += d * (static_cast<double>(b[i + j]) - cb[c0 + j]);
        }
      }
      for (int j = 0; j < cn; ++j) p0[c0 + j] = s0[j], p1[c0 + j] = s1[j];
    }
#endif
  }
  for (int c = 0; c < C; ++c) out0[c] = out1[c] = 0.0;
  for (int k = 0; k < chunks; ++k)
    for (int c = 0; c < C; ++c) {
      out0[c] += part[size_t(k) * 2 * C + c];
      out1[c] += part[size_t(k) * 2 * C + C + c];
    }
}

// y = act((x − center[c])·scale[c] + beta[c] + residual) over all rows: the normalisation of
// both training (batch mean, γ·invstd) and eval (running mean, γ/sqrt(running var + eps)).
// Subtracting the mean first, rather than folding it into the shift, avoids cancellation when
// |mean| ≫ std. ReLU keeps a NaN, as relu_fwd does.
template <bool kResidual, bool kRelu>
void normalize_rows(const BatchNormShape& s, const float* x, const float* center, const float* scale, const float* beta,
                    const float* residual, float* y) {
  const int C = s.C;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < s.M; ++r) {
    const size_t base = static_cast<size_t>(r) * C;
    const float* xr = x + base;
    float* yr = y + base;
    for (int c = 0; c < C; ++c) {
      float v = (xr[c] - center[c]) * scale[c] + beta[c];
      if constexpr (kResidual) v += residual[base + c];
      if constexpr (kRelu) v = v < 0.0f ? 0.0f : v;
      yr[c] = v;
    }
  }
}

void normalize(const BatchNormShape& s, const float* x, const float* center, const float* scale, const float* beta,
               const BatchNormAct& act, float* y) {
  if (act.residual)
    act.relu ? normalize_rows<true, true>(s, x, center, scale, beta, act.residual, y)
             : normalize_rows<true, false>(s, x, center, scale, beta, act.residual, y);
  else
    act.relu ? normalize_rows<false, true>(s, x, center, scale, beta, nullptr, y)
             : normalize_rows<false, false>(s, x, center, scale, beta, nullptr, y);
}

// dx = k·(g − mean_g − (x − mean)·u) with g = dy·[y > 0] (kRelu) or dy, also written to dg,
// over rows [r0, r1).
template <bool kRelu, bool kWriteG>
void bwd_rows(const BatchNormShape& s, int r0, int r1, const BatchNormBwdArgs& a, const float* y, const float* k,
              const float* u, const float* mean_g, float* dg) {
  const int C = s.C;
#pragma omp parallel for schedule(static)
  for (int r = r0; r < r1; ++r) {
    const size_t base = static_cast<size_t>(r) * C;
    // Distinct arrays (dx, dg are outputs of their own); restrict lets the loop vectorise.
    const float* __restrict dyr = a.dy + base;
    const float* __restrict xr = a.x + base;
    const float* __restrict yr = kRelu ? y + base : nullptr;
    const float* __restrict mean = a.save_mean;
    float* __restrict dxr = a.dx + base;
    float* __restrict dgr = kWriteG ? dg + base : nullptr;
    for (int c = 0; c < C; ++c) {
      float g = dyr[c];
      if constexpr (kRelu) g = yr[c] > 0.0f ? g : 0.0f;
      if constexpr (kWriteG) dgr[c] = g;
      dxr[c] = k[c] * (g - mean_g[c] - (xr[c] - mean[c]) * u[c]);
    }
  }
}

}  // namespace

void batchnorm_shift_cpu(const BatchNormShape& s, const float* x, double* shift) {
  for (int c = 0; c < s.C; ++c) shift[c] = x[c];
}

void batchnorm_stat_sums_cpu(const BatchNormShape& s, const float* x, const double* shift, double* sums) {
  const int M = s.stats(), C = s.C;  // the statistics' rows
  thread_local cpu::Scratch pbuf;
  double* part = doubles(pbuf, size_t(chunks_of(M)) * 2 * C);
  channel_sums2<false>({M, C}, x, nullptr, x, shift, shift, part, sums, sums + C);
}

void batchnorm_fwd_train_sums_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                                      const BatchNormAct& act, const double* shift, const double* sums,
                                      int64_t count) {
  const int C = s.C;
  const double M = static_cast<double>(count);
  const double* sum = sums;
  const double* sq = sums + C;
  // The layer rejects M = 1 in training (as PyTorch does); the guard only keeps the
  // unbiased correction finite.
  const double unbias = count > 1 ? M / (M - 1) : 1.0;
  const double m = p.momentum;
  thread_local cpu::Scratch sbuf;
  float* scale = sbuf.get(size_t(C));
  for (int c = 0; c < C; ++c) {
    const double dmean = sum[c] / M;
    const double mean = shift[c] + dmean;
    const double var = std::max(0.0, sq[c] / M - dmean * dmean);
    const double invstd = 1.0 / std::sqrt(var + p.eps);
    a.save_mean[c] = static_cast<float>(mean);
    a.save_invstd[c] = static_cast<float>(invstd);
    a.running_mean[c] = static_cast<float>((1 - m) * a.running_mean[c] + m * mean);
    a.running_var[c] = static_cast<float>((1 - m) * a.running_var[c] + m * var * unbias);
    scale[c] = static_cast<float>(a.gamma[c] * invstd);
  }
  normalize(s, a.x, a.save_mean, scale, a.beta, act, a.y);
}

void batchnorm_fwd_train_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                                 const BatchNormAct& act) {
  // Sums of d = x − x[0, c] and d²: var = (Σd² − (Σd)²/M)/M does not cancel for |mean| ≫ std.
  thread_local cpu::Scratch cbuf;
  double* shift = doubles(cbuf, 3 * size_t(s.C));
  double* sums = shift + s.C;
  batchnorm_shift_cpu(s, a.x, shift);
  batchnorm_stat_sums_cpu(s, a.x, shift, sums);
  batchnorm_fwd_train_sums_act_cpu(s, p, a, act, shift, sums, s.stats());
}

void batchnorm_fwd_eval_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                                const BatchNormAct& act) {
  thread_local cpu::Scratch sbuf;
  float* scale = sbuf.get(size_t(s.C));
  for (int c = 0; c < s.C; ++c)
    scale[c] = static_cast<float>(a.gamma[c] / std::sqrt(static_cast<double>(a.running_var[c]) + p.eps));
  normalize(s, a.x, a.running_mean, scale, a.beta, act, a.y);
}

void batchnorm_bwd_sums_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a, const float* y, double* sums) {
  const int M = s.M, C = s.C;
  thread_local cpu::Scratch pbuf, cbuf;
  double* part = doubles(pbuf, size_t(chunks_of(M)) * 2 * C);
  double* zero = doubles(cbuf, 2 * size_t(C));
  double* mean = zero + C;
  for (int c = 0; c < C; ++c) zero[c] = 0.0, mean[c] = a.save_mean[c];
  // sums: Σg, then Σg·(x − mean)
  if (y)
    channel_sums2<true>(s, a.dy, y, a.x, zero, mean, part, sums, sums + C);
  else
    channel_sums2<false>(s, a.dy, nullptr, a.x, zero, mean, part, sums, sums + C);
}

// dx = γ·invstd·(g − Σg/S − x̂·Σ(g·x̂)/S) on the s.stats() rows of the statistics, γ·invstd·g
// on the others, S = count, the sums over all rows of every process; dγ += Σ g·x̂, dβ += Σ g
// over this process's rows (the gradients of the processes are added later).
void batchnorm_bwd_sums_act_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a, const float* y, float* dg,
                                const double* local, const double* sums, int64_t count) {
  const int M = s.M, C = s.C;
  const double S = static_cast<double>(count);
  const double* sum_g = sums;
  const double* sum_gd = sums + C;  // Σ g·(x − mean)
  // Per channel: k = γ·invstd, u = invstd·Σ(g·x̂)/S, mean_g = Σg/S, so that
  // dx = k·(g − mean_g − (x − mean)·u); x − mean is kept explicit to avoid cancellation. The
  // rows outside the statistics get u = mean_g = 0.
  thread_local cpu::Scratch kbuf;
  float* k = kbuf.get(4 * size_t(C));
  float* u = k + C;
  float* mean_g = u + C;
  float* none = mean_g + C;
  for (int c = 0; c < C; ++c) {
    const double invstd = a.save_invstd[c], sum_g_xhat = sum_gd[c] * invstd;
    k[c] = static_cast<float>(static_cast<double>(a.gamma[c]) * invstd);
    u[c] = static_cast<float>(invstd * sum_g_xhat / S);
    mean_g[c] = static_cast<float>(sum_g[c] / S);
    none[c] = 0.0f;
    a.dgamma[c] += static_cast<float>(local[C + c] * invstd);
    a.dbeta[c] += static_cast<float>(local[c]);
  }
  const auto rows = [&](int r0, int r1, const float* ur, const float* mr) {
    if (y)
      dg ? bwd_rows<true, true>(s, r0, r1, a, y, k, ur, mr, dg) : bwd_rows<true, false>(s, r0, r1, a, y, k, ur, mr, dg);
    else
      dg ? bwd_rows<false, true>(s, r0, r1, a, y, k, ur, mr, dg)
         : bwd_rows<false, false>(s, r0, r1, a, y, k, ur, mr, dg);
  };
  const int stat_rows = s.stats();
  rows(0, stat_rows, u, mean_g);
  if (stat_rows < M) rows(stat_rows, M, none, none);
}

void batchnorm_bwd_act_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a, const float* y, float* dg) {
  thread_local cpu::Scratch sbuf;
  double* sums = doubles(sbuf, 2 * size_t(s.C));
  batchnorm_bwd_sums_cpu(s, a, y, sums);
  batchnorm_bwd_sums_act_cpu(s, a, y, dg, sums, sums, s.stats());
}

// Eval mode: the training backward's sums about the running mean, and the rows as those
// outside the statistics of c-BN (u = mean_g = 0): dx = γ·invstd·g.
void batchnorm_bwd_eval_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormBwdEvalArgs& a,
                                const float* y, float* dg) {
  const int C = s.C;
  thread_local cpu::Scratch kbuf, sbuf;
  float* invstd = kbuf.get(3 * size_t(C));
  float* k = invstd + C;
  float* none = k + C;
  double* sums = doubles(sbuf, 3 * size_t(C));
  double* invstd_d = sums + 2 * C;
  for (int c = 0; c < C; ++c) {
    invstd_d[c] = 1.0 / std::sqrt(static_cast<double>(a.running_var[c]) + p.eps);
    invstd[c] = static_cast<float>(invstd_d[c]);
    k[c] = static_cast<float>(a.gamma[c] * invstd_d[c]);
    none[c] = 0.0f;
  }
  const BatchNormBwdArgs b{a.x, a.dy, a.gamma, a.running_mean, invstd, a.dx, a.dgamma, a.dbeta};
  batchnorm_bwd_sums_cpu(s, b, y, sums);
  for (int c = 0; c < C; ++c) {
    a.dgamma[c] += static_cast<float>(sums[C + c] * invstd_d[c]);
    a.dbeta[c] += static_cast<float>(sums[c]);
  }
  if (y)
    dg ? bwd_rows<true, true>(s, 0, s.M, b, y, k, none, none, dg) : bwd_rows<true, false>(s, 0, s.M, b, y, k, none, none, dg);
  else
    dg ? bwd_rows<false, true>(s, 0, s.M, b, y, k, none, none, dg)
       : bwd_rows<false, false>(s, 0, s.M, b, y, k, none, none, dg);
}

void batchnorm_bwd_eval_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormBwdEvalArgs& a) {
  batchnorm_bwd_eval_act_cpu(s, p, a, nullptr, nullptr);
}

void batchnorm_fwd_train_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a) {
  batchnorm_fwd_train_act_cpu(s, p, a, {});
}

void batchnorm_fwd_eval_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a) {
  batchnorm_fwd_eval_act_cpu(s, p, a, {});
}

void batchnorm_bwd_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a) {
  batchnorm_bwd_act_cpu(s, a, nullptr, nullptr);
}

// The row splits of the CUDA reductions: enough blocks to fill the GPU (about 1024 blocks
// of 256 threads, 8 resident on each of 132 SMs, over ⌈C/32⌉ channel tiles) but at least 64
// rows per split, so a split's partials cost less than its rows. Correctness does not depend
// on the choice: the CUDA code reads it from here and sizes nothing else by it.
int batchnorm_row_splits(const BatchNormShape& s) {
  constexpr int kTargetBlocks = 1024, kChannelTile = 32, kMinRowsPerSplit = 64;
  const int tiles = std::max(1, (s.C + kChannelTile - 1) / kChannelTile);
  const int for_blocks = std::max(1, kTargetBlocks / tiles);
  const int for_rows = std::max(1, (s.M + kMinRowsPerSplit - 1) / kMinRowsPerSplit);
  return std::min(for_blocks, for_rows);
}

size_t batchnorm_workspace_floats(const BatchNormShape& s) {
  return 3 * (static_cast<size_t>(batchnorm_row_splits(s)) + 1) * static_cast<size_t>(std::max(s.C, 0));
}

namespace {

// The mean and biased variance of channel c over the first S rows.
std::pair<double, double> ref_stats(const BatchNormShape& s, const double* x, int c) {
  const int S = s.stats();
  double mean = 0, var = 0;
  for (int r = 0; r < S; ++r) mean += x[static_cast<size_t>(r) * s.C + c];
  mean /= S;
  for (int r = 0; r < S; ++r) {
    const double d = x[static_cast<size_t>(r) * s.C + c] - mean;
    var += d * d;
  }
  return {mean, var / S};
}

}  // namespace

void batchnorm_fwd_train_ref(const BatchNormShape& s, float eps, const double* x, const double* gamma,
                             const double* beta, double* y) {
  for (int c = 0; c < s.C; ++c) {
    const auto [mean, var] = ref_stats(s, x, c);
    const double invstd = 1.0 / std::sqrt(var + eps);
    for (int r = 0; r < s.M; ++r) {
      const size_t i = static_cast<size_t>(r) * s.C + c;
      y[i] = gamma[c] * (x[i] - mean) * invstd + beta[c];
    }
  }
}

void batchnorm_bwd_ref(const BatchNormShape& s, float eps, const double* x, const double* dy, const double* gamma,
                       double* dx, double* dgamma, double* dbeta) {
  const int S = s.stats();
  for (int c = 0; c < s.C; ++c) {
    const auto [mean, var] = ref_stats(s, x, c);
    const double invstd = 1.0 / std::sqrt(var + eps);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int r = 0; r < s.M; ++r) {
      const size_t i = static_cast<size_t>(r) * s.C + c;
      sum_dy += dy[i];
      sum_dy_xhat += dy[i] * (x[i] - mean) * invstd;
    }
    for (int r = 0; r < s.M; ++r) {
      const size_t i = static_cast<size_t>(r) * s.C + c;
      const double xhat = (x[i] - mean) * invstd;
      dx[i] = gamma[c] * invstd * (r < S ? dy[i] - sum_dy / S - xhat * sum_dy_xhat / S : dy[i]);
    }
    dgamma[c] += sum_dy_xhat;
    dbeta[c] += sum_dy;
  }
}

void batchnorm_bwd_eval_ref(const BatchNormShape& s, float eps, const double* x, const double* dy, const double* gamma,
                            const double* running_mean, const double* running_var, double* dx, double* dgamma,
                            double* dbeta) {
  for (int c = 0; c < s.C; ++c) {
    const double invstd = 1.0 / std::sqrt(running_var[c] + eps);
    for (int r = 0; r < s.M; ++r) {
      const size_t i = static_cast<size_t>(r) * s.C + c;
      dx[i] = gamma[c] * invstd * dy[i];
      dgamma[c] += dy[i] * (x[i] - running_mean[c]) * invstd;
      dbeta[c] += dy[i];
    }
  }
}

}  // namespace activeip
