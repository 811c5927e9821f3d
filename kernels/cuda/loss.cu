// Softmax cross-entropy with label smoothing on the GPU (contract in kernels/loss.h), N rows
// of C logits. Forward: one warp per row; lanes stride over the C columns, the max and the
// sums (Σexp in double, Σz for the smoothing term) are combined by warp shuffles, and the
// probabilities and per-row loss follow the CPU's arithmetic. Backward: one thread per logit.
// The soft-target loss at temperature T (distillation) and the plain softmax at T share one
// warp-per-row kernel; its KL term is summed in double like the CPU's.
#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"
#include "kernels/loss.h"

namespace activeip {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kRowsPerBlock = launch::kBlock / kWarp;

template <class T>
__device__ T warp_sum(T v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

__device__ float warp_max(float v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, off));
  return v;
}

}  // namespace

// The whole warp stays in the loop over rows (the row index is uniform across it), so every
// shuffle sees all 32 lanes; lanes past C contribute the neutral element.
static __global__ void softmax_xent_fwd_kernel(XentShape s, float smoothing, const float* logits, const int32_t* labels,
                                               float* probs, float* loss) {
  const int lane = threadIdx.x % kWarp;
  const int warps = gridDim.x * kRowsPerBlock;
  for (int n = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarp; n < s.N; n += warps) {
    const float* z = logits + static_cast<size_t>(n) * s.C;
    float* pr = probs + static_cast<size_t>(n) * s.C;
    float zmax = -INFINITY;
    for (int c = lane; c < s.C; c += kWarp) zmax = fmaxf(zmax, z[c]);
    zmax = warp_max(zmax);
    double sum_exp = 0, sum_z = 0;
    for (int c = lane; c < s.C; c += kWarp) {
      const float e = expf(z[c] - zmax);
      pr[c] = e;
      sum_exp += e;
      sum_z += z[c];
    }
    sum_exp = warp_sum(sum_exp);
    sum_z = warp_sum(sum_z);
    const float inv = static_cast<float>(1.0 / sum_exp);
    // Each lane rescales only the entries it wrote, so no barrier is needed between the passes.
    for (int c = lane; c < s.C; c += kWarp) pr[c] *= inv;
    if (lane == 0) {
      // The products are rounded on their own (no fused multiply-add), as the CPU rounds
      // them, so a loss that cancels to almost nothing (C = 1) still comes out the same.
      const double lse = zmax + log(sum_exp);
      loss[n] = static_cast<float>(lse - __dmul_rn(1.0 - smoothing, z[labels[n]]) - __dmul_rn(smoothing, sum_z) / s.C);
    }
  }
}

static __global__ void softmax_xent_bwd_kernel(XentShape s, float on, float off, const float* probs,
                                               const int32_t* labels, float scale, float* dlogits) {
  const size_t total = static_cast<size_t>(s.N) * s.C;
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count()) {
    const int c = static_cast<int>(i % s.C);
    const size_t n = i / s.C;
    dlogits[i] = scale * (probs[i] - (c == labels[n] ? on : off));
  }
}

void softmax_xent_fwd_cuda(const XentShape& s, float smoothing, const float* logits, const int32_t* labels,
                           float* probs, float* loss, cudaStream_t stream) {
  if (s.N == 0 || s.C == 0) return;
  const unsigned blocks = launch::grid_for(static_cast<size_t>(s.N), kRowsPerBlock);
  softmax_xent_fwd_kernel<<<blocks, launch::kBlock, 0, stream>>>(s, smoothing, logits, labels, probs, loss);
  CUDA_CHECK_LAUNCH();
}

void softmax_xent_bwd_cuda(const XentShape& s, float smoothing, const float* probs, const int32_t* labels, float scale,
                           float* dlogits, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.C;
  if (total == 0) return;
  // The targets in float, computed as the CPU computes them.
  const float off = smoothing / static_cast<float>(s.C);
  const float on = 1.0f - smoothing + off;
  softmax_xent_bwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, on, off, probs, labels, scale,
                                                                                  dlogits);
  CUDA_CHECK_LAUNCH();
}

// p = softmax(z/T) per row, and with targets the per-row T²·Σ_c q_c·(log q_c − log p_c).
// `targets` is null for the plain softmax; the test is uniform across the warp, so the
// shuffles of the KL sum still see all 32 lanes.
static __global__ void soft_xent_fwd_kernel(XentShape s, float temperature, const float* logits, const float* targets,
                                            float* probs, float* loss) {
  const int lane = threadIdx.x % kWarp;
  const int warps = gridDim.x * kRowsPerBlock;
  const double t = temperature;
  for (int n = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarp; n < s.N; n += warps) {
    const size_t row = static_cast<size_t>(n) * s.C;
    const float* z = logits + row;
    float* pr = probs + row;
    float zmax = -INFINITY;
    for (int c = lane; c < s.C; c += kWarp) zmax = fmaxf(zmax, z[c]);
    zmax = warp_max(zmax);
    double sum_exp = 0;
    for (int c = lane; c < s.C; c += kWarp) {
      const float e = expf((z[c] - zmax) / temperature);
      pr[c] = e;
      sum_exp += e;
    }
    sum_exp = warp_sum(sum_exp);
    const float inv = static_cast<float>(1.0 / sum_exp);
    for (int c = lane; c < s.C; c += kWarp) pr[c] *= inv;
    if (targets) {
      const double log_sum = log(sum_exp);
      double kl = 0;
      for (int c = lane; c < s.C; c += kWarp) {
        const double q = targets[row + c];
        if (q > 0) kl += q * (log(q) - (static_cast<double>(z[c] - zmax) / t - log_sum));
      }
      kl = warp_sum(kl);
      if (lane == 0) loss[n] = static_cast<float>(t * t * kl);
    }
  }
}

static __global__ void soft_xent_bwd_kernel(size_t total, float k, const float* probs, const float* targets,
                                            float* dlogits) {
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count())
    dlogits[i] = k * (probs[i] - targets[i]);
}

void soft_xent_fwd_cuda(const XentShape& s, float temperature, const float* logits, const float* targets, float* probs,
                        float* loss, cudaStream_t stream) {
  if (s.N == 0 || s.C == 0) return;
  const unsigned blocks = launch::grid_for(static_cast<size_t>(s.N), kRowsPerBlock);
  soft_xent_fwd_kernel<<<blocks, launch::kBlock, 0, stream>>>(s, temperature, logits, targets, probs, loss);
  CUDA_CHECK_LAUNCH();
}

void soft_xent_bwd_cuda(const XentShape& s, float temperature, const float* probs, const float* targets, float scale,
                        float* dlogits, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.C;
  if (total == 0) return;
  soft_xent_bwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(total, scale * temperature, probs,
                                                                               targets, dlogits);
  CUDA_CHECK_LAUNCH();
}

void softmax_temperature_fwd_cuda(const XentShape& s, float temperature, const float* logits, float* probs,
                                  cudaStream_t stream) {
  if (s.N == 0 || s.C == 0) return;
  const unsigned blocks = launch::grid_for(static_cast<size_t>(s.N), kRowsPerBlock);
  soft_xent_fwd_kernel<<<blocks, launch::kBlock, 0, stream>>>(s, temperature, logits, nullptr, probs, nullptr);
  CUDA_CHECK_LAUNCH();
}

namespace {

__device__ int first_argmax(const float* v, int C) {
  int best = 0;
  for (int c = 1; c < C; ++c)
    if (v[c] > v[best]) best = c;
  return best;
}

}  // namespace

// One block of kBlock threads: each thread counts the hits of rows tid, tid + kBlock, …
// (integers: any order gives the same count), then thread 0 adds the losses in row order, as
// the CPU does, and the per-thread counts.
static __global__ void loss_accumulate_kernel(XentShape s, const float* loss, const float* probs, const int32_t* labels,
                                              const float* targets, double* acc) {
  __shared__ int hits[launch::kBlock];
  int h = 0;
  for (int n = static_cast<int>(threadIdx.x); n < s.N; n += static_cast<int>(blockDim.x)) {
    const size_t row = static_cast<size_t>(n) * s.C;
    const int want = labels ? labels[n] : first_argmax(targets + row, s.C);
    h += first_argmax(probs + row, s.C) == want;
  }
  hits[threadIdx.x] = h;
  __syncthreads();
  if (threadIdx.x != 0) return;
  double sum = 0;
  for (int n = 0; n < s.N; ++n) sum += static_cast<double>(loss[n]);
  long long total = 0;
  for (unsigned t = 0; t < blockDim.x; ++t) total += hits[t];
  acc[0] += sum;
  acc[1] += static_cast<double>(total);
}

void loss_accumulate_cuda(const XentShape& s, const float* loss, const float* probs, const int32_t* labels,
                          const float* targets, double* acc, cudaStream_t stream) {
  if (s.N == 0) return;
  loss_accumulate_kernel<<<1, launch::kBlock, 0, stream>>>(s, loss, probs, labels, targets, acc);
  CUDA_CHECK_LAUNCH();
}

// One block; thread c (striding over the classes) sums column c of the group in double, rows
// in order, exactly as the CPU does, then updates that column of every group row.
static __global__ void logit_spread_bwd_kernel(XentShape s, float weight, const float* logits, const float* rows,
                                               float* dlogits) {
  double g = 0;
  for (int n = 0; n < s.N; ++n) g += rows[n];
  if (g == 0) return;
  const double k = 2.0 * weight / (g * s.C);
  for (int c = threadIdx.x; c < s.C; c += blockDim.x) {
    double mean = 0;
    for (int n = 0; n < s.N; ++n)
      if (rows[n] != 0) mean += static_cast<double>(rows[n]) * logits[static_cast<size_t>(n) * s.C + c];
    mean /= g;
    for (int n = 0; n < s.N; ++n) {
      if (rows[n] == 0) continue;
      const size_t i = static_cast<size_t>(n) * s.C + c;
      dlogits[i] += static_cast<float>(k * rows[n] * (logits[i] - mean));
    }
  }
}

void logit_spread_bwd_cuda(const XentShape& s, float weight, const float* logits, const float* rows, float* dlogits,
                           cudaStream_t stream) {
  if (s.N == 0 || s.C == 0) return;
  logit_spread_bwd_kernel<<<1, launch::kBlock, 0, stream>>>(s, weight, logits, rows, dlogits);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
