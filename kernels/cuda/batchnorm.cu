// Batch normalisation on the GPU (contract in kernels/batchnorm.h), NHWC viewed as M×C.
// Reductions run on a grid of ⌈C/ct⌉ channel tiles × row splits; a block is ct channels ×
// by rows, so a warp reads consecutive channels of consecutive rows. Each block writes its
// per-channel partials to the caller's workspace, and a block per channel merges them: the
// mean and variance by Welford per thread and Chan's merge above it, in one pass over x.
// Normalise-scale-shift and the dx formula are one fused pass each, channel fixed per thread.
// With s.stat_rows (c-BN) the statistics come from the first s.stats() rows, normalise all
// M, and the dx pass applies the statistics' terms to those rows only.
#include <algorithm>
#include <cmath>

#include "kernels/batchnorm.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"

namespace activeip {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Up to 32 channels per block: for C ≤ 32 a block spans whole rows (ct = C) and the rows
// it reads are contiguous in memory; wider C is cut into 32-channel tiles, one row segment
// of 128 bytes per warp. by = ⌊256 / ct⌋ rows fill the rest of the block.
struct Tile {
  int ct, by;
  dim3 block() const { return dim3(ct, by); }
  int tiles(int C) const { return (C + ct - 1) / ct; }
};

Tile tile_for(int C) {
  const int ct = std::min(C, kWarp);
  return {ct, static_cast<int>(launch::kBlock) / ct};
}

// Count, mean and sum of squared deviations of a set of values.
struct Welford {
  float n, mean, m2;
};

// Chan et al.'s pairwise merge: exact in exact arithmetic for any split of the data, and it
// never forms Σx² − (Σx)²/n, which loses every digit when |mean| ≫ std.
__device__ inline Welford merge(Welford a, Welford b) {
  const float n = a.n + b.n;
  if (n == 0.0f) return a;
  const float delta = b.mean - a.mean, wb = b.n / n;
  return {n, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.n * wb};
}

// The largest power of two below by (at least 1): the first stride of the tree over rows,
// which also handles a by that is not a power of two.
__device__ inline int first_half(int by) {
  int half = 1;
  while (2 * half < by) half *= 2;
  return half;
}

// The per-channel sums of the backward pass, kept in double across splits.
struct GradSums {
  double dy, dy_xhat;
};

__device__ inline GradSums operator+(GradSums a, GradSums b) {
  return {a.dy + b.dy, a.dy_xhat + b.dy_xhat};
}

__device__ inline Welford shfl_down(Welford v, int off) {
  return {__shfl_down_sync(kFullMask, v.n, off), __shfl_down_sync(kFullMask, v.mean, off),
          __shfl_down_sync(kFullMask, v.m2, off)};
}

__device__ inline GradSums shfl_down(GradSums v, int off) {
  return {__shfl_down_sync(kFullMask, v.dy, off), __shfl_down_sync(kFullMask, v.dy_xhat, off)};
}

// Combines one value per thread of a kBlock-thread block; the result is valid in thread 0.
// Shuffles within each warp, then thread 0 folds the warp totals in warp order: a fixed
// order, so the result is the same on every run.
template <class T, class Op>
__device__ T block_reduce(T v, Op op) {
  constexpr int kWarps = launch::kBlock / kWarp;
  __shared__ T warp_total[kWarps];
  for (int off = kWarp / 2; off > 0; off /= 2) v = op(v, shfl_down(v, off));
  if (threadIdx.x % kWarp == 0) warp_total[threadIdx.x / kWarp] = v;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kWarps; ++w) v = op(v, warp_total[w]);
  return v;
}

// Visits the rows first, first + step, … below M in that order, loading four rows before
// using any: a thread with one load in flight leaves most of the memory bandwidth idle,
// four independent loads per thread come close to saturating it.
template <class Load, class Use>
__device__ inline void for_each_row(int first, int step, int M, Load load, Use use) {
  constexpr int kUnroll = 4;
  int r = first;
  for (; r + static_cast<long long>(kUnroll - 1) * step < M; r += kUnroll * step) {
    decltype(load(r)) v[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) v[k] = load(r + k * step);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) use(r + k * step, v[k]);
  }
  for (; r < M; r += step) use(r, load(r));
}

}  // namespace

// Per-split Welford statistics of the first s.stats() rows. Layout of part (3·splits·C
// floats): n, then mean, then M2, each splits×C with the channel fastest. Threads of a tile
// past C still join the barriers.
static __global__ void batchnorm_stats_partial_kernel(BatchNormShape s, const float* x, float* part) {
  __shared__ Welford acc_sh[launch::kBlock];
  const int ct = blockDim.x, by = blockDim.y, splits = gridDim.y;
  const int c = blockIdx.x * ct + threadIdx.x;
  Welford acc{0.0f, 0.0f, 0.0f};
  if (c < s.C)
    for_each_row(
        blockIdx.y * by + threadIdx.y, splits * by, s.stats(),
        [&](int r) { return x[static_cast<size_t>(r) * s.C + c]; },
        [&](int, float v) {
          acc.n += 1.0f;
          const float d = v - acc.mean;
          acc.mean += d / acc.n;
          acc.m2 += d * (v - acc.mean);
        });
  const int t = threadIdx.y * ct + threadIdx.x;
  acc_sh[t] = acc;
  __syncthreads();
  // Tree over the rows of the block: row y absorbs row y + half. The barrier ends each
  // level so that no thread reads a slot its partner is still writing.
  for (int half = first_half(by); half > 0; half /= 2) {
    if (threadIdx.y < half && threadIdx.y + half < by) acc_sh[t] = merge(acc_sh[t], acc_sh[t + half * ct]);
    __syncthreads();
  }
  if (threadIdx.y == 0 && c < s.C) {
    const size_t stride = static_cast<size_t>(splits) * s.C, i = static_cast<size_t>(blockIdx.y) * s.C + c;
    part[i] = acc_sh[t].n;
    part[stride + i] = acc_sh[t].mean;
    part[2 * stride + i] = acc_sh[t].m2;
  }
}

// One block per channel merges the splits (at most 1024, so at most 4 per thread: with a
// warp per channel, 32 dependent L2 round trips per lane made this the slowest step for small
// C). Thread 0 turns the statistics into save_mean/save_invstd and moves the running stats,
// in double as the CPU does.
static __global__ void batchnorm_stats_finalize_kernel(BatchNormShape s, BatchNormParams p, int splits,
                                                       const float* part, BatchNormFwdArgs a) {
  const int c = blockIdx.x;
  const size_t stride = static_cast<size_t>(splits) * s.C;
  Welford acc{0.0f, 0.0f, 0.0f};
  for (int k = threadIdx.x; k < splits; k += blockDim.x) {
    const size_t i = static_cast<size_t>(k) * s.C + c;
    acc = merge(acc, {part[i], part[stride + i], part[2 * stride + i]});
  }
  acc = block_reduce(acc, merge);
  if (threadIdx.x != 0) return;
  const int S = s.stats();
  const double var = static_cast<double>(acc.m2) / S;
  const double invstd = 1.0 / sqrt(var + p.eps);
  // The layer rejects S = 1 in training; the guard only keeps the correction finite.
  const double unbias = S > 1 ? static_cast<double>(S) / (S - 1) : 1.0;
  const double m = p.momentum;
  a.save_mean[c] = acc.mean;
  a.save_invstd[c] = static_cast<float>(invstd);
  a.running_mean[c] = static_cast<float>((1 - m) * a.running_mean[c] + m * acc.mean);
  a.running_var[c] = static_cast<float>((1 - m) * a.running_var[c] + m * var * unbias);
}

// y = (x − center)·scale + beta with the channel fixed per thread, so the per-channel
// constants are loaded once; center is subtracted first to avoid cancellation when
// |mean| ≫ std. Training: batch statistics; eval: running statistics.
template <bool kTrain>
static __global__ void batchnorm_normalize_kernel(BatchNormShape s, float eps, BatchNormFwdArgs a) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= s.C) return;
  float center, scale;
  if constexpr (kTrain) {
    center = a.save_mean[c];
    scale = a.gamma[c] * a.save_invstd[c];
  } else {
    center = a.running_mean[c];
    scale = static_cast<float>(a.gamma[c] / sqrt(static_cast<double>(a.running_var[c]) + eps));
  }
  const float beta = a.beta[c];
  for_each_row(
      blockIdx.y * blockDim.y + threadIdx.y, gridDim.y * blockDim.y, s.M,
      [&](int r) { return a.x[static_cast<size_t>(r) * s.C + c]; },
      [&](int r, float x) { a.y[static_cast<size_t>(r) * s.C + c] = (x - center) * scale + beta; });
}

// Per-split Σdy and Σdy·x̂ (part: splits×C of each), the same tiling and tree as the statistics.
static __global__ void batchnorm_bwd_partial_kernel(BatchNormShape s, BatchNormBwdArgs a, float* part) {
  __shared__ float sum_dy_sh[launch::kBlock], sum_dy_xhat_sh[launch::kBlock];
  const int ct = blockDim.x, by = blockDim.y, splits = gridDim.y;
  const int c = blockIdx.x * ct + threadIdx.x;
  float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
  if (c < s.C) {
    const float mean = a.save_mean[c], invstd = a.save_invstd[c];
    for_each_row(
        blockIdx.y * by + threadIdx.y, splits * by, s.M,
        [&](int r) {
          const size_t i = static_cast<size_t>(r) * s.C + c;
          return make_float2(a.x[i], a.dy[i]);
        },
        [&](int, float2 v) {
          sum_dy += v.y;
          sum_dy_xhat += v.y * ((v.x - mean) * invstd);
        });
  }
  const int t = threadIdx.y * ct + threadIdx.x;
  sum_dy_sh[t] = sum_dy;
  sum_dy_xhat_sh[t] = sum_dy_xhat;
  __syncthreads();
  for (int half = first_half(by); half > 0; half /= 2) {
    if (threadIdx.y < half && threadIdx.y + half < by) {
      sum_dy_sh[t] += sum_dy_sh[t + half * ct];
      sum_dy_xhat_sh[t] += sum_dy_xhat_sh[t + half * ct];
    }
    __syncthreads();
  }
  if (threadIdx.y == 0 && c < s.C) {
    const size_t i = static_cast<size_t>(blockIdx.y) * s.C + c;
    part[i] = sum_dy_sh[t];
    part[static_cast<size_t>(splits) * s.C + i] = sum_dy_xhat_sh[t];
  }
}

// One block per channel adds the splits (in double), ADDS the totals into dgamma and dbeta and
// leaves the dx coefficients in coef: k = γ·invstd, u = invstd·Σ(dy·x̂)/S, mean_dy = Σdy/S
// with S = s.stats() (each C floats, in that order), as batchnorm_bwd_cpu forms them.
static __global__ void batchnorm_bwd_finalize_kernel(BatchNormShape s, int splits, const float* part,
                                                     BatchNormBwdArgs a, float* coef) {
  const int c = blockIdx.x;
  const size_t stride = static_cast<size_t>(splits) * s.C;
  GradSums sum{0, 0};
  for (int k = threadIdx.x; k < splits; k += blockDim.x) {
    const size_t i = static_cast<size_t>(k) * s.C + c;
    sum = sum + GradSums{part[i], part[stride + i]};
  }
  sum = block_reduce(sum, [](GradSums x, GradSums y) { return x + y; });
  if (threadIdx.x != 0) return;
  const double invstd = a.save_invstd[c];
  coef[c] = static_cast<float>(static_cast<double>(a.gamma[c]) * invstd);
  coef[s.C + c] = static_cast<float>(invstd * sum.dy_xhat / s.stats());
  coef[2 * s.C + c] = static_cast<float>(sum.dy / s.stats());
  a.dgamma[c] += static_cast<float>(sum.dy_xhat);
  a.dbeta[c] += static_cast<float>(sum.dy);
}

// dx = k·(dy − mean_dy − (x − mean)·u) on the statistics' first S rows and k·dy on the
// others (eval mode: S = 0, all of them), overwriting dx; x − mean stays explicit, as on the CPU.
static __global__ void batchnorm_dx_kernel(BatchNormShape s, int S, BatchNormBwdArgs a, const float* coef) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= s.C) return;
  const float k = coef[c], u = coef[s.C + c], mean_dy = coef[2 * s.C + c], mean = a.save_mean[c];
  for_each_row(
      blockIdx.y * blockDim.y + threadIdx.y, gridDim.y * blockDim.y, s.M,
      [&](int r) {
        const size_t i = static_cast<size_t>(r) * s.C + c;
        return make_float2(a.x[i], a.dy[i]);
      },
      [&](int r, float2 v) {
        a.dx[static_cast<size_t>(r) * s.C + c] = r < S ? k * (v.y - mean_dy - (v.x - mean) * u) : k * v.y;
      });
}

// invstd = 1/sqrt(running_var + eps) per channel, in double as the eval forward forms it.
static __global__ void batchnorm_eval_invstd_kernel(BatchNormShape s, float eps, const float* running_var,
                                                    float* invstd) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c < s.C) invstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
}

namespace {

// Grid of the elementwise passes (normalise, dx): no workspace, so any number of row
// blocks works; about 4 rows per thread and at most launch::kMaxBlocks blocks in all.
dim3 elementwise_grid(const BatchNormShape& s, const Tile& tile) {
  const int tiles = tile.tiles(s.C);
  const int rows = std::max(1, (s.M + 4 * tile.by - 1) / (4 * tile.by));
  return dim3(tiles, std::min(rows, std::max(1, static_cast<int>(launch::kMaxBlocks) / tiles)));
}

}  // namespace

void batchnorm_fwd_train_cuda(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                              float* workspace, cudaStream_t stream) {
  if (s.M == 0 || s.C == 0) return;
  const Tile tile = tile_for(s.C);
  const int splits = batchnorm_row_splits(s);
  batchnorm_stats_partial_kernel<<<dim3(tile.tiles(s.C), splits), tile.block(), 0, stream>>>(s, a.x, workspace);
  CUDA_CHECK_LAUNCH();
  batchnorm_stats_finalize_kernel<<<s.C, launch::kBlock, 0, stream>>>(s, p, splits, workspace, a);
  CUDA_CHECK_LAUNCH();
  batchnorm_normalize_kernel<true><<<elementwise_grid(s, tile), tile.block(), 0, stream>>>(s, p.eps, a);
  CUDA_CHECK_LAUNCH();
}

void batchnorm_fwd_eval_cuda(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                             cudaStream_t stream) {
  if (s.M == 0 || s.C == 0) return;
  const Tile tile = tile_for(s.C);
  batchnorm_normalize_kernel<false><<<elementwise_grid(s, tile), tile.block(), 0, stream>>>(s, p.eps, a);
  CUDA_CHECK_LAUNCH();
}

void batchnorm_bwd_cuda(const BatchNormShape& s, const BatchNormBwdArgs& a, float* workspace, cudaStream_t stream) {
  if (s.M == 0 || s.C == 0) return;
  const Tile tile = tile_for(s.C);
  const int splits = batchnorm_row_splits(s);
  float* coef = workspace + 3 * static_cast<size_t>(splits) * s.C;
  batchnorm_bwd_partial_kernel<<<dim3(tile.tiles(s.C), splits), tile.block(), 0, stream>>>(s, a, workspace);
  CUDA_CHECK_LAUNCH();
  batchnorm_bwd_finalize_kernel<<<s.C, launch::kBlock, 0, stream>>>(s, splits, workspace, a, coef);
  CUDA_CHECK_LAUNCH();
  batchnorm_dx_kernel<<<elementwise_grid(s, tile), tile.block(), 0, stream>>>(s, s.stats(), a, coef);
  CUDA_CHECK_LAUNCH();
}

// The training backward's passes about the running statistics, with no row in the statistics:
// the sums give dgamma and dbeta, and dx = γ·invstd·dy. invstd goes in the third block of
// partials, which the backward's two sums leave free.
void batchnorm_bwd_eval_cuda(const BatchNormShape& s, const BatchNormParams& p, const BatchNormBwdEvalArgs& a,
                             float* workspace, cudaStream_t stream) {
  if (s.M == 0 || s.C == 0) return;
  const Tile tile = tile_for(s.C);
  const int splits = batchnorm_row_splits(s);
  float* invstd = workspace + 2 * static_cast<size_t>(splits) * s.C;
  float* coef = workspace + 3 * static_cast<size_t>(splits) * s.C;
  batchnorm_eval_invstd_kernel<<<launch::grid_for(static_cast<size_t>(s.C)), launch::kBlock, 0, stream>>>(
      s, p.eps, a.running_var, invstd);
  CUDA_CHECK_LAUNCH();
  const BatchNormBwdArgs b{a.x, a.dy, a.gamma, a.running_mean, invstd, a.dx, a.dgamma, a.dbeta};
  batchnorm_bwd_partial_kernel<<<dim3(tile.tiles(s.C), splits), tile.block(), 0, stream>>>(s, b, workspace);
  CUDA_CHECK_LAUNCH();
  batchnorm_bwd_finalize_kernel<<<s.C, launch::kBlock, 0, stream>>>(s, splits, workspace, b, coef);
  CUDA_CHECK_LAUNCH();
  batchnorm_dx_kernel<<<elementwise_grid(s, tile), tile.block(), 0, stream>>>(s, 0, b, coef);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
